"""The manifest: which compacted runs and blob files make up the catalog now.

``catalog/MANIFEST`` is replaced atomically (write, fsync, rename) by the one process
that holds ``compact.lock``; readers never take a lock. A reader that lists the
segments *before* it reads the manifest cannot miss a record: a segment is removed only
after a manifest that covers it was renamed into place. ``absorbed`` names the inputs of
the last compaction, so that a compactor that died before removing them does not merge
them twice (the next one removes them first).
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from typing import Any

import attrs

from ..errors import CorruptDataError

__all__ = ["BASE", "FANOUT", "Manifest", "RunInfo", "bump_marker", "level_of",
           "manifest_stamp", "pending_merges", "read_manifest", "write_manifest"]

NAME = "MANIFEST"
FANOUT = 4  # runs of one level that merge into one
BASE = 4096  # entries below which a run is of level 0
_MAGIC = b"LCKMAN02\n"


@attrs.frozen
class RunInfo:
    name: str
    level: int
    entries: int


@attrs.frozen
class Manifest:
    generation: int = 0
    runs: tuple[RunInfo, ...] = ()
    blobs: tuple[str, ...] = ()
    absorbed: tuple[str, ...] = ()
    purged: bool = False  # this generation removed records: readers drop cached copies

    def to_json(self) -> dict[str, Any]:
        return {"format": 2, "generation": self.generation,
                "runs": [attrs.asdict(r) for r in self.runs],
                "blobs": list(self.blobs), "absorbed": list(self.absorbed),
                "purged": self.purged}


def level_of(entries: int) -> int:
    """A run's level: log_FANOUT of its entries over BASE (0 below BASE * FANOUT)."""
    level, size = 0, BASE * FANOUT
    while entries >= size:
        level += 1
        size *= FANOUT
    return level


def pending_merges(manifest: Manifest) -> list[RunInfo] | None:
    """The runs of the lowest level that has FANOUT of them, oldest first; else None."""
    by_level: dict[int, list[RunInfo]] = {}
    for r in manifest.runs:
        by_level.setdefault(r.level, []).append(r)
    for level in sorted(by_level):
        if len(by_level[level]) >= FANOUT:
            return by_level[level][:FANOUT]
    return None


def manifest_stamp(directory: str) -> tuple[int, int, int] | None:
    """What changes whenever the manifest is replaced (None: there is none)."""
    try:
        st = os.stat(os.path.join(directory, NAME))
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_manifest(directory: str) -> Manifest:
    """The current manifest (an empty one when no compaction has run yet)."""
    path = os.path.join(directory, NAME)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return Manifest()
    try:
        if not data.startswith(_MAGIC):
            raise ValueError("bad magic")
        body, _, crc = data[len(_MAGIC):].rstrip(b"\n").rpartition(b"\n#")
        if int(crc, 16) != zlib.crc32(body):
            raise ValueError("checksum mismatch")
        d = json.loads(body)
        if d.get("format") != 2:
            raise ValueError(f"unknown manifest format {d.get('format')!r}")
        return Manifest(
            generation=int(d["generation"]),
            runs=tuple(RunInfo(str(r["name"]), int(r["level"]), int(r["entries"]))
                       for r in d["runs"]),
            blobs=tuple(str(b) for b in d["blobs"]),
            absorbed=tuple(str(a) for a in d["absorbed"]),
            purged=bool(d.get("purged", False)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptDataError(
            f"catalog manifest {path} is damaged ({exc}); it names the compacted files of "
            "the store. Restore it from a backup (`localckpt verify` lists every damaged file)"
        ) from None


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: str, manifest: Manifest, fsync: bool) -> None:
    body = json.dumps(manifest.to_json(), sort_keys=True).encode()
    data = _MAGIC + body + b"\n#" + b"%08x" % zlib.crc32(body) + b"\n"
    tmp = os.path.join(directory, f"{NAME}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(directory, NAME))
    if fsync:
        _fsync_dir(directory)


def bump_marker(marker: str | None, fmt: int, fsync: bool) -> None:
    """Record in the store's marker that its catalog is now in format fmt (other keys
    are kept), before anything only fmt can read replaces what older code read."""
    if marker is None:
        return
    try:
        with open(marker, encoding="utf-8") as fh:
            d = json.load(fh)
    except FileNotFoundError:
        d = {"kind": "localckpt embedded store"}
    if d.get("format") == fmt:
        return
    d["format"] = fmt
    tmp = f"{marker}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(d, fh)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, marker)
    if fsync:
        _fsync_dir(os.path.dirname(marker))
