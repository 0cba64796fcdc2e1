"""Stores of N checkpoints for catalog_scale, built fast and once per run.

Every timeline is one chain of ``per`` checkpoints (root first, five stages cycling,
each checkpoint adding a small output of its own), so the measured timeline's tip has
a lineage ``per`` deep. Stores are built with batch commits (a timeline per batch): on
the embedded store without fsync and compacted every 20 timelines, so that the runs
form tiers as a store used for months would; on PostgreSQL through its catalog; for
LangGraph's SqliteSaver one thread of real ``put`` calls, copied to the other threads
in SQL (its ``list`` of one thread is what is measured).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import localckpt
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Checkpoint, Timeline

__all__ = ["Built", "build_saver", "build_store"]

_COMPACT_EVERY = 20


class Built:
    """What a probe needs to know about a built store."""

    def __init__(self, tips: list[tuple[str, str]], seconds: float) -> None:
        self.tips = tips  # (timeline id, tip id) per timeline
        self.seconds = seconds

    def picks(self) -> dict[str, str]:
        """Three different timelines: one for tree, one for lineage, one to save into."""
        n = len(self.tips)
        (t1, _), (_, tip2), (t3, tip3) = (self.tips[n // 2], self.tips[(n // 2 + 1) % n],
                                         self.tips[(n // 2 + 2) % n])
        return {"tree": t1, "lineage": tip2, "save_timeline": t3, "save_parent": tip3}


def timeline_batch(per: int, n: int) -> tuple[Batch, str, str]:
    tid, now = new_id(), utcnow()
    root = Checkpoint(new_id(), tid, None, {}, {}, {"frames_extracted": 1}, False, "", now)
    timeline = Timeline(tid, f"video{n}.mp4", "bench", 2.0, None, root.id, 1, now)
    checkpoints, outputs, hashes, parent = [root], {}, {}, root
    for i in range(per - 1):
        data = canonical_bytes({"timeline": n, "i": i,
                                "detections": [{"box": [i, 1, i + 5, 8], "score": 0.5}]})
        h = content_hash(data)
        outputs[h] = data
        stage = ("detect", "track", "ocr", "pose", "score")[i % 5]
        hashes = {**hashes, stage: h}
        parent = Checkpoint(new_id(), tid, parent.id, hashes, {"model": "m1"}, {"i": i},
                            False, "", now, stage=stage)
        checkpoints.append(parent)
    return Batch(timelines=[timeline], checkpoints=checkpoints, outputs=outputs), tid, parent.id


def build_store(args: dict[str, Any], count: int, per: int, embedded: bool) -> Built:
    """count checkpoints in count // per timelines, in the store open_args describes."""
    t0 = time.perf_counter()
    tips = []
    opts = dict(args.get("options", {}))
    if embedded:
        opts.update(fsync=False, compact_after=10**6)

    def opened(**extra: Any) -> localckpt.Store:
        return localckpt.open(args["url"], objects=args.get("objects"),
                              storage_options=args.get("storage_options") or {},
                              create=True, **{**opts, **extra})

    timelines = max(1, count // per)
    store = opened()
    try:
        for n in range(timelines):
            batch, tid, tip = timeline_batch(per, n)
            store.catalog.commit(batch)
            tips.append((tid, tip))
            if embedded and (n + 1) % _COMPACT_EVERY == 0:
                store.close()
                with opened() as compactor:
                    compactor.catalog.compact()
                store = opened()
    finally:
        store.close()
    if embedded:
        with opened() as compactor:
            compactor.catalog.compact()
    return Built(tips, time.perf_counter() - t0)


def build_saver(path: str, count: int, per: int) -> Built:
    """A SqliteSaver database of count checkpoints in count // per threads."""
    from ..peers.langgraph import SaverPeer

    t0 = time.perf_counter()
    peer = SaverPeer("sqlite", path)
    try:
        parent = None
        for i in range(per):
            parent = peer.put("thread0", parent, "detect", {"i": i, "box": [i, 1, i + 5, 8]})
    finally:
        peer.close()
    con = sqlite3.connect(path)
    try:
        threads = max(1, count // per)
        with con:
            for table in ("checkpoints", "writes"):
                cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
                others = ", ".join(c for c in cols if c != "thread_id")
                for n in range(1, threads):
                    con.execute(
                        f"INSERT INTO {table} (thread_id, {others}) "
                        f"SELECT ?, {others} FROM {table} WHERE thread_id = 'thread0'",
                        (f"thread{n}",))
    finally:
        con.close()
    return Built([("thread0", str(parent))], time.perf_counter() - t0)
