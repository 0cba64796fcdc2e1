"""The live log tail: records of segments (and format-1 packs) not compacted yet.

Each process reads what the other processes' segments gained since it last looked, and
keeps those records in memory (a :class:`RecordIndex`): that is all that opening a store
replays, so it costs what changed since the last compaction. A segment that a compaction
absorbed is dropped from memory once the manifest that covers it is read (see
``_manifest`` for why listing before reading the manifest cannot miss a record).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import CorruptDataError
from ..schema import FIELDS, from_dict
from ..types import Checkpoint
from ._codec import loads, loads_fast
from ._index import RecordIndex
from ._manifest import NAME as MANIFEST
from ._manifest import Manifest, manifest_stamp, read_manifest
from ._rows import checkpoint_from_row, timeline_from_row
from ._segments import (
    HASH_LEN,
    corrupt,
    damage_after,
    frame_size_at,
    iter_frames,
    sealed_length,
)

__all__ = ["LogTail"]

_READ_FIRST = 4 << 10  # the first read of another process's segment (usually zeros)
_READ_MAX = 4 << 20  # reads grow up to this while commits keep coming
# A directory mtime younger than this is not trusted: a change within the same clock tick
# leaves it as it was. Linux stamps files from the kernel's coarse clock (one tick: 1-10
# ms); a stamp in whole seconds may come from a filesystem that keeps only seconds (FAT:
# two), so it gets longer.
_RACY_NS = 50_000_000
_RACY_WHOLE_SECONDS_NS = 2_000_000_000


def _racy(dir_mtime: int, now: int) -> bool:
    """True while a directory stamp may still hide a later change in the same tick."""
    window = _RACY_WHOLE_SECONDS_NS if dir_mtime % 1_000_000_000 == 0 else _RACY_NS
    return now - dir_mtime <= window
_HEX = re.compile(rb"[0-9a-f]{64}")
_ROW_KINDS = (("t", "timeline"), ("c", "checkpoint"), ("x", "tombstone"), ("g", "tag"))


def is_log(name: str) -> bool:
    return name.endswith((".log", ".pack"))


@attrs.define
class LogFile:
    """A segment or format-1 pack being read."""

    name: str
    fd: int
    offset: int = 0
    pack: bool = False  # immutable: every byte must parse
    done: bool = False  # sealed and read to its seal
    stalled: tuple[int, int] = (-1, -1)  # (offset, size) already judged a torn tail


class LogTail:
    """Segments of this catalog directory, read incrementally into a RecordIndex."""

    def __init__(self, directory: str, fetch: Callable[[list[str]], Any],
                 stats: Counter[str]) -> None:
        self.directory = directory
        self._fetch = fetch
        self.stats = stats
        self.index = RecordIndex(fetch)
        self.out_loc: dict[str, tuple[int, int, int]] = {}
        self.logs: dict[str, LogFile] = {}
        self.damage: dict[str, str] = {}
        self.own = ""  # this process's segment: its records are applied by commit
        self.own_size: Callable[[], int] = lambda: 0
        self.manifest = Manifest()
        self._stamp: tuple[int, int, int] | None = None
        self._listed_mtime = -1
        self.listener: Callable[[Checkpoint], None] = lambda c: None
        self.on_manifest: Callable[[Manifest, bool], None] = lambda m, complete: None
        self.skip: set[str] = set()  # logs not to read (a compactor's own inputs)

    # -- refresh ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Apply every complete commit the logs gained; follow compactions.

        Files only appear (a new writer's segment, a run) or vanish (compaction) by
        renames and unlinks, which change the directory's mtime. While that mtime stays
        what the last listing saw, and is old enough that the filesystem's coarse clock
        cannot hide a change within the same tick, only the logs already known can have
        grown, so they are read without listing the directory.
        """
        dir_mtime = os.stat(self.directory).st_mtime_ns
        if dir_mtime == self._listed_mtime and not _racy(dir_mtime, time.time_ns()):
            for log in list(self.logs.values()):
                if not log.done and log.name != self.own:
                    self._read_new(log, os.fstat(log.fd).st_size)
            return
        # Names only (no stat per entry): sizes come from the descriptors.
        listed = [n for n in os.listdir(self.directory)
                  if n.endswith((".log", ".pack")) and n not in self.skip]
        present = set(listed)
        vanished = {n for n in self.logs if n not in present and n != self.own}
        for name in sorted(listed, key=lambda n: (not n.endswith(".pack"), n)):
            if name not in self.logs:
                try:
                    fd = os.open(os.path.join(self.directory, name), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # compacted away since the listing: in the manifest now
                self.logs[name] = LogFile(name, fd, pack=name.endswith(".pack"))
            log = self.logs[name]
            if not log.done and name != self.own:
                self._read_new(log, os.fstat(log.fd).st_size)
        # The manifest is read after the listing: whatever vanished before the listing is
        # covered by it. Whatever changes after it changes the directory's mtime, which
        # is then no longer the one recorded here: the next refresh lists again.
        self._listed_mtime = dir_mtime
        stamp = manifest_stamp(self.directory)
        if stamp != self._stamp:
            old = self.manifest
            try:
                self.manifest = read_manifest(self.directory)
                self.damage.pop(MANIFEST, None)
            except CorruptDataError as exc:  # reads refuse; verify can still look
                self.damage[MANIFEST] = str(exc)
                self._stamp = stamp
                return
            self._stamp = stamp
            absorbed = set(self.manifest.absorbed)
            # Cached views stay valid if the runs hold nothing this process had not read:
            # the next generation, made of logs it had read to their seals.
            complete = self.manifest.generation == old.generation + 1 and all(
                n in self.logs and self.logs[n].done for n in absorbed
            ) and not self.manifest.purged
            gone = (absorbed & set(self.logs)) | vanished
            if gone:
                self._rebuild(gone)
            self.on_manifest(self.manifest, complete)
        elif vanished:  # removed by hand: what it held is gone
            self._rebuild(vanished)
            self.on_manifest(self.manifest, False)

    def _rebuild(self, gone: set[str]) -> None:
        """Forget these logs (compacted into runs, or removed) and re-read the rest."""
        for name in gone:
            log = self.logs.pop(name, None)
            if log is not None and name != self.own:
                os.close(log.fd)
            self.damage.pop(name, None)
        self.index = RecordIndex(self._fetch)
        self.out_loc = {}
        for log in self.logs.values():
            log.offset, log.done, log.stalled = 0, False, (-1, -1)
            size = self.own_size() if log.name == self.own else os.fstat(log.fd).st_size
            self._read_new(log, size)

    def forget_all(self) -> None:
        for log in self.logs.values():
            if log.name != self.own:
                try:
                    os.close(log.fd)
                except OSError:
                    pass
        self.logs.clear()

    # -- reading one log ------------------------------------------------------------------

    def _read_new(self, log: LogFile, size: int) -> None:
        """Apply the complete commits between log.offset and size.

        A durable writer's segment ends in zero-filled space (see SegmentWriter), so the
        size says only how far to look: reading stops at the first frame that is not
        complete and valid, and resumes there next time, unless that frame is damage.
        """
        if log.name in self.damage:
            return
        want = _READ_FIRST
        while log.offset < size:
            data = os.pread(log.fd, min(size - log.offset, want), log.offset)
            if not data:
                return
            try:
                end = self._ingest(log, data, log.offset)
            except CorruptDataError as exc:
                self.damage[log.name] = str(exc)
                return
            if end == log.offset:
                need = frame_size_at(data)
                if need is not None and need > len(data) and log.offset + need <= size:
                    want = need  # one frame larger than a chunk
                    continue
                if need is None and not any(data[:11]):
                    if log.pack:
                        self._damaged(log, "zeros where a frame should be")
                    return  # the zero-filled space of a live durable segment
                self._judge_stop(log, size)
                return
            log.offset = end
            want = min(want * 8, _READ_MAX)
        if log.pack and log.offset == size:
            log.done = True

    def _judge_stop(self, log: LogFile, size: int) -> None:
        """Parsing stopped before size at a frame that is not valid: the seal, a torn
        tail, a commit being written, or damage."""
        at = log.offset
        if (at, size) == log.stalled:
            return
        sealed = sealed_length(log.fd, size)
        if sealed is not None:
            if at == sealed:
                log.done = True
                return
            self._damaged(log, "a frame before the seal does not parse")
            return
        if log.pack:
            self._damaged(log, "a frame of a compacted pack does not parse")
            return
        later = damage_after(log.fd, at, size)
        if later is not None:
            self._damaged(log, f"a frame does not parse, and a valid one follows at {later}")
            return
        log.stalled = (at, size)  # a torn tail, or a commit not yet fully written

    def _damaged(self, log: LogFile, why: str) -> None:
        self.damage[log.name] = str(corrupt(os.path.join(self.directory, log.name),
                                            log.offset, why))

    def _ingest(self, log: LogFile, data: bytes, base: int) -> int:
        """Apply the complete frames of data (read at file offset base); return the new offset."""
        end = base
        view = memoryview(data)
        where = os.path.join(self.directory, log.name)
        for kind, start, length, frame_end in iter_frames(view, base):
            rel = start - base
            if kind == b"O":
                label = bytes(view[rel : rel + HASH_LEN])
                if length < HASH_LEN or not _HEX.fullmatch(label):
                    raise corrupt(where, start, "output frame without a hash")
                self.out_loc[label.decode()] = (log.fd, start + HASH_LEN, length - HASH_LEN)
            elif kind in b"Bb":
                try:
                    body = view[rel : rel + length]
                    self.apply_rows(loads_fast(body) if kind == b"b" else loads(body))
                except (ValueError, AttributeError, TypeError, CorruptDataError) as exc:
                    raise corrupt(where, start, f"batch frame does not parse: {exc}") from None
            end = frame_end
        return end

    def apply_rows(self, rows: dict[str, Any]) -> None:
        idx = self.index
        n = 0
        for d in rows.get("c", ()):
            c = checkpoint_from_row(d, self._fetch)
            if idx.add_checkpoint(c, copy=False):
                self.listener(c)
        for d in rows.get("t", ()):
            idx.add_timeline(timeline_from_row(d))
        for d in rows.get("x", ()):
            idx.add_tombstone(from_dict("tombstone", d))
        for d in rows.get("g", ()):
            idx.add_tag(from_dict("tag", d))
        for key, _ in _ROW_KINDS:
            n += len(rows.get(key, ()))
        self.stats["records_read"] += n


@attrs.define
class FinalLog:
    """Everything a log whose writer is gone holds (what compaction absorbs)."""

    rows: dict[str, list[dict[str, Any]]]
    outputs: dict[str, tuple[int, int]]  # hash -> (offset, length) of its bytes
    problem: str | None = None
    data: bytes = b""  # the whole file (outputs are slices of it)

    def output(self, h: str) -> bytes:
        off, length = self.outputs[h]
        return self.data[off : off + length]


_FIELD_NAMES = {kind: frozenset(f.name for f in fields) for kind, fields in FIELDS.items()}


def _normalised(kind: str, d: dict[str, Any]) -> dict[str, Any]:
    """A row in the current schema's dict form: as it is when it has exactly the current
    fields (written by this version), else through the schema (defaults, checks)."""
    if d.keys() == _FIELD_NAMES[kind]:
        return d
    from ..schema import to_dict

    return to_dict(from_dict(kind, d))


def read_final_log(directory: str, name: str, fd: int) -> FinalLog:
    """Read a sealed segment or a pack completely, normalising rows to the current
    schema. Damage (anything but a torn tail of an unsealed segment) is reported in
    .problem, and then nothing of the file may be dropped."""
    where = os.path.join(directory, name)
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    rows: dict[str, list[dict[str, Any]]] = {kind: [] for _, kind in _ROW_KINDS}
    outputs: dict[str, tuple[int, int]] = {}
    end = 0
    try:
        view = memoryview(data)
        for kind, start, length, frame_end in iter_frames(view, 0):
            if kind == b"O":
                label = bytes(view[start : start + HASH_LEN])
                if length < HASH_LEN or not _HEX.fullmatch(label):
                    raise corrupt(where, start, "output frame without a hash")
                outputs.setdefault(label.decode(), (start + HASH_LEN, length - HASH_LEN))
            elif kind in b"Bb":
                try:
                    body = view[start : start + length]
                    batch = loads_fast(body) if kind == b"b" else loads(body)
                    for key, k in _ROW_KINDS:
                        rows[k].extend(_normalised(k, d) for d in batch.get(key, ()))
                except (ValueError, AttributeError, TypeError, CorruptDataError) as exc:
                    raise corrupt(where, start, f"batch frame does not parse: {exc}") from None
            end = frame_end
        if end < size:
            sealed = sealed_length(fd, size)
            if sealed is not None:
                if end != sealed:
                    raise corrupt(where, end, "a frame before the seal does not parse")
            elif name.endswith(".pack"):
                raise corrupt(where, end, "a frame of a compacted pack does not parse")
            else:
                later = damage_after(fd, end, size)
                if later is not None:
                    raise corrupt(where, end, f"a frame does not parse, and a valid one "
                                              f"follows at {later}")
    except CorruptDataError as exc:
        return FinalLog({}, {}, str(exc))
    return FinalLog(rows, outputs, data=data)
