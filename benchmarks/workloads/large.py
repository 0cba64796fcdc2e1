"""Large stage outputs: frame-keyed detect outputs (5 boxes per frame, random floats)
saved as a 5-stage chain and loaded back, in MB/s of canonical JSON."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from ..model import Context, Goal, Sample, Subject, Workload
from ._ckpt import new_timeline, seed_kinds, seed_store
from ._common import cached, peer_subject, saver, shared_store

__all__ = ["LOAD_LARGE", "SAVE_LARGE", "frame_output"]

STAGES = ("detect", "track", "pose", "ocr", "team")
SQLITE = "sqlite-saver (WAL, synchronous=FULL)"
SEED_SQLITE, SEED_PG = "seed layout (sqlite JSON)", "seed layout (postgres JSONB)"


def frame_output(frames: int, seed: int) -> dict[str, Any]:
    """{"frames": [{"sequence": n, "detections": [5 x {box, label, score}]}]}."""
    rnd = random.Random(seed)
    return {"model": "det-v3", "frames": [
        {"sequence": i, "detections": [
            {"box": [rnd.uniform(0, 1280), rnd.uniform(0, 720), rnd.uniform(0, 1280),
                     rnd.uniform(0, 720)], "label": rnd.choice(("player", "ball", "ref")),
             "score": rnd.random()} for _ in range(5)]}
        for i in range(frames)]}


def _outputs(ctx: Context, frames: int) -> list[tuple[str, dict[str, Any]]]:
    made: list[tuple[str, dict[str, Any]]] = cached(
        ctx, f"large:{frames}", lambda: [(s, frame_output(frames, k)) for k, s in
                                         enumerate(STAGES)])
    return made


def _mb(outputs: list[tuple[str, dict[str, Any]]]) -> float:
    return sum(len(json.dumps(o, separators=(",", ":"))) for _, o in outputs) / 1e6


def _fresh(outputs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    stamp = time.monotonic_ns()
    return [(s, {**o, "rep": stamp}) for s, o in outputs]  # shallow: frames shared


def _savers(ctx: Context, frames: int) -> dict[str, Any]:
    def make() -> dict[str, Any]:
        found = {}
        for label, kind in ((SQLITE, "sqlite"), ("postgres-saver", "postgres")):
            if kind == "postgres" and not any(c.catalog == "postgres" for c in ctx.configs):
                continue
            peer = saver(ctx, kind, label)
            if peer is not None:
                found[label] = peer
        return found

    peers: dict[str, Any] = cached(ctx, f"large-savers:{frames}", make)
    return peers


def _save_chain(save: Any, outputs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    ids, parent = [], None
    for stage, out in outputs:
        parent = save(parent, stage, out)
        ids.append(parent)
    return ids


def _build_save(ctx: Context, frames: int) -> list[Subject]:
    base = _outputs(ctx, frames)
    mb = _mb(base)
    subjects = []
    for cfg in ctx.configs:
        store, _ = shared_store(ctx, cfg, "large")

        def run(store: Any = store) -> Sample:
            tid, outs = new_timeline(store).id, _fresh(base)
            t0 = time.perf_counter()
            _save_chain(lambda p, s, o: store.save_stage_output(tid, p, s, o), outs)
            return Sample(time.perf_counter() - t0, units=mb)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if ctx.peers:
        for label, peer in _savers(ctx, frames).items():
            def run_peer(peer: Any = peer) -> Sample:
                thread, outs = f"t{time.monotonic_ns()}", _fresh(base)
                t0 = time.perf_counter()
                _save_chain(lambda p, s, o: str(peer.put(thread, p, s, o)), outs)
                return Sample(time.perf_counter() - t0, units=mb)

            subjects.append(peer_subject(label, run_peer))
        for label, kind in seed_kinds(ctx):
            seed = seed_store(ctx, kind, f"large{frames}")
            if seed is None:
                continue

            def run_seed(seed: Any = seed) -> Sample:
                tid, outs = f"t{time.monotonic_ns()}", _fresh(base)
                t0 = time.perf_counter()
                _save_chain(lambda p, s, o: seed.save_stage_output(tid, p, s, o), outs)
                return Sample(time.perf_counter() - t0, units=mb)

            subjects.append(peer_subject(label, run_seed))
    return subjects


def _build_load(ctx: Context, frames: int) -> list[Subject]:
    base = _outputs(ctx, frames)
    mb = _mb(base)
    subjects = []

    def timed_loads(load: Any, ids: list[str]) -> Sample:
        t0 = time.perf_counter()
        for stage, cid in zip(STAGES, ids, strict=True):
            if load(ids[-1], cid, stage) is None:
                raise AssertionError(f"{stage} did not load")
        return Sample(time.perf_counter() - t0, units=mb)

    for cfg in ctx.configs:
        store, _ = shared_store(ctx, cfg, "large")
        tid = new_timeline(store).id
        ids = _save_chain(lambda p, s, o, store=store, tid=tid: store.save_stage_output(
            tid, p, s, o), _fresh(base))
        subjects.append(Subject(cfg.name, lambda store=store, ids=ids: timed_loads(
            lambda tip, _, stage: store.load_stage_output(tip, stage), ids), config=cfg.name))
    if ctx.peers:
        for label, peer in _savers(ctx, frames).items():
            thread = f"load{time.monotonic_ns()}"
            ids = _save_chain(lambda p, s, o, peer=peer, thread=thread: str(
                peer.put(thread, p, s, o)), _fresh(base))
            subjects.append(peer_subject(label, lambda peer=peer, ids=ids, thread=thread:
                                         timed_loads(lambda _, cid, stage: peer.get(
                                             thread, cid).checkpoint["channel_values"][stage],
                                             ids)))
        for label, kind in seed_kinds(ctx):
            seed = seed_store(ctx, kind, f"large{frames}")
            if seed is None:
                continue
            tid = f"load{time.monotonic_ns()}"
            ids = _save_chain(lambda p, s, o, seed=seed, tid=tid: seed.save_stage_output(
                tid, p, s, o), _fresh(base))
            subjects.append(peer_subject(label, lambda seed=seed, ids=ids: timed_loads(
                lambda tip, _, stage: seed.load_stage_output(tip, stage), ids)))
    return subjects


def _ours(label: str) -> bool:
    return "+" in label


def _seed_for(label: str) -> str:
    return SEED_PG if label.startswith("postgres+") else SEED_SQLITE


def _saver_for(label: str) -> str:
    return "postgres-saver" if label.startswith("postgres+") else SQLITE


GOALS = (
    Goal(">= 3x the seed layout (MB/s)", _ours, "rate", 3.0, against=_seed_for),
    Goal(">= 1.5x the LangGraph saver of the same database kind (MB/s)", _ours, "rate", 1.5,
         against=_saver_for),
)
_NOTES = ("Each output is {'frames': [{'sequence', 'detections': 5 x {box: 4 random floats, "
          "label, score}}]}; five distinct ones (one per stage) make a 5-stage chain. MB "
          "counts the five outputs' compact JSON once.",
          "Seed layout: every checkpoint row copies the outputs carried so far (JSONB on "
          "PostgreSQL, JSON text on SQLite), so its chain writes 15 outputs for 5 and a load "
          "reads the tip row holding all five. Savers store each stage's value once "
          "(a delta put); their load is get_tuple of the checkpoint that holds it.")

SAVE_LARGE = Workload(
    name="save_large", title="save_stage_output of large frame-keyed outputs (5-stage chain)",
    unit="MB", size_name="frames per output", sizes=(1000, 10000), quick_sizes=(50, 200),
    reps=3, quick_reps=2, build=_build_save, baseline=SQLITE, baseline_for=_saver_for,
    goals=GOALS, notes=_NOTES,
)
LOAD_LARGE = Workload(
    name="load_large", title="load_stage_output of large frame-keyed outputs (each of 5 stages)",
    unit="MB", size_name="frames per output", sizes=(1000, 10000), quick_sizes=(50, 200),
    reps=3, quick_reps=2, build=_build_load, baseline=SQLITE, baseline_for=_saver_for,
    goals=GOALS, notes=_NOTES,
)
