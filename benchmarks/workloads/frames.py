"""Frame workloads: ingest, load all (decoded and encoded), load one frame by sequence."""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np

from ..configs import RequestCounter, StoreConfig
from ..model import Context, Goal, Sample, Subject, Workload
from ..peers import pillow
from ..peers.seed import SeedFrames
from ._common import cached, frames_timeline, peer_subject, shared_store, timed

__all__ = ["GET_FRAME", "INGEST", "LOAD", "LOAD_ENCODED"]

BARE_ENCODE = "pillow encode (1 thread)"
BARE_DECODE = "pillow decode (1 thread)"
BARE_ENCODE_2 = "pillow encode (2 threads, into files)"
BARE_DECODE_2 = "pillow decode (2 threads)"


def _seed_label(kind: str) -> str:
    return f"seed layout on {kind}"


def _seed_for(label: str) -> str:
    return _seed_label("s3" if "+s3" in label else "local")


def _object_kinds(ctx: Context) -> dict[str, StoreConfig]:
    """One configuration per object-store kind (the seed layout runs on each)."""
    kinds: dict[str, StoreConfig] = {}
    for cfg in ctx.configs:
        kinds.setdefault(cfg.objects_kind, cfg)
    return kinds


def _seed_frames(ctx: Context, cfg: StoreConfig, n: int) -> tuple[SeedFrames, str]:
    seed: SeedFrames = cached(ctx, f"seedframes:{cfg.objects_kind}",
                              lambda: SeedFrames(cfg.objects(cfg.new_tag("seed"))))
    tid = f"t{n}"
    if tid not in seed.manifest:
        seed.create(tid, ctx.frames.take(n))
    return seed, tid


def _blobs(ctx: Context, n: int) -> list[bytes]:
    blobs: list[bytes] = cached(ctx, f"blobs:{n}",
                                lambda: pillow.encode_all(ctx.frames.take(n)))
    return blobs


def _counter(ctx: Context, cfg: StoreConfig, store: Any) -> RequestCounter | None:
    if cfg.objects_kind != "s3":
        return None
    counter: RequestCounter = cached(ctx, f"counter:{cfg.name}", lambda: RequestCounter(store))
    return counter


def _counted(counter: RequestCounter | None, fn: Any, ops: int, units: float) -> Sample:
    before = counter.count if counter else 0
    sample = timed(fn, ops=ops, units=units)
    if counter is not None:
        sample.extra["S3 requests/op"] = (counter.count - before) / ops
    return sample


# -- ingest ---------------------------------------------------------------------------------


def _build_ingest(ctx: Context, n: int) -> list[Subject]:
    from localckpt.shards import delete_frames

    subjects = []
    for cfg in ctx.configs:
        store, _ = shared_store(ctx, cfg, "ingest")
        for workers in (1, 2):
            def run(store: Any = store, workers: int = workers) -> Sample:
                made: list[Any] = []
                sample = timed(lambda: made.append(store.create_timeline(
                    "bench.mp4", "bench", ctx.frames.take(n), workers=workers)), units=n)
                delete_frames(store.objects, made[0].id)  # bound disk / S3 server memory
                return sample

            subjects.append(Subject(f"{cfg.name} workers={workers}", run, config=cfg.name))
    if ctx.peers:
        subjects.append(peer_subject(
            BARE_ENCODE, lambda: timed(lambda: pillow.encode_all(ctx.frames.take(n)), units=n)))
        frames = list(ctx.frames.take(n))
        subjects.append(peer_subject(
            BARE_ENCODE_2, lambda: timed(lambda: pillow.encode_files(frames), units=n)))
        for kind, cfg in _object_kinds(ctx).items():
            seed = SeedFrames(cfg.objects(cfg.new_tag(f"seed_ingest_{n}")))

            def run_seed(seed: SeedFrames = seed) -> Sample:
                tid = f"i{time.monotonic_ns()}"
                sample = timed(lambda: seed.create(tid, ctx.frames.take(n)), units=n)
                seed.delete(tid)
                return sample

            subjects.append(peer_subject(_seed_label(kind), run_seed))
    return subjects


INGEST = Workload(
    name="ingest",
    title="Ingest 1280x720 frames (create_timeline, JPEG q90)",
    unit="frames", size_name="frames",
    sizes=(50, 200, 800), quick_sizes=(2, 6), reps=3,
    build=_build_ingest, baseline=BARE_ENCODE,
    goals=(
        Goal(">= 0.9x bare encode rate (workers=1)", lambda s: s.endswith("workers=1"),
             "rate", 0.9),
        Goal(">= 1.6x bare 1-thread encode rate (workers=2)", lambda s: s.endswith("workers=2"),
             "rate", 1.6),
    ),
    notes=("Store rows include validation, perceptual hash, SHA-256, shard files and the "
           "Parquet index; the bare encode writes into BytesIO on one thread.",
           "The 2-thread bare encode (each thread into its own temp file) is what this "
           "machine allows a 2-worker ingest at that moment; CPU % (100 = one core) shows "
           "whether a row got both cores while other tenants share the machine.",
           "The seed layout encodes each frame and PUTs it as its own object."),
)


# -- load all -------------------------------------------------------------------------------


