"""Stage runs on every store kind: put, todo, commit, abort, resume, listing, gc.

The committed output must be byte-for-byte what save_stage_output makes of the same
dict; a commit that was interrupted is finished by the next; gc keeps what open runs
and memo entries hold and collects what aborted runs and cleared entries leave.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import orjson
import pytest
from conftest import KINDS
from hypothesis import given, settings
from hypothesis import strategies as st
from old_memo import old_memo_entry

import localckpt
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.errors import (
    ConflictError,
    CorruptDataError,
    InvalidInputError,
    NotFoundError,
)
from localckpt.gc import collect_garbage
from localckpt.ids import id_tail
from localckpt.runs.run import _begin_commit
from localckpt.testing.strategies import json_values


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


def value(seq: int, salt: str = "") -> dict[str, Any]:
    return {"detections": [{"box": [seq, seq + 0.5, seq * 2.25, 1e-7], "label": f"p{salt}",
                            "score": seq / 7}]}


def expected(seqs: Any, salt: str = "") -> dict[str, Any]:
    return {"frames": {str(s): value(s, salt) for s in seqs}}


def stored_hash(store: localckpt.Store, cid: str, stage: str = "detect") -> str:
    return store.get_checkpoint(cid).stage_hashes[stage]


def count(store: localckpt.Store, table: str) -> int:
    """Rows of a table; for "run_parts", the frames the puts of open runs hold (a put is
    one row of run_puts)."""
    if table == "run_parts":
        return int(store.catalog.engine.query(
            "SELECT coalesce(sum(n), 0) FROM {s}run_puts")[0][0])
    return int(store.catalog.engine.query(f"SELECT count(*) FROM {{s}}{table}")[0][0])


@pytest.fixture
def store(new_store: Any, store_kind: str) -> localckpt.Store:
    return new_store(store_kind)


@pytest.fixture
def tl(store: localckpt.Store) -> localckpt.Timeline:
    return store.create_timeline("v.mp4", "p", frames(30), codec="png")


def test_commit_is_save_stage_output_byte_for_byte(store: localckpt.Store, tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect", params={"t": 0.5}, version="v1")
    assert (run.state, run.total, run.done, run.memo_hits) == ("open", 30, 0, 0)
    order = list(range(30))
    random.Random(1).shuffle(order)
    for i in range(0, 30, 7):  # chunks in no particular order
        run.put({s: value(s) for s in order[i:i + 7]})
        assert run.done == min(i + 7, 30)
    assert run.todo() == []
    cid = run.commit()
    saved = store.save_stage_output(tl.id, None, "detect", expected(range(30)))
    assert stored_hash(store, cid) == stored_hash(store, saved) == content_hash(
        canonical_bytes(expected(range(30))))
    assert store.load_stage_output(cid, "detect") == expected(range(30))
    c = store.get_checkpoint(cid)
    assert (c.parent_id, c.stage, dict(c.config_overrides)) == (tl.root_checkpoint_id,
                                                                "detect", {"t": 0.5})
    assert run.commit() == cid and store.get_run(run.id).commit() == cid
    assert (run.state, run.done, run.checkpoint_id) == ("committed", 30, cid)
    assert count(store, "run_parts") == 30  # read no more: gc deletes them
    collect_garbage(store, older_than=0, grace=0)
    assert count(store, "run_parts") == 0


def test_commit_refuses_while_frames_are_left_unless_partial(store: localckpt.Store,
                                                             tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect", memo=False)
    run.put({s: value(s) for s in (3, 1, 12)})
    before = len(store.checkpoints(tl.id))
    with pytest.raises(InvalidInputError, match="27 of 30 frames still to do"):
        run.commit()
    assert len(store.checkpoints(tl.id)) == before and run.state == "open"
    assert run.todo(limit=3) == [0, 2, 4]
    cid = run.commit(partial=True)
    assert store.load_stage_output(cid, "detect") == expected([1, 3, 12])
    assert run.todo() == []
    with pytest.raises(InvalidInputError, match="committed"):
        run.put({0: value(0)})


def test_equal_put_is_a_no_op_and_another_value_a_conflict(store: localckpt.Store,
                                                           tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect")
    run.put({s: value(s) for s in range(5)})
    outputs = count(store, "outputs")
    run.put({s: value(s) for s in range(5)})
    assert (run.done, count(store, "outputs")) == (5, outputs)
    with pytest.raises(ConflictError, match=r"frame\(s\) 2 already hold"):
        run.put({2: value(2, "other"), 7: value(7)})
    assert run.done == 5 and 7 in run.todo()  # nothing of that put was written
    assert count(store, "outputs") == outputs
    run.put({s: value(s) for s in range(5, 30)})
    assert store.load_stage_output(run.commit(), "detect") == expected(range(30))


def test_a_put_that_returned_before_the_commit_began_is_in_its_checkpoint(
        store: localckpt.Store, tl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every frame answered by the memo, a worker puts another value for one of them
    (a put wins over the memo) after the commit read the parts and before it began:
    the put returned while the run was open, so the checkpoint holds its value (the
    commit read the parts again), not the memo's."""
    first = store.begin_run(tl.id, None, "detect")
    first.put({s: value(s) for s in range(30)})
    first.commit()
    copy = store.create_timeline("copy.mp4", "p", frames(30), codec="png")
    run = store.begin_run(copy.id, None, "detect")
    assert run.todo() == [] and run.memo_hits == 30
    worker = store.get_run(run.id)
    refuse_missing = run._refuse_missing

    def a_put_meanwhile(*args: Any) -> None:
        refuse_missing(*args)
        worker.put({2: value(2, "mine")})  # the run is still open: it is taken

    monkeypatch.setattr(run, "_refuse_missing", a_put_meanwhile)
    cid = run.commit()
    assert store.load_stage_output(cid, "detect") == {
        "frames": {**expected(range(30))["frames"], "2": value(2, "mine")}}
    status = run.status()
    assert (status.done, status.memo_hits) == (1, 29)


