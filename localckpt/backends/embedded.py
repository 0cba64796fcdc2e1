"""Embedded catalog: segment logs on local disk, DuckDB as the in-process query engine.

Why this shape (measured here, see README "Storage layout"): a DuckDB file admits one
writing process and nobody else may even open it meanwhile; a connect costs ~25 ms and a
one-row insert ~2 ms. So the durable catalog is not a DuckDB file. Each process appends
its commits to a segment of its own (``_segments``), every process reads the others'
segments incrementally before it answers, point lookups come from an in-process index,
and set queries (lineage, tree, children) run in an in-memory DuckDB fed in batches.
Sealed segments are compacted into packs; records are immutable and keyed by id, so a
record seen in both a segment and a pack is the same record.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import attrs
import duckdb
import pyarrow as pa

from ..catalog import Batch, Catalog
from ..errors import BackendUnavailableError, StoreClosedError
from ..ids import new_id
from ..records import (
    checkpoint_from_dict,
    checkpoint_to_dict,
    timeline_from_dict,
    timeline_to_dict,
)
from ..schema import FIELDS, from_dict, to_arrow, to_dict
from ..types import Checkpoint, Tag, Timeline, Tombstone
from ._index import RecordIndex
from ._segments import (
    HASH_LEN,
    HEADER,
    SegmentWriter,
    encode_batch,
    encode_output,
    frame_size_at,
    iter_frames,
)

__all__ = ["EmbeddedCatalog"]

_DUCKDB_TYPES = {
    "id": "VARCHAR", "hash": "VARCHAR", "text": "VARCHAR", "json": "JSON", "float": "DOUBLE",
    "int": "BIGINT", "bool": "BOOLEAN", "time": "TIMESTAMPTZ",
}
_TABLES = {"timelines": "timeline", "checkpoints": "checkpoint"}
_SCHEMA = ";\n".join(
    f"CREATE TABLE {table} ("
    + ", ".join(f"{f.name} {_DUCKDB_TYPES[f.type]}" for f in FIELDS[kind]) + ")"
    for table, kind in _TABLES.items()
)

_LINEAGE = """
WITH RECURSIVE up(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM checkpoints WHERE id = $id
    UNION ALL
    SELECT c.id, c.parent_id, up.depth + 1 FROM checkpoints c JOIN up ON c.id = up.parent_id
)
SELECT id FROM up ORDER BY depth DESC
"""

_READ_FIRST = 4 << 10  # the first read of another process's segment (usually zeros)
_READ_MAX = 4 << 20  # reads grow up to this while commits keep coming
_RACY_NS = 1_000_000_000  # a directory mtime younger than this is not trusted (coarse clocks)


@attrs.define
class _FileState:
    fd: int
    offset: int = 0


class EmbeddedCatalog(Catalog):
    """Catalog in a local directory, safe for many processes writing at once."""

    supports_multiprocess = True

    def __init__(self, directory: str, *, fsync: bool = True, compact_after: int = 32) -> None:
        self.directory = os.path.abspath(directory)
        self.fsync = fsync
        self.compact_after = compact_after
        os.makedirs(self.directory, exist_ok=True)
        self._lock = threading.RLock()
        self._closed = False
        self._reset()
        if self._sealed_count() > compact_after:
            self.compact()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._index = RecordIndex(self.load_values)
        self._out_loc: dict[str, tuple[int, int, int]] = {}
        self._files: dict[str, _FileState] = {}
        self._writer: SegmentWriter | None = None
        self._writer_name = ""
        self._listed_logs: list[str] = []
        self._listed_mtime = -1
        self._db = duckdb.connect(":memory:")
        self._db.execute(_SCHEMA)
        self._pending_t: list[Timeline] = []
        self._pending_c: list[Checkpoint] = []
        self._refresh()

    def describe(self) -> str:
        return f"embedded catalog at {self.directory}"

    # -- reading the logs ---------------------------------------------------------------

    def _check_process(self) -> None:
        if self._closed:
            raise StoreClosedError("this store is closed; open it again with localckpt.open()")
        if os.getpid() != self._pid:
            # Forked: the parent's segment, lock and DuckDB handle are not ours to use.
            # The inherited DuckDB connection must never be freed here: its destructor
            # joins worker threads that exist only in the parent, and hangs for ever.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._db))
            self._reset()

    def _refresh(self) -> None:
        """Apply every complete commit that other processes wrote since the last look.

        Files only appear (a new writer's segment, a pack) or vanish (compaction) by
        renames and unlinks, which change the directory's mtime. While that mtime stays
        what the last listing saw, and is old enough that the filesystem's coarse clock
        cannot hide a change within the same tick, only the logs already known can have
        grown, so they are read without listing the directory.
        """
        try:
            dir_mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError as exc:
            raise self._gone() from exc
        if dir_mtime == self._listed_mtime and time.time_ns() - dir_mtime > _RACY_NS:
            for name in self._listed_logs:
                if name != self._writer_name:
                    known = self._files[name]
                    self._read_new(known, os.fstat(known.fd).st_size)
            return
        for _ in range(5):
            vanished = False
            entries = []
            try:
                with os.scandir(self.directory) as it:
                    for e in it:
                        if e.name.endswith((".log", ".pack")):
                            try:
                                entries.append((e.name, e.stat().st_size))
                            except FileNotFoundError:  # compacted away since the listing
                                vanished = True
            except FileNotFoundError as exc:
                raise self._gone() from exc
            entries.sort(key=lambda e: (not e[0].endswith(".pack"), e[0]))
            listed = []
            for name, size in entries:
                state = self._files.get(name)
                if state is None:
                    try:
                        fd = os.open(os.path.join(self.directory, name), os.O_RDONLY)
                    except FileNotFoundError:  # compacted away between listing and open
                        vanished = True
                        continue
                    state = self._files[name] = _FileState(fd)
                if name.endswith(".log"):
                    listed.append(name)
                if name != self._writer_name:
                    self._read_new(state, size)
            if not vanished:
                self._listed_logs = listed
                self._listed_mtime = dir_mtime
                return

    def _gone(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"catalog directory {self.directory} disappeared; was the store deleted? "
            "Restore the directory, or open the store again to start a new one."
        )

    def _read_new(self, state: _FileState, size: int) -> None:
        """Apply the complete commits between state.offset and size.

        A durable writer's segment ends in zero-filled space (see SegmentWriter), so the
        size says only how far to look: reading stops at the first frame that is not
        complete and valid, and resumes there next time.
        """
        want = _READ_FIRST
        while state.offset < size:
            data = os.pread(state.fd, min(size - state.offset, want), state.offset)
            if not data:
                return
            end = self._ingest(state.fd, data, state.offset)
            if end == state.offset:
                need = frame_size_at(data)
                if need is None or need <= len(data) or state.offset + need > size:
                    return  # zeros, a commit being written, or a torn tail
                want = need  # one frame larger than a chunk
                continue
            state.offset = end
            want = min(want * 8, _READ_MAX)

    def _ingest(self, fd: int, data: bytes, base: int) -> int:
        """Apply the complete frames of data (read at file offset base); return the new offset."""
        end = base
        view = memoryview(data)
        for kind, start, length, frame_end in iter_frames(view, base):
            rel = start - base
            if kind == b"O":
                h = bytes(view[rel : rel + HASH_LEN]).decode("ascii")
                self._out_loc[h] = (fd, start + HASH_LEN, length - HASH_LEN)
            elif kind == b"B":
                rows = json.loads(bytes(view[rel : rel + length]))
                for d in rows.get("t", ()):
                    t = timeline_from_dict(d)
                    if self._index.add_timeline(t):
                        self._pending_t.append(t)
                for d in rows.get("c", ()):
                    c = checkpoint_from_dict(d)
                    if self._index.add_checkpoint(c):
                        self._pending_c.append(c)
                for d in rows.get("x", ()):
                    self._index.add_tombstone(from_dict("tombstone", d))
                for d in rows.get("g", ()):
                    self._index.add_tag(from_dict("tag", d))
            end = frame_end
        return end

    def _flush_to_duckdb(self) -> None:
        """Load rows seen since the last query into DuckDB, as one Arrow insert per table."""
        for table, kind, pending in (("checkpoints", "checkpoint", self._pending_c),
                                     ("timelines", "timeline", self._pending_t)):
            if pending:
                rows = list(pending)
                pending.clear()
                self._db.register("_new_rows", to_arrow(kind, rows))
                self._db.execute(f"INSERT INTO {table} SELECT * FROM _new_rows")
                self._db.unregister("_new_rows")

    def _query_ids(self, sql: str, params: dict[str, Any]) -> list[Checkpoint]:
        self._flush_to_duckdb()
        ids = [row[0] for row in self._db.execute(sql, params).fetchall()]
        return self._index.ordered(ids)

    def sql(self, query: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run a SQL query over the tables ``timelines`` and ``checkpoints`` (an Arrow table).

        The tables are this process's in-memory view, rebuilt from the logs on open:
        changing them changes nothing on disk.
        """
        with self._lock:
            self._check_process()
            self._refresh()
            self._flush_to_duckdb()
            return self._db.sql(query, params=params or {}).to_arrow_table()

    # -- the Catalog interface ------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        with self._lock:
            self._check_process()
            self._refresh()
            self._index.check(batch, self.describe())
            outputs = [(h, d) for h, d in batch.outputs.items() if h not in self._out_loc]
            new = self._index.new_records(batch)
            timelines, checkpoints = new.timelines, new.checkpoints
            if not (outputs or new):
                return
            frames = [encode_output(h, bytes(d)) for h, d in outputs]
            rows: dict[str, list[dict[str, Any]]] = {
                "t": [timeline_to_dict(t) for t in timelines],
                "c": [checkpoint_to_dict(c) for c in checkpoints],
            }
            if new.tombstones:
                rows["x"] = [to_dict(t) for t in new.tombstones]
            if new.tags:
                rows["g"] = [to_dict(t) for t in new.tags]
            frames.append(encode_batch(rows))
            payload = b"".join(frames)
            writer = self._get_writer()
            try:
                start, end = writer.append(payload)
            except OSError as exc:
                self._retire_writer()
                raise BackendUnavailableError(
                    f"could not append to the catalog in {self.directory}: {exc}. "
                    "Check free disk space and permissions; nothing was written."
                ) from exc
            # Apply our own records directly instead of parsing back what we just wrote.
            state = self._files[self._writer_name]
            pos = start
            for (h, _), frame in zip(outputs, frames, strict=False):
                skip = HEADER.size + HASH_LEN
                self._out_loc[h] = (state.fd, pos + skip, len(frame) - skip)
                pos += len(frame)
            for t in timelines:
                if self._index.add_timeline(t):
                    self._pending_t.append(t)
            for c in checkpoints:
                if self._index.add_checkpoint(c):
                    self._pending_c.append(c)
            for x in new.tombstones:
                self._index.add_tombstone(x)
            for g in new.tags:
                self._index.add_tag(g)
            state.offset = end

    def _get_writer(self) -> SegmentWriter:
        if self._writer is None or self._writer.broken:
            self._retire_writer()
            name = f"seg-{new_id()}.log"
            try:
                self._writer = SegmentWriter(os.path.join(self.directory, name), self.fsync)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"cannot create a catalog segment in {self.directory}: {exc}"
                ) from exc
            self._writer_name = name
            # Reads of our own segment go through the writer's descriptor (opened O_RDWR).
            self._files[name] = _FileState(self._writer.fd)
        return self._writer

    def _retire_writer(self) -> None:
        if self._writer is not None:
            self._writer.unlock()
            self._writer = None

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        with self._lock:
            self._check_process()
            self._refresh()
            return self._index.get_timelines(ids)

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        with self._lock:
            self._check_process()
            self._refresh()
            return self._index.get_checkpoints(ids)

    def peek_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        with self._lock:
            self._check_process()
            found = self._index.checkpoints.get(checkpoint_id)
            if found is None:
                self._refresh()
                found = self._index.checkpoints.get(checkpoint_id)
            return found

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        with self._lock:
            self._check_process()
            self._refresh()
            return self._index.get_tombstones(timeline_ids)

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        with self._lock:
            self._check_process()
            self._refresh()
            return self._index.get_tags(timeline_ids)

    def deleted(self, target_ids: Iterable[str]) -> set[str]:
        with self._lock:
            self._check_process()
            self._refresh()
            return {i for i in target_ids if i in self._index.deleted}

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        with self._lock:
            self._check_process()
            self._refresh()
            return self._index.find_ids(kind, prefix, limit)

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        with self._lock:
            self._check_process()
            self._refresh()
            return self._query_ids(
                "SELECT id FROM checkpoints WHERE parent_id = $id ORDER BY id",
                {"id": checkpoint_id},
            )

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        with self._lock:
            self._check_process()
            self._refresh()
            return self._query_ids(_LINEAGE, {"id": checkpoint_id})

    def tree(self, timeline_id: str) -> list[Checkpoint]:
        with self._lock:
            self._check_process()
            self._refresh()
            return self._query_ids(
                "SELECT id FROM checkpoints WHERE timeline_id = $t ORDER BY id", {"t": timeline_id}
            )

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            self._check_process()
            wanted = list(hashes)
            if any(h not in self._out_loc for h in wanted):
                self._refresh()
            found = {}
            for h in wanted:
                loc = self._out_loc.get(h)
                if loc is not None:
                    fd, offset, length = loc
                    found[h] = os.pread(fd, length, offset)
            return found

    def missing_outputs(self, hashes: Iterable[str]) -> set[str]:
        with self._lock:
            self._check_process()
            self._refresh()
            return {h for h in hashes if h not in self._out_loc}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._pid:
                self._retire_writer()
                for state in self._files.values():
                    try:
                        os.close(state.fd)
                    except OSError:
                        pass
                self._db.close()
            self._files.clear()

    # -- compaction -------------------------------------------------------------------------

    def _sealed_count(self) -> int:
        return sum(1 for n in os.listdir(self.directory) if n.endswith((".log", ".pack")))

    def compact(self) -> int:
        """Merge sealed segments and packs into one pack; return how many files it replaced.

        Segments of live writers (their flock is held) are left alone. Readers never miss a
        record: the pack is renamed into place before its inputs are removed, and records
        are deduplicated by id.
        """
        from ._compact import compact_directory

        with self._lock:
            self._check_process()
            return compact_directory(self.directory, self.fsync)
