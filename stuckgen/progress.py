"""Progress on stderr for a read or a write that lasts more than a second (on a terminal only).

A scan that waits on the database shows nothing for a while and then everything at
once; a line that says what is happening, and how far it got, tells the on-call
engineer it is working. Nothing is written when stderr is not a terminal (logs and CI
stay clean), nor when stdout is the same terminal and streams rows (the two would mix).
"""


import sys
import threading
import time
from typing import Any, TextIO


class Ticker:
    """``with Ticker("scanning", unit="rows") as t: ... t.add(n)``: after ``after`` seconds, a
    self-rewriting line ``scanning: 12,000 rows, 3s`` on stderr until the block ends."""

    def __init__(self, label: str, *, unit: str = "rows", stream: TextIO | None = None, after: float = 1.0,
                 every: float = 0.25, enabled: bool | None = None) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.after = after
        self.every = every
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.count = 0
        self.shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0
        self._t0 = 0.0

    def add(self, n: int = 1) -> None:
        self.count += n

    def __enter__(self) -> "Ticker":
        self._t0 = time.monotonic()
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="stuckgen-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.shown:
            self._write("\r" + " " * self._width + "\r")

    def line(self) -> str:
        elapsed = time.monotonic() - self._t0
        what = f"{self.count:,} {self.unit}, " if self.count else ""
        return f"{self.label}: {what}{elapsed:.0f}s"

    def _run(self) -> None:
        if self._stop.wait(self.after):
            return
        while True:
            text = self.line()
            self._write("\r" + text.ljust(self._width))
            self._width = max(self._width, len(text))
            self.shown = True
            if self._stop.wait(self.every):
                return

    def _write(self, s: str) -> None:
        try:
            self.stream.write(s)
            self.stream.flush()
        except (OSError, ValueError):  # stderr went away: progress is not worth an error
            self._stop.set()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
