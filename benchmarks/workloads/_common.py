"""Helpers shared by workloads: cached stores and timelines, peers, timing."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..configs import StoreConfig
from ..model import Context, Sample, Subject
from ..peers import langgraph as lg

__all__ = [
    "TINY_FRAME",
    "cached",
    "cpu_seconds",
    "frames_timeline",
    "peer_available",
    "saver",
    "shared_store",
    "timed",
]

TINY_FRAME = np.zeros((8, 8, 3), np.uint8)


def cpu_seconds() -> float:
    """CPU time of this process, every thread, user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Callable[[], Any], *, ops: int = 1, units: float = 1.0) -> Sample:
    """Wall time of fn(), with the CPU it used as a share of one core ("CPU %": 200 means
    both cores of this machine were busy, for the threaded frame paths)."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    return Sample(wall, ops=ops, units=units,
                  extra={"CPU %": 100 * (cpu_seconds() - c0) / wall if wall else 0.0})


def cached(ctx: Context, key: str, make: Callable[[], Any]) -> Any:
    """Build once per run (stores, timelines and chains reused across workloads)."""
    if key not in ctx.cache:
        ctx.cache[key] = make()
    return ctx.cache[key]


def shared_store(ctx: Context, config: StoreConfig, purpose: str, **options: Any) -> Any:
    """A store kept open for the whole run (closed by the runner at the end)."""
    key = f"store:{config.name}:{purpose}:{sorted(options.items())}"

    def make() -> tuple[Any, str]:
        tag = config.new_tag(purpose)
        return config.open(tag, **options), tag

    return cached(ctx, key, make)


def frames_timeline(ctx: Context, config: StoreConfig, n: int) -> tuple[Any, str, str]:
    """(store, tag, timeline id) of an n-frame 1280x720 timeline on config."""
    store, tag = shared_store(ctx, config, "frames")

    def make() -> str:
        return str(store.create_timeline("bench.mp4", "bench", ctx.frames.take(n)).id)

    return store, tag, cached(ctx, f"timeline:{config.name}:{n}", make)


def peer_available(ctx: Context, kind: str, label: str) -> bool:
    """True when the LangGraph package for kind imports; else noted in the report."""
    reason = lg.missing_reason(kind)
    if reason is not None:
        ctx.note(f"peer {label} skipped: {reason}")
    return reason is None


def saver(ctx: Context, kind: str, label: str, **kwargs: Any) -> lg.SaverPeer | None:
    """A LangGraph saver on a fresh database, or None (noted) when the package is missing."""
    reason = lg.missing_reason(kind)
    if reason is not None:
        ctx.note(f"peer {label} skipped: {reason}")
        return None
    if kind == "sqlite":
        target = str(ctx.root / f"lg-{len(ctx.cache)}-{time.monotonic_ns()}.sqlite")
    else:
        target = postgres_schema_dsn(ctx, f"lg_{len(ctx.cache)}_{time.monotonic_ns() % 10**9}")
        if target is None:
            return None
    peer = lg.SaverPeer(kind, target, **kwargs)
    ctx.cache[f"closer:{id(peer)}"] = peer
    return peer


def postgres_schema_dsn(ctx: Context, schema: str) -> str | None:
    """The run's PostgreSQL DSN with search_path set to a new schema; None without one."""
    pg = [c for c in ctx.configs if c.catalog == "postgres"]
    if not pg:
        return None
    import psycopg

    dsn = pg[0].services.postgres_dsn()
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


def peer_subject(label: str, run: Callable[[], Sample], close: Callable[[], None] = lambda: None,
                 ) -> Subject:
    return Subject(label, run, role="peer", close=close)
