"""Renderers: functions that turn results into lines (or rich renderables); they never print."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class RawJSON(str):
    """Text that is already one JSON value (a row the database wrote): streamed as it is."""


def streamed_json(head: dict[str, Any], items: Iterable[Any], *, key: str = "rows",
                  tail: Callable[[], dict[str, Any]] | None = None) -> Iterator[str]:
    """One JSON document written line by line: ``head``'s fields, ``key`` as an array of ``items``
    (one per line, each ``json.dumps``-able or ``RawJSON``), then ``tail()``'s fields (computed after the last item).

    Memory does not grow with the number of items, and a reader of the pipe sees rows as they come.
    """
    yield json.dumps(head)[:-1] + (", " if head else "") + json.dumps(key) + ": ["
    first = True
    for item in items:
        yield ("  " if first else ", ") + (item if isinstance(item, RawJSON) else json.dumps(item))
        first = False
    rest = json.dumps(tail()) if tail is not None else "{}"
    yield "]" + (", " + rest[1:] if rest != "{}" else "}")


# Rows a table on a terminal shows by default: about a screenful with the summary below it.
# The counts always cover every row; the rest are a --limit or --format json away.
TERMINAL_ROWS = 20
