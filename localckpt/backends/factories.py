"""Factories the registry calls: URL + settings -> (Catalog, Objects).

The embedded store is a directory::

    DIR/LOCALCKPT.json     the marker: {"format": 3, ...}
    DIR/catalog.sqlite     the catalog (SQLite, WAL: -wal and -shm files beside it, and
                           -writers, the lock file writing processes queue on)
    DIR/objects/           frame shards and indexes (unless objects= says otherwise)

Formats 1 and 2 (a catalog of our own log files under ``DIR/catalog/``) convert on the
first open by a process that may write the directory (``conversion``); a process that
may not reads them as they are.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from typing import Any
from urllib.parse import urlsplit

from ..canonical import FORMAT as CANONICAL_FORMAT
from ..catalog import Catalog
from ..errors import BackendUnavailableError, InvalidInputError, NotFoundError
from ..objects import Objects

__all__ = ["directory_of", "duckdb", "embedded", "memory", "postgres"]

#: Format of the embedded store this code writes (3: the SQLite catalog).
FORMAT = 3
#: Formats converted to FORMAT on open (0: a store from before the marker).
LEGACY_FORMATS = (0, 1, 2)
CATALOG_FILE = "catalog.sqlite"
MARKER = "LOCALCKPT.json"
_OPTIONS = frozenset({"fsync", "timeout"})


def _path_of(url: str) -> str:
    if "://" not in url:
        return url
    parts = urlsplit(url)
    path = parts.netloc + parts.path  # sqlite://rel/dir and sqlite:///abs/dir
    if not path:
        raise InvalidInputError(f"store URL {url!r} names no directory")
    return path


def directory_of(url: str) -> str:
    """The absolute directory of an embedded store's URL (a path, file:// or sqlite://)."""
    return os.path.abspath(os.path.expanduser(_path_of(url)))


