"""Lookups across the compacted runs of the current manifest.

Records are immutable and keyed by unique ids, so a record found in any run is the
record; runs are asked newest first and a lookup stops at the first hit. Only what a
query needs is read: a timeline's rows, one checkpoint's block, one index entry. Blob
files (outputs) are read through the same descriptor cache.
"""

from __future__ import annotations

import bisect
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._files import FileCache
from ._manifest import Manifest
from ._runfile import RunReader, blob_frame_data

__all__ = ["ChainFinder", "RunSet"]


class RunSet:
    """The runs named by one manifest (replaced on every manifest change)."""

    def __init__(self, directory: str, stats: Counter[str], max_open: int = 16) -> None:
        self.directory = directory
        self.stats = stats
        self.files = FileCache(directory, max_open, stats)
        self.runs: list[RunReader] = []
        self.manifest = Manifest()

    def update(self, manifest: Manifest) -> None:
        """Follow a new manifest: keep readers of runs that stay, drop the others' files."""
        known = {r.name: r for r in self.runs}
        self.runs = [known.get(info.name) or RunReader(info.name, self.files, self.stats)
                     for info in reversed(manifest.runs)]  # newest first
        kept = {r.name for r in self.runs} | set(manifest.blobs)
        self.files.forget({n for n in self.files.open_names() if n not in kept})
        self.manifest = manifest

    def close(self) -> None:
        self.files.close()

    # -- timelines ------------------------------------------------------------------------

    def timeline_rows(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for run in self.runs:
            for r in run.timeline_rows():
                rows.setdefault(r["id"], r)
        return rows

    def _first(self, lookup: Callable[[RunReader], Any]) -> Any:
        """The first run's answer that is not None (newest first), else None."""
        for run in self.runs:
            found = lookup(run)
            if found is not None:
                return found
        return None

    def find_timeline(self, tid: str) -> dict[str, Any] | None:
        return self._first(lambda run: run.timeline_record(tid))

    def of_timeline(self, tid: str, which: int) -> list[Any]:
        """Tombstone (which=1) or tag (which=2) rows of one timeline, from every run."""
        rows: list[Any] = []
        for run in self.runs:
            if not run.counts().get("tombstone" if which == 1 else "tag"):
                continue
            e = run.dir_find(tid)
            if e is not None:
                rows += run.tombstone_rows(e) if which == 1 else run.tag_rows(e)
        return rows

    def checkpoints_of(self, tid: str) -> list[Any]:
        rows: list[Any] = []
        for run in self.runs:
            e = run.dir_find(tid)
            if e is not None and e.c_len:
                rows += run.checkpoint_rows(e)
        return rows

    def timeline(self, tid: str) -> tuple[list[Any], list[Any], list[Any]]:
        """(checkpoints, tombstones, tags) rows of one timeline, from every run."""
        c: list[Any] = []
        x: list[Any] = []
        g: list[Any] = []
        for run in self.runs:
            rc, rx, rg = run.timeline(tid)
            c += rc
            x += rx
            g += rg
        return c, x, g

    # -- point lookups --------------------------------------------------------------------

    def find_checkpoint(self, cid: str) -> dict[str, Any] | None:
        return self._first(lambda run: run.find_checkpoint(cid))

    def find_other(self, kind: str, rid: str) -> dict[str, Any] | None:
        return self._first(
            lambda run: run.find_other(kind, rid) if run.counts().get(kind) else None)

    def has_target(self, target: str) -> bool:
        return any(run.counts().get("tombstone") and run.has_target(target)
                   for run in self.runs)

    def output_location(self, h: str) -> tuple[str, int, int] | None:
        digest = bytes.fromhex(h)
        return self._first(lambda run: run.output(digest))

    def output(self, h: str) -> bytes | None:
        loc = self.output_location(h)
        if loc is None:
            return None
        name, off, length = loc
        data = self.files.pread(name, length, off)
        return blob_frame_data(data, h, os.path.join(self.directory, name), off)

    def prefix(self, kind: str, prefix: str, limit: int) -> set[str]:
        found: set[str] = set()
        for run in self.runs:
            found.update(run.prefix(kind, prefix, limit))
        return found

    def all_of(self, which: int) -> list[Any]:
        """Every tombstone (which=1) or tag (which=2) row of every run."""
        rows: list[Any] = []
        for run in self.runs:
            if not run.counts().get("tombstone" if which == 1 else "tag"):
                continue
            for e in run.dir_entries():
                rows += run.tombstone_rows(e) if which == 1 else run.tag_rows(e)
        return rows


class ChainFinder:
    """Checkpoints of one timeline by id, a block at a time: what lineage reads.

    A timeline's rows are sorted by id in blocks whose first ids the H frame lists, so a
    checkpoint is found by bisecting those (no index search) and decoding one block,
    kept for the rest of the walk. A chain reads the blocks it passes through, not the
    timeline's every row."""

    def __init__(self, runs: RunSet, tid: str) -> None:
        self._entries = []
        for run in runs.runs:
            e = run.dir_find(tid)
            if e is not None and e.c_len:
                starts = run.header(e)
                self._entries.append((run, e, starts, [s[0] for s in starts]))
        self._blocks: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}

    def get(self, cid: str) -> dict[str, Any] | None:
        for run, e, starts, firsts in self._entries:
            i = bisect.bisect_right(firsts, cid) - 1
            if i < 0:
                continue
            rows = self._blocks.get((run.name, i))
            if rows is None:
                rows = {r["id"]: r for r in run.block_rows(e, starts[i])}
                self._blocks[(run.name, i)] = rows
            if cid in rows:
                return rows[cid]
        return None