def test_resume_from_another_store_object(new_store: Any, store_kind: str) -> None:
    if not new_store.can_reopen(store_kind):
        pytest.skip("a memory store lives in one process and cannot be reopened")
    store = new_store()
    tl = store.create_timeline("v.mp4", "p", frames(30), codec="png")
    run = store.begin_run(tl.id, None, "detect", memo=False)
    run.put({s: value(s) for s in range(0, 30, 2)})
    store = new_store.reopen(store)
    again = store.get_run(run.id)
    assert again.todo() == list(range(1, 30, 2))
    again.put({s: value(s) for s in again.todo()})
    assert store.load_stage_output(again.commit(), "detect") == expected(range(30))


def test_a_run_whose_parent_was_pruned_or_timeline_deleted_is_listed_and_refused_clearly(
        new_store: Any, store_kind: str) -> None:
    """An open run under a checkpoint that is pruned (or of a timeline that is deleted)
    can never be committed. Its status still reads (every listing of runs, the tree and
    the web view read it: one such run made them all fail), commit and todo say what is
    gone and change nothing, and abort closes it. (prune and rm close the runs they
    orphan; these are deleted as a sync brings deletions made elsewhere: tombstones.)"""
    store = new_store()
    tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
    other = store.create_timeline("w.mp4", "p", frames(4, seed=1), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(6)))
    keyed = store.begin_run(tl.id, det, "classify", inputs=("detect",))
    keyed.put({0: value(0)})
    plain = store.begin_run(tl.id, det, "ocr")  # memo on, no inputs
    plain.put({1: value(1), 2: value(2)})
    lost = store.begin_run(other.id, None, "detect")
    lost.put({0: value(0)})
    fine = store.begin_run(tl.id, None, "track", memo=False)
    tombstones(store, (det, "checkpoint", tl.id), (other.id, "timeline", other.id))
    if new_store.can_reopen(store_kind):  # as another process sees it: nothing cached
        store = new_store.reopen(store)
    statuses = {r.id: r.status() for r in store.runs()}
    assert "was pruned" in (statuses[keyed.id].orphaned or "")
    assert "was pruned" in (statuses[plain.id].orphaned or "")
    assert "was deleted" in (statuses[lost.id].orphaned or "")
    assert statuses[fine.id].orphaned is None and statuses[fine.id].todo == 6
    assert (statuses[plain.id].done, statuses[plain.id].todo) == (2, 4)
    assert statuses[keyed.id].to_dict()["orphaned"] == statuses[keyed.id].orphaned
    for run_id in (keyed.id, plain.id, lost.id):
        run = store.get_run(run_id)
        for call in (run.commit, lambda run=run: run.commit(partial=True), run.todo):
            with pytest.raises(NotFoundError, match="can never be committed; abort it"):
                call()
        assert run.state == "open" and run.checkpoint_id is None
        run.abort()
        assert run.state == "aborted"
    assert [r.id for r in store.runs(state="open")] == [fine.id]


def tombstones(store: localckpt.Store, *marks: tuple[str, str, str]) -> None:
    """Deletions (target, kind, timeline) committed as a sync commits those it brings:
    tombstones only, no run closed."""
    from localckpt.catalog import Batch
    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.types import Tombstone

    store.catalog.commit(Batch(tombstones=[Tombstone(new_id(), target, kind, tid, utcnow())
                                           for target, kind, tid in marks]))


