"""How much of a bundle import reads: caps by what its manifest can sensibly declare.

A bundle is untrusted: a 1 MB zip can declare a 1 GB member (deflate expands 1,000
times), and a small Parquet file can decode to gigabytes (its own compression, or one
long dictionary value repeated on every row). Before anything is allocated:

- **the zip directory** (one entry per member, read whole by ``zipfile`` before any
  member, each entry becoming a Python object of some 600 bytes however short it is):
  at most :data:`MAX_DIRECTORY` bytes, checked from the archive's end record before
  the directory is read. A bundle's manifest lists every member it reads (and, from
  format 2, its SHA-256), in more bytes than the member's directory entry takes, so a
  directory larger than the largest manifest is no bundle's.
- **zip members**: a member whose declared size is above its cap is refused, and so is
  one that expands more than :data:`MAX_RATIO` times its stored bytes beyond
  :data:`RATIO_FLOOR` (export stores members uncompressed: ratio 1; a bundle zipped
  again by another tool shrinks JPEG and Parquet by a few percent). Reads stop at the cap.
- **tables** (timelines, checkpoints, tombstones, tags): the row count in the Parquet
  footer must be the manifest's count, and plausible for the bytes (each row holds a
  unique id, which does not compress to nothing); the decoded size, measured on
  dictionary-encoded columns before they are expanded, must stay within
  :data:`TABLE_FLOOR` + :data:`RECORD_BYTES` per row, and :data:`MAX_TABLE` in all.
- **outputs** are legitimately large: ``outputs.parquet`` is streamed from the archive
  one row group at a time (export writes groups of about :data:`OUTPUT_GROUP_BYTES`),
  and each group may decode to at most :data:`MAX_OUTPUT_GROUP` bytes, or
  :data:`MAX_RATIO` times its compressed bytes for older bundles written in one group.
- **frame objects** (shards and indexes) are read whole, up to :data:`MAX_OBJECT`; a
  frame index (from a bundle or another store) is measured as the tables are, at most
  :data:`RECORD_BYTES` ``["index"]`` a frame, before it is decoded whole.
- **Parquet codecs**: only those localckpt writes with (:data:`CODECS`), which expand
  a page at most some 20 times. Others (ZSTD, GZIP, BROTLI, LZ4) expand a few KB to
  gigabytes as a page is read, whatever sizes the file's own metadata declares (its
  writer chose them).

Every refusal is :class:`TooLarge`, which the bundle reader turns into CorruptDataError
naming the member.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "CODECS",
    "MAX_DIRECTORY",
    "MAX_MANIFEST",
    "MAX_OBJECT",
    "MAX_OUTPUT_GROUP",
    "MAX_RATIO",
    "OUTPUT_GROUP_BYTES",
    "OutputTable",
    "TooLarge",
    "check_directory",
    "read_member",
    "read_table",
    "table_cap",
]

MAX_MANIFEST = 16 << 20
MAX_DIRECTORY = MAX_MANIFEST
MAX_RATIO = 16
RATIO_FLOOR = 4 << 20
TABLE_FLOOR = 4 << 20
#: What one record may decode to on average (JSON fields included), and a whole table at
#: most: a bundle whose checkpoints decode to more would not fit the memory of the
#: import that holds them anyway.
RECORD_BYTES = {"timeline": 16 << 20, "checkpoint": 64 << 10, "tombstone": 4 << 10,
                "tag": 4 << 10, "index": 4 << 10}
#: The Parquet codecs of what localckpt writes (pyarrow's default is Snappy).
CODECS = ("UNCOMPRESSED", "SNAPPY")
MAX_TABLE = 1 << 30
MAX_OBJECT = 1 << 30
MAX_OUTPUT_GROUP = 256 << 20
OUTPUT_GROUP_BYTES = 32 << 20
#: Stored bytes per row at least: a row holds a unique id (UUIDv7: 74 random bits).
_MIN_ROW_BYTES = 8


class TooLarge(Exception):
    """A member or table larger than a bundle can sensibly hold; nothing was read."""


def table_cap(kind: str, declared: int | None) -> int:
    """Bytes a table member may have (its Parquet encoding is smaller than its decoded
    size, so the decoded cap bounds it too)."""
    rows = 1 if declared is None else declared
    return min(MAX_TABLE, TABLE_FLOOR + RECORD_BYTES[kind] * rows)


def check_directory(fh: BinaryIO) -> None:
    """TooLarge if the zip archive open in fh declares a directory of more than
    MAX_DIRECTORY bytes (zipfile would read it whole and make an object of every entry:
    a 1 GB file of empty members takes gigabytes). Reads the end record only, as
    ``zipfile.ZipFile`` reads it (so both see the same directory); an archive without
    one is left for zipfile to refuse."""
    end = getattr(zipfile, "_EndRecData", None)
    if end is None:  # pragma: no cover - every CPython since 2.x has it
        return
    record = end(fh)
    fh.seek(0)
    if record and record[5] > MAX_DIRECTORY:  # zipfile._ECD_SIZE
        raise TooLarge(f"its zip directory takes {record[5]} bytes, more than the "
                       f"{MAX_DIRECTORY} any bundle's needs (millions of members?)")


def _check_member(info: zipfile.ZipInfo, cap: int) -> None:
    if info.is_dir():
        raise TooLarge(f"{info.filename} is a directory entry, not a file")
    if info.file_size > cap:
        raise TooLarge(f"{info.filename} declares {info.file_size} bytes, more than the "
                       f"{cap} its manifest allows")
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise TooLarge(f"{info.filename} expands from {info.compress_size} to "
                       f"{info.file_size} bytes (more than {MAX_RATIO} times): a zip bomb")


def read_member(zf: zipfile.ZipFile, name: str, cap: int) -> bytes:
    """A member's bytes, at most cap (KeyError when there is none; CRC checked)."""
    info = zf.getinfo(name)
    _check_member(info, cap)
    with zf.open(info) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:  # the declared size lied (zipfile trusts it; never past cap)
        raise TooLarge(f"{name} holds more than {cap} bytes")
    return data


