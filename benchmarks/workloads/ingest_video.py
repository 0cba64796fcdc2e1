"""Video ingest (Store.ingest_video) against PyAV decoding alone and against doing it by hand.

The videos are H.264 (libx264 veryfast, 25 fps, B-frames) made at run time from the
broadcast-like synthetic frames, panning, at 1280x720 and 1920x1080; the size is seconds
of video. Rows:

- the store, sampling at 2 fps and at the native rate (every frame), 2 encoder workers;
- ``pyav decode``: decoding every frame and nothing else, with PyAV's defaults (slice
  threads): every store row's baseline ("x baseline");
- ``pyav decode, frame threads``: the same with ``thread_type = "AUTO"``, the decoder
  settings ingest uses, so that what ingest gains from threads alone shows;
- ``decode + encode by hand``: PyAV decode, RGB conversion of the kept frames and Pillow
  encode, all on one thread: what a dozen hand-written lines do (the native goal's
  baseline).

Rates count source frames per second, so rows of one video compare directly.
Also here: the perceptual hash's cost, once a wall-clock assertion in the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..model import Context, Goal, Sample, Subject, Workload
from ..peers import pillow
from ._common import cached, peer_subject, shared_store, timed

__all__ = ["INGEST_VIDEO", "PERCEPTUAL_HASH"]

FPS = 25
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
RATES = {"2fps": 2.0, "native": None}


def _video(ctx: Context, res: str, seconds: int) -> tuple[Path, int]:
    """(path, frame count) of a panning H.264 video of that size, made once per run."""
    def make() -> tuple[Path, int]:
        import av

        from ..data import FramePool

        w, h = SIZES[res]
        pool = ctx.frames if (w, h) == (1280, 720) else cached(
            ctx, f"pool:{res}", lambda: FramePool(len(ctx.frames.frames), w, h))
        path = ctx.root / f"ingest-{res}-{seconds}s.mp4"
        n = seconds * FPS
        with av.open(str(path), "w") as out:
            stream: Any = out.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "23"}
            for i in range(n):  # a pan over one picture per second
                pic = np.roll(pool.frames[(i // FPS) % len(pool.frames)], 6 * i, axis=1)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(pic, format="rgb24")))
            out.mux(stream.encode(None))
        return path, n

    made: tuple[Path, int] = cached(ctx, f"video:{res}:{seconds}", make)
    return made


def _kept(n: int, fps: float | None) -> list[int]:
    """Indices of the frames a CFR ingest keeps (every FPS/fps-th instant, rounded up)."""
    if fps is None:
        return list(range(n))
    step = FPS / fps
    return sorted({int(np.ceil(i * step - 1e-9)) for i in range(int(n / step) + 1)} - {n})


def decode_only(path: Path, thread_type: str | None = None) -> int:
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        if thread_type is not None:
            stream.thread_type = thread_type
        return sum(1 for _ in c.decode(stream))


def by_hand(path: Path, kept: set[int]) -> int:
    """Decode, convert the kept frames to RGB and JPEG-encode them, on one thread."""
    import av

    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            if i in kept:
                pillow.encode(frame.to_ndarray(format="rgb24"))
    return len(kept)


def _timed(fn: Any, n: int) -> Sample:
    """timed(), plus CPU ms per source frame: a figure this shared machine's load moves
    less than wall time (it counts what the work cost, not what the machine lent)."""
    sample = timed(fn, units=n)
    sample.extra["CPU ms/frame"] = sample.extra["CPU %"] * sample.seconds * 10 / n
    return sample


def _build(ctx: Context, seconds: int) -> list[Subject]:
    from localckpt.shards import delete_frames

    subjects: list[Subject] = []
    local = [c for c in ctx.configs if c.objects_kind == "local"]
    if len(local) < len(ctx.configs):
        ctx.note("ingest_video runs on local objects only: on moto S3 the upload, not the "
                 "decoder, would set the pace.")
    for res in ("720p",) if ctx.quick else SIZES:  # --quick: one video size
        path, n = _video(ctx, res, seconds)
        for rate_name, fps in RATES.items():
            for cfg in local:
                store, _ = shared_store(ctx, cfg, "ingest_video")

                def run(store: Any = store, fps: float | None = fps, n: int = n,
                        path: Path = path) -> Sample:
                    made: list[Any] = []
                    sample = _timed(lambda: made.append(
                        store.ingest_video(str(path), fps=fps, workers=2)), n)
                    sample.extra["frames kept"] = made[0].frame_count
                    delete_frames(store.objects, made[0].id)  # bound the disk
                    return sample

                subjects.append(Subject(f"{cfg.name} {res} {rate_name}", run, config=cfg.name))
            if not ctx.peers:
                continue
            want = set(_kept(n, fps))
            subjects.append(peer_subject(
                f"decode + encode by hand {res} {rate_name}",
                lambda p=path, w=want, n=n: _timed(lambda: by_hand(p, w), n)))
        if ctx.peers:
            subjects.append(peer_subject(
                f"pyav decode {res}", lambda p=path, n=n: _timed(lambda: decode_only(p), n)))
            subjects.append(peer_subject(
                f"pyav decode, frame threads {res}",
                lambda p=path, n=n: _timed(lambda: decode_only(p, "AUTO"), n)))
    return subjects


def _res(label: str) -> str | None:
    return next((r for r in SIZES if label.endswith(f" {r}") or f" {r} " in label), None)


def _against(label: str) -> str | None:
    """Each row's baseline: PyAV's decode of the same video, with its defaults."""
    res = _res(label)
    if res is None or label == f"pyav decode {res}":
        return None
    return f"pyav decode {res}"


def _by_hand(label: str) -> str | None:
    """The native goal's baseline: decode + encode by hand on one thread."""
    res = _res(label)
    return None if res is None else f"decode + encode by hand {res} native"


