"""Compaction of an embedded catalog: sealed logs become runs; runs merge in tiers.

Whichever process finds work compacts (``compact.lock``, taken without waiting: a busy
lock means someone else is doing it). A step writes one new run (``_merge``), renames it
into place, publishes a manifest naming it, and only then removes its inputs, so a
reader sees every record at every moment. Steps:

1. the sealed segments (their writers' locks are free) and format-1 packs become a run;
2. size-tiered merging: when FANOUT runs share a level (level = log_FANOUT of a run's
   entries over BASE), they merge into one. A record is rewritten once per level it
   climbs, about log_4(N / 4096) times for N records; outputs are written twice in all
   (log segment, blob file) and never rewritten by merges.

``full`` merges every run and log into one; ``purge`` does that and also drops outputs
no live record refers to, under ``purge.lock`` (see :func:`compact_directory`).
Killed compactions leave ``*.tmp`` files, orphan runs or absorbed logs: the next
compactor removes them first (it holds the lock, so none of them is being written).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import attrs

from ._files import remove
from ._manifest import (
    FANOUT,
    Manifest,
    RunInfo,
    bump_marker,
    level_of,
    pending_merges,
    read_manifest,
    write_manifest,
)
from ._merge import BLOBS, Deadness, LogInput, StepResult, Stopped, merge_step
from ._runset import RunSet
from ._segments import try_lock, unlock
from ._tail import LogTail, is_log, read_final_log

__all__ = ["FANOUT", "CompactResult", "compact_directory", "level_of", "pending_merges"]

_STALE_NEW_S = 60.0  # a segment still named .new this long after creation was abandoned
_PURGE_WAIT_S = 5.0


@attrs.define
class CompactResult:
    replaced: int = 0  # input files (logs and runs) replaced
    purged: int = 0  # records and outputs removed
    busy: bool = False  # another process holds compact.lock (or purge.lock stayed busy)
    problems: list[tuple[str, str]] = attrs.Factory(list)  # damaged logs left in place


def _cleanup(directory: str, manifest: Manifest) -> None:
    runs = {r.name for r in manifest.runs}
    blobs = set(manifest.blobs)
    absorbed = set(manifest.absorbed)
    now = time.time()
    blob_dir = os.path.join(directory, BLOBS)
    names = os.listdir(directory)
    if os.path.isdir(blob_dir):
        names += [f"{BLOBS}/{n}" for n in os.listdir(blob_dir)]
    for name in names:
        path = os.path.join(directory, name)
        stale = name.endswith(".tmp")
        stale |= name.startswith("run-") and name.endswith(".run") and name not in runs
        stale |= name.startswith(f"{BLOBS}/") and name.endswith(".blob") and name not in blobs
        stale |= name in absorbed
        if name.endswith(".log.new"):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                stale = now - os.fstat(fd).st_mtime > _STALE_NEW_S and try_lock(fd)
            finally:
                os.close(fd)
        if stale:
            remove(path)


def _sealed_logs(directory: str, manifest: Manifest) -> list[tuple[str, int]]:
    """Logs whose writer is gone, each locked (exclusive) and open; packs too."""
    found = []
    for name in sorted(os.listdir(directory)):
        if not is_log(name) or name in manifest.absorbed:
            continue
        try:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        if name.endswith(".pack") or try_lock(fd):
            found.append((name, fd))
        else:
            os.close(fd)  # a live writer's segment
    return found


def _publish(directory: str, manifest: Manifest, runs: RunSet, removed: list[str],
             step: StepResult, absorbed: list[str], marker: str | None,
             fsync: bool) -> Manifest:
    """Write the manifest that replaces removed runs and absorbed logs by step's run,
    then remove them (and blob files no run refers to any more)."""
    kept = [r for r in manifest.runs if r.name not in removed]
    new = Manifest(
        generation=manifest.generation + 1,
        runs=(*kept, RunInfo(step.run, level_of(step.entries), step.entries)),
        blobs=(),
        absorbed=tuple(absorbed),
        purged=step.dropped > 0,
    )
    blobs: list[str] = []
    for reader in runs.runs:
        if reader.name in {r.name for r in kept}:
            blobs += [b for b in reader.blobs if b not in blobs]
    blobs += [b for b in step.blobs if b not in blobs]
    new = attrs.evolve(new, blobs=tuple(blobs))
    bump_marker(marker, 2, fsync)  # before anything format 1 cannot read replaces its files
    write_manifest(directory, new, fsync)
    unused = [b for b in (*manifest.blobs, *step.new_blobs) if b not in blobs]
    for name in [*absorbed, *removed, *unused]:
        remove(os.path.join(directory, name))
    return new


def compact_directory(
    directory: str, *, fsync: bool = True, marker: str | None = None, min_logs: int = 1,
    full: bool = False, purge: bool = False, stop: threading.Event | None = None,
) -> CompactResult:
    """Compact the catalog in directory: see the module docstring.

    purge: merge everything into one run, dropping deleted records and the outputs no
    live record refers to. An output a concurrent save refers to must stay: saves hold
    ``purge.lock`` shared (without waiting) while they decide which outputs are already
    stored, so the purge publishes under it exclusive, after checking that no record
    written meanwhile refers to what it drops (else it gives up, and says busy).
    """
    result = CompactResult()
    lock_fd = os.open(os.path.join(directory, "compact.lock"),
                      os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    logs: list[tuple[str, int]] = []
    runs = RunSet(directory, Counter())
    tail = LogTail(directory, lambda hashes: {}, Counter())
    try:
        if not try_lock(lock_fd):
            result.busy = True
            return result
        manifest = read_manifest(directory)
        _cleanup(directory, manifest)
        logs = _sealed_logs(directory, manifest)
        runs.update(manifest)
        finals = [LogInput(name, fd, read_final_log(directory, name, fd)) for name, fd in logs]
        result.problems = [(os.path.join(directory, f.name), str(f.log.problem))
                           for f in finals if f.log.problem]
        good = [f for f in finals if f.log.problem is None]
        if not (good or full or purge or pending_merges(manifest)):
            return result
        tail.skip = {f.name for f in good}  # the live logs (and damaged ones), not inputs
        tail.refresh()
        dead = Deadness(runs, tail, good)
        legacy = any(f.name.endswith(".pack") for f in good)
        # a purge rewrites even a single run, when tombstones may have something to drop
        purging = purge and bool(manifest.runs) and dead.anything()
        if (good and (full or purge or legacy or len(good) >= min_logs)) or (
                full and len(manifest.runs) > 1) or purging:
            merged = list(runs.runs) if (full or purge) else []
            keep_refs: set[str] | None = None
            if purge and not result.problems and not tail.damage:
                keep_refs = set()  # every record of a live log, dead or not, keeps its outputs
                for c in tail.index.checkpoints.values():
                    keep_refs.update(c.stage_hashes.values())
            step = merge_step(directory, merged, good, dead, runs, fsync=fsync, stop=stop,
                              keep_refs=keep_refs)
            if keep_refs is not None and step.dropped_outputs:
                if not _publish_purge(directory, manifest, runs, tail, step, good,
                                      marker, fsync):
                    result.busy = True
                    return result
            else:
                _publish(directory, manifest, runs, [r.name for r in merged], step,
                         [f.name for f in good], marker, fsync)
            result.replaced += len(good) + len(merged)
            result.purged += step.dropped
        while not (full or purge):
            if stop is not None and stop.is_set():
                break
            manifest = read_manifest(directory)
            runs.update(manifest)
            pick = pending_merges(manifest)
            if pick is None:
                break
            names = {r.name for r in pick}
            inputs = [r for r in runs.runs if r.name in names]
            inputs.sort(key=lambda r: r.name)
            step = merge_step(directory, inputs, [], dead, runs, fsync=fsync, stop=stop)
            _publish(directory, manifest, runs, sorted(names), step, [], marker, fsync)
            result.replaced += len(pick)
            result.purged += step.dropped
        return result
    except Stopped:
        return result
    finally:
        for _, fd in logs:
            os.close(fd)
        tail.forget_all()
        runs.close()
        unlock(lock_fd)
        os.close(lock_fd)


def _publish_purge(directory: str, manifest: Manifest, runs: RunSet, tail: LogTail,
                   step: StepResult, good: list[LogInput], marker: str | None,
                   fsync: bool) -> bool:
    """Publish a purge under purge.lock (exclusive): no save is deciding meanwhile which
    outputs exist. Gives up (removing the new files) if the lock stays busy or a record
    written since the purge began refers to a dropped output."""
    fd = os.open(os.path.join(directory, "purge.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o644)
    try:
        deadline = time.monotonic() + _PURGE_WAIT_S
        while not try_lock(fd):
            if time.monotonic() > deadline:
                _discard(directory, step)
                return False
            time.sleep(0.002)
        try:
            tail.refresh()
            for c in tail.index.checkpoints.values():
                if not step.dropped_outputs.isdisjoint(c.stage_hashes.values()):
                    _discard(directory, step)
                    return False
            _publish(directory, manifest, runs, [r.name for r in runs.runs], step,
                     [f.name for f in good], marker, fsync)
            return True
        finally:
            unlock(fd)
    finally:
        os.close(fd)


def _discard(directory: str, step: StepResult) -> None:
    for name in (step.run, *step.new_blobs):
        remove(os.path.join(directory, name))