def test_abort(store: localckpt.Store, tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect")
    run.put({0: value(0)})
    run.abort()
    run.abort()  # twice: a no-op
    assert (run.state, run.done, run.todo()) == ("aborted", 1, [])
    with pytest.raises(InvalidInputError, match="aborted"):
        run.put({1: value(1)})
    with pytest.raises(InvalidInputError, match="aborted"):
        run.commit()
    collect_garbage(store, older_than=0, grace=0)
    assert count(store, "run_parts") == 0
    done = store.begin_run(tl.id, None, "detect", memo=False)
    done.put({s: value(s) for s in range(30)})
    done.commit()
    with pytest.raises(InvalidInputError, match="prune that checkpoint"):
        done.abort()


def test_config_stats_and_scenario(store: localckpt.Store, tl: Any) -> None:
    parent = store.save_stage_output(tl.id, None, "ingest", {"x": 1}, config_overrides={"a": 1},
                                     stats={"n": 1})
    run = store.begin_run(tl.id, parent, "detect", params={"t": 2}, config_overrides={"b": 3},
                          stats={"m": 4}, is_scenario=True, scenario_label="try")
    run.put({s: value(s) for s in range(30)})
    c = store.get_checkpoint(run.commit())
    assert c.parent_id == parent
    assert dict(c.config_overrides) == {"a": 1, "b": 3}
    assert dict(c.stats) == {"n": 1, "m": 4, "frames_extracted": 30}
    assert (c.is_scenario, c.scenario_label) == (True, "try")
    assert set(c.stage_hashes) == {"ingest", "detect"}


def test_runs_listing_short_ids_and_references(store: localckpt.Store, tl: Any) -> None:
    a = store.begin_run(tl.id, None, "detect")
    b = store.begin_run(tl.id, None, "track", memo=False)
    other = store.create_timeline("w.mp4", "p", frames(3), codec="png")
    c = store.begin_run(other.id, None, "detect")
    b.abort()
    assert [r.id for r in store.runs()] == [a.id, b.id, c.id]
    assert [r.id for r in store.runs(tl.id)] == [a.id, b.id]
    assert [r.id for r in store.runs(state="aborted")] == [b.id]
    shorts = store.short_ids([a.id, b.id, c.id], "run")
    assert set(shorts) == {a.id, b.id, c.id}
    assert all(len(v) >= 8 and id_tail(k).startswith(v) for k, v in shorts.items())
    for run in (a, b, c):
        assert store.get_run(shorts[run.id]).id == run.id
        assert store.get_run(run.id[:24]).id == run.id  # a unique prefix of the id
        if sum(r.id.startswith(run.id[:6]) for r in (a, b, c)) > 1:
            with pytest.raises(InvalidInputError, match="ambiguous"):
                store.get_run(run.id[:6])
        assert store.get_run(run.id.upper()).id == run.id
    with pytest.raises(NotFoundError):
        store.get_run("0" * 8)
    status = a.status()
    assert (status.done, status.todo, status.total, status.state) == (0, 30, 30, "open")
    assert status.to_dict()["id"] == a.id


def test_an_interrupted_commit_is_finished_by_the_next(store: localckpt.Store,
                                                       tl: Any) -> None:
    from localckpt.records import utcnow

    run = store.begin_run(tl.id, None, "detect")
    run.put({s: value(s) for s in range(30)})
    tables = store._run_tables()
    # killed after the commit began: puts are refused, the checkpoint's id is chosen
    tables.change(run.id, _begin_commit("0190a000-0000-7000-8000-000000000001", utcnow()))
    assert run.state == "committing"
    with pytest.raises(InvalidInputError, match="committing"):
        run.put({0: value(0)})
    # killed after the checkpoint was saved, before the run was marked committed
    store._save_run_checkpoint(run.record, *_bytes_and_hash(expected(range(30))))
    n = len(store.checkpoints(tl.id))
    assert store.get_run(run.id).commit() == "0190a000-0000-7000-8000-000000000001"
    assert len(store.checkpoints(tl.id)) == n and run.state == "committed"
    assert store.load_stage_output(run.checkpoint_id, "detect") == expected(range(30))
    again = store.begin_run(tl.id, None, "detect")  # its parts went into the memo too
    assert again.memo_hits == 30
    assert stored_hash(store, again.commit()) == stored_hash(store, run.checkpoint_id)


def _bytes_and_hash(output: dict[str, Any]) -> tuple[bytes, str]:
    data = canonical_bytes(output)
    return data, content_hash(data)


def test_the_catalog_is_at_the_latest_version_with_the_run_tables(store: localckpt.Store
                                                                  ) -> None:
    from localckpt.backends.sql.schema import LATEST_VERSION, version_of

    assert LATEST_VERSION >= 7 and version_of(store.catalog.engine) == LATEST_VERSION
    for table in ("runs", "run_puts", "memo_runs", "memo_frames"):
        assert store.catalog.engine.has_table(table)
    assert not store.catalog.engine.has_table("run_parts")  # migration 15 replaced it
    assert not store.catalog.engine.has_table("memo_entries")  # and 16 this one


def test_gc_keeps_open_runs_and_memo_values_and_collects_the_rest(store: localckpt.Store,
                                                                  tl: Any) -> None:
    """Parts hold their values until gc after their run closes; memo entries point into
    an output that a reference of their run keeps until the memo is cleared."""
    def gc_twice() -> None:  # an output no ref names goes at the second purge
        for _ in range(2):
            collect_garbage(store, older_than=0, grace=0)

    outputs = count(store, "outputs")
    memo = store.begin_run(tl.id, None, "detect", version="m")
    memo.put({s: value(s, "memo") for s in range(30)})
    plain = store.begin_run(tl.id, None, "track", memo=False)
    plain.put({s: value(s, "plain") for s in range(10)})
    assert count(store, "outputs") == outputs  # a put writes no outputs
    gc_twice()  # open runs: every part survives
    assert store.load_stage_output(plain.commit(partial=True), "track") == expected(
        range(10), "plain")
    cid = memo.commit()
    held = stored_hash(store, cid)
    store.prune(cid)
    gc_twice()  # the memo keeps the output its entries point into, not the checkpoint
    assert count(store, "run_parts") == 0 and not store.catalog.checkpoints([cid])
    assert not store.catalog.missing_outputs({held})
    again = store.begin_run(tl.id, None, "detect", version="m")
    assert again.todo() == [] and again.memo_hits == 30
    same = again.commit()  # the same output: this checkpoint refers to it too
    assert store.load_stage_output(same, "detect") == expected(range(30), "memo")
    assert store.memo_stats().values == 30
    aborted = store.begin_run(tl.id, None, "ocr")
    aborted.put({s: value(s, "aborted") for s in range(5)})
    aborted.abort()  # its values become an output of their own, its entries point there
    assert store.begin_run(tl.id, None, "ocr").memo_hits == 5
    gc_twice()
    assert count(store, "run_parts") == 0 and store.memo_stats().entries == 35
    assert store.clear_memo(stage="detect") == 30
    store.prune(same)
    gc_twice()
    assert store.catalog.missing_outputs({held}) == {held}
    assert store.memo_stats().entries == 5 == count(store, "memo_frames")
    assert store.begin_run(tl.id, None, "detect", version="m").todo() == list(range(30))
    assert store.load_stage_output(store.begin_run(tl.id, None, "ocr").commit(partial=True),
                                   "ocr") == expected(range(5), "aborted")


def test_a_damaged_run_row_is_an_error_not_other_data(new_store: Any) -> None:
    store = new_store("embedded")
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    with store.catalog.engine.transaction() as tx:
        tx.execute("UPDATE runs SET stage = 'detecT' WHERE id = ?", (run.id,))
    with pytest.raises(CorruptDataError, match="does not match its digest"):
        store.get_run(run.id)


@settings(max_examples=30)
@given(st.dictionaries(st.integers(0, 11), json_values(), min_size=1))
def test_assembled_bytes_equal_canonical_bytes(values: dict[int, Any]) -> None:
    """The commit assembles the output from each value's stored bytes: the same bytes
    canonical_bytes makes of the whole dict, whatever the values (floats, big ints,
    unicode keys, nesting)."""
    with localckpt.open("memory://") as store:
        tl = store.create_timeline("v.mp4", "p", frames(12), codec="png")
        run = store.begin_run(tl.id, None, "s", memo=False)
        run.put(values)
        data, where = run._output_bytes(
            {s: v[2] for s, v in store._run_tables().part_values(run.id).items()}, {})
        whole = {"frames": {str(k): v for k, v in values.items()}}
        assert data == canonical_bytes(whole)
        assert all(data[a:a + n] == canonical_bytes(values[s]) for s, (a, n) in where.items())
        cid = run.commit(partial=True)
        assert stored_hash(store, cid, "s") == content_hash(canonical_bytes(whole))


@pytest.mark.parametrize("kind", [k for k in ("embedded", "postgres-local") if k in KINDS])
def test_puts_of_threads_that_overlap_keep_each_frame_in_one_row(new_store: Any,
                                                                 kind: str) -> None:
    """Threads put chunks that overlap, now and then with another value (on PostgreSQL
    in transactions of their own at once): a frame is never in two rows, each holds the
    value of the put that landed first, and a refused put wrote nothing."""
    import threading

    store = new_store(kind)
    n = 300
    tl = store.create_timeline("v.mp4", "p", frames(n), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    run.todo()
    errors: list[BaseException] = []
    landed: list[dict[int, str]] = []

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(25):
                a = rnd.randrange(n)
                seqs = sorted({min(n - 1, a + rnd.randrange(20)) for _ in range(10)})
                salt = "x" if rnd.random() < 0.1 else ""
                try:
                    run.put({s: value(s, salt) for s in seqs})
                    landed.append(dict.fromkeys(seqs, salt))
                except ConflictError:
                    pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    tables = store._run_tables()
    tables.forget(run.id)  # read back from the rows
    parts = tables.part_values(run.id)
    assert count(store, "run_parts") == len(parts)  # no frame in two rows
    for put in landed:
        assert all(parts[s][2] == canonical_bytes(value(s, salt)) for s, salt in put.items())
    assert sorted(parts) == sorted({s for put in landed for s in put})


def test_a_put_row_of_parts_given_in_any_order_reads_back() -> None:
    """RunTables.put orders the parts itself (a row's lo and hi are its least and
    greatest frames)."""
    with localckpt.open("memory://") as store:
        tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
        run = store.begin_run(tl.id, None, "s", memo=False)
        datas = {s: canonical_bytes(value(s)) for s in (5, 1, 3)}
        store._run_tables().put(run.id, [(s, content_hash(d), d, None)
                                         for s, d in datas.items()])
        assert run.todo() == [0, 2, 4]
        with pytest.raises(ConflictError, match=r"frame\(s\) 3 already hold"):
            run.put({3: value(3, "other")})  # the row spans 3: found by its range
        assert store.load_stage_output(run.commit(partial=True), "s") == expected((1, 3, 5))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.integers(0, 24), st.integers(0, 2), min_size=1,
                                max_size=8), min_size=1, max_size=8))
