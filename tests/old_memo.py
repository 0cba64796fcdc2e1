"""Memo entries as the code of before migration 16 wrote them (one memo_entries row
each), for the tests of migrations 9 and 16."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any


def old_memo_entry(tx: Any, e: Any, key: str, stage: str, version: str, params: str,
                   frame: str, inputs: dict[str, str | None], value_hash: str, run_id: str,
                   when: datetime, at: tuple[str, int, int] | None = None) -> None:
    """A memo_entries row, its digest over the 9 fields of migration 7; at: (value_in,
    value_at, value_size), the columns of migration 9, when the catalog has them."""
    from localckpt.backends.sql.runs import _Codec

    codec = _Codec("memo", e.dialect)
    cols, digest = codec.row(SimpleNamespace(
        key=key, stage=stage, version=version, params_hash=params, frame_hash=frame,
        inputs=inputs, value_hash=value_hash, run_id=run_id, created_at=when))
    names = [*codec.names, "digest", *(("value_in", "value_at", "value_size") if at else ())]
    tx.execute(e.sql(f"INSERT INTO {{s}}memo_entries ({', '.join(names)}) VALUES "
                     f"({', '.join('?' * len(names))})"), (*cols, digest, *(at or ())))


@contextlib.contextmanager
def code_of(monkeypatch: Any, version: int) -> Iterator[None]:
    """Stores opened inside are made (or opened) at version (14: before migration 15,
    15: before 16, ...); this code begins, puts and closes runs there (its tables of runs
    are those of before)."""
    from localckpt.backends.sql import schema
    from localckpt.backends.sql.runs import RunTables

    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:version - schema.BASE_VERSION])
        m.setattr(schema, "LATEST_VERSION", version)
        m.setattr(RunTables, "available", True)
        yield


def code_of_15(monkeypatch: Any) -> contextlib.AbstractContextManager[None]:
    """Stores opened inside are made (or opened) at version 15, before migration 16."""
    return code_of(monkeypatch, 15)
