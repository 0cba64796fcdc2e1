"""Group commit: threads of one process that commit at once share one write and sync.

Each committing thread prepares its payload under the catalog's lock and joins the open
group. The first thread to find no write in flight becomes the leader: it takes the
group, releases the lock, does one ``pwrite`` + ``fdatasync`` for every payload in it,
takes the lock again, applies the records and wakes the others. Threads that arrived
meanwhile form the next group; one of them leads it. Every thread returns only once its
own payload is durable (or raises the write's error): a lone thread pays nothing but a
few attribute writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Entry", "GroupCommit"]


class Entry:
    """One thread's payload and what to apply once it is on disk."""

    __slots__ = ("apply", "done", "error", "payload")

    def __init__(self, payload: bytes, apply: Callable[[int], None]) -> None:
        self.payload = payload
        self.apply = apply  # called with the payload's file offset, under the lock
        self.done = False
        self.error: BaseException | None = None


class _Group:
    __slots__ = ("entries", "outputs")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.outputs: set[str] = set()  # hashes written by this group (all or nothing)


class GroupCommit:
    """Leader/follower batching of appends; every method runs under ``lock``."""

    def __init__(self, lock: Any, write: Callable[[bytes], tuple[int, int]],
                 failed: Callable[[BaseException], BaseException]) -> None:
        self._lock = lock
        self._cond = threading.Condition(lock)
        self._write = write  # one append, without the lock; returns (start, end)
        self._failed = failed  # turns a write error into the error each thread raises
        self._open: _Group | None = None
        self._flushing = False
        self.groups = 0  # writes done (a counter for tests and benchmarks)
        self.entries = 0

    def open_outputs(self) -> set[str]:
        """Hashes the group this thread would join writes: safe to share."""
        return self._open.outputs if self._open is not None else set()

    def commit(self, entry: Entry, outputs: set[str]) -> None:
        group = self._open
        if group is None:
            group = self._open = _Group()
        group.entries.append(entry)
        group.outputs |= outputs
        while not entry.done:
            if not self._flushing and self._open is group:
                self._flush(group)
            else:
                self._cond.wait()
        if entry.error is not None:
            raise entry.error

    def drain(self) -> None:
        """Wait until no group is being written or waits to be (closing the segment)."""
        while self._flushing or self._open is not None:
            if not self._flushing and self._open is not None:
                self._flush(self._open)
            else:
                self._cond.wait()

    def _flush(self, group: _Group) -> None:
        self._flushing = True
        self._open = None
        payload = b"".join(e.payload for e in group.entries)
        error: BaseException | None = None
        self._lock.release()
        try:
            start, _ = self._write(payload)
        except BaseException as exc:
            error = exc
        finally:
            self._lock.acquire()
        try:
            self.groups += 1
            self.entries += len(group.entries)
            if error is None:
                pos = start
                for e in group.entries:
                    e.apply(pos)
                    pos += len(e.payload)
            else:
                shown = self._failed(error)
                for e in group.entries:
                    e.error = shown
        finally:
            for e in group.entries:
                e.done = True
            self._flushing = False
            self._cond.notify_all()
