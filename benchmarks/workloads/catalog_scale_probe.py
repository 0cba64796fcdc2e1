"""One fresh process against a big store: ``python catalog_scale_probe.py '<json>'``.

Run as a script (not ``-m benchmarks...``), so that nothing but the standard library is
imported before the step it measures: the import of localckpt is the first step.

Argument: JSON ``{"mode": "store" | "saver", ...}``. Prints one JSON line of wall
seconds per step and the process's peak RSS (bytes).

- store: import localckpt, open, list_timelines, tree of one timeline, lineage of
  another timeline's tip (a chain as deep as the timeline), one durable save under a
  third timeline's tip (its parent is read from disk, as a pipeline's first save is);
- saver: import LangGraph's SqliteSaver, connect, ``list`` one thread.
"""

from __future__ import annotations

import os
import sys

# this directory holds modules named like the standard library's (concurrent): not a path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402


def _peak() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _store(spec: dict) -> dict:
    t = [time.perf_counter()]
    import localckpt

    t.append(time.perf_counter())
    a = spec["open"]
    store = localckpt.open(a["url"], objects=a.get("objects"),
                           storage_options=a.get("storage_options") or {},
                           **a.get("options", {}))
    t.append(time.perf_counter())
    n = len(store.list_timelines())
    t.append(time.perf_counter())
    tree = len(store.checkpoints(spec["tree"]))
    t.append(time.perf_counter())
    depth = len(store.lineage(spec["lineage"]))
    t.append(time.perf_counter())
    store.save_stage_output(spec["save_timeline"], spec["save_parent"], "probe",
                            {"at": time.time()})
    t.append(time.perf_counter())
    extra = {}
    stats = getattr(store.catalog, "stats", None)
    if stats is not None:
        extra["records_read"] = stats.get("records_read", 0)
    store.close()
    steps = ("import", "open", "list", "tree", "lineage", "save")
    out = {k: t[i + 1] - t[i] for i, k in enumerate(steps)}
    out.update(timelines=n, tree_size=tree, depth=depth, **extra)
    return out


def _saver(spec: dict) -> dict:
    t0 = time.perf_counter()
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    t1 = time.perf_counter()
    con = sqlite3.connect(spec["path"], check_same_thread=False)
    saver = SqliteSaver(con)
    t2 = time.perf_counter()
    rows = list(saver.list({"configurable": {"thread_id": "thread0", "checkpoint_ns": ""}}))
    t3 = time.perf_counter()
    con.close()
    return {"import": t1 - t0, "open": t2 - t1, "list_thread": t3 - t2, "tree_size": len(rows)}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    out = _store(spec) if spec["mode"] == "store" else _saver(spec)
    out["peak_rss"] = _peak()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
