"""The seed service's layout, rebuilt as a baseline (not its code: its storage shape).

Frames: one JPEG object per frame (``seed/<timeline>/frames/<seq>.jpg``) on the same
object store as the store under test, and a manifest kept in memory (the seed kept it in
a Postgres row; reading it is one query either way).

Checkpoints: one row per checkpoint whose ``stage_outputs`` column copies every output
carried forward from the parent plus the new one, as the seed's save_stage_output did.
On PostgreSQL that column is JSONB (as in the seed); for the embedded comparison it is a
TEXT column of JSON in a SQLite file (WAL, synchronous=FULL: one fsync per commit).
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import pillow

__all__ = ["SeedCheckpoints", "SeedFrames", "seed_layout_bytes"]

_DDL = """CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY, timeline_id TEXT NOT NULL, parent_id TEXT,
    stage_outputs {json} NOT NULL, config_overrides {json} NOT NULL, stats {json} NOT NULL,
    is_scenario BOOLEAN NOT NULL, scenario_label TEXT NOT NULL)"""


class SeedFrames:
    """One object per frame on an Objects store."""

    def __init__(self, objects: Any) -> None:
        self.objects = objects
        self.manifest: dict[str, list[str]] = {}

    def create(self, timeline_id: str, frames: Iterable[np.ndarray], quality: int = 90) -> None:
        keys = []
        for seq, a in enumerate(frames):
            key = f"seed/{timeline_id}/frames/{seq:06d}.jpg"
            self.objects.put(key, pillow.encode(a, quality))
            keys.append(key)
        self.manifest[timeline_id] = keys

    def load_encoded(self, timeline_id: str) -> list[bytes]:
        return [self.objects.get(k) for k in self.manifest[timeline_id]]

    def load(self, timeline_id: str) -> list[np.ndarray]:
        return [pillow.decode(self.objects.get(k)) for k in self.manifest[timeline_id]]

    def get(self, timeline_id: str, sequence: int) -> np.ndarray:
        return pillow.decode(self.objects.get(self.manifest[timeline_id][sequence]))

    def delete(self, timeline_id: str) -> None:
        """Remove a timeline's objects (a batched recursive delete where the fs has one)."""
        self.manifest.pop(timeline_id, None)
        try:
            self.objects.fs.rm(self.objects.path(f"seed/{timeline_id}"), recursive=True)
        except FileNotFoundError:
            pass


class SeedCheckpoints:
    """Checkpoint rows that copy all earlier outputs (SQLite JSON text or PostgreSQL JSONB)."""

    def __init__(self, kind: str, target: str, schema: str = "seed") -> None:
        self.kind = kind
        self.target = target
        self.schema = schema
        if kind == "sqlite":
            self.con: Any = sqlite3.connect(target, isolation_level=None)
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=FULL")
            self.con.execute(_DDL.format(json="TEXT"))
            self._ph = "?"
        else:
            import psycopg

            self.con = psycopg.connect(target, autocommit=True)
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self.con.execute(f"SET search_path TO {schema}")
            self.con.execute(_DDL.format(json="JSONB"))
            self._ph = "%s"

    def _one(self, sql: str, args: Sequence[Any]) -> Any:
        return self.con.execute(sql.replace("?", self._ph), args).fetchone()

    def save_stage_output(self, timeline_id: str, parent_id: str | None, stage: str,
                          output: dict[str, Any], config_overrides: dict[str, Any] | None = None,
                          stats: dict[str, Any] | None = None, is_scenario: bool = False,
                          scenario_label: str = "") -> str:
        outputs: dict[str, Any] = {}
        p_stats: dict[str, Any] = {}
        p_config: dict[str, Any] = {}
        if parent_id:
            row = self._one("SELECT stage_outputs, stats, config_overrides FROM checkpoints "
                            "WHERE id = ?", (parent_id,))
            if row:
                outputs, p_stats, p_config = (_json(v) for v in row)
        outputs = {**outputs, stage: output}
        cid = str(uuid.uuid4())
        self.con.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)".replace("?", self._ph),
            (cid, timeline_id, parent_id, json.dumps(outputs),
             json.dumps({**p_config, **(config_overrides or {})}),
             json.dumps({**p_stats, **(stats or {})}), is_scenario, scenario_label),
        )
        return cid

    def load_stage_output(self, checkpoint_id: str, stage: str) -> Any:
        row = self._one("SELECT stage_outputs FROM checkpoints WHERE id = ?", (checkpoint_id,))
        return None if row is None else _json(row[0]).get(stage)

    def stored_bytes(self) -> int:
        """Bytes on disk: the SQLite file after a WAL checkpoint, or the PostgreSQL table
        with its TOAST and indexes."""
        if self.kind == "sqlite":
            self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return os.path.getsize(self.target)
        row = self.con.execute(
            "SELECT pg_total_relation_size(%s)", (f"{self.schema}.checkpoints",)
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self.con.close()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def seed_layout_bytes(stage_outputs: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """JSON bytes the seed layout writes for a chain saving these (stage, output) in order:
    checkpoint i stores every output carried forward to it."""
    carried: dict[str, int] = {}
    total = 0
    for stage, output in stage_outputs:
        carried[stage] = len(json.dumps(output).encode())
        total += sum(carried.values())
    return total
