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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

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
