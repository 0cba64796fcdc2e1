"""One compaction step: some runs and some sealed logs become one new run.

Timelines are visited in id order. A timeline that only one input holds, and where
nothing is deleted, is copied as bytes (its frames' CRCs checked, nothing decoded):
merging two runs costs a read and a write of their files plus the index arrays. Where
inputs overlap or tombstones delete something, the rows are decoded, merged by id
(records are immutable: equal ids are equal records), dead ones dropped, and
re-encoded. Outputs of absorbed logs are written once, to a new blob file; merges never
rewrite outputs (a purge rewrites the blob files it removes outputs from).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import attrs

from ..ids import new_id
from ..tree import descendants
from ._files import FileCache, remove
from ._runfile import (
    HEADER,
    RunReader,
    RunWriter,
    blob_frame_data,
    index_dtype,
    out_dtype,
)
from ._runset import RunSet
from ._segments import MAGIC, corrupt, encode_output, encode_seal
from ._tail import FinalLog, LogTail

__all__ = ["BLOBS", "Deadness", "LogInput", "StepResult", "merge_step"]

BLOBS = "blobs"  # the subdirectory of blob files


class Stopped(Exception):
    pass


@attrs.define
class LogInput:
    name: str
    fd: int
    log: FinalLog


@attrs.define
class StepResult:
    run: str
    entries: int
    blobs: list[str]
    dropped: int = 0  # records and outputs removed
    new_blobs: list[str] = attrs.Factory(list)
    dropped_outputs: set[str] = attrs.Factory(set)


class Deadness:
    """Which records the tombstones delete, from everything the compactor can read:
    a timeline tombstoned, a checkpoint tombstoned or below one, a tag tombstoned or of a
    deleted timeline. Tombstones themselves are never dropped."""

    def __init__(self, runs: RunSet, tail: LogTail, logs: Iterable[LogInput] = ()) -> None:
        self._runs = runs
        self._tail = tail
        rows = [*runs.all_of(1), *({"target_id": t.target_id, "kind": t.kind,
                                    "timeline_id": t.timeline_id}
                                   for t in tail.index.tombstones.values())]
        for li in logs:
            rows += li.log.rows["tombstone"]
        self.timelines = {r["target_id"] for r in rows if r["kind"] == "timeline"}
        self.tags = {r["target_id"] for r in rows if r["kind"] == "tag"}
        self._tag_tids = {r["timeline_id"] for r in rows if r["kind"] == "tag"}
        self._targets: defaultdict[str, set[str]] = defaultdict(set)
        for r in rows:
            if r["kind"] == "checkpoint":
                self._targets[r["timeline_id"]].add(r["target_id"])
        self._cache: dict[str, set[str]] = {}

    def anything(self) -> bool:
        """Whether any tombstone exists (else there is nothing a purge could drop)."""
        return bool(self.timelines or self._targets or self.tags)

    def any_in(self, tid: str) -> bool:
        return tid in self.timelines or tid in self._targets or tid in self._tag_tids

    def checkpoints(self, tid: str, rows: Iterable[dict[str, Any]]) -> set[str]:
        """Ids of dead checkpoints of timeline tid: below its tombstones in the tree made
        of rows (what is being merged), the runs and the live logs."""
        if tid in self.timelines:
            return {r["id"] for r in rows}
        targets = self._targets.get(tid)
        if not targets:
            return set()
        if tid not in self._cache:
            children: defaultdict[str, list[str]] = defaultdict(list)
            for r in [*self._runs.checkpoints_of(tid), *rows]:
                if r["parent_id"] is not None:
                    children[r["parent_id"]].append(r["id"])
            for c in self._tail.index.by_timeline.get(tid, ()):
                cp = self._tail.index.checkpoints[c]
                if cp.parent_id is not None:
                    children[cp.parent_id].append(cp.id)
            self._cache[tid] = descendants(children, targets)
        return self._cache[tid]

    def tag(self, row: dict[str, Any]) -> bool:
        return row["id"] in self.tags or row["timeline_id"] in self.timelines


def _check_frames(data: bytes, base: int, where: str) -> None:
    """Every frame of a copied range is whole and matches its CRC (not decoded)."""
    import zlib

    pos = 0
    while pos < len(data):
        if len(data) - pos < HEADER.size:
            raise corrupt(where, base + pos, "frame header cut short")
        magic, _k, length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or end > len(data) or zlib.crc32(
                memoryview(data)[pos + HEADER.size : end]) != crc:
            raise corrupt(where, base + pos, "frame checksum mismatch")
        pos = end


def _keys_array(keys: list[str], ordinals: list[int]) -> Any:
    import numpy as np

    width = max([len(k) for k in keys] or [1])
    arr = np.zeros(len(keys), dtype=index_dtype(width))
    if keys:
        arr["k"] = [k.encode() for k in keys]
        arr["v"] = ordinals
    return arr


def _combine(parts: list[Any], drop: set[str] | None = None) -> Any:
    """One sorted array without duplicate keys from index arrays (maybe of other widths)."""
    import numpy as np

    parts = [p for p in parts if len(p)]
    if not parts:
        return np.zeros(0, dtype=index_dtype(1))
    width = max(p.dtype["k"].itemsize for p in parts)
    dt = index_dtype(width)
    arr = np.concatenate([p.astype(dt) for p in parts])
    if drop:
        arr = arr[~np.isin(arr["k"], np.array([d.encode() for d in drop], dtype=f"S{width}"))]
    return _sorted_unique(arr)


def _sorted_unique(arr: Any) -> Any:
    import numpy as np

    if not len(arr):
        return arr
    arr = arr[np.argsort(arr["k"], kind="stable")]
    keep = np.ones(len(arr), dtype=bool)
    keep[1:] = arr["k"][1:] != arr["k"][:-1]
    return arr[keep]


def _remapped(run: RunReader, name: str, remap: Any) -> Any:
    import numpy as np

    idx = run.index(name)
    arr = np.frombuffer(idx.all_entries(), dtype=index_dtype(idx.width)).copy()
    if len(arr):
        arr["v"] = remap[arr["v"]]
    return arr


class _BlobWriter:
    def __init__(self, directory: str) -> None:
        # in a directory of their own: there may be many, and the log tail lists catalog/
        os.makedirs(os.path.join(directory, BLOBS), exist_ok=True)
        self.name = f"{BLOBS}/blob-{new_id()}.blob"
        self.tmp = os.path.join(directory, self.name + ".tmp")
        self._fh = open(self.tmp, "xb")  # noqa: SIM115 - closed by finish/abort
        self.pos = 0
        self.count = 0

    def add(self, h: str, data: bytes) -> tuple[int, int]:
        frame = encode_output(h, data)
        at = self.pos
        self._fh.write(frame)
        self.pos += len(frame)
        self.count += 1
        return at, len(frame)

    def finish(self, fsync: bool) -> None:
        self._fh.write(encode_seal(self.pos))
        self._fh.flush()
        if fsync:
            os.fsync(self._fh.fileno())
        self._fh.close()

    def abort(self) -> None:
        self._fh.close()
        remove(self.tmp)


def merge_step(directory: str, runs: list[RunReader], logs: list[LogInput], dead: Deadness,
               current: RunSet, *, fsync: bool, stop: threading.Event | None = None,
               keep_refs: set[str] | None = None) -> StepResult:
    """Write one run holding every live record of runs and logs; rename it into place
    (and its blob files), but do not publish it: the caller writes the manifest.

    keep_refs: purge mode. Every input is decoded; outputs are kept only if a live
    record written here, or a hash in keep_refs (records of logs not absorbed), refers
    to them; blob files that lose outputs are rewritten without them.
    """
    import numpy as np

    purge = keep_refs is not None
    dirs = [{e.tid: e for e in run.dir_entries()} for run in runs]
    by_tid: defaultdict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: {"checkpoint": [], "tombstone": [], "tag": []})
    log_timelines: list[dict[str, Any]] = []
    for li in logs:
        for kind in ("checkpoint", "tombstone", "tag"):
            for r in li.log.rows[kind]:
                by_tid[r["timeline_id"]][kind].append(r)
        log_timelines += li.log.rows["timeline"]
    tids = sorted(set().union(*dirs, by_tid, (t["id"] for t in log_timelines)))
    ordinal = {t: i for i, t in enumerate(tids)}

    blobs: list[str] = []
    for run in runs:
        for b in run.blobs:
            if b not in blobs:
                blobs.append(b)
    blob = _BlobWriter(directory) if any(li.log.outputs for li in logs) else None
    new_out: list[tuple[bytes, int, int]] = []
    run_name = f"run-{new_id()}.run"
    writer = RunWriter(os.path.join(directory, run_name + ".tmp"), tids,
                       [*blobs, blob.name] if blob else blobs)
    tmp_files = [writer.path] + ([blob.tmp] if blob else [])
    try:
        if blob is not None:
            seen: set[str] = set()
            for li in logs:
                for h in li.log.outputs:
                    if h in seen or current.output_location(h) is not None:
                        continue
                    seen.add(h)
                    at, n = blob.add(h, li.log.output(h))
                    new_out.append((bytes.fromhex(h), at, n))
            blob.finish(fsync)
            # named now (a purge may rewrite it below); unpublished, so an orphan if we die
            os.replace(blob.tmp, os.path.join(directory, blob.name))
            tmp_files[-1] = os.path.join(directory, blob.name)
        dropped_c: set[str] = set()
        dropped_g: set[str] = set()
        referenced: set[str] = set()
        for i, tid in enumerate(tids):
            if stop is not None and stop.is_set():
                raise Stopped
            sources = [(run, d[tid]) for run, d in zip(runs, dirs, strict=True) if tid in d]
            extra = by_tid.get(tid)
            if not purge and extra is None and len(sources) == 1 and not dead.any_in(tid):
                run, e = sources[0]
                parts = []
                for off, length in ((e.c_off, e.c_len), (e.x_off, e.x_len),
                                    (e.g_off, e.g_len)):
                    data = run.read(length, off) if length else b""
                    _check_frames(data, off, run.where)
                    parts.append(data)
                writer.copy_group(i, parts[0], e.h_len, parts[1], parts[2])
                continue
            merged: list[dict[str, dict[str, Any]]] = [{}, {}, {}]
            for run, e in sources:
                for slot, rows in zip(merged, run.group_rows(e), strict=True):
                    for r in rows:
                        slot.setdefault(r["id"], r)
            if extra is not None:
                for slot, kind in zip(merged, ("checkpoint", "tombstone", "tag"), strict=True):
                    for r in extra[kind]:
                        slot.setdefault(r["id"], r)
            gone = dead.checkpoints(tid, merged[0].values())
            dropped_c |= gone & merged[0].keys()
            live_c = [r for k, r in sorted(merged[0].items()) if k not in gone]
            live_g = []
            for k, r in sorted(merged[2].items()):
                if dead.tag(r):
                    dropped_g.add(k)
                else:
                    live_g.append(r)
            if purge:
                for r in live_c:
                    referenced.update(r["stage_hashes"].values())
            writer.group(i, live_c, [r for _, r in sorted(merged[1].items())], live_g)

        timelines: dict[str, dict[str, Any]] = {}
        for run in runs:
            for r in run.timeline_rows():
                timelines.setdefault(r["id"], r)
        for r in log_timelines:
            timelines.setdefault(r["id"], r)
        dropped_t = {t for t in timelines if t in dead.timelines}
        live_t = [r for k, r in sorted(timelines.items()) if k not in dropped_t]

        cid_parts, xt_parts, xid_parts, gid_parts = [], [], [], []
        outs = []
        for run, d in zip(runs, dirs, strict=True):
            remap = np.array([ordinal[e_tid] for e_tid in d], dtype=">u4")  # dir order
            cid_parts.append(_remapped(run, "cid", remap))
            xt_parts.append(_remapped(run, "xt", remap))
            xid_parts.append(_remapped(run, "xid", remap))
            gid_parts.append(_remapped(run, "gid", remap))
            idx = run.index("out")
            arr = np.frombuffer(idx.all_entries(), dtype=out_dtype()).copy()
            if len(arr):
                bmap = np.array([blobs.index(b) for b in run.blobs], dtype=">u4")
                arr["b"] = bmap[arr["b"]]
            outs.append(arr)
        log_c = [r for li in logs for r in li.log.rows["checkpoint"]]
        log_x = [r for li in logs for r in li.log.rows["tombstone"]]
        log_g = [r for li in logs for r in li.log.rows["tag"]]
        cid_parts.append(_keys_array([r["id"] for r in log_c],
                                     [ordinal[r["timeline_id"]] for r in log_c]))
        xt_parts.append(_keys_array([r["target_id"] for r in log_x],
                                    [ordinal[r["timeline_id"]] for r in log_x]))
        xid_parts.append(_keys_array([r["id"] for r in log_x],
                                     [ordinal[r["timeline_id"]] for r in log_x]))
        gid_parts.append(_keys_array([r["id"] for r in log_g],
                                     [ordinal[r["timeline_id"]] for r in log_g]))
        if new_out:
            arr = np.zeros(len(new_out), dtype=out_dtype())
            arr["k"] = [k for k, _, _ in new_out]
            arr["b"] = len(blobs)
            arr["o"] = [a for _, a, _ in new_out]
            arr["n"] = [n for _, _, n in new_out]
            outs.append(arr)
        out = _sorted_unique(np.concatenate(outs)) if outs else np.zeros(0, dtype=out_dtype())
        all_blobs = [*blobs, blob.name] if blob else list(blobs)
        dropped_o = 0
        dropped_hashes: set[str] = set()
        new_blobs = [blob.name] if blob else []
        if purge and keep_refs is not None:
            wanted = referenced | keep_refs
            keep = np.zeros(len(out), dtype=bool)
            for i, k in enumerate(out["k"].tolist()):
                h = k.ljust(32, b"\0").hex()
                keep[i] = h in wanted
                if not keep[i]:
                    dropped_hashes.add(h)
            before = np.bincount(out["b"].astype(np.int64), minlength=len(all_blobs))
            dropped_o = int((~keep).sum())
            out = out[keep]
            after = np.bincount(out["b"].astype(np.int64), minlength=len(all_blobs))
            for bi in np.nonzero(after < before)[0].tolist():
                rewritten = _rewrite_blob(directory, current.files, all_blobs[bi], out,
                                          int(bi), fsync)
                if rewritten is not None:
                    tmp_files.append(os.path.join(directory, rewritten + ".tmp"))
                    all_blobs[bi] = rewritten
                    new_blobs.append(rewritten)
            writer.blobs = all_blobs
        used = sorted(set(out["b"].tolist()))
        footer = writer.finish(live_t, _combine(cid_parts, dropped_c), _combine(xt_parts),
                               _combine(xid_parts), _combine(gid_parts, dropped_g), out, fsync)
        for b in new_blobs:
            if blob is None or b != blob.name:
                os.replace(os.path.join(directory, b + ".tmp"), os.path.join(directory, b))
        os.replace(writer.path, os.path.join(directory, run_name))
    except BaseException:
        writer.abort()
        if blob is not None:
            blob.abort()
        for path in tmp_files:
            remove(path)
        raise
    counts = footer["counts"]
    entries = sum(int(v) for v in counts.values())
    return StepResult(run_name, entries, [all_blobs[b] for b in used],
                      len(dropped_c) + len(dropped_g) + len(dropped_t) + dropped_o,
                      new_blobs, dropped_hashes)


def _rewrite_blob(directory: str, files: FileCache, name: str, out: Any, b: int,
                  fsync: bool) -> str | None:
    """Copy the outputs of blob file name that out still refers to into a new blob file
    (updating out in place); None when it keeps none (it is then simply dropped)."""
    import numpy as np

    rows = np.flatnonzero(out["b"] == b)
    if not len(rows):
        return None
    w = _BlobWriter(directory)
    try:
        where = os.path.join(directory, name)
        for i in rows.tolist():
            off, length = int(out["o"][i]), int(out["n"][i])
            h = bytes(out["k"][i]).ljust(32, b"\0").hex()
            data = blob_frame_data(files.pread(name, length, off), h, where, off)
            at, n = w.add(h, data)
            out["o"][i] = at
            out["n"][i] = n
        w.finish(fsync)
    except BaseException:
        w.abort()
        raise
    return w.name

