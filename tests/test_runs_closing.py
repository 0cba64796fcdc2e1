"""Deletions close the stage runs they orphan (localckpt.runs.closing), on every store kind.

prune, retain and rm close, in the transaction of their tombstones, the open runs whose
parent checkpoint or timeline they delete, and name them in their report; a transfer
(sync, pull, push, import) closes those its tombstones orphan right after its commit;
gc closes those no deletion closed (a crash between a transfer's commit and its
closing) and then takes every closed run's parts. A put into such a run is refused
saying why, and writes nothing.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from engine_reads import traced
from test_runs import count, expected, frames, tombstones, value

import localckpt
from localckpt.cli import main
from localckpt.errors import InvalidInputError
from localckpt.gc import collect_garbage


@pytest.fixture
def store(new_store: Any, store_kind: str) -> localckpt.Store:
    return new_store(store_kind)


def gc(store: localckpt.Store) -> Any:
    return collect_garbage(store, older_than=0, grace=0)


def test_prune_closes_the_runs_under_what_it_deletes_and_gc_takes_their_parts(
        store: localckpt.Store) -> None:
    tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(6)))
    below = store.save_stage_output(tl.id, det, "track", {"t": 1})
    keyed = store.begin_run(tl.id, det, "classify", inputs=("detect",))
    keyed.put({s: value(s) for s in range(3)})
    deep = store.begin_run(tl.id, below, "ocr", memo=False)  # under a descendant
    deep.put({0: value(0)})
    fine = store.begin_run(tl.id, None, "classify")  # on the root: not below det
    fine.put({s: value(s) for s in range(6)})
    assert store.prune(det, dry_run=True).closed_runs == tuple(sorted((keyed.id, deep.id)))
    assert {r.id for r in store.runs(state="open")} == {keyed.id, deep.id, fine.id}
    parts = count(store, "run_parts")
    report = store.prune(det)
    assert report.closed_runs == tuple(sorted((keyed.id, deep.id)))
    assert "and closed 2 open stage runs that depended on them;" in report.summary()
    assert (keyed.state, deep.state, fine.state) == ("aborted", "aborted", "open")
    assert (keyed.record.done, deep.record.done) == (3, 1)
    with pytest.raises(InvalidInputError, match=f"run {keyed.id} was aborted because its "
                       f"parent checkpoint {det} was pruned"):
        keyed.put({4: value(4)})
    with pytest.raises(InvalidInputError, match="because its parent checkpoint"):
        store.get_run(deep.id).put({1: value(1)})
    with pytest.raises(InvalidInputError, match=r"was aborted because .* it cannot be commit"):
        keyed.commit(partial=True)
    assert count(store, "run_parts") == parts  # nothing of those puts was written
    report = gc(store)
    assert report.closed_runs == ()  # the prune closed them already
    assert count(store, "run_parts") == 6  # the open run's parts only
    assert fine.state == "open" and fine.todo() == []
    assert store.load_stage_output(fine.commit(), "classify") == expected(range(6))


def test_rm_closes_the_timelines_runs_and_gc_takes_their_parts_and_frames(
        store: localckpt.Store, new_store: Any, store_kind: str) -> None:
    tl = store.create_timeline("v.mp4", "p", frames(5), codec="png")
    other = store.create_timeline("w.mp4", "p", frames(3, seed=1), codec="png")
    lost = store.begin_run(tl.id, None, "detect", memo=False)
    lost.put({s: value(s) for s in range(5)})
    kept = store.begin_run(other.id, None, "detect", memo=False)
    kept.put({0: value(0)})
    assert store.delete_timeline(tl.id, dry_run=True).closed_runs == (lost.id,)
    assert lost.state == "open"
    report = store.delete_timeline(tl.id)
    assert report.closed_runs == (lost.id,) and lost.state == "aborted"
    with pytest.raises(InvalidInputError, match=f"because its timeline {tl.id} was deleted"):
        lost.put({0: value(0)})
    if new_store.can_reopen(store_kind) and store_kind != "embedded-memobjects":
        # a worker's copy: it opens the store itself (not from this process's memory)
        with pickle.loads(pickle.dumps(lost)) as worker, \
                pytest.raises(InvalidInputError, match="because its timeline"):
            worker.put({1: value(1)})
    objects = len(store.objects.stat(f"frames/{tl.id}"))
    assert objects and count(store, "run_parts") == 6
    gc(store)
    assert count(store, "run_parts") == 1 and not store.objects.stat(f"frames/{tl.id}")
    assert kept.state == "open" and kept.done == 1


def test_retain_closes_the_runs_under_what_it_deletes(store: localckpt.Store) -> None:
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    old = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
    new = store.save_stage_output(tl.id, None, "detect", expected(range(3), "new"))
    under_old = store.begin_run(tl.id, old, "track")
    under_new = store.begin_run(tl.id, new, "track")
    assert store.retain(tl.id, keep_last=1).closed_runs == (under_old.id,)
    assert (under_old.state, under_new.state) == ("aborted", "open")


def test_a_closed_runs_values_stay_in_the_memo(store: localckpt.Store) -> None:
    """Its keys are made before the deletion, while what they read is live."""
    tl = store.create_timeline("v.mp4", "p", frames(4), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(4)))
    run = store.begin_run(tl.id, det, "ocr", version="v")
    run.put({s: value(s) for s in range(3)})
    store.prune(det)
    gc(store)
    assert count(store, "run_parts") == 0  # the hits below are memo entries
    again = store.begin_run(tl.id, None, "ocr", version="v")  # the same keys: no inputs
    assert again.todo() == [3] and again.memo_hits == 3


def test_the_deletion_and_the_closing_are_one_write(store: localckpt.Store,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A closing that fails leaves no tombstone behind, and every run as it was."""
    from localckpt.backends.sql.runs import RunTables

    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
    first = store.begin_run(tl.id, det, "a", memo=False)
    second = store.begin_run(tl.id, det, "b", memo=False)
    change_in = RunTables.change_in
    calls = []

    def failing(self: Any, tx: Any, run_id: str, *args: Any) -> Any:
        calls.append(run_id)
        if len(calls) == 2:
            raise InvalidInputError("injected")
        return change_in(self, tx, run_id, *args)

    monkeypatch.setattr(RunTables, "change_in", failing)
    with pytest.raises(InvalidInputError, match="injected"):
        store.prune(det)
    monkeypatch.undo()
    assert store.live_checkpoints([det]) and not store.catalog.tombstones([tl.id])
    assert (first.state, second.state) == ("open", "open")
    assert store.prune(det).closed_runs == tuple(sorted((first.id, second.id)))


