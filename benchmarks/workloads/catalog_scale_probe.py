"""One fresh process against a big store: ``python catalog_scale_probe.py '<json>'``.

Run as a script (not ``-m benchmarks...``), so that nothing but the standard library is
imported before the step it measures: the import of localckpt is the first step.

Argument: JSON ``{"mode": "store" | "saver", ...}``. Prints one JSON line of wall
seconds per step, the CPU seconds of this process per step (``cpu_<step>``: on a
machine whose cores are shared by many jobs, the wall time of a CPU-bound step includes
waiting for a core; its CPU time does not) and the process's peak RSS (bytes).

- store: import localckpt; open; list_timelines; the tree of one timeline; the lineage
  of another timeline's tip (a chain as deep as the timeline); ``get_checkpoint`` of ids
  spread over the store (the median call, and the catalog's own read of one id); one
  durable save under a third timeline's tip (its parent is read from disk, as a
  pipeline's first save is);
- saver: import LangGraph's SqliteSaver, connect, ``list`` one thread, ``get_tuple``
  of ids of that thread (the median call).
"""

from __future__ import annotations

import os
import sys

# this directory holds modules named like the standard library's (concurrent): not a path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
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


def _each(fn, ids: list) -> tuple[float, float]:
    """Median (wall, CPU) seconds of fn(id) over ids."""
    walls, cpus = [], []
    for i in ids:
        c0, t0 = time.process_time(), time.perf_counter()
        fn(i)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


class _Clock:
    """Wall and CPU seconds of consecutive steps."""

    def __init__(self) -> None:
        self.out: dict = {}
        self._t, self._c = time.perf_counter(), time.process_time()

    def step(self, name: str) -> None:
        t, c = time.perf_counter(), time.process_time()
        self.out[name], self.out["cpu_" + name] = t - self._t, c - self._c
        self._t, self._c = t, c


def _store(spec: dict) -> dict:
    clock = _Clock()
    import localckpt

    clock.step("import")
    a = spec["open"]
    store = localckpt.open(a["url"], objects=a.get("objects"),
                           storage_options=a.get("storage_options") or {},
                           **a.get("options", {}))
    clock.step("open")
    n = len(store.list_timelines())
    clock.step("list")
    tree = len(store.checkpoints(spec["tree"]))
    clock.step("tree")
    depth = len(store.lineage(spec["lineage"]))
    clock.step("lineage")
    by_id = _each(store.get_checkpoint, spec["by_id"])
    catalog_by_id = _each(lambda i: store.catalog.checkpoints([i]), spec["by_id"][::-1])
    clock.step("ids")
    store.save_stage_output(spec["save_timeline"], spec["save_parent"], "probe",
                            {"at": time.time()})
    clock.step("save")
    store.close()
    out = clock.out
    out.update(by_id=by_id[0], cpu_by_id=by_id[1], catalog_by_id=catalog_by_id[0],
               timelines=n, tree_size=tree, depth=depth)
    if spec.get("bare"):
        out.update(_bare(spec))
    return out


_LINEAGE = ("WITH RECURSIVE chain(id, depth) AS (SELECT id, 0 FROM checkpoints WHERE id = ? "
            "UNION ALL SELECT c.parent_id, chain.depth + 1 FROM checkpoints c JOIN chain "
            "ON c.id = chain.id WHERE c.parent_id IS NOT NULL) SELECT k.* FROM chain "
            "JOIN checkpoints k ON k.id = chain.id ORDER BY chain.depth DESC")


def _bare(spec: dict) -> dict:
    """The floor: the same reads with the standard library's sqlite3 on the same file,
    rows fetched as tuples (no records, no digests, no visibility)."""
    import sqlite3

    clock = _Clock()
    con = sqlite3.connect(spec["bare"])
    con.execute("SELECT id FROM timelines ORDER BY id").fetchall()
    clock.step("bare_open_list")
    con.execute("SELECT * FROM checkpoints WHERE timeline_id = ? ORDER BY id",
                (spec["tree"],)).fetchall()
    clock.step("bare_tree")
    con.execute(_LINEAGE, (spec["lineage"],)).fetchall()
    clock.step("bare_lineage")
    wall, cpu = _each(lambda i: con.execute("SELECT * FROM checkpoints WHERE id = ?",
                                            (i,)).fetchall(), spec["by_id"])
    con.close()
    return {**clock.out, "bare_by_id": wall, "cpu_bare_by_id": cpu}


def _saver(spec: dict) -> dict:
    clock = _Clock()
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    clock.step("import")
    con = sqlite3.connect(spec["path"], check_same_thread=False)
    saver = SqliteSaver(con)
    clock.step("open")
    rows = list(saver.list({"configurable": {"thread_id": "thread0", "checkpoint_ns": ""}}))
    clock.step("list_thread")
    by_id = _each(lambda i: saver.get_tuple({"configurable": {
        "thread_id": "thread0", "checkpoint_ns": "", "checkpoint_id": i}}), spec["by_id"])
    con.close()
    out = clock.out
    out.update(by_id=by_id[0], cpu_by_id=by_id[1], tree_size=len(rows))
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    out = _store(spec) if spec["mode"] == "store" else _saver(spec)
    out["peak_rss"] = _peak()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
