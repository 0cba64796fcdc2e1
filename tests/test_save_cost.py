"""What one save costs, counted in statements and calls (never in seconds), and that the
shortcuts taken for it keep every answer the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt.errors import NotFoundError
from localckpt.gc import collect_garbage

FRAME = np.zeros((2, 2, 3), np.uint8)


def _statements(store: localckpt.Store, save: object) -> list[str]:
    conn = store.catalog.engine._conn()  # type: ignore[attr-defined]
    said: list[str] = []
    conn.set_trace_callback(said.append)
    try:
        save()  # type: ignore[operator]
    finally:
        conn.set_trace_callback(None)
    return said


def test_a_save_under_the_root_reads_no_timeline_row_after_the_first(tmp_path: Path) -> None:
    """A chain starting at the root (parent None) looked the timeline's row up on every
    save: a timeline record never changes, so its root id is read once."""
    with localckpt.open(tmp_path / "s", create=True, fsync=False) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        saved = [store.save_stage_output(tl.id, None, "a", {"i": 0})]
        said = _statements(store, lambda: saved.append(
            store.save_stage_output(tl.id, None, "a", {"i": 1})))
        assert not [s for s in said if "timelines" in s], said
        # the write itself: the guard, the output, the row, its output ref, its sums
        assert [s.split(" (")[0].split(" WHERE")[0] for s in said] == [
            "BEGIN IMMEDIATE", "SELECT 1 FROM tombstones", "INSERT INTO outputs",
            "INSERT INTO checkpoints", "INSERT INTO output_refs", "INSERT INTO tree_sums AS t",
            "COMMIT"], said
        root = store.get_timeline(tl.id).root_checkpoint_id
        assert [store.get_checkpoint(c).parent_id for c in saved] == [root, root]
        assert store.load_stage_output(saved[1], "a") == {"i": 1}
        assert store.verify().ok


def test_a_save_under_the_root_of_a_deleted_timeline_is_refused(tmp_path: Path) -> None:
    """The root remembered: deleted (the guard sees its tombstone) or purged (the root's
    row is gone), the save is NotFoundError, and nothing is written."""
    with localckpt.open(tmp_path / "s", create=True, fsync=False) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        keep = store.create_timeline("w.mp4", "p", [FRAME])
        store.save_stage_output(tl.id, None, "a", {"i": 0})
        store.save_stage_output(keep.id, None, "a", {"i": 0})
        store.delete_timeline(tl.id)
        with pytest.raises(NotFoundError):
            store.save_stage_output(tl.id, None, "a", {"i": 1})
        collect_garbage(store, older_than=0)
        with pytest.raises(NotFoundError, match=f"no timeline '{tl.id}'"):
            store.save_stage_output(tl.id, None, "a", {"i": 2})
        assert store.verify().ok
        assert store.save_stage_output(keep.id, None, "a", {"i": 3})
