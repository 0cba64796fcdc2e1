"""This process's writes to an embedded catalog: its segment, group commit, and its share
of ``purge.lock``.

The catalog decides what a commit must write (``new_records``: the records it lacks,
ConflictError for an id present with other content; which outputs are already stored);
the Appender encodes it, appends it through the group commit and, once it is on disk,
applies it to the log tail's index, so a process never reads back its own segment. Every
method runs under the catalog's lock (the group's leader drops it only for the write).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from ..catalog import Batch
from ..errors import BackendUnavailableError, ConflictError
from ..ids import new_id
from ..schema import to_dict
from ..types import Checkpoint, Tag, Timeline, Tombstone
from ._group import Entry, GroupCommit
from ._segments import (
    HASH_LEN,
    HEADER,
    SegmentWriter,
    encode_batch,
    encode_output,
    try_lock,
    unlock,
)
from ._tail import LogFile, LogTail

__all__ = ["Appender", "New", "new_records"]

ROTATE_BYTES = 4 << 20  # a segment is sealed (and becomes compactable) past this size
New = tuple[list[Timeline], list[Checkpoint], list[Tombstone], list[Tag]]
_KINDS = ("timeline", "checkpoint", "tombstone", "tag")


def new_records(batch: Batch, existing: Callable[[str, str], Any], where: str) -> New:
    """The records of batch that existing(kind, id) does not know, by kind; ConflictError
    (nothing written) when an id is present with other content, in the batch or there."""
    groups: tuple[Any, ...] = (batch.timelines, batch.checkpoints, batch.tombstones,
                               batch.tags)
    out: list[list[Any]] = []
    bad = []
    for kind, records in zip(_KINDS, groups, strict=True):
        seen: dict[str, Any] = {}
        fresh = []
        for r in records:
            if seen.setdefault(r.id, r) != r:
                raise ConflictError(
                    f"the batch holds two different {kind} records with id {r.id}; "
                    "nothing was written")
            old = existing(kind, r.id)
            if old is None:
                fresh.append(r)
            elif old != r:
                bad.append(r.id)
        out.append(fresh)
    if bad:
        raise ConflictError(
            f"{len(bad)} record(s) already exist in {where} with other content "
            f"(first: {bad[0]}); ids are unique, so one of the two stores holds a "
            "modified copy. Nothing was written.")
    return (out[0], out[1], out[2], out[3])


class Appender:
    """The segment this process appends to, shared by its threads."""

    def __init__(self, directory: str, fsync: bool, lock: threading.RLock, tail: LogTail,
                 on_checkpoint: Callable[[Checkpoint], None],
                 on_rotate: Callable[[], None]) -> None:
        self.directory = directory
        self.fsync = fsync
        self.tail = tail
        self._lock = lock
        self._on_checkpoint = on_checkpoint  # a new record of ours (cached views)
        self._on_rotate = on_rotate  # a segment was sealed (compaction may be due)
        self.writer: SegmentWriter | None = None
        self.group = GroupCommit(lock, self._append, self._write_failed)
        self._purge_fd: int | None = None
        self._holders = 0

    # -- what a commit may skip -----------------------------------------------------------

    def shared_outputs(self) -> set[str]:
        """Outputs the group this commit would join writes (all or nothing with it)."""
        return self.group.open_outputs()

    def stored_here(self, h: str) -> bool:
        """In this process's live segment: safe to share without any lock."""
        loc = self.tail.out_loc.get(h)
        return loc is not None and self.writer is not None and loc[0] == self.writer.fd

    def share_purge_lock(self) -> bool:
        """Hold purge.lock shared while deciding which outputs are already stored; False
        (then every output is written again) while a purge is publishing."""
        if self._holders:
            self._holders += 1
            return True
        if self._purge_fd is None:
            try:
                self._purge_fd = os.open(os.path.join(self.directory, "purge.lock"),
                                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                return False
        if not try_lock(self._purge_fd, shared=True):
            return False
        self._holders = 1
        return True

    def release_purge_lock(self, held: bool) -> None:
        if not held:
            return
        self._holders -= 1
        if not self._holders and self._purge_fd is not None:
            unlock(self._purge_fd)

    # -- writing --------------------------------------------------------------------------

    def write(self, new: New, outputs: list[tuple[str, bytes]]) -> None:
        """Append new records and outputs; returns once they are on disk."""
        frames = [encode_output(h, bytes(d)) for h, d in outputs]
        groups: tuple[list[Any], ...] = new
        rows = {k: [to_dict(r) for r in group] for k, group in zip("tcxg", groups, strict=True)
                if group or k in "tc"}
        frames.append(encode_batch(rows))

        def apply(start: int) -> None:
            self._apply(new, outputs, frames, start)

        self.group.commit(Entry(b"".join(frames), apply), {h for h, _ in outputs})

    def _apply(self, new: New, outputs: list[tuple[str, bytes]], frames: list[bytes],
               start: int) -> None:
        """Our own records, once on disk: into the tail index (no need to read them back)."""
        writer = self.writer
        assert writer is not None
        pos = start
        for (h, _), frame in zip(outputs, frames, strict=False):
            skip = HEADER.size + HASH_LEN
            self.tail.out_loc[h] = (writer.fd, pos + skip, len(frame) - skip)
            pos += len(frame)
        idx = self.tail.index
        timelines, checkpoints, tombstones, tags = new
        for t in timelines:
            idx.add_timeline(t)
        for c in checkpoints:
            if idx.add_checkpoint(c):
                self._on_checkpoint(idx.checkpoints[c.id])
        for x in tombstones:
            idx.add_tombstone(x)
        for g in tags:
            idx.add_tag(g)
        self.tail.logs[self.tail.own].offset = writer.size

    def _append(self, payload: bytes) -> tuple[int, int]:
        """One write of a group's payload (called without the lock, by one thread at a
        time: the group's leader, the only one that touches the segment)."""
        with self._lock:
            if self.writer is not None and self.writer.size >= ROTATE_BYTES:
                self.retire()  # sealed: compactable, and readers replay less
                self._on_rotate()
            writer = self._get_writer()
        return writer.append(payload)

    def _write_failed(self, exc: BaseException) -> BaseException:
        with self._lock:
            self.retire()
        if isinstance(exc, OSError):
            return BackendUnavailableError(
                f"could not append to the catalog in {self.directory}: {exc}. Check free "
                "disk space and permissions; nothing was written.")
        return exc

    def _get_writer(self) -> SegmentWriter:
        if self.writer is None or self.writer.broken:
            self.retire()
            name = f"seg-{new_id()}.log"
            try:
                writer = SegmentWriter(os.path.join(self.directory, name), self.fsync)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"cannot create a catalog segment in {self.directory}: {exc}. Check free "
                    "disk space and permissions; nothing was written.") from exc
            self.writer = writer
            # Reads of our own segment go through the writer's descriptor (opened O_RDWR).
            self.tail.logs[name] = LogFile(name, writer.fd)
            self.tail.own = name
            self.tail.own_size = lambda: writer.size
        return self.writer

    def retire(self) -> None:
        """Seal this process's segment (a new one is made by the next write)."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        name = os.path.basename(writer.path)
        self.tail.own = ""
        self.tail.own_size = lambda: 0
        if not writer.seal():  # held no commit: removed
            self.tail.logs.pop(name, None)
            os.close(writer.fd)
            return
        log = self.tail.logs.get(name)
        if log is not None:
            log.offset, log.done = writer.size, True

    def close(self) -> None:
        self.group.drain()  # a write in flight finishes first
        self.retire()
        if self._purge_fd is not None:
            os.close(self._purge_fd)
            self._purge_fd = None
