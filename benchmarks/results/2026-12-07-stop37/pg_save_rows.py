"""save_chain (1,000 chained ~2 KB saves) of postgres+local and PostgresSaver on one
durable throwaway cluster, built by the workload's own builders, in one process. Prints
JSON: row label -> (wall s, CPU s, saves) of each repetition. Run from the checkout
measured with ``PYTHONPATH=.``; argv[1] is the round, argv[2] the repetitions."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

from benchmarks.configs import Services, StoreConfig
from benchmarks.data import FramePool
from benchmarks.model import Context
from benchmarks.workloads.saves import _build_chain

MEASURED = ("postgres+local", "postgres-saver")


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix=f"round{sys.argv[1]}-"))
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    services = Services()
    try:
        config = StoreConfig("postgres+local", root, services)
        ctx = Context(root=root, quick=False, configs=[config], peers=True, notes=[],
                      frames=FramePool(4))
        rows = [("chain " + s.label, s) for s in _build_chain(ctx, 1000)
                if s.label in MEASURED]
        out: dict[str, list[tuple[float, float, int]]] = {label: [] for label, _ in rows}
        for _ in range(reps):
            for label, row in rows:
                before = _cpu()
                sample = row.run()
                out[label].append((sample.seconds, _cpu() - before, sample.units))
        print(json.dumps(out))
    finally:
        services.close()


if __name__ == "__main__":
    main()
