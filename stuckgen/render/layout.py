"""Fitting output to a terminal: which table columns fit, and wrapping text at word boundaries.

A table keeps its identifying columns whole (an id is copied, never cut), puts
the free text (``why``, ``reason``) last where it wraps, and leaves out the
optional columns that would squeeze that text below a readable width — in a
stated order, and says which it left out. Text wraps between words with a
hanging indent, and never inside a `backticked` command or a URL: a line a
person copies stays one token even when it is wider than the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SEPARATOR = 3  # " │ " between columns (rich's default box, no edge)
MIN_LAST = 28  # the wrapping column gets at least this much, or optional columns go


@dataclass(frozen=True, kw_only=True)
class Column:
    name: str
    width: int  # the widest cell (or the header), as rendered
    required: bool = False
    drop_order: int = 0  # optional columns go first by ascending drop_order


def fit_columns(columns: Sequence[Column], last: Column, *, width: int, min_last: int = MIN_LAST) -> list[str]:
    """Names of the columns to show, in their order, ``last`` included: as many optional ones as leave
    ``last`` at least ``min_last`` characters (or its whole width, when narrower)."""
    shown = list(columns)

    def room() -> int:
        used = sum(c.width for c in shown) + SEPARATOR * len(shown)
        return width - used

    need = min(min_last, last.width)
    for c in sorted((c for c in columns if not c.required), key=lambda c: c.drop_order):
        if room() >= need:
            break
        shown.remove(c)
    return [c.name for c in shown] + [last.name]


_TOKEN = re.compile(r"`[^`]*`\S*|\S+")


def tokens(text: str) -> list[str]:
    """Words, with a `backticked span` (and what sticks to it) kept as one token."""
    return _TOKEN.findall(text)


def wrap(line: str, width: int, *, hanging: int | None = None) -> list[str]:
    """``line`` wrapped at word boundaries to ``width``; continuation lines indented to the text after a
    list marker (``- ``, ``1. ``, ``fix: ``) unless ``hanging`` says otherwise. Tokens are never split."""
    if width <= 0 or len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip(" "))
    body = line[lead:]
    if hanging is None:
        m = re.match(r"(?:[-*] |\d+\. |\[[a-z]+\] |[a-z][a-z ]{0,12}: )", body)
        hanging = lead + (len(m.group(0)) if m else 0)
    hanging = min(hanging, max(0, width // 2))
    out: list[str] = []
    cur = " " * lead
    fresh = True
    for tok in tokens(body):
        candidate = cur + ("" if fresh else " ") + tok
        if len(candidate) <= width or fresh:
            cur, fresh = candidate, False
            continue
        out.append(cur.rstrip())
        cur, fresh = " " * hanging + tok, False
    out.append(cur.rstrip())
    return out


def wrap_lines(lines: Iterable[str], width: int | None) -> Iterator[str]:
    """Each line wrapped to ``width`` (None: as they are, for a pipe)."""
    for line in lines:
        if width is None:
            yield line
        else:
            yield from wrap(line, width)


@dataclass(frozen=True)
class Fitted:
    """What the terminal shows (a table, or the stacked compact layout) and the columns left out for width."""

    renderable: Any
    left_out: list[str]

    def __rich__(self) -> Any:
        return self.renderable


def fit_table(cells: Sequence[Mapping[str, str]], *, order: Sequence[str], required: Sequence[str],
              drop: Sequence[str], last: str, width: int | None, right: Iterable[str] = (),
              style: Callable[[str, str], str] | None = None) -> Fitted:
    """A table of ``cells`` (dicts by column name) that fits ``width``.

    ``order``: the columns before ``last``, as shown; ``required`` are never left
    out nor cut; ``drop``: the optional ones in the order they go when ``last``
    would be squeezed below ``MIN_LAST``. When even the required ones leave it
    too little room, the compact layout shows them on one line and ``last``
    wrapped under it. Cells are plain text (never markup); ``style(column,
    value)`` colours a cell.
    """
    from rich.table import Table
    from rich.text import Text

    right = set(right)
    paint = style or (lambda _c, _v: "")

    def w(name: str) -> int:
        return max([len(name), *(len(c[name]) for c in cells)])

    cols = [Column(name=n, width=w(n), required=n in required,
                   drop_order=drop.index(n) if n in drop else len(drop)) for n in order]
    names = fit_columns(cols, Column(name=last, width=w(last)), width=width) if width else [*order, last]
    left_out = [n for n in order if n not in names]
    room = (width or 0) - sum(w(n) + SEPARATOR for n in names if n != last)
    if width and room < min(MIN_LAST, w(last)):
        return Fitted(renderable=_stacked(cells, [n for n in order if n in required], last, width, w, right, paint),
                      left_out=[n for n in order if n not in required])
    table = Table(title=None, show_edge=False, header_style="bold", pad_edge=False)
    for n in names:
        if n == last:
            table.add_column(n, ratio=1, overflow="fold")
        else:
            table.add_column(n, no_wrap=True, min_width=w(n), justify="right" if n in right else "left")
    for c in cells:
        table.add_row(*(Text(c[n], style=paint(n, c[n])) for n in names))
    return Fitted(renderable=table, left_out=left_out)


def _stacked(cells: Sequence[Mapping[str, str]], head: Sequence[str], last: str, width: int,
             w: Callable[[str], int], right: set[str], paint: Callable[[str, str], str]) -> Any:
    from rich.console import Group
    from rich.text import Text

    def pad(n: str, v: str) -> str:
        return f"{v:>{w(n)}}" if n in right else f"{v:<{w(n)}}"

    out = [Text("  ".join(pad(n, n) for n in head).rstrip(), style="bold")]
    for c in cells:
        line = Text()
        for i, n in enumerate(head):
            if i:
                line.append("  ")
            line.append(pad(n, c[n]), style=paint(n, c[n]))
        out.append(line)
        out += [Text(x) for x in wrap("    " + c[last], width, hanging=4)]
    return Group(*out)
