"""Renderers for `stuckgen schema`: the resolved mapping and the status census, as JSON or rich renderables."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from stuckgen.durations import format_duration

if TYPE_CHECKING:
    from stuckgen.discover import Census
    from stuckgen.schema import SchemaMapping

MAPPING_SCHEMA = "stuckgen.mapping/v1"


def census_notes(cen: Census, inflight: Sequence[str]) -> list[str]:
    """Where the configured in-flight statuses and the values in the table disagree."""
    from stuckgen.discover import INFLIGHT

    notes = []
    present = {v.value for v in cen.values}
    for v in cen.values:
        if v.role == INFLIGHT and v.value not in inflight and v.rows:
            notes.append(f"{v.value!r} ({v.rows} rows) is a known in-flight status but not in inflight_statuses: "
                         "its rows are never checked (stuckgen init proposes a configuration)")
    for s in inflight:
        if s not in present:
            notes.append(f"in-flight status {s!r} occurs in no row"
                         + (f" and is not a label of the enum (labels: {', '.join(cen.enum)})" if cen.enum is not None else ""))
    return notes


def mapping_json_lines(m: SchemaMapping, cen: Census, inflight: Sequence[str],
                       advice: str | None = None, *, rules: Sequence[Any] = ()) -> Iterator[str]:
    """The mapping, where each field came from, and the census, as one indented JSON document."""
    doc = {
        "schema": MAPPING_SCHEMA, "db_schema": m.db_schema, "table": m.table,
        "fields": {k: {"spec": None if not f.present else f.describe(), "type": f.data_type, "source": f.source}
                   for k, f in m.fields.items()},
        "outputs": {"table": m.outputs.table, "key": m.outputs.key, "source": m.outputs.source},
        "queue": {"table": m.queue.table, "key": m.queue.key, "columns": dict(m.queue.columns),
                  "source": m.queue.source},
        "warnings": list(m.warnings),
        "inflight_statuses": list(inflight),
        "census": cen.as_dict(),
        "census_notes": census_notes(cen, inflight),
        "index_advice": advice,
        "rules": [r.as_dict() for r in rules],  # the classification rules in force, with their sources
    }
    yield json.dumps(doc, indent=2)


def mapping_renderables(m: SchemaMapping, cen: Census, inflight: Sequence[str]) -> Iterator[Any]:
    """The mapping table, its notes, then the census table and its notes (strings print as plain lines)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(show_edge=False, header_style="bold", pad_edge=False)
    for col in ("field", "maps to", "type", "source"):
        t.add_column(col)
    for name, f in m.fields.items():
        t.add_row(name, Text(f.describe()), Text(f.data_type or "-"), Text(f.source))
    t.add_row("outputs", Text(f"{m.outputs.table}.{m.outputs.key}" if m.outputs.present else "-"), "",
              Text(m.outputs.source))
    t.add_row("queue", Text(f"{m.queue.table}.{m.queue.key}" if m.queue.present else "-"), "", Text(m.queue.source))
    yield Text(f"{m.db_schema}.{m.table}")
    yield t
    for w in m.warnings:
        yield Text(f"note: {w}")
    yield Text("")
    yield Text(f"Status census of {m.table}.{cen.column} ({cen.total} rows"
               + (f"; enum labels {', '.join(cen.enum)}" if cen.enum is not None else "") + "):")
    c = Table(show_edge=False, header_style="bold", pad_edge=False)
    for col, kw in (("value", {}), ("rows", {"justify": "right"}), ("last day", {"justify": "right"}),
                    ("newest sign of life", {"justify": "right"}), ("in flight", {}), ("known as", {"ratio": 1})):
        c.add_column(col, **kw)
    for v in cen.values:
        ago = "-" if v.newest_sign_seconds is None else format_duration(max(0.0, v.newest_sign_seconds)) + " ago"
        c.add_row(Text(repr(v.value)), str(v.rows), str(v.last_day), ago, "yes" if v.value in inflight else "no",
                  Text(f"{v.role}: {v.why}" if v.role else v.why))
    yield c
    for note in census_notes(cen, inflight):
        yield Text(f"note: {note}")