def _build_load(ctx: Context, n: int, encoded: bool) -> list[Subject]:
    subjects = []
    for cfg in ctx.configs:
        store, _, tid = frames_timeline(ctx, cfg, n)
        store.get_frame(tid, 0)  # warm: the frame index is read once per store
        counter = _counter(ctx, cfg, store)
        fn = (lambda s=store, t=tid: s.get_timeline_frames_b64(t)) if encoded else \
            (lambda s=store, t=tid: s.get_timeline_frames(t))

        def run(fn: Any = fn, counter: RequestCounter | None = counter) -> Sample:
            return _counted(counter, fn, 1, n)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if ctx.peers:
        if not encoded:
            blobs = _blobs(ctx, n)
            subjects.append(peer_subject(
                BARE_DECODE, lambda: timed(lambda: pillow.decode_all(blobs), units=n)))
            subjects.append(peer_subject(
                BARE_DECODE_2, lambda: timed(lambda: pillow.decode_threads(blobs), units=n)))
        for kind, cfg in _object_kinds(ctx).items():
            seed, tid = _seed_frames(ctx, cfg, n)
            if encoded:
                def fn(seed: SeedFrames = seed, tid: str = tid) -> Any:
                    return [{"sequence": i, "jpeg_b64": base64.b64encode(b).decode("ascii")}
                            for i, b in enumerate(seed.load_encoded(tid))]
            else:
                def fn(seed: SeedFrames = seed, tid: str = tid) -> Any:
                    return seed.load(tid)
            subjects.append(peer_subject(_seed_label(kind),
                                         lambda fn=fn: timed(fn, units=n)))  # type: ignore[misc]
    return subjects


_S3_LOAD_NOTE = ("On S3 the store reads each shard with one ranged GET per contiguous run; "
                 "the seed layout sends one GET per frame.")

LOAD = Workload(
    name="load",
    title="Load all frames decoded (get_timeline_frames)",
    unit="frames", size_name="frames",
    sizes=(100, 300, 1000), quick_sizes=(2, 6), reps=3,
    build=lambda ctx, n: _build_load(ctx, n, encoded=False), baseline=BARE_DECODE,
    goals=(
        Goal(">= 0.9x bare decode rate", lambda s: "+" in s and "seed" not in s, "rate", 0.9),
        Goal(">= 3x seed layout on S3 (decoded)", lambda s: "+s3" in s, "rate", 3.0,
             against=_seed_for),
    ),
    notes=("The store decodes on 2 threads by default (Pillow's decoder releases the GIL); "
           "the bare decode baseline uses 1 thread, the 2-thread row shows the machine's "
           "limit at that moment (see CPU %).", _S3_LOAD_NOTE),
)

LOAD_ENCODED = Workload(
    name="load_encoded",
    title="Load all frames encoded (get_timeline_frames_b64) vs seed layout",
    unit="frames", size_name="frames",
    sizes=(100, 300, 1000), quick_sizes=(2, 6), reps=3,
    build=lambda ctx, n: _build_load(ctx, n, encoded=True), baseline=None,
    baseline_for=_seed_for,
    goals=(
        Goal(">= 10x seed layout on S3 (encoded bytes)", lambda s: "+s3" in s, "rate", 10.0,
             against=_seed_for),
    ),
    notes=("Ratios compare with the seed layout on the same object store.", _S3_LOAD_NOTE),
)


# -- one frame by sequence ------------------------------------------------------------------


def _build_get_frame(ctx: Context, n: int) -> list[Subject]:
    k = 5 if ctx.quick else 30
    seqs = [int(s) for s in np.random.default_rng(n).integers(0, n, k)]
    subjects = []
    for cfg in ctx.configs:
        store, _, tid = frames_timeline(ctx, cfg, n)
        store.get_frame(tid, 0)  # warm: index cached
        counter = _counter(ctx, cfg, store)

        def run(store: Any = store, tid: str = tid, counter: Any = counter) -> Sample:
            return _counted(counter, lambda: [store.get_frame(tid, s) for s in seqs], k, k)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if ctx.peers:
        blobs = _blobs(ctx, n)
        subjects.append(peer_subject(BARE_DECODE, lambda: timed(
            lambda: [pillow.decode(blobs[s]) for s in seqs], ops=k, units=k)))
        for kind, cfg in _object_kinds(ctx).items():
            seed, tid = _seed_frames(ctx, cfg, n)
            subjects.append(peer_subject(_seed_label(kind), lambda seed=seed, tid=tid: timed(
                lambda: [seed.get(tid, s) for s in seqs], ops=k, units=k)))
    return subjects


GET_FRAME = Workload(
    name="get_frame",
    title="Load one frame by sequence (get_frame, index cached)",
    unit="frames", size_name="frames in timeline",
    sizes=(100, 300, 1000), quick_sizes=(2, 6), reps=5,
    build=_build_get_frame, baseline=BARE_DECODE, cost_label="s per frame",
    notes=("Warm reader: the timeline's Parquet index was fetched once before timing "
           "(one GET); each frame is then one ranged read. S3 requests/op is counted "
           "from the s3fs client's botocore events.",
           "On S3 the cost grows with the timeline because moto reads the whole shard object "
           "to serve a range (shards hold up to 256 frames, ~37 MB); S3 and MinIO serve a "
           "range without reading the rest."),
)
