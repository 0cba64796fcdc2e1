"""Ingest leases: how gc tells a frame write in progress from one that died.

Frames are written before the catalog row that makes them reachable, so until that row
commits, the objects of an ingest (or of a sync copying a new timeline) look exactly like
the leftovers of a crash. A lease is one small object next to them,
``frames/<timeline>/ingest.lease``, written before the first shard and rewritten every
:data:`REFRESH` seconds by a heartbeat thread (also while the frame source pauses).

The protocol, with gc (``localckpt.gc``) on the other side:

- gc treats a directory whose lease was refreshed within :data:`TTL` seconds as live
  and leaves it alone, whatever its age;
- to collect a directory with a stale lease, gc first deletes the lease (revokes it),
  waits :data:`GRACE` seconds, checks the catalog once more (a commit that was already
  under way has landed by then and is spared), and only then deletes the objects;
- the writer confirms its lease right before its commit (refreshing it; a lease that is
  gone or not its own means gc revoked it: the commit is refused, nothing is written),
  and a commit that took longer than GRACE / 2 while the lease was revoked is undone by
  a tombstone (its frames may be gone).

So a paused ingest keeps its shards (defect: gc deleted them once they were older than
``--older-than``), and a timeline whose shards gc removed never becomes visible.
Durations are measured with each process's monotonic clock; only the lease age compares
the object's modification time with gc's wall clock, and TTL is long next to any skew.

In a local directory the lease makes ``frames/<timeline>/`` (and ``frames/`` in a store
that held no frames); a write that fails or is refused leaves neither once its objects
are gone (:meth:`IngestLease.remove_dirs`, which removes ``frames/`` only if this lease
made it and only while it is empty; writers make a path again when a directory above it
went meanwhile: ``localckpt.objects.make_dirs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from .errors import (
    BackendUnavailableError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    NotFoundError,
)

if TYPE_CHECKING:
    from .objects import Objects

__all__ = ["GRACE", "LEASE_NAME", "MAX_LEASE_BYTES", "REFRESH", "TTL", "IngestLease", "LeaseLost",
           "lease_key", "read_lease"]

LEASE_NAME = "ingest.lease"
#: Seconds between heartbeats.
REFRESH = 5.0
#: A lease not refreshed for this long belongs to a writer that died or stalled.
TTL = 120.0
#: Seconds gc waits between revoking a lease and deleting what it protected.
GRACE = 2.0
#: A lease body is a few dozen bytes; anything larger is not a lease.
MAX_LEASE_BYTES = 4096


class LeaseLost(BackendUnavailableError):
    """gc revoked this write's lease (it looked abandoned); nothing was committed."""


def read_lease(objects: Objects, key: str) -> Any:
    """The decoded body of a lease object, read as a control file (localckpt.safefiles):
    at most MAX_LEASE_BYTES, a regular file where objects are local, JSON nested at most
    a few levels. NotFoundError when there is none, CorruptDataError when it is not a
    lease."""
    from .safefiles import parse_json, read_regular

    local = objects.local_path(key)
    if local is not None:
        data = read_regular(local, "ingest lease", max_bytes=MAX_LEASE_BYTES,
                            error=CorruptDataError)
        if data is None:
            raise NotFoundError(f"no lease {key}")
    else:
        data = objects.get_range(key, 0, MAX_LEASE_BYTES + 1)
    return parse_json(data, f"ingest lease {key}", max_bytes=MAX_LEASE_BYTES, max_depth=4,
                      error=CorruptDataError)


def _make_frames_dir(objects: Objects) -> bool:
    """Local stores: make the ``frames/`` directory when there is none; whether this
    call made it (its removal is then this write's to undo: IngestLease.remove_dirs)."""
    path = objects.local_path("frames")
    if path is None:
        return False
    try:
        os.mkdir(path)
    except OSError:  # there already (or the lease's put says what is wrong)
        return False
    return True


def lease_key(timeline_id: str) -> str:
    from .shards import _prefix

    return f"{_prefix(timeline_id)}{LEASE_NAME}"


