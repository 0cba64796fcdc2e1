"""Commands that put frames into a store and look for near duplicates: ingest, similar, demo."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import InvalidInputError
from ..render import plural, render_tree
from ..similar import parse_hash
from ..store import MAX_WORKERS, Store
from .common import (
    TIMELINE_HELP,
    UsageError,
    add_command,
    add_short_ids,
    options_arg,
    print_json,
    prints_unicode,
    progress,
    real,
    short_ids_in_errors,
    timeline_ref,
    whole,
)

__all__ = ["register"]


def _fps(text: str) -> float | None:
    if text.lower() in ("all", "native", "none"):
        return None
    try:
        return real(0.0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a finite number of frames per second above 0 (or 'all' for every "
            f"frame), not {text!r}") from None


def _check_options(args: argparse.Namespace) -> None:
    """The options that go together (argparse checked each alone): bad usage, exit 2."""
    if args.end is not None and args.end <= (args.start or 0):
        raise UsageError(f"--end {args.end:g} must be after --start ({args.start or 0:g})")
    if args.quality is not None and args.codec != "jpeg":
        raise UsageError(f"--quality is for --codec jpeg; {args.codec} is lossless")


def cmd_ingest(store: Store, args: argparse.Namespace) -> int:
    from .newstore import keep_if_used

    try:
        tl = store.ingest_video(
            args.file, args.profile, fps=args.fps, start=args.start, end=args.end,
            max_frames=args.max_frames, chunk_seconds=args.chunk_seconds,
            skip_similar=args.skip_similar, codec=args.codec, quality=args.quality,
            workers=args.workers, source_asset_id=args.source_asset_id,
            storage_options=args.source_storage_options,
            progress=progress(),
        )
    except BaseException:  # a failure seen while decoding: a store made for it goes again
        keep_if_used(store, getattr(args, "new_store", None))
        raise
    stats = dict(store.get_checkpoint(tl.root_checkpoint_id).stats)
    if stats.get("frames_undecodable"):  # on stderr, with --json too
        count = stats["frames_undecodable"]
        print(f"localckpt: warning: ingest: {plural(count, 'frame')} of {tl.source_video} "
              f"before its first key frame could not be decoded (it starts between key "
              f"frames, as a file cut from a longer recording does); the timeline starts "
              f"at the first key frame", file=sys.stderr)
    if args.json:
        print_json(add_short_ids(store, [{
            "timeline_id": tl.id, "root_checkpoint_id": tl.root_checkpoint_id,
            "frames": tl.frame_count, "decoded": stats.get("frames_decoded"),
            "skipped": stats.get("frames_skipped"),
            "undecodable": stats.get("frames_undecodable"), "fps": tl.fps,
            "source_video": tl.source_video, "source_info": dict(tl.source_info),
        }], None)[0])
        return 0
    info = tl.source_info
    rate = "every frame" if args.fps is None else f"{args.fps:g} fps"
    skipped = f", {stats['frames_skipped']} near duplicates skipped" \
        if stats.get("frames_skipped") else ""
    print(f"ingested {plural(tl.frame_count, 'frame')} ({rate}; "
          f"{stats.get('frames_decoded')} decoded{skipped}) from {tl.source_video} "
          f"({info.get('width')}x{info.get('height')} {info.get('codec')}, "
          f"{_duration(info.get('duration'))})")
    print(f"timeline {store.short_id(tl.id, 'timeline')}  ({tl.id})")
    return 0


def _duration(seconds: Any) -> str:
    return "unknown length" if seconds is None else f"{seconds:.1f} s"


def _query(text: str) -> int | str:
    """An argparse type: a frame's sequence number (digits), else a hex perceptual hash."""
    if text.startswith("-") and text[1:].isdigit():  # not "sequence_or_hash must be ..."
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a frame's sequence number (0 or more) nor a perceptual "
            "hash (16 hex digits)")
    if text.isdigit() and len(text) != 16:
        return int(text)
    if parse_hash(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a frame's sequence number nor a perceptual hash (hex digits)"
        )
    return text


def cmd_similar(store: Store, args: argparse.Namespace) -> int:
    tid = timeline_ref(store, args.timeline)
    with short_ids_in_errors(store, {tid: "timeline"}):  # similar's messages have the id
        found = store.similar_frames(tid, args.query, max_distance=args.max_distance,
                                     limit=args.limit)
    if args.json:
        print_json([{"sequence": m.sequence, "timestamp": m.timestamp, "chunk_id": m.chunk_id,
                     "perceptual_hash": m.perceptual_hash, "distance": d,
                     "width": m.width, "height": m.height} for m, d in found])
        return 0
    if not found:
        print(f"no frames within {args.max_distance} bits of {args.query}")
        return 0
    print(f"{'SEQUENCE':>8}  {'TIME (s)':>9}  {'CHUNK':>5}  {'DISTANCE':>8}  HASH")
    for m, d in found:
        print(f"{m.sequence:8d}  {m.timestamp:9.3f}  {m.chunk_id:5d}  {d:8d}  {m.perceptual_hash}")
    return 0


def cmd_demo(store: Store, args: argparse.Namespace) -> int:
    from ..demo import run_demo

    timeline, leaves = run_demo(store, frame_count=args.frames)
    if args.json:
        record = add_short_ids(store, [{"timeline_id": timeline.id,
                                        "frames": timeline.frame_count}], None)[0]
        print_json({**record, "leaves": leaves, "short_ids": store.short_ids(leaves)})
        return 0
    print(f"demo: stored {plural(timeline.frame_count, 'frame')} and ran detect -> track with "
          f"two thresholds in {store.url}\n")
    checkpoints = store.checkpoints(timeline.id)
    shorts = {**store.short_ids([c.id for c in checkpoints]),
              **store.short_ids([timeline.id], "timeline")}
    print(render_tree(timeline, checkpoints, shorts=shorts, ascii_only=not prints_unicode()))
    a, b = shorts[leaves[0]], shorts[leaves[-1]]  # short ids differ, made in one ms or not
    print(f"\nnext: localckpt show {b}")
    print(f"      localckpt diff {a} {b} --stage detect --frames")
    print("      localckpt serve    # the tree, the frames and their boxes in a browser")
    return 0


