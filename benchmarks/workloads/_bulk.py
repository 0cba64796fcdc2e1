"""Big stores, built fast and honestly: catalog_scale, gc_under_load, web_index, verify_one.

Timelines are made by ``Store.create_timeline`` (one 8x8 frame each: a real frame index
and shard), so that ``verify`` and the web index see whole timelines. Their checkpoints
are real records (``Checkpoint`` with the hashes of real canonical-JSON outputs, stats
and config carried forward) written in bulk, a few timelines' trees at a time:

- SQLite: ``Batch`` commits of one timeline's tree (a thousand checkpoints and outputs)
  through the catalog, on the store opened with ``fsync=False`` (``validated=True``, as
  the Store's own saves: the records are built here from values known to be valid);
- DuckDB and PostgreSQL: the rows the catalog's own row codec makes (digests included),
  inserted with each engine's bulk path (an Arrow table into DuckDB, ``COPY`` into
  PostgreSQL), the output references and per-timeline sums computed as a commit computes
  them, the sums added with the catalog's own upsert statement. (One row at a time,
  1,000,000 checkpoints would take hours on DuckDB, whose ``executemany`` runs ~1,300
  rows/s here.)

``check_built`` proves a store right: ``Store.verify()`` (digests, sums, outputs against
their hashes, frames) finds nothing, and a purge of a store with nothing deleted removes
nothing (every output has its reference).
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

import localckpt
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Checkpoint

__all__ = ["Built", "build_saver", "build_store", "check_built", "tree_of"]

_STAGES = ("detect", "track", "ocr", "pose", "score")
_TINY = np.zeros((8, 8, 3), np.uint8)
_FLUSH = 20_000  # checkpoints per bulk write (bounded memory)


class Built:
    """What a probe needs to know about a built store: per timeline (id, tip, branch
    tops), and how long the build took."""

    def __init__(self) -> None:
        self.timelines: list[str] = []
        self.tips: list[str] = []
        self.branches: list[list[str]] = []
        self.seconds = 0.0

    def picks(self) -> dict[str, Any]:
        """Three timelines from the middle: one for tree, one for lineage, one to save
        into; and checkpoint ids from many timelines for reads by id."""
        n = len(self.timelines)
        a, b, c = n // 2, (n // 2 + 1) % n, (n // 2 + 2) % n
        step = max(1, n // 50)
        return {"tree": self.timelines[a], "lineage": self.tips[b],
                "save_timeline": self.timelines[c], "save_parent": self.tips[c],
                "by_id": [self.tips[i] for i in range(0, n, step)][:50]}


def tree_of(root: Checkpoint, per: int, branches: int, tag: str
            ) -> tuple[list[Checkpoint], dict[str, bytes], str, list[str]]:
    """per - 1 checkpoints under root in `branches` chains (1: one chain per-deep with
    the root), each adding a distinct ~120-byte output of one of five stages; returns
    (checkpoints, outputs by hash, the tip of the first chain, the first checkpoint of
    each chain)."""
    now = utcnow()
    checkpoints: list[Checkpoint] = []
    outputs: dict[str, bytes] = {}
    tops: list[str] = []
    left = per - 1
    first_tip = root.id
    for b in range(branches):
        length = left // (branches - b)
        left -= length
        parent = root
        for i in range(length):
            data = canonical_bytes({"t": tag, "b": b, "i": i,
                                    "detections": [{"box": [i, 1, i + 5, 8], "score": 0.5,
                                                    "label": "player"}]})
            h = content_hash(data)
            outputs[h] = data
            stage = _STAGES[i % len(_STAGES)]
            parent = Checkpoint(new_id(), root.timeline_id, parent.id,
                                {**parent.stage_hashes, stage: h},
                                {**parent.config_overrides, "model": "m1", "branch": b},
                                {**parent.stats, "i": i}, b > 0, f"try {b}" if b else "",
                                now, stage=stage)
            checkpoints.append(parent)
            if i == 0:
                tops.append(parent.id)
        if b == 0:
            first_tip = parent.id
    return checkpoints, outputs, first_tip, tops


def _open(args: dict[str, Any], **extra: Any) -> localckpt.Store:
    return localckpt.open(args["url"], objects=args.get("objects"),
                          storage_options=args.get("storage_options") or {}, create=True,
                          **{**args.get("options", {}), **extra})


def build_store(args: dict[str, Any], engine: str, timelines: int, per: int,
                branches: int = 1, built: Built | None = None) -> Built:
    """Add `timelines` timelines of `per` checkpoints each (root included) to the store
    that open args describe (engine: sqlite, duckdb or postgres); with built, grow it."""
    built = built or Built()
    t0 = time.perf_counter()
    extra = {"fsync": False} if engine == "sqlite" else {}
    store = _open(args, **extra)
    trees: list[tuple[list[Checkpoint], dict[str, bytes], dict[str, Checkpoint]]] = []
    catalog: Any = store.catalog  # the SQL catalog: its codecs, dialect and upsert
    sums_sql = catalog.engine.sql(catalog._q["add_sums"])
    codecs = catalog.codecs
    shards = catalog.dialect.sum_shards
    pending = 0
    start = len(built.timelines)
    try:
        for n in range(start, start + timelines):
            tl = store.create_timeline(f"video{n}.mp4", "bench", [_TINY], fps=2.0)
            root = store.get_checkpoint(tl.root_checkpoint_id)
            checkpoints, outputs, tip, tops = tree_of(root, per, branches, f"{n}")
            built.timelines.append(tl.id)
            built.tips.append(tip)
            built.branches.append(tops)
            if engine == "sqlite":
                if checkpoints:  # records built here from checked values, as a save's are
                    store.catalog.commit(Batch(checkpoints=checkpoints, outputs=outputs,
                                               validated=True))
                continue
            trees.append((checkpoints, outputs, {root.id: root}))
            pending += len(checkpoints)
            if pending >= _FLUSH:
                _bulk(store, engine, trees, codecs, shards, sums_sql)
                trees, pending = [], 0
        if trees:
            _bulk(store, engine, trees, codecs, shards, sums_sql)
        if engine == "postgres":
            _pg_analyze(store)
    finally:
        store.close()
    built.seconds += time.perf_counter() - t0
    return built


def _rows(trees: Sequence[tuple[list[Checkpoint], dict[str, bytes], dict[str, Checkpoint]]],
          codecs: dict[str, Any], shards: int
          ) -> tuple[list[tuple[Any, ...]], list[tuple[str, bytes]], list[tuple[str, str]],
                     list[tuple[str, int, int, int]]]:
    """The rows a commit of these trees writes: checkpoints, outputs, output_refs (the
    outputs each checkpoint adds over its parent) and tree_sums increments."""
    codec = codecs["checkpoint"]
    rows, outs, refs = [], [], []
    sums: defaultdict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for checkpoints, outputs, known in trees:
        by_id = dict(known)
        for c in checkpoints:
            by_id[c.id] = c
        for c in checkpoints:
            row = codec.row(c)
            rows.append(row)
            acc = sums[(c.timeline_id, row[-1] % shards)]
            acc[0] += 1
            acc[1] ^= row[-1]
            parent = by_id[c.parent_id] if c.parent_id else None
            for stage, h in c.stage_hashes.items():
                if parent is None or parent.stage_hashes.get(stage) != h:
                    refs.append((h, c.id))
        outs.extend(sorted(outputs.items()))
    return rows, outs, refs, [(t, s, n, x) for (t, s), (n, x) in sorted(sums.items())]


def _bulk(store: localckpt.Store, engine: str, trees: Any, codecs: dict[str, Any],
          shards: int, sums_sql: str) -> None:
    rows, outs, refs, sums = _rows(trees, codecs, shards)
    columns = {"checkpoints": codecs["checkpoint"].names, "outputs": ["hash", "data"],
               "output_refs": ["hash", "owner"]}
    data = {"checkpoints": rows, "outputs": outs, "output_refs": refs}
    if engine == "duckdb":
        _duckdb_bulk(store, columns, data, sums_sql, sums)
    else:
        _pg_bulk(store, columns, data, sums_sql, sums)


def _duckdb_bulk(store: localckpt.Store, columns: dict[str, list[str]],
                 data: dict[str, list[tuple[Any, ...]]], sums_sql: str,
                 sums: list[tuple[str, int, int, int]]) -> None:
    """An Arrow table per table, inserted in one transaction on the engine's connection."""
    import pyarrow as pa

    catalog: Any = store.catalog  # the SQL catalog
    engine = catalog.engine
    with engine.transaction() as tx:
        cur = tx._cur  # the engine's own cursor, inside its transaction
        for table, names in columns.items():
            rows = data[table]
            if not rows:
                continue
            arrow = pa.table({name: pa.array([r[i] for r in rows])
                              for i, name in enumerate(names)})
            cur.register("bulk_rows", arrow)
            cols = ", ".join(names)
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM bulk_rows")
            cur.unregister("bulk_rows")
        tx.execute(sums_sql, sums, many=True)


