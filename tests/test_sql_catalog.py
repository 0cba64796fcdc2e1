"""The relational catalog (``localckpt.backends.sql``) on each of its engines: SQLite,
PostgreSQL and DuckDB, opened with ``sqlite_catalog``, ``postgres_catalog`` and
``duckdb_catalog`` (the Store API on each is the conformance suite's).

- commits: exact round trips, idempotent, all or nothing, children before parents;
- reads: a tree or a lineage is one statement; unknown ids read as nothing;
- values the columns would change (NUL, -0.0, 1e16, huge integers) read back exactly,
  and outputs as the exact bytes of their hash;
- the parents a save reads are remembered (``SqlCatalog._peeked``): no extra statement,
  never another catalog's record, never a refused or purged one;
- damage: a row changed behind the catalog's back (or missing from a tree) is a
  CorruptDataError naming the table and the id, on every read path, and
  ``storage_problems`` names it;
- purge: what tombstones delete goes, shared outputs stay, outputs no checkpoint used go
  at the second purge; the per-timeline sums stay right;
- schema versions: a newer one is refused.

PostgreSQL-only behaviour (legacy schema versions, the pool, the server going away, the
foreign keys, the ``stage_outputs`` view) is in ``test_sql_postgres.py``.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sql_records import (
    ENGINES,
    Opener,
    child,
    make_output,
    make_timeline,
    opener,
    raw,
    rows,
)

from localckpt import Store
from localckpt.backends.sql import SqlCatalog
from localckpt.backends.sql.schema import LATEST_VERSION, SUMS_OF, TAG_NAMES
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.errors import (
    ConflictError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    SchemaVersionError,
)
from localckpt.gc import collect_garbage
from localckpt.ids import new_id
from localckpt.objects import Objects
from localckpt.records import utcnow
from localckpt.types import Checkpoint, Tag, Tombstone

FRAME = np.zeros((4, 4, 3), np.uint8)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_catalog(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    return opener(engine, request, tmp_path)


@pytest.fixture
def catalog(open_catalog: Opener) -> SqlCatalog:
    return open_catalog()


def _count(cat: SqlCatalog, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call the catalog makes to its engine from now on (each is one statement, or
    one snapshot / transaction: one round trip on PostgreSQL); calls the engine makes to
    itself (a write runs in a transaction) are not counted."""
    calls: list[str] = []
    depth = threading.local()
    for name in ("query", "snapshot", "write", "transaction"):
        real = getattr(cat.engine, name)

        def counted(*args: Any, _real: Callable[..., Any] = real, _name: str = name,
                    **kw: Any) -> Any:
            level = getattr(depth, "n", 0)
            if level == 0:
                calls.append(_name)
            depth.n = level + 1
            try:
                return _real(*args, **kw)
            finally:
                depth.n = level

        monkeypatch.setattr(cat.engine, name, counted)
    return calls


# -- commit -------------------------------------------------------------------------------


