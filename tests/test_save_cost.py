"""What one save costs, counted in statements and calls (never in seconds), and that the
shortcuts taken for it keep every answer the same."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_reads import traced

import localckpt
from localckpt.backends.sql.rows import digest
from localckpt.errors import NotFoundError
from localckpt.gc import collect_garbage
from localckpt.types import Checkpoint

FRAME = np.zeros((2, 2, 3), np.uint8)


def _statements(store: localckpt.Store, save: object) -> list[str]:
    with traced(store) as said:
        save()  # type: ignore[operator]
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


@pytest.mark.parametrize("tz", [UTC, timezone(timedelta(hours=5, minutes=30))])
def test_a_rows_digest_is_the_records_on_every_dialect(tz: timezone) -> None:
    """row() skips astimezone for a UTC time (every save's): the digest it writes is
    still digest() of the record, whatever the time's zone."""
    from localckpt.backends.sql.dialects import DUCKDB, POSTGRES, SQLITE
    from localckpt.backends.sql.rows import codecs

    c = Checkpoint(id="01a24eed-acd1-707b-9397-7d3fbac1aef5",
                   timeline_id="01a24eed-abe7-72b3-98b0-4f48381b166e",
                   parent_id="01a24eed-acd1-707a-888d-eeaa401c5142", stage="s",
                   stage_hashes={"s": "ab" * 32}, config_overrides={"k": [1, 2.5, None]},
                   stats={"n": 3}, is_scenario=True, scenario_label="x",
                   created_at=datetime(2026, 12, 7, 5, 0, 1, 5, tzinfo=UTC).astimezone(tz))
    for dialect in (SQLITE, POSTGRES, DUCKDB):
        row = codecs(dialect)["checkpoint"].row(c)
        assert row[-1] == digest("checkpoint", c), dialect.name


def test_a_save_makes_no_call_it_does_not_need(tmp_path: Path) -> None:
    """The Python calls of one save, counted (a save is CPU-bound: ~65 functions
    called): no context manager around its COMMIT, no time zone conversion of a UTC
    time, no sort of one record, no exact column made for a row that needs none."""
    with localckpt.open(tmp_path / "s", create=True, fsync=False) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        parent = store.save_stage_output(tl.id, None, "a", {"i": 0})
        parent = store.save_stage_output(tl.id, parent, "b", {"i": 1})
        calls: Counter[str] = Counter()

        def count(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                calls[frame.f_code.co_name] += 1
            elif event == "c_call":
                calls["C " + arg.__name__] += 1

        sys.setprofile(count)
        try:
            child = store.save_stage_output(tl.id, parent, "c", {"i": 2, "k": [1.5, None]})
        finally:
            sys.setprofile(None)
        assert store.load_stage_output(child, "c") == {"i": 2, "k": [1.5, None]}
        for needless in ("translated", "exact_text", "C astimezone", "_record_id"):
            assert calls[needless] == 0, (needless, calls)
        python = sum(n for name, n in calls.items() if not name.startswith("C "))
        assert python <= 70, sorted(calls.items())
        # the write: no loop over record kinds, no import, no wait set up for the lock
        for needless in ("_steps", "parent", "_wait_for_lock", "_take_turn", "notify_all",
                         "_gather", "wait"):
            assert calls[needless] == 0, (needless, calls)


@pytest.mark.parametrize("seen", [0, 2])
def test_a_saves_steps_are_the_general_writes(tmp_path: Path, seen: int) -> None:
    """A save's steps are made without the general loops (_save_steps): the same
    statements with the same parameters as _steps makes of the same batch, with or
    without tombstones seen by the guard, with its output or none."""
    from localckpt.catalog import Batch

    with localckpt.open(tmp_path / "s", create=True, fsync=False) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        parent = store.get_checkpoint(store.save_stage_output(tl.id, None, "a", {"i": 0}))
        catalog: Any = store.catalog
        child = Checkpoint(id="01a24eed-acd1-707b-9397-7d3fbac1aef5", timeline_id=tl.id,
                           parent_id=parent.id, stage="b",
                           stage_hashes={**parent.stage_hashes, "b": "cd" * 32},
                           config_overrides={"k": 1}, stats={}, is_scenario=False,
                           scenario_label="", created_at=datetime.now(UTC))
        guard = (tl.id, [f"01a24eed-acd1-707b-9397-7d3fbac1aef{i}" for i in range(seen)])
        for outputs in ({"cd" * 32: b'{"i":1}'}, {}):
            batch = Batch(checkpoints=[child], outputs=outputs)
            assert catalog._save_steps(batch, guard) == catalog._steps(
                batch, guard, batch.checkpoints, batch.timelines)
