"""Sorted fixed-width indexes and Bloom filters, read where they lie with ``pread``.

A compacted run answers a point lookup without loading anything: its indexes are sorted
arrays of fixed-width entries (key padded with NUL to the index's width, then a packed
value) cut into 4 KB pages, each with its own CRC; a lookup is a binary search over
pages (~log2(pages) reads of 4 KB from the page cache) and then inside one page. A
Bloom filter of 64-byte blocks (60 bytes of bits and a CRC each, 10 bits per key, 6
probes in one block) answers most misses with one 64-byte read, which is what a save
asks about a new id. Nothing here is kept in memory between calls.

Writers build both with numpy (the compactor sorts up to a run's worth of keys at once).
"""

from __future__ import annotations

import bisect
import hashlib
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._segments import corrupt

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "PAGE", "BloomReader", "PagedIndex", "bloom_bytes", "bloom_keys", "id_hashes", "page_bytes",
]

PAGE = 4096
_HEAD = struct.Struct(">IH")  # crc32 of page[4:], entry count
_BLOCK = 64
_BITS = 480  # bits per block (60 bytes; 4 bytes of CRC)
_PROBES = 6
_BITS_PER_KEY = 10

Read = Callable[[int, int], bytes]  # (length, offset) -> bytes


def pad(key: bytes, width: int) -> bytes:
    return key + b"\0" * (width - len(key))