def _is_store(label: str) -> bool:
    return "+" in label.split(" ", 1)[0]


INGEST_VIDEO = Workload(
    name="ingest_video",
    title="Ingest an H.264 video (ingest_video, JPEG q90, 2 workers)",
    unit="frames", size_name="seconds of video",
    sizes=(4, 8, 16), quick_sizes=(1,), reps=3, quick_reps=1,
    build=_build, baseline=None, baseline_for=_against,
    goals=(
        Goal(">= 0.8x PyAV decode-only rate (2 fps)",
             lambda s: _is_store(s) and s.endswith("2fps"), "rate", 0.8, against=_against),
        Goal(">= 0.9x decode + encode by hand on one thread (native fps)",
             lambda s: _is_store(s) and s.endswith("native"), "rate", 0.9, against=_by_hand),
    ),
    notes=("Rates are source frames per second; 'frames kept' is what the store wrote. The "
           "store row includes sampling by PTS, RGB conversion, perceptual hash, JPEG "
           "encode on 2 threads, SHA-256, shards and the Parquet index. 'x baseline' is "
           "against PyAV decoding every frame with its defaults, for every row.",
           "Ingest decodes with frame threads (thread_type AUTO) and skips the decoding of "
           "B-frames that no frame references and that sampling never keeps "
           "(docs/video-ingest-speed.md): at 2 fps it decodes fewer frames than "
           "'pyav decode', which is how it can beat it.",
           "CPU % is the CPU time used as a share of one core; CPU ms/frame is what each "
           "row's work cost whatever this shared machine lent (wall time follows the "
           "load of the other users more than the code)."),
)


# -- perceptual hash ------------------------------------------------------------------------


def _build_hash(ctx: Context, n: int) -> list[Subject]:
    from localckpt.frames import perceptual_hash

    frames = list(ctx.frames.take(n))
    subjects = [Subject("perceptual_hash 1280x720",
                        lambda: timed(lambda: [perceptual_hash(f) for f in frames], units=n))]
    if ctx.peers:
        subjects.append(peer_subject(
            "pillow encode (1 thread)", lambda: timed(lambda: pillow.encode_all(frames), units=n)))
    return subjects


PERCEPTUAL_HASH = Workload(
    name="perceptual_hash",
    title="Perceptual hash (dHash) of 1280x720 frames",
    unit="frames", size_name="frames",
    sizes=(50, 200), quick_sizes=(4, 8), reps=5, quick_reps=2,
    build=_build_hash, baseline="pillow encode (1 thread)",
    goals=(Goal(">= 20x the JPEG encode rate (hashing costs < 5% of ingest)",
                lambda s: s.startswith("perceptual_hash"), "rate", 20.0),),
    notes=("The hash samples a 32x36 grid of pixels; it never reads the whole frame.",),
)
