"""Read-only reader of the old embedded stores (formats 1 and 2), for their conversion only.

Before the SQL catalog, an embedded store (``DIR/LOCALCKPT.json`` saying ``"format": 1`` or
``2``; the oldest stores have no marker) kept its records in files of its own engine under
``DIR/catalog/``::

    seg-*.log     segments: frames appended by each writing process (O an output, B or b a
                  batch of rows, S the seal); a crashed writer leaves its segment unsealed,
                  maybe ending in a torn commit and zero-filled space
    pack-*.pack   format 1: immutable frames, as in a segment without a seal
    MANIFEST      which compacted runs are current (and which logs they absorbed)
    run-*.run     compacted runs: zlib-compressed JSON blocks of rows, grouped by timeline,
                  paged indexes and Bloom filters, a footer
    blobs/*.blob  the outputs the runs refer to, one frame each

That engine is gone; :func:`read_legacy` is what remains of it: one pass over those files
that returns every record and output the old code read, so that opening such a store for
writing can insert them into the new catalog in one transaction and then remove
``catalog/``. It writes nothing, compacts nothing and builds no index.

It checks what the old engine checked (every frame, page, block and footer CRC, magic
numbers, seals) and more: every output against its hash, every record with
:func:`localckpt.schema.validate`. Damage and truncated files raise CorruptDataError naming
the file and offset; the only bytes skipped are those the old engine skipped too: the
torn tail of an unsealed segment (a commit a crash cut short; nothing valid after it), and
logs the manifest says a compaction already absorbed. A record found twice (in a segment
and a run) is kept once; two different records under one id are CorruptDataError.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..canonical import content_hash
from ..errors import BackendUnavailableError, CorruptDataError, InvalidInputError
from ..schema import from_dict, validate
from ..types import Checkpoint, Tag, Timeline, Tombstone

__all__ = ["LegacyContents", "is_legacy_store", "legacy_format", "read_legacy"]

_HEADER = struct.Struct(">2scII")  # frame: magic, kind, payload length, crc32
_MAGIC = b"\xa7L"
_KINDS = frozenset({b"O", b"B", b"b", b"S"})  # log and blob frames
_SEAL = _HEADER.size + 8  # the seal frame: u64 where the data ends
_HASH = re.compile(rb"[0-9a-f]{64}")
_ROWS = (("t", "timeline"), ("c", "checkpoint"), ("x", "tombstone"), ("g", "tag"))
_MANIFEST_MAGIC = b"LCKMAN02\n"
_RUN_MAGIC = b"LCKRUN02"
_RUN_TAIL = struct.Struct(">II8s")  # footer length, footer crc32, magic
_DIR = struct.Struct(">QIIQIQIQI")  # c_off c_len h_len x_off x_len g_off g_len t_off t_len
_OUT = struct.Struct(">IQI")  # blob ordinal, frame offset, frame length
_PAGE, _PAGE_HEAD, _BLOOM_BLOCK = 4096, struct.Struct(">IH"), 64
_INDEXES = (("cid", 4), ("xt", 4), ("xid", 4), ("gid", 4), ("out", _OUT.size))
_RUN_NAME = re.compile(r"run-[0-9A-Za-z_-]+\.run")
_BLOB_NAME = re.compile(r"blobs/blob-[0-9A-Za-z_-]+\.blob")


@dataclass(frozen=True)
class LegacyContents:
    """Everything an old store's catalog held: what its conversion inserts.

    checkpoints come parents first (then by id), so that each one's parent, when present,
    is inserted before it; the other records are sorted by id. outputs maps each content
    hash to its exact stored bytes (verified against the hash).
    """

    timelines: list[Timeline] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    outputs: dict[str, bytes] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"timelines": len(self.timelines), "checkpoints": len(self.checkpoints),
                "tombstones": len(self.tombstones), "tags": len(self.tags),
                "outputs": len(self.outputs)}


def legacy_format(root: str | os.PathLike[str]) -> int | None:
    """The old format of the store directory root: 1 or 2 as its marker says, 0 for a store
    from before the marker (a catalog/ of old files and no marker); None otherwise
    (another format, no store, or a marker that does not parse: its opener judges it)."""
    root = os.fspath(root)
    try:
        with open(os.path.join(root, "LOCALCKPT.json"), encoding="utf-8") as fh:
            marker = json.load(fh)
    except FileNotFoundError:
        marker = {}
    except (OSError, ValueError):
        return None
    fmt = marker.get("format", 0) if isinstance(marker, dict) else None
    if fmt in (1, 2) and type(fmt) is int:
        return fmt
    if fmt == 0 and type(fmt) is int and _holds_old_files(os.path.join(root, "catalog")):
        return 0
    return None


def is_legacy_store(root: str | os.PathLike[str]) -> bool:
    """Whether root is a store the old engine wrote (see :func:`legacy_format`)."""
    return legacy_format(root) is not None


def _holds_old_files(catalog_dir: str) -> bool:
    try:
        names = os.listdir(catalog_dir)
    except OSError:
        return False
    return any(n == "MANIFEST" or n.endswith((".log", ".pack", ".run")) for n in names)


def read_legacy(catalog_dir: str | os.PathLike[str], *,
                allow_live_writers: bool = False) -> LegacyContents:
    """Every record and output of the old catalog in catalog_dir (``DIR/catalog``).

    While it reads it holds the old engine's ``compact.lock``, so that no old process
    compacts meanwhile. A segment whose writer is still alive (its lock is held) is
    BackendUnavailableError: converting would lose what that process writes next (unless
    allow_live_writers, for a read that converts nothing: its commit in progress is then
    skipped as a torn tail). A missing directory holds nothing (a store never written).
    Damage: CorruptDataError naming the file.
    """
    directory = os.path.abspath(os.fspath(catalog_dir))
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return LegacyContents()
    reader = _Reader(directory)
    try:
        lock = _lock(os.path.join(directory, "compact.lock"), fcntl.LOCK_SH)
    except BlockingIOError:
        raise BackendUnavailableError(
            f"a process of an older localckpt is compacting the catalog in {directory}; "
            "let it finish (or stop it) and open the store again") from None
    try:
        manifest = reader.manifest()
        absorbed = set(manifest.get("absorbed", ()))
        for name in names:
            if name.endswith((".log", ".pack")) and name not in absorbed:
                reader.log(name, allow_live_writers)
        for run in manifest.get("runs", ()):
            reader.run(run)
    finally:
        if lock is not None:
            os.close(lock)
    return reader.contents()


def _lock(path: str, how: int) -> int | None:
    """An fd holding a flock on path (None: no such file); BlockingIOError when another
    process holds a lock that excludes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _corrupt(path: str, offset: int, why: str) -> CorruptDataError:
    return CorruptDataError(
        f"catalog file {path} of an old-format store is damaged at byte offset {offset} "
        f"({why}), so the store cannot be converted to the current catalog. Restore the "
        "file from a backup and open the store again")


