"""The stage_runs workload's overhead rows alone (benchmarks.workloads.stage_runs
``_overhead``: 10,000 frames x 5 boxes put in chunks of 100 and committed, memo on and
off, against one save_stage_output of the same output) on sqlite+local, 3 repetitions
each, round-robin. Prints JSON: row label -> (wall s, CPU s) of each repetition. Run from
the checkout measured with ``PYTHONPATH=.`` (its localckpt and its benchmarks package);
argv[1] is the round (a new store each round)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from benchmarks.configs import Services, StoreConfig
from benchmarks.data import FramePool
from benchmarks.model import Context
from benchmarks.workloads.stage_runs import _overhead

N = 10_000


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix=f"round{sys.argv[1]}-"))
    config = StoreConfig("sqlite+local", root, Services())
    ctx = Context(root=root, quick=False, configs=[config], peers=False, notes=[],
                  frames=FramePool(4))
    rows = _overhead(ctx, config, N)
    out: dict[str, list[tuple[float, float]]] = {row.label: [] for row in rows}
    for _ in range(3):
        for row in rows:
            sample = row.run()
            out[row.label].append((sample.seconds, sample.extra["CPU s"]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
