"""A creating command that fails after it created its store takes the store back.

``ingest`` checks its arguments and that the video opens before the store is created,
but some failures only show while decoding (a truncated file, frames that do not
decode, a stream with no frames): by then the store exists. What this command made for
it goes again, so the file system is as it was:

- an embedded directory (it was missing, or an empty directory): the marker, the
  catalog's files, the empty ``objects/`` tree, the directories ``makedirs`` made above it;
- a DuckDB file that did not exist: the file, its ``.wal``, the directories above it;
- a local objects directory (``--objects DIR``, ``$LOCALCKPT_OBJECTS``, a DuckDB file's
  ``FILE.objects/``) that was missing or empty: its empty tree, the directories above it.

Only those names, and only while no object is there and the catalog holds no timeline:
anything another process put into the new store in the meantime (a timeline, a lease of
a write in progress, a file of its own) keeps the store where it is. A PostgreSQL schema
stays: other clients of the server may have found it by then, and dropping a schema
takes whatever is in it (docs/cli.md says so).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from types import TracebackType
from typing import Any

__all__ = ["NewStore", "StoreIsNew", "keep_if_used", "new_store"]

#: What creating an embedded store writes into its directory (besides objects/).
_CREATED = ("LOCALCKPT.json", "catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm",
            "catalog.sqlite-journal", "catalog.sqlite-writers")


def _url(args: argparse.Namespace) -> str | None:
    """The store URL the global flags name; None for a remote's name (its settings are
    its own)."""
    from ..config import remote, store_settings
    from ..registry import DEFAULT_URL
    from .common import bare_name

    ref = args.store
    if bare_name(ref) and remote(ref) is not None:
        return None
    return ref or os.environ.get("LOCALCKPT_URL") or store_settings().get("url") or DEFAULT_URL


def _is_new(path: str) -> bool:
    """Opening the store will make path: it is missing, or an empty directory."""
    if os.path.isdir(path):
        return not os.listdir(path)
    return not os.path.lexists(path)


def _missing_above(path: str) -> list[str]:
    """path and the directories above it that do not exist, deepest first: what
    ``makedirs(path)`` makes."""
    made: list[str] = []
    while not os.path.exists(path):
        made.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return made


def _remove_empty_tree(top: str) -> bool:
    """Remove the directories under top (top too) when none holds a file; False, and
    nothing removed, when one does."""
    dirs: list[str] = []
    for here, _, files in os.walk(top):
        if files:
            return False
        dirs.append(here)
    for path in reversed(dirs):  # deepest first
        os.rmdir(path)
    return True


def _remove_made(made: list[str]) -> None:
    """The directories makedirs made, deepest first, up to the first that is not empty
    (something else is in it, so in those above it too)."""
    for path in made:
        try:
            os.rmdir(path)
        except OSError:
            return


class _Undo:
    """An exit callback (``ExitStack.push``, before the store is opened so that it runs
    after the store is closed): on an exception, undo what opening the store created.
    ``keep`` set to True (the command saw timelines in the store) keeps it."""

    def __init__(self) -> None:
        self.keep = False

    def __call__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if kind is not None and not self.keep:
            with contextlib.suppress(OSError):  # cannot remove: it stays, the error goes on
                self.undo()
        return False  # the error goes on to be reported

    def undo(self) -> bool:
        """Take back what was made; False when something stays (not ours to take)."""
        raise NotImplementedError


class StoreIsNew(_Undo):
    """A new embedded store's directory at root."""

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root
        # makedirs makes every missing directory down to root: remove those, deepest first
        self.made = _missing_above(root)

    def undo(self) -> bool:
        if not _remove_empty_tree(os.path.join(self.root, "objects")):
            return False  # frames or a lease: not ours to take
        for name in _CREATED:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.root, name))
        _remove_made(self.made)  # only the directories this command made, each if empty
        return True


class DuckdbIsNew(_Undo):
    """A new DuckDB catalog file at path (DuckDB lets one process at a time open it:
    another one could not have used it before this one closed it)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.made = _missing_above(os.path.dirname(path))

    def undo(self) -> bool:
        for name in (self.path, f"{self.path}.wal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)
        _remove_made(self.made)
        return True


class ObjectsAreNew(_Undo):
    """A local objects directory that was missing (it goes, with the directories made
    above it) or empty (it stays, emptied of the tree the store made in it). Whatever
    the catalog says, a file in it (another process's frames or lease) keeps it."""

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root
        self.made = _missing_above(root)

    def undo(self) -> bool:
        if self.made:
            if not _remove_empty_tree(self.root):
                return False
            _remove_made(self.made[1:])
            return True
        # it was an empty directory: it stays, without what the store made in it
        for name in os.listdir(self.root):
            if not _remove_empty_tree(os.path.join(self.root, name)):
                return False
        return True


class NewStore:
    """The exit callback of a creating command (``ExitStack.push`` before the store is
    opened, so that it runs after the store is closed): on an exception, take back the
    new objects directory, then the new catalog. Objects stay when a file is in them,
    and the catalog with them (it may describe those files); the catalog stays when
    ``keep`` is set (the command saw timelines in it)."""

    def __init__(self, catalog: _Undo | None, objects: ObjectsAreNew | None) -> None:
        self.catalog = catalog
        self.objects = objects
        self.keep = False

    def __call__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if kind is None:
            return False
        with contextlib.suppress(OSError):  # cannot remove: it stays, the error goes on
            if self.objects is not None and not self.objects.undo():
                return False
            if self.catalog is not None and not self.keep:
                self.catalog.undo()
        return False  # the error goes on to be reported


def _objects_dir(args: argparse.Namespace, url: str, default: str | None) -> str | None:
    """The local objects directory the store at url will have, else None (S3, memory)."""
    from ..config import store_settings
    from ..objects import _local_dir
    from ..registry import paired_objects

    objects = args.objects or paired_objects(url, store_settings()) or default
    return _local_dir(objects) if isinstance(objects, str) and objects else None


def new_store(args: argparse.Namespace) -> NewStore | None:
    """What opening the store the global flags name will create, to take back if the
    command fails (see the module docstring); None when it creates nothing we can."""
    from ..backends.factories import directory_of
    from ..registry import scheme_of

    url = _url(args)
    if url is None:
        return None
    scheme = scheme_of(url)
    catalog: _Undo | None = None
    default: str | None = None
    try:
        if scheme in ("", "file", "sqlite"):
            root = directory_of(url)
            catalog = StoreIsNew(root) if _is_new(root) else None
        elif scheme == "duckdb":
            path = directory_of(url)
            if os.path.isdir(path):
                return None  # an embedded store named the old way: opened as one
            catalog = None if os.path.lexists(path) else DuckdbIsNew(path)
            default = f"{path}.objects"
        elif scheme not in ("postgresql", "postgres", "memory"):
            return None
        place = _objects_dir(args, url, default)
    except Exception:  # a bad URL: opening it says what is wrong
        return None
    objects = ObjectsAreNew(place) if place is not None and _is_new(place) else None
    return None if catalog is None and objects is None else NewStore(catalog, objects)


def keep_if_used(store: Any, undo: _Undo | NewStore | None) -> None:
    """After a failure, keep the new store when it holds a timeline (another process
    used it meanwhile, its objects elsewhere than objects/)."""
    if undo is None:
        return
    try:
        undo.keep = bool(store.list_timelines())
    except Exception:
        undo.keep = True  # cannot tell: keep it
