"""`watch`: the stuck set refreshed over one read-only connection; optional probes and notifications."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from stuckgen.console import Output
from stuckgen.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from stuckgen.session import Session
    from stuckgen.watch import Refresh, Watcher

MIN_PROBE_INTERVAL = 30.0  # each probe round sends ~10 requests per target: not every few seconds


def wait(seconds: float) -> None:
    """Sleep between refreshes (a seam for tests; Ctrl-C interrupts it)."""
    time.sleep(seconds)


def run_watch(session: Session, out: Output, *, fmt: str, interval: float, count: int | None = None,
              probe: bool = False, probe_interval: float = 60.0, repeat: int | None = None) -> int:
    """Refresh every ``interval`` until ``count`` refreshes or Ctrl-C/SIGTERM; a one-line summary on stderr."""
    from stuckgen.watch import Watcher

    from stuckgen.queues import libraries_in_force

    if interval <= 0:
        raise ConfigError("--interval must be positive")
    if libraries_in_force(session.settings):
        raise ConfigError("watch follows an app table's rows; queue mode (queue_library) has no watch yet",
                          hint="for the library's jobs run `stuckgen scan` (exit 1 when any is stuck), or "
                               "`stuckgen check` on a schedule")
    prober = Prober(session, every=max(MIN_PROBE_INTERVAL, probe_interval), repeat=repeat) if probe else None
    alerts, view, watcher = Alerts(session), View(out, fmt, session, interval), Watcher()
    last: Refresh | None = None
    interrupted = False
    try:
        while True:
            last = refresh(session, watcher, prober)
            alerts.tell(last)
            view.show(last, prober)
            if count is not None and last.n >= count:
                break
            wait(interval)
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C or SIGTERM: the summary below, then 130
    finally:
        view.close()
        alerts.close()
    return finish(out, last, interrupted=interrupted)


def refresh(session: Session, watcher: Watcher, prober: Prober | None) -> Refresh:
    """One READ ONLY transaction: the stuck set, the statuses of rows that left it, a probe when due."""
    from stuckgen.scan import ScanRun
    from stuckgen.watch import statuses_of

    conn = session.connection()  # the only connection, for the whole watch
    with session.read():
        mapping = session.mapping()
        run = ScanRun(conn, mapping, session.scan_options(), session.rules())
        run.count_window()
        return watcher.refresh((r.id for r in run), run.summary,
                               lookup_status=lambda ids: statuses_of(conn, mapping, ids),
                               probe=prober.maybe() if prober else None)


def finish(out: Output, last: Refresh | None, *, interrupted: bool) -> int:
    if last is None:
        out.note("watch: interrupted before the first refresh")
        return ExitCode.INTERRUPTED
    out.note(last.summary_line())  # one line, unwrapped, whatever the terminal width
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.FINDINGS if last.stuck else ExitCode.OK


class View:
    """One JSON line per refresh, or a live view on the terminal."""

    def __init__(self, out: Output, fmt: str, session: Session, interval: float) -> None:
        self.out, self.fmt, self.interval = out, fmt, interval
        self.threshold = session.settings.threshold
        self.live: Any = None

    def show(self, last: Refresh, prober: Prober | None) -> None:
        if self.fmt == "json":
            self.out.lines([json.dumps(last.as_dict(), default=str)])
            return
        from rich.live import Live

        from stuckgen.render.watch import watch_renderable

        view = watch_renderable(last, threshold=self.threshold, interval=self.interval,
                                probe_matrix=prober.table() if prober else None)
        if self.live is None:
            self.live = Live(view, console=self.out.out, auto_refresh=False, transient=False, redirect_stdout=False,
                             redirect_stderr=False)
            self.live.start()
        self.live.update(view, refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


class Alerts:
    """Notifications on change (as `check` sends them): every stuck class is an incident while watching."""

    def __init__(self, session: Session) -> None:
        from stuckgen.commands import alerting

        self.session = session
        self.channels = alerting.channels(session.settings, allow_insecure=session.allow_insecure)
        self.client = alerting.http_client(session.settings) if self.channels else None

    def tell(self, last: Refresh) -> None:
        if not self.channels:
            return
        from stuckgen.commands import alerting
        from stuckgen.notify import class_incidents

        alerting.send(self.session.settings, self.session.connection(), self.client, self.channels,
                      mapping=self.session.mapping(), incidents=class_incidents(last.by_class), observed=lambda c: True)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


class Prober:
    """probe-auth every ``every`` seconds against the configured deployments; keeps only the latest matrix."""

    def __init__(self, session: Session, *, every: float, repeat: int | None = None) -> None:
        if not session.settings.base_url:
            raise ConfigError("--probe needs a deployment", hint="pass --url or set STUCKGEN_BASE_URL")
        self.session, self.every, self.repeat = session, every, repeat
        self.last_run: float | None = None
        self.matrix: Any = None
        self.document: dict[str, Any] | None = None

    def maybe(self) -> dict[str, Any] | None:
        """Probe when due (inside the refresh's read-only transaction, for the id check); the latest document."""
        from datetime import datetime, timezone

        from stuckgen.commands.probe import analyze, probe_matrix
        from stuckgen.render.probe import probe_document

        if self.last_run is None or time.monotonic() - self.last_run >= self.every:
            self.matrix = probe_matrix(self.session, repeat=self.repeat)
            self.last_run = time.monotonic()
            doc = probe_document(self.matrix, analyze(self.session, self.matrix), cookie_info=self.session.cookie(),
                                 now=time.time())
            doc["probed_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
            self.document = doc
        return self.document

    def table(self) -> Any:
        from stuckgen.render.probe import probe_table

        return probe_table(self.matrix) if self.matrix is not None else None
