"""Bounded concurrency for the runs that send rows one at a time: retrigger, settle, reconcile.

Only as many items are submitted as can run at once, so an item not yet submitted when
the run halts (a circuit breaker opened) is never sent. Ctrl-C in the caller's thread
stops the run; the items already in flight are waited for, so their results are known.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class FanOut(Generic[T]):
    """How a run ended, for the items that have no result."""

    unsent: list[T]  # never submitted: the run halted or was interrupted first (in the items' order)
    lost: list[T]  # in flight at the interrupt, and their worker raised: nothing is known of them
    interrupted: bool


def fan_out(items: Sequence[T], work: Callable[[T], R], *, concurrency: int, on_result: Callable[[T, R], None],
            halted: Callable[[], bool] = lambda: False, on_interrupt: Callable[[], None] = lambda: None,
            thread_name: str) -> FanOut[T]:
    """Run ``work`` over ``items``, at most ``concurrency`` at a time, handing each result to ``on_result``
    in the caller's thread. ``halted``: submit no further item (checked before each). ``on_interrupt``:
    called first on Ctrl-C, to tell the workers to stop (their in-flight results are still collected)."""
    queue = list(reversed(items))
    futures: dict[Future[R], T] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix=thread_name)
    try:
        while queue or futures:
            while queue and len(futures) < concurrency and not halted():
                item = queue.pop()
                futures[pool.submit(work, item)] = item
            if not futures:
                break
            done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for fut in done:
                item = futures.pop(fut)
                on_result(item, fut.result())
    except KeyboardInterrupt:
        on_interrupt()
        lost: list[T] = []
        for fut, item in futures.items():
            try:
                result = fut.result()
            except BaseException:  # the worker itself was interrupted
                lost.append(item)
                continue
            on_result(item, result)
        return FanOut(unsent=queue[::-1], lost=lost, interrupted=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return FanOut(unsent=queue[::-1], lost=[], interrupted=False)
