"""Diagnostics that explain other rows: the cost of a durable append on this filesystem."""

from __future__ import annotations

import os
import time

from ..model import Context, Sample, Subject, Workload

__all__ = ["FSYNC_PATTERN"]

RECORD = 2300  # about one save_stage_output commit of a 2 KB output
APPEND = "append + fdatasync (a growing file)"
OVERWRITE = "overwrite zero-filled space + fdatasync (embedded segment; SQLite WAL reuse)"


def _writes(ctx: Context, n: int, preallocate: bool) -> Sample:
    path = ctx.root / f"fsync-{time.monotonic_ns()}"
    flags = os.O_RDWR | os.O_CREAT | (0 if preallocate else os.O_APPEND)
    fd = os.open(path, flags, 0o644)
    try:
        if preallocate:  # not timed: done once per file, as a reused WAL is
            os.write(fd, b"\0" * (n * RECORD))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        record = b"r" * RECORD
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(fd, record)
            os.fdatasync(fd)
        return Sample(time.perf_counter() - t0, ops=n, units=n)
    finally:
        os.close(fd)
        os.unlink(path)


def _build(ctx: Context, n: int) -> list[Subject]:
    return [
        Subject(APPEND, lambda: _writes(ctx, n, False), role="reference"),
        Subject(OVERWRITE, lambda: _writes(ctx, n, True), role="reference"),
    ]


FSYNC_PATTERN = Workload(
    name="fsync_pattern",
    title="Diagnostic: fdatasync after an append vs after an overwrite of preallocated space",
    unit="writes", size_name="2.3 KB records", cost_label="s per write",
    sizes=(100, 1000, 3000), quick_sizes=(10, 20, 40), reps=3,
    build=_build, baseline=OVERWRITE,
    notes=("Same file system as the stores (the run's temp dir). An append changes the "
           "file size, so fdatasync must also commit file-system metadata (an ext4 journal "
           "commit); overwriting already-allocated blocks flushes data only. The embedded "
           "catalog appends to its segment and fdatasyncs every commit; SQLite's WAL "
           "overwrites a file it reuses after each checkpoint.",),
)