class IngestLease:
    """The lease of one frame write (see the module docstring). Use as a context manager
    around writing the objects and the commit; :meth:`confirm` right before the commit."""

    def __init__(self, objects: Objects, timeline_id: str, *, refresh: float = REFRESH,
                 ttl: float = TTL, grace: float = GRACE) -> None:
        self.objects = objects
        self.timeline_id = timeline_id
        self.key = lease_key(timeline_id)
        self.refresh, self.ttl, self.grace = refresh, ttl, grace
        self.token = uuid.uuid4().hex
        self.lost = False
        self._renewed = 0.0
        self._confirmed = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._tracked: set[str] = set()  # local temp files of this write (see track)
        #: this lease made the store's ``frames/`` directory (see remove_dirs)
        self.made_frames_dir = False

    def track(self, path: str) -> None:
        """A local temporary file of this write: the heartbeat keeps its modification time
        fresh, so gc can tell a paused write's temp file from a killed one's."""
        with self._lock:
            self._tracked.add(path)

    def untrack(self, path: str) -> None:
        with self._lock:
            self._tracked.discard(path)

    def _body(self) -> bytes:
        return json.dumps({"token": self.token, "pid": os.getpid(),
                           "host": socket.gethostname(), "refreshed": time.time()}).encode()

    def acquire(self) -> IngestLease:
        """Write the lease and start its heartbeat; interrupted (SIGTERM, Ctrl-C, a
        failed start) after the lease was written, it removes it again."""
        try:
            self.made_frames_dir = _make_frames_dir(self.objects)
            self.objects.put(self.key, self._body())
            self._renewed = time.monotonic()
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name="localckpt-lease")
            self._thread.start()
        except BaseException:
            self._stop.set()
            if self._thread is not None and self._thread.is_alive():
                self._thread.join()
            self._thread = None
            with contextlib.suppress(LocalckptError):
                if self._holds():
                    self.objects.delete([self.key])
            self.remove_dirs()
            raise
        return self

    def remove_dirs(self) -> None:
        """Local stores, once this lease is gone (release calls it): the timeline's
        directory if it is empty, and the store's ``frames/`` directory if this lease
        made it (the store held no frames) and it is empty again, so that a failed or
        refused write whose objects are gone leaves the store as it was; after a commit
        both hold its frames and stay. Object stores have no directories. A ``frames/``
        that still holds another timeline's directory is tried again by the next call.

        ``frames/`` is removed only when empty (``rmdir``), so never with another
        writer's objects in it; a writer of another timeline that found it just before
        makes it again (``localckpt.objects.make_dirs``, which every writer here uses).
        Never raises."""
        from .shards import remove_empty_dir

        with contextlib.suppress(LocalckptError):
            remove_empty_dir(self.objects, self.timeline_id)
        path = self.objects.local_path("frames")
        if self.made_frames_dir and path is not None:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                return  # not empty (another timeline's directory): maybe later
            self.made_frames_dir = False

    def __enter__(self) -> IngestLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _beat(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                self.renew()
            except LocalckptError:
                pass  # an outage: the next beat (or confirm) tries again
            if self.lost:
                return

    def renew(self) -> bool:
        """Rewrite the lease if it is still ours; False (and lost) once gc revoked it."""
        with self._lock:
            if self.lost:
                return False
            if not self._holds():
                self.lost = True
                return False
            self.objects.put(self.key, self._body())
            self._renewed = time.monotonic()
            for path in list(self._tracked):
                try:
                    os.utime(path)
                except OSError:
                    self._tracked.discard(path)
            return True

    def _holds(self) -> bool:
        """Whether the lease object is ours. Whatever else is there (gone, replaced by
        someone else's, oversized, not JSON, not a regular file) means it is not."""
        try:
            body = read_lease(self.objects, self.key)
        except NotFoundError:
            return False
        except (CorruptDataError, InvalidInputError):
            return False
        return isinstance(body, dict) and body.get("token") == self.token

    def _lost(self) -> LeaseLost:
        self.lost = True
        return LeaseLost(
            f"gc collected the frames of timeline {self.timeline_id} while they were "
            f"being written (the write was paused for longer than {self.ttl:g} s, so its "
            "lease looked abandoned); nothing was committed. Run the ingest again."
        )

    def confirm(self) -> None:
        """Right before the commit: the lease is still ours and fresh, else LeaseLost."""
        if not self.renew() or time.monotonic() - self._renewed > self.ttl / 2:
            raise self._lost()
        self._confirmed = time.monotonic()

    def raise_if_revoked(self, cause: BaseException) -> None:
        """After a failed write: LeaseLost (from cause) when gc revoked the lease, which
        explains an object that vanished mid-write; otherwise return."""
        if self.lost:
            raise self._lost() from cause

    def committed_safely(self) -> bool:
        """After the commit: False when the commit took long enough that gc may have
        revoked the lease and deleted the frames meanwhile (the caller undoes it)."""
        if time.monotonic() - self._confirmed <= self.grace / 2:
            return True
        with self._lock:
            return self._holds()

    def release(self) -> None:
        """Stop the heartbeat and remove the lease (the catalog row protects the frames
        now, or the write failed and its objects are gone), then the directories it
        made if they are empty (:meth:`remove_dirs`: after a failed write, none stays).
        Never raises."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if not self.lost:
            try:
                with self._lock:
                    if self._holds():
                        self.objects.delete([self.key])
                    else:
                        self.lost = True  # gc revoked it (see raise_if_revoked)
            except LocalckptError:
                pass  # a leftover lease in a committed timeline: gc removes it
        self.remove_dirs()