def _decoded_bytes(table: pa.Table) -> int:
    """What the table's columns take once dictionaries are expanded."""
    total = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                lengths = pc.binary_length(chunk.dictionary) if (
                    pa.types.is_string(chunk.dictionary.type)
                    or pa.types.is_binary(chunk.dictionary.type)) else None
                if lengths is None:
                    total += chunk.dictionary.nbytes + chunk.indices.nbytes
                else:
                    total += int(pc.sum(lengths.take(chunk.indices)).as_py() or 0)
                    total += chunk.indices.nbytes
            else:
                total += chunk.nbytes
    return total


def _string_columns(pf: pq.ParquetFile) -> list[str]:
    schema = pf.schema_arrow
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]


def _check_codecs(md: pq.FileMetaData) -> None:
    for group in range(md.num_row_groups):
        rg = md.row_group(group)
        for i in range(rg.num_columns):
            column = rg.column(i)
            if column.compression not in CODECS:
                raise TooLarge(f"its column {column.path_in_schema} is compressed with "
                               f"{column.compression}, which localckpt never writes (it "
                               f"expands without bound; {' or '.join(CODECS)} only)")


def read_table(data: bytes, kind: str, declared: int | None) -> pa.Table:
    """A record table (or, kind "index", a frame index) from a member's bytes, within
    the caps of the module docstring."""
    probe = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False)
    _check_codecs(probe.metadata)
    rows = probe.metadata.num_rows
    if declared is not None and rows != declared:
        raise TooLarge(f"it holds {rows} rows but the manifest counts {declared}")
    if rows > max(16, len(data) // _MIN_ROW_BYTES):
        raise TooLarge(f"it claims {rows} rows in {len(data)} bytes")
    cap = min(MAX_TABLE, TABLE_FLOOR + RECORD_BYTES[kind] * rows)
    declared_size = sum(probe.metadata.row_group(i).total_byte_size
                        for i in range(probe.metadata.num_row_groups))
    if declared_size > cap:
        raise TooLarge(f"it decodes to {declared_size} bytes, more than {cap} for {rows} rows")
    pf = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False,
                        read_dictionary=_string_columns(probe))
    table = pf.read(use_threads=False)
    size = _decoded_bytes(table)
    if size > cap:
        raise TooLarge(f"it decodes to {size} bytes, more than {cap} for {rows} rows")
    return table


