"""Model-based properties of merge, sync, bundles and deletion over several stores.

The state machine is shipped (:class:`localckpt.testing.stateful.SyncMachine`; see its
docstring for what it checks): saves, forks, merges, syncs, bundles, interrupted syncs,
delete_timeline, prune, retain, tag, untag and gc over two and three stores, checked
against a pure model after every step. This module runs it over three memory stores and
every unordered pair of backend kinds (conftest).

Separate @given tests state the algebra of sync with deletions directly: on what is
visible (live timelines, checkpoints and tags), sync is commutative, associative and
idempotent, and nothing is lost that no store deleted.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from _slow import require_slow
from conftest import KINDS, StoreFactory
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

import localckpt
from localckpt import Store
from localckpt.canonical import canonical_bytes
from localckpt.errors import LocalckptError
from localckpt.testing.stateful.sync import OUTPUTS, SMALL_MAPS, STAGES, SyncMachine

# -- running it over the backends ------------------------------------------------------------


def _combinations() -> list[tuple[str, ...]]:
    """Three memory stores (fast, most examples), then every unordered pair of kinds."""
    pairs = [p for p in itertools.combinations_with_replacement(KINDS, 2)
             if p != ("memory", "memory")]
    return [("memory", "memory", "memory"), *pairs]


def _budget(kinds: tuple[str, ...]) -> settings:
    """Most examples on the in-memory triple; fewer per pair of real backends, fewest
    where a server (PostgreSQL, S3) is involved. Scales with the hypothesis profile."""
    base = settings.default
    if kinds == ("memory", "memory", "memory"):
        return settings(base, max_examples=base.max_examples * 2, stateful_step_count=40)
    slow = any(k.endswith("s3") or k.startswith("postgres") for k in kinds)
    return settings(base, max_examples=max(2, base.max_examples // (3 if slow else 1)),
                    stateful_step_count=25)


def _run(new_store: StoreFactory, kinds: tuple[str, ...]) -> None:
    class Machine(SyncMachine):
        pass

    Machine.factory = staticmethod(new_store)  # type: ignore[assignment]
    Machine.close_store = staticmethod(new_store.close)  # type: ignore[assignment]
    Machine.kinds = kinds
    run_state_machine_as_test(Machine, settings=_budget(kinds))


@pytest.mark.parametrize("kinds", _combinations(), ids="+".join)
def test_sync_and_merge_agree_with_the_model(new_store: StoreFactory, kinds: tuple[str, ...]
                                             ) -> None:
    _run(new_store, kinds)


@pytest.mark.slow
@pytest.mark.parametrize("kinds", [(a, b, a) for a, b in itertools.combinations(KINDS, 2)],
                         ids="+".join)
def test_three_stores_of_every_pair_agree_with_the_model(
        new_store: StoreFactory, kinds: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    """Three stores over each pair of backends (two of the first kind): the unions of a
    third store's work, through both backends."""
    require_slow(request)
    _run(new_store, kinds)


# -- the algebra of sync, stated directly -------------------------------------------------------


def _dump(store: Store) -> tuple[Any, ...]:
    """Everything a store shows (live records, tags, deletions), comparable across stores."""
    tls = sorted((t.id, t.frame_count) for t in store.list_timelines())
    cps = sorted(
        (c.id, c.parent_id, c.merged_from, tuple(sorted(c.stage_hashes.items())),
         canonical_bytes(dict(c.config_overrides)), canonical_bytes(dict(c.stats)), c.created_at)
        for t in store.list_timelines() for c in store.checkpoints(t.id)
    )
    tags = sorted((g.name, g.checkpoint_id) for g in store.tags())
    marks = sorted(x.id for x in store.catalog.tombstones(None))
    objs = sorted(k for t in store.list_timelines() for k in store.objects.list(f"frames/{t.id}"))
    return tls, cps, tags, marks, objs


