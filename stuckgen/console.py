"""Where a command writes: data on stdout, messages on stderr, questions on the terminal.

``Output`` is the one object a command's core function writes through (the way httpie
hands its core an ``Environment``): the CLI builds one on the process's streams, and a
test hands in its own streams and says whether they are a terminal. Colour only on a
terminal and without ``NO_COLOR``; data lines are streamed, never styled.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Output:
    """stdout for data, stderr for messages; colour only on a terminal and without NO_COLOR.

    The streams default to the process's own at construction; ``is_tty`` defaults to
    whether stdout is a terminal.
    """

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    is_tty: bool = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.is_tty is None:
            self.is_tty = _isatty(self.stdout)
        self._out: Any = None
        self._err: Any = None

    # The consoles are built on first use: JSON and CSV in a pipe never need rich.
    @property
    def out(self) -> Any:
        """A rich console on stdout (tables and reports for a person)."""
        if self._out is None:
            from rich.console import Console

            self._out = Console(file=self.stdout, no_color=bool(os.environ.get("NO_COLOR")), highlight=False,
                                width=None if self.is_tty else (columns() or 200), emoji=False)
        return self._out

    @property
    def err(self) -> Any:
        """A rich console on stderr (warnings, progress)."""
        if self._err is None:
            from rich.console import Console

            self._err = Console(file=self.stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False,
                                emoji=False)
        return self._err

    @property
    def width(self) -> int | None:
        """Columns to fit text and tables into: the terminal's, or $COLUMNS in a pipe (None: don't wrap)."""
        if self.is_tty:
            import shutil

            return columns() or shutil.get_terminal_size((100, 24)).columns
        return columns()

    def lines(self, lines: Iterable[str]) -> None:
        """Write plain lines to stdout as they come (streamed, never styled)."""
        write = self.stdout.write
        for line in lines:
            write(line)
            write("\n")
        self.stdout.flush()

    def note(self, message: str) -> None:
        """A message on stderr, never wrapped: it may hold a command to copy."""
        self.stderr.write(message + "\n")
        self.stderr.flush()

    def warn(self, message: str) -> None:
        from rich.markup import escape

        self.err.print(f"[yellow]warning:[/yellow] {escape(message)}")

    def ask(self, question: str, *, default: bool = False) -> bool:
        """One yes/no question on the terminal (stderr); an empty answer is ``default``, anything else but yes is no."""
        self.stderr.write(f"{question} {'[Y/n]' if default else '[y/N]'}: ")
        self.stderr.flush()
        answer = self.stdin.readline().strip().lower()
        return default if not answer else answer in ("y", "yes")

    def interactive(self) -> bool:
        """Whether a person can answer a question: stdin and stderr are a terminal."""
        return _isatty(self.stdin) and _isatty(self.stderr)

    def confirmer(self, yes: bool) -> Callable[[str], bool]:
        """How the core asks before it acts: --yes acts; a terminal gets one question; else a dry run."""
        def confirm(question: str) -> bool:
            if yes:
                return True
            return self.interactive() and self.ask(question)
        return confirm

    @contextmanager
    def rows_progress(self, label: str, total: int) -> Iterator[Callable[[int], None] | None]:
        """The core's progress hook: a bar advanced by rows done on a terminal, else None."""
        with self.progress(label, total=total, estimate=total) as bar:
            yield bar.advance if bar else None

    @contextmanager
    def progress(self, label: str, *, total: int | None, estimate: int, at_least: int = 2) -> Iterator[Bar | None]:
        """A transient progress bar on stderr when it is a terminal and ``estimate`` >= ``at_least``; else None."""
        if not self.err.is_terminal or estimate < at_least:
            yield None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=self.err,
                      transient=True) as bar:
            yield Bar(bar, bar.add_task(label, total=total))


@dataclass(frozen=True)
class Bar:
    """A running progress bar: ``advance`` by rows done, or ``update`` to done of total."""

    _progress: Any
    _task: Any

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def update(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=total)


def columns() -> int | None:
    """$COLUMNS when it is a sensible width (what `script`, CI logs and tests set), else None."""
    try:
        n = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return n if 20 <= n <= 1000 else None


def default_format(fmt: str | None, *, tty: bool) -> str:
    """The format asked for, else table on a terminal and json in a pipe."""
    return fmt or ("table" if tty else "json")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