def _frame_crc(kind: bytes, body: bytes | memoryview) -> int:
    # b frames (orjson batches) cover the kind byte too: a flipped kind is no other kind
    return zlib.crc32(body, zlib.crc32(b"b")) if kind == b"b" else zlib.crc32(body)


def _frame_at(data: bytes, pos: int) -> tuple[bytes, int, int] | None:
    """(kind, payload start, payload end) of a whole, valid frame at pos; else None."""
    if len(data) - pos < _HEADER.size:
        return None
    magic, kind, length, crc = _HEADER.unpack_from(data, pos)
    start = pos + _HEADER.size
    end = start + length
    if magic != _MAGIC or kind not in _KINDS or end > len(data) or _frame_crc(
            kind, memoryview(data)[start:end]) != crc:
        return None
    return kind, start, end


def _frames(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """The valid frames from the start, up to the first invalid one or a seal."""
    pos = 0
    while (found := _frame_at(data, pos)) is not None and found[0] != b"S":
        yield found
        pos = found[2]


def _sealed_length(data: bytes) -> int | None:
    """Where the data of a sealed file ends (its seal's offset), or None if unsealed."""
    at = len(data) - _SEAL
    if at < 0:
        return None
    magic, kind, length, crc = _HEADER.unpack_from(data, at)
    body = data[at + _HEADER.size:]
    if magic != _MAGIC or kind != b"S" or length != 8 or zlib.crc32(body) != crc:
        return None
    return at if int.from_bytes(body, "big") == at else None


def _valid_after(data: bytes, stop: int) -> int | None:
    """Where a valid frame starts after the invalid one at stop (damage), or None (a torn
    tail, or zero-filled space). A valid frame at stop itself (a seal where the data
    goes on) counts as the end, as in the old engine."""
    if _frame_at(data, stop) is not None:
        return None
    pos = data.find(_MAGIC, stop + 1)
    while pos != -1:
        if _frame_at(data, pos) is not None:
            return pos
        pos = data.find(_MAGIC, pos + 1)
    return None


def _blocks(data: bytes, off: int, length: int, kind: bytes, path: str) -> list[Any]:
    """The rows of the run blocks of one kind exactly filling data[off:off + length]."""
    rows: list[Any] = []
    pos, end = off, off + length
    if end > len(data):
        raise _corrupt(path, off, "a section runs past the end of the file")
    while pos < end:
        if end - pos < _HEADER.size:
            raise _corrupt(path, pos, "frame header cut short")
        magic, k, n, crc = _HEADER.unpack_from(data, pos)
        body = data[pos + _HEADER.size : pos + _HEADER.size + n]
        if magic != _MAGIC or k != kind or pos + _HEADER.size + n > end:
            raise _corrupt(path, pos, f"not a {kind.decode()} frame")
        if zlib.crc32(body) != crc:
            raise _corrupt(path, pos, "frame checksum mismatch")
        try:
            value = _loads_marked(body if kind == b"H" else zlib.decompress(body))
        except (ValueError, zlib.error) as exc:
            raise _corrupt(path, pos, f"frame does not decode: {exc}") from None
        if kind != b"H":
            if not isinstance(value, list):
                raise _corrupt(path, pos, "a block that is not a list of rows")
            rows += value
        pos += _HEADER.size + n
    return rows


def _loads_marked(data: bytes) -> Any:
    """Run blocks say which encoder wrote them: o (orjson, read by it) or j (the stdlib,
    for integers beyond 64 bits, which orjson would read as floats)."""
    if data[:1] == b"o":
        return orjson.loads(data[1:])
    if data[:1] == b"j":
        return json.loads(data[1:])
    raise ValueError(f"unknown block encoding {data[:1]!r}")


def _pages(data: bytes, path: str, section: Any, value_size: int) -> list[bytes]:
    """The entries of a paged index section [offset, count, key width], every page's
    CRC and entry count checked."""
    off, count, width = section
    entry = width + value_size
    per = (_PAGE - _PAGE_HEAD.size) // entry if width > 0 else 0
    if per < 1 or count < 0:
        raise _corrupt(path, off, "an index of impossible dimensions")
    entries = []
    for i in range(-(-count // per)):
        at = off + i * _PAGE
        page = data[at : at + _PAGE]
        if len(page) != _PAGE:
            raise _corrupt(path, at, "index page cut short")
        crc, n = _PAGE_HEAD.unpack_from(page)
        if zlib.crc32(page[4:]) != crc:
            raise _corrupt(path, at, "index page checksum mismatch")
        if n != min(per, count - i * per):
            raise _corrupt(path, at, "index page holds the wrong number of entries")
        entries += [page[p : p + entry] for p in range(6, 6 + n * entry, entry)]
    return entries


def _check_bloom(data: bytes, path: str, section: Any) -> None:
    off, blocks = section
    for i in range(blocks):
        at = off + i * _BLOOM_BLOCK
        block = data[at : at + _BLOOM_BLOCK]
        if len(block) != _BLOOM_BLOCK or zlib.crc32(block[4:]) != int.from_bytes(
                block[:4], "big"):
            raise _corrupt(path, at, "filter block checksum mismatch")


class _Reader:
    """Records and outputs gathered from the files of one catalog directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.records: dict[str, dict[str, tuple[Any, str]]] = {k: {} for _, k in _ROWS}
        self.outputs: dict[str, bytes] = {}
        self._blobs: dict[str, bytes] = {}

    def _read(self, name: str, fd: int | None = None) -> tuple[str, bytes]:
        path = os.path.join(self.directory, name)
        try:
            with open(path if fd is None else fd, "rb", closefd=fd is None) as fh:
                return path, fh.read()
        except FileNotFoundError:
            raise CorruptDataError(
                f"catalog file {path} of an old-format store is missing, though the store's "
                "MANIFEST names it; restore it from a backup and open the store again"
            ) from None

    def manifest(self) -> dict[str, Any]:
        path = os.path.join(self.directory, "MANIFEST")
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return {}  # never compacted
        try:
            if not data.startswith(_MANIFEST_MAGIC):
                raise ValueError("bad magic")
            body, _, crc = data[len(_MANIFEST_MAGIC):].rstrip(b"\n").rpartition(b"\n#")
            if int(crc, 16) != zlib.crc32(body):
                raise ValueError("checksum mismatch")
            d = json.loads(body)
            if d["format"] != 2:
                raise ValueError(f"unknown manifest format {d['format']!r}")
            runs = [r["name"] for r in d["runs"]]
            if not all(isinstance(n, str) and _RUN_NAME.fullmatch(n) for n in runs):
                raise ValueError("a run name that is not one")
            return {"runs": runs, "absorbed": [str(a) for a in d["absorbed"]]}
        except (ValueError, KeyError, TypeError) as exc:
            raise _corrupt(path, 0, f"manifest: {exc}") from None

    # -- records --------------------------------------------------------------------------

    def add_rows(self, kind: str, rows: Any, path: str, at: int) -> None:
        if not isinstance(rows, list):
            raise _corrupt(path, at, f"{kind} rows that are not a list")
        known = self.records[kind]
        for row in rows:
            try:
                record = from_dict(kind, row if isinstance(row, Mapping) else {})
                validate(record)
            except (CorruptDataError, InvalidInputError) as exc:
                raise _corrupt(path, at, f"{kind} record: {exc}") from None
            first = known.setdefault(record.id, (record, path))
            if first[0] != record:
                raise CorruptDataError(
                    f"two different {kind} records with id {record.id} in the old-format "
                    f"catalog files {first[1]} and {path} (ids are unique: one is damaged); "
                    "restore the damaged file from a backup and open the store again")

    def add_output(self, label: str, data: bytes, path: str, at: int) -> None:
        if content_hash(data) != label:
            raise _corrupt(path, at, f"output {label} does not match its hash")
        self.outputs[label] = data

    def contents(self) -> LegacyContents:
        def ordered(kind: str) -> list[Any]:
            return [r for _, (r, _) in sorted(self.records[kind].items())]

        return LegacyContents(
            timelines=ordered("timeline"), checkpoints=_parents_first(ordered("checkpoint")),
            tombstones=ordered("tombstone"), tags=ordered("tag"),
            outputs=dict(sorted(self.outputs.items())))

    # -- segments and packs ---------------------------------------------------------------

    def log(self, name: str, allow_live_writers: bool) -> None:
        try:
            lock = _lock(os.path.join(self.directory, name), fcntl.LOCK_SH)
        except BlockingIOError:
            if not allow_live_writers:
                raise BackendUnavailableError(
                    f"a process of an older localckpt is writing to the store ({name} in "
                    f"{self.directory} is locked by its writer); stop it, then open the "
                    "store again to convert it") from None
            lock = os.open(os.path.join(self.directory, name), os.O_RDONLY | os.O_CLOEXEC)
        if lock is None:
            return  # compacted away since the listing: a run holds it
        try:
            path, data = self._read(name, lock)
        finally:
            os.close(lock)
        end = 0
        for kind, start, stop in _frames(data):
            if kind == b"O":
                label = data[start : start + 64]
                if stop - start < 64 or not _HASH.fullmatch(label):
                    raise _corrupt(path, start, "output frame without a hash")
                self.add_output(label.decode(), data[start + 64 : stop], path, start)
            else:
                try:
                    body = data[start:stop]
                    rows = orjson.loads(body) if kind == b"b" else json.loads(body)
                    for key, kind_name in _ROWS:
                        self.add_rows(kind_name, rows.get(key, []), path, start)
                except (ValueError, AttributeError) as exc:
                    raise _corrupt(path, start, f"batch frame does not parse: {exc}") from None
            end = stop
        if end == len(data):
            return
        sealed = _sealed_length(data)
        if sealed is not None:
            if end != sealed:
                raise _corrupt(path, end, "a frame before the seal does not parse")
        elif name.endswith(".pack"):
            raise _corrupt(path, end, "a frame of a compacted pack does not parse")
        elif (later := _valid_after(data, end)) is not None:
            raise _corrupt(path, end, f"a frame does not parse, and a valid one follows at "
                                      f"{later}")
        # else: the torn tail of a commit a crash cut short (never applied), or zeros

    # -- runs and blob files --------------------------------------------------------------

    def run(self, name: str) -> None:
        path, data = self._read(name)
        size = len(data)
        if size < len(_RUN_MAGIC) + _RUN_TAIL.size:
            raise _corrupt(path, 0, "file too short for a run")
        length, crc, magic = _RUN_TAIL.unpack_from(data, size - _RUN_TAIL.size)
        at = size - _RUN_TAIL.size - length
        if magic != _RUN_MAGIC or at < len(_RUN_MAGIC) or not data.startswith(_RUN_MAGIC):
            raise _corrupt(path, size - _RUN_TAIL.size, "not a run file (bad magic)")
        body = data[at : size - _RUN_TAIL.size]
        if zlib.crc32(body) != crc:
            raise _corrupt(path, at, "footer checksum mismatch")
        try:
            footer = json.loads(body)
            s, blobs = footer["sections"], list(footer["blobs"])
            t_off, t_len = s["timelines"]
            self.add_rows("timeline", _blocks(data, t_off, t_len, b"T", path), path, t_off)
            for entry in _pages(data, path, s["dir"], _DIR.size):
                self._group(data, path, _DIR.unpack_from(entry, s["dir"][2]))
            for index, value_size in _INDEXES:  # only out is read; every page is checked
                entries = _pages(data, path, s[index], value_size)
                _check_bloom(data, path, s[index + "_bloom"])
                if index == "out":  # output digest -> blob, frame offset, frame length
                    for entry in entries:
                        b, off, length = _OUT.unpack_from(entry, 32)
                        self._output(entry[:32].hex(), blobs, b, off, length, path)
        except (ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
            raise _corrupt(path, at, f"footer does not parse: {exc}") from None

    def _group(self, data: bytes, path: str, e: tuple[int, ...]) -> None:
        c_off, c_len, h_len, x_off, x_len, g_off, g_len, _, _ = e
        if c_len:
            _blocks(data, c_off, h_len, b"H", path)
            self.add_rows("checkpoint", _blocks(data, c_off + h_len, c_len - h_len, b"C",
                                                path), path, c_off)
        if x_len:
            self.add_rows("tombstone", _blocks(data, x_off, x_len, b"X", path), path, x_off)
        if g_len:
            self.add_rows("tag", _blocks(data, g_off, g_len, b"G", path), path, g_off)

    def _output(self, label: str, blobs: list[Any], b: int, off: int, length: int,
                run_path: str) -> None:
        if b >= len(blobs) or not isinstance(blobs[b], str) or not _BLOB_NAME.fullmatch(
                blobs[b]):
            raise _corrupt(run_path, 0, f"output {label} refers to blob #{b} of {len(blobs)}")
        path, data = os.path.join(self.directory, blobs[b]), self._blob(blobs[b])
        found = _frame_at(data, off)
        if found is None or found[0] != b"O" or found[2] != off + length or (
                length < _HEADER.size + 64):
            raise _corrupt(path, off, "output frame checksum mismatch")
        if data[found[1] : found[1] + 64] != label.encode():
            raise _corrupt(path, off, f"output frame holds another hash than {label}")
        self.add_output(label, data[found[1] + 64 : found[2]], path, off)

    def _blob(self, name: str) -> bytes:
        """A blob file's bytes, once every frame is checked up to its seal."""
        if name not in self._blobs:
            path, data = self._read(name)
            sealed = _sealed_length(data)
            if sealed is None:
                raise _corrupt(path, max(0, len(data) - _SEAL), "blob file without its seal")
            end = 0
            for kind, _, stop in _frames(data[:sealed]):
                if kind != b"O":
                    raise _corrupt(path, end, "a frame that is not an output")
                end = stop
            if end != sealed:
                raise _corrupt(path, end, "an output frame does not parse")
            self._blobs[name] = data
        return self._blobs[name]


def _parents_first(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """checkpoints (sorted by id) reordered so that a parent comes before its children."""
    by_id = {c.id: c for c in checkpoints}
    done: set[str] = set()
    out: list[Checkpoint] = []
    for c in checkpoints:
        chain: dict[str, Checkpoint] = {}  # c and its ancestors not placed yet
        at: Checkpoint | None = c
        while at is not None and at.id not in done and at.id not in chain:
            chain[at.id] = at
            at = by_id.get(at.parent_id) if at.parent_id is not None else None
        for x in reversed(chain.values()):
            done.add(x.id)
            out.append(x)
    return out
