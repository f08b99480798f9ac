"""Interruption: SIGTERM is handled like Ctrl-C, so every command stops the same way (exit 130).

A scheduler (systemd, Kubernetes, CI runners) stops a process with SIGTERM; Python's
default would end it at once, with exit 143, no report and possibly half a batch's
bookkeeping undone. Raising KeyboardInterrupt instead lets each command finish the way
it finishes on Ctrl-C: batches whole, what was done reported, exit 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """For the duration of the block, SIGTERM raises KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
