"""Commands that move work between stores: push, pull, export, import.

The other store of push and pull is described by its own options (``--remote-objects``,
``--remote-storage-options``), never by this store's settings or environment.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InvalidInputError
from ..store import Store
from .common import add_command, print_report, progress, timeline_ref

__all__ = ["open_remote", "register"]


def _storage_options(text: str | None, flag: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{flag} is not a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"{flag} must be a JSON object of fsspec options")
    return value


def open_remote(args: argparse.Namespace, *, create: bool) -> Store:
    """The other store of push / pull, from its URL and its own --remote-* options."""
    from ..registry import open as open_store

    return open_store(
        args.remote,
        objects=args.remote_objects,
        storage_options=_storage_options(args.remote_storage_options,
                                         "--remote-storage-options"),
        create=create,
        environ=False,
    )


def cmd_push(store: Store, args: argparse.Namespace) -> int:
    from ..sync import sync

    tid = None if args.timeline is None else timeline_ref(store, args.timeline)
    with open_remote(args, create=True) as dest:
        report = sync(store, dest, tid, progress=progress())
    print_report(report, args, f"push to {args.remote_name}")
    return 0


def cmd_pull(store: Store, args: argparse.Namespace) -> int:
    from ..sync import sync

    with open_remote(args, create=False) as source:
        tid = None if args.timeline is None else timeline_ref(source, args.timeline)
        report = sync(source, store, tid, progress=progress())
    print_report(report, args, f"pull from {args.remote_name}")
    return 0


def cmd_export(store: Store, args: argparse.Namespace) -> int:
    from ..bundle import export_bundle
    from .common import checkpoint_ref

    tid = timeline_ref(store, args.timeline)
    cid = None if args.checkpoint is None else checkpoint_ref(store, args.checkpoint)
    report = export_bundle(store, tid, args.file, checkpoint_id=cid, progress=progress())
    print_report(report, args, f"export to {args.file}")
    return 0


def cmd_import(store: Store, args: argparse.Namespace) -> int:
    from ..bundle import import_bundle

    report = import_bundle(store, args.file, progress=progress())
    print_report(report, args, f"import from {args.file}")
    return 0


def _remote_options(p: argparse.ArgumentParser, role: str) -> None:
    p.add_argument("remote", metavar="REMOTE", help=f"{role} store: a URL or directory")
    p.add_argument("timeline", metavar="TIMELINE", nargs="?",
                   help="only this timeline (id or prefix); default: every timeline")
    p.add_argument("--remote-objects", metavar="URL",
                   help=f"objects URL of the {role} store (e.g. s3://bucket/prefix)")
    p.add_argument("--remote-storage-options", metavar="JSON",
                   help=f"fsspec options of the {role} store's objects, as a JSON object")


def register(sub: Any) -> None:
    p = add_command(sub, "push", "copy what REMOTE lacks from this store", cmd_push)
    _remote_options(p, "destination")
    p.add_argument("--dest-objects", dest="remote_objects", help=argparse.SUPPRESS)

    p = add_command(sub, "pull", "copy what this store lacks from REMOTE", cmd_pull,
                    creates=True)
    _remote_options(p, "source")
    p.add_argument("--source-objects", dest="remote_objects", help=argparse.SUPPRESS)

    p = add_command(sub, "export", "write a timeline (frames, tree, outputs) to one file",
                    cmd_export)
    p.add_argument("timeline", metavar="TIMELINE", help="timeline id or prefix")
    p.add_argument("file", metavar="FILE", help="bundle file to write (a zip)")
    p.add_argument("--checkpoint", metavar="CHECKPOINT",
                   help="only this checkpoint's subtree (and what it derives from)")

    p = add_command(sub, "import", "add a bundle's timeline to this store (union)", cmd_import,
                    creates=True)
    p.add_argument("file", metavar="FILE", help="bundle file written by export")
