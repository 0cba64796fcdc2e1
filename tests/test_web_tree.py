"""The tree view without a browser: what is drawn of a large tree, search, and edges.

Outlines are pure (localckpt.web.outline); drawings are read back from the SVG text.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websample import big_tree

import localckpt
from localckpt.ids import id_tail, new_id
from localckpt.records import utcnow
from localckpt.types import Checkpoint
from localckpt.web import App
from localckpt.web.outline import BUDGET, DEPTH, FORCE_DEPTH, OPEN_CHILDREN, outline, search
from localckpt.web.tree import TreeState, render_tree


def chain(n: int, tid: str = "t") -> list[Checkpoint]:
    ids = [new_id() for _ in range(n)]
    return [Checkpoint(c, tid, ids[i - 1] if i else None, {}, {}, {}, False, f"step {i}",
                       utcnow(), stage="s" if i else "") for i, c in enumerate(ids)]


def star(n: int, tid: str = "t") -> list[Checkpoint]:
    root = new_id()
    return [Checkpoint(root, tid, None, {}, {}, {}, False, "", utcnow())] + [
        Checkpoint(new_id(), tid, root, {}, {}, {}, True, f"try {i}", utcnow(), stage="d")
        for i in range(n)]


def _accounted(cps: list[Checkpoint], ol: Any) -> int:
    return len(ol.drawn) + sum(h.checkpoints for h in ol.hidden.values())


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, list[str], str]]:
    store = localckpt.open(str(tmp_path_factory.mktemp("big")), create=True)
    tid, ids, tagged = big_tree(store, 5000)
    yield store, tid, ids, tagged
    store.close()


def test_a_5000_checkpoint_tree_draws_a_bounded_part_and_accounts_for_the_rest(big: Any
                                                                              ) -> None:
    store, tid, _ids, _ = big
    cps = store.checkpoints(tid)
    assert len(cps) == 5000
    ol = outline(cps)
    assert len(ol.drawn) <= BUDGET
    assert max(ol.depth_of(c) for c in ol.drawn) <= DEPTH
    assert _accounted(cps, ol) == 5000  # every checkpoint drawn or counted in a marker
    page = App(store).handle("GET", f"/t/{tid}", "localhost").body.decode()
    assert page.count('<g class="node') == len(ol.drawn)
    assert page.count('<g class="hidden"') == len(ol.hidden)
    assert "5,000 checkpoints" in page


def test_opening_and_shutting_subtrees(big: Any) -> None:
    store, tid, ids, _ = big
    cps = store.checkpoints(tid)
    root = ids[0]
    opened = outline(cps, opened={root: 0})
    assert len(opened.kids[root]) == min(OPEN_CHILDREN, 40)
    shut = outline(cps, shut=[root])
    assert shut.drawn == [root] and shut.hidden[root].checkpoints == 4999
    # the markers' links carry the state: open the root, then page its children
    state = TreeState(f"/t/{tid}")
    assert f"open={root}" in state.open(root)
    assert f"open={root}%4050" in state.open(root, 50)
    page = App(store).handle("GET", state.open(root), "localhost").body.decode()
    assert page.count('<g class="node') <= BUDGET + OPEN_CHILDREN


def test_search_finds_a_tag_a_label_and_an_id(big: Any) -> None:
    store, tid, ids, tagged = big
    cps = store.checkpoints(tid)
    tags = {tagged: ["needle"]}
    assert [m.checkpoint for m in search(cps, tags, "NEEDLE")] == [tagged]
    assert search(cps, tags, "needle")[0].why == "tag needle"
    label = next(c for c in cps if c.id == ids[1234]).scenario_label
    assert ids[1234] in [m.checkpoint for m in search(cps, tags, label)]
    assert [m.checkpoint for m in search(cps, tags, id_tail(ids[77])[:9])] == [ids[77]]
    assert [m.checkpoint for m in search(cps, tags, ids[4321])] == [ids[4321]]
    # the page draws the match and the path to it, and lists it
    page = App(store).handle("GET", f"/t/{tid}?q=needle", "localhost").body.decode()
    assert f'<g class="node scenario hit" id="n-{tagged}"' in page
    assert '<div class="hits" id="hits"><b>1 found</b>' in page
    assert page.count('<g class="node') <= BUDGET


def test_a_deep_chain_is_cut_and_a_deep_match_is_reached_by_moving_the_start() -> None:
    cps = chain(1000)
    ol = outline(cps)
    assert len(ol.drawn) == DEPTH + 1 and _accounted(cps, ol) == 1000
    deepest = cps[-1].id
    far = outline(cps, focus=[deepest])  # too deep to draw from the root: not forced
    assert deepest not in far.drawn
    near = outline(cps, start=cps[-3].id, focus=[deepest])
    assert near.drawn == [c.id for c in cps[-3:]]
    within = outline(cps, focus=[cps[FORCE_DEPTH].id])
    assert cps[FORCE_DEPTH].id in within.drawn


def test_many_siblings_are_paged_when_opened() -> None:
    cps = star(130)
    root = cps[0].id
    first = outline(cps, opened={root: 0})
    second = outline(cps, opened={root: OPEN_CHILDREN})
    assert first.kids[root] == [c.id for c in cps[1:1 + OPEN_CHILDREN]]
    assert second.kids[root] == [c.id for c in cps[1 + OPEN_CHILDREN:1 + 2 * OPEN_CHILDREN]]
    assert second.hidden[root].opened and second.hidden[root].offset == OPEN_CHILDREN
    assert second.hidden[root].after == 130 - 2 * OPEN_CHILDREN


def test_a_marker_never_stands_for_a_single_checkpoint() -> None:
    """"+1 more (1 checkpoint)" took the room of the node it hid: a lone leaf left out (by
    the count of children, the depth or the budget) is drawn instead. Two, or one with
    children of its own, or one under a node the reader shut, keep their marker."""
    from localckpt.web.outline import CHILDREN

    cps = star(CHILDREN + 1)
    one = outline(cps)
    assert one.drawn == [c.id for c in cps] and one.hidden == {}
    two = outline(star(CHILDREN + 2))
    assert (two.hidden[two.start].children, two.hidden[two.start].checkpoints) == (2, 2)
    deep = chain(DEPTH + 2)
    assert outline(deep).drawn == [c.id for c in deep] and outline(deep).hidden == {}
    deeper = chain(DEPTH + 3)
    cut = outline(deeper)
    assert len(cut.drawn) == DEPTH + 1 and cut.hidden[deeper[DEPTH].id].checkpoints == 2
    lone = star(1)
    assert outline(lone, shut=[lone[0].id]).hidden[lone[0].id].checkpoints == 1
    svg = render_tree(cps, one, {}, lambda i: i[-8:], TreeState("/t/t"))
    assert "more (" not in svg and svg.count('<g class="node') == CHILDREN + 2


# -- drawing ------------------------------------------------------------------------------

_NODE = re.compile(r'<g class="(node[^"]*|hidden)"[^>]*transform="translate\(([-0-9.e]+),'
                   r'([-0-9.e]+)\)">(?:<title>[^<]*</title>)?<rect (?:class="card" )?'
                   r'width="([0-9.e]+)" height="([0-9.e]+)"')
_MERGE = re.compile(r'<path class="edge merged" d="M([^"]+)"')


def _boxes(svg: str) -> list[tuple[float, float, float, float]]:
    return [(float(x), float(y), float(w), float(h)) for _, x, y, w, h in _NODE.findall(svg)]


def _crosses(p: tuple[float, float], q: tuple[float, float],
             box: tuple[float, float, float, float]) -> bool:
    """Whether the axis-parallel segment p-q passes through the inside of box."""
    x, y, w, h = box
    (x1, y1), (x2, y2) = p, q
    if y1 == y2:
        return y < y1 < y + h and min(x1, x2) < x + w and max(x1, x2) > x
    return x < x1 < x + w and min(y1, y2) < y + h and max(y1, y2) > y


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.booleans()),
                min_size=1, max_size=30))
def test_merge_edges_never_run_through_a_node(shape: list[tuple[int, int, bool]]) -> None:
    root = new_id()
    cps = [Checkpoint(root, "t", None, {}, {"a": 1}, {}, False, "", utcnow())]
    for parent_pick, merge_pick, merge in shape:
        parent = cps[parent_pick % len(cps)].id
        other = cps[merge_pick % len(cps)].id if merge and len(cps) > 1 else None
        cps.append(Checkpoint(new_id(), "t", parent, {}, {}, {"n": len(cps)}, False, "",
                              utcnow(), merged_from=other if other != parent else None,
                              stage="s"))
    ol = outline(cps)
    svg = render_tree(cps, ol, {}, lambda i: id_tail(i)[:8], TreeState("/t/t"))
    boxes = _boxes(svg)
    assert len(boxes) == len(ol.drawn) + len(ol.hidden)
    for d in _MERGE.findall(svg):
        pts = [tuple(float(v) for v in p.split()) for p in d.split(" L")]
        segs = list(itertools.pairwise(pts))
        for p, q in segs:
            assert p[0] == q[0] or p[1] == q[1]  # right angles only
            for box in boxes:
                assert not _crosses(p, q, box), (p, q, box)  # type: ignore[arg-type]


def test_node_lines_keep_every_root_stat_whole() -> None:
    """Each changed stat or config key is a line of its own: the root of an ingested
    video (four frame counts) shows each whole, not 'frames_ext...'."""
    stats = {"frames_decoded": 1900, "frames_extracted": 380, "frames_kept": 380,
             "frames_skipped": 0}
    root = Checkpoint(new_id(), "t", None, {}, {}, stats, False, "", utcnow())
    svg = render_tree([root], outline([root]), {}, lambda i: "abcdefgh", TreeState("/t/t"))
    texts = re.findall(r'class="stats">([^<]*)<', svg)
    assert texts == [f"stats {k}={v}" for k, v in sorted(stats.items())]
    more = Checkpoint(new_id(), "t", None, {}, {}, {**stats, "x": 1}, False, "", utcnow())
    svg = render_tree([more], outline([more]), {}, lambda i: "abcdefgh", TreeState("/t/t"))
    assert re.findall(r'class="stats">([^<]*)<', svg)[-1] == "stats: 1 more (see tooltip)"
