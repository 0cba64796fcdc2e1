"""Two PostgreSQL stores on one durable throwaway cluster, one with its outputs kept
inline (``toast_tuple_target = 8160``, what migration 17 sets), 200-save chains of 2.8 KB
outputs alternated for 16 rounds. Prints each round's median microseconds a save per
store and the size of each outputs table. Run from a checkout with ``PYTHONPATH=.``."""

from __future__ import annotations

import random
import statistics
import string
import tempfile
import time
from typing import Any

import numpy as np
import psycopg

import localckpt
from backends.postgres import ThrowawayPostgres

_RND = random.Random(0)


def _output(i: int) -> dict[str, Any]:
    return {"i": i, "items": [
        {"label": "".join(_RND.choices(string.ascii_letters, k=8)), "score": _RND.random(),
         "box": [_RND.random() for _ in range(4)]} for _ in range(20)]}


def main() -> None:
    with ThrowawayPostgres(durable=True) as pg:
        stores = {}
        for name in ("a", "b"):
            store = localckpt.open(pg.dsn, objects=tempfile.mkdtemp(), create=True,
                                   schema=f"s_{name}")
            frames = np.zeros((2, 4, 4, 3), np.uint8)
            stores[name] = (store, store.create_timeline("v.mp4", "p", frames, fps=2.0).id)
        with psycopg.connect(pg.dsn, autocommit=True) as con:
            con.execute("ALTER TABLE s_a.outputs RESET (toast_tuple_target)")  # before
            con.execute("ALTER TABLE s_b.outputs SET (toast_tuple_target = 8160)")
        outputs = [_output(i) for i in range(6400)]
        k = 0
        medians: dict[str, list[float]] = {"a": [], "b": []}
        for round_ in range(16):
            for name in ("ab" if round_ % 2 else "ba"):
                store, tid = stores[name]
                parent = None
                took = []
                for j in range(200):
                    t0 = time.perf_counter()
                    parent = store.save_stage_output(tid, parent, f"s{j % 10}", outputs[k])
                    took.append(time.perf_counter() - t0)
                    k += 1
                    if j % 10 == 9:
                        parent = None
                medians[name].append(statistics.median(took) * 1e6)
        with psycopg.connect(pg.dsn, autocommit=True) as con:
            for name, label in (("a", "default"), ("b", "inline")):
                (size,) = con.execute(
                    f"SELECT pg_total_relation_size('s_{name}.outputs')").fetchone() or (0,)
                print(label, [round(x) for x in medians[name]],
                      "median", round(statistics.median(medians[name])), "bytes", size)


if __name__ == "__main__":
    main()
