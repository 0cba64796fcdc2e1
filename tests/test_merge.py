"""Three-way merge and diff: the pure rules (tree.py) and Store.merge / Store.diff."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import StoreFactory
from hypothesis import given
from hypothesis import strategies as st

import localckpt
from localckpt.canonical import canonical_bytes
from localckpt.errors import InvalidInputError, MergeConflict, NotFoundError
from localckpt.tree import (
    AMBIGUOUS,
    MISSING,
    State,
    ancestors,
    lineage_ids,
    lowest_common_ancestor,
    merge_bases,
    merge_states,
    resolve,
    three_way,
)

# -- the pure rules --------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "d"])
# 1, 1.0 and True are equal in Python but three different JSON values.
VALUES = st.sampled_from([0, 1, 1.0, True, None, "x", [1], {"k": 1}])
MAPS = st.dictionaries(KEYS, VALUES, max_size=4)
ABSENT = st.just(MISSING)


def _same(x: object, y: object) -> bool:
    if x is MISSING or y is MISSING:
        return x is y
    return canonical_bytes(x) == canonical_bytes(y)


def _eq_maps(x: dict, y: dict) -> bool:
    return set(x) == set(y) and all(_same(x[k], y[k]) for k in x)


@st.composite
def triples(draw: st.DrawFn) -> tuple[dict, dict, dict]:
    """base, ours, theirs: each side is the base with some keys changed or deleted."""
    base = draw(MAPS)

    def side() -> dict:
        out = dict(base)
        for key in draw(st.lists(KEYS, unique=True, max_size=4)):
            value = draw(VALUES | ABSENT)
            if value is MISSING:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    return base, side(), side()


@given(triples())
def test_three_way_is_symmetric_up_to_sides(t: tuple[dict, dict, dict]) -> None:
    base, ours, theirs = t
    m1, c1 = three_way("config", [base], ours, theirs)
    m2, c2 = three_way("config", [base], theirs, ours)
    assert _eq_maps(m1, m2)
    assert [c.swapped() for c in c1] == c2


@given(triples())
def test_conflict_exactly_when_both_changed_differently(t: tuple[dict, dict, dict]) -> None:
    base, ours, theirs = t
    merged, conflicts = three_way("config", [base], ours, theirs)
    conflicting = {c.key for c in conflicts}
    for key in set(base) | set(ours) | set(theirs):
        b, o, th = (m.get(key, MISSING) for m in (base, ours, theirs))
        both_changed = not _same(o, b) and not _same(th, b) and not _same(o, th)
        assert (key in conflicting) == both_changed, key
        if both_changed:
            assert key not in merged
            continue
        # Clean: the side that changed wins; a deletion is a change like any other.
        expected = th if _same(o, b) else o
        assert _same(merged.get(key, MISSING), expected), key


@given(MAPS, MAPS, MAPS)
def test_three_way_identities(base: dict, x: dict, y: dict) -> None:
    assert _eq_maps(three_way("stats", [base], x, base)[0], x)  # theirs unchanged
    assert _eq_maps(three_way("stats", [base], base, y)[0], y)  # ours unchanged
    assert _eq_maps(three_way("stats", [base], x, x)[0], x)  # same change
    assert three_way("stats", [base], x, x)[1] == []


@given(MAPS, st.data())
def test_disjoint_changes_merge_cleanly(base: dict, data: st.DataObject) -> None:
    keys = ["a", "b", "c", "d"]
    mine = set(data.draw(st.lists(st.sampled_from(keys), unique=True)))
    other = set(keys) - mine
    ours, theirs = dict(base), dict(base)
    for key in mine:
        ours[key] = data.draw(VALUES)
    for key in other:
        if data.draw(st.booleans()):
            theirs.pop(key, None)
        else:
            theirs[key] = data.draw(VALUES)
    merged, conflicts = three_way("config", [base], ours, theirs)
    assert conflicts == []
    expected = {k: v for k, v in ours.items() if k in mine}
    expected.update({k: v for k, v in theirs.items() if k in other})
    assert _eq_maps(merged, expected)


@given(triples())
def test_resolve_ours_keeps_our_side_of_every_conflict(t: tuple[dict, dict, dict]) -> None:
    base, ours, theirs = t
    result = merge_states([State(config=base)], State(config=ours), State(config=theirs))
    kept = resolve(result, lambda c: c.ours)
    for c in result.conflicts:
        assert _same(kept.config.get(c.key, MISSING), ours.get(c.key, MISSING))
    swapped = merge_states([State(config=base)], State(config=theirs), State(config=ours))
    assert _eq_maps(dict(resolve(swapped, lambda c: c.theirs).config), dict(kept.config))


def test_disagreeing_bases_make_any_difference_a_conflict() -> None:
    merged, conflicts = three_way("config", [{"k": 1, "s": 0}, {"k": 2, "s": 0}],
                                  {"k": 1, "s": 1}, {"k": 3, "s": 0})
    assert [(c.key, c.base) for c in conflicts] == [("k", AMBIGUOUS)]
    assert merged == {"s": 1}
    assert three_way("config", [{"k": 1}, {"k": 2}], {"k": 5}, {"k": 5}) == ({"k": 5}, [])


@st.composite
def trees(draw: st.DrawFn) -> dict[str, tuple[str | None, str | None]]:
    """A random tree (parent links only), ids n0..nk in creation order."""
    n = draw(st.integers(1, 25))
    graph: dict[str, tuple[str | None, str | None]] = {"n0": (None, None)}
    for i in range(1, n):
        graph[f"n{i}"] = (f"n{draw(st.integers(0, i - 1))}", None)
    return graph


@given(trees(), st.data())
def test_merge_base_of_a_tree_is_the_lowest_common_ancestor(graph: dict, data: st.DataObject
                                                            ) -> None:
    a = data.draw(st.sampled_from(sorted(graph)))
    b = data.draw(st.sampled_from(sorted(graph)))
    lca = lowest_common_ancestor(lineage_ids(graph, a), lineage_ids(graph, b))
    assert merge_bases(graph, a, b) == [lca]
    assert merge_bases(graph, a, b) == merge_bases(graph, b, a)
    assert (merge_bases(graph, a, b) == [b]) == (b in ancestors(graph, a))


def test_merged_from_counts_as_ancestry() -> None:
    # r -> o -> m(merged_from t); r -> t -> t2
    graph = {"r": (None, None), "o": ("r", None), "t": ("r", None), "m": ("o", "t"),
             "t2": ("t", None)}
    assert merge_bases(graph, "m", "t") == ["t"]  # merging t again: no-op
    assert merge_bases(graph, "m", "t2") == ["t"]  # later work on t's branch: base t
    assert lowest_common_ancestor(lineage_ids(graph, "m"), lineage_ids(graph, "t2")) == "r"
    # criss-cross: x merges y's parent, y merges x's parent -> two best bases
    graph = {"r": (None, None), "a": ("r", None), "b": ("r", None), "x": ("a", "b"),
             "y": ("b", "a")}
    assert merge_bases(graph, "x", "y") == ["a", "b"]


# -- Store.merge / Store.diff ----------------------------------------------------------


@pytest.fixture
def store(new_store: StoreFactory, store_kind: str) -> localckpt.Store:
    """A fresh store of every available kind: merge is written once, above the catalog."""
    return new_store(store_kind)


def _timeline(store: localckpt.Store) -> str:
    return store.create_timeline("v.mp4", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png").id


def _fork(store: localckpt.Store):
    """root -> base(detect) -> ours(track, thr .6) / theirs(ocr, model m)."""
    tid = _timeline(store)
    base = store.save_stage_output(tid, None, "detect", {"n": 1}, {"thr": 0.5}, {"ms": 1})
    ours = store.save_stage_output(tid, base, "track", {"t": 1}, {"thr": 0.6})
    theirs = store.save_stage_output(tid, base, "ocr", {"o": 1}, {"model": "m"}, {"ms": 2})
    return tid, base, ours, theirs


def test_clean_merge_writes_one_checkpoint_with_both_changes(store) -> None:
    tid, base, ours, theirs = _fork(store)
    mid = store.merge(ours, theirs)
    m = store.get_checkpoint(mid)
    assert (m.parent_id, m.merged_from, m.stage) == (ours, theirs, "")
    assert set(m.stage_hashes) == {"detect", "track", "ocr"}
    assert dict(m.config_overrides) == {"thr": 0.6, "model": "m"}
    assert dict(m.stats) == {"frames_extracted": 1, "ms": 2}
    assert store.load_stage_output(mid, "ocr") == {"o": 1}
    assert store.load_stage_output(mid, "track") == {"t": 1}
    assert len(store.checkpoints(tid)) == 5
    # merging theirs (or anything it derives from) again is a no-op; the other way round is
    # a fast-forward
    assert store.merge(mid, theirs) == mid
    assert store.merge(mid, base) == mid
    assert store.merge(theirs, mid) == mid
    assert store.merge(ours, ours) == ours
    assert len(store.checkpoints(tid)) == 5


def test_a_repeated_merge_reads_no_tags(store) -> None:
    """Finding the earlier merge asks whether those checkpoints were deleted, and only
    that: no tag of the store is read on the way (a store may hold many)."""
    from localckpt.sync import CountingCatalog

    _, _, ours, theirs = _fork(store)
    store.tag(ours, "keep")
    mid = store.merge(ours, theirs)
    counting = CountingCatalog(store.catalog)
    inner_tags = type(store.catalog).tags
    reads: list[object] = []

    def tags(self, timeline_ids=None):  # the catalog's own reads of tags, counted too
        reads.append(timeline_ids)
        return inner_tags(self, timeline_ids)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(store.catalog), "tags", tags)
        again = localckpt.Store(counting, store.objects, url=store.url).merge(ours, theirs)
    assert again == mid
    assert "deleted" in counting.calls and not reads, (counting.calls, reads)


def test_merge_with_an_ancestor_writes_nothing(store) -> None:
    tid, base, ours, _ = _fork(store)
    assert store.merge(ours, base) == ours
    assert store.merge(base, ours) == ours  # fast-forward
    assert len(store.checkpoints(tid)) == 4


def test_conflict_lists_every_conflict_and_writes_nothing(store) -> None:
    tid, base, ours, _ = _fork(store)
    other = store.save_stage_output(tid, base, "track", {"t": 2}, {"thr": 0.7}, {"ms": 3})
    with pytest.raises(MergeConflict) as info:
        store.merge(ours, other)
    kinds = {(k, key) for k, key, _, _ in info.value.conflicts}
    # ours never changed stats "ms" (it carries the base's 1), so only stage and config clash
    assert kinds == {("stage", "track"), ("config", "thr")}
    assert ("config", "thr", 0.6, 0.7) in info.value.conflicts
    assert "track" in str(info.value) and "thr" in str(info.value)
    assert isinstance(info.value, localckpt.ConflictError)
    assert len(store.checkpoints(tid)) == 5

    kept = store.get_checkpoint(store.merge(ours, other, strategy="ours"))
    assert kept.config_overrides["thr"] == 0.6 and kept.stats["ms"] == 3
    assert kept.stage_hashes["track"] == store.get_checkpoint(ours).stage_hashes["track"]
    taken = store.get_checkpoint(store.merge(ours, other, strategy="theirs"))
    assert taken.config_overrides["thr"] == 0.7
    assert taken.stage_hashes["track"] == store.get_checkpoint(other).stage_hashes["track"]
    # resolved once with "ours": merging the same theirs again is a no-op, not a new conflict
    assert store.merge(kept.id, other) == kept.id


def test_resolver_function_sees_outputs_and_may_delete(store) -> None:
    tid, base, ours, _ = _fork(store)
    other = store.save_stage_output(tid, base, "track", {"t": 2}, {"thr": 0.7})
    seen = []

    def resolver(kind, key, b, o, t):
        seen.append((kind, key, b, o, t))
        if kind == "stage":
            return {"t": o["t"] + t["t"]}
        return MISSING

    mid = store.merge(ours, other, strategy=resolver)
    assert sorted(seen) == [("config", "thr", 0.5, 0.6, 0.7),
                            ("stage", "track", MISSING, {"t": 1}, {"t": 2})]
    assert store.load_stage_output(mid, "track") == {"t": 3}
    assert "thr" not in store.get_checkpoint(mid).config_overrides
    # the deletion is a change: merged back against a side that kept thr, it wins cleanly
    again = store.get_checkpoint(store.merge(other, mid))
    assert "thr" not in again.config_overrides


def test_resolver_errors_write_nothing(store) -> None:
    tid, base, ours, _ = _fork(store)
    other = store.save_stage_output(tid, base, "track", {"t": 2})
    with pytest.raises(InvalidInputError):
        store.merge(ours, other, strategy=lambda *a: "not a dict")
    with pytest.raises(ZeroDivisionError):
        store.merge(ours, other, strategy=lambda *a: 1 / 0)
    assert len(store.checkpoints(tid)) == 5


def test_merge_rejects_bad_input(store) -> None:
    tid, _, ours, theirs = _fork(store)
    elsewhere = store.save_stage_output(_timeline(store), None, "detect", {"n": 1})
    with pytest.raises(InvalidInputError, match="one timeline"):
        store.merge(ours, elsewhere)
    with pytest.raises(NotFoundError):
        store.merge(ours, "no-such-id")
    with pytest.raises(InvalidInputError, match="strategy"):
        store.merge(ours, theirs, strategy="mine")
    with pytest.raises(InvalidInputError):
        store.merge(ours, 42)  # type: ignore[arg-type]
    assert len(store.checkpoints(tid)) == 4


def test_criss_cross_merge_reports_keys_the_bases_disagree_on(store) -> None:
    tid = _timeline(store)
    a = store.save_stage_output(tid, None, "s", {"v": "a"}, {"k": "a"})
    b = store.save_stage_output(tid, None, "s", {"v": "b"}, {"k": "b"})
    x = store.merge(a, b, strategy="ours")  # k = a
    y = store.merge(b, a, strategy="ours")  # k = b
    x2 = store.save_stage_output(tid, x, "other", {"v": 1}, {"k": "x"})
    with pytest.raises(MergeConflict) as info:
        store.merge(x2, y)
    # the two bases (a and b) disagree on stage s and key k, and so do the sides
    assert {(k, key) for k, key, _, _ in info.value.conflicts} == {("stage", "s"),
                                                                     ("config", "k")}
    seen = []
    store.merge(x2, y, strategy=lambda kind, key, base, o, t: seen.append(base) or o)
    assert seen == [AMBIGUOUS, AMBIGUOUS]


def test_diff(store) -> None:
    tid, base, ours, theirs = _fork(store)
    d = store.diff(ours, theirs)
    assert isinstance(d, localckpt.Diff)
    assert (d.stages_added, d.stages_removed, d.stages_changed) == (("ocr",), ("track",), ())
    assert d.config_changed == {"model": (MISSING, "m"), "thr": (0.6, 0.5)}
    assert d.stats_changed == {"ms": (1, 2)}
    assert d.config_keys == ("model", "thr")
    text = d.render()
    assert "+ ocr" in text and "- track" in text and "~ thr: 0.6 -> 0.5" in text
    assert not store.diff(ours, ours)
    assert "no differences" in store.diff(ours, ours).render()
    redo = store.save_stage_output(tid, base, "detect", {"n": 2})
    assert store.diff(base, redo).stages_changed == ("detect",)
    with pytest.raises(NotFoundError):
        store.diff(ours, "nope")
