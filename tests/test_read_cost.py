"""Reads cost what they return: an answer about one timeline, tag or checkpoint reads that
timeline's rows, not the store's. Counted (never timed) at the engine: every statement a
read runs and the rows each returns (``engine_reads``), on each engine.

Each case asks the same question of a store of 20 timelines and of one of 80 (each
timeline: a root, a kept try with a tag, a pruned try, an untagged tag; and a quarter
more timelines deleted): the statements must be the same and the rows may differ by a
few sums rows only (PostgreSQL spreads a timeline's sums over 16 shards, so how many a
timeline has depends on its digests). Before, a tag name, a reference that could be one,
``deleted(..., "tag")`` and the short id of a timeline each read every tag or every
timeline of the store (rows grew by 2 or 1 a timeline: 120 or 60 here).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from engine_reads import Reads, counting, counting_class
from sql_records import ENGINES, make_output, opener

import localckpt
from localckpt.catalog import Batch
from localckpt.cli.main import main
from localckpt.ids import new_id
from localckpt.objects import Objects
from localckpt.records import utcnow
from localckpt.store import Store
from localckpt.types import Checkpoint, Tag, Timeline, Tombstone
from localckpt.visibility import Visibility

SMALL, LARGE = 20, 80
#: rows two stores may differ by where they read the same timelines (sums shards)
SLACK = 8


class Made(NamedTuple):
    """One timeline of the store, with the names a question uses."""

    timeline: str
    root: str
    kept: str
    pruned: str
    best: Tag  # on kept
    gone: Tag  # untagged


#: an output every timeline's kept try has (an empty result): each try owns it
SHARED, SHARED_DATA = make_output({"frames": []})


def _fill(catalog: Any, n: int) -> list[Made]:
    """n timelines of rows (no frames: none of these reads opens one), in one commit."""
    timelines, checkpoints, tags, tombstones, made = [], [], [], [], []
    for i in range(n):
        tid, root, kept, pruned = new_id(), new_id(), new_id(), new_id()
        timelines.append(Timeline(tid, f"v{i}.mp4", "p", 2.0, None, root, 1, utcnow()))
        checkpoints += [
            Checkpoint(root, tid, None, {}, {}, {}, False, "", utcnow()),
            Checkpoint(kept, tid, root, {"s": SHARED}, {}, {"i": i}, True, "try", utcnow(),
                       stage="s"),
            Checkpoint(pruned, tid, root, {}, {}, {"i": -i}, True, "try", utcnow(), stage="s"),
        ]
        best = Tag(new_id(), f"best-{i}", kept, tid, utcnow())
        gone = Tag(new_id(), f"gone-{i}", kept, tid, utcnow())
        tags += [best, gone]
        tombstones += [Tombstone(new_id(), pruned, "checkpoint", tid, utcnow()),
                       Tombstone(new_id(), gone.id, "tag", tid, utcnow())]
        made.append(Made(tid, root, kept, pruned, best, gone))
    for i in range(n // 4):
        tid, root = new_id(), new_id()
        timelines.append(Timeline(tid, f"d{i}.mp4", "p", 2.0, None, root, 1, utcnow()))
        checkpoints.append(Checkpoint(root, tid, None, {}, {}, {}, False, "", utcnow()))
        tombstones.append(Tombstone(new_id(), tid, "timeline", tid, utcnow()))
    catalog.commit(Batch(timelines=timelines, checkpoints=checkpoints, tags=tags,
                         tombstones=tombstones, outputs={SHARED: SHARED_DATA}))
    return made


class Sized(NamedTuple):
    store: Store
    made: list[Made]


@pytest.fixture(params=ENGINES)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> dict[int, Sized]:
    out = {}
    for n in (SMALL, LARGE):
        catalog = opener(str(request.param), request, tmp_path, f"c{n}")()
        store = Store(catalog, Objects.from_url(f"memory://read-cost-{new_id()}"))
        out[n] = Sized(store, _fill(catalog, n))
    return out


Read = Callable[[Store, Made], Any]


def _cost(sized: Sized, read: Read) -> tuple[Reads, Any]:
    """What read reads of a timeline in the middle of the store, as a new process would
    (nothing remembered)."""
    store = sized.store
    one = sized.made[len(sized.made) // 2]
    store.catalog.forget()
    store.visibility = Visibility(store.catalog)
    with counting(store.catalog.engine) as reads:
        answer = read(store, one)
    return reads, answer


def _same_cost(stores: dict[int, Sized], read: Read) -> Reads:
    small, _ = _cost(stores[SMALL], read)
    large, _ = _cost(stores[LARGE], read)
    assert len(large.statements) == len(small.statements), (small, large)
    assert large.rows <= small.rows + SLACK, (
        f"{large.rows} rows at {LARGE} timelines, {small.rows} at {SMALL}: it reads the "
        f"whole store ({large.largest()})")
    return large


# -- tags by name, and references that may be tags ------------------------------------------


def test_a_tag_name_is_resolved_from_its_own_rows(stores: dict[int, Sized]) -> None:
    def read(s: Store, m: Made) -> None:
        assert s.tag_target(m.best.name) == m.kept
        assert s.tag_target(m.gone.name) is None

    large = _same_cost(stores, read)
    assert large.rows <= 30, large


@pytest.mark.parametrize("how", ["checkpoint by tag", "timeline by tag",
                                 "checkpoint by short id", "timeline by short id"])
def test_a_reference_reads_what_it_names(stores: dict[int, Sized], how: str) -> None:
    """A reference that could be a tag name (a short id could: both are short words)
    asks for the tag first: that read was of every tag."""
    def read(s: Store, m: Made) -> None:
        if how == "checkpoint by tag":
            assert s.get_checkpoint(m.best.name).id == m.kept
        elif how == "timeline by tag":
            assert s.get_timeline(m.best.name).id == m.timeline
        elif how == "checkpoint by short id":
            assert s.get_checkpoint(shorts[m.kept]).id == m.kept
        else:
            assert s.get_timeline(shorts[m.timeline]).id == m.timeline

    shorts: dict[str, str] = {}
    for sized in stores.values():
        one = sized.made[len(sized.made) // 2]
        shorts[one.kept] = sized.store.short_id(one.kept)
        shorts[one.timeline] = sized.store.short_id(one.timeline, "timeline")
    _same_cost(stores, read)


def test_tagging_and_untagging_read_the_name_only(stores: dict[int, Sized]) -> None:
    def read(s: Store, m: Made) -> None:
        name = f"new-{new_id()[-8:]}"
        assert s.tag(m.kept, name).checkpoint_id == m.kept
        assert s.tag(m.root, m.best.name, force=True).checkpoint_id == m.root  # moved
        assert s.untag(name).checkpoint_id == m.kept
        assert s.tag_target(m.best.name) == m.root

    _same_cost(stores, read)


# -- deleted(), short ids, children ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tag", None])
def test_whether_a_tag_is_deleted_reads_its_timeline_only(stores: dict[int, Sized],
                                                          kind: str | None) -> None:
    def read(s: Store, m: Made) -> None:
        ids = [m.best.id, m.gone.id, m.kept, m.pruned, new_id()]
        want = {m.gone.id} if kind == "tag" else {m.gone.id, m.pruned}
        assert s.catalog.deleted(ids, kind) == want

    _same_cost(stores, read)


def test_the_deletions_targeting_ids_read_their_timelines_only(
        stores: dict[int, Sized]) -> None:
    """What a transfer asks before it writes checkpoints and tags (a deleted id never
    comes back, in any timeline): it read and checked every tombstone of the store."""
    def read(s: Store, m: Made) -> None:
        found = s.catalog.tombstones_targeting([m.pruned, m.gone.id, m.kept, new_id()])
        assert sorted(x.target_id for x in found) == sorted([m.pruned, m.gone.id])

    _same_cost(stores, read)


def test_the_records_of_some_ids_are_read_by_id(stores: dict[int, Sized]) -> None:
    """What a transfer whose outputs need several commits asks before the first: the
    destination's tombstones and tags with the ids it brings (it read every one)."""
    def read(s: Store, m: Made) -> None:
        tags = s.catalog.with_ids("tag", [m.best.id, m.gone.id, new_id()])
        assert [g.id for g in tags] == sorted([m.best.id, m.gone.id])
        mine = s.catalog.tombstones_targeting([m.pruned])
        assert s.catalog.with_ids("tombstone", [x.id for x in mine]) == mine

    _same_cost(stores, read)


