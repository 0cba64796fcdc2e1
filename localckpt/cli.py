"""The ``localckpt`` command line: look at a store, and run the demo.

Exit status: 0 success, 1 a localckpt error (message on stderr), 2 bad usage.
The store comes from ``--store``, else ``$LOCALCKPT_URL``, else ``./.localckpt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .errors import InvalidInputError, LocalckptError, NotFoundError
from .records import checkpoint_to_dict, timeline_to_dict
from .registry import open as open_store
from .render import render_checkpoint, render_tree
from .store import Store

__all__ = ["main"]

Command = Callable[[Store, argparse.Namespace], int]


def _resolve_timeline(store: Store, ref: str) -> str:
    """A full timeline id, from the id or a unique prefix of it (as git does for hashes)."""
    ids = [t.id for t in store.list_timelines()]
    if ref in ids:
        return ref
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFoundError(f"no timeline matches {ref!r} (see `localckpt ls`)")
    raise InvalidInputError(f"{ref!r} matches {len(matches)} timelines; give more characters")


def cmd_ls(store: Store, args: argparse.Namespace) -> int:
    timelines = store.list_timelines()
    if args.json:
        print(json.dumps([timeline_to_dict(t) for t in timelines], indent=2))
        return 0
    if not timelines:
        print(f"no timelines in {store.url or store.catalog.describe()}")
        return 0
    print(f"{'TIMELINE':36}  {'FRAMES':>6}  {'FPS':>5}  {'CREATED':19}  PROFILE  SOURCE")
    for t in timelines:
        created = t.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{t.id:36}  {t.frame_count:6d}  {t.fps:5g}  {created:19}  "
            f"{t.profile_name}  {t.source_video}"
        )
    return 0


def cmd_tree(store: Store, args: argparse.Namespace) -> int:
    timeline = store.get_timeline(_resolve_timeline(store, args.timeline))
    checkpoints = store.checkpoints(timeline.id)
    if args.json:
        print(json.dumps([checkpoint_to_dict(c) for c in checkpoints], indent=2))
    else:
        print(render_tree(timeline, checkpoints))
    return 0


def cmd_show(store: Store, args: argparse.Namespace) -> int:
    c = store.get_checkpoint(args.checkpoint)
    outputs = dict(c.stage_outputs)
    if args.json:
        record = checkpoint_to_dict(c)
        record["stage_outputs"] = outputs
        print(json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(render_checkpoint(c, outputs))
    return 0


def cmd_demo(store: Store, args: argparse.Namespace) -> int:
    from .demo import run_demo

    timeline, leaves = run_demo(store, frame_count=args.frames)
    print(f"demo: stored {timeline.frame_count} frames and ran detect -> track with two "
          f"thresholds in {store.url}\n")
    print(render_tree(timeline, store.checkpoints(timeline.id)))
    print(f"\nnext: localckpt show {leaves[-1]}")
    return 0


def cmd_gc(store: Store, args: argparse.Namespace) -> int:
    from .gc import collect_garbage

    report = collect_garbage(store, older_than=args.older_than, dry_run=args.dry_run)
    print(report.summary())
    for tid in report.orphan_timelines:
        print(f"  {tid}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localckpt",
        description="Local-first store for video-pipeline state: timelines and checkpoint trees.",
    )
    parser.add_argument(
        "--store", metavar="URL",
        help="store URL or directory (default: $LOCALCKPT_URL, else ./.localckpt)",
    )
    parser.add_argument("--objects", metavar="URL", help="objects URL (e.g. s3://bucket/prefix)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ls", help="list timelines")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("tree", help="show a timeline's checkpoint tree")
    p.add_argument("timeline", metavar="TIMELINE", help="timeline id (or a unique prefix)")
    p.add_argument("--json", action="store_true", help="print the checkpoints as JSON")
    p.set_defaults(func=cmd_tree)

    p = sub.add_parser("show", help="show one checkpoint: outputs, config, stats")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("demo", help="run a toy two-stage pipeline with two config tries")
    p.add_argument("--frames", type=int, default=24, help="frames in the synthetic video")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("gc", help="remove frame objects no timeline refers to (failed ingests)")
    p.add_argument("--older-than", type=float, default=3600.0, metavar="SECONDS",
                   help="only objects at least this old (default 3600: spares live ingests)")
    p.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    p.set_defaults(func=cmd_gc)

    _register_extensions(sub)
    return parser


def _register_extensions(sub: Any) -> None:
    """Subcommands that live in their own modules (sync, merge, bundles)."""
    from .cli_sync import register

    register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with open_store(args.store, objects=args.objects) as store:
            return int(args.func(store, args))
    except LocalckptError as exc:
        print(f"localckpt: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `localckpt tree X | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
