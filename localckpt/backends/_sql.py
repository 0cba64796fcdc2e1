"""SQL over every record of an embedded catalog, in a DuckDB connection made per call.

Only ``EmbeddedCatalog.sql`` needs DuckDB (and pyarrow): nothing else imports them, so
opening a store and answering the Catalog interface never pays their ~150 ms import and
connect. The query runs on copies: changing the tables changes nothing on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..schema import FIELDS, to_arrow
from ..types import Checkpoint, Timeline

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["run_sql"]

_DUCKDB_TYPES = {
    "id": "VARCHAR", "hash": "VARCHAR", "text": "VARCHAR", "json": "JSON", "float": "DOUBLE",
    "int": "BIGINT", "bool": "BOOLEAN", "time": "TIMESTAMPTZ",
}
_TABLES = {"timelines": "timeline", "checkpoints": "checkpoint"}


def run_sql(query: str, params: dict[str, Any] | None, timelines: Sequence[Timeline],
            checkpoints: Sequence[Checkpoint]) -> pa.Table:
    import duckdb

    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a str, not {type(query).__name__}")
    con = duckdb.connect(":memory:")
    try:
        for table, kind in _TABLES.items():
            columns = ", ".join(f"{f.name} {_DUCKDB_TYPES[f.type]}" for f in FIELDS[kind])
            con.execute(f"CREATE TABLE {table} ({columns})")
            rows = timelines if kind == "timeline" else checkpoints
            if rows:
                con.register("_new_rows", to_arrow(kind, rows))
                con.execute(f"INSERT INTO {table} SELECT * FROM _new_rows")
                con.unregister("_new_rows")
        try:
            return con.sql(query, params=params or {}).to_arrow_table()
        except duckdb.Error as exc:
            raise InvalidInputError(
                f"the SQL query failed: {exc}. The tables are timelines and checkpoints, "
                "with the record fields as columns"
            ) from None
        except AttributeError:  # a statement without a result (CREATE, INSERT...)
            raise InvalidInputError(
                "the SQL statement returned no rows to read; give a SELECT query"
            ) from None
    finally:
        con.close()