def test_a_tree_reads_its_marks_rows_and_sums(stores: dict[int, Sized]) -> None:
    """Store.checkpoints read the timeline's row too, to tell a missing timeline from
    an empty tree; a live timeline's tree has its root, so only an empty answer asks."""
    def read(s: Store, m: Made) -> None:
        assert {c.id for c in s.checkpoints(m.timeline)} == {m.root, m.kept}

    large = _same_cost(stores, read)
    assert not [q for q, _ in large.statements if "FROM timelines" in q], large.statements
    assert len(large.statements) == 4, large.statements  # two snapshots: marks, tree


def test_the_short_id_of_a_timeline_reads_its_neighbours(stores: dict[int, Sized]) -> None:
    """Two index seeks (SQLite, PostgreSQL), not every timeline's tail; DuckDB's indexes
    answer no range, so there the tails are one ordered read (cheaper than its scans)."""
    engine = stores[SMALL].store.catalog.dialect.name

    def read(s: Store, m: Made) -> None:
        assert s.short_ids([m.timeline], "timeline") == {
            m.timeline: s.short_id(m.timeline, "timeline")}

    if engine == "duckdb":
        for sized in stores.values():
            reads, _ = _cost(sized, lambda s, m: s.short_ids([m.timeline], "timeline"))
            assert len(reads.statements) == 1
        return
    _same_cost(stores, read)