def test_commit_round_trips_records_exactly_and_is_idempotent(catalog: SqlCatalog) -> None:
    timeline, root = make_timeline()
    h, data = make_output({"boxes": [[1, 2, 3, 4]], "score": 0.93})
    ckpt = child(root, "detect", h, config_overrides={"thr": 0.5}, stats={"n": 1})
    ckpt = attrs.evolve(ckpt, created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    gone = child(root, "detect", h)
    tomb = Tombstone(new_id(), gone.id, "checkpoint", timeline.id, utcnow())
    stray = Tombstone(new_id(), new_id(), "checkpoint", timeline.id, utcnow())  # no record
    tag = Tag(new_id(), "best", ckpt.id, timeline.id, utcnow())
    batch = Batch([timeline], [root, ckpt, gone], {h: data}, [tomb, stray], [tag])

    catalog.commit(batch)
    catalog.commit(batch)  # same content again: skipped, no error

    assert catalog.timelines() == [timeline]
    assert catalog.timelines([timeline.id, "unknown"]) == [timeline]
    got = catalog.checkpoints([ckpt.id])
    assert got == [ckpt]
    assert got[0].created_at == ckpt.created_at
    assert got[0].created_at.utcoffset() == timedelta(0)
    assert got[0].created_at.microsecond == 678901
    assert catalog.outputs([h]) == {h: data}
    assert dict(got[0].stage_outputs) == {"detect": json.loads(data)}
    tombs = sorted([tomb, stray], key=lambda x: x.id)
    assert sorted(catalog.tombstones(None), key=lambda x: x.id) == tombs
    assert sorted(catalog.tombstones([timeline.id]), key=lambda x: x.id) == tombs
    assert catalog.tags(None) == [tag] == catalog.tags([timeline.id])
    # a tombstone deletes a record of its kind and timeline only (Catalog.deleted)
    assert catalog.deleted([gone.id, stray.target_id, ckpt.id]) == {gone.id}
    counts = [rows(catalog, f"SELECT count(*) FROM {{s}}{t}")[0][0]
              for t in ("timelines", "checkpoints", "outputs", "tombstones", "tags")]
    assert counts == [1, 3, 1, 2, 1]
    assert catalog.storage_problems() == []


def test_conflicting_record_raises_and_writes_nothing(catalog: SqlCatalog) -> None:
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    other_timeline, other_root = make_timeline()
    h, data = make_output({"new": True})
    new = child(root, "detect", h)
    changed_root = attrs.evolve(root, stats={"frames_extracted": 99})

    batch = Batch([other_timeline], [other_root, new, changed_root], {h: data})
    with pytest.raises(ConflictError, match=root.id):
        catalog.commit(batch)

    assert catalog.timelines() == [timeline]
    assert catalog.checkpoints([new.id, other_root.id]) == []
    assert catalog.missing_outputs([h]) == {h}
    assert catalog.checkpoints([root.id]) == [root]
    with pytest.raises(ConflictError, match=timeline.id):
        catalog.commit(Batch([attrs.evolve(timeline, frame_count=7)]))
    tomb = Tombstone(new_id(), root.id, "checkpoint", timeline.id, utcnow())
    catalog.commit(Batch(tombstones=[tomb]))
    with pytest.raises(ConflictError, match=tomb.id):
        catalog.commit(Batch(tombstones=[attrs.evolve(tomb, kind="tag")]))
    assert rows(catalog, "SELECT count(*) FROM {s}checkpoints")[0][0] == 1
    assert catalog.storage_problems() == []  # the sums did not count what was refused


def test_two_versions_of_one_id_in_a_batch_conflict(catalog: SqlCatalog) -> None:
    timeline, root = make_timeline()
    with pytest.raises(ConflictError, match=root.id):
        catalog.commit(Batch([timeline], [root, attrs.evolve(root, scenario_label="x")]))
    assert catalog.timelines() == []


def test_children_may_precede_parents_in_a_batch(catalog: SqlCatalog) -> None:
    timeline, root = make_timeline()
    h, data = make_output([1])
    a = child(root, "a", h)
    b = child(a, "b", h)
    catalog.commit(Batch([timeline], [b, a, root], {h: data}))
    assert [c.id for c in catalog.lineage(b.id)] == [root.id, a.id, b.id]


def test_a_checkpoint_whose_parent_is_not_stored_is_refused(catalog: SqlCatalog) -> None:
    """Every engine refuses it (PostgreSQL's foreign key, the others' lookup of the
    parents a batch does not hold), and writes nothing of the batch."""
    timeline, root = make_timeline()
    orphan = attrs.evolve(root, id=new_id(), parent_id=new_id())
    with pytest.raises(InvalidInputError, match=str(orphan.parent_id)):
        catalog.commit(Batch([timeline], [root, orphan]))
    assert catalog.timelines() == []
    catalog.commit(Batch([timeline], [root]))
    with pytest.raises(InvalidInputError, match=str(orphan.parent_id)):
        catalog.commit(Batch([], [orphan]))
    assert [c.id for c in catalog.tree(timeline.id)] == [root.id]


def test_unknown_ids_read_as_nothing(catalog: SqlCatalog) -> None:
    assert catalog.timelines(["nope"]) == []
    assert catalog.timelines([]) == []
    assert catalog.checkpoints(["nope"]) == []
    assert catalog.peek_checkpoint("nope") is None
    assert catalog.children("nope") == []
    assert catalog.lineage("nope") == []
    assert catalog.tree("nope") == []
    assert catalog.outputs(["nope"]) == {}
    assert catalog.missing_outputs(["nope"]) == {"nope"}
    assert catalog.tombstones(["nope"]) == [] and catalog.tags(["nope"]) == []
    assert catalog.deleted(["nope"]) == set()
    assert catalog.find_ids("checkpoint", "nope") == []
    assert catalog.timeline_page(0, 10) == ([], {}, 0)
    catalog.commit(Batch())


def test_odd_ids_in_reads_are_nothing_or_invalid_input(catalog: SqlCatalog) -> None:
    """Reads take any str: an id that cannot exist is absent or InvalidInputError, never
    a driver's exception; writes refuse such ids before anything is written."""
    odd = ["x\ud800", "a'; DROP TABLE checkpoints; --", "%s", "?", "\x00", "é" * 300, ""]
    reads: list[Callable[[str], Any]] = [
        lambda i: catalog.timelines([i]), lambda i: catalog.checkpoints([i]),
        catalog.children, catalog.lineage, catalog.tree, lambda i: catalog.outputs([i]),
        lambda i: catalog.deleted([i]), lambda i: catalog.tags([i]),
        lambda i: catalog.tombstones([i]), lambda i: catalog.find_ids("checkpoint", i),
        lambda i: catalog.find_short("checkpoint", i), catalog.peek_checkpoint,
    ]
    for bad in odd:
        for read in reads:
            try:
                assert not read(bad)
            except InvalidInputError:
                pass
    timeline, _ = make_timeline()
    with pytest.raises(InvalidInputError):
        catalog.commit(Batch([attrs.evolve(timeline, id="x\ud800")]))
    assert rows(catalog, "SELECT count(*) FROM {s}timelines")[0][0] == 0


# -- reads --------------------------------------------------------------------------------


def test_lineage_and_tree_of_a_1000_deep_chain_are_one_statement_each(
        catalog: SqlCatalog, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    timeline, root = make_timeline()
    h, data = make_output({"step": 1})
    chain = [root]
    depth = 300 if engine == "duckdb" else 1000  # DuckDB inserts row by row: slow here
    for i in range(depth):
        chain.append(child(chain[-1], f"s{i % 7}", h))
    catalog.commit(Batch([timeline], chain, {h: data}))

    calls = _count(catalog, monkeypatch)
    lineage = catalog.lineage(chain[-1].id)
    assert calls == ["query"]
    tree = catalog.tree(timeline.id)
    assert calls == ["query", "snapshot"]  # the rows and their sums, in one snapshot
    monkeypatch.undo()

    assert lineage == chain  # root first
    assert tree == sorted(chain, key=lambda c: c.id)
    assert catalog.children(chain[10].id) == [chain[11]]
    # stage outputs load lazily, through the catalog, on first access
    assert lineage[-1].stage_outputs["s0"] == {"step": 1}


def test_a_lineage_stays_in_its_timeline(catalog: SqlCatalog) -> None:
    """A lineage follows parents through the rows of its checkpoint's timeline (the
    table's key): a parent id that names a checkpoint of another timeline (which no
    store writes: a damaged or forged catalog) is a missing parent, not a lineage that
    runs through the other tree."""
    one, root_one = make_timeline()
    two, root_two = make_timeline()
    h, data = make_output({"v": 1})
    stray = attrs.evolve(child(root_one, "s", h), timeline_id=two.id)
    below = child(stray, "s", h)
    catalog.commit(Batch([one, two], [root_one, root_two, stray, below], {h: data}))
    with pytest.raises(CorruptDataError, match=f"{root_one.id}.* is missing from its chain"):
        catalog.lineage(below.id)


def test_records_returned_are_the_callers_to_change(catalog: SqlCatalog) -> None:
    timeline, root = make_timeline()
    h, data = make_output({"v": 1})
    ckpt = child(root, "detect", h, config_overrides={"nested": {"list": [1, 2]}})
    catalog.commit(Batch([timeline], [root, ckpt], {h: data}))
    got = catalog.checkpoints([ckpt.id])[0]
    got.config_overrides["nested"]["list"].append(3)
    got.stats["x"] = 1  # type: ignore[index]
    assert catalog.checkpoints([ckpt.id]) == [ckpt]
    assert catalog.tree(timeline.id)[1] == ckpt or catalog.tree(timeline.id)[0] == ckpt


def test_timeline_page_counts_stored_checkpoints_of_live_timelines(catalog: SqlCatalog
                                                                   ) -> None:
    made = []
    h, data = make_output({"p": 1})
    for n in range(5):
        timeline, root = make_timeline()
        kids = [root]
        for _ in range(n):
            kids.append(child(kids[-1], "s", h))
        catalog.commit(Batch([timeline], kids, {h: data}))
        made.append(timeline)
    gone = made[2]
    catalog.commit(Batch(tombstones=[Tombstone(new_id(), gone.id, "timeline", gone.id,
                                               utcnow())]))
    page, counts, total = catalog.timeline_page(1, 2)
    live = [t for t in made if t.id != gone.id]
    assert page == live[1:3] and total == 4
    assert counts == {t.id: made.index(t) + 1 for t in live[1:3]}
    newest, counts, total = catalog.timeline_page(0, 3, newest_first=True)
    assert newest == live[::-1][:3] and total == 4
    assert counts == {t.id: made.index(t) + 1 for t in newest}


# -- values the columns would change --------------------------------------------------------

TRICKY_VALUES: list[Any] = [
    {"floats": [0.1, 1.5, -2.25, 1e-07, 1.2345e-05, 123.0, 5e-324, 2.5e-300]},
    {"exponent floats": [1e16, 1.5e16, 1e300, 1.7976931348623157e308, -1e22]},
    {"zero": [0.0, -0.0, 0]},
    {"big ints": [2**63, -(2**63) - 1, 10**30, -(10**40), 2**200]},
    {"unicode": "日本語 🎞 Ünïcödé \u2028\u2029 \u00a0", "ключ": "значение", "🙂": ["é"]},
    {"controls": "tab\there\nnewline \x01 \x1f quote\" backslash\\"},
    {"nul": "before\x00after"},
    {"nul\x00key": 1},
    {"literal backslash-u": "\\u0000 is not a NUL"},
    {"nested": {"a": {"b": {"c": [1, [2, [3, {"d": None}]]]}}}, "e": [], "f": {}},
    {"mixed": [True, False, None, "", " ", 0, -1]},
    [1, "two", 3.0, None],
    "just a string",
    42,
    -0.0,
    1e100,
    None,
]


def test_outputs_return_canonical_bytes_that_match_their_hash(catalog: SqlCatalog) -> None:
    outputs = dict(make_output(v) for v in TRICKY_VALUES)
    catalog.commit(Batch(outputs=outputs))
    got = catalog.outputs(outputs)
    assert got == outputs
    for h, data in got.items():
        assert content_hash(data) == h
    stored = {bytes(r[0]) for r in rows(catalog, "SELECT data FROM {s}outputs")}
    assert stored == set(outputs.values())  # the stored bytes are the canonical bytes


def test_a_tag_name_with_nul_is_refused_whole(catalog: SqlCatalog) -> None:
    """A tag name no column can hold (NUL: PostgreSQL's text, and tags keep no exact
    column) is refused at the commit, as Store.tag refuses it; found by the slow lockstep
    machine, where PostgreSQL read such a tag back as a damaged row."""
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    bad = Tag(new_id(), "a\x00b", root.id, timeline.id, utcnow())
    good = Tag(new_id(), "ok", root.id, timeline.id, utcnow())
    with pytest.raises(InvalidInputError, match="NUL"):
        catalog.commit(Batch(tags=[good, bad]))
    assert catalog.tags(None) == []


def test_records_keep_values_the_columns_would_change(catalog: SqlCatalog) -> None:
    """NUL in text, numbers JSONB normalises, and integers beyond a double (which orjson
    reads as floats, or refuses) read back exactly."""
    timeline, root = make_timeline()
    timeline = attrs.evolve(timeline, source_video="a\x00b.mp4", source_asset_id="\x00",
                            source_info={"fps": 1e16, "z": -0.0, "big": 2**70,
                                         "huge": -(10**400)})
    h, data = make_output({"ok": 1})
    odd = attrs.evolve(
        child(root, "st\x00age", h),
        scenario_label="try \x00 1",
        config_overrides={"thr": -0.0, "big": 1e16, "k\x00": ["\x00", 1e300], "i": 2**64},
        stats={"frames_extracted": 3, "ratio": 0.5, "huge": 10**400},
    )
    plain = child(root, "detect", h, stats={"x": 1.0})
    catalog.commit(Batch([timeline], [root, odd, plain], {h: data}))
    catalog.commit(Batch([timeline], [root, odd, plain], {h: data}))  # still idempotent

    assert catalog.timelines() == [timeline]
    assert canonical_bytes(dict(catalog.timelines()[0].source_info)) == canonical_bytes(
        dict(timeline.source_info))
    got = {c.id: c for c in catalog.tree(timeline.id)}
    assert got[odd.id] == odd and got[plain.id] == plain
    for field in ("stage_hashes", "config_overrides", "stats"):
        assert canonical_bytes(getattr(got[odd.id], field)) == canonical_bytes(getattr(odd, field))
    assert got[odd.id].stage_outputs["st\x00age"] == {"ok": 1}

    # equal as the value types define it (-0.0 == 0.0, 1e16 == 10**16): skipped, like
    # every backend does; the stored record keeps its own values
    equal = attrs.evolve(odd, config_overrides={**odd.config_overrides, "thr": 0.0,
                                                "big": 10**16})
    assert equal == odd
    catalog.commit(Batch([], [equal, child(plain, "more", h)], {h: data}))
    (kept,) = catalog.checkpoints([odd.id])
    assert canonical_bytes(kept.config_overrides) == canonical_bytes(odd.config_overrides)
    assert len(catalog.children(plain.id)) == 1
    # really other content: ConflictError, and nothing of the batch written
    other = attrs.evolve(odd, config_overrides={**odd.config_overrides, "k\x00": []})
    extra = child(plain, "extra", h)
    with pytest.raises(ConflictError, match=odd.id):
        catalog.commit(Batch([], [other, extra]))
    assert catalog.checkpoints([extra.id]) == []
    assert catalog.timelines([timeline.id])[0].source_video == "a\x00b.mp4"
    assert catalog.storage_problems() == []


def test_lazy_outputs_equal_parsed_canonical_bytes(catalog: SqlCatalog) -> None:
    timeline, root = make_timeline()
    outputs = dict(make_output(v) for v in TRICKY_VALUES)
    ckpt = attrs.evolve(
        root, id=new_id(), parent_id=root.id,
        stage_hashes={f"s{i}": h for i, h in enumerate(outputs)},
    )
    catalog.commit(Batch([timeline], [root, ckpt], outputs))
    (got,) = catalog.checkpoints([ckpt.id])
    for stage, h in got.stage_hashes.items():
        value = got.stage_outputs[stage]
        assert canonical_bytes(value) == outputs[h], stage


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=5), inner,
                      max_size=4),
    max_leaves=20,
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(JSON, min_size=1, max_size=4),
       extra=st.dictionaries(st.text(max_size=4), JSON, max_size=3))