class OutputTable:
    """``outputs.parquet`` of a bundle, streamed: a hash -> row group index built from
    the hash column, and one row group decoded at a time."""

    def __init__(self, zf: zipfile.ZipFile, name: str, declared: int | None) -> None:
        info = zf.getinfo(name)
        _check_member(info, 1 << 62)  # no size cap: only the expansion ratio
        self._fh = zf.open(info)
        try:
            self._pf = pq.ParquetFile(pa.PythonFile(self._fh, mode="r"), pre_buffer=False,
                                      read_dictionary=["hash", "json"])
            md = self._pf.metadata
            _check_codecs(md)
            if declared is not None and md.num_rows != declared:
                raise TooLarge(f"it holds {md.num_rows} rows but the manifest counts "
                               f"{declared} outputs")
            if md.num_rows > max(16, info.file_size // _MIN_ROW_BYTES):
                raise TooLarge(f"it claims {md.num_rows} rows in {info.file_size} bytes")
            self._where: dict[str, int] = {}
            for group in range(md.num_row_groups):
                self._check_group(group)
                hashes = self._pf.read_row_group(group, columns=["hash"], use_threads=False)
                if _decoded_bytes(hashes) > 128 * hashes.num_rows + TABLE_FLOOR:
                    raise TooLarge("its hash column holds more than hashes")
                for h in hashes.column(0).to_pylist():
                    self._where[str(h)] = group
        except BaseException:
            self._fh.close()
            raise
        self._cached: tuple[int, dict[str, bytes]] | None = None

    def _group_cap(self, group: int) -> int:
        rg = self._pf.metadata.row_group(group)
        stored = sum(rg.column(i).total_compressed_size for i in range(rg.num_columns))
        return max(MAX_OUTPUT_GROUP, MAX_RATIO * stored)

    def _check_group(self, group: int) -> None:
        rg = self._pf.metadata.row_group(group)
        if rg.total_byte_size > self._group_cap(group):
            raise TooLarge(f"row group {group} decodes to {rg.total_byte_size} bytes, more "
                           f"than {self._group_cap(group)}")

    def _group(self, group: int) -> dict[str, bytes]:
        if self._cached is not None and self._cached[0] == group:
            return self._cached[1]
        self._cached = None  # let the previous group go before reading the next
        table = self._pf.read_row_group(group, columns=["hash", "json"], use_threads=False)
        size = _decoded_bytes(table)
        if size > self._group_cap(group):
            raise TooLarge(f"row group {group} decodes to {size} bytes, more than "
                           f"{self._group_cap(group)}")
        text = table.column("json")
        if pa.types.is_dictionary(text.type):
            text = text.cast(text.type.value_type)
        rows = dict(zip(map(str, table.column("hash").to_pylist()),
                        text.cast(pa.binary()).to_pylist(), strict=True))
        self._cached = (group, rows)
        return rows

    def get(self, hashes: Sequence[str]) -> dict[str, bytes]:
        wanted: dict[int, list[str]] = {}
        for h in hashes:
            group = self._where.get(h)
            if group is not None:
                wanted.setdefault(group, []).append(h)
        found: dict[str, Any] = {}
        for group in sorted(wanted):
            rows = self._group(group)
            found.update({h: rows[h] for h in wanted[group] if rows.get(h) is not None})
        return found

    def close(self) -> None:
        self._cached = None
        self._fh.close()
