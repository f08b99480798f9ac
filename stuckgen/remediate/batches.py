"""Batches that are all or nothing: one transaction each, signals held while a batch commits and is audited."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from stuckgen.audit import AuditLog, AuditRecord
from stuckgen.db import Connection, transaction
from stuckgen.errors import AuditWriteError, StuckgenError
from stuckgen.remediate.results import RowOutcome

class DeferredSignals:
    """Hold SIGINT/SIGTERM from ``arm()`` until ``release()``, then deliver them.

    Armed for the whole of a batch (statement, commit, audit append), so a
    signal never lands inside the database driver: the batch finishes and the
    interrupt is delivered between batches. A second signal while armed cancels
    the running statement (``on_repeat``), so a batch stuck on a slow statement
    still rolls back promptly. Only the main thread can own signal handlers;
    elsewhere this does nothing.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_repeat: Callable[[], None] | None = None) -> None:
        self._saved: dict[int, Any] = {}
        self._pending: list[int] = []
        self._on_repeat = on_repeat
        self.forced = False

    def arm(self) -> None:
        if self._saved or threading.current_thread() is not threading.main_thread():
            return
        for sig in self._SIGNALS:
            self._saved[sig] = signal.getsignal(sig)
            signal.signal(sig, self._hold)

    def _hold(self, signum: int, frame: Any) -> None:
        self._pending.append(signum)
        if len(self._pending) > 1 and not self.forced and self._on_repeat is not None:
            self.forced = True
            self._on_repeat()

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def release(self) -> None:
        saved, self._saved = self._saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if not self._pending:
            return
        sig = self._pending[0]
        self._pending.clear()
        handler = saved.get(sig)
        if callable(handler):
            handler(sig, None)
        elif handler == signal.SIG_IGN:
            return
        elif sig == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            os.kill(os.getpid(), sig)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass
class BatchProgress:
    outcomes: list[RowOutcome] = field(default_factory=list)
    done: int = 0
    interrupted: bool = False


def apply_batches(conn: Connection, batches: Iterable[Sequence[Any]], apply: Callable[[Sequence[Any]], tuple[list[RowOutcome], list[AuditRecord]]],
                   *, audit: AuditLog, statement_timeout: float, lock_timeout: float, run_id: str,
                   progress: Callable[[int], None] | None, pending: Callable[[Sequence[Any]], list[RowOutcome]] | None,
                   total: int) -> BatchProgress:
    """Run each batch in its own transaction; each is fully applied (with its audit) or not at all.

    ``pending`` turns the batches left after an interrupt into outcomes (None: leave them unreported,
    when producing them would need the database again).
    """
    state = BatchProgress()
    it = iter(batches)
    batch: Sequence[Any] | None = None

    def cancel() -> None:
        try:
            conn.cancel_safe(timeout=2.0)
        except Exception:  # best effort: the statement_timeout still bounds the batch
            pass

    try:
        while True:
            deferred = DeferredSignals(on_repeat=cancel)
            deferred.arm()
            try:
                batch = next(it, None)
                if batch is None:
                    break
                try:
                    # jit off: a batch statement's row estimates (CTEs over unnest) are wildly high,
                    # which makes PostgreSQL JIT-compile it: hundreds of ms for ms of work.
                    with transaction(conn, read_only=False, statement_timeout=statement_timeout,
                                     lock_timeout=lock_timeout, extra={"jit": "off"}):
                        outcomes, records = apply(batch)
                except StuckgenError:
                    if deferred.forced:  # our own cancel after a repeated Ctrl-C: the batch rolled back
                        raise KeyboardInterrupt from None
                    raise
                if not audit.in_transaction:
                    audit.append(conn, records)
                state.outcomes.extend(outcomes)
                state.done += 1
                batch = None
                if progress:
                    progress(len(outcomes))
            finally:
                deferred.release()
    except KeyboardInterrupt:
        state.interrupted = True
        if pending is not None:
            if batch is not None:
                state.outcomes.extend(pending(batch))
            for rest in it:
                state.outcomes.extend(pending(rest))
    except AuditWriteError as exc:
        raise AuditWriteError(f"{exc.message} (run {run_id}: {state.done} earlier batch(es) of {total} applied and "
                              f"audited; this one was applied but not audited)", hint=exc.hint) from exc
    except StuckgenError as exc:
        if state.done:
            raise type(exc)(f"{exc.message} (run {run_id}: {state.done} of {total} batch(es) were applied and "
                            f"audited before this; the failed batch was rolled back)", hint=exc.hint) from exc
        raise
    return state
