"""Commands that move work between stores: push, pull, export, import.

The other store of push and pull is a named remote (``localckpt remote add``) or a URL,
described by its own settings (the remote's entry in the config file, and
``--remote-objects``, ``--remote-storage-options``, ``--remote-storage-options-from``,
which win over the entry), never by this store's flags, ``$LOCALCKPT_*`` or ``[store]``.

push, pull and import print, after their report, a line per stage run of the receiving
store that the deletions they copied closed (as prune does).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import HiddenWorkError, NotFoundError
from ..store import Store
from .common import (
    CHECKPOINT_HELP,
    TIMELINE_HELP,
    add_command,
    add_output,
    bare_name,
    options_arg,
    output_file,
    print_report,
    progress,
    remote_in_errors,
    short_ids_in_text,
    timeline_ref,
)

if TYPE_CHECKING:
    from ..sync import SyncReport

__all__ = ["open_remote", "register", "remote_settings"]

_BARE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def remote_settings(args: argparse.Namespace) -> tuple[str, str | None, dict[str, Any], str]:
    """(url, objects, storage_options, label) of the other store of push / pull: the
    named remote's entry, overridden by the --remote-* flags. label is for output and
    never holds a password."""
    from ..config import remote, storage_options_from
    from ..registry import redact

    named = remote(args.remote) if "/" not in args.remote else None
    if named is None:
        _refuse_unknown_name(args.remote, args.command)
    flag_options = args.remote_storage_options  # a dict (options_arg)
    if named is not None:
        url, objects, options = named.url, named.objects, named.resolved_options()
        label = f"{named.name} ({redact(url)})"
    else:
        url, objects, options, label = args.remote, None, {}, redact(args.remote)
    if args.remote_storage_options_from:
        options.update(storage_options_from(args.remote_storage_options_from))
    options.update(flag_options or {})
    return url, args.remote_objects or objects, options, label


class _UnknownRemote(NotFoundError):
    """REMOTE is a bare word naming no remote and no directory: said whole, as it is."""


def _refuse_unknown_name(ref: str, command: str) -> None:
    """A bare word that is no remote and no existing directory is a mistyped remote name
    (as git says), not a new store to create in the working directory."""
    import difflib
    import os

    from ..config import remotes
    from ..registry import scheme_of

    if _BARE.fullmatch(ref) and scheme_of(ref) == "" and not os.path.exists(ref):
        names = [r.name for r in remotes()]
        near = difflib.get_close_matches(ref, names, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        known = ", ".join(names) or "none yet"
        new = "" if command == "pull" else \
            f"; for a new store in a directory, write ./{ref}"
        raise _UnknownRemote(
            f"no remote named {ref!r} ({hint}remotes: {known}; see `localckpt remote list`), "
            f"and no directory {ref!r} here{new}"
        )


def open_remote(args: argparse.Namespace, *, create: bool) -> tuple[Store, str]:
    """The other store of push / pull (see remote_settings) and its label."""
    from ..objects import credentials_source
    from ..registry import open as open_store

    url, objects, options, label = remote_settings(args)
    with credentials_source(functools.partial(_credentials_source, args)):
        return open_store(url, objects=objects, storage_options=options, create=create,
                          environ=False), label


def _credentials_source(args: argparse.Namespace) -> str:
    """Where the other store's S3 credentials come from, for the message when S3 finds
    none (see remote_settings)."""
    from ..config import remote

    if args.remote_storage_options_from:
        return (f"They come from --remote-storage-options-from {args.remote_storage_options_from}"
                ": add key and secret there, or set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY")
    named = remote(args.remote) if "/" not in args.remote else None
    if named is not None:
        return named.credentials_source()
    return ("Give them with --remote-storage-options-from NAME (an environment variable "
            "or a table of the credentials file holding key and secret), or save the store "
            "as a remote with `localckpt remote add ... --storage-options-from NAME`, or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


def cmd_push(store: Store, args: argparse.Namespace) -> int:
    from ..sync import sync

    tid = None if args.timeline is None else timeline_ref(store, args.timeline)
    dest, label = open_remote(args, create=True)
    with dest:
        with _hidden_by_short_ids(dest):
            report = sync(store, dest, tid, progress=progress(), hide_unseen=args.force)
        print_report(report, args, f"push to {label}", stores=(dest, store), remote=label)
        _print_closed(dest, report, args, f" in {label}")
    return 0


def _open_source(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    """pull's source, opened before this store: a missing source creates nothing here."""
    try:
        source, args.source_label = open_remote(args, create=False)
    except _UnknownRemote as exc:  # whole: its parentheses hold a ";"
        raise NotFoundError(str(exc), cli=f"nothing to pull: {exc}") from None
    except NotFoundError as exc:  # its message told to fix --store, which named this store
        what = exc.for_cli().split(";", 1)[0]
        raise NotFoundError(
            str(exc), cli=f"nothing to pull: {what}; check pull's REMOTE (a remote's name, "
            "see `localckpt remote list`, a URL or a directory)") from None
    args.source_store = stack.enter_context(source)
    if args.timeline is not None:
        with _source_as_typed(source, args):
            args.timeline = timeline_ref(source, args.timeline)


def _source_as_typed(source: Store, args: argparse.Namespace
                     ) -> contextlib.AbstractContextManager[None]:
    """Errors about pull's source name it as REMOTE was typed, when it is a remote's name
    that `localckpt --store NAME` opens too (see common.remote_in_errors): a TIMELINE it
    does not have said "see `localckpt --store /abs/path ls`"."""
    from ..config import remote

    if bare_name(args.remote) and remote(args.remote) is not None:
        return remote_in_errors(source, args.remote)
    return contextlib.nullcontext()