def test_any_json_value_round_trips(catalog: SqlCatalog, values: list[Any],
                                    extra: dict[str, Any]) -> None:
    outputs = dict(make_output(v) for v in values)
    timeline, root = make_timeline()
    try:
        root = attrs.evolve(root, stats={**root.stats, **extra}, config_overrides=extra)
    except InvalidInputError:
        return
    try:
        batch = Batch([timeline], [root], outputs)
    except InvalidInputError:  # keys the schema refuses (lone surrogates)
        return
    catalog.commit(batch)
    assert catalog.outputs(outputs) == outputs
    (got,) = catalog.checkpoints([root.id])
    assert canonical_bytes(dict(got.stats)) == canonical_bytes(dict(root.stats))
    assert canonical_bytes(dict(got.config_overrides)) == canonical_bytes(extra)


# -- the parents a save reads (SqlCatalog._peeked) ---------------------------------------------


def _store(cat: SqlCatalog, tmp_path: Path) -> Store:
    return Store(cat, Objects.from_url(str(tmp_path / f"objects-{new_id()}")))


def test_a_save_reads_its_parent_and_timeline_without_a_statement(
        catalog: SqlCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(catalog, tmp_path)
    timeline = store.create_timeline("clip.mp4", "default", [FRAME])
    first = store.save_stage_output(timeline.id, timeline.root_checkpoint_id, "detect",
                                    {"n": 1})
    calls = _count(catalog, monkeypatch)
    second = store.save_stage_output(timeline.id, first, "track", {"n": 2})
    third = store.save_stage_output(timeline.id, second, "ocr", {"n": 3})
    assert calls == ["write", "write"], calls  # one commit each; parents remembered
    monkeypatch.undo()
    assert [c.id for c in store.lineage(third)] == [
        timeline.root_checkpoint_id, first, second, third]
    assert store.load_stage_output(third, "detect") == {"n": 1}


def test_remembered_parents_never_answer_for_another_catalog(
        engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    a = opener(engine, request, tmp_path, "a")()
    b = opener(engine, request, tmp_path, "b")()
    timeline, root = make_timeline()
    a.commit(Batch([timeline], [root]))
    assert a.peek_checkpoint(root.id) == root
    assert b.peek_checkpoint(root.id) is None
    assert b.checkpoints([root.id]) == [] and b.timelines([timeline.id]) == []
    assert b.children(root.id) == [] and b.lineage(root.id) == []
    # same ids in the other database with other content: each catalog answers its own
    changed_t = attrs.evolve(timeline, frame_count=99)
    changed_root = attrs.evolve(root, stats={"frames_extracted": 99})
    b.commit(Batch([changed_t], [changed_root]))
    assert b.peek_checkpoint(root.id) == changed_root
    assert a.peek_checkpoint(root.id) == root
    assert a.timelines([timeline.id]) == [timeline]
    assert b.timelines([timeline.id]) == [changed_t]


def test_remembered_parents_hold_no_refused_and_no_purged_checkpoint(
        catalog: SqlCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    h, data = make_output({"v": 2})
    new = child(root, "detect", h)
    with pytest.raises(ConflictError):
        catalog.commit(Batch([], [new, attrs.evolve(root, scenario_label="other")], {h: data}))
    assert catalog.peek_checkpoint(new.id) is None
    assert new.id not in catalog._peeked

    catalog.commit(Batch([], [new], {h: data}))
    assert new.id in catalog._peeked
    calls = _count(catalog, monkeypatch)
    assert catalog.peek_checkpoint(new.id) == new
    assert calls == []  # remembered from its commit
    monkeypatch.undo()
    catalog.commit(Batch(tombstones=[Tombstone(new_id(), new.id, "checkpoint", timeline.id,
                                               utcnow())]))
    assert catalog.purge_deleted() >= 1
    assert catalog.peek_checkpoint(new.id) is None  # forgotten with the purge
    assert catalog.peek_checkpoint(root.id) == root


def test_remembered_parents_are_bounded(catalog: SqlCatalog,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from localckpt.backends.sql import catalog as module

    assert module._PEEKED >= 256  # enough for the parents of a few busy writers
    _PEEKED = 40
    monkeypatch.setattr(module, "_PEEKED", _PEEKED)
    timeline, root = make_timeline()
    h, data = make_output({"v": 3})
    chain = [root]
    for _ in range(_PEEKED + 50):
        chain.append(child(chain[-1], "s", h))
    catalog.commit(Batch([timeline], chain, {h: data}))
    assert len(catalog._peeked) == _PEEKED
    assert chain[-1].id in catalog._peeked and root.id not in catalog._peeked
    assert catalog.peek_checkpoint(root.id) == root  # read, then remembered
    assert root.id in catalog._peeked


# -- the slow path of a commit: some ids stored already ----------------------------------------


def test_small_batches_compare_with_stored_rows_when_an_id_exists(
        catalog: SqlCatalog, open_catalog: Opener, engine: str) -> None:
    """A batch tries plain INSERTs first; a stored id sends it to the comparison, with
    the same outcome: equal records skipped, other content refused, nothing written."""
    timeline, root = make_timeline()
    catalog.commit(Batch([timeline], [root]))
    h, data = make_output({"v": 3})
    ckpt = child(root, "detect", h)
    catalog.commit(Batch([], [ckpt], {h: data}))
    catalog.commit(Batch([], [ckpt], {h: data}))  # stored and equal: skipped
    fresh = catalog if engine == "duckdb" else open_catalog()  # nothing remembered
    fresh.forget()
    fresh.commit(Batch([timeline], [root]))
    fresh.commit(Batch([attrs.evolve(timeline)]))
    h2, data2 = make_output({"v": 4})
    new = child(ckpt, "track", h2)
    fresh.commit(Batch([timeline], [root, ckpt, new], {h: data, h2: data2}))  # mixed
    with pytest.raises(ConflictError, match=ckpt.id):
        fresh.commit(Batch([], [attrs.evolve(ckpt, stats={"x": 1})], {h2: data2}))
    h3, data3 = make_output({"v": 5})
    with pytest.raises(ConflictError, match=timeline.id):
        fresh.commit(Batch([attrs.evolve(timeline, frame_count=9)], [], {h3: data3}))
    assert fresh.missing_outputs([h3]) == {h3}
    assert fresh.checkpoints([ckpt.id, new.id]) == sorted([ckpt, new], key=lambda c: c.id)
    assert fresh.timelines([timeline.id]) == [timeline]
    assert rows(catalog, "SELECT count(*) FROM {s}checkpoints")[0][0] == 3
    assert catalog.storage_problems() == []  # each stored row counted once in the sums


def _race(cats: list[SqlCatalog], versions: list[Checkpoint], batch: Any) -> list[str]:
    """Commit batch(version) from one thread per catalog, all released at once; return
    each thread's outcome: the version's scenario_label, or "conflict"."""
    outcomes: list[str] = []
    barrier = threading.Barrier(len(versions))

    def write(cat: SqlCatalog, version: Checkpoint) -> None:
        barrier.wait()
        try:
            cat.commit(batch(version))
            outcomes.append(version.scenario_label)
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=a) for a in zip(cats, versions, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.mark.parametrize("shape", ["long batch", "single save"])
def test_racing_commits_of_one_id_agree_or_conflict(
        catalog: SqlCatalog, open_catalog: Opener, engine: str, shape: str) -> None:
    """Writers racing on the same ids (two syncs at once): equal content all succeed,
    other content raises ConflictError for all but the version that landed first."""
    timeline, root = make_timeline()
    h, data = make_output({"race": 1})
    chain = [root]
    if shape == "long batch":
        for _ in range(150):  # long enough for the writers to overlap
            chain.append(child(chain[-1], "track", h))
    else:
        catalog.commit(Batch([timeline], [root]))
    same = child(chain[-1], "detect", h)
    versions = [attrs.evolve(same, scenario_label=f"v{i % 3}") for i in range(9)]
    # DuckDB: one process holds the file, so its threads share one catalog
    cats = [catalog if engine == "duckdb" else open_catalog() for _ in versions]
    if shape == "long batch":
        outcomes = _race(cats, versions, lambda v: Batch([timeline], [*chain, v], {h: data}))
    else:
        outcomes = _race(cats, versions, lambda v: Batch([], [v], {h: data}))
    (stored,) = catalog.checkpoints([same.id])
    assert len(outcomes) == len(versions)
    winners = [o for o in outcomes if o != "conflict"]
    assert set(winners) == {stored.scenario_label}
    assert len(winners) == sum(v.scenario_label == stored.scenario_label for v in versions)
    assert {c.checkpoints([same.id])[0].scenario_label for c in cats} == {
        stored.scenario_label}  # what each catalog remembers agrees with the database
    assert catalog.storage_problems() == []


# -- damage: rows changed behind the catalog's back -------------------------------------------


@pytest.fixture
def populated(catalog: SqlCatalog) -> dict[str, Any]:
    """A timeline with a chain of 3 and a side branch, a tag and a tombstone."""
    timeline, root = make_timeline()
    outputs = dict(make_output({"i": i, "small": 1.5e-05 * (i + 1)}) for i in range(3))
    hashes = list(outputs)
    chain = [root]
    for i, h in enumerate(hashes):
        chain.append(child(chain[-1], f"s{i}", h))
    side = child(root, "side", hashes[0])
    tag = Tag(new_id(), "best", chain[2].id, timeline.id, utcnow())
    tomb = Tombstone(new_id(), side.id, "checkpoint", timeline.id, utcnow())
    catalog.commit(Batch([timeline], [*chain, side], outputs, [tomb], [tag]))
    catalog.forget()
    return {"timeline": timeline, "chain": chain, "side": side, "tag": tag, "tomb": tomb,
            "hashes": hashes, "outputs": outputs}


def _reads(cat: SqlCatalog, p: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """Every read path of the catalog over the populated records."""
    tid = p["timeline"].id
    ids = [c.id for c in p["chain"]] + [p["side"].id]
    tip = p["chain"][-1]
    return {
        "timelines": lambda: cat.timelines(),
        "timelines by id": lambda: cat.timelines([tid]),
        "timeline page": lambda: cat.timeline_page(0, 10),
        "checkpoints": lambda: cat.checkpoints(ids),
        "peek": lambda: [cat.peek_checkpoint(i) for i in ids],
        "children": lambda: [cat.children(i) for i in ids],
        "lineage": lambda: cat.lineage(tip.id),
        "tree": lambda: cat.tree(tid),
        "outputs": lambda: cat.outputs(p["hashes"]),
        "values": lambda: cat.load_values(p["hashes"]),
        "lazy outputs": lambda: dict(cat.checkpoints([tip.id])[0].stage_outputs),
        "tombstones": lambda: cat.tombstones(None),
        "tombstones by timeline": lambda: cat.tombstones([tid]),
        "tags": lambda: cat.tags(None),
        "tags by timeline": lambda: cat.tags([tid]),
        "tags by name": lambda: cat.tags_named(p["tag"].name),
    }


#: reads checked against sums only (a count and a digest), whose errors cannot name the
#: record they miss
BY_SUMS = {"tags by name"}


TAMPERING = {
    # what is changed -> (table, the statement's SET clause, which record's id)
    "checkpoint": ("checkpoints", "scenario_label = 'tampered'", "tip"),
    "checkpoint id": ("checkpoints", "parent_id = NULL", "tip"),
    "root": ("checkpoints", "is_scenario = NOT is_scenario", "root"),
    "timeline": ("timelines", "source_video = 'other.mp4'", "timeline"),
    "tombstone": ("tombstones", "kind = 'tag'", "tomb"),
    "tag": ("tags", "name = 'worst'", "tag"),
}

#: reads that must fail for each tampering (every read that returns the changed record)
MUST_FAIL = {
    "checkpoint": {"checkpoints", "peek", "children", "lineage", "tree", "lazy outputs"},
    "checkpoint id": {"checkpoints", "peek", "children", "lineage", "tree", "lazy outputs"},
    "root": {"checkpoints", "peek", "lineage", "tree"},
    "timeline": {"timelines", "timelines by id", "timeline page"},
    "tombstone": {"tombstones", "tombstones by timeline"},
    "tag": {"tags", "tags by timeline", "tags by name"},
}


def _ident(p: dict[str, Any], which: str) -> str:
    return {"tip": p["chain"][-1].id, "root": p["chain"][0].id, "timeline": p["timeline"].id,
            "tomb": p["tomb"].id, "tag": p["tag"].id}[which]


@pytest.mark.parametrize("what", sorted(TAMPERING))
def test_a_changed_row_is_refused_on_every_read_path(
        catalog: SqlCatalog, populated: dict[str, Any], what: str) -> None:
    table, change, which = TAMPERING[what]
    ident = _ident(populated, which)
    reads = _reads(catalog, populated)
    before = {name: read() for name, read in reads.items()}
    catalog.forget()  # what was read before the damage is not read again
    if "is_scenario" in change and catalog.dialect.name == "sqlite":
        change = "is_scenario = 1 - is_scenario"
    raw(catalog, f"UPDATE {{s}}{table} SET {change} WHERE id = ?", (ident,))
    failed = set()
    for name, read in reads.items():
        try:
            got = read()
        except CorruptDataError as exc:
            assert table in str(exc) and (ident in str(exc) or name in BY_SUMS), \
                f"{name}: {exc}"
            failed.add(name)
            continue
        assert got == before[name], f"{name} read other data without an error"
    assert MUST_FAIL[what] <= failed, MUST_FAIL[what] - failed
    problems = catalog.storage_problems()
    assert any(ident in where for where, _ in problems), problems


def test_children_notice_a_child_whose_parent_link_changed(
        catalog: SqlCatalog, populated: dict[str, Any]) -> None:
    """children() reads only the rows naming the parent: a changed parent_id would hide
    a child silently unless every row of the timeline is checked."""
    tip, parent = populated["chain"][-1], populated["chain"][-2]
    assert catalog.children(parent.id) == [tip]
    raw(catalog, "UPDATE {s}checkpoints SET parent_id = NULL WHERE id = ?", (tip.id,))
    catalog.forget()  # a new process; this one checked the timeline before the damage
    with pytest.raises(CorruptDataError, match=tip.id):
        catalog.children(parent.id)
    catalog.forget()
    with pytest.raises(CorruptDataError, match=tip.id):
        catalog.tree(parent.timeline_id)
    with pytest.raises(CorruptDataError, match=tip.id):  # not remembered as checked
        catalog.children(parent.id)


@pytest.mark.parametrize("kind", ["tomb", "tag"])
def test_a_lost_tombstone_or_tag_is_an_error_not_absent(
        catalog: SqlCatalog, populated: dict[str, Any], kind: str) -> None:
    """A tombstone a read misses (its row gone, or skipped by a damaged index) would
    bring what it deletes back, and a tag would vanish: reads of them by timeline, or
    all of them, are checked against their sums."""
    tid, record = populated["timeline"].id, populated[kind]
    table = "tombstones" if kind == "tomb" else "tags"
    read = catalog.tombstones if kind == "tomb" else catalog.tags
    assert [r.id for r in read([tid])] == [record.id]
    raw(catalog, f"DELETE FROM {{s}}{table} WHERE id = ?", (record.id,))
    for each in (lambda: read([tid]), lambda: read(None)):
        with pytest.raises(CorruptDataError, match=f"{table} of timeline {tid}"):
            each()
    assert any(f"{table} of timeline" in what for _, what in catalog.storage_problems())


@pytest.mark.parametrize("kind", ["tombstone", "tag"])
def test_a_timeline_whose_tombstone_or_tag_sums_are_lost_is_reported(
        catalog: SqlCatalog, populated: dict[str, Any], kind: str) -> None:
    tid = populated["timeline"].id
    raw(catalog, "DELETE FROM {s}tree_sums WHERE timeline_id = ?", (SUMS_OF[kind] + tid,))
    with pytest.raises(CorruptDataError, match=f"{kind}s of timeline {tid}"):
        (catalog.tombstones if kind == "tombstone" else catalog.tags)([tid])


@pytest.mark.parametrize("lost", ["row", "sums"])
def test_a_tag_a_lookup_by_name_misses_is_an_error_not_absent(
        catalog: SqlCatalog, populated: dict[str, Any], lost: str, tmp_path: Path) -> None:
    """A lookup by name (what a reference that is a tag resolves through) reads the
    name's rows through its index, checked against the name's sums: a tag it misses
    (its row gone, or skipped by a damaged index entry) is an error, not a name that
    names nothing."""
    tag = populated["tag"]
    assert catalog.tags_named(tag.name) == [tag] and catalog.tags_named("worst") == []
    assert catalog.tags_named_in([tag.name, "worst", "a\x00b"]) == {
        tag.name: [tag], "worst": [], "a\x00b": []}
    if lost == "row":
        raw(catalog, "DELETE FROM {s}tags WHERE id = ?", (tag.id,))
    else:
        raw(catalog, "DELETE FROM {s}tree_sums WHERE timeline_id = ?", (TAG_NAMES + tag.name,))
    store = Store(catalog, Objects.from_url(str(tmp_path / "objects")))
    for read in (lambda: catalog.tags_named(tag.name), lambda: store.tag_target(tag.name),
                 lambda: store.resolve(tag.name),
                 lambda: catalog.tags_named_in(["worst", tag.name])):
        with pytest.raises(CorruptDataError, match=f"tags named '{tag.name}'"):
            read()
    assert any(f"tags named '{tag.name}'" in what for _, what in catalog.storage_problems())


def test_a_catalog_of_before_the_name_sums_gets_them(open_catalog: Opener,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 11 adds the sums of every tag name; a catalog below it (one opened
    read-only where it cannot be migrated) finds a name by reading every tag."""
    from localckpt.backends.sql import schema

    (timeline, root), (other, other_root) = make_timeline(), make_timeline()
    best = Tag(new_id(), "best", root.id, timeline.id, utcnow())
    moved = Tag(new_id(), "best", other_root.id, other.id, utcnow())
    solo = Tag(new_id(), "solo", root.id, timeline.id, utcnow())
    names = (TAG_NAMES, TAG_NAMES[:-1] + ";")  # ';' follows ':'
    with monkeypatch.context() as m:  # the code of before: migrations up to 10
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:4])
        m.setattr(schema, "LATEST_VERSION", 10)
        old = open_catalog()
        old.commit(Batch([timeline, other], [root, other_root], {}, [], [best, moved, solo]))
        raw(old, "DELETE FROM {s}tree_sums WHERE timeline_id >= ? AND timeline_id < ?",
            names)  # the code of before kept none
        assert schema.version_of(old.engine) == 10
        assert old.tags_named("best") == sorted([best, moved], key=lambda g: g.id)
        old.close()
    catalog = open_catalog()
    assert schema.version_of(catalog.engine) == LATEST_VERSION
    assert len(rows(catalog, "SELECT 1 FROM {s}tree_sums WHERE timeline_id >= ? AND "
                    "timeline_id < ?", names)) == 2
    assert catalog.tags_named("best") == sorted([best, moved], key=lambda g: g.id)
    assert catalog.tags_named("solo") == [solo] and catalog.tags_named("none") == []
    assert catalog.storage_problems() == []


def test_purged_tags_leave_their_sums_right(open_catalog: Opener, tmp_path: Path) -> None:
    """gc's purge deletes tags three ways (of a purged checkpoint, tombstoned, of a
    deleted timeline): each takes its rows out of the sums once."""
    store = Store(open_catalog(), Objects.from_url(str(tmp_path / "objects")))
    kept = store.create_timeline("v.mp4", "p", [np.zeros((4, 4, 3), np.uint8)])
    gone = store.create_timeline("w.mp4", "p", [np.zeros((4, 4, 3), np.uint8)])
    a = store.save_stage_output(kept.id, None, "s", {"x": 1})
    b = store.save_stage_output(kept.id, a, "t", {"x": 2})
    store.tag(a, "stays")
    store.tag(a, "untagged")
    store.tag(b, "pruned")
    store.tag(gone.root_checkpoint_id, "with-its-timeline")
    store.untag("untagged")
    store.prune(b)
    store.delete_timeline(gone.id)
    collect_garbage(store, older_than=0, grace=0)
    assert [g.name for g in store.catalog.tags(None)] == ["stays"]
    assert [g.name for g in store.catalog.tags([kept.id, gone.id])] == ["stays"]
    for name in ("untagged", "pruned", "with-its-timeline"):  # and out of their names' sums
        assert store.catalog.tags_named(name) == []
    assert [g.name for g in store.catalog.tags_named("stays")] == ["stays"]
    assert store.catalog.storage_problems() == []


def test_children_notice_that_a_timeline_lost_its_sums(
        catalog: SqlCatalog, populated: dict[str, Any]) -> None:
    tip, parent = populated["chain"][-1], populated["chain"][-2]
    raw(catalog, "DELETE FROM {s}tree_sums WHERE timeline_id = ?", (tip.timeline_id,))
    catalog.forget()
    with pytest.raises(CorruptDataError, match=tip.timeline_id):
        catalog.children(parent.id)


def test_children_check_a_timeline_once_until_it_changes(
        catalog: SqlCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first children() of a timeline reads all its rows; later ones read the
    children (and the sums) only, until a write changes the timeline's sums."""
    timeline, root = make_timeline()
    h, data = make_output([1])
    chain = [root]
    for i in range(30):
        chain.append(child(chain[-1], f"s{i}", h))
    catalog.commit(Batch([timeline], chain, {h: data}))
    catalog.forget()
    read: list[int] = []
    real = catalog.engine.snapshot
    monkeypatch.setattr(catalog.engine, "snapshot", lambda queries: read.append(
        sum(map(len, got := real(queries)))) or got)

    def rows(fn: Callable[[], Any]) -> tuple[Any, int]:
        read.clear()
        return fn(), sum(read)

    kids, first = rows(lambda: catalog.children(chain[0].id))
    assert kids == [chain[1]] and first > len(chain)
    sums = catalog.dialect.sum_shards  # rows of sums per timeline
    kids, again = rows(lambda: catalog.children(chain[5].id))
    assert kids == [chain[6]] and again <= 1 + sums
    extra = child(chain[5], "x", h)
    catalog.commit(Batch([], [extra]))
    kids, changed = rows(lambda: catalog.children(chain[5].id))
    assert sorted(c.id for c in kids) == sorted([chain[6].id, extra.id])
    assert changed > len(chain)
    assert rows(lambda: catalog.children(chain[5].id))[1] <= 2 + sums


def test_a_changed_output_is_refused_on_every_read_path(
        catalog: SqlCatalog, populated: dict[str, Any]) -> None:
    h = populated["hashes"][0]
    raw(catalog, "UPDATE {s}outputs SET data = ? WHERE hash = ?",
        (canonical_bytes({"i": 666, "small": 1.5e-05}), h))
    tip = populated["chain"][-1]
    for read in (lambda: catalog.outputs([h]), lambda: catalog.load_values([h]),
                 lambda: catalog.outputs(populated["hashes"]),
                 lambda: catalog.checkpoints([tip.id])[0].stage_outputs["s0"],
                 lambda: dict(catalog.lineage(tip.id)[-1].stage_outputs),
                 lambda: dict(catalog.tree(tip.timeline_id)[-1].stage_outputs)):
        with pytest.raises(CorruptDataError, match=h):
            read()
    assert catalog.load_values(populated["hashes"][1:]) == {
        k: json.loads(v) for k, v in populated["outputs"].items() if k != h}
    assert [where for where, _ in catalog.storage_problems()] == [
        f"{catalog.describe()} outputs row {h}"]


def test_random_byte_flips_in_output_rows_never_read_silently(
        catalog: SqlCatalog, populated: dict[str, Any]) -> None:
    """30 flips: each read gives CorruptDataError naming the output, storage_problems
    reports it, and once the byte is restored everything reads as before."""
    outputs = populated["outputs"]
    tip = populated["chain"][-1]
    rnd = random.Random(10)
    for _ in range(30):
        h = rnd.choice(sorted(outputs))
        data = bytearray(outputs[h])
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        raw(catalog, "UPDATE {s}outputs SET data = ? WHERE hash = ?", (bytes(data), h))
        stage = {v: k for k, v in tip.stage_hashes.items()}[h]
        read = rnd.choice([lambda h, _: catalog.outputs([h]),
                           lambda h, _: catalog.load_values([h]),
                           lambda _, s: catalog.checkpoints([tip.id])[0].stage_outputs[s]])
        with pytest.raises(CorruptDataError, match=h):
            read(h, stage)
        assert [w.rsplit(" ", 1)[-1] for w, _ in catalog.storage_problems()] == [h]
        raw(catalog, "UPDATE {s}outputs SET data = ? WHERE hash = ?", (outputs[h], h))
    assert catalog.storage_problems() == []
    assert catalog.outputs(outputs) == outputs


@pytest.mark.parametrize("table", ["checkpoints", "timelines"])
def test_a_row_missing_from_a_tree_is_noticed(catalog: SqlCatalog, populated: dict[str, Any],
                                              table: str) -> None:
    """What a damaged index does (a query skips a row): the tree, or the list of
    timelines, disagrees with the sums kept with every write."""
    if table == "checkpoints":
        victim = populated["chain"][-1].id  # a leaf: PostgreSQL's foreign keys allow it
        read: Callable[[], Any] = lambda: catalog.tree(populated["timeline"].id)  # noqa: E731
    else:
        other, _ = make_timeline()
        catalog.commit(Batch([other]))  # no checkpoint refers to it
        victim = other.id
        read = catalog.timelines
    raw(catalog, f"DELETE FROM {{s}}{table} WHERE id = ?", (victim,))
    with pytest.raises(CorruptDataError, match="missing or damaged"):
        read()
    assert any("sums" in where for where, _ in catalog.storage_problems())


def test_rows_that_do_not_parse_are_storage_problems(catalog: SqlCatalog,
                                                     populated: dict[str, Any]) -> None:
    tip = populated["chain"][-1].id
    tid = populated["timeline"].id
    raw(catalog, "UPDATE {s}checkpoints SET stage_hashes = '{\"s0\": 3}' WHERE id = ?", (tip,))
    raw(catalog, "UPDATE {s}timelines SET exact = 'not json' WHERE id = ?", (tid,))
    with pytest.raises(CorruptDataError, match=tip):
        catalog.checkpoints([tip])
    with pytest.raises(CorruptDataError, match=tid):
        catalog.timelines([tid])
    problems = dict(catalog.storage_problems())
    named = {where.rsplit(" ", 3)[-3] + " " + where.rsplit(" ", 1)[-1]
             for where in problems if " row " in where}
    assert named == {f"checkpoints {tip}", f"timelines {tid}"}
    assert all("does not parse" in problems[w] or "does not match its digest" in problems[w]
               for w in problems if " row " in w)


# -- purge ------------------------------------------------------------------------------------


def _tombstone(cat: SqlCatalog, target: str, kind: str, tid: str) -> None:
    cat.commit(Batch(tombstones=[Tombstone(new_id(), target, kind, tid, utcnow())]))


def _counts(cat: SqlCatalog) -> dict[str, int]:
    return {t: rows(cat, f"SELECT count(*) FROM {{s}}{t}")[0][0]
            for t in ("checkpoints", "outputs", "tags", "timelines", "tombstones")}


def test_purge_removes_what_tombstones_delete_and_unreferenced_outputs(
        catalog: SqlCatalog) -> None:
    timeline, root = make_timeline()
    outs = [make_output({"s": i}) for i in range(4)]
    chain = [root]
    for i, (h, _) in enumerate(outs):
        chain.append(child(chain[-1], f"s{i}", h))
    shared = child(chain[1], "s1", outs[1][0])  # same output as chain[2]
    other, other_root = make_timeline()
    o1 = child(other_root, "s0", outs[0][0])  # shares our s0
    only_other = make_output({"only": "other"})
    o2 = child(o1, "x", only_other[0])
    keep = Tag(new_id(), "keep", chain[1].id, timeline.id, utcnow())
    dead_tag = Tag(new_id(), "gone", chain[3].id, timeline.id, utcnow())
    catalog.commit(Batch([timeline, other], [*chain, shared, other_root, o1, o2],
                         {**dict(outs), only_other[0]: only_other[1]}, (), [keep, dead_tag]))
    before = _counts(catalog)

    _tombstone(catalog, chain[2].id, "checkpoint", timeline.id)  # chain[2..4]
    _tombstone(catalog, other.id, "timeline", other.id)
    removed = catalog.purge_deleted()
    left = _counts(catalog)
    # checkpoints: chain[2..4] and the other tree's 3; tags: dead_tag; the other
    # timeline; outputs: s2, s3 (s1 is shared's too) and the other's own
    assert left == {"checkpoints": before["checkpoints"] - 6, "tags": 1, "timelines": 1,
                    "outputs": before["outputs"] - 3, "tombstones": 2}
    assert removed == 6 + 1 + 1 + 3
    assert catalog.load_values([outs[1][0]]) == {outs[1][0]: {"s": 1}}
    assert catalog.tags(None) == [keep]
    assert catalog.storage_problems() == []
    assert [c.id for c in catalog.tree(timeline.id)] == sorted(
        [root.id, chain[1].id, shared.id])
    assert catalog.timelines() == [timeline]  # and the sums of the timelines table agree
    assert catalog.purge_deleted() == 0


def test_outputs_no_checkpoint_used_go_only_at_the_second_purge(catalog: SqlCatalog) -> None:
    """A sync commits outputs before the rows that refer to them: one purge between the
    two must not take them."""
    h, data = make_output({"staged": True})
    catalog.commit(Batch(outputs={h: data}))
    assert catalog.purge_deleted() == 0
    assert catalog.missing_outputs([h]) == set()
    timeline, root = make_timeline()
    user = attrs.evolve(root, id=new_id(), parent_id=root.id, stage="x",
                        stage_hashes={"x": h}, created_at=utcnow())
    catalog.commit(Batch([timeline], [root, user]))  # the rows of the "sync" arrive
    assert catalog.purge_deleted() == 0
    assert catalog.purge_deleted() == 0
    assert catalog.checkpoints([user.id])[0].stage_outputs["x"] == {"staged": True}
    h2, other = make_output({"orphan": 1})
    catalog.commit(Batch(outputs={h2: other}))
    assert catalog.purge_deleted() == 0  # first sighting
    assert catalog.purge_deleted() == 1  # still unreferenced: gone
    assert catalog.missing_outputs([h, h2]) == {h2}


def test_purge_goes_deepest_first_so_every_stored_checkpoint_keeps_its_parent(
        catalog: SqlCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of a purge commit one by one; after each, no stored checkpoint lacks its
    parent (a reader between two batches sees whole chains)."""
    from localckpt.backends.sql.upkeep import BATCH

    timeline, root = make_timeline()
    h, data = make_output({"deep": 1})
    tree = [root, child(root, "s", h)]
    rnd = random.Random(3)
    for _ in range(BATCH * 2 + 50):  # deep and bushy: parents among the last few
        tree.append(child(rnd.choice(tree[max(1, len(tree) - 4):]), "s", h))
    catalog.commit(Batch([timeline], tree, {h: data}))
    _tombstone(catalog, tree[1].id, "checkpoint", timeline.id)
    seen: list[set[str]] = []
    real = catalog.engine.transaction

    def watched() -> Any:
        stored = {r[0]: r[1] for r in rows(catalog, "SELECT id, parent_id FROM {s}checkpoints")}
        orphans = {c for c, p in stored.items() if p is not None and p not in stored}
        seen.append(orphans)
        return real()

    monkeypatch.setattr(catalog.engine, "transaction", watched)
    catalog.purge_deleted()
    monkeypatch.undo()
    assert len(seen) >= 4 and seen == [set()] * len(seen)  # 3 batches, then outputs
    assert catalog.storage_problems() == []


# -- schema versions ---------------------------------------------------------------------------


def test_a_newer_schema_version_is_refused(catalog: SqlCatalog, open_catalog: Opener) -> None:
    newer = LATEST_VERSION + 1
    catalog.close()
    again = open_catalog()
    raw(again, "INSERT INTO {s}schema_migrations (version, description, applied_at) "
        "VALUES (?, 'from the future', ?)", (newer, utcnow().isoformat()))
    again.close()
    with pytest.raises(SchemaVersionError, match=f"version {newer}") as info:
        open_catalog()
    assert isinstance(info.value, LocalckptError)
    assert "upgrade localckpt" in str(info.value)


def test_a_new_database_is_at_the_latest_version_once(catalog: SqlCatalog,
                                                      open_catalog: Opener) -> None:
    open_catalog().close()
    versions = rows(catalog, "SELECT version FROM {s}schema_migrations ORDER BY version")
    assert [v for (v,) in versions] == list(range(versions[0][0], LATEST_VERSION + 1))



def test_sqlite_outputs_move_to_a_rowid_table_with_their_bytes(tmp_path: Path,
                                                              monkeypatch: Any) -> None:
    """Migration 8: a catalog written with outputs in a WITHOUT ROWID table (whose
    lookups read neighbouring large rows whole) opens with them in a rowid table, every
    output still there and still verified by hash."""
    import localckpt
    from localckpt.backends.sql import schema

    big = {"frames": {str(i): {"detections": [{"box": [0, 0, i, i]}]} for i in range(2000)}}
    with monkeypatch.context() as m:  # the code of before: migrations up to 7
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        m.setattr(schema, "LATEST_VERSION", 7)
        with localckpt.open(tmp_path / "s", create=True) as old:
            tid = old.create_timeline("v.mp4", "p", [np.zeros((4, 4, 3), np.uint8)]).id
            ids = [old.save_stage_output(tid, None, "detect", {**big, "k": k}) for k in range(3)]
            assert "WITHOUT ROWID" in _outputs_sql(old)
    with localckpt.open(tmp_path / "s") as store:
        assert schema.version_of(store.catalog.engine) == LATEST_VERSION
        assert "WITHOUT ROWID" not in _outputs_sql(store)
        assert [store.load_stage_output(c, "detect")["k"] for c in ids] == [0, 1, 2]
        assert store.verify().ok


def _outputs_sql(store: Store) -> str:
    (sql,), = store.catalog.engine.query(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outputs'")
    return str(sql)


def test_sqlite_purge_and_memo_reads_find_tags_and_open_runs_by_index(tmp_path: Path,
                                                                      monkeypatch: Any) -> None:
    """Migration 12: every statement of a purge (which deletes the tags of the checkpoints
    it deletes) and of a run's todo (which reads the open runs like it) reads tags and
    runs through an index; before, each of these read every tag, or every run ever
    begun, of the store. And clear_memo finds the references its entries kept by key
    (it read every output reference of the store). Checked on the plans of the
    statements they run, and on a catalog written before the migration, which opens
    with it."""
    import localckpt
    from localckpt.backends.sql import schema

    frames = [np.full((4, 4, 3), 60 * i, np.uint8) for i in range(3)]
    with monkeypatch.context() as m:  # the code of before: migrations up to 11
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:5])
        m.setattr(schema, "LATEST_VERSION", 11)
        with localckpt.open(tmp_path / "s", create=True) as old:
            tid = old.create_timeline("v.mp4", "p", frames).id
    with localckpt.open(tmp_path / "s") as store:
        assert schema.version_of(store.catalog.engine) == LATEST_VERSION
        gone = store.save_stage_output(tid, None, "detect", {"n": 1})
        store.tag(gone, "old")
        store.prune(gone)
        first = store.begin_run(tid, None, "detect", version="1")
        second = store.begin_run(tid, None, "detect", version="1")
        first.put({0: {"n": 0}})
        conn = store.catalog.engine._conn()
        ran: list[str] = []
        conn.set_trace_callback(ran.append)
        try:
            assert second.todo() == [1, 2]  # frame 0: the open run like it answers
            collect_garbage(store)
            first.abort()
            assert store.clear_memo() == 1
        finally:
            conn.set_trace_callback(None)
        assert store.tags() == []
        scans = {}
        for statement in ran:
            if statement.lstrip().split(" ", 1)[0].upper() not in ("SELECT", "DELETE", "WITH"):
                continue
            plan = conn.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
            for *_, step in plan:
                if step.startswith(("SCAN tags", "SCAN runs", "SCAN output_refs")):
                    scans[step] = statement
        assert any("FROM tags" in s for s in ran) and any("FROM runs" in s for s in ran)
        assert scans == {}


def test_clear_memo_picks_entries_outside_its_write_transactions(tmp_path: Path) -> None:
    """clear_memo(older_than) over a memo whose entries are mostly newer: its write
    transactions (which hold the lock savers wait for) only delete; the entries to
    delete are picked by reads, each from where the last batch ended, not by a read
    inside every transaction that passes over every newer entry again. The same
    entries go either way."""
    import localckpt
    from localckpt.backends.sql import runs as run_tables

    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(12)]
    with localckpt.open(tmp_path / "s", create=True) as store:
        tid = store.create_timeline("v.mp4", "p", frames).id
        old = store.begin_run(tid, None, "detect", version="old")
        old.put({i: {"i": i} for i in range(12)})
        old.commit()
        cut = datetime.now(UTC)
        new = store.begin_run(tid, None, "detect", version="new")
        new.put({i: {"i": -i} for i in range(12)})
        new.commit()
        conn = store.catalog.engine._conn()
        ran: list[str] = []
        conn.set_trace_callback(ran.append)
        try:
            with pytest.MonkeyPatch.context() as m:
                m.setattr(run_tables, "_BATCH", 5)  # several batches
                assert store.clear_memo(older_than=cut) == 12
        finally:
            conn.set_trace_callback(None)
        assert [s.version for s in store.memo_stats().stages] == ["new"]
    inside, writing = [], False
    for statement in ran:
        if statement.startswith("BEGIN IMMEDIATE"):
            writing = True
        elif statement in ("COMMIT", "ROLLBACK"):
            writing = False
        elif writing:
            inside.append(statement)
    assert inside and not [s for s in inside if s.startswith("SELECT key")]
    assert sum(s.startswith("BEGIN IMMEDIATE") for s in ran) == 3  # 5 + 5 + 2
