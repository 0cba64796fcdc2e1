"""The PostgreSQL row codec: records <-> table rows, derived from ``schema.FIELDS``.

A record's row holds what its columns hold, in FIELDS order (JSON as text), then
``exact`` for timelines and checkpoints (see ``pg_json``): the same tuple is a commit's
parameters and, once inserted, a cached row, and reads select the columns in that order.
Stage outputs are not records: an output row is (hash, canonical bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from ..canonical import checked_bytes, content_hash, load_json
from ..errors import ConflictError, CorruptDataError, InvalidInputError
from ..schema import FIELDS, TYPES
from ..types import LazyOutputs
from . import pg_json

__all__ = ["TABLES", "Codec", "output_rows", "unique"]

Row = tuple[Any, ...]

#: kind -> table name.
TABLES = {"timeline": "timelines", "checkpoint": "checkpoints", "tombstone": "tombstones",
          "tag": "tags"}
_PG_TYPES = {"id": "text", "hash": "text", "text": "text", "float": "float8", "int": "int8",
             "bool": "bool", "time": "timestamptz", "json": "jsonb"}
_WITH_EXACT = ("timeline", "checkpoint")  # kinds whose table has an `exact` column


def _utc(when: datetime) -> datetime:
    """Naive datetimes are UTC by convention; aware ones keep their instant."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


@attrs.frozen
class Codec:
    """Columns, SQL types and conversions of one record kind."""

    kind: str

    @property
    def table(self) -> str:
        return TABLES[self.kind]

    @property
    def names(self) -> list[str]:
        return [f.name for f in FIELDS[self.kind]] + (
            ["exact"] if self.kind in _WITH_EXACT else [])

    @property
    def columns(self) -> str:
        """Column list for INSERT and comparisons."""
        return ", ".join(self.names)

    @property
    def read(self) -> str:
        """Column list for SELECT (JSON columns as text)."""
        fields = {f.name: f for f in FIELDS[self.kind]}
        return ", ".join(
            f"{n}::text" if n in fields and fields[n].type == "json" else n for n in self.names)

    @property
    def types(self) -> str:
        """SQL types of the columns, space-separated (what _rows_sql casts to)."""
        return " ".join([_PG_TYPES[f.type] for f in FIELDS[self.kind]]
                        + (["text"] if self.kind in _WITH_EXACT else []))

    def row(self, record: Any) -> Row:
        """The row of a record, which schema.validate checked when its Batch was made."""
        values: list[Any] = []
        exact: dict[str, Any] = {}
        for f in FIELDS[self.kind]:
            value = getattr(record, f.name)
            if value is None:
                values.append(None)
                continue
            t = f.type
            if t == "text":
                value, changed = pg_json.text_column(value)
                if changed:
                    exact[f.name] = getattr(record, f.name)
            elif t == "json":
                plain = dict(value)
                data = checked_bytes(plain)  # schema.validate checked it in the Batch
                value, changed = pg_json.jsonb_column(data)
                if changed:
                    exact[f.name] = plain
            elif t == "time":
                value = _utc(value)
            elif t == "float":
                value = float(value)
            elif t == "int":
                value = int(value)
            values.append(value)
        if self.kind in _WITH_EXACT:
            values.append(pg_json.exact_text(exact))
        return tuple(values)

    def record(self, row: Row, fetch: Callable[[list[str]], Mapping[str, Any]] | None = None,
               ) -> Any:
        """The record of a row read with ``read`` (fetch: the outputs loader of a
        checkpoint's lazy stage_outputs)."""
        fields = FIELDS[self.kind]
        fix = pg_json.read_exact(row[len(fields)]) if self.kind in _WITH_EXACT else {}
        values: dict[str, Any] = {}
        try:
            for f, value in zip(fields, row, strict=False):
                if f.name in fix:
                    value = fix[f.name]
                elif value is None:
                    pass
                elif f.type == "json":
                    value = load_json(value)
                elif f.type == "time":
                    value = value.astimezone(UTC)
                values[f.name] = value
        except ValueError as exc:
            raise CorruptDataError(
                f"{self.kind} row {row[0]!r} does not parse ({exc}); the catalog is damaged "
                "(restore it or re-sync it from another store)") from None
        if fetch is not None:
            values["stage_outputs"] = LazyOutputs(values["stage_hashes"], fetch)
        return TYPES[self.kind](**values)


CODECS = {kind: Codec(kind) for kind in TABLES}


def unique(rows: Iterable[Row], kind: str) -> list[Row]:
    """One row per id, sorted by id so that concurrent batches lock rows in the same
    order (no deadlock)."""
    by_id: dict[str, Row] = {}
    for row in rows:
        if by_id.setdefault(row[0], row) != row:
            raise ConflictError(
                f"the batch holds two different {kind} records with id {row[0]}; "
                "nothing was written"
            )
    return [by_id[key] for key in sorted(by_id)]


def output_rows(outputs: Mapping[str, bytes]) -> list[Row]:
    """(hash, canonical bytes) rows; the bytes are stored as they are (never re-encoded)."""
    rows = []
    for h, data in outputs.items():
        if not isinstance(data, bytes):
            data = bytes(data)
        if content_hash(data) != h:
            raise InvalidInputError(
                f"output {h} does not hash to its key; nothing of this batch was written"
            )
        rows.append((h, data))
    return unique(rows, "output")


def stored_bytes(h: str, data: bytes | None, value: Any, canonical: str | None) -> bytes:
    """The canonical bytes of an output row: ``data`` as stored; rows written before
    schema version 4 kept JSONB (``value``) and, where JSONB changes the value, the
    exact text (``canonical``), both in canonical JSON format 1."""
    if data is not None:
        return data
    if canonical is not None:
        return canonical.encode("utf-8")
    if value is None:
        raise CorruptDataError(f"output row {h} holds no value")
    return pg_json.format_1_bytes(value)