def _pg_bulk(store: localckpt.Store, columns: dict[str, list[str]],
             data: dict[str, list[tuple[Any, ...]]], sums_sql: str,
             sums: list[tuple[str, int, int, int]]) -> None:
    """COPY per table, in one transaction on a connection of the engine's pool."""
    catalog: Any = store.catalog  # the SQL catalog
    engine = catalog.engine
    with engine.transaction() as tx:
        conn = tx._conn
        for table, names in columns.items():
            with conn.cursor() as cur, cur.copy(
                    f"COPY {engine.prefix}{table} ({', '.join(names)}) FROM STDIN") as copy:
                for row in data[table]:
                    copy.write_row(row)
        tx.execute(sums_sql, sums, many=True)


def _pg_analyze(store: localckpt.Store) -> None:
    """Planner statistics after a bulk load, as autovacuum would gather soon after."""
    catalog: Any = store.catalog  # the SQL catalog
    engine = catalog.engine
    with engine.transaction() as tx:
        for table in ("timelines", "checkpoints", "outputs", "output_refs", "tree_sums",
                      "tombstones", "tags"):
            tx.execute(f"ANALYZE {engine.prefix}{table}")


def check_built(args: dict[str, Any]) -> list[str]:
    """Problems with a built store: what verify() reports, and any record a purge would
    remove from a store in which nothing is deleted. [] when the store is sound."""
    with _open(args) as store:
        problems = [f"{p.kind}: {p.message}" for p in store.verify().problems]
        removed = store.catalog.purge_deleted()
        if removed:
            problems.append(f"a purge with nothing deleted removed {removed} records")
    return problems


def build_saver(path: str, count: int, per: int) -> Built:
    """A SqliteSaver database of count checkpoints in count // per threads: one thread of
    real put calls, copied to the others in SQL (only one thread is read)."""
    from ..peers.langgraph import SaverPeer

    t0 = time.perf_counter()
    peer = SaverPeer("sqlite", path)
    ids: list[str] = []
    try:
        parent = None
        for i in range(per):
            parent = peer.put("thread0", parent, "detect", {"i": i, "box": [i, 1, i + 5, 8]})
            ids.append(parent)
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
    built = Built()
    built.timelines, built.tips = ["thread0"], [ids[-1]]
    built.branches = [ids[:: max(1, per // 50)][:50]]
    built.seconds = time.perf_counter() - t0
    return built


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
