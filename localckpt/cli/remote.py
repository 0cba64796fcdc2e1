"""Named remotes, as git has: remote add, remote list, remote remove.

A remote is kept in the config file (``[remotes.NAME]``, see :mod:`localckpt.config`);
``push NAME`` and ``pull NAME`` then use its URL and objects. These commands open no
store and never write a secret into the file.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Remote
from ..render import printable
from .common import UsageError, add_command, options_arg, print_json

__all__ = ["register"]


def _as_json(r: Remote) -> dict[str, Any]:
    """What --json shows: never a password (URLs are redacted; secret options are
    refused when the file is read, see localckpt.config)."""
    from ..registry import redact

    return {"name": r.name, "url": redact(r.url),
            "objects": None if r.objects is None else redact(r.objects),
            "storage_options": dict(r.storage_options),
            "storage_options_from": r.storage_options_from}


def _check_name(args: argparse.Namespace) -> None:
    """A name (or --storage-options-from name) wrong by its form is bad usage (exit 2),
    said as argparse says its own errors before the config file is read or written.
    remove takes any name, as a hand-edited file may hold one of another form."""
    from ..config import check_remote_name, check_storage_options_from
    from ..errors import InvalidInputError

    try:
        check_remote_name(args.name)
    except InvalidInputError as exc:
        raise UsageError(f"argument NAME: {exc}") from None
    given = getattr(args, "remote_storage_options_from", None)
    if given is not None:
        try:
            check_storage_options_from(given)
        except InvalidInputError:
            raise UsageError(
                f"argument --storage-options-from: names an environment variable or a "
                f"credentials table (letters, digits, '_', '.', '-'), not {given!r}"
            ) from None


def cmd_add(_: None, args: argparse.Namespace) -> int:
    from ..config import add_remote, config_path

    r = add_remote(args.name, args.url, objects=args.remote_objects,
                   storage_options=args.remote_storage_options,
                   storage_options_from=args.remote_storage_options_from)
    if args.json:
        print_json(_as_json(r))
    else:
        print(f"remote {printable(r.name)} -> {printable(r.url)} saved in "
              f"{printable(config_path())}")
    return 0


def cmd_list(_: None, args: argparse.Namespace) -> int:
    from ..config import remotes

    found = remotes()
    if args.json:
        print_json([_as_json(r) for r in found])
        return 0
    from ..registry import redact

    if not found:  # as ls, tags and runs say so; it printed nothing
        from ..config import config_path

        print(f"no remotes in {printable(config_path())} (add one with `localckpt remote add "
              "NAME URL`)")
        return 0
    for r in found:
        extra = f"  objects {printable(redact(r.objects))}" if r.objects else ""
        if r.storage_options_from:
            extra += f"  options from {printable(r.storage_options_from)}"
        print(f"{printable(r.name)}\t{printable(redact(r.url))}{extra}")
    return 0


def cmd_remove(_: None, args: argparse.Namespace) -> int:
    from ..config import remove_remote

    r = remove_remote(args.name)
    if args.json:
        print_json(_as_json(r))
    else:
        print(f"remote {printable(r.name)} removed")
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser("remote", help="named stores for push and pull (add, list, remove)",
                           description="Named stores for push and pull, kept in the config "
                           "file ($LOCALCKPT_CONFIG, default ~/.config/localckpt/config.toml).")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = add_command(actions, "add", "save a named remote (secrets stay out of the file)",
                    cmd_add, needs_store=False)
    p.add_argument("name", metavar="NAME", help="the remote's name (e.g. prod)")
    p.add_argument("url", metavar="URL", help="its store URL or directory (no password)")
    p.add_argument("--objects", metavar="URL", dest="remote_objects",
                   help="its objects URL (e.g. s3://bucket/prefix; a postgresql remote needs it)")
    p.add_argument("--storage-options", metavar="JSON", dest="remote_storage_options",
                   type=options_arg("--storage-options"),
                   help="non-secret fsspec options of its objects (e.g. endpoint_url)")
    p.add_argument("--storage-options-from", metavar="NAME",
                   dest="remote_storage_options_from",
                   help="where its secret options are: an environment variable holding a "
                   "JSON object, or a table of the credentials file "
                   "($LOCALCKPT_CREDENTIALS, default ~/.config/localckpt/credentials.toml)")
    p.set_defaults(check=_check_name)

    add_command(actions, "list", "list the named remotes", cmd_list, needs_store=False)

    p = add_command(actions, "remove", "forget a named remote (the store is untouched)",
                    cmd_remove, needs_store=False)
    p.add_argument("name", metavar="NAME", help="the remote's name, as `localckpt remote list` "
                   "shows it")