def _check_file(args: argparse.Namespace, stack: Any) -> None:
    """What can be checked before the store is created, so that a failed ingest creates
    no store (argparse and _check_options checked the options): that FILE opens as a
    video (its container and first video stream). Frames are decoded later: a failure
    then (a truncated file, frames that do not decode) removes what this ingest created
    of the store: its directory or DuckDB file, a local objects directory
    (localckpt.cli.newstore)."""
    import os

    from ..errors import NotFoundError
    from ..frames import check_codec
    from ..video import check_reach, window_sampler
    from ..videosource import VideoSource, source_name

    if not args.file:
        raise InvalidInputError("the video file name is empty; name a video file")
    if "://" not in args.file and os.path.isdir(args.file):
        raise InvalidInputError(f"{args.file} is a directory, not a video file")
    if "://" not in args.file and not os.path.exists(args.file):
        raise NotFoundError(f"no video file {args.file}")
    if "://" not in args.file and not os.path.isfile(args.file):  # it said "no video file"
        raise InvalidInputError(f"{args.file} is not a regular file (a pipe, a device or a "
                                "socket): ingest reads a video file; save the stream to a "
                                "file first")
    check_codec(args.codec, 90 if args.quality is None else args.quality)
    name = source_name(args.file)
    with VideoSource(args.file, name,
                     args.source_storage_options) as source:
        lasts = source.duration()
    check_reach(name, window_sampler(name, args.fps, args.start, args.end, args.chunk_seconds),
                lasts)
    if args.start is not None and lasts is not None and args.start >= lasts:
        raise InvalidInputError(
            f"--start {args.start:g} is past the end of {args.file}: its header says it lasts "
            f"{float(lasts):.3f} s; nothing was stored (choose a start inside the video)")
    from .newstore import new_store

    args.new_store = new_store(args)
    if args.new_store is not None:
        stack.push(args.new_store)  # pushed before the store opens: runs after it closes


def _check_demo(args: argparse.Namespace) -> None:
    """The demo's arguments, checked before the store is created (a failed demo creates
    no store)."""
    from ..demo import MAX_DEMO_FRAMES

    if not 1 <= args.frames <= MAX_DEMO_FRAMES:  # said as whole() says it: bad usage
        raise UsageError(f"argument --frames: must be a whole number in "
                         f"1..{MAX_DEMO_FRAMES}, not {str(args.frames)!r}")


def register(sub: Any) -> None:
    p = add_command(sub, "ingest", "sample a video file into a new timeline (needs PyAV)",
                    cmd_ingest, creates=True)
    p.set_defaults(prepare=_check_file, check=_check_options)
    p.add_argument("file", metavar="FILE", help="video file, or an fsspec URL (s3://...)")
    p.add_argument("--profile", default="", metavar="NAME", help="sampling profile name")
    p.add_argument("--fps", type=_fps, default=2.0, metavar="FPS",
                   help="frames per second, by presentation time (default 2); 'all' keeps "
                        "every decoded frame")
    p.add_argument("--start", type=real(0.0, above=False), metavar="SECONDS",
                   help="skip the video before this")
    p.add_argument("--end", type=real(0.0), metavar="SECONDS", help="stop before this time")
    p.add_argument("--max-frames", type=whole(1), metavar="N", help="store at most N frames")
    p.add_argument("--chunk-seconds", type=real(0.0), metavar="SECONDS",
                   help="chunk_id = index of the window of this many seconds a frame is in")
    p.add_argument("--skip-similar", type=whole(0, 64), metavar="BITS",
                   help="drop a frame within BITS (Hamming) of the last kept frame's hash")
    p.add_argument("--codec", choices=("jpeg", "png"), default="jpeg",
                   help="how frames are stored (default jpeg; png is lossless)")
    p.add_argument("--quality", type=whole(1, 95), metavar="Q",
                   help="JPEG quality 1..95 (default 90; jpeg only)")
    p.add_argument("--workers", type=whole(1, MAX_WORKERS), metavar="N",
                   help="encoder threads, 1..64 (default 2)")
    p.add_argument("--source-asset-id", metavar="ID", help="the video's id in another system")
    p.add_argument("--source-storage-options", metavar="JSON",
                   type=options_arg("--source-storage-options"),
                   help="fsspec options for reading FILE when it is a URL, as a JSON object")

    p = add_command(sub, "similar", "frames whose perceptual hash is near a frame's or a hash",
                    cmd_similar)
    p.add_argument("timeline", metavar="TIMELINE", help=TIMELINE_HELP)
    p.add_argument("query", metavar="SEQ_OR_HASH", type=_query,
                   help="a frame's sequence number, or a perceptual hash (16 hex digits)")
    p.add_argument("--max-distance", type=whole(0, 64), default=8, metavar="BITS",
                   help="largest Hamming distance to list (default 8)")
    p.add_argument("--limit", type=whole(1), metavar="N", help="list at most N frames")

    p = add_command(sub, "demo", "run a toy two-stage pipeline with two config tries",
                    cmd_demo, creates=True)
    p.set_defaults(check=_check_demo)
    p.add_argument("--frames", type=int, default=24, metavar="N",
                   help="frames in the synthetic video (default 24)")