def test_gc_closes_the_runs_no_deletion_closed(store: localckpt.Store) -> None:
    """Tombstones a sync brings close nothing: gc closes those runs, then takes their
    parts in the same collection (a dry run names them and closes nothing)."""
    tl = store.create_timeline("v.mp4", "p", frames(4), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(4)))
    orphan = store.begin_run(tl.id, det, "ocr", memo=False)
    orphan.put({s: value(s) for s in range(4)})
    fine = store.begin_run(tl.id, None, "ocr", memo=False)
    fine.put({0: value(0)})
    tombstones(store, (det, "checkpoint", tl.id))
    assert orphan.state == "open"
    dry = collect_garbage(store, older_than=0, grace=0, dry_run=True)
    assert dry.closed_runs == (orphan.id,) and "would close 1 orphaned stage run" in \
        dry.summary()
    assert orphan.state == "open" and count(store, "run_parts") == 5
    report = gc(store)
    assert report.closed_runs == (orphan.id,) and "closed 1 orphaned stage run" in \
        report.summary()
    assert (orphan.state, fine.state) == ("aborted", "open")
    assert count(store, "run_parts") == 1
    with pytest.raises(InvalidInputError, match="because its parent checkpoint"):
        orphan.put({0: value(0)})


def test_an_abort_before_the_deletion_is_not_blamed_on_it(store: localckpt.Store) -> None:
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
    run = store.begin_run(tl.id, det, "ocr", memo=False)
    run.abort()
    assert store.prune(det).closed_runs == ()
    with pytest.raises(InvalidInputError, match=r"is aborted: it takes no more values") as e:
        run.put({0: value(0)})
    assert "because" not in str(e.value)