def test_puts_that_interleave_or_repeat_agree_with_a_model(puts: list[dict[int, int]]
                                                           ) -> None:
    """Puts whose sequences interleave with rows already put (a row spans the range
    of its least to its greatest frame), repeat frames or conflict: an equal value is a
    no-op, another one refuses the whole put; the parts, todo() and the committed
    output are the model's, also read back from the rows (the bytes this process
    remembered dropped)."""
    with localckpt.open("memory://") as store:
        tl = store.create_timeline("v.mp4", "p", frames(25), codec="png")
        run = store.begin_run(tl.id, None, "s", memo=False)
        tables = store._run_tables()
        model: dict[int, int] = {}
        for put in puts:
            values = {seq: {"v": v} for seq, v in put.items()}
            if any(model.get(seq, v) != v for seq, v in put.items()):
                with pytest.raises(ConflictError, match="nothing of this put was written"):
                    run.put(values)
            else:
                run.put(values)
                model.update(put)
            assert tables.parts(run.id) == {
                seq: content_hash(canonical_bytes({"v": v})) for seq, v in model.items()}
        assert run.todo() == [s for s in range(25) if s not in model]
        tables.forget(run.id)
        assert {s: v[2] for s, v in tables.part_values(run.id).items()} == {
            seq: canonical_bytes({"v": v}) for seq, v in model.items()}
        cid = run.commit(partial=True)
        assert store.load_stage_output(cid, "s") == {
            "frames": {str(seq): {"v": v} for seq, v in model.items()}}


