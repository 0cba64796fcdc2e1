"""gc while writers save (issue 21): no save slower than 200 ms at p99.9.

A store of 250,000 checkpoints: 250 timelines, each a root with 10 branches of ~100
checkpoints, 4 branches of every timeline pruned (``Store.prune``: 1,000 pruned
subtrees, ~100,000 checkpoints and their outputs for gc to purge). Four writer processes
save 10-stage chains of 2 KB outputs into timelines of their own; after 3 s,
``localckpt.gc.collect_garbage`` runs in this process; the writers stop 1 s after it
returns. The store is built again for every repetition (a purge is done once).
"""

from __future__ import annotations

import time
from typing import Any

from .. import procs
from ..configs import StoreConfig, open_from_args
from ..model import Context, Goal, Sample, Subject, Workload
from ._bulk import build_store
from ._writers import percentile, run_writers

__all__ = ["GC_UNDER_LOAD"]

WRITERS = 4
BRANCHES, PRUNED = 10, 4
WARM, TAIL = 3.0, 1.0
QUICK_WARM, QUICK_TAIL = 0.5, 0.2
ROW = f" gc + {WRITERS} writers"


def _per(ctx: Context) -> int:
    return 100 if ctx.quick else 1000


def _prepared(ctx: Context, cfg: StoreConfig, size: int) -> tuple[dict[str, Any], float, int]:
    """A fresh store of size checkpoints with pruned subtrees: (open args, build seconds,
    checkpoints pruned)."""
    per = _per(ctx)
    tag = cfg.new_tag(f"gc{size}")
    args = cfg.open_args(tag)
    t0 = time.perf_counter()
    built = build_store(args, cfg.catalog, max(1, size // per), per, branches=BRANCHES)
    pruned = 0
    with open_from_args(args) as store:
        for tops in built.branches:
            for top in tops[BRANCHES - PRUNED:]:
                pruned += len(store.prune(top).checkpoints)
    return args, time.perf_counter() - t0, pruned


def _run(ctx: Context, cfg: StoreConfig, size: int) -> Sample:
    from localckpt.gc import collect_garbage

    args, built_in, pruned = _prepared(ctx, cfg, size)
    ctx.note(f"gc_under_load: {cfg.name} store of {size:,} checkpoints with "
             f"{max(1, size // _per(ctx)) * PRUNED:,} pruned subtrees ({pruned:,} "
             f"checkpoints) built in {built_in:.0f} s")
    marks: dict[str, Any] = {}
    warm, tail = (QUICK_WARM, QUICK_TAIL) if ctx.quick else (WARM, TAIL)
    with open_from_args(args) as store:
        def gc_while_saving() -> None:
            time.sleep(warm)
            marks["t0"] = time.monotonic()
            marks["report"] = collect_garbage(store)
            marks["t1"] = time.monotonic()
            time.sleep(tail)

        rep = time.monotonic_ns()
        w = run_writers(procs.store_worker, lambda i: (args, None, 0, f"{rep}-{i}"), WRITERS,
                        continuous=gc_while_saving)
    t0, t1 = marks["t0"], marks["t1"]
    during = w.latencies(t0, t1)
    before = w.latencies(end=t0)
    for message in w.messages[:3]:
        ctx.note(f"gc_under_load: {cfg.name}: {message}")
    return Sample(t1 - t0, units=max(1, marks["report"].records_purged), extra={
        "p50 ms": percentile(during, 50) * 1e3, "p99 ms": percentile(during, 99) * 1e3,
        "p99.9 ms": percentile(during, 99.9) * 1e3, "max ms": max(during, default=0) * 1e3,
        "saves during gc": float(len(during)),
        "saves/s during gc": len(during) / max(t1 - t0, 1e-9),
        "p99.9 ms before gc": percentile(before, 99.9) * 1e3,
        "saves/s before gc": len(before) / warm,
        "records purged": float(marks["report"].records_purged),
        "errors": float(w.errors)})


def _build(ctx: Context, size: int) -> list[Subject]:
    subjects = []
    for cfg in ctx.configs:
        if cfg.objects_kind != "local":
            continue  # the purge is the catalog's: one row per catalog
        if not cfg.multiprocess:
            ctx.note(f"gc_under_load: {cfg.name} left out: its catalog takes one process at "
                     "a time (DuckDB), and the writers are processes")
            continue
        def run(c: StoreConfig = cfg) -> Sample:
            return _run(ctx, c, size)

        subjects.append(Subject(cfg.name + ROW, run, config=cfg.name))
    return subjects


GC_UNDER_LOAD = Workload(
    name="gc_under_load",
    title=f"collect_garbage purging pruned subtrees while {WRITERS} processes save",
    unit="records purged", size_name="checkpoints in the store",
    sizes=(250_000,), quick_sizes=(2_000,), reps=1, quick_reps=1,
    build=_build, cost_label="s per purge",
    goals=(Goal("no save slower than 200 ms at p99.9 while gc purges",
                lambda s: s.endswith(ROW), "max", 200.0, key="p99.9 ms"),
           Goal("no errors", lambda s: s.endswith(ROW), "max", 0.0, key="errors")),
    notes=("Median: the duration of collect_garbage (the purge and the object sweep); rate: "
           "records purged per second. Latency details cover the saves that ran while gc "
           "did ('before gc': the 3 s before it started). Writers and gc share the 2 "
           "busy cores of this machine. Durability as in save_chain (gc's own commits "
           "too).",),
)
