"""Compaction of an embedded catalog: many sealed files become one pack.

A process that writes leaves one segment behind; after many runs, opening the store
would read many small files. Compaction rewrites every sealed segment and older pack as
one ``pack-<uuid7>.pack`` (same frame format), renames it into place, then removes the
inputs. Only one process compacts at a time (``compact.lock``); live segments are skipped.
"""

from __future__ import annotations

import fcntl
import json
import os

from ..ids import new_id
from ._segments import HASH_LEN, encode_batch, encode_output, iter_frames, try_lock

__all__ = ["compact_directory"]

_ROWS_PER_BATCH = 5000


def compact_directory(directory: str, fsync: bool = True) -> int:
    lock_fd = os.open(os.path.join(directory, "compact.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not try_lock(lock_fd):
            return 0  # someone else is compacting
        inputs: list[tuple[str, int]] = []
        try:
            for name in sorted(os.listdir(directory)):
                if not name.endswith((".log", ".pack")):
                    continue
                try:
                    fd = os.open(os.path.join(directory, name), os.O_RDONLY)
                except FileNotFoundError:
                    continue
                if name.endswith(".pack") or try_lock(fd):
                    inputs.append((name, fd))
                else:
                    os.close(fd)  # a live writer's segment
            if len(inputs) < 2:
                return 0
            outputs: dict[str, bytes] = {}
            timelines: dict[str, dict[str, object]] = {}
            checkpoints: dict[str, dict[str, object]] = {}
            tombstones: dict[str, dict[str, object]] = {}
            tags: dict[str, dict[str, object]] = {}
            for _, fd in inputs:
                data = os.pread(fd, os.fstat(fd).st_size, 0)
                view = memoryview(data)
                for kind, start, length, _end in iter_frames(view, 0):
                    if kind == b"O":
                        h = bytes(view[start : start + HASH_LEN]).decode("ascii")
                        outputs.setdefault(h, bytes(view[start + HASH_LEN : start + length]))
                    elif kind == b"B":
                        rows = json.loads(bytes(view[start : start + length]))
                        for d in rows.get("t", ()):
                            timelines.setdefault(d["id"], d)
                        for d in rows.get("c", ()):
                            checkpoints.setdefault(d["id"], d)
                        for d in rows.get("x", ()):
                            tombstones.setdefault(d["id"], d)
                        for d in rows.get("g", ()):
                            tags.setdefault(d["id"], d)
            name = f"pack-{new_id()}"
            tmp = os.path.join(directory, name + ".tmp")
            with open(tmp, "wb") as fh:
                for h, blob in outputs.items():
                    fh.write(encode_output(h, blob))
                tl = list(timelines.values())
                ck = sorted(checkpoints.values(), key=lambda d: str(d["id"]))
                fh.write(encode_batch({"t": tl, "c": [], "x": list(tombstones.values()),
                                       "g": list(tags.values())}))
                for i in range(0, len(ck), _ROWS_PER_BATCH):
                    fh.write(encode_batch({"t": [], "c": ck[i : i + _ROWS_PER_BATCH]}))
                fh.flush()
                if fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, os.path.join(directory, name + ".pack"))
            if fsync:
                dir_fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            for input_name, _ in inputs:
                try:
                    os.unlink(os.path.join(directory, input_name))
                except FileNotFoundError:
                    pass
            return len(inputs)
        finally:
            for _, fd in inputs:
                os.close(fd)
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