def page_bytes(entries: bytes, entry_size: int) -> bytes:
    """Pages of packed, sorted entries (each page: CRC, count, entries, zero padding)."""
    per = (PAGE - _HEAD.size) // entry_size
    out = bytearray()
    step = per * entry_size
    for start in range(0, len(entries), step):
        chunk = entries[start : start + step]
        body = struct.pack(">H", len(chunk) // entry_size) + chunk
        body += bytes(PAGE - 4 - len(body))
        out += struct.pack(">I", zlib.crc32(body)) + body
    return bytes(out)


class PagedIndex:
    """A sorted index section: key (width bytes, NUL-padded) -> value (a struct)."""

    def __init__(self, read: Read, where: str, offset: int, count: int, width: int,
                 value: struct.Struct) -> None:
        self._read = read
        self.where = where
        self.offset = offset
        self.count = count
        self.width = width
        self.value = value
        self.entry = width + value.size
        self.per = (PAGE - _HEAD.size) // self.entry
        self.pages = -(-count // self.per) if count else 0

    def page(self, i: int) -> bytes:
        """Entries of page i (packed), CRC-checked."""
        at = self.offset + i * PAGE
        data = self._read(PAGE, at)
        if len(data) != PAGE:
            raise corrupt(self.where, at, "index page cut short")
        crc, n = _HEAD.unpack_from(data)
        if zlib.crc32(memoryview(data)[4:]) != crc:
            raise corrupt(self.where, at, "index page checksum mismatch")
        want = min(self.per, self.count - i * self.per)
        if n != want:
            raise corrupt(self.where, at, "index page holds the wrong number of entries")
        return data[_HEAD.size : _HEAD.size + n * self.entry]

    def _keys(self, raw: bytes) -> list[bytes]:
        e, w = self.entry, self.width
        return [raw[j : j + w] for j in range(0, len(raw), e)]

    def _lower_bound(self, key: bytes) -> tuple[int, int, bytes]:
        """(page, position, page entries) of the first entry >= key (the position may be
        the page's entry count: the entry is then the next page's first)."""
        lo, hi = 0, self.pages - 1
        raw = b""
        while lo < hi:  # the last page whose first key <= key
            mid = (lo + hi + 1) // 2
            data = self.page(mid)
            if data[: self.width] <= key:
                lo, raw = mid, data
            else:
                hi = mid - 1
        if not raw:
            raw = self.page(lo)
        return lo, bisect.bisect_left(self._keys(raw), key), raw

    def find(self, key: bytes) -> tuple[int, ...] | None:
        """The value stored under key, or None."""
        if not self.count or len(key) > self.width:
            return None
        key = pad(key, self.width)
        _, j, raw = self._lower_bound(key)
        at = j * self.entry
        if at < len(raw) and raw[at : at + self.width] == key:
            return self.value.unpack_from(raw, at + self.width)
        return None

    def scan_from(self, prefix: bytes) -> Iterator[tuple[bytes, tuple[int, ...]]]:
        """(key, value) for every key >= prefix, in order (keys unpadded)."""
        if not self.count:
            return
        p, j, raw = self._lower_bound(pad(prefix, self.width)[: self.width])
        while True:
            for at in range(j * self.entry, len(raw), self.entry):
                yield (raw[at : at + self.width].rstrip(b"\0"),
                       self.value.unpack_from(raw, at + self.width))
            p, j = p + 1, 0
            if p >= self.pages:
                return
            raw = self.page(p)

    def get(self, ordinal: int) -> tuple[bytes, tuple[int, ...]]:
        """The entry at a position (0 <= ordinal < count)."""
        raw = self.page(ordinal // self.per)
        at = (ordinal % self.per) * self.entry
        return (raw[at : at + self.width].rstrip(b"\0"),
                self.value.unpack_from(raw, at + self.width))

    def all_entries(self) -> bytes:
        """Every entry, packed, in order (for compaction)."""
        return b"".join(self.page(i) for i in range(self.pages))


# -- Bloom filters -------------------------------------------------------------------------


def id_hashes(key: bytes) -> tuple[int, int]:
    """Two 64-bit hashes of an id (SHA-256 output keys are hashed by themselves)."""
    d = hashlib.blake2b(key, digest_size=16).digest()
    return int.from_bytes(d[:8], "big"), int.from_bytes(d[8:], "big")


def digest_hashes(key: bytes) -> tuple[int, int]:
    return int.from_bytes(key[:8], "big"), int.from_bytes(key[8:16], "big")


def bloom_keys(keys: list[bytes], digests: bool) -> tuple[np.ndarray, np.ndarray]:
    """The two hash arrays of keys (ids, or raw SHA-256 digests)."""
    import numpy as np

    if digests:
        raw = np.frombuffer(b"".join(k[:16] for k in keys), dtype=">u8").reshape(-1, 2)
        return raw[:, 0].astype(np.uint64), raw[:, 1].astype(np.uint64)
    pairs = [id_hashes(k) for k in keys]
    h = np.array(pairs, dtype=np.uint64).reshape(-1, 2)
    return h[:, 0], h[:, 1]


def bloom_blocks(count: int) -> int:
    return max(1, -(-count * _BITS_PER_KEY // _BITS))


def bloom_bytes(h1: np.ndarray, h2: np.ndarray) -> bytes:
    """A blocked Bloom filter of the keys hashed to (h1, h2)."""
    import numpy as np

    blocks = bloom_blocks(len(h1))
    bits = np.zeros(blocks * _BITS, dtype=bool)
    base = (h1 % np.uint64(blocks)) * np.uint64(_BITS)
    for i in range(_PROBES):
        pos = ((h2 >> np.uint64(9 * i)) & np.uint64(511)) % np.uint64(_BITS)
        bits[(base + pos).astype(np.int64)] = True
    packed = np.packbits(bits.reshape(blocks, _BITS), axis=1, bitorder="little")
    out = bytearray()
    for row in packed:
        body = row.tobytes()
        out += struct.pack(">I", zlib.crc32(body)) + body
    return bytes(out)


class BloomReader:
    """Membership test against a bloom section: False means certainly absent."""

    def __init__(self, read: Read, where: str, offset: int, blocks: int) -> None:
        self._read = read
        self.where = where
        self.offset = offset
        self.blocks = blocks

    def may_contain(self, h1: int, h2: int) -> bool:
        if not self.blocks:
            return False
        at = self.offset + (h1 % self.blocks) * _BLOCK
        data = self._read(_BLOCK, at)
        if len(data) != _BLOCK or zlib.crc32(memoryview(data)[4:]) != int.from_bytes(
            data[:4], "big"
        ):
            raise corrupt(self.where, at, "filter block checksum mismatch")
        for i in range(_PROBES):
            pos = ((h2 >> (9 * i)) & 511) % _BITS
            if not data[4 + (pos >> 3)] & (1 << (pos & 7)):
                return False
        return True
