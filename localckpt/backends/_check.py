"""storage_problems for the embedded catalog: every file of the catalog read completely.

Segments of live writers are read as far as they are written (an unfinished commit at
the end is not damage); sealed segments, packs, runs, blob files and the manifest must
parse to their last byte, every frame, page and block matching its CRC.
"""

from __future__ import annotations

import os
from collections import Counter

from ..errors import CorruptDataError
from ._files import FileCache
from ._manifest import NAME as MANIFEST
from ._manifest import read_manifest
from ._runfile import RunReader
from ._segments import HEADER, MAGIC, corrupt, iter_frames, sealed_length, try_lock, unlock
from ._tail import is_log, read_final_log

__all__ = ["check_directory"]


def check_directory(directory: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    try:
        read_manifest(directory)
    except CorruptDataError as exc:
        problems.append((os.path.join(directory, MANIFEST), str(exc)))
    files = FileCache(directory, 4, Counter())
    names = sorted(os.listdir(directory))
    blob_dir = os.path.join(directory, "blobs")
    if os.path.isdir(blob_dir):
        names += [f"blobs/{n}" for n in sorted(os.listdir(blob_dir))]
    try:
        for name in names:
            path = os.path.join(directory, name)
            try:
                if is_log(name):
                    _check_log(directory, name)
                elif name.endswith(".run"):
                    RunReader(name, files, Counter()).check()
                elif name.endswith(".blob"):
                    _check_blob(path)
            except CorruptDataError as exc:
                problems.append((path, str(exc)))
            except FileNotFoundError:
                continue  # compacted away meanwhile
    finally:
        files.close()
    return problems


def _check_log(directory: str, name: str) -> None:
    fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if name.endswith(".pack") or try_lock(fd, shared=True):
            try:
                problem = read_final_log(directory, name, fd).problem
            finally:
                unlock(fd)
            if problem:
                raise CorruptDataError(problem)
            return
        # a live writer's segment: complete commits, then zeros or a commit in progress
        from ._segments import damage_after

        data = os.pread(fd, os.fstat(fd).st_size, 0)
        end = 0
        for _, _, _, frame_end in iter_frames(data, 0):
            end = frame_end
        if end < len(data) and any(data[end : end + HEADER.size]):
            later = damage_after(fd, end, len(data))
            if later is not None:
                raise corrupt(os.path.join(directory, name), end,
                              f"a frame does not parse, and a valid one follows at {later}")
    finally:
        os.close(fd)


def _check_blob(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        sealed = sealed_length(fd, size)
        if sealed is None:
            raise corrupt(path, max(0, size - 19), "blob file without its seal")
        data = os.pread(fd, sealed, 0)
        end = 0
        for _kind, _, _, frame_end in iter_frames(data, 0, frozenset({b"O"})):
            end = frame_end
        if end != sealed or (data[:2] != MAGIC and sealed):
            raise corrupt(path, end, "an output frame does not parse")
    finally:
        os.close(fd)
