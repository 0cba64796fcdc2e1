"""Checkpoint-side helpers: outputs, the peers that save chains, chains reused across workloads."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from ..configs import EMBEDDED, StoreConfig
from ..data import make_output
from ..model import Context, Subject
from ..peers.langgraph import SaverPeer
from ..peers.seed import SeedCheckpoints
from ._common import TINY_FRAME, cached, postgres_schema_dsn, saver, shared_store

__all__ = [
    "SQLITE_SAVER",
    "STAGES",
    "chain_outputs",
    "peer_savers",
    "save_chains",
    "seed_store",
    "store_chain",
    "store_subjects",
]

STAGES = ("detect", "track", "ocr", "pose", "ball", "team", "jersey", "event", "camera", "score")
SQLITE_SAVER = "sqlite-saver (WAL, synchronous=FULL)"
_unique = itertools.count()


def chain_outputs(ctx: Context, n: int, nbytes: int = 2048) -> list[tuple[str, dict[str, Any]]]:
    """n (stage, ~2 KB output) pairs cycling over 10 stages, distinct outputs."""
    made: list[tuple[str, dict[str, Any]]] = cached(
        ctx, f"outputs:{n}:{nbytes}",
        lambda: [(STAGES[i % 10], make_output(f"o{i}", nbytes)) for i in range(n)])
    return made


def fresh(outputs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The same outputs made distinct from every earlier use (no content dedup across reps)."""
    rep = next(_unique)
    return [(stage, {**out, "rep": rep}) for stage, out in outputs]


def new_timeline(store: Any) -> Any:
    return store.create_timeline("bench.mp4", "bench", [TINY_FRAME])


def save_chains(save: Callable[[str | None, str, dict[str, Any]], str],
                outputs: list[tuple[str, dict[str, Any]]], chain: int = 10) -> str:
    """Save outputs as consecutive chains of `chain` stages, each starting at the root."""
    parent: str | None = None
    for i, (stage, out) in enumerate(outputs):
        if i % chain == 0:
            parent = None
        parent = save(parent, stage, out)
    assert parent is not None
    return parent


def store_subjects(ctx: Context, purpose: str,
                   make_run: Callable[[Any, StoreConfig], Callable[[], Any]]) -> list[Subject]:
    """A subject per configuration (default durability) plus sqlite+local fsync=False."""
    subjects = []
    for cfg in ctx.configs:
        store, _ = shared_store(ctx, cfg, purpose)
        subjects.append(Subject(cfg.name, make_run(store, cfg), config=cfg.name))
        if cfg.name == EMBEDDED:
            store, _ = shared_store(ctx, cfg, purpose + "_nosync", fsync=False)
            subjects.append(Subject(f"{cfg.name} fsync=False", make_run(store, cfg),
                                    config=cfg.name))
    return subjects


def peer_savers(ctx: Context, purpose: str) -> dict[str, SaverPeer]:
    """The LangGraph savers to compare with (those whose packages are installed)."""
    def make() -> dict[str, SaverPeer]:
        found: dict[str, SaverPeer] = {}
        variants: list[tuple[str, str, dict[str, Any]]] = [
            (SQLITE_SAVER, "sqlite", {}),
            ("sqlite-saver full state", "sqlite", {"full_state": True}),
            ("sqlite-saver synchronous=OFF", "sqlite", {"synchronous": "OFF"}),
        ]
        if any(c.catalog == "postgres" for c in ctx.configs):
            variants.append(("postgres-saver", "postgres", {}))
        for label, kind, kwargs in variants:
            peer = saver(ctx, kind, label, **kwargs)
            if peer is not None:
                found[label] = peer
        return found

    peers: dict[str, SaverPeer] = cached(ctx, f"savers:{purpose}", make)
    return peers


def seed_store(ctx: Context, kind: str, purpose: str) -> SeedCheckpoints | None:
    """The seed layout's checkpoint table (SQLite JSON, or PostgreSQL JSONB)."""
    def make() -> SeedCheckpoints | None:
        if kind == "sqlite":
            return SeedCheckpoints("sqlite", str(ctx.root / f"seed-{purpose}.sqlite"))
        dsn = postgres_schema_dsn(ctx, f"seed_{purpose}")
        return None if dsn is None else SeedCheckpoints("postgres", dsn, f"seed_{purpose}")

    found: SeedCheckpoints | None = cached(ctx, f"seed:{kind}:{purpose}", make)
    return found


def seed_kinds(ctx: Context) -> list[tuple[str, str]]:
    kinds = [("seed layout (sqlite JSON)", "sqlite")]
    if any(c.catalog == "postgres" for c in ctx.configs):
        kinds.append(("seed layout (postgres JSONB)", "postgres"))
    return kinds


def store_chain(ctx: Context, cfg: StoreConfig, depth: int) -> tuple[Any, str, str]:
    """(store, timeline id, tip id) of a `depth`-deep chain: "detect" first, then the
    other nine stages in turn, 2 KB outputs."""
    store, _ = shared_store(ctx, cfg, "chains")

    def make() -> tuple[str, str]:
        tid = new_timeline(store).id
        parent = None
        for stage, out in deep_outputs(ctx, depth):
            parent = store.save_stage_output(tid, parent, stage, out)
        return tid, parent

    tid, tip = cached(ctx, f"chain:{cfg.name}:{depth}", make)
    return store, tid, tip


def deep_outputs(ctx: Context, depth: int) -> list[tuple[str, dict[str, Any]]]:
    outs = chain_outputs(ctx, depth)
    return [("detect" if i == 0 else STAGES[1 + (i - 1) % 9], out)
            for i, (_, out) in enumerate(outs)]
