"""Two processes saving at once into the same store (and the same peer database)."""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Callable
from typing import Any

from .. import procs
from ..model import Context, Sample, Subject, Workload
from ..peers.langgraph import SaverPeer
from ._ckpt import SQLITE_SAVER, new_timeline
from ._common import peer_available, postgres_schema_dsn, shared_store
from .saves import SAVE_GOALS

__all__ = ["SAVE_TWO_PROCS"]

_MP = mp.get_context("spawn")


def _two(target: Callable[..., None], args: Callable[[int], tuple[Any, ...]], n: int) -> Sample:
    """Start two writers, release them together, wall time from first start to last end."""
    barrier = _MP.Barrier(3)
    results = _MP.Queue()
    workers = [_MP.Process(target=target, args=(*args(i), barrier, results)) for i in range(2)]
    for w in workers:
        w.start()
    spans: list[tuple[float, float]] = []
    try:
        _wait(lambda: barrier.n_waiting >= 2, workers, "open the store")
        barrier.wait(timeout=10)
        deadline = time.monotonic() + 900
        while len(spans) < len(workers):
            try:
                spans.append(results.get(timeout=0.2))
            except queue.Empty:
                if any(w.exitcode not in (None, 0) for w in workers):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("writers did not finish in 900 s") from None
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
                w.join()
    if len(spans) < len(workers) or any(w.exitcode for w in workers):
        raise RuntimeError(f"a writer process failed (exit codes {[w.exitcode for w in workers]})")
    wall = max(s[1] for s in spans) - min(s[0] for s in spans)
    return Sample(wall, units=2 * n)


def _wait(ready: Callable[[], bool], workers: list[Any], what: str) -> None:
    """Wait until ready(), failing fast when a worker dies first."""
    deadline = time.monotonic() + 120
    while not ready():
        if any(w.exitcode is not None for w in workers):
            raise RuntimeError(f"a writer process exited before it could {what} "
                               f"(exit codes {[w.exitcode for w in workers]})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"writers did not {what} within 120 s")
        time.sleep(0.02)


def _build(ctx: Context, n: int) -> list[Subject]:
    subjects = []
    for cfg in ctx.configs:
        store, tag = shared_store(ctx, cfg, "two_procs")
        args = cfg.open_args(tag)

        def run(store: Any = store, args: dict[str, Any] = args) -> Sample:
            tid = new_timeline(store).id
            rep = time.monotonic_ns()
            return _two(procs.store_worker, lambda i: (args, tid, n, f"{rep}-{i}"), n)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if ctx.peers and peer_available(ctx, "sqlite", SQLITE_SAVER):
        path = str(ctx.root / f"two-procs-{n}.sqlite")
        SaverPeer("sqlite", path).close()  # tables created before the writers race
        subjects.append(Subject(SQLITE_SAVER, lambda: _two(
            procs.saver_worker, lambda i: ("sqlite", path, n, f"{time.monotonic_ns()}-{i}"), n),
            role="peer"))
        dsn = postgres_schema_dsn(ctx, f"lg_two_procs_{n}")
        if dsn is not None and peer_available(ctx, "postgres", "postgres-saver"):
            SaverPeer("postgres", dsn).close()
            subjects.append(Subject("postgres-saver", lambda: _two(
                procs.saver_worker, lambda i: ("postgres", dsn, n, f"{time.monotonic_ns()}-{i}"),
                n), role="peer"))
    return subjects


SAVE_TWO_PROCS = Workload(
    name="save_two_procs",
    title="save_stage_output from two processes at once (same store)",
    unit="saves", size_name="saves per process",
    sizes=(100, 1000, 3000), quick_sizes=(10, 20, 40), reps=3, quick_reps=1,
    build=_build, baseline=SQLITE_SAVER, goals=SAVE_GOALS[:1],
    notes=("Each process opens the store itself, then both are released by a barrier; "
           "time runs from the first start to the last finish; rate counts both "
           "processes' saves. Process start-up and imports are not timed.",),
)