def cmd_pull(store: Store, args: argparse.Namespace) -> int:
    from ..sync import sync

    source, label = args.source_store, args.source_label
    with _hidden_by_short_ids(store):
        report = sync(source, store, args.timeline, progress=progress(),
                      hide_unseen=args.force)
    print_report(report, args, f"pull from {label}", stores=(store, source), remote=label)
    _print_closed(store, report, args)
    return 0


@contextlib.contextmanager
def _hidden_by_short_ids(dst: Store) -> Iterator[None]:
    """A transfer refused for the work its deletions would take names that work by its
    short id in dst, where it is (it said "first: 01a2503c-e092-73f7-88f6-371c355e770b"),
    as its warnings do (print_report's stores)."""
    try:
        yield
    except HiddenWorkError as exc:
        exc.cli = short_ids_in_text([exc.for_cli()], dst)[0]
        raise


def _check_bundle(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    """import's file is read before this store is opened (a bad file creates nothing)."""
    from ..bundle import BundleSource

    BundleSource(args.file, cli_store=args.store).close()


def cmd_export(store: Store, args: argparse.Namespace) -> int:
    from ..bundle import export_bundle
    from .common import checkpoint_ref

    tid = timeline_ref(store, args.timeline)
    cid = None if args.checkpoint is None else checkpoint_ref(store, args.checkpoint)
    if cid is not None and (on := store.get_checkpoint(cid).timeline_id) != tid:
        from ..errors import InvalidInputError

        # it said "no checkpoint '<full id>' in timeline <full id> of SQLite catalog ..."
        raise InvalidInputError(
            f"--checkpoint {args.checkpoint} ({store.short_id(cid)}) is on timeline "
            f"{store.short_id(on, 'timeline')}, not on {store.short_id(tid, 'timeline')}; "
            f"export {store.short_id(on, 'timeline')} with it, or name a checkpoint of "
            f"{store.short_id(tid, 'timeline')}")
    report = export_bundle(store, tid, output_file(args.file, "export"), checkpoint_id=cid,
                           progress=progress(), overwrite=args.force)
    print_report(report, args, f"export to {args.file}", file=args.file)
    return 0


def cmd_import(store: Store, args: argparse.Namespace) -> int:
    from ..bundle import import_bundle

    with _hidden_by_short_ids(store):
        report = import_bundle(store, args.file, progress=progress())
    print_report(report, args, f"import from {args.file}", stores=(store,), file=args.file)
    _print_closed(store, report, args)
    return 0


def _print_closed(store: Store, report: SyncReport, args: argparse.Namespace,
                  where: str = "") -> None:
    """A line per stage run of store (the receiving one) that the deletions copied
    closed, and what becomes of it (with --json: the report's closed_runs only)."""
    if args.json or not report.closed_runs:
        return
    shorts = store.short_ids(report.closed_runs, "run")
    for run_id in report.closed_runs:
        print(f"  closed run {shorts.get(run_id, run_id)}{where}: a deletion copied took "
              "what it depended on; its parts go at the next gc")


def _remote_options(p: argparse.ArgumentParser, role: str) -> None:
    p.add_argument("remote", metavar="REMOTE",
                   help=f"{role} store: a remote's name (see `localckpt remote list`), a URL "
                   "or a directory")
    p.add_argument("timeline", metavar="TIMELINE", nargs="?",
                   help=TIMELINE_HELP + "; only this one (default: every timeline)")
    p.add_argument("--remote-objects", metavar="URL",
                   help=f"objects URL of the {role} store (e.g. s3://bucket/prefix)")
    p.add_argument("--remote-storage-options", metavar="JSON",
                   type=options_arg("--remote-storage-options"),
                   help=f"fsspec options of the {role} store's objects, as a JSON object")
    p.add_argument("--remote-storage-options-from", metavar="NAME",
                   help=f"secret fsspec options of the {role} store: an environment variable "
                   "holding JSON, or a table of the credentials file")
    _force_option(p)


def _force_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="let the deletions copied delete checkpoints the other side never "
                   "held (work saved below what it deleted); without it, such a transfer "
                   "copies nothing and exits 1, naming them")


def register(sub: Any) -> None:
    p = add_command(sub, "push", "copy what REMOTE lacks from this store", cmd_push)
    _remote_options(p, "destination")
    p.add_argument("--dest-objects", dest="remote_objects", help=argparse.SUPPRESS)

    p = add_command(sub, "pull", "copy what this store lacks from REMOTE", cmd_pull,
                    creates=True)
    _remote_options(p, "source")
    p.set_defaults(prepare=_open_source)
    p.add_argument("--source-objects", dest="remote_objects", help=argparse.SUPPRESS)

    p = add_command(sub, "export", "write a timeline (frames, tree, outputs) to one file",
                    cmd_export)
    p.add_argument("timeline", metavar="TIMELINE", help=TIMELINE_HELP)
    add_output(p, "file", "FILE", "bundle file to write, a zip")
    p.add_argument("--checkpoint", metavar="CHECKPOINT",
                   help=CHECKPOINT_HELP + "; only its subtree (and what it derives from)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")

    p = add_command(sub, "import", "add a bundle's timeline to this store (union)", cmd_import,
                    creates=True)
    p.add_argument("file", metavar="FILE", help="bundle file written by export")
    p.set_defaults(prepare=_check_bundle)
