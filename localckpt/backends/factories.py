"""Factories the registry calls: URL + settings -> (Catalog, Objects)."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any
from urllib.parse import urlsplit

from ..canonical import FORMAT as CANONICAL_FORMAT
from ..catalog import Catalog
from ..errors import (
    BackendUnavailableError,
    CorruptDataError,
    InvalidInputError,
    NotFoundError,
    SchemaVersionError,
)
from ..objects import Objects

__all__ = ["embedded", "memory", "postgres"]

#: Format of the embedded store this code writes. 1: segment logs and packs of frames.
#: 2: segments, compacted runs (indexed, sorted by timeline), blob files and a manifest
#: (``backends/_runfile.py``). Format 1 stores open as they are (their packs are read
#: like segments) and become format 2 at their first compaction.
_FORMAT = 2
_READABLE = (0, 1, 2)


def _embedded_dir(url: str) -> str:
    if "://" not in url:
        return url
    parts = urlsplit(url)
    path = parts.netloc + parts.path  # duckdb://rel/dir and duckdb:///abs/dir
    if not path:
        raise InvalidInputError(f"store URL {url!r} names no directory")
    return path


def embedded(
    url: str, objects: str | None, storage_options: dict[str, Any], options: dict[str, Any]
) -> tuple[Catalog, Objects]:
    """A directory holding catalog/ (segment logs) and objects/ (frame shards)."""
    from .embedded import EmbeddedCatalog

    create = bool(options.pop("create", False))
    unknown = set(options) - {"fsync", "compact_after"}
    if unknown:
        raise InvalidInputError(f"unknown option(s) for the embedded store: {sorted(unknown)}")
    root = os.path.abspath(os.path.expanduser(_embedded_dir(url)))
    if os.path.exists(root) and not os.path.isdir(root):
        raise InvalidInputError(f"{root} exists and is not a directory; cannot open a store there")
    marker = os.path.join(root, "LOCALCKPT.json")
    if not os.path.exists(marker):
        _check_can_create(root, create)
    os.makedirs(root, exist_ok=True)
    if os.path.exists(marker):
        _check_marker(marker)
    else:
        tmp = f"{marker}.{uuid.uuid4().hex}"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                # canonical_json: the version of the canonical bytes outputs are written in
                # from now on (localckpt.canonical.FORMAT); outputs of older versions stay
                # readable, as each is verified against the hash of its own stored bytes.
                json.dump({"format": _FORMAT, "kind": "localckpt embedded store",
                           "canonical_json": CANONICAL_FORMAT}, fh)
            os.replace(tmp, marker)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot write the store marker {marker}: {exc}; check the permissions of "
                f"{root}") from exc
    catalog = EmbeddedCatalog(os.path.join(root, "catalog"), marker=marker, **options)
    objs = Objects.from_url(objects or os.path.join(root, "objects"), storage_options)
    return catalog, objs


def _check_marker(marker: str) -> None:
    """The marker names a format this code reads; else a typed error saying why."""
    try:
        with open(marker, encoding="utf-8") as fh:
            d = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CorruptDataError(
            f"the store marker {marker} cannot be read ({exc}); it should hold JSON like "
            f'{{"format": {_FORMAT}}}. Restore it, or rewrite it if you know the format'
        ) from None
    fmt = d.get("format", 0) if isinstance(d, dict) else None
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise CorruptDataError(
            f"the store marker {marker} names format {fmt!r}, which is not a format number; "
            f'it should hold JSON like {{"format": {_FORMAT}}}'
        )
    if fmt not in _READABLE:
        if fmt > _FORMAT:
            raise SchemaVersionError(
                f"the store at {os.path.dirname(marker)} has format {fmt}; this localckpt "
                f"reads formats up to {_FORMAT} (upgrade localckpt)"
            )
        raise CorruptDataError(f"the store marker {marker} names unknown format {fmt}")


def _check_can_create(root: str, create: bool) -> None:
    """A directory without a marker is a store only if create says so; an existing
    directory that holds other things is never taken for one silently."""
    present = os.path.isdir(root)
    entries = os.listdir(root) if present else []
    if entries and os.path.isdir(os.path.join(root, "catalog")):
        return  # a store from before the marker existed
    if not create:
        raise NotFoundError(
            f"no localckpt store at {root}; create one with `localckpt init` (or "
            f"`localckpt --store {root} init`), or open it with create=True",
            cli=f"no localckpt store at {root}; create one with `localckpt --store {root} "
            "init`, or check the --store path",
        )


def memory(
    url: str, objects: str | None, storage_options: dict[str, Any], options: dict[str, Any]
) -> tuple[Catalog, Objects]:
    """A fresh, empty in-process store on every call (the reference backend)."""
    from .memory import MemoryCatalog

    options.pop("create", None)
    if options:
        raise InvalidInputError(f"the memory store takes no options, got {sorted(options)}")
    objs = Objects.from_url(objects or f"memory://localckpt-{uuid.uuid4().hex}", storage_options)
    return MemoryCatalog(), objs


def postgres(
    url: str, objects: str | None, storage_options: dict[str, Any], options: dict[str, Any]
) -> tuple[Catalog, Objects]:
    """PostgreSQL catalog; objects must be named (S3/MinIO in production)."""
    if not objects:
        raise InvalidInputError(
            "a postgresql store needs an objects URL for frame shards: pass objects="
            "'s3://bucket/prefix' (or a directory) or set LOCALCKPT_OBJECTS",
            cli="a postgresql store needs an objects URL for frame shards: give --objects "
            "s3://bucket/prefix (--remote-objects for the other store of push or pull), or "
            "set LOCALCKPT_OBJECTS for --store",
        )
    from .postgres import open_catalog

    return open_catalog(url, **options), Objects.from_url(objects, storage_options)
