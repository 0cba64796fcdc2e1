"""Storage: bytes kept for a chain of distinct 100 KB outputs, against the unique bytes."""

from __future__ import annotations

import time
from typing import Any

from ..data import make_output, output_bytes
from ..model import Context, Goal, Sample, Subject, Workload
from ..peers.seed import SeedCheckpoints, seed_layout_bytes
from ._ckpt import new_timeline, seed_kinds
from ._common import cached, postgres_schema_dsn

__all__ = ["STORAGE"]

UNIQUE = "unique output bytes"
SEED_COMPUTED = "seed layout (computed JSON bytes)"


def _outputs(ctx: Context, depth: int) -> list[tuple[str, dict[str, Any]]]:
    nbytes = 10_000 if ctx.quick else 100_000
    made: list[tuple[str, dict[str, Any]]] = cached(
        ctx, f"big:{depth}:{nbytes}",
        lambda: [(f"stage_{i:03d}", make_output(f"big{i}", nbytes)) for i in range(depth)])
    return made


def _build(ctx: Context, depth: int) -> list[Subject]:
    outs = _outputs(ctx, depth)
    unique = sum(output_bytes(o) for _, o in outs)
    subjects = [
        Subject(UNIQUE, lambda: Sample(0.0, units=depth, value=unique), role="reference"),
        Subject(SEED_COMPUTED, lambda: Sample(0.0, units=depth, value=seed_layout_bytes(outs)),
                role="reference"),
    ]
    for cfg in ctx.configs:
        def run(cfg: Any = cfg) -> Sample:
            tag = cfg.new_tag(f"storage_{depth}")
            store = cfg.open(tag)
            try:
                tid = new_timeline(store).id
            finally:
                store.close()  # measured closed: closing folds SQLite's / DuckDB's WAL in
            before = cfg.catalog_bytes(tag)
            store = cfg.open(tag)
            try:
                t0 = time.perf_counter()
                parent = None
                for stage, out in outs:
                    parent = store.save_stage_output(tid, parent, stage, out)
                seconds = time.perf_counter() - t0
            finally:
                store.close()
            stored = cfg.catalog_bytes(tag) - before
            cfg.drop(tag)
            return Sample(seconds, units=depth, value=stored)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if ctx.peers:
        for label, kind in seed_kinds(ctx):
            def run_seed(kind: str = kind) -> Sample:
                name = f"storage_{depth}_{time.monotonic_ns() % 10**9}"
                target = (str(ctx.root / f"{name}.sqlite") if kind == "sqlite"
                          else postgres_schema_dsn(ctx, name))
                assert target is not None
                seed = SeedCheckpoints(kind, target, name)
                try:
                    t0 = time.perf_counter()
                    parent = None
                    for stage, out in outs:
                        parent = seed.save_stage_output("t", parent, stage, out)
                    seconds = time.perf_counter() - t0
                    stored = seed.stored_bytes()
                finally:
                    seed.close()
                return Sample(seconds, units=depth, value=stored)

            subjects.append(Subject(label, run_seed, role="peer"))
    return subjects


STORAGE = Workload(
    name="storage",
    title="Stored bytes of a chain of distinct 100 KB outputs (one per stage)",
    unit="saves", size_name="chain depth", metric="bytes",
    sizes=(10, 30, 100), quick_sizes=(3, 6), reps=1, quick_reps=1,
    build=_build, baseline=UNIQUE,
    goals=(Goal("<= 1.5x unique bytes", lambda s: "+" in s, "value", 1.5),),
    notes=("Each checkpoint adds a new stage (stage_000, stage_001, ...) with a distinct "
           "~100 KB output (10 KB in --quick), so the seed layout, which copies every "
           "carried output into each row, stores ~depth/2 x the unique bytes.",
           "Store rows: growth of the catalog's file (SQLite, DuckDB; measured closed, the "
           "WAL folded in) or of its relations with TOAST and indexes (PostgreSQL) while "
           "saving the chain. Seed rows: the SQLite "
           "file after a WAL checkpoint / the PostgreSQL table with TOAST (pglz "
           "compression applies there).",
           "Bytes are deterministic: one repetition; its time is shown as the rate."),
)
