"""CLI subcommands for moving work between stores: diff, merge, push, pull, export, import.

Registered into ``localckpt.cli`` by :func:`register`. Long transfers show a tqdm bar on
stderr when stderr is a terminal (tqdm is a core dependency); otherwise they are silent.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from typing import Any

import attrs

from .store import Store
from .tree import Marker

__all__ = ["register"]


def _progress() -> bool | None:
    """True (a tqdm bar) when tqdm is installed and stderr is a terminal, else None."""
    if importlib.util.find_spec("tqdm") is None or not sys.stderr.isatty():
        return None
    return True


def _print_report(report: Any, args: argparse.Namespace, what: str) -> None:
    if args.json:
        print(json.dumps(attrs.asdict(report), indent=2))
    else:
        print(f"{what}: {report.summary()}")


def _other(url: str, objects: str | None) -> Store:
    from .registry import open as open_store

    return open_store(url, objects=objects)


def _timeline(store: Store, ref: str | None) -> str | None:
    """A full timeline id from an id or unique prefix (None stays None: every timeline)."""
    if ref is None:
        return None
    from .cli import _resolve_timeline

    return _resolve_timeline(store, ref)


def cmd_diff(store: Store, args: argparse.Namespace) -> int:
    d = store.diff(args.a, args.b)
    if args.json:
        def enc(pairs: Any) -> Any:
            return {k: [None if isinstance(v, Marker) else v for v in pair]
                    for k, pair in pairs.items()}

        print(json.dumps({
            "a": d.a, "b": d.b, "stages_added": d.stages_added,
            "stages_removed": d.stages_removed, "stages_changed": d.stages_changed,
            "stage_hashes": enc(d.stage_hashes), "config_changed": enc(d.config_changed),
            "stats_changed": enc(d.stats_changed),
        }, indent=2, sort_keys=True))
    else:
        print(d.render())
    return 0


def cmd_merge(store: Store, args: argparse.Namespace) -> int:
    result = store.merge(args.ours, args.theirs, strategy=args.strategy)
    if result == args.ours:
        print(f"already merged: {args.theirs} is an ancestor of {args.ours}; nothing written")
    elif result == args.theirs:
        print(f"fast-forward: {args.ours} is an ancestor of {args.theirs}; nothing written")
    else:
        print(f"merged {args.theirs} into {args.ours}: {result}")
    return 0


def cmd_push(store: Store, args: argparse.Namespace) -> int:
    from .sync import sync

    with _other(args.dest, args.dest_objects) as dest:
        report = sync(store, dest, _timeline(store, args.timeline), progress=_progress())
    _print_report(report, args, f"push to {args.dest}")
    return 0


def cmd_pull(store: Store, args: argparse.Namespace) -> int:
    from .sync import sync

    with _other(args.source, args.source_objects) as source:
        report = sync(source, store, _timeline(source, args.timeline), progress=_progress())
    _print_report(report, args, f"pull from {args.source}")
    return 0


def cmd_export(store: Store, args: argparse.Namespace) -> int:
    from .bundle import export_bundle
    from .cli import _resolve_timeline

    tid = _resolve_timeline(store, args.timeline)
    report = export_bundle(store, tid, args.file, checkpoint_id=args.checkpoint,
                           progress=_progress())
    _print_report(report, args, f"export to {args.file}")
    return 0


def cmd_import(store: Store, args: argparse.Namespace) -> int:
    from .bundle import import_bundle

    report = import_bundle(store, args.file, progress=_progress())
    _print_report(report, args, f"import from {args.file}")
    return 0


def register(sub: Any) -> None:
    """Add diff, merge, push, pull, export and import to an argparse subparsers object."""
    p = sub.add_parser("diff", help="what differs between two checkpoints")
    p.add_argument("a", metavar="A", help="checkpoint id")
    p.add_argument("b", metavar="B", help="checkpoint id")
    p.add_argument("--json", action="store_true", help="print JSON (absent values as null)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("merge", help="three-way merge THEIRS into OURS (one new checkpoint)")
    p.add_argument("ours", metavar="OURS", help="checkpoint id; the merge's parent")
    p.add_argument("theirs", metavar="THEIRS", help="checkpoint id to merge in")
    p.add_argument("--strategy", choices=("fail", "ours", "theirs"), default="fail",
                   help="on conflict: fail listing every conflict (default), or keep a side")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("push", help="copy what DEST lacks from this store (all timelines or one)")
    p.add_argument("dest", metavar="DEST", help="destination store URL or directory")
    p.add_argument("timeline", metavar="TIMELINE", nargs="?", help="timeline id or prefix")
    p.add_argument("--dest-objects", metavar="URL", help="objects URL of DEST")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("pull", help="copy what this store lacks from SOURCE")
    p.add_argument("source", metavar="SOURCE", help="source store URL or directory")
    p.add_argument("timeline", metavar="TIMELINE", nargs="?", help="timeline id or prefix")
    p.add_argument("--source-objects", metavar="URL", help="objects URL of SOURCE")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("export", help="write a timeline (frames, tree, outputs) to one file")
    p.add_argument("timeline", metavar="TIMELINE", help="timeline id or prefix")
    p.add_argument("file", metavar="FILE", help="bundle file to write (a zip)")
    p.add_argument("--checkpoint", metavar="ID",
                   help="only this checkpoint's subtree (and what it derives from)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="add a bundle's timeline to this store (union)")
    p.add_argument("file", metavar="FILE", help="bundle file written by export")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)
