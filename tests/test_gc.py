"""gc removes the shards of failed ingests and nothing a timeline refers to."""

from __future__ import annotations

import numpy as np
import pytest

from localckpt import Store
from localckpt.cli import main
from localckpt.gc import collect_garbage


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(n)]


def _leave_orphan_shards(store: Store) -> str:
    """Write shards for an id the catalog never hears of (a crash before the commit)."""
    from localckpt.frames import coerce_frames
    from localckpt.ids import new_id
    from localckpt.shards import write_frames

    tid = new_id()
    write_frames(store.objects, tid, coerce_frames(_frames(3), 2.0))
    return tid


def test_gc_removes_only_unreferenced_old_objects(store_kind: str, new_store) -> None:  # type: ignore[no-untyped-def]
    store = new_store(store_kind)
    kept = store.create_timeline("v.mp4", "p", _frames(4))
    orphan = _leave_orphan_shards(store)
    before = store.objects.list("frames")
    assert any(orphan in k for k in before)

    recent = collect_garbage(store)  # default grace period: the orphan is too new
    assert recent.objects_removed == 0 and recent.skipped_recent > 0
    dry = collect_garbage(store, older_than=0, dry_run=True)
    assert dry.orphan_timelines == (orphan,) and store.objects.list("frames") == before

    report = collect_garbage(store, older_than=0)
    assert report.orphan_timelines == (orphan,) and report.objects_removed >= 2
    after = store.objects.list("frames")
    assert not any(orphan in k for k in after)
    assert [k for k in before if orphan not in k] == after
    assert len(store.get_timeline_frames(kept.id)) == 4
    assert collect_garbage(store, older_than=0).objects_removed == 0  # idempotent


def test_gc_command(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    import localckpt

    with localckpt.open(tmp_path / "s", create=True) as store:
        orphan = _leave_orphan_shards(store)
    assert main(["--store", str(tmp_path / "s"), "gc", "--older-than", "0", "--dry-run"]) == 0
    assert orphan in capsys.readouterr().out
    assert main(["--store", str(tmp_path / "s"), "gc", "--older-than", "0"]) == 0
    with localckpt.open(tmp_path / "s", create=True) as store:
        assert store.objects.list("frames") == []
