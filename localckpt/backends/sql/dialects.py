"""What really differs between the SQL engines the catalog runs on.

The catalog's statements are written once (``catalog.py``, ``schema.py``) with ``?``
placeholders, ``{s}`` before every table name, and a few markers a dialect renders:

- ``{in}`` after a column: membership in a list bound as one parameter (PostgreSQL
  ``= ANY(%s)``; SQLite ``IN (SELECT value FROM json_each(?))``; DuckDB ``IN (SELECT
  unnest(?))``), so a statement's text does not depend on how many ids it is given;
- ``{xor:a,b}``: the bitwise XOR of two 64-bit integers (SQLite has no operator for it);

and column types come from the neutral names of ``schema.TYPES``. Everything else
(upsert with ``ON CONFLICT``, ``RETURNING``, recursive CTEs) is the same SQL on all three.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

__all__ = ["DUCKDB", "POSTGRES", "SQLITE", "Dialect"]

_XOR = re.compile(r"\{xor:([^,{}]+),([^{}]+)\}")


class Dialect(NamedTuple):
    """The differences between engines, as data.

    Attributes:
        name: "sqlite", "postgresql" or "duckdb".
        placeholder: the driver's parameter marker.
        types: neutral type name -> this engine's column type.
        text_holds_nul: text columns can hold the character NUL (PostgreSQL's cannot).
        json_exact: JSON columns give back the text written (PostgreSQL's jsonb
            normalises numbers, so the row codec keeps exact values beside them).
        time_as_text: times are stored as ISO 8601 text (else as timestamptz).
        sum_shards: rows per timeline in tree_sums: writers of one timeline on a server
            update different rows (a single-writer engine needs one).
        server_refusals: a guard can abort a transaction on the server (PostgreSQL's
            ``fail()``), so a write is sent in one round trip; else the catalog checks it.
        seeks_ranges: an index answers a key range (``ORDER BY key LIMIT 1`` from a
            point) without reading the table; DuckDB's indexes serve equality only, so
            there a range is a scan.
    """

    name: str
    placeholder: str
    types: dict[str, str]
    text_holds_nul: bool = True
    json_exact: bool = True
    time_as_text: bool = True
    sum_shards: int = 1
    server_refusals: bool = False
    seeks_ranges: bool = True
    in_list: str = ""
    xor_form: str = ""
    #: the function that gives a blob's length in bytes
    blob_length: str = "octet_length"

    def render(self, statement: str, schema: str = "") -> str:
        """The statement for this engine: {s}, {in}, {xor:a,b} and placeholders."""
        text = statement.replace("{s}", schema).replace("{in}", self.in_list)
        text = _XOR.sub(lambda m: self.xor_form.format(a=m.group(1), b=m.group(2)), text)
        if self.placeholder != "?":
            text = text.replace("%", "%%").replace("?", self.placeholder)
        return text

    def list_param(self, values: Sequence[Any]) -> Any:
        """A list of values bound to one {in} parameter."""
        if self.name == "sqlite":
            try:
                return orjson.dumps(list(values)).decode("utf-8")
            except (TypeError, orjson.JSONEncodeError):  # beyond 64 bits, a lone surrogate
                return json.dumps(list(values))
        return list(values)

    def time_param(self, when: datetime) -> Any:
        """A time as bound (UTC)."""
        when = when.astimezone(UTC)
        return when.isoformat() if self.time_as_text else when

    def time_value(self, value: Any) -> datetime:
        """A stored time as an aware UTC datetime."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    types={"id": "TEXT", "text": "TEXT", "float": "REAL", "int": "INTEGER",
           "bool": "INTEGER", "time": "TEXT", "json": "TEXT", "blob": "BLOB",
           "digest": "INTEGER"},
    in_list=" IN (SELECT value FROM json_each(?))",
    xor_form="(({a} | {b}) & ~({a} & {b}))",
    blob_length="length",
)

POSTGRES = Dialect(
    name="postgresql",
    placeholder="%s",
    types={"id": 'text COLLATE "C"', "text": "text", "float": "double precision",
           "int": "bigint", "bool": "boolean", "time": "timestamptz", "json": "jsonb",
           "blob": "bytea", "digest": "bigint"},
    text_holds_nul=False,
    json_exact=False,
    time_as_text=False,
    sum_shards=16,
    server_refusals=True,
    in_list=" = ANY(?)",
    xor_form="({a} # {b})",
)

DUCKDB = Dialect(
    name="duckdb",
    placeholder="?",
    types={"id": "VARCHAR", "text": "VARCHAR", "float": "DOUBLE", "int": "BIGINT",
           "bool": "BOOLEAN", "time": "VARCHAR", "json": "VARCHAR", "blob": "BLOB",
           "digest": "BIGINT"},
    in_list=" IN (SELECT unnest(?))",
    xor_form="xor({a}, {b})",
    seeks_ranges=False,
)
