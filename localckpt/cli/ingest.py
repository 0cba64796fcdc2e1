"""Commands that put frames into a store and look for near duplicates: ingest, similar, demo."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import InvalidInputError
from ..render import plural, render_tree
from ..similar import parse_hash
from ..store import Store
from .common import (
    TIMELINE_HELP,
    add_command,
    add_short_ids,
    print_json,
    progress,
    timeline_ref,
    whole,
)

__all__ = ["register"]


def _fps(text: str) -> float | None:
    if text.lower() in ("all", "native", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of frames per second (or 'all' for every frame)"
        ) from None


def _check_numbers(args: argparse.Namespace) -> None:
    """The numeric flags in range (what ingest_video checks, said in flags)."""
    import math

    from ..store import MAX_WORKERS

    def bad(flag: str, value: object, rule: str) -> InvalidInputError:
        return InvalidInputError(f"{flag} must be {rule}, not {value} (ingest of {args.file}; "
                                 "nothing was created)")

    for flag, value, low, strict in (("--fps", args.fps, 0.0, True),
                                     ("--start", args.start, 0.0, False),
                                     ("--end", args.end, 0.0, True),
                                     ("--chunk-seconds", args.chunk_seconds, 0.0, True)):
        if value is not None and not (math.isfinite(value)
                                      and (value > low if strict else value >= low)):
            finite = "" if math.isfinite(value) else "finite "  # inf is above 0: say why not
            raise bad(flag, value, f"a {finite}number above 0" if strict
                      else f"a {finite}number >= 0")
    for flag, count, least, most in (("--max-frames", args.max_frames, 1, None),
                                     ("--skip-similar", args.skip_similar, 0, 64),
                                     ("--workers", args.workers, 1, MAX_WORKERS)):
        if count is not None and (count < least or (most is not None and count > most)):
            raise bad(flag, count, f"a whole number >= {least}" if most is None
                      else f"a whole number in {least}..{most}")
    if args.end is not None and args.end <= (args.start or 0):
        raise bad("--end", args.end, f"after --start ({args.start or 0:g})")
    if args.quality is not None:
        if args.codec != "jpeg":
            raise InvalidInputError(f"--quality is for --codec jpeg; {args.codec} is lossless "
                                    f"(ingest of {args.file}; nothing was created)")
        if not 1 <= args.quality <= 95:
            raise bad("--quality", args.quality, "a whole number in 1..95")


def _storage_options(text: str | None) -> dict[str, Any] | None:
    from .common import storage_options_arg

    return storage_options_arg(text, "--source-storage-options")


def cmd_ingest(store: Store, args: argparse.Namespace) -> int:
    from .newstore import keep_if_used

    try:
        tl = store.ingest_video(
            args.file, args.profile, fps=args.fps, start=args.start, end=args.end,
            max_frames=args.max_frames, chunk_seconds=args.chunk_seconds,
            skip_similar=args.skip_similar, codec=args.codec, quality=args.quality,
            workers=args.workers, source_asset_id=args.source_asset_id,
            storage_options=_storage_options(args.source_storage_options),
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
    """A frame's sequence number (digits), else a hex perceptual hash."""
    if text.startswith("-") and text[1:].isdigit():  # not "sequence_or_hash must be ..."
        raise InvalidInputError(f"{text!r} is neither a frame's sequence number (0 or more) "
                                "nor a perceptual hash (16 hex digits)")
    if text.isdigit() and len(text) != 16:
        return int(text)
    if parse_hash(text) is None:
        raise InvalidInputError(
            f"{text!r} is neither a frame's sequence number nor a perceptual hash (hex digits)"
        )
    return text


def cmd_similar(store: Store, args: argparse.Namespace) -> int:
    tid = timeline_ref(store, args.timeline)
    found = store.similar_frames(tid, _query(args.query), max_distance=args.max_distance,
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
    print(render_tree(timeline, checkpoints, shorts=shorts))
    a, b = shorts[leaves[0]], shorts[leaves[-1]]  # short ids differ, made in one ms or not
    print(f"\nnext: localckpt show {b}")
    print(f"      localckpt diff {a} {b} --stage detect --frames")
    print("      localckpt serve    # the tree, the frames and their boxes in a browser")
    return 0


def _check_file(args: argparse.Namespace, stack: Any) -> None:
    """What can be checked before the store is created, so that a failed ingest creates
    no store: the arguments (argparse checked each number), and that FILE opens as a
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
    _check_numbers(args)
    check_codec(args.codec, 90 if args.quality is None else args.quality)
    name = source_name(args.file)
    with VideoSource(args.file, name,
                     _storage_options(args.source_storage_options)) as source:
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


def _check_demo(args: argparse.Namespace, stack: Any) -> None:
    """The demo's arguments, checked before the store is created (a failed demo creates
    no store)."""
    from ..demo import MAX_DEMO_FRAMES

    if not 1 <= args.frames <= MAX_DEMO_FRAMES:  # said as ingest says its numbers
        raise InvalidInputError(f"--frames must be a whole number in 1..{MAX_DEMO_FRAMES}, "
                                f"not {args.frames} (nothing was created)")


def register(sub: Any) -> None:
    p = add_command(sub, "ingest", "sample a video file into a new timeline (needs PyAV)",
                    cmd_ingest, creates=True)
    p.set_defaults(prepare=_check_file)
    p.add_argument("file", metavar="FILE", help="video file, or an fsspec URL (s3://...)")
    p.add_argument("--profile", default="", metavar="NAME", help="sampling profile name")
    p.add_argument("--fps", type=_fps, default=2.0, metavar="FPS",
                   help="frames per second, by presentation time (default 2); 'all' keeps "
                        "every decoded frame")
    p.add_argument("--start", type=float, metavar="SECONDS", help="skip the video before this")
    p.add_argument("--end", type=float, metavar="SECONDS", help="stop before this time")
    p.add_argument("--max-frames", type=int, metavar="N", help="store at most N frames")
    p.add_argument("--chunk-seconds", type=float, metavar="SECONDS",
                   help="chunk_id = index of the window of this many seconds a frame is in")
    p.add_argument("--skip-similar", type=int, metavar="BITS",
                   help="drop a frame within BITS (Hamming) of the last kept frame's hash")
    p.add_argument("--codec", choices=("jpeg", "png"), default="jpeg",
                   help="how frames are stored (default jpeg; png is lossless)")
    p.add_argument("--quality", type=int, metavar="Q",
                   help="JPEG quality 1..95 (default 90; jpeg only)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="encoder threads, 1..64 (default 2)")
    p.add_argument("--source-asset-id", metavar="ID", help="the video's id in another system")
    p.add_argument("--source-storage-options", metavar="JSON",
                   help="fsspec options for reading FILE when it is a URL, as a JSON object")

    p = add_command(sub, "similar", "frames whose perceptual hash is near a frame's or a hash",
                    cmd_similar)
    p.add_argument("timeline", metavar="TIMELINE", help=TIMELINE_HELP)
    p.add_argument("query", metavar="SEQ_OR_HASH",
                   help="a frame's sequence number, or a perceptual hash (16 hex digits)")
    p.add_argument("--max-distance", type=whole(0, 64), default=8, metavar="BITS",
                   help="largest Hamming distance to list (default 8)")
    p.add_argument("--limit", type=whole(1), metavar="N", help="list at most N frames")

    p = add_command(sub, "demo", "run a toy two-stage pipeline with two config tries",
                    cmd_demo, creates=True)
    p.set_defaults(prepare=_check_demo)
    p.add_argument("--frames", type=int, default=24, metavar="N",
                   help="frames in the synthetic video (default 24)")
