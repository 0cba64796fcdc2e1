"""Merge is idempotent: the same merge again returns the existing merge checkpoint.

The property, on every backend: merge, merge again (same id, nothing committed), sync to
another store, merge again there (same id, nothing committed): one merge checkpoint of
theirs into ours in both stores. A merge with another result (another strategy) is a
new sibling, and a deleted merge checkpoint is not reused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import StoreFactory
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import localckpt
from localckpt import Store
from localckpt.catalog import Batch
from localckpt.errors import MergeConflict
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Tombstone

STAGES = st.sampled_from(["detect", "track", "ocr"])
OUTPUTS = st.builds(lambda v: {"v": v}, st.integers(0, 2))
CONFIG = st.dictionaries(st.sampled_from(["thr", "model"]), st.integers(0, 2), max_size=2)
BRANCH = st.lists(st.tuples(STAGES, OUTPUTS, CONFIG), min_size=1, max_size=3)


def _count_commits(store: Store) -> list[Batch]:
    """Record every commit the store's catalog makes from now on."""
    seen: list[Batch] = []
    original = store.catalog.commit

    def commit(batch: Batch) -> None:
        seen.append(batch)
        original(batch)

    store.catalog.commit = commit  # type: ignore[method-assign]
    return seen


def _branch(store: Store, tid: str, parent: str, steps: list[tuple[str, Any, Any]]) -> str:
    for stage, output, config in steps:
        parent = store.save_stage_output(tid, parent, stage, output, config)
    return parent


def _resolver(kind: str, key: str, base: Any, ours: Any, theirs: Any) -> Any:
    if kind == "stage":
        return {"v": 10 + ours["v"] + theirs["v"]}
    return theirs


STRATEGY: dict[str, str | Callable[..., Any]] = {"ours": "ours", "theirs": "theirs",
                                                  "resolver": _resolver}


def _merges(store: Store, tid: str, ours: str, theirs: str) -> list[str]:
    return [c.id for c in store.checkpoints(tid)
            if c.parent_id == ours and c.merged_from == theirs]


@settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
@given(ours_steps=BRANCH, theirs_steps=BRANCH, strategy=st.sampled_from(sorted(STRATEGY)))
def test_merge_again_and_after_sync_returns_the_same_checkpoint(
    new_store: StoreFactory, store_kind: str, ours_steps: list, theirs_steps: list,
    strategy: str,
) -> None:
    a, b = new_store(store_kind), new_store(store_kind)
    tid = a.create_timeline("v.mp4", "p", [np.zeros((2, 2, 3), np.uint8)], codec="png").id
    base = a.save_stage_output(tid, None, "detect", {"v": 0}, {"thr": 0})
    ours = _branch(a, tid, base, ours_steps)
    theirs = _branch(a, tid, base, theirs_steps)
    first = a.merge(ours, theirs, STRATEGY[strategy])
    event("fast-forward" if first == theirs else "merged")
    commits = _count_commits(a)
    assert a.merge(ours, theirs, STRATEGY[strategy]) == first
    assert commits == []
    localckpt.sync(a, b, tid)
    b_commits = _count_commits(b)
    assert b.merge(ours, theirs, STRATEGY[strategy]) == first
    assert b_commits == []
    expected = [] if first == theirs else [first]
    assert _merges(a, tid, ours, theirs) == expected
    assert _merges(b, tid, ours, theirs) == expected


@pytest.fixture
def forked(new_store: StoreFactory, store_kind: str) -> tuple[Store, str, str, str]:
    """A store with ours / theirs that conflict on stage track and config thr."""
    store = new_store(store_kind)
    tid = store.create_timeline("v.mp4", "p", [np.zeros((2, 2, 3), np.uint8)], codec="png").id
    base = store.save_stage_output(tid, None, "detect", {"n": 1}, {"thr": 0.5})
    ours = store.save_stage_output(tid, base, "track", {"t": 1}, {"thr": 0.6})
    theirs = store.save_stage_output(tid, base, "track", {"t": 2}, {"thr": 0.7})
    return store, tid, ours, theirs


def test_another_result_is_a_new_sibling(forked: tuple[Store, str, str, str]) -> None:
    store, tid, ours, theirs = forked
    with pytest.raises(MergeConflict):
        store.merge(ours, theirs)
    kept = store.merge(ours, theirs, strategy="ours")
    taken = store.merge(ours, theirs, strategy="theirs")
    assert kept != taken
    assert store.merge(ours, theirs, strategy="ours") == kept
    assert store.merge(ours, theirs, strategy="theirs") == taken
    assert sorted(_merges(store, tid, ours, theirs)) == sorted([kept, taken])


def test_a_deleted_merge_is_not_reused(forked: tuple[Store, str, str, str]) -> None:
    store, tid, ours, theirs = forked
    first = store.merge(ours, theirs, strategy="theirs")
    store.catalog.commit(Batch(tombstones=[
        Tombstone(id=new_id(), target_id=first, kind="checkpoint", timeline_id=tid,
                  created_at=utcnow())]))
    again = store.merge(ours, theirs, strategy="theirs")
    assert again != first
    assert store.merge(ours, theirs, strategy="theirs") == again
