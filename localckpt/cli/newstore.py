"""A creating command that fails after it created its store takes the store back.

``ingest`` checks its arguments and that the video opens before the store is created,
but some failures only show while decoding (a truncated file, frames that do not
decode, a stream with no frames): by then the store exists. When the store is an
embedded directory that this command made (it was missing, or an empty directory), the
failure removes what the store's creation wrote (the marker, the catalog's files, the
empty ``objects/`` tree, the directories ``makedirs`` made above it), so the file system
is as it was. It removes only those names, and only when no frame object is there:
anything another process put into the new store in the meantime (a timeline, a lease of
a write in progress, a file of its own) keeps the store where it is.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from types import TracebackType
from typing import Any

__all__ = ["StoreIsNew", "keep_if_used", "new_directory"]

#: What creating an embedded store writes into its directory (besides objects/).
_CREATED = ("LOCALCKPT.json", "catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm",
            "catalog.sqlite-journal", "catalog.sqlite-writers")


def new_directory(args: argparse.Namespace) -> str | None:
    """The directory of the embedded store the global flags name when opening it will
    create it (missing, or an empty directory), else None (a store that exists, a
    remote's name, a PostgreSQL or DuckDB store)."""
    from ..backends.factories import directory_of
    from ..config import remote, store_settings
    from ..registry import DEFAULT_URL, scheme_of

    ref = args.store
    if ref and "/" not in ref and ":" not in ref and not os.path.exists(ref) \
            and remote(ref) is not None:
        return None
    url = ref or os.environ.get("LOCALCKPT_URL") or store_settings().get("url") or DEFAULT_URL
    if scheme_of(url) not in ("", "file", "sqlite"):
        return None
    try:
        root = directory_of(url)
    except Exception:  # a bad URL: opening it says what is wrong
        return None
    if os.path.isdir(root):
        return None if os.listdir(root) else root
    return None if os.path.lexists(root) else root


class StoreIsNew:
    """An exit callback (``ExitStack.push``, before the store is opened so that it runs
    after the store is closed): on an exception, undo the creation of the store at root.
    ``keep`` set to True (the command saw timelines in the store) keeps it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.keep = False
        # makedirs makes every missing directory down to root: remove those, deepest first
        self.made: list[str] = []
        path = root
        while not os.path.exists(path):
            self.made.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent

    def __call__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if kind is not None and not self.keep:
            self.undo()
        return False  # the error goes on to be reported

    def undo(self) -> None:
        objects = os.path.join(self.root, "objects")
        dirs: list[str] = []
        for top, _, files in os.walk(objects):
            if files:
                return  # frames or a lease: not ours to take
            dirs.append(top)
        with contextlib.suppress(OSError):
            for path in reversed(dirs):  # deepest first
                os.rmdir(path)
            for name in _CREATED:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.root, name))
            for path in self.made:  # only the directories this command made, each if empty
                os.rmdir(path)


def keep_if_used(store: Any, undo: StoreIsNew | None) -> None:
    """After a failure, keep the new store when it holds a timeline (another process
    used it meanwhile, its objects elsewhere than objects/)."""
    if undo is None:
        return
    try:
        undo.keep = bool(store.list_timelines())
    except Exception:
        undo.keep = True  # cannot tell: keep it
