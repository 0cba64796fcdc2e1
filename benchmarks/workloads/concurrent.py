"""Several processes saving at once into the same store (and the same peer database).

Issue 22: 8 processes saving at once make no errors, and their aggregate rate is no
lower than one process's. Each size is a number of processes; every row is measured
beside the same configuration with one process, in the same round.
"""

from __future__ import annotations

import time
from typing import Any

from .. import procs
from ..model import Context, Goal, Sample, Subject, Workload
from ..peers.langgraph import SaverPeer
from ._ckpt import SQLITE_SAVER, new_timeline
from ._common import peer_available, shared_store
from ._writers import run_writers

__all__ = ["SAVE_PROCS"]

ONE = ", 1 process"


def _per(ctx: Context) -> int:
    return 20 if ctx.quick else 400


def _store_run(ctx: Context, store: Any, args: dict[str, Any], procs_: int, n: int) -> Sample:
    tid = new_timeline(store).id
    rep = time.monotonic_ns()
    w = run_writers(procs.store_worker, lambda i: (args, tid, n, f"{rep}-{i}"), procs_)
    for message in w.messages[:3]:
        ctx.note(f"save_procs: {procs_} processes: {message}")
    return w.sample(processes=float(procs_))


def _saver_run(path: str, procs_: int, n: int) -> Sample:
    rep = time.monotonic_ns()
    w = run_writers(procs.saver_worker, lambda i: ("sqlite", path, n, f"{rep}-{i}"), procs_)
    return w.sample(processes=float(procs_))


def _build(ctx: Context, p: int) -> list[Subject]:
    n = _per(ctx)
    subjects = []
    for cfg in ctx.configs:
        if not cfg.multiprocess:
            ctx.note(f"save_procs: {cfg.name} left out: its catalog takes one process at a "
                     "time (DuckDB)")
            continue
        if cfg.catalog == "postgres":
            continue  # many processes on PostgreSQL: pg_writers
        store, tag = shared_store(ctx, cfg, "save_procs")
        args = cfg.open_args(tag)
        subjects.append(Subject(cfg.name, lambda s=store, a=args: _store_run(ctx, s, a, p, n),
                                config=cfg.name))
        if p > 1:
            subjects.append(Subject(cfg.name + ONE, lambda s=store, a=args: _store_run(
                ctx, s, a, 1, n), role="reference", config=cfg.name))
    if ctx.peers and peer_available(ctx, "sqlite", SQLITE_SAVER):
        path = str(ctx.root / f"save-procs-{p}.sqlite")
        SaverPeer("sqlite", path).close()  # tables created before the writers race
        subjects.append(Subject(SQLITE_SAVER, lambda: _saver_run(path, p, n), role="peer"))
    return subjects


def _is_ours(label: str) -> bool:
    return label.startswith("sqlite+") and not label.endswith(ONE)


SAVE_PROCS = Workload(
    name="save_procs",
    title="save_stage_output from several processes at once (same store)",
    unit="saves", size_name="processes",
    sizes=(1, 2, 4, 8), quick_sizes=(2,), reps=3, quick_reps=1,
    build=_build, baseline=SQLITE_SAVER,
    goals=(
        Goal("no errors", _is_ours, "max", 0.0, key="errors"),
        Goal("aggregate rate >= 1 process's (same store, same round)",
             lambda s: _is_ours(s), "rate", 1.0, against=lambda s: s + ONE),
    ),
    notes=("Each process opens the store itself, then all are released by a barrier; "
           "time runs from the first start to the last finish; rate counts every process's "
           "saves (400 each: 10-stage chains of 2 KB outputs, all processes in one "
           "timeline). Process start-up and imports are not timed. Durability as in "
           "save_chain. The SqliteSaver row runs the same number of processes, each with "
           "its own connection to one database file. PostgreSQL with many processes: "
           "pg_writers.",),
)
