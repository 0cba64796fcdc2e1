"""Compacted runs: immutable files of records sorted by timeline, queried where they lie.

Layout of ``run-<uuid7>.run`` (format 2 of the embedded store)::

    b"LCKRUN02"
    per timeline, in timeline id order:
        checkpoints  H frame (where each C block starts, and its first id), C blocks
        tombstones   X blocks
        tags         G blocks
    T blocks         every timeline record of the run, by id
    dir              index: timeline id -> where its groups and its record are
    cid              index: checkpoint id -> timeline (position in dir)   + Bloom filter
    xt               index: tombstone target id -> timeline               + Bloom filter
    out              index: SHA-256 -> blob file, offset, length          + Bloom filter
    footer           JSON: section offsets, counts, blob file names; then its length,
                     CRC and the magic again

Blocks are frames (as in segments) whose payload is a zlib-compressed JSON list of
records in their dict form (``schema.to_dict``), 64 per block. Everything carries a CRC:
damage anywhere raises CorruptDataError naming the file and offset, and only the reads
that touch it. Outputs live in blob files (``_blobs``) that merges never rewrite.

Reading a timeline's tree is one ``pread`` of its checkpoint range; a checkpoint by id is
a Bloom probe, a binary search of ``cid``, one entry of ``dir``, the H frame and one block.
"""

from __future__ import annotations

import bisect
import json
import os
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ._codec import dumps_marked, loads_marked
from ._files import FileCache, remove
from ._pages import (
    BloomReader,
    PagedIndex,
    bloom_bytes,
    bloom_keys,
    digest_hashes,
    id_hashes,
    page_bytes,
)
from ._segments import HASH_LEN, HEADER, corrupt, frame
from ._segments import MAGIC as FRAME_MAGIC

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DirEntry", "RunReader", "RunWriter", "decode_frames", "index_dtype", "out_dtype"]

MAGIC = b"LCKRUN02"
_TAIL = struct.Struct(">II8s")  # footer length, footer crc32, magic
DIRV = struct.Struct(">QIIQIQIQI")  # c_off c_len h_len x_off x_len g_off g_len t_off t_len
ORD = struct.Struct(">I")
OUTV = struct.Struct(">IQI")  # blob ordinal, frame offset, frame length
ROWS_PER_BLOCK = 64
#: indexes with a Bloom filter: checkpoint ids, tombstone targets, tombstone ids, tag ids
#: (each -> the timeline's position in dir), output digests (-> blob, offset, length)
_INDEXES = (("cid", ORD, False), ("xt", ORD, False), ("xid", ORD, False), ("gid", ORD, False),
            ("out", OUTV, True))
GROUP_KINDS = {"checkpoint": b"C", "tombstone": b"X", "tag": b"G", "timeline": b"T"}


def index_dtype(width: int) -> Any:
    import numpy as np

    return np.dtype([("k", f"S{max(1, width)}"), ("v", ">u4")])


def out_dtype() -> Any:
    import numpy as np

    return np.dtype([("k", "S32"), ("b", ">u4"), ("o", ">u8"), ("n", ">u4")])


@attrs.frozen
class DirEntry:
    """Where one timeline's rows are in a run (offsets absolute, lengths in bytes)."""

    tid: str
    ordinal: int
    c_off: int
    c_len: int
    h_len: int
    x_off: int
    x_len: int
    g_off: int
    g_len: int
    t_off: int
    t_len: int


def encode_block(kind: bytes, rows: list[dict[str, Any]]) -> bytes:
    return frame(kind, zlib.compress(dumps_marked(rows), 1))


