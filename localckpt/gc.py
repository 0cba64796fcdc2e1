"""Garbage collection: remove frame objects that no timeline refers to.

Writes put objects first and catalog rows last, so a crash or an outage mid-ingest can
leave shards behind that no timeline points at (never the reverse). They are invisible
to every API call; ``collect_garbage`` deletes them once they are old enough that no
ingest still in progress (in this or another process) can be writing them.
"""

from __future__ import annotations

import time
from datetime import datetime

import attrs

from .store import Store

__all__ = ["GcReport", "collect_garbage"]

_FRAMES = "frames/"


@attrs.frozen
class GcReport:
    """What a collection found and removed (or would remove, with dry_run)."""

    orphan_timelines: tuple[str, ...]
    objects_removed: int
    bytes_removed: int
    skipped_recent: int
    dry_run: bool

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"{verb} {self.objects_removed} objects ({self.bytes_removed} bytes) of "
            f"{len(self.orphan_timelines)} unreferenced timeline(s); "
            f"{self.skipped_recent} too recent to touch"
        )


def collect_garbage(store: Store, *, older_than: float = 3600.0, dry_run: bool = False) -> GcReport:
    """Delete frame objects under ids the catalog does not hold, if all are older than
    ``older_than`` seconds. Idempotent; never touches a timeline the catalog knows."""
    known = {t.id for t in store.list_timelines()}
    groups: dict[str, list[str]] = {}
    for key in store.objects.list(_FRAMES.rstrip("/")):
        parts = key.split("/")
        if len(parts) >= 3 and parts[0] == "frames" and parts[1] not in known:
            groups.setdefault(parts[1], []).append(key)
    cutoff = time.time() - older_than
    orphans, removed, size, recent = [], 0, 0, 0
    for tid, keys in sorted(groups.items()):
        infos = [store.objects.fs.info(store.objects.path(k)) for k in keys]
        if any(_mtime(info) > cutoff for info in infos):
            recent += len(keys)
            continue
        if tid in {t.id for t in store.list_timelines()}:  # committed meanwhile
            continue
        orphans.append(tid)
        removed += len(keys)
        size += sum(int(info.get("size") or 0) for info in infos)
        if not dry_run:
            store.objects.delete(keys)
    return GcReport(tuple(orphans), removed, size, recent, dry_run)


def _mtime(info: dict[str, object]) -> float:
    """Modification time from an fsspec info dict (local: mtime; S3: LastModified)."""
    for name in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(name)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                continue
    return time.time()  # unknown age: treat as recent, never delete
