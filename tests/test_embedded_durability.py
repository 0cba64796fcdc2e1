"""The embedded catalog when the machine is not kind: full disks, read-only stores,
long-lived readers, bad SQL; and what opening a store imports.

The disk-full and read-only cases mount a small tmpfs (or a read-only bind mount), which
needs root: CI runs as root, so there they run; elsewhere they skip and say why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from embedded_helpers import catalog_files, frames, open_fds

import localckpt
from localckpt.errors import BackendUnavailableError, InvalidInputError, LocalckptError

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if not IS_ROOT or sys.platform != "linux":
        pytest.skip("mounting a 2 MB tmpfs needs root on Linux (CI runs as root)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=60)


def test_a_full_disk_gives_typed_errors_and_loses_nothing_committed(small_disk: Path) -> None:
    root = small_disk / "store"
    store = localckpt.open(root, create=True, compact_after=2)
    tl = store.create_timeline("v.mp4", "p", frames())
    saved: list[tuple[str, int]] = []
    failures = 0
    parent = None
    for i in range(200):
        try:
            parent = store.save_stage_output(tl.id, parent, "s", {"i": i, "pad": "x" * 40_000})
            saved.append((parent, i))
        except BackendUnavailableError as exc:
            assert "disk space" in str(exc)
            failures += 1
            if failures >= 40:
                break
    assert saved and failures >= 40, (len(saved), failures)
    assert len(catalog_files(root, "*.log")) <= 2, "failed saves left segments behind"
    with pytest.raises(LocalckptError):
        store.catalog.compact()  # no space for a run: typed, and nothing changes
    store.close()
    with localckpt.open(root) as again:  # opens (its compaction fails quietly) and reads
        assert [c.id for c in again.lineage(saved[-1][0])][1:] == [c for c, _ in saved]
        for cid, i in saved[:: max(1, len(saved) // 10)]:
            assert again.load_stage_output(cid, "s")["i"] == i
        assert again.catalog.storage_problems() == []
    _mount("-o", "remount,size=64m", str(small_disk))
    with localckpt.open(root) as again:  # space again: saves and compaction work
        more = again.save_stage_output(tl.id, saved[-1][0], "t", {"ok": 1})
    with localckpt.open(root) as again:
        assert again.catalog.compact() >= 1
        assert again.load_stage_output(more, "t") == {"ok": 1}
        assert len(again.checkpoints(tl.id)) == len(saved) + 2


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable store directory, the same directory mounted read-only)."""
    if not IS_ROOT or sys.platform != "linux":
        pytest.skip("a read-only bind mount needs root on Linux (CI runs as root)")
    src, ro = tmp_path / "store", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    try:
        _mount("--bind", str(src), str(ro))
        _mount("-o", "remount,bind,ro", str(ro))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a read-only bind mount here: {exc}")
    try:
        yield src, ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False, timeout=60)


def test_a_read_only_store_with_many_segments_opens_and_reads(read_only: tuple[Path, Path]
                                                              ) -> None:
    src, ro = read_only
    with localckpt.open(src, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames())
    ids = []
    for i in range(40):  # more sealed segments than compact_after
        with localckpt.open(src, compact_after=10**6) as store:
            ids.append(store.save_stage_output(tl.id, ids[-1] if ids else None, "s", {"i": i}))
    assert len(catalog_files(src, "*.log")) == 41
    with localckpt.open(ro) as store:
        assert [c.id for c in store.lineage(ids[-1])][1:] == ids
        assert store.load_stage_output(ids[-1], "s") == {"i": 39}
        assert store.catalog.storage_problems() == []
        with pytest.raises(BackendUnavailableError, match="read-only"):
            store.save_stage_output(tl.id, ids[-1], "t", {})
        with pytest.raises(BackendUnavailableError, match="read-only"):
            store.catalog.compact()
    assert len(catalog_files(src, "*.log")) == 41, "nothing was written"


def test_a_reader_through_200_write_and_compact_cycles_keeps_few_descriptors(tmp_path: Path
                                                                            ) -> None:
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames())
    reader = localckpt.open(tmp_path)
    compactor = localckpt.open(tmp_path)
    try:
        baseline = None
        parent = None
        for cycle in range(200):
            with localckpt.open(tmp_path, compact_after=10**6, fsync=False) as writer:
                parent = writer.save_stage_output(tl.id, parent, "s", {"cycle": cycle})
            compactor.catalog.compact()
            assert reader.load_stage_output(parent, "s") == {"cycle": cycle}
            assert len(reader.lineage(parent)) == cycle + 2
            if cycle == 10:
                baseline = open_fds()
        assert baseline is not None
        assert open_fds() <= baseline + 4, "descriptors grew with the cycles"
        pinned = [p for p in _targets() if p.startswith(str(tmp_path)) and
                  p.endswith("(deleted)")]
        assert len(pinned) <= 2, f"descriptors pin compacted-away files: {pinned}"
    finally:
        reader.close()
        compactor.close()


def _targets() -> list[str]:
    """What this process's descriptors point at."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return found


def test_sql_errors_are_typed(tmp_path: Path) -> None:
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames())
        rows = store.catalog.sql("SELECT id FROM timelines").to_pylist()
        assert rows == [{"id": tl.id}]
        with pytest.raises(InvalidInputError, match="SQL"):
            store.catalog.sql("SELECT nonsense FROM nowhere")
        with pytest.raises(InvalidInputError, match="SQL"):
            store.catalog.sql("SELECT id FROM timelines WHERE id = $x")  # missing parameter


def test_reads_import_neither_duckdb_nor_pyarrow(tmp_path: Path) -> None:
    with localckpt.open(tmp_path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames())
        cid = store.save_stage_output(tl.id, None, "s", {"x": 1})
    with localckpt.open(tmp_path) as store:
        store.catalog.compact()
    code = (
        "import sys, localckpt\n"
        f"s = localckpt.open({str(tmp_path)!r})\n"
        f"s.list_timelines(); s.get_checkpoint({cid!r}); s.checkpoints({tl.id!r})\n"
        f"s.lineage({cid!r}); s.load_stage_output({cid!r}, 's')\n"
        f"s.save_stage_output({tl.id!r}, {cid!r}, 't', {{}})\n"
        "s.close()\n"
        "print(sorted(m for m in ('duckdb', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