def decode_frames(data: bytes, base: int, kind: bytes, where: str) -> Iterator[Any]:
    """The decoded payloads of the frames of one kind filling data (read at offset base)."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        at = base + pos
        if len(view) - pos < HEADER.size:
            raise corrupt(where, at, "frame header cut short")
        magic, k, length, crc = HEADER.unpack_from(view, pos)
        start = pos + HEADER.size
        end = start + length
        if magic != FRAME_MAGIC or k != kind or end > len(view):
            raise corrupt(where, at, f"not a {kind.decode()} frame")
        body = view[start:end]
        if zlib.crc32(body) != crc:
            raise corrupt(where, at, "frame checksum mismatch")
        try:
            value = loads_marked(zlib.decompress(body)) if kind != b"H" else loads_marked(
                bytes(body))
        except (ValueError, zlib.error) as exc:
            raise corrupt(where, at, f"frame does not decode: {exc}") from None
        yield value
        pos = end


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), ROWS_PER_BLOCK):
        yield rows[i : i + ROWS_PER_BLOCK]


class RunWriter:
    """Writes one run to path (a temporary name the caller renames into place).

    tids: every timeline id the run will hold, sorted: a timeline's position there is
    how the cid and xt indexes name it. Groups are added in that order.
    """

    def __init__(self, path: str, tids: list[str], blobs: list[str]) -> None:
        self.path = path
        self.tids = tids
        self.blobs = blobs
        self._fh = open(path, "xb")  # noqa: SIM115 - closed by finish/abort
        self.pos = 0
        self._groups: dict[int, tuple[int, ...]] = {}
        self._write(MAGIC)

    def _write(self, data: bytes) -> int:
        at = self.pos
        self._fh.write(data)
        self.pos += len(data)
        return at

    def group(self, ordinal: int, checkpoints: list[dict[str, Any]],
              tombstones: list[dict[str, Any]], tags: list[dict[str, Any]]) -> None:
        """One timeline's records (each list sorted by id)."""
        blocks = [encode_block(b"C", rows) for rows in _chunks(checkpoints)]
        starts, rel = [], 0
        for rows, block in zip(_chunks(checkpoints), blocks, strict=True):
            starts.append([rows[0]["id"], rel, len(block)])
            rel += len(block)
        c = (frame(b"H", dumps_marked(starts)) + b"".join(blocks)) if blocks else b""
        h_len = len(c) - rel if blocks else 0
        x = b"".join(encode_block(b"X", rows) for rows in _chunks(tombstones))
        g = b"".join(encode_block(b"G", rows) for rows in _chunks(tags))
        self.copy_group(ordinal, c, h_len, x, g)

    def copy_group(self, ordinal: int, c: bytes, h_len: int, x: bytes, g: bytes) -> None:
        """A group as bytes (copied from another run: its offsets are relative)."""
        c_off = self._write(c) if c else 0
        x_off = self._write(x) if x else 0
        g_off = self._write(g) if g else 0
        self._groups[ordinal] = (c_off, len(c), h_len, x_off, len(x), g_off, len(g))

    def _index(self, name: str, arr: Any, digests: bool, footer: dict[str, Any]) -> None:
        width = arr.dtype["k"].itemsize
        # the file's byte order (numpy's concatenate and sort return native order)
        arr = arr.astype(out_dtype() if digests else index_dtype(width))
        entry = arr.dtype.itemsize
        at = self._write(page_bytes(arr.tobytes(), entry))
        footer[name] = [at, len(arr), width]
        keys = arr["k"].tolist()  # numpy drops trailing NULs: digests get them back
        if digests:
            keys = [k.ljust(32, b"\0") for k in keys]
        elif keys:  # the key range: a new id (UUIDv7 sorts by time) is past every run's
            footer[name + "_range"] = [keys[0].decode(), keys[-1].decode()]
        bloom = bloom_bytes(*bloom_keys(keys, digests)) if keys else b""
        footer[name + "_bloom"] = [self._write(bloom), len(bloom) // 64]

    def finish(self, timelines: list[dict[str, Any]], cid: np.ndarray, xt: np.ndarray,
               xid: np.ndarray, gid: np.ndarray, out: np.ndarray,
               fsync: bool) -> dict[str, Any]:
        """Write the timeline records and the indexes (arrays sorted by key, unique), the
        footer; flush (and fsync). Returns the footer."""
        ordinal = {t: i for i, t in enumerate(self.tids)}
        located: dict[int, tuple[int, int]] = {}
        t_start = self.pos
        for rows in _chunks(timelines):
            block = encode_block(b"T", rows)
            at = self._write(block)
            for r in rows:
                located[ordinal[r["id"]]] = (at, len(block))
        sections: dict[str, Any] = {"timelines": [t_start, self.pos - t_start]}
        width = max([len(t) for t in self.tids] or [1])
        entries = bytearray()
        empty = (0,) * 7
        for i, tid in enumerate(self.tids):
            entries += tid.encode().ljust(width, b"\0")
            entries += DIRV.pack(*self._groups.get(i, empty), *located.get(i, (0, 0)))
        sections["dir"] = [self._write(page_bytes(bytes(entries), width + DIRV.size)),
                           len(self.tids), width]
        if self.tids:
            sections["dir_range"] = [self.tids[0], self.tids[-1]]
        for name, arr in (("cid", cid), ("xt", xt), ("xid", xid), ("gid", gid)):
            self._index(name, arr, False, sections)
        self._index("out", out, True, sections)
        counts = {"timeline": len(timelines), "checkpoint": len(cid), "tombstone": len(xid),
                  "tag": len(gid), "output": len(out)}
        footer = {"format": 2, "sections": sections, "blobs": self.blobs, "counts": counts}
        body = json.dumps(footer, sort_keys=True).encode()
        self._write(body + _TAIL.pack(len(body), zlib.crc32(body), MAGIC))
        self._fh.flush()
        if fsync:
            os.fsync(self._fh.fileno())
        self._fh.close()
        return footer

    def abort(self) -> None:
        self._fh.close()
        remove(self.path)


class RunReader:
    """Lookups in one run. Nothing is loaded at construction; the footer on first use."""

    def __init__(self, name: str, files: FileCache, stats: Counter[str]) -> None:
        self.name = name
        self.files = files
        self.stats = stats
        self.where = os.path.join(files.directory, name)
        self._footer: dict[str, Any] | None = None
        self._timelines: list[dict[str, Any]] | None = None

    def read(self, length: int, offset: int) -> bytes:
        return self.files.pread(self.name, length, offset)

    # -- footer and sections ---------------------------------------------------------------

    @property
    def footer(self) -> dict[str, Any]:
        if self._footer is None:
            self._footer = self._read_footer()
        return self._footer

    def _read_footer(self) -> dict[str, Any]:
        size = self.files.size(self.name)
        if size < len(MAGIC) + _TAIL.size:
            raise corrupt(self.where, 0, "file too short for a run")
        tail = self.read(_TAIL.size, size - _TAIL.size)
        length, crc, magic = _TAIL.unpack(tail)
        at = size - _TAIL.size - length
        if magic != MAGIC or at < len(MAGIC) or self.read(len(MAGIC), 0) != MAGIC:
            raise corrupt(self.where, size - _TAIL.size, "not a run file (bad magic)")
        body = self.read(length, at)
        if zlib.crc32(body) != crc:
            raise corrupt(self.where, at, "footer checksum mismatch")
        try:
            footer = json.loads(body)
            s = footer["sections"]
            footer["_dir"] = PagedIndex(self.read, self.where, s["dir"][0], s["dir"][1],
                                        s["dir"][2], DIRV)
            for name, value, digests in _INDEXES:
                off, count, width = s[name]
                footer["_" + name] = PagedIndex(self.read, self.where, off, count, width, value)
                boff, blocks = s[name + "_bloom"]
                footer["_" + name + "_bloom"] = BloomReader(self.read, self.where, boff, blocks)
                footer["_" + name + "_digests"] = digests
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise corrupt(self.where, at, f"footer does not parse: {exc}") from None
        return footer

    def counts(self) -> dict[str, int]:
        return dict(self.footer.get("counts", {}))

    @property
    def blobs(self) -> list[str]:
        return list(self.footer["blobs"])

    def index(self, name: str) -> PagedIndex:
        idx: PagedIndex = self.footer["_" + name]
        return idx

    def _probe(self, name: str, key: bytes) -> tuple[int, ...] | None:
        f = self.footer
        bounds = f["sections"].get(name + "_range")
        if bounds is not None and not bounds[0] <= key.decode() <= bounds[1]:
            return None  # outside the run's keys: no read at all (a save's new id)
        h1, h2 = digest_hashes(key) if f["_" + name + "_digests"] else id_hashes(key)
        if not f["_" + name + "_bloom"].may_contain(h1, h2):
            return None
        self.stats["index_searches"] += 1
        return f["_" + name].find(key)

    # -- timelines and groups --------------------------------------------------------------

    def _entry(self, tid: bytes, value: tuple[int, ...], ordinal: int) -> DirEntry:
        return DirEntry(tid.decode(), ordinal, *value)

    def dir_find(self, tid: str) -> DirEntry | None:
        idx = self.index("dir")
        key = tid.encode()
        bounds = self.footer["sections"].get("dir_range")
        if not idx.count or len(key) > idx.width or (
                bounds is not None and not bounds[0] <= tid <= bounds[1]):
            return None
        found = idx.find(key)
        if found is None:
            return None
        # the ordinal is needed only by compaction, which walks the whole dir instead
        return self._entry(key, found, -1)

    def dir_get(self, ordinal: int) -> DirEntry:
        key, value = self.index("dir").get(ordinal)
        return self._entry(key, value, ordinal)

    def dir_entries(self) -> Iterator[DirEntry]:
        idx = self.index("dir")
        e = idx.entry
        n = 0
        for p in range(idx.pages):
            raw = idx.page(p)
            for at in range(0, len(raw), e):
                yield self._entry(raw[at : at + idx.width].rstrip(b"\0"),
                                  DIRV.unpack_from(raw, at + idx.width), n)
                n += 1

    def timeline_rows(self) -> list[dict[str, Any]]:
        """Every timeline record of the run (cached: they are few)."""
        if self._timelines is None:
            off, length = self.footer["sections"]["timelines"]
            rows: list[dict[str, Any]] = []
            for block in decode_frames(self.read(length, off), off, b"T", self.where):
                rows.extend(block)
            self.stats["records_read"] += len(rows)
            self._timelines = rows
        return self._timelines

    def _rows(self, kind: bytes, off: int, length: int, skip: int = 0) -> list[dict[str, Any]]:
        if not length:
            return []
        data = self.read(length, off)
        rows: list[dict[str, Any]] = []
        for block in decode_frames(data[skip:], off + skip, kind, self.where):
            rows.extend(block)
        self.stats["records_read"] += len(rows)
        self.stats["blocks_read"] += 1
        return rows

    def checkpoint_rows(self, e: DirEntry) -> list[dict[str, Any]]:
        """The checkpoint rows of one timeline: one read of its range (H frame checked)."""
        if not e.c_len:
            return []
        data = self.read(e.c_len, e.c_off)
        for _ in decode_frames(data[: e.h_len], e.c_off, b"H", self.where):
            pass
        rows: list[dict[str, Any]] = []
        for block in decode_frames(data[e.h_len :], e.c_off + e.h_len, b"C", self.where):
            rows.extend(block)
            self.stats["blocks_read"] += 1
        self.stats["records_read"] += len(rows)
        return rows

    def group_rows(self, e: DirEntry) -> tuple[list[Any], list[Any], list[Any]]:
        """(checkpoints, tombstones, tags) rows of one timeline."""
        return (self.checkpoint_rows(e), self._rows(b"X", e.x_off, e.x_len),
                self._rows(b"G", e.g_off, e.g_len))

    def tombstone_rows(self, e: DirEntry) -> list[Any]:
        return self._rows(b"X", e.x_off, e.x_len)

    def tag_rows(self, e: DirEntry) -> list[Any]:
        return self._rows(b"G", e.g_off, e.g_len)

    def header(self, e: DirEntry) -> list[list[Any]]:
        (starts,) = decode_frames(self.read(e.h_len, e.c_off), e.c_off, b"H", self.where)
        return list(starts)

    def timeline(self, tid: str) -> tuple[list[Any], list[Any], list[Any]]:
        e = self.dir_find(tid)
        return self.group_rows(e) if e is not None else ([], [], [])

    def timeline_record(self, tid: str) -> dict[str, Any] | None:
        e = self.dir_find(tid)
        if e is None or not e.t_len:
            return None
        for row in self._rows(b"T", e.t_off, e.t_len):
            if row.get("id") == tid:
                return row
        return None

    # -- point lookups ---------------------------------------------------------------------

    def block_rows(self, e: DirEntry, start: list[Any]) -> list[dict[str, Any]]:
        """The rows of one checkpoint block of a timeline (start: its entry in the H
        frame: first id, offset after the H frame, length)."""
        _, rel, length = start
        return self._rows(b"C", e.c_off + e.h_len + rel, length)

    def find_checkpoint(self, cid: str) -> dict[str, Any] | None:
        found = self._probe("cid", cid.encode())
        if found is None:
            return None
        e = self.dir_get(found[0])
        starts = self.header(e)
        i = bisect.bisect_right([s[0] for s in starts], cid) - 1
        if i < 0:
            raise corrupt(self.where, e.c_off, f"checkpoint {cid} indexed but not stored")
        for row in self.block_rows(e, starts[i]):
            if row.get("id") == cid:
                return row
        raise corrupt(self.where, e.c_off + e.h_len + starts[i][1],
                      f"checkpoint {cid} indexed but not in its block")

    def find_other(self, kind: str, rid: str) -> dict[str, Any] | None:
        """A tombstone or tag row by its own id."""
        found = self._probe("xid" if kind == "tombstone" else "gid", rid.encode())
        if found is None:
            return None
        e = self.dir_get(found[0])
        rows = self.tombstone_rows(e) if kind == "tombstone" else self.tag_rows(e)
        for row in rows:
            if row.get("id") == rid:
                return row
        raise corrupt(self.where, e.x_off if kind == "tombstone" else e.g_off,
                      f"{kind} {rid} indexed but not stored")

    def has_target(self, target: str) -> bool:
        return self._probe("xt", target.encode()) is not None

    def output(self, digest: bytes) -> tuple[str, int, int] | None:
        """(blob file, frame offset, frame length) of an output, or None."""
        found = self._probe("out", digest)
        if found is None:
            return None
        b, off, length = found
        blobs = self.footer["blobs"]
        if b >= len(blobs):
            raise corrupt(self.where, 0, f"output refers to blob #{b} of {len(blobs)}")
        return blobs[b], off, length

    def prefix(self, kind: str, prefix: str, limit: int) -> list[str]:
        timelines = kind == "timeline"
        idx = self.index("dir" if timelines else "cid")
        found: list[str] = []
        for key, value in idx.scan_from(prefix.encode()):
            text = key.decode()
            if not text.startswith(prefix) or len(found) >= limit:
                break
            if not timelines or value[8]:  # dir entries without a record: rows only
                found.append(text)
        return found

    # -- integrity -------------------------------------------------------------------------

    def check(self) -> None:
        """Read every byte that carries meaning; CorruptDataError at the first damage."""
        f = self.footer
        self._timelines = None
        self.timeline_rows()
        for e in self.dir_entries():
            self.group_rows(e)
        for name, _, _ in _INDEXES:
            f["_" + name].all_entries()
            bloom: BloomReader = f["_" + name + "_bloom"]
            for i in range(bloom.blocks):
                bloom.may_contain(i, 0)


def blob_frame_data(data: bytes, digest_hex: str, where: str, at: int) -> bytes:
    """The output bytes of one blob frame, after checking frame and hash label."""
    if len(data) < HEADER.size + HASH_LEN:
        raise corrupt(where, at, "output frame cut short")
    magic, kind, length, crc = HEADER.unpack_from(data, 0)
    body = memoryview(data)[HEADER.size:]
    if magic != FRAME_MAGIC or kind != b"O" or length != len(body) or zlib.crc32(body) != crc:
        raise corrupt(where, at, "output frame checksum mismatch")
    if bytes(body[:HASH_LEN]).decode("ascii", "replace") != digest_hex:
        raise corrupt(where, at, f"output frame holds another hash than {digest_hex}")
    return bytes(body[HASH_LEN:])