@st.composite
def diverged_stores(draw: st.DrawFn) -> list[Store]:
    """Three memory stores that share a timeline, then each saved, tagged and deleted
    on its own."""
    stores = [localckpt.open("memory://") for _ in range(3)]
    tl = stores[0].create_timeline("v", "p", [np.zeros((2, 2, 3), np.uint8)], codec="png")
    for s in stores[1:]:
        localckpt.sync(stores[0], s)
    shared = [tl.root_checkpoint_id]
    for s in stores:
        ids = list(shared)
        for _ in range(draw(st.integers(0, 4))):
            parent = draw(st.sampled_from(ids))
            ids.append(s.save_stage_output(tl.id, parent, draw(STAGES), draw(OUTPUTS),
                                           draw(SMALL_MAPS)))
        _deletions(draw, s, tl.id, ids)
    if draw(st.booleans()):  # and one store has a timeline of its own
        own = draw(st.sampled_from(stores))
        other = own.create_timeline("w", "p", [np.ones((2, 2, 3), np.uint8)], codec="png")
        if draw(st.booleans()):
            own.delete_timeline(other.id)
    return stores


def _deletions(draw: st.DrawFn, s: Store, tid: str, ids: list[str]) -> None:
    """Tags, untags, prunes and retains at random (refusals are fine: nothing happens)."""
    for _ in range(draw(st.integers(0, 3))):
        live = [c.id for c in s.checkpoints(tid)]
        action = draw(st.sampled_from(["tag", "untag", "prune", "retain"]))
        try:
            if action == "tag":
                s.tag(draw(st.sampled_from(live)), draw(st.sampled_from(["a", "b"])))
            elif action == "untag":
                s.untag(draw(st.sampled_from(["a", "b"])))
            elif action == "prune" and len(live) > 1:
                s.prune(draw(st.sampled_from(live[1:])), force=draw(st.booleans()))
            elif action == "retain":
                s.retain(tid, keep_last=draw(st.integers(0, 2)))
        except LocalckptError:
            pass


def _live(store: Store) -> set[str]:
    return {c.id for t in store.list_timelines() for c in store.checkpoints(t.id)}


def _deleted_by(store: Store) -> set[str]:
    return {x.target_id for x in store.catalog.tombstones(None)}


def _union(*stores: Store) -> Store:
    out = localckpt.open("memory://")
    for s in stores:
        localckpt.sync(s, out)
    return out


@given(diverged_stores())
def test_sync_is_commutative(stores: list[Store]) -> None:
    a, b, _ = stores
    assert _dump(_union(a, b)) == _dump(_union(b, a))


@given(diverged_stores())
def test_sync_is_associative(stores: list[Store]) -> None:
    a, b, c = stores
    ab = _union(a, b)
    localckpt.sync(c, ab)
    bc = _union(b, c)
    localckpt.sync(bc, a)
    assert _dump(ab) == _dump(a)


@given(diverged_stores())
def test_nothing_is_lost_that_no_store_deleted(stores: list[Store]) -> None:
    """A checkpoint live somewhere stays live in the union unless some store deleted it
    or one of its ancestors (or its timeline)."""
    union = _union(*stores)
    deleted = set().union(*map(_deleted_by, stores))
    for s in stores:
        for cid in _live(s):
            chain = {c.id for c in s.lineage(cid)} | {s.get_checkpoint(cid).timeline_id}
            assert (cid in _live(union)) == (not chain & deleted)
    assert _live(union) <= set().union(*map(_live, stores))  # nothing invented


@given(diverged_stores())
def test_sync_is_idempotent_and_both_ways_make_equal_stores(stores: list[Store]) -> None:
    a, b, _ = stores
    before = _dump(b)
    first = localckpt.sync(a, b)
    snapshot = _dump(b)
    assert first.tombstones == len(snapshot[3]) - len(before[3])
    assert not localckpt.sync(a, b)
    assert _dump(b) == snapshot
    localckpt.sync(b, a)
    assert _dump(a) == _dump(b)
