"""Reading checkpoints: an output deep in a chain, lineage of deep chains, whole trees."""

from __future__ import annotations

from typing import Any

from ..model import Context, Sample, Subject, Workload
from ._ckpt import (
    SQLITE_SAVER,
    chain_outputs,
    deep_outputs,
    new_timeline,
    save_chains,
    seed_store,
    store_chain,
)
from ._common import cached, peer_subject, saver, shared_store, timed

__all__ = ["LINEAGE", "LOAD_DEEP", "TREE"]


def _saver_chain(ctx: Context, depth: int) -> tuple[Any, str, str] | None:
    """The SqliteSaver peer's chain of the same shape: (peer, thread, tip id)."""
    peer = cached(ctx, "saver:chains", lambda: saver(ctx, "sqlite", SQLITE_SAVER))
    if peer is None:
        return None

    def make() -> tuple[str, str]:
        thread = f"chain{depth}"
        parent = None
        for stage, out in deep_outputs(ctx, depth):
            parent = peer.put(thread, parent, stage, out)
        return thread, parent

    thread, tip = cached(ctx, f"saverchain:{depth}", make)
    return peer, thread, tip


def _calls(ctx: Context, size: int, budget: int) -> int:
    return 3 if ctx.quick else max(3, budget // size)


def _build_load_deep(ctx: Context, depth: int) -> list[Subject]:
    k = 20 if ctx.quick else 300
    subjects = []
    for cfg in ctx.configs:
        store, _, tip = store_chain(ctx, cfg, depth)
        store.load_stage_output(tip, "detect")

        def run(store: Any = store, tip: str = tip) -> Sample:
            return timed(lambda: [store.load_stage_output(tip, "detect") for _ in range(k)],
                         ops=k, units=k)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if ctx.peers:
        found = _saver_chain(ctx, depth)
        if found is not None:
            peer, thread, ptip = found
            subjects.append(peer_subject(SQLITE_SAVER + " get_tuple", lambda: timed(
                lambda: [peer.get(thread, ptip) for _ in range(k)], ops=k, units=k)))
        seed = seed_store(ctx, "sqlite", "chains")
        if seed is not None:
            def make_seed() -> str:
                parent = None
                for stage, out in deep_outputs(ctx, depth):
                    parent = seed.save_stage_output(f"t{depth}", parent, stage, out)
                return str(parent)

            stip = cached(ctx, f"seedchain:{depth}", make_seed)
            subjects.append(peer_subject("seed layout (sqlite JSON)", lambda: timed(
                lambda: [seed.load_stage_output(stip, "detect") for _ in range(k)],
                ops=k, units=k)))
    return subjects


LOAD_DEEP = Workload(
    name="load_deep",
    title="load_stage_output of the first stage from the tip of a deep chain",
    unit="calls", size_name="chain depth",
    sizes=(100, 1000, 10000), quick_sizes=(10, 30), reps=5,
    build=_build_load_deep, baseline=SQLITE_SAVER + " get_tuple", cost_label="s per call",
    notes=("The chain saves 'detect' first, then nine other stages in turn; the tip's "
           "'detect' output is carried forward by hash from depth 1.",
           "SqliteSaver get_tuple reads the tip checkpoint (which, saved as a delta, holds "
           "only the tip's own stage): the cheapest read the peer has. The seed layout "
           "reads and parses the tip row's copy of every carried output."),
)


def _build_lineage(ctx: Context, depth: int) -> list[Subject]:
    k = _calls(ctx, depth, 20000)
    subjects = []
    for cfg in ctx.configs:
        store, _, tip = store_chain(ctx, cfg, depth)

        def run(store: Any = store, tip: str = tip) -> Sample:
            return timed(lambda: [store.lineage(tip) for _ in range(k)], ops=k, units=k)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if ctx.peers:
        found = _saver_chain(ctx, depth)
        if found is not None:
            peer, thread, _ = found
            subjects.append(peer_subject(SQLITE_SAVER + " list(thread)", lambda: timed(
                lambda: [peer.list(thread) for _ in range(k)], ops=k, units=k)))
    return subjects


LINEAGE = Workload(
    name="lineage",
    title="lineage(tip) of a chain, root first (one query)",
    unit="calls", size_name="chain depth",
    sizes=(100, 1000, 10000), quick_sizes=(10, 30), reps=5,
    build=_build_lineage, baseline=SQLITE_SAVER + " list(thread)", cost_label="s per call",
    notes=("The peer has no lineage query; listing the thread that holds exactly the chain "
           "(SqliteSaver.list, which also deserialises each checkpoint) is the nearest.",),
)


def _build_tree(ctx: Context, n: int) -> list[Subject]:
    k = _calls(ctx, n, 20000)
    outs = chain_outputs(ctx, n)
    subjects = []
    for cfg in ctx.configs:
        store, _ = shared_store(ctx, cfg, "trees")

        def make(store: Any = store) -> str:
            tid = new_timeline(store).id
            save_chains(lambda p, s, o: store.save_stage_output(tid, p, s, o,
                                                                is_scenario=p is None), outs)
            return str(tid)

        tid = cached(ctx, f"tree:{cfg.name}:{n}", make)

        def run(store: Any = store, tid: str = tid) -> Sample:
            return timed(lambda: [store.checkpoints(tid) for _ in range(k)], ops=k, units=k)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if ctx.peers:
        peer = cached(ctx, "saver:trees", lambda: saver(ctx, "sqlite", SQLITE_SAVER))
        if peer is not None:
            def make_peer() -> str:
                thread = f"tree{n}"
                save_chains(lambda p, s, o: peer.put(thread, p, s, o), outs)
                return thread

            thread = cached(ctx, f"savertree:{n}", make_peer)
            subjects.append(peer_subject(SQLITE_SAVER + " list(thread)", lambda: timed(
                lambda: [peer.list(thread) for _ in range(k)], ops=k, units=k)))
    return subjects


TREE = Workload(
    name="tree",
    title="Whole-tree listing (checkpoints(timeline))",
    unit="calls", size_name="checkpoints",
    sizes=(100, 1000, 10000), quick_sizes=(10, 30), reps=5,
    build=_build_tree, baseline=SQLITE_SAVER + " list(thread)", cost_label="s per call",
    notes=("Tree: n/10 scenarios off the root, each a 10-stage chain. The peer lists one "
           "thread holding the same n checkpoints.",),
)

