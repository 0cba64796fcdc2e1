"""What a durable save's SQL costs, without Python: record the statements of 2,000 real
chained saves (fsync off while recording), then replay them in bare sqlite3 (WAL,
``synchronous=FULL``) on copies of the catalog as it was before them, with layout
variants, beside SqliteSaver's insert of the same size. Prints, per variant, the median
and mean microseconds a commit and the WAL written a commit (pages of 4 KB, or KB).

Variants (argv, default all): ``all`` (our five statements), ``notail`` (no short-id
index), ``norefs`` (no output reference), ``nosums`` (no tree sums), joined with ``-``;
``psN`` (page size N). Run from a checkout with ``PYTHONPATH=.``."""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np

import localckpt
from localckpt.ids import new_id

_TABLES = ("tombstones", "outputs", "checkpoints", "output_refs", "tree_sums")
Recorded = list[list[tuple[str, Any, bool]]]


def _record(root: str) -> Recorded:
    store = localckpt.open(os.path.join(root, "s"), create=True, fsync=False)
    tid = store.create_timeline("b.mp4", "b", np.zeros((4, 4, 4, 3), np.uint8)).id
    rnd = np.random.default_rng(0)

    def chain(n: int) -> None:
        parent = None
        for k in range(n):
            out = {"i": k, "items": [{"score": float(s), "box": rnd.random(4).tolist()}
                                     for s in rnd.random(20)]}
            parent = store.save_stage_output(tid, None if k % 10 == 0 else parent,
                                             f"s{k % 10}", out)

    chain(1000)
    engine: Any = store.catalog.engine
    engine._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(os.path.join(root, "s", "catalog.sqlite"), os.path.join(root, "base.sqlite"))
    recorded: Recorded = []
    write = type(engine).write

    def recording(self: Any, steps: Any) -> None:
        recorded.append([(s.statement, s.params, s.many) for s in steps])
        write(self, steps)

    type(engine).write = recording
    try:
        chain(2000)
    finally:
        type(engine).write = write
    return recorded


def _connect(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "wal_autocheckpoint=0"):
        con.execute(f"PRAGMA {pragma}")
    return con


def _replay(root: str, recorded: Recorded, variant: str) -> tuple[float, float, float]:
    page = int(variant[2:]) if variant.startswith("ps") else 4096
    path = os.path.join(root, f"v{time.time_ns()}.sqlite")
    shutil.copy(os.path.join(root, "base.sqlite"), path)
    if page != 4096:
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute(f"PRAGMA page_size={page}")
        con.execute("VACUUM")
        con.close()
    con = _connect(path)
    if "notail" in variant:
        con.execute("DROP INDEX checkpoints_tail")
    skip = {t for t, v in (("output_refs", "norefs"), ("tree_sums", "nosums"))
            if v in variant}
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    times = []
    for steps in recorded:
        t0 = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        for sql, params, many in steps:
            table = next((t for t in _TABLES if f" {t} " in sql), "")
            if table in skip:
                continue
            if many:
                con.executemany(sql, params)
            else:
                con.execute(sql, params).fetchall()
        con.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    wal = os.path.getsize(path + "-wal") / len(recorded)
    con.close()
    return statistics.median(times) * 1e6, statistics.mean(times) * 1e6, wal / 1024


def _saver(root: str, n: int) -> tuple[float, float, float]:
    path = os.path.join(root, f"saver{time.time_ns()}.sqlite")
    con = _connect(path)
    con.execute("CREATE TABLE checkpoints (thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT "
                "NULL DEFAULT '', checkpoint_id TEXT NOT NULL, parent_checkpoint_id TEXT, "
                "type TEXT, checkpoint BLOB, metadata BLOB, PRIMARY KEY (thread_id, "
                "checkpoint_ns, checkpoint_id))")
    insert = "INSERT OR REPLACE INTO checkpoints VALUES ('t', '', ?, NULL, 'msgpack', ?, ?)"
    for _ in range(1000):
        con.execute(insert, (new_id(), os.urandom(2100), b'{"step":1}'))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute(insert, (new_id(), os.urandom(2100), b'{"step":1}'))
        con.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    wal = os.path.getsize(path + "-wal") / n
    con.close()
    return statistics.median(times) * 1e6, statistics.mean(times) * 1e6, wal / 1024


def main() -> None:
    root = tempfile.mkdtemp()
    recorded = _record(root)
    variants = sys.argv[1:] or ["all", "notail", "norefs", "nosums",
                                "notail-norefs-nosums", "ps2048"]
    def line(label: str, figures: tuple[float, float, float]) -> str:
        median, mean, wal = figures
        return f"{label}: median {median:.0f} us, mean {mean:.0f} us, WAL {wal:.1f} KB a commit"

    for _ in range(2):
        print(line("saver", _saver(root, len(recorded))))
        for v in variants:
            print(line(v, _replay(root, recorded, v)))


if __name__ == "__main__":
    main()