def test_the_first_children_of_a_process_are_one_read(stores: dict[int, Sized]) -> None:
    """The first children() in a timeline checks its every row (a child whose parent
    link is damaged names no parent); when the catalog has checked nothing yet that is
    its only read: one snapshot of the timeline's rows and sums."""
    sized = stores[SMALL]
    catalog = sized.store.catalog
    one = sized.made[3]
    catalog.forget()
    with counting(catalog.engine) as reads:
        kids = catalog.children(one.root)
    assert sorted(c.id for c in kids) == sorted([one.kept, one.pruned])
    tree, sums = len(catalog.tree(one.timeline)), catalog.dialect.sum_shards
    assert len(reads.statements) == 2 and reads.rows <= tree + sums, reads  # one snapshot
    reads.reset()
    with counting(catalog.engine) as reads:
        assert len(catalog.children(one.root)) == 2  # checked: the children and the sums
    assert len(reads.statements) == 2 and reads.rows <= 2 + sums, reads
    # a save under it changes its sums: the next children() checks it again, in one read
    # too (the parent is remembered, and this catalog wrote to its timeline)
    catalog.tree(sized.made[4].timeline)  # another timeline checked meanwhile
    sized.store.save_stage_output(one.timeline, one.root, "x", {"x": 1})
    with counting(catalog.engine) as reads:
        assert len(catalog.children(one.root)) == 3
    assert len(reads.statements) == 2 and reads.rows <= tree + 1 + sums, reads


# -- what a deletion frees -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["prune", "rm"])
def test_what_a_deletion_frees_is_asked_of_one_owner_of_a_shared_output(
        stores: dict[int, Sized], how: str) -> None:
    """An output every timeline shares is kept by any one live owner: the report asks
    one of them, not every sharing timeline's tombstones and tree. What still grows is
    the list of the output's owners (its output_refs rows: two short columns each, read
    by both garbage measures a report compares)."""
    def read(s: Store, m: Made) -> None:
        if how == "prune":
            report = s.prune(m.kept, dry_run=True)
        else:
            report = s.delete_timeline(m.timeline, dry_run=True)
        assert m.kept in report.checkpoints and report.outputs == 0  # the others keep it

    small, _ = _cost(stores[SMALL], read)
    large, _ = _cost(stores[LARGE], read)
    assert len(large.statements) == len(small.statements), (small, large)
    assert large.rows <= small.rows + 2 * (LARGE - SMALL) + SLACK, (small, large)


# -- commands -----------------------------------------------------------------------------------


def test_tree_without_a_timeline_reads_the_newest_only(tmp_path: Path) -> None:
    """`localckpt tree` with no TIMELINE shows the newest: one page of one timeline
    (and the count beside it), not a listing of every timeline."""
    from localckpt.backends.sql.sqlite import SqliteEngine

    rows = {}
    for n in (SMALL, LARGE):
        path = str(tmp_path / f"s{n}")
        with localckpt.open(path, create=True) as store:
            made = _fill(store.catalog, n)
        out, err = io.StringIO(), io.StringIO()
        with counting_class(SqliteEngine) as reads, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            assert main(["--store", path, "tree"]) == 0
        rows[n] = reads
        with localckpt.open(path) as store:
            short = store.short_id(made[-1].timeline, "timeline")
        assert out.getvalue().startswith(f"timeline {short}  v{n - 1}.mp4"), out.getvalue()
        assert f"{n} timelines in this store; using the newest, {short}" in err.getvalue()
    small, large = rows[SMALL], rows[LARGE]
    assert len(large.statements) == len(small.statements)
    assert large.rows <= small.rows + SLACK, (small, large)
