"""Saving checkpoints: 10-stage chains of 2 KB outputs, and a bushy tree of scenarios."""

from __future__ import annotations

import time
from typing import Any

from ..configs import StoreConfig
from ..model import Context, Goal, Sample, Subject, Workload
from ._ckpt import (
    SQLITE_SAVER,
    chain_outputs,
    fresh,
    new_timeline,
    peer_savers,
    save_chains,
    seed_kinds,
    seed_store,
    store_subjects,
)
from ._common import peer_subject
from .diagnostics import fdatasync_reference

__all__ = ["SAVE_BUSHY", "SAVE_CHAIN"]

_DURABILITY = ("Durability: the embedded store (sqlite+*) commits with synchronous=FULL in "
               "WAL mode (an fsync of the WAL per commit; the fsync=False row uses NORMAL); "
               "duckdb+local commits through DuckDB's WAL; postgres+* commit to a durable "
               "PostgreSQL (fsync, synchronous_commit on). SqliteSaver runs WAL with "
               "synchronous=FULL (its default, read back with PRAGMA) unless the row says "
               "OFF; PostgresSaver autocommits on the same cluster.")


def _is_default_store(label: str) -> bool:
    return "+" in label and "fsync=False" not in label and "seed" not in label


def _saver_goals(prefix: str, saver: str, least: float, aim: float, what: str
                 ) -> tuple[Goal, Goal]:
    """The issue's floor and its aim, against the saver of the same run."""
    def applies(s: str) -> bool:
        return _is_default_store(s) and s.startswith(prefix)

    return (Goal(f">= {least:g}x {what}", applies, "rate", least, against=lambda _: saver),
            Goal(f"aim: >= {aim:g}x {what}", applies, "rate", aim, against=lambda _: saver))


SAVE_GOALS = (  # issue 21 item 4 (issue 22: >= 1.0x), at equal durability
    *_saver_goals("sqlite+", SQLITE_SAVER, 1.1, 1.3, "SqliteSaver.put (synchronous=FULL)"),
    *_saver_goals("postgres+", "postgres-saver", 1.0, 1.2, "PostgresSaver.put (same cluster)"),
)


def _build_chain(ctx: Context, n: int) -> list[Subject]:
    base = chain_outputs(ctx, n)

    def make_run(store: Any, cfg: StoreConfig) -> Any:
        def run() -> Sample:
            tid = new_timeline(store).id
            outs = fresh(base)
            t0 = time.perf_counter()
            save_chains(lambda p, s, o: store.save_stage_output(tid, p, s, o), outs)
            return Sample(time.perf_counter() - t0, units=n)
        return run

    subjects = store_subjects(ctx, "saves", make_run)
    subjects.append(fdatasync_reference(ctx, n))
    if ctx.peers:
        for label, peer in peer_savers(ctx, "saves").items():
            def run_peer(peer: Any = peer) -> Sample:
                thread = f"t{time.monotonic_ns()}"
                outs = fresh(base)
                t0 = time.perf_counter()

                def put(parent: str | None, stage: str, out: dict[str, Any]) -> str:
                    if parent is None:
                        peer.reset_state(thread)
                    return str(peer.put(thread, parent, stage, out))

                save_chains(put, outs)
                return Sample(time.perf_counter() - t0, units=n)

            subjects.append(peer_subject(label, run_peer))
        for label, kind in seed_kinds(ctx):
            seed = seed_store(ctx, kind, "saves")
            if seed is None:
                continue

            def run_seed(seed: Any = seed) -> Sample:
                tid = f"t{time.monotonic_ns()}"
                outs = fresh(base)
                t0 = time.perf_counter()
                save_chains(lambda p, s, o: seed.save_stage_output(tid, p, s, o), outs)
                return Sample(time.perf_counter() - t0, units=n)

            subjects.append(peer_subject(label, run_seed))
    return subjects


SAVE_CHAIN = Workload(
    name="save_chain",
    title="save_stage_output on 10-stage chains of 2 KB outputs",
    unit="saves", size_name="saves",
    sizes=(100, 1000, 5000), quick_sizes=(10, 30), reps=3,
    build=_build_chain, baseline=SQLITE_SAVER, goals=SAVE_GOALS,
    notes=("n saves = n/10 chains of the same 10 stages, each chain starting at the "
           "timeline's root; every output is distinct.", _DURABILITY,
           "SqliteSaver rows store only the new stage's value per put (a delta, the "
           "cheapest shape for the peer) except 'full state', which stores the chain's "
           "outputs so far as a graph state would."),
)


def _build_bushy(ctx: Context, n: int) -> list[Subject]:
    base = chain_outputs(ctx, n)

    def make_run(store: Any, cfg: StoreConfig) -> Any:
        def run() -> Sample:
            tl = new_timeline(store)
            outs = fresh(base)
            t0 = time.perf_counter()
            for i, (_, out) in enumerate(outs):
                store.save_stage_output(tl.id, tl.root_checkpoint_id, "detect", out,
                                        config_overrides={"threshold": i}, is_scenario=True,
                                        scenario_label=f"try {i}")
            return Sample(time.perf_counter() - t0, units=n)
        return run

    subjects = store_subjects(ctx, "bushy", make_run)
    subjects.append(fdatasync_reference(ctx, n))
    if ctx.peers:
        for label, peer in peer_savers(ctx, "bushy").items():
            if "full state" in label:
                continue  # same as the delta shape when every save is one stage off the root

            def run_peer(peer: Any = peer) -> Sample:
                thread = f"t{time.monotonic_ns()}"
                root = peer.put(thread, None, "root", {})
                outs = fresh(base)
                t0 = time.perf_counter()
                for _, out in outs:
                    peer.put(thread, root, "detect", out)
                return Sample(time.perf_counter() - t0, units=n)

            subjects.append(peer_subject(label, run_peer))
        for label, kind in seed_kinds(ctx):
            seed = seed_store(ctx, kind, "bushy")
            if seed is None:
                continue

            def run_seed(seed: Any = seed) -> Sample:
                tid = f"t{time.monotonic_ns()}"
                root = seed.save_stage_output(tid, None, "root", {})
                outs = fresh(base)
                t0 = time.perf_counter()
                for i, (_, out) in enumerate(outs):
                    seed.save_stage_output(tid, root, "detect", out, {"threshold": i}, None,
                                           True, f"try {i}")
                return Sample(time.perf_counter() - t0, units=n)

            subjects.append(peer_subject(label, run_seed))
    return subjects


SAVE_BUSHY = Workload(
    name="save_bushy",
    title="save_stage_output on a bushy tree (many scenarios off the root)",
    unit="saves", size_name="scenarios",
    sizes=(100, 1000, 5000), quick_sizes=(10, 30), reps=3,
    build=_build_bushy, baseline=SQLITE_SAVER, goals=SAVE_GOALS,
    notes=("Every save is a scenario child of the timeline's root (is_scenario=True, a "
           "config override, a label); 2 KB distinct outputs.", _DURABILITY),
)
