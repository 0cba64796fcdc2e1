"""The stage_runs workload's overhead rows alone: 10,000 frames x 5 boxes put in chunks
of 100 and committed (memo on, then off) against one save_stage_output of the same
output, 3 repetitions each, in a fresh embedded store (fsync on). Prints JSON: per row,
(wall s, CPU s) of each repetition. Run with PYTHONPATH set to the checkout measured
(its localckpt, and its benchmarks package for the values);
argv[1] is the round (it keeps stage versions distinct between rounds)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import numpy as np

import localckpt
from benchmarks.workloads.stage_runs import _values as values

N = 10_000
CHUNK = 100


def main() -> None:
    store = localckpt.open(os.path.join(tempfile.mkdtemp(), "s"), create=True)
    pixels = np.random.default_rng(0).integers(0, 256, (N, 4, 4, 3), dtype=np.uint8)
    tid = str(store.create_timeline("b.mp4", "b", pixels, codec="png").id)
    reps = iter(range(int(sys.argv[1]) * 100, 1 << 30))

    def save() -> tuple[float, float]:
        v = values(N, next(reps))
        t0, c0 = time.perf_counter(), time.process_time()
        store.save_stage_output(tid, None, "detect", {"frames": {str(s): x for s, x in v.items()}})
        return time.perf_counter() - t0, time.process_time() - c0

    def run(memo: bool) -> tuple[float, float]:
        rep = next(reps)
        v = values(N, rep)
        t0, c0 = time.perf_counter(), time.process_time()
        r = store.begin_run(tid, None, "detect", version=f"rep{rep}", memo=memo)
        for i in range(0, N, CHUNK):
            r.put({s: v[s] for s in range(i, min(i + CHUNK, N))})
        r.commit()
        return time.perf_counter() - t0, time.process_time() - c0

    out: dict[str, list[tuple[float, float]]] = {"save": [], "memo": [], "nomemo": []}
    for _ in range(3):
        out["save"].append(save())
        out["memo"].append(run(True))
        out["nomemo"].append(run(False))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
