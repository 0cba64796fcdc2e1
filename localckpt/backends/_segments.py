"""Append-only segment files: the durable log tail of the embedded catalog.

Each writing process appends to a segment of its own (``seg-<uuid7>.log``) and holds an
exclusive ``flock`` on it while alive, so DuckDB's one-writer-per-file rule never applies:
nobody shares a file for writing. A commit is one ``pwrite`` of some frames::

    magic b"\\xa7L" | kind | length u32 | crc32 u32 (of the payload) | payload

Kinds: ``O`` an output (``<64 hex hash><canonical JSON>``), ``B`` a batch of rows (JSON
``{"t": [...], "c": [...], "x": [...], "g": [...]}``), ``b`` the same written by orjson
(so read by it; its CRC also covers the kind byte), ``S`` the seal (u64: where the data
ends). The batch frame is last, so a commit counts only when it is complete and its CRC
matches. Format 1 wrote only ``O`` and ``B`` frames, without a seal.

Damage versus a torn tail: a writer that crashes may leave an incomplete last commit,
which is never applied. Anything else that does not parse is damage and raises
CorruptDataError naming the file and offset: a bad frame inside a sealed segment, before
its seal; a bad frame followed by a valid one; any bad frame in an immutable file.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Iterator, Mapping

from ..errors import CorruptDataError

__all__ = [
    "HASH_LEN", "HEADER", "KINDS", "SEAL", "SegmentWriter", "damage_after", "encode_batch",
    "encode_output", "encode_seal", "frame", "frame_size_at", "iter_frames", "sealed_length",
    "try_lock",
]

MAGIC = b"\xa7L"
HEADER = struct.Struct(">2scII")  # magic, kind, length, crc32
HASH_LEN = 64
KINDS = frozenset({b"O", b"B", b"b", b"S"})
_SEAL_BODY = struct.Struct(">Q")
SEAL = HEADER.size + _SEAL_BODY.size  # bytes of the seal frame at the end of a sealed file
PREALLOC_MIN = 256 << 10  # first zero-filled region of a durable segment
PREALLOC_MAX = 4 << 20  # regions double up to this size


_SEEDED = {b"b": zlib.crc32(b"b")}  # kinds whose CRC covers the kind byte too


def frame_crc(kind: bytes, body: bytes | memoryview) -> int:
    """The CRC a frame of this kind carries: of the payload (format 1's kinds), or of the
    kind and the payload (b: a flipped kind byte must not pass for another kind)."""
    seed = _SEEDED.get(kind)
    return zlib.crc32(body) if seed is None else zlib.crc32(body, seed)


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, kind, len(payload), frame_crc(kind, payload)) + payload


def encode_output(content_hash: str, data: bytes) -> bytes:
    return frame(b"O", content_hash.encode("ascii") + data)


def encode_batch(rows: Mapping[str, object]) -> bytes:
    """A batch frame: kind b (written by orjson: orjson reads it back, ~2x faster) or B
    (the stdlib's JSON, for what orjson cannot write exactly; format 1 wrote only B)."""
    from ._codec import dumps_fast

    fast, data = dumps_fast(rows)
    return frame(b"b" if fast else b"B", data)


def encode_seal(data_end: int) -> bytes:
    return frame(b"S", _SEAL_BODY.pack(data_end))


def iter_frames(
    buf: bytes | memoryview, base: int, kinds: frozenset[bytes] = KINDS
) -> Iterator[tuple[bytes, int, int, int]]:
    """Yield (kind, payload_offset, payload_length, end_offset) for each complete, valid frame.

    Offsets are absolute (base is the file offset of buf[0]). Stops at the first incomplete
    or invalid frame (or a seal): the caller decides whether that is the end, a commit
    still being written, or damage (:func:`damage_after`).
    """
    view = memoryview(buf)
    pos = 0
    size = len(view)
    while pos + HEADER.size <= size:
        magic, kind, length, crc = HEADER.unpack_from(view, pos)
        start = pos + HEADER.size
        end = start + length
        if (magic != MAGIC or kind not in kinds or end > size
                or frame_crc(kind, view[start:end]) != crc):
            return
        if kind == b"S":
            return
        yield kind, base + start, length, base + end
        pos = end


def frame_size_at(buf: bytes | memoryview, pos: int = 0) -> int | None:
    """The whole size of the frame whose header starts at pos; None if no header is there."""
    if len(buf) - pos < HEADER.size:
        return None
    magic, kind, length, _crc = HEADER.unpack_from(buf, pos)
    return HEADER.size + length if magic == MAGIC and kind in KINDS else None


def sealed_length(fd: int, size: int) -> int | None:
    """Where the data of a sealed file ends (its seal frame's offset), or None if unsealed."""
    if size < SEAL:
        return None
    tail = os.pread(fd, SEAL, size - SEAL)
    if len(tail) != SEAL:
        return None
    magic, kind, length, crc = HEADER.unpack_from(tail, 0)
    body = tail[HEADER.size:]
    if magic != MAGIC or kind != b"S" or length != _SEAL_BODY.size or zlib.crc32(body) != crc:
        return None
    (end,) = _SEAL_BODY.unpack(body)
    return end if end == size - SEAL else None


def _valid_frame_at(buf: bytes, pos: int) -> bool:
    if len(buf) - pos < HEADER.size:
        return False
    magic, kind, length, crc = HEADER.unpack_from(buf, pos)
    start = pos + HEADER.size
    end = start + length
    return (magic == MAGIC and kind in KINDS and end <= len(buf)
            and frame_crc(kind, memoryview(buf)[start:end]) == crc)


def damage_after(fd: int, stop: int, size: int) -> int | None:
    """Where a valid frame starts after a bad one at stop, or None: the bytes from stop to
    size are a torn tail (or zero-filled space). Only called when parsing stopped early.

    Also None when the frame at stop is valid now: another process was writing it when
    the caller read it (a read racing a pwrite may see the end of an append before its
    start), and a later frame proves only that the write has finished since."""
    data = os.pread(fd, size - stop, stop)
    if _valid_frame_at(data, 0):
        return None
    pos = data.find(MAGIC, 1)
    while pos != -1:
        if _valid_frame_at(data, pos):
            return stop + pos
        pos = data.find(MAGIC, pos + 1)
    return None


def corrupt(path: str, offset: int, why: str) -> CorruptDataError:
    return CorruptDataError(
        f"catalog file {path} is damaged at byte offset {offset} ({why}); the records from "
        "there on cannot be trusted. Restore the file from a backup; or, to give up what "
        "it holds after that offset, move it out of the catalog directory "
        "(`localckpt verify` lists every damaged file)"
    )


def try_lock(fd: int, shared: bool = False) -> bool:
    """Take a non-blocking flock (exclusive by default); False when someone holds it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass


class SegmentWriter:
    """This process's segment: created on first write, locked while open.

    A durable writer keeps a zero-filled region ahead of its data and overwrites it
    (``pwrite``) instead of appending: the file's size and block map then do not change
    per commit, so ``fdatasync`` flushes the data blocks alone instead of also committing
    the filesystem journal for the new size (measured here: ~140 us instead of ~200 us
    per 2 KB commit, about what SQLite pays for its reused WAL). Readers stop at the
    zeros, which are never a valid frame header. Sealing cuts the zeros off and writes
    the seal frame, after which every byte before it must parse.
    """

    def __init__(self, path: str, durable: bool) -> None:
        self.path = path
        self.durable = durable
        # Created under a name compaction ignores and published only once locked: a
        # compactor that saw the file between create and flock would take it for a
        # sealed segment, and could unlink it before this writer's first append.
        tmp = f"{path}.new"
        self.fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if not try_lock(self.fd):  # cannot happen for a fresh name
                raise CorruptDataError(f"segment {path} is already locked by another writer")
            os.rename(tmp, path)
        except BaseException:
            os.close(self.fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self.size = 0  # end of the data; the zero-filled region (if any) follows
        self.allocated = 0
        self.broken = False

    def _reserve(self, end: int) -> None:
        """Zero-fill ahead so that [size, end) is written space (durable writers only)."""
        if end <= self.allocated:
            return
        grow = max(end - self.allocated, min(max(self.allocated, PREALLOC_MIN), PREALLOC_MAX))
        zeros = bytes(grow)
        done = 0
        while done < grow:
            done += os.pwrite(self.fd, zeros[done:], self.allocated + done)
        os.fdatasync(self.fd)
        self.allocated += grow

    def append(self, data: bytes) -> tuple[int, int]:
        """Write data after the last commit in one call; return (start, end). All or nothing."""
        start = self.size
        end = start + len(data)
        try:
            if self.durable:
                self._reserve(end)
            written = os.pwrite(self.fd, data, start)
            if written != len(data):
                raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
            if self.durable:
                os.fdatasync(self.fd)
        except BaseException:
            # Cut the torn tail so later readers never stall on it, then retire the segment.
            self.broken = True
            self.allocated = 0
            try:
                os.ftruncate(self.fd, start)
            except OSError:
                pass
            raise
        self.size = end
        return start, end

    def seal(self) -> bool:
        """No more appends: cut the zeros, write the seal, drop the lock (compaction may
        now take the segment). A segment that holds no commit is removed instead (a full
        disk must not leave one empty file per failed save). Returns whether it remains;
        the fd stays open for reads (the catalog closes it with the others)."""
        self.broken = True
        if self.size == 0:
            try:
                os.unlink(self.path)
                unlock(self.fd)
                return False
            except OSError:
                pass
        try:
            os.ftruncate(self.fd, self.size)
            os.pwrite(self.fd, encode_seal(self.size), self.size)
            if self.durable:
                os.fdatasync(self.fd)
        except OSError:
            pass  # unsealed: readers treat its end as a possibly torn tail
        self.allocated = 0
        unlock(self.fd)
        return True
