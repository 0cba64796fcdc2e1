"""LangGraph checkpointers as peers: SqliteSaver (file DB) and PostgresSaver.

Durability as measured/set here:
- SqliteSaver: its own setup() turns on WAL; Python's sqlite3 leaves synchronous at the
  library default, FULL (PRAGMA synchronous = 2, read back at run time), so every commit
  fsyncs the WAL. A "synchronous=OFF" variant is available for contrast.
- PostgresSaver: autocommit connection to a durable cluster (fsync, synchronous_commit on).

Each ``put`` stores one checkpoint whose channel_values hold only the stage just run
(a delta: the cheapest shape for the peer), with the parent's id in the config, as
LangGraph's loop does. ``full_state=True`` stores every output of the chain so far,
which is what a graph whose state keeps all stage outputs sends.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

__all__ = ["SaverPeer", "missing_reason", "sqlite_synchronous"]


def missing_reason(kind: str) -> str | None:
    """None when the peer's package imports, else why it cannot run."""
    module = "langgraph.checkpoint.sqlite" if kind == "sqlite" else "langgraph.checkpoint.postgres"
    try:
        __import__(module)
    except ImportError as exc:
        dist = f"langgraph-checkpoint-{kind}"
        return f"{dist} is not installed ({exc}); pip install {dist}"
    return None


def sqlite_synchronous(path: str) -> int:
    """PRAGMA synchronous as a fresh sqlite3 connection sees it (2 = FULL)."""
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        con.close()


class SaverPeer:
    """One saver on one database; put() chains checkpoints like save_stage_output."""

    def __init__(self, kind: str, target: str, *, synchronous: str | None = None,
                 full_state: bool = False) -> None:
        self.kind = kind
        self.full_state = full_state
        self._state: dict[str, dict[str, Any]] = {}
        self._step = 0
        if kind == "sqlite":
            from langgraph.checkpoint.sqlite import SqliteSaver

            self._con: Any = sqlite3.connect(target, check_same_thread=False)
            self.saver: Any = SqliteSaver(self._con)
            self.saver.setup()
            if synchronous is not None:
                self._con.execute(f"PRAGMA synchronous={synchronous}")
        else:
            import psycopg
            from langgraph.checkpoint.postgres import PostgresSaver
            from psycopg.rows import dict_row

            self._con = psycopg.connect(target, autocommit=True, prepare_threshold=0,
                                        row_factory=dict_row)
            self.saver = PostgresSaver(self._con)
            self.saver.setup()

    def put(self, thread: str, parent_id: str | None, stage: str,
            output: dict[str, Any]) -> str:
        """Save one checkpoint (child of parent_id) holding `stage`'s output; return its id."""
        from langgraph.checkpoint.base.id import uuid6

        self._step += 1
        step = self._step
        if self.full_state:
            values = self._state.setdefault(thread, {})
            values[stage] = output
            values = dict(values)
        else:
            values = {stage: output}
        cid = str(uuid6(clock_seq=step))
        checkpoint = {
            "v": 2, "id": cid, "ts": datetime.now(UTC).isoformat(),
            "channel_values": values, "channel_versions": {stage: step},
            "versions_seen": {}, "pending_sends": [], "updated_channels": [stage],
        }
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": "",
                                   "checkpoint_id": parent_id}}
        self.saver.put(config, checkpoint, {"source": "loop", "step": step, "parents": {}},
                       {stage: step})
        return cid

    def reset_state(self, thread: str) -> None:
        """Start a new chain in thread (full_state keeps outputs per chain)."""
        self._state.pop(thread, None)

    def get(self, thread: str, checkpoint_id: str) -> Any:
        cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": "",
                                "checkpoint_id": checkpoint_id}}
        return self.saver.get_tuple(cfg)

    def list(self, thread: str) -> list[Any]:
        cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        return list(self.saver.list(cfg))

    def close(self) -> None:
        self._con.close()