def _checked_options(options: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise InvalidInputError(f"unknown option(s) for {what}: {sorted(unknown)} (known: "
                                f"{', '.join(sorted(allowed)) or 'none'})")


def embedded(
    url: str, objects: str | None, storage_options: dict[str, Any], options: dict[str, Any]
) -> tuple[Catalog, Objects]:
    """A directory holding the SQLite catalog and objects/ (see the module docstring)."""
    from .sql import sqlite_catalog

    create = bool(options.pop("create", False))
    _checked_options(options, _OPTIONS, "the embedded store")
    root = directory_of(url)
    if "\x00" in root:
        raise InvalidInputError("the store path holds a NUL character")
    if os.path.exists(root) and not os.path.isdir(root):
        raise InvalidInputError(f"{root} exists and is not a directory; cannot open a store there")
    marker = os.path.join(root, MARKER)
    fmt = read_marker(marker) if os.path.lexists(marker) else _unmarked(root, create)
    writable = os.access(root, os.W_OK) if os.path.isdir(root) else True
    # objects named elsewhere (s3://...) are opened before anything is written here: one
    # that cannot be (a package not installed, bad options) leaves no half-made store
    given = Objects.from_url(objects, storage_options) if objects else None
    catalog: Catalog
    if fmt in LEGACY_FORMATS:
        from .conversion import convert, read_only_catalog

        if not writable:
            catalog = read_only_catalog(root)
            return catalog, given or _objects(root, storage_options)
        convert(root)
    elif fmt is None:  # a new store
        os.makedirs(root, exist_ok=True)
        _write_marker(marker)
    catalog = sqlite_catalog(os.path.join(root, CATALOG_FILE), create=True,
                             read_only=not writable, **options)
    return catalog, given or _objects(root, storage_options)


def _objects(root: str, storage_options: dict[str, Any]) -> Objects:
    return Objects.from_url(os.path.join(root, "objects"), storage_options)


def _unmarked(root: str, create: bool) -> int | None:
    """A directory without a marker: a store from before the marker (format 0), or
    None for a new store when create says so; never another directory taken silently."""
    entries = os.listdir(root) if os.path.isdir(root) else []
    if entries and os.path.isdir(os.path.join(root, "catalog")):
        return 0
    if not create:
        raise NotFoundError(
            f"no localckpt store at {root}; create one with `localckpt init` (or "
            f"`localckpt --store {root} init`), or open it with create=True",
            cli=f"no localckpt store at {root}; create one with `localckpt --store {root} "
            "init`, or check the --store path",
        )
    return None


def write_marker(marker: str) -> None:
    """Write the marker of a format-3 store atomically (temp file, then rename)."""
    _write_marker(marker)


def _write_marker(marker: str) -> None:
    tmp = f"{marker}.{uuid.uuid4().hex}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            # canonical_json: the version of the canonical bytes outputs are written in
            # (localckpt.canonical.FORMAT); older outputs stay readable, as each is
            # verified against the hash of its own stored bytes.
            json.dump({"format": FORMAT, "kind": "localckpt embedded store",
                       "catalog": CATALOG_FILE, "canonical_json": CANONICAL_FORMAT}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, marker)
    except OSError as exc:
        raise BackendUnavailableError(
            f"cannot write the store marker {marker}: {exc}; check the permissions of "
            f"{os.path.dirname(marker)}") from exc


def read_marker(marker: str) -> int:
    """The format the marker names (1, 2 or 3); a typed error when it cannot be read, is
    not a regular file, or names a format this code does not know (safefiles)."""
    from ..safefiles import read_marker as read_checked

    return int(read_checked(marker, formats=(1, 2, FORMAT))["format"])


def memory(
    url: str, objects: str | None, storage_options: dict[str, Any], options: dict[str, Any]
) -> tuple[Catalog, Objects]:
    """A fresh, empty in-process store on every call (SQLite in memory)."""
    from .sql import memory_catalog

    options.pop("create", None)
    if options:
        raise InvalidInputError(f"the memory store takes no options, got {sorted(options)}")
    objs = Objects.from_url(objects or f"memory://localckpt-{uuid.uuid4().hex}", storage_options)
    return memory_catalog(), objs


def postgres(
    url: str, objects: str | None, storage_options: dict[str, Any], options: dict[str, Any]
) -> tuple[Catalog, Objects]:
    """PostgreSQL catalog; objects must be named (S3/MinIO in production)."""
    try:
        import psycopg  # noqa: F401  (the catalog's modules import it deep inside)
    except ImportError:
        raise InvalidInputError(
            "a PostgreSQL store needs psycopg, which is not installed: pip install "
            "'localckpt[postgres]'") from None
    if not objects:
        raise InvalidInputError(
            "a postgresql store needs an objects URL for frame shards: pass objects="
            "'s3://bucket/prefix' (or a directory) or set LOCALCKPT_OBJECTS",
            cli="a postgresql store needs an objects URL for frame shards: give --objects "
            "s3://bucket/prefix (--remote-objects for the other store of push or pull), or "
            "set LOCALCKPT_OBJECTS for --store",
        )
    from .sql import postgres_catalog

    create = bool(options.pop("create", False))
    _checked_options(options, frozenset({"schema", "max_size", "timeout", "prepare_threshold"}),
                     "a PostgreSQL store")
    objs = Objects.from_url(objects, storage_options)
    if create and not objs.is_local:
        try:
            return postgres_catalog(url, create=False, **options), objs
        except NotFoundError:  # a new store (a first push): a missing bucket or a dead
            objs.exists("frames")  # endpoint fails here, before its tables are made
    return postgres_catalog(url, create=create, **options), objs


def duckdb(
    url: str, objects: str | None, storage_options: dict[str, Any], options: dict[str, Any]
) -> tuple[Catalog, Objects]:
    """``duckdb:///path/file.duckdb``: the catalog in a DuckDB file (one process at a
    time), objects in ``file.duckdb.objects/`` beside it unless objects= says otherwise.

    A ``duckdb://`` URL naming a store directory (what the embedded store's URL was
    before it moved to SQLite) still opens that store, with a DeprecationWarning."""
    path = os.path.abspath(os.path.expanduser(_path_of(url)))
    if os.path.isdir(path):
        warnings.warn(
            f"duckdb://{path} names an embedded store directory; its catalog is SQLite now: "
            f"open it as {path} or sqlite://{path}", DeprecationWarning, stacklevel=4)
        return embedded(path, objects, storage_options, options)
    from .sql import duckdb_catalog

    create = bool(options.pop("create", False))
    _checked_options(options, frozenset(), "a DuckDB catalog")
    if not os.path.exists(path) and not create:
        raise NotFoundError(
            f"no DuckDB catalog at {path}; open it with create=True (or "
            "`localckpt --store duckdb://... init`)",
            cli=f"no DuckDB catalog at {path}; create one with `localckpt --store "
            f"duckdb://{path} init`, or check the --store path")
    given = Objects.from_url(objects, storage_options) if objects else None  # see embedded
    catalog = duckdb_catalog(path, create=create)
    return catalog, given or Objects.from_url(f"{path}.objects", storage_options)
