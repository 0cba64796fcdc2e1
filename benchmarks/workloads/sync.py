"""localckpt.sync: first pull to a laptop store, a second (no-op) sync, pushing a new branch.

Pairs: each configuration as the source ("production") and a fresh sqlite+local store (the
embedded default) as the destination ("laptop"); the push goes back the other way.
"""

from __future__ import annotations

import time
from typing import Any

from ..configs import EMBEDDED, StoreConfig
from ..model import Context, Sample, Subject, Workload
from ._ckpt import chain_outputs, fresh, save_chains
from ._common import cached, shared_store

__all__ = ["SYNC_FIRST", "SYNC_PUSH", "SYNC_SECOND"]

FRAMES = 20


def _laptop(ctx: Context) -> StoreConfig | None:
    return next((c for c in ctx.configs if c.name == EMBEDDED), None)


def _source(ctx: Context, cfg: StoreConfig, n: int) -> tuple[Any, str]:
    """A store on cfg holding one 20-frame timeline whose tree has n checkpoints."""
    store, _ = shared_store(ctx, cfg, "sync_src")

    def make() -> str:
        tl = store.create_timeline("bench.mp4", "bench", ctx.frames.take(FRAMES))
        save_chains(lambda p, s, o: store.save_stage_output(tl.id, p, s, o),
                    chain_outputs(ctx, n))
        return str(tl.id)

    return store, cached(ctx, f"syncsrc:{cfg.name}:{n}", make)


def _timed_sync(src: Any, dst: Any, tid: str) -> Sample:
    from localckpt.sync import sync

    t0 = time.perf_counter()
    report = sync(src, dst, tid)
    seconds = time.perf_counter() - t0
    return Sample(seconds, units=max(1, report.checkpoints), extra={
        "round trips": report.round_trips, "checkpoints copied": report.checkpoints,
        "objects copied": report.objects, "MB copied": report.bytes / 1e6})


def _pairs(ctx: Context) -> list[tuple[StoreConfig, StoreConfig]]:
    laptop = _laptop(ctx)
    if laptop is None:
        ctx.note(f"sync workloads need the {EMBEDDED} configuration (the laptop side)")
        return []
    return [(cfg, laptop) for cfg in ctx.configs]


def _build_first(ctx: Context, n: int) -> list[Subject]:
    subjects = []
    for cfg, laptop in _pairs(ctx):
        src, tid = _source(ctx, cfg, n)

        def run(src: Any = src, tid: str = tid, laptop: StoreConfig = laptop) -> Sample:
            tag = laptop.new_tag("sync_dst")
            dst = laptop.open(tag)
            try:
                return _timed_sync(src, dst, tid)
            finally:
                dst.close()
                laptop.drop(tag)

        subjects.append(Subject(f"{cfg.name} -> {laptop.name}", run, config=cfg.name))
    return subjects


def _synced_copy(ctx: Context, cfg: StoreConfig, laptop: StoreConfig, n: int,
                 purpose: str) -> tuple[Any, Any, str]:
    from localckpt.sync import sync

    src, tid = _source(ctx, cfg, n)

    def make() -> Any:
        dst = laptop.open(laptop.new_tag(f"{purpose}_{n}"))
        sync(src, dst, tid)
        return dst

    return src, cached(ctx, f"{purpose}:{cfg.name}:{n}", make), tid


def _build_second(ctx: Context, n: int) -> list[Subject]:
    subjects = []
    for cfg, laptop in _pairs(ctx):
        src, dst, tid = _synced_copy(ctx, cfg, laptop, n, "sync_second")
        subjects.append(Subject(f"{cfg.name} -> {laptop.name}",
                                lambda s=src, d=dst, t=tid: _timed_sync(s, d, t),
                                config=cfg.name))
    return subjects


def _build_push(ctx: Context, n: int) -> list[Subject]:
    subjects = []
    for cfg, laptop in _pairs(ctx):
        src, dst, tid = _synced_copy(ctx, cfg, laptop, n, "sync_push")
        branch = chain_outputs(ctx, 10)

        def run(src: Any = src, dst: Any = dst, tid: str = tid,
                branch: list[Any] = branch) -> Sample:
            save_chains(lambda p, s, o: dst.save_stage_output(tid, p, s, o), fresh(branch))
            return _timed_sync(dst, src, tid)

        subjects.append(Subject(f"{laptop.name} -> {cfg.name}", run, config=cfg.name))
    return subjects


_COMMON = dict(unit="checkpoints", size_name="checkpoints in the tree",
               sizes=(100, 1000, 5000), quick_sizes=(10, 30), reps=3)

SYNC_FIRST = Workload(
    name="sync_first", title="First sync of a timeline into an empty laptop store",
    build=_build_first, **_COMMON,  # type: ignore[arg-type]
    notes=(f"The timeline has {FRAMES} frames (1280x720 JPEG) and a tree of n/10 chains of "
           "10 stages with 2 KB outputs; destination: a fresh sqlite+local store per "
           "repetition.",),
)

SYNC_SECOND = Workload(
    name="sync_second", title="Second sync of the same timeline (nothing to copy)",
    build=_build_second, cost_label="s per sync", **_COMMON,  # type: ignore[arg-type]
    notes=("Rate counts one unit per sync (nothing is copied); the round-trip count should "
           "not depend on the tree size.",),
)

SYNC_PUSH = Workload(
    name="sync_push", title="Push a new 10-checkpoint branch back from the laptop",
    build=_build_push, cost_label="s per push", **_COMMON,  # type: ignore[arg-type]
    notes=("Each repetition saves a new 10-stage branch on the laptop store (not timed), "
           "then syncs laptop -> source: only the branch travels.",),
)