def test_the_cli_names_the_runs_a_deletion_closes(tmp_path: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
        det = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
        run = store.begin_run(tl.id, det, "ocr", memo=False)
        run.put({0: value(0)})
        other = store.begin_run(tl.id, None, "ocr", memo=False)
        short, other_short = store.short_id(run.id, "run"), store.short_id(other.id, "run")
    assert main(["--store", path, "prune", det, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "and would close 1 open stage run that depended on them;" in out
    assert f"  would close run {short}: what it depended on is deleted" in out
    assert main(["--store", path, "prune", det, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["closed_runs"] == [run.id] and report["short_ids"][run.id] == short
    assert main(["--store", path, "runs", "--state", "open", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [other.id]
    assert main(["--store", path, "rm", tl.id]) == 0
    out = capsys.readouterr().out
    assert "and closed 1 open stage run that depended on them;" in out
    assert f"  closed run {other_short}: what it depended on is deleted" in out


def test_prune_closes_runs_on_a_duckdb_catalog(new_store: Any) -> None:
    """DuckDB (one process; not a store_kind): the same one transaction."""
    store = new_store("duckdb")
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
    run = store.begin_run(tl.id, det, "ocr")
    run.put({0: value(0)})
    fine = store.begin_run(tl.id, None, "ocr", version="other")
    assert store.prune(det).closed_runs == (run.id,)
    assert (run.state, fine.state) == ("aborted", "open")
    gc(store)
    assert count(store, "run_parts") == 0 and store.memo_stats().entries == 1


# -- deletions that arrive by a transfer (localckpt.runs.closing.close_transferred) ---------


def _laptop_and_team(store: localckpt.Store, new_store: Any
                     ) -> tuple[localckpt.Store, str, str, str]:
    """store (the laptop) with a timeline, det and a sibling of it on the root, all
    pushed to a new embedded store (the team's): (team, timeline, det, sibling)."""
    team = new_store("embedded")
    return (team, *_pushed(store, team))


def _pushed(store: localckpt.Store, team: localckpt.Store) -> tuple[str, str, str]:
    tl = store.create_timeline("v.mp4", "p", frames(4), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(4)))
    sibling = store.save_stage_output(tl.id, None, "detect", expected(range(4), "b"))
    localckpt.sync(store, team)
    return tl.id, det, sibling


def test_a_pulled_deletion_closes_the_runs_it_orphans(store: localckpt.Store,
                                                      new_store: Any) -> None:
    """The team prunes det: the laptop's pull closes its open run on det right after
    the commit and names it, a put into it is refused saying why; a run on another
    checkpoint stays open and commits. hide_unseen=False (push / pull without --force)
    does not refuse it: a run is not a checkpoint."""
    team, tid, det, sibling = _laptop_and_team(store, new_store)
    lost = store.begin_run(tid, det, "ocr", inputs=("detect",))
    lost.put({s: value(s) for s in range(2)})
    fine = store.begin_run(tid, sibling, "ocr", memo=False)
    fine.put({s: value(s) for s in range(4)})
    team.prune(det)
    parts = count(store, "run_parts")
    report = localckpt.sync(team, store, hide_unseen=False)
    assert report.tombstones == 1 and report.closed_runs == (lost.id,)
    assert not report.hidden and not report.warnings()
    assert report.summary().endswith(
        "; closed 1 open stage run that depended on what the deletions took")
    assert (lost.state, fine.state) == ("aborted", "open")
    assert lost.record.done == 2 and lost.record.closed_at is not None
    with pytest.raises(InvalidInputError, match=f"run {lost.id} was aborted because its "
                       f"parent checkpoint {det} was pruned"):
        lost.put({2: value(2)})
    with pytest.raises(InvalidInputError, match="because its parent checkpoint"):
        store.get_run(lost.id).commit(partial=True)
    assert count(store, "run_parts") == parts  # the refused put wrote nothing
    assert store.memo_stats().entries == 0  # its keys cannot be made: det is gone
    again = localckpt.sync(team, store)
    assert not again and again.closed_runs == () and "closed" not in again.summary()
    assert gc(store).closed_runs == ()  # the pull closed it already
    assert count(store, "run_parts") == 4  # the open run's parts only
    assert store.load_stage_output(fine.commit(), "ocr") == expected(range(4))


def test_a_pulled_timeline_deletion_closes_the_timelines_runs(store: localckpt.Store,
                                                              new_store: Any) -> None:
    team, tid, det, _ = _laptop_and_team(store, new_store)
    other = store.create_timeline("w.mp4", "p", frames(2, seed=1), codec="png")
    on_root = store.begin_run(tid, None, "detect", memo=False)
    on_det = store.begin_run(tid, det, "ocr", memo=False)
    elsewhere = store.begin_run(other.id, None, "detect", memo=False)
    team.delete_timeline(tid)
    report = localckpt.sync(team, store)
    assert report.closed_runs == tuple(sorted((on_root.id, on_det.id)))
    assert (on_root.state, on_det.state, elsewhere.state) == ("aborted", "aborted", "open")
    with pytest.raises(InvalidInputError, match=f"because its timeline {tid} was deleted"):
        on_det.put({0: value(0)})


def test_an_imported_deletion_closes_the_runs_it_orphans(store: localckpt.Store,
                                                         new_store: Any, tmp_path: Any
                                                         ) -> None:
    from localckpt.bundle import export_bundle, import_bundle

    team, tid, det, sibling = _laptop_and_team(store, new_store)
    lost = store.begin_run(tid, det, "ocr", memo=False)
    lost.put({0: value(0)})
    fine = store.begin_run(tid, sibling, "ocr", memo=False)
    team.prune(det)
    bundle = tmp_path / "t.lckpt"
    export_bundle(team, tid, bundle)
    report = import_bundle(store, bundle)
    assert report.tombstones == 1 and report.closed_runs == (lost.id,)
    assert (lost.state, fine.state) == ("aborted", "open")
    with pytest.raises(InvalidInputError, match=f"because its parent checkpoint {det}"):
        lost.put({1: value(1)})
    assert import_bundle(store, bundle).closed_runs == ()


def test_a_refused_pull_closes_nothing(store: localckpt.Store, new_store: Any) -> None:
    """Work the team never held below what it pruned (a checkpoint) refuses the pull
    (hide_unseen=False) and leaves every run open; --force (True) closes the runs on det
    and on that work."""
    from localckpt.errors import HiddenWorkError

    team, tid, det, _ = _laptop_and_team(store, new_store)
    mine = store.save_stage_output(tid, det, "mine", {"m": 1})
    on_det = store.begin_run(tid, det, "ocr", memo=False)
    on_mine = store.begin_run(tid, mine, "ocr", memo=False)
    team.prune(det)
    with pytest.raises(HiddenWorkError) as exc:
        localckpt.sync(team, store, hide_unseen=False)
    assert exc.value.checkpoints == [mine]  # the checkpoint, not the runs
    assert (on_det.state, on_mine.state) == ("open", "open")
    report = localckpt.sync(team, store)
    assert report.hidden == (mine,)
    assert report.closed_runs == tuple(sorted((on_det.id, on_mine.id)))


def test_a_deletion_made_on_a_clock_ahead_still_says_why(store: localckpt.Store,
                                                         new_store: Any) -> None:
    """The tombstone's time is the other machine's: the run is closed no earlier, so the
    refusal still names the deletion (it is not taken for an abort before it)."""
    from datetime import timedelta

    from localckpt.catalog import Batch
    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.types import Tombstone

    team, tid, det, _ = _laptop_and_team(store, new_store)
    run = store.begin_run(tid, det, "ocr", memo=False)
    ahead = utcnow() + timedelta(hours=1)
    team.catalog.commit(Batch(tombstones=[Tombstone(new_id(), det, "checkpoint", tid, ahead)]))
    assert localckpt.sync(team, store).closed_runs == (run.id,)
    assert run.record.closed_at == ahead
    with pytest.raises(InvalidInputError, match="because its parent checkpoint"):
        run.put({0: value(0)})


def test_gc_closes_a_run_no_earlier_than_its_deletion(store: localckpt.Store) -> None:
    """A deletion a transfer brought on a clock ahead, the run left open (a crash after
    the transfer's commit): gc closes it no earlier than the deletion either."""
    from datetime import timedelta

    from localckpt.catalog import Batch
    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.types import Tombstone

    tl = store.create_timeline("v.mp4", "p", frames(2), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(2)))
    run = store.begin_run(tl.id, det, "ocr", memo=False)
    ahead = utcnow() + timedelta(hours=1)
    store.catalog.commit(Batch(tombstones=[Tombstone(new_id(), det, "checkpoint", tl.id,
                                                     ahead)]))
    assert gc(store).closed_runs == (run.id,) and run.record.closed_at == ahead
    with pytest.raises(InvalidInputError, match="because its parent checkpoint"):
        run.put({0: value(0)})


def test_the_cli_names_the_runs_a_pull_or_import_closes(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    laptop, team, bundle = (str(tmp_path / n) for n in ("laptop", "team", "t.lckpt"))
    with localckpt.open(laptop, create=True) as store, \
            localckpt.open(team, create=True) as team_store:
        tid, det, sibling = _pushed(store, team_store)
        pulled = store.begin_run(tid, det, "ocr", memo=False)
        imported = store.begin_run(tid, sibling, "ocr", memo=False)
        shorts = store.short_ids([pulled.id, imported.id], "run")
    assert main(["--store", team, "prune", det]) == 0
    capsys.readouterr()
    assert main(["--store", laptop, "pull", team]) == 0
    out = capsys.readouterr().out
    assert "; closed 1 open stage run that depended on what the deletions took" in out
    assert f"  closed run {shorts[pulled.id]}: a deletion copied took what it depended " \
           "on; its parts go at the next gc" in out
    assert main(["--store", team, "prune", sibling]) == 0
    assert main(["--store", team, "export", tid, bundle]) == 0
    capsys.readouterr()
    assert main(["--store", laptop, "import", bundle, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["closed_runs"] == [imported.id]
    assert main(["--store", laptop, "pull", team, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["closed_runs"] == []
    with localckpt.open(team) as store:  # push closes the receiving store's runs
        run = store.begin_run(tid, None, "ocr", memo=False)
        short = store.short_id(run.id, "run")
    with localckpt.open(laptop) as store:
        store.delete_timeline(tid)
    assert main(["--store", laptop, "push", team]) == 0
    out = capsys.readouterr().out
    assert f"  closed run {short} in {team}: a deletion copied took" in out


@pytest.mark.parametrize("kind", ["postgres-local"])
def test_a_prune_and_a_commit_saving_its_checkpoint_meanwhile_agree(
        new_store: Any, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose commit began (another process) saves its checkpoint while a prune
    of its parent is closing it: either the prune closed it and no checkpoint was
    saved, or the checkpoint was saved and the run is not among those the prune closed.
    On PostgreSQL (read committed) the prune's check that the checkpoint is not saved
    does not see the save in flight, nor does the save's guard see the prune's
    tombstone: both commit."""
    import threading
    import time

    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.runs.run import _begin_commit

    store = new_store(kind)
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
    run = store.begin_run(tl.id, det, "classify", memo=False)
    run.put({s: value(s) for s in range(3)})
    other = new_store._open_store(*new_store._how[id(store)])  # the committing process
    theirs = other.get_run(run.id)
    chosen = new_id()
    other.catalog.runs.change(run.id, _begin_commit(chosen, utcnow()))  # a commit began
    tables, saved = store.catalog.runs, store.catalog.runs.saved
    outcome: list[Any] = []

    def commit() -> None:
        try:
            outcome.append(theirs.commit())
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=commit)

    def saved_meanwhile(tx: Any, cid: str | None) -> bool:
        answer = saved(tx, cid)
        if not worker.is_alive() and not outcome:  # the other process saves now
            worker.start()
            deadline = time.monotonic() + 10
            while not (other.catalog.checkpoints([chosen]) or waiting()) \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
        return answer

    def waiting() -> bool:  # the save waits for a lock this transaction holds
        return bool(probe.catalog.engine.query(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
            "datname = current_database()"))

    probe = new_store._open_store(*new_store._how[id(store)])
    monkeypatch.setattr(tables, "saved", saved_meanwhile)
    report = store.prune(det)
    worker.join(10)
    assert not worker.is_alive()
    kept = bool(store.catalog.checkpoints([chosen]))
    state = store.get_run(run.id).state
    assert (run.id in report.closed_runs, state) in ((True, "aborted"), (False, "committed"))
    assert kept == (state == "committed"), (report.closed_runs, state, kept, outcome)


def test_a_transfer_deleting_in_two_timelines_reads_their_runs_by_index(
        new_store: Any) -> None:
    """Deletions arriving in several timelines: the open runs of those timelines are
    read through the timeline index, not by a scan of every run the store ever had
    (no index on state: closed runs pile up)."""
    laptop, team = new_store("embedded"), new_store("embedded")
    tls = [laptop.create_timeline(f"{n}.mp4", "p", frames(2, seed=n), codec="png")
           for n in range(3)]
    lost = laptop.begin_run(tls[0].id, None, "ocr", memo=False)
    localckpt.sync(laptop, team)
    team.delete_timeline(tls[0].id)
    team.delete_timeline(tls[1].id)
    with traced(laptop) as said:
        report = localckpt.sync(team, laptop)
    assert report.closed_runs == (lost.id,)
    reads = [s for s in said if s.startswith("SELECT") and " runs " in f"{s} "
             and "FROM runs" in s]
    assert reads
    for statement in reads:
        plan = " ".join(str(r[-1]) for r in laptop.catalog.engine._conn().execute(
            "EXPLAIN QUERY PLAN " + statement.replace("?", "NULL")).fetchall())
        assert "SCAN runs" not in plan, (statement, plan)


def test_an_abort_after_another_branchs_deletion_is_not_blamed_on_its_own(
        store: localckpt.Store) -> None:
    """Another branch pruned first, then the run aborted, then its parent pruned: the
    run was aborted by its caller, not closed by a deletion (the put said "was aborted
    because its parent checkpoint ... was pruned", from the other branch's tombstone)."""
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    other = store.save_stage_output(tl.id, None, "other", expected(range(3)))
    det = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
    store.prune(other)
    run = store.begin_run(tl.id, det, "ocr", memo=False)
    run.abort()
    assert store.prune(det).closed_runs == ()
    with pytest.raises(InvalidInputError, match=r"is aborted: it takes no more values") as e:
        run.put({0: value(0)})
    assert "because" not in str(e.value)
    # a run the deletion of its parent's ancestor closed still says so
    mid = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
    top = store.save_stage_output(tl.id, mid, "classify", expected(range(3)))
    closed = store.begin_run(tl.id, top, "ocr", memo=False)
    assert store.prune(mid).closed_runs == (closed.id,)
    with pytest.raises(InvalidInputError, match=r"was aborted because its parent checkpoint"):
        closed.put({0: value(0)})


def test_a_commit_whose_parent_a_deletion_took_meanwhile_says_the_run_was_closed(
        new_store: Any) -> None:
    """A commit that read its run (committing) before a prune of its parent closed it,
    then saved: the save meets the deleted parent. It says the run was aborted because
    of the prune, as a commit begun after it does, not 'checkpoint ... not found'."""
    from localckpt.records import utcnow
    from localckpt.runs.run import _begin_commit

    store = new_store("embedded")
    tl = store.create_timeline("v.mp4", "p", frames(3), codec="png")
    det = store.save_stage_output(tl.id, None, "detect", expected(range(3)))
    run = store.begin_run(tl.id, det, "classify", memo=False)
    run.put({s: value(s) for s in range(3)})
    rec = store.catalog.runs.change(run.id, _begin_commit(localckpt.ids.new_id(), utcnow()))
    store.prune(det)  # closes the committing run: its checkpoint is not saved
    left = [c.id for c in store.checkpoints(tl.id)]
    with pytest.raises(InvalidInputError, match=r"was aborted because .*pruned"):
        run._finish(rec, False)  # the commit goes on with what it read
    assert store.get_run(run.id).state == "aborted"
    assert [c.id for c in store.checkpoints(tl.id)] == left


def test_two_purges_at_once_count_each_deleted_put_once(tmp_path: Any) -> None:
    """gc's purge of closed runs' puts counted the frames of the rows it meant to delete:
    a purge by another process in between (it takes the same rows first) was counted
    twice. Now each counts the rows its own deletes returned."""
    path = tmp_path / "s"
    with localckpt.open(path, create=True) as first, localckpt.open(path) as second:
        tid = first.create_timeline("v.mp4", "p", frames(6), codec="png").id
        for chunk in ((0, 1, 2), (3, 4, 5)):
            run = first.begin_run(tid, None, f"detect{chunk[0]}", memo=False)
            run.put({s: value(s) for s in chunk})
            run.commit(partial=True)
        engine = first.catalog.engine
        query = engine.query
        others: list[int] = []

        def racing(statement: str, params: Any = ()) -> Any:
            rows = query(statement, params)
            if "SELECT lo, n FROM" in statement and not others:
                others.append(second.catalog.runs.drop_closed_parts())  # first to delete
            return rows

        engine.query = racing  # type: ignore[method-assign]
        try:
            mine = first.catalog.runs.drop_closed_parts()
        finally:
            del engine.query
        assert others[0] + mine == 6, (others, mine)
