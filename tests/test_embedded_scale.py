"""Opening a big embedded store reads what changed, and a query reads what it returns.

Counted with the catalog's own counters of records read from disk (never wall time):
opening a store of many compacted checkpoints and reading one small timeline's tree must
read a number of records bounded by that timeline, whatever the store's size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from embedded_helpers import bulk_store

import localckpt


def _reads_for_one_tree(root: Path, made: list[tuple[str, str]]) -> tuple[int, int]:
    """(records read by open + list + tree of one timeline, that timeline's size)."""
    tid, tip = made[len(made) // 2]
    with localckpt.open(root) as store:
        assert store.catalog.stats["records_read"] == 0, "open replays nothing compacted"
        timelines = store.list_timelines()
        tree = store.checkpoints(tid)
        assert [c.id for c in store.lineage(tip)][-1] == tip
        assert store.load_stage_output(tip, "s0") is not None
        return store.catalog.stats["records_read"] - len(timelines), len(tree)


@pytest.mark.parametrize("timelines", [
    20, pytest.param(100, marks=pytest.mark.slow, id="100k-checkpoints"),
])
def test_open_and_tree_read_a_bounded_number_of_records(tmp_path: Path, timelines: int) -> None:
    made = bulk_store(tmp_path, timelines, 1000)
    made.append(bulk_store(tmp_path, 1, 20)[0])  # one small timeline
    tid, tip = made[-1]
    with localckpt.open(tmp_path) as store:
        assert store.catalog.stats["records_read"] == 0
        assert len(store.list_timelines()) == timelines + 1
        before = store.catalog.stats["records_read"]
        assert len(store.checkpoints(tid)) == 20
        tree_reads = store.catalog.stats["records_read"] - before
        assert [c.id for c in store.lineage(tip)][-1] == tip
        assert len(store.catalog.runs.runs) > 1, "the bulk build leaves tiers of runs"
    assert tree_reads <= 20 + 64, f"the tree of 20 read {tree_reads} records"
    reads, size = _reads_for_one_tree(tmp_path, made[:-1])
    assert size == 1000 and reads <= 1000 + 2 * 64, reads


def test_reading_one_timeline_holds_one_timeline(tmp_path: Path) -> None:
    made = bulk_store(tmp_path, 12, 500)
    with localckpt.open(tmp_path) as store:
        views = store.catalog.views
        views.max_records = 1200
        for tid, _ in made:
            assert len(store.checkpoints(tid)) == 500
            assert views._records <= 1200, "the LRU of timelines is bounded"
        assert len(store.checkpoints(made[0][0])) == 500


def test_lineage_reads_the_blocks_of_its_chain_not_the_timeline(tmp_path: Path) -> None:
    ((tid, tip),) = bulk_store(tmp_path, 1, 3000)
    with localckpt.open(tmp_path) as store:
        branch = [store.save_stage_output(tid, None, "side", {"i": 0})]
        branch.append(store.save_stage_output(tid, branch[-1], "side", {"i": 1}))
    with localckpt.open(tmp_path) as store:
        store.catalog.compact()
    with localckpt.open(tmp_path) as store:
        chain = store.lineage(branch[-1])
        assert [c.id for c in chain][1:] == branch
        assert store.catalog.stats["records_read"] <= 3 * 64, "three blocks at most"
        assert len(store.lineage(tip)) == 3000  # the long chain reads the whole timeline