@pytest.mark.parametrize("kind", [k for k in ("embedded", "postgres-local") if k in KINDS])
def test_a_put_is_one_write_and_no_read(new_store: Any, kind: str) -> None:
    """One engine.write per put (PostgreSQL sends it in one round trip), whatever its
    size, once the run knows its frames; nothing read."""
    store = new_store(kind)
    tl = store.create_timeline("v.mp4", "p", frames(30), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    run.todo()  # the frame index and keys, read once per run object
    engine = store.catalog.engine
    calls: list[str] = []
    for name in ("write", "query", "snapshot", "transaction"):
        original = getattr(engine, name)
        setattr(engine, name, lambda *a, _n=name, _o=original, **k: (calls.append(_n),
                                                                    _o(*a, **k))[1])
    for chunk in (range(0, 3), range(3, 30)):
        calls.clear()
        run.put({s: value(s) for s in chunk})
        assert calls == ["write"]


@pytest.mark.parametrize("kind", [k for k in ("embedded", "postgres-local") if k in KINDS])
def test_a_put_of_new_frames_reads_no_frame_back(new_store: Any, kind: str,
                                                  monkeypatch: Any) -> None:
    """Cost: a put of new frames checks that the run is open and that no put row of the
    run spans its sequences (an index range), then inserts its one row, in one write;
    the frames already put are read (another value there?) only when a row spans them,
    in a transaction of its own. Reading the frames of every put back was a third of
    the time of a put's statements before its COMMIT on SQLite."""
    store = new_store(kind)
    tl = store.create_timeline("v.mp4", "p", frames(10), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    run.todo()
    engine = store.catalog.engine
    guards: list[list[str]] = []
    write, transaction = engine.write, engine.transaction
    monkeypatch.setattr(engine, "write", lambda steps: (
        guards.append([st.refuse[0] for st in steps if st.refuse]), write(steps))[1])
    monkeypatch.setattr(engine, "transaction", lambda: (
        guards.append(["transaction"]), transaction())[1])
    run.put({s: value(s) for s in range(5)})
    assert guards == [["LC421", "LC423"]]
    guards.clear()
    run.put({s: value(s) for s in range(3, 8)})  # 3 and 4 are there, equal: a no-op
    assert guards == [["LC421", "LC423"], ["transaction"]]
    with pytest.raises(ConflictError, match=r"frame\(s\) 1 already hold"):
        run.put({1: value(1, "other"), 9: value(9)})
    monkeypatch.undo()
    assert run.todo() == [8, 9]
    run.put({s: value(s) for s in (8, 9)})
    assert store.load_stage_output(run.commit(), "detect") == expected(range(10))


def test_runs_on_a_duckdb_catalog(new_store: Any) -> None:
    """DuckDB (one process; not a store_kind): the same tables, guards and memo."""
    store = new_store("duckdb")
    tl = store.create_timeline("v.mp4", "p", frames(12), codec="png")
    run = store.begin_run(tl.id, None, "detect", params={"t": 0.5}, version="v1")
    run.put({s: value(s) for s in range(6)})
    with pytest.raises(ConflictError):
        run.put({1: value(1, "other"), 7: value(7)})
    run.put({s: value(s) for s in range(6, 12)})
    cid = run.commit()
    assert stored_hash(store, cid) == content_hash(canonical_bytes(expected(range(12))))
    again = store.begin_run(tl.id, None, "detect", params={"t": 0.5}, version="v1")
    assert again.todo() == [] and again.memo_hits == 12
    assert stored_hash(store, again.commit()) == stored_hash(store, cid)
    gone = store.begin_run(tl.id, None, "ocr", memo=False)
    gone.put({0: value(0)})
    gone.abort()
    collect_garbage(store, older_than=0, grace=0)
    assert (gone.state, count(store, "run_parts")) == ("aborted", 0)
    assert store.clear_memo() == 12


def test_a_catalog_made_before_runs_gets_their_tables_on_open(tmp_path: Any,
                                                              monkeypatch: Any) -> None:
    from localckpt.backends.sql import schema

    with monkeypatch.context() as m:  # the code of before: no migration 7
        m.setattr(schema, "MIGRATIONS", ())
        m.setattr(schema, "LATEST_VERSION", schema.BASE_VERSION)
        with localckpt.open(tmp_path / "old", create=True) as old:
            assert schema.version_of(old.catalog.engine) == 6
            assert not old.catalog.engine.has_table("runs")
            tid = old.create_timeline("v.mp4", "p", frames(3), codec="png").id
    with localckpt.open(tmp_path / "old") as store:
        assert schema.version_of(store.catalog.engine) == schema.LATEST_VERSION
        run = store.begin_run(tid, None, "detect")
        run.put({s: value(s) for s in range(3)})
        assert store.load_stage_output(run.commit(), "detect") == expected(range(3))


def test_a_part_holding_another_values_bytes_is_an_error(tmp_path: Any) -> None:
    """Read by a process that did not put it (the putting process takes the bytes it
    put, which hash to the part's value hash: it never reads the damaged ones)."""
    store = localckpt.open(tmp_path / "s", create=True)
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    run.put({s: value(s) for s in range(3)})
    datas = [canonical_bytes(value(s)) for s in range(3)]
    datas[1] = datas[1].replace(b"1.5", b"1.6")  # another value, of the same size
    with store.catalog.engine.transaction() as tx:
        tx.execute("UPDATE run_puts SET data = ?", (b"".join(datas),))
    with localckpt.open(tmp_path / "s") as other:
        again = other.get_run(run.id)
        with pytest.raises(CorruptDataError, match="run_puts"):
            again.commit()
        assert again.state == "open" and again.checkpoint_id is None  # refused before it began
    assert store.load_stage_output(run.commit(), "detect") == expected(range(3))
    store.close()


@pytest.mark.parametrize("kind", [k for k in ("embedded", "postgres-local") if k in KINDS]
                         + ["duckdb"])
def test_a_commit_reads_back_no_value_this_process_put(new_store: Any, kind: str,
                                                       monkeypatch: Any) -> None:
    """Cost: the commit of a run whose frames this process put reads no part (it has
    them: their bytes hash to each part's value hash, which the part's digest covers, and
    count(*) says there are no others); when another process put some, the rows are read
    and only those parts' bytes are fetched, and checked."""
    store = new_store(kind)
    tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
    run = store.begin_run(tl.id, None, "detect", memo=False)
    run.put({s: value(s) for s in range(4)})
    engine = store.catalog.engine
    said: list[tuple[str, Any]] = []
    query = engine.query
    monkeypatch.setattr(engine, "query", lambda q, p=(): (said.append((q, p)), query(q, p))[1])
    tables = store._run_tables()
    assert {s: v[2] for s, v in tables.part_values(run.id).items()} == {
        s: canonical_bytes(value(s)) for s in range(4)}
    # every part is one it put (sum(n) says so): no row is read
    assert said and not [q for q, _ in said if "SELECT run_id, lo" in q], said
    with tables._written_lock:  # as if frames 4 and 5 were put by another process
        tables._written[run.id].pop(3)
    tables.put(run.id, [(s, content_hash(canonical_bytes(value(s))),
                         canonical_bytes(value(s)), None) for s in (4, 5)])
    with tables._written_lock:
        tables._written[run.id].pop(4)
    said.clear()
    assert {s: v[2] for s, v in tables.part_values(run.id).items()} == {
        s: canonical_bytes(value(s)) for s in range(6)}
    fetched = [p for q, p in said if "data FROM" in q]
    assert len(fetched) == 1, said
    los = fetched[0][1]  # SQLite binds a list as JSON text: the rows holding 3 and 4
    assert sorted(orjson.loads(los) if isinstance(los, str) else los) == [0, 4]
    monkeypatch.undo()
    assert store.load_stage_output(run.commit(), "detect") == expected(range(6))


def test_a_part_moved_to_another_value_is_an_error_where_it_is_read(tmp_path: Any) -> None:
    """A row that now names another value, consistently, fails its digest in a process
    that reads it; the process that put every frame reads no row back at its commit (it
    holds what it wrote, and count(*) says the run has no other part): it saves the
    values it put, and nothing damaged is served."""
    store = localckpt.open(tmp_path / "s", create=True)
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    run.put({s: value(s) for s in range(3)})
    datas = [canonical_bytes(value(s)) for s in (0, 2, 2)]  # frame 1 names frame 2's value
    with store.catalog.engine.transaction() as tx:
        tx.execute("UPDATE run_puts SET data = ?, value_hashes = ?",
                   (b"".join(datas), ",".join(map(content_hash, datas))))
    with localckpt.open(tmp_path / "s") as second, \
            pytest.raises(CorruptDataError, match="does not match its digest"):
        second.get_run(run.id).commit()
    assert store.load_stage_output(run.commit(), "detect") == expected(range(3))
    store.close()


def test_a_commit_hashes_only_the_values_another_process_put(tmp_path: Any,
                                                           monkeypatch: Any) -> None:
    """Cost: the parts a process put are compared with what it wrote, not hashed again;
    parts it did not write (another worker's, or a store opened again) are hashed."""
    from localckpt.backends.sql import runs as run_tables

    hashed: list[str] = []
    holds = run_tables._holds
    monkeypatch.setattr(run_tables, "_holds",
                        lambda data, h: hashed.append(h) or holds(data, h))
    store = localckpt.open(tmp_path / "s", create=True)
    tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
    mine = store.begin_run(tl.id, None, "detect", memo=False)
    mine.put({s: value(s) for s in range(6)})
    assert mine.commit() and hashed == []
    theirs = store.begin_run(tl.id, None, "classify", memo=False)
    with localckpt.open(tmp_path / "s") as other:  # another worker's puts
        other.get_run(theirs.id).put({s: value(s) for s in range(6)})
    theirs.commit()
    store.close()
    assert len(hashed) == 6


def test_parts_and_memo_entries_of_values_kept_as_outputs_move_into_their_rows(
        tmp_path: Any, monkeypatch: Any) -> None:
    """Migration 9: a store whose parts and memo entries named outputs (with references
    keeping them) opens with the parts' values in their rows and the entries pointing at
    their outputs, which go at gc once the memo is cleared."""
    from localckpt.backends.sql import schema
    from localckpt.backends.sql.runs import RunTables, part_digest
    from localckpt.records import utcnow

    hashes = [content_hash(canonical_bytes(value(s))) for s in range(3)]
    with monkeypatch.context() as m:  # the code of before: migrations up to 8
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        m.setattr(schema, "LATEST_VERSION", 8)
        m.setattr(RunTables, "available", True)  # runs begun here, without put rows
        with localckpt.open(tmp_path / "old", create=True) as old:
            tl = old.create_timeline("v.mp4", "p", frames(3), codec="png")
            run = old.begin_run(tl.id, None, "detect")
            e = old.catalog.engine
            with e.transaction() as tx:  # what a put of before wrote
                for s, h in enumerate(hashes):
                    key = run.memo_key(s)
                    tx.execute("INSERT INTO outputs (hash, data) VALUES (?, ?)",
                               (h, canonical_bytes(value(s))))
                    tx.execute("INSERT INTO run_parts (run_id, sequence, value_hash, digest) "
                               "VALUES (?, ?, ?, ?)", (run.id, s, h, part_digest(run.id, s, h)))
                    old_memo_entry(tx, e, key.digest, "detect", "", key.params, key.frame,
                                   {}, h, run.id, utcnow())
                    tx.execute("INSERT INTO output_refs (hash, owner) VALUES (?, ?), (?, ?)",
                               (h, run.id, h, key.digest))
    with localckpt.open(tmp_path / "old") as store:
        assert schema.version_of(store.catalog.engine) == schema.LATEST_VERSION >= 9
        owners = store.catalog.engine.query("SELECT owner FROM output_refs WHERE hash IN "
                                            "(?, ?, ?)", hashes)
        assert run.id not in {o for (o,) in owners} and len(owners) == 3  # the keys' refs
        for _ in range(2):
            collect_garbage(store, older_than=0, grace=0)
        assert not store.catalog.missing_outputs(set(hashes))  # the memo holds them
        again = store.begin_run(tl.id, None, "detect")
        assert again.todo() == [] and again.memo_hits == 3
        assert store.load_stage_output(again.commit(), "detect") == expected(range(3))
        assert store.load_stage_output(store.get_run(run.id).commit(), "detect") == \
            expected(range(3))
        assert store.clear_memo() == 3
        for _ in range(2):
            collect_garbage(store, older_than=0, grace=0)
        assert store.catalog.missing_outputs(set(hashes)) == set(hashes)


def _code_of_14(monkeypatch: Any) -> contextlib.AbstractContextManager[None]:
    """Stores opened inside are made (or opened) at version 14, before migration 15."""
    from old_memo import code_of

    return code_of(monkeypatch, 14)


def _parts_of_14(old: localckpt.Store, damaged: bool = False) -> tuple[str, str, str]:
    """In a store at version 14, what the code of before wrote: an open run with frames
    0-4 put as one part row each (frame 2's bytes damaged, when damaged), and an aborted
    run of 6 frames whose parts gc has not purged yet. (timeline id, open run id,
    aborted run id)."""
    import attrs

    from localckpt.backends.sql import schema
    from localckpt.backends.sql.runs import part_digest
    from localckpt.records import utcnow

    e = old.catalog.engine
    assert schema.version_of(e) == 14
    tl = old.create_timeline("v.mp4", "p", frames(6), codec="png")
    run = old.begin_run(tl.id, None, "detect")
    done = old.begin_run(tl.id, None, "classify", memo=False)
    with e.transaction() as tx:
        for rid, seqs in ((run.id, range(5)), (done.id, range(6))):
            for s in seqs:
                data = canonical_bytes(value(s))
                h = content_hash(data)
                key = run.memo_key(s).digest if rid == run.id else None
                if damaged and s == 2 and rid == run.id:
                    data = data.replace(b"2.5", b"2.6")
                tx.execute(e.sql("INSERT INTO {s}run_parts (run_id, sequence, value_hash, "
                                 "key, data, digest) VALUES (?, ?, ?, ?, ?, ?)"),
                           (rid, s, h, key, data, part_digest(rid, s, h, key)))
    old._run_tables().change(done.id, lambda rec, tx: attrs.evolve(
        rec, state="aborted", closed_at=utcnow(), done=6))  # its parts stay
    return tl.id, run.id, done.id


MIGRATING_KINDS = [k for k in ("embedded", "postgres-local") if k in KINDS] + ["duckdb"]


@pytest.mark.parametrize("kind", MIGRATING_KINDS)
def test_migration_15_moves_the_parts_of_open_runs_into_put_rows(
        new_store: Any, kind: str, monkeypatch: Any) -> None:
    """An open run's parts, one row per frame, become put rows: todo() is what was
    missing, a put of an equal value is a no-op and of another value a conflict, and
    the commit is save_stage_output's bytes; a closed run's parts (read no more) go."""
    from localckpt.backends.sql import schema

    with _code_of_14(monkeypatch):
        old = new_store(kind)
        tid, run_id, done_id = _parts_of_14(old)
    store = new_store.reopen(old)
    engine = store.catalog.engine
    assert schema.version_of(engine) == schema.LATEST_VERSION >= 15
    assert not engine.has_table("run_parts")
    assert engine.query("SELECT run_id, lo, hi, n FROM {s}run_puts") == [(run_id, 0, 4, 5)]
    run = store.get_run(run_id)
    assert run.todo() == [5] and run.done == 5
    run.put({s: value(s) for s in (2, 3)})  # equal values: a no-op
    with pytest.raises(ConflictError, match=r"frame\(s\) 4 already hold"):
        run.put({4: value(4, "other"), 5: value(5)})
    assert run.todo() == [5]
    run.put({5: value(5)})
    cid = run.commit()
    assert store.load_stage_output(cid, "detect") == expected(range(6))
    saved = store.save_stage_output(tid, None, "detect", expected(range(6)))
    assert stored_hash(store, cid) == stored_hash(store, saved)
    assert store.begin_run(tid, None, "detect").todo() == []  # the memo holds them
    assert store.get_run(done_id).state == "aborted"


def test_a_catalog_of_before_migration_15_opened_read_only_has_no_runs_to_read(
        tmp_path: Any, monkeypatch: Any) -> None:
    """Never migrated, it has no put rows: its runs are not read (not an error of a
    missing table), as a catalog older than runs."""
    from localckpt.backends.sql import sqlite_catalog

    with _code_of_14(monkeypatch), localckpt.open(tmp_path / "s", create=True) as old:
        _parts_of_14(old)
    ro = sqlite_catalog(str(tmp_path / "s" / "catalog.sqlite"), read_only=True)
    try:
        assert ro.engine.has_table("runs") and not ro.runs.available
    finally:
        ro.close()


@pytest.mark.parametrize("kind", MIGRATING_KINDS)
def test_migration_15_refuses_a_damaged_part_and_changes_nothing(
        new_store: Any, kind: str, monkeypatch: Any) -> None:
    from localckpt.backends.sql import schema

    with _code_of_14(monkeypatch):
        old = new_store(kind)
        _parts_of_14(old, damaged=True)
    with pytest.raises(CorruptDataError, match="run_parts"):
        new_store.reopen(old)
    with _code_of_14(monkeypatch):
        again = new_store.reopen(old)
        engine = again.catalog.engine
        assert schema.version_of(engine) == 14 and not engine.has_table("run_puts")
        assert count(again, "runs") == 2
        assert int(engine.query("SELECT count(*) FROM {s}run_parts")[0][0]) == 11


def test_puts_and_commits_run_with_the_cyclic_gc_paused(new_store: Any) -> None:
    """Cost: no collection runs inside a put or a commit (each would rescan every object
    the process holds, the caller's values included); the GC is enabled again after
    them, also after one refused, and a GC the caller disabled stays disabled."""
    import gc

    store = new_store("embedded")
    n = 1500
    tl = store.create_timeline("v.mp4", "p", frames(n), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    run.todo()
    values, other = {s: value(s) for s in range(n)}, {0: value(0, "other")}
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    def counted(call: Any, *args: Any) -> int:
        """Collections during call (the one that the first allocation after the GC is
        enabled again may start, at most, with a pause)."""
        gc.collect()
        collections.clear()
        gc.callbacks.append(seen)
        try:
            call(*args)
        finally:
            gc.callbacks.remove(seen)
        return len(collections)

    assert counted(run.put, values) <= 1
    with pytest.raises(ConflictError):
        counted(run.put, other)
    assert len(collections) <= 1 and gc.isenabled()
    assert counted(run.commit) <= 1 and gc.isenabled()
    gc.disable()
    try:
        again = store.begin_run(tl.id, None, "detect", memo=False)
        again.put(values)
        again.commit()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_put_encodes_each_value_once(new_store: Any, monkeypatch: Any) -> None:
    """Cost: a put writes each value's canonical bytes once (orjson, then the census of
    the whole output over them): the output itself is encoded only for a value that is
    not plain JSON, to refuse it naming where (or to take an unusual but valid one)."""
    import orjson as real

    from localckpt import canonical

    store = new_store("memory")
    tl = store.create_timeline("v.mp4", "p", frames(4), codec="png")
    run = store.begin_run(tl.id, None, "detect", memo=False)
    run.todo()
    wrapped: list[Any] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @staticmethod
        def dumps(value: Any, *args: Any, **kwargs: Any) -> bytes:
            if isinstance(value, dict) and "frames" in value:
                wrapped.append(value)
            return real.dumps(value, *args, **kwargs)

    monkeypatch.setattr(canonical, "orjson", Counting())
    run.put({s: value(s) for s in range(2)})
    assert wrapped == []
    run.put({2: {"score": np.float32(0.5)}})  # valid, not plain: encoded as before
    assert len(wrapped) == 1
    with pytest.raises(InvalidInputError, match=r"the output\['frames'\]\['3'\]"):
        run.put({3: {"score": float("nan")}})
    monkeypatch.undo()
    run.put({3: value(3)})
    out = store.load_stage_output(run.commit(), "detect")
    assert out["frames"]["2"] == {"score": 0.5} and out["frames"]["1"] == value(1)
