"""Deleted checkpoints stay deleted (issue 22): the resurrection, then a stress test.

1. The scenario of issue 22, verbatim: open, save a and b, close, reopen, save c under
   b, prune a, gc. c is gone from ``checkpoints()`` and never returns: not after a
   reopen, not after more saves and gcs.
2. The stress test: 4 processes save (and now and then create a timeline) while other
   processes prune, retain, run gc and delete timelines, on the embedded store and on
   PostgreSQL. Afterwards, on a fresh open and again after a last gc:

   - nothing live is lost: every checkpoint a save returned is live exactly when no
     tombstone in the catalog deletes it (its timeline, or it or an ancestor, by the
     parents the savers recorded);
   - nothing deleted comes back: what each prune, retain and delete reported is gone;
   - no stored checkpoint lacks its parent, and after the last gc the stored trees hold
     only live checkpoints;
   - ``verify`` is clean.

The default run gives the workers a few seconds; ``-m slow`` gives them 30 s.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _slow import require_slow

import localckpt
from localckpt.errors import NotFoundError
from localckpt.gc import collect_garbage

FRAME = np.zeros((4, 4, 3), np.uint8)
KINDS = ["embedded", "postgres"]
QUICK_SECONDS = 3.0
SLOW_SECONDS = 30.0
SAVERS = 4


def _store_args(kind: str, request: pytest.FixtureRequest, tmp: Path
                ) -> tuple[str, dict[str, Any]]:
    """open() arguments of a fresh store of kind, usable by other processes."""
    if kind == "embedded":
        return str(tmp / "store"), {}
    from conftest import _drop_schema

    dsn = request.getfixturevalue("pg_dsn")
    schema = f"res_{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: _drop_schema(dsn, schema))
    return dsn, {"schema": schema, "objects": str(tmp / "objects")}


# -- 1. the scenario of issue 22 ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_pruned_checkpoint_never_comes_back(kind: str, request: pytest.FixtureRequest,
                                              tmp_path: Path) -> None:
    url, kw = _store_args(kind, request, tmp_path)
    st = localckpt.open(url, create=True, **kw)
    tl = st.create_timeline("v", "p", [FRAME])
    a = st.save_stage_output(tl.id, None, "s", {})
    b = st.save_stage_output(tl.id, a, "t", {})
    st.close()
    st = localckpt.open(url, **kw)
    c = st.save_stage_output(tl.id, b, "u", {})
    st.prune(a)
    report = collect_garbage(st)
    assert c not in [x.id for x in st.checkpoints(tl.id)]
    assert report.records_purged >= 3  # a, b and c went from the catalog
    assert st.catalog.checkpoints([a, b, c]) == []
    st.close()
    kept = [tl.root_checkpoint_id]
    for _ in range(3):  # reopened, more saves, more gc: still gone
        with localckpt.open(url, **kw) as st:
            assert [x.id for x in st.checkpoints(tl.id)] == kept
            for gone in (a, b, c):
                with pytest.raises(NotFoundError):
                    st.get_checkpoint(gone)
            with pytest.raises(NotFoundError):
                st.save_stage_output(tl.id, c, "v", {})
            kept.append(st.save_stage_output(tl.id, None, "w", {}))
            collect_garbage(st, older_than=0)
            assert c not in {x.id for x in st.checkpoints(tl.id)}
            assert st.verify().ok


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seen", [True, False], ids=["tombstone-seen", "tombstone-unseen"])
def test_a_save_under_a_parent_another_process_purged_is_refused(
        kind: str, seen: bool, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The saver remembers the parent (it saved it); another store prunes its parent's
    parent and purges both. The save must say NotFoundError and write nothing: on SQLite
    it used to store a child without its parent, live again."""
    url, kw = _store_args(kind, request, tmp_path)
    with localckpt.open(url, create=True, **kw) as saver:
        tl = saver.create_timeline("v", "p", [FRAME])
        a = saver.save_stage_output(tl.id, None, "s", {"a": 1})
        p = saver.save_stage_output(tl.id, a, "t", {"p": 1})
        with localckpt.open(url, **kw) as other:
            other.prune(a)
            if seen:
                saver.checkpoints(tl.id)  # the saver reads the tombstone before the purge
            assert collect_garbage(other).records_purged >= 2
        with pytest.raises(NotFoundError, match=p):
            saver.save_stage_output(tl.id, p, "u", {"x": 1})
        assert [c.id for c in saver.catalog.tree(tl.id)] == [tl.root_checkpoint_id]
        assert [c.id for c in saver.checkpoints(tl.id)] == [tl.root_checkpoint_id]


def test_a_purge_meeting_a_child_saved_meanwhile_leaves_both_to_the_next(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """PostgreSQL (read committed): a save whose guard ran before a prune of its parent
    commits a child under it; a purge that read the dead before that child then met the
    foreign key and failed the whole gc (the 30 s stress test, under load). It now
    leaves that batch, and the next purge takes parent and child."""
    from localckpt.backends.sql import upkeep
    from localckpt.catalog import Batch
    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.types import Checkpoint

    url, kw = _store_args("postgres", request, tmp_path)
    with localckpt.open(url, create=True, **kw) as store:
        tl = store.create_timeline("v", "p", [FRAME])
        a = store.save_stage_output(tl.id, None, "s", {"a": 1})
        store.prune(a)
        child = Checkpoint(new_id(), tl.id, a, {}, {}, {}, False, "", utcnow())
        real_dead, real_purge = upkeep._dead, upkeep.purge
        purging: list[int] = []

        def dead_then_a_save(*args: Any, **kwargs: Any) -> Any:
            found = real_dead(*args, **kwargs)
            if purging == [1]:  # the save that passed its guard before the prune commits
                store.catalog.commit(Batch(checkpoints=[child]))  # between read and delete
            return found

        def counted(catalog: Any) -> int:
            purging.append(1)
            return real_purge(catalog)

        monkeypatch.setattr(upkeep, "_dead", dead_then_a_save)
        monkeypatch.setattr(upkeep, "purge", counted)
        collect_garbage(store, older_than=0, grace=0)  # raised InvalidInputError
        assert {c.id for c in store.catalog.tree(tl.id)} >= {a, child.id}
        collect_garbage(store, older_than=0, grace=0)
        assert [c.id for c in store.catalog.tree(tl.id)] == [tl.root_checkpoint_id]
        assert [c.id for c in store.checkpoints(tl.id)] == [tl.root_checkpoint_id]


# -- 2. the stress test -----------------------------------------------------------------------


def _saver(store: localckpt.Store, rng: random.Random, base: list[str], until: float
           ) -> dict[str, Any]:
    """Save under random live checkpoints (others' too); now and then a new timeline."""
    saved: list[tuple[str, str, str]] = []
    made: list[tuple[str, str]] = []
    refused = 0
    timelines = list(base)
    pool: dict[str, list[str]] = {}
    n = 0
    while time.monotonic() < until:
        n += 1
        if n % 25 == 3:
            tl = store.create_timeline("v.mp4", "p", [FRAME])
            made.append((tl.id, tl.root_checkpoint_id))
            timelines.append(tl.id)
        tid = rng.choice(timelines)
        if tid not in pool or n % 8 == 0:
            try:
                pool[tid] = [c.id for c in store.checkpoints(tid)]
            except NotFoundError:  # deleted meanwhile
                timelines.remove(tid)
                pool.pop(tid, None)
                continue
        parent = rng.choice(pool[tid])
        try:
            cid = store.save_stage_output(tid, parent, f"s{rng.randrange(4)}",
                                          {"v": rng.randrange(12)}, stats={"n": n})
        except NotFoundError:  # the parent or the timeline was deleted meanwhile
            refused += 1
            pool[tid].remove(parent)
            if not pool[tid]:
                pool.pop(tid)
            continue
        saved.append((cid, parent, tid))
        pool[tid].append(cid)
    return {"saved": saved, "timelines": made, "refused": refused}


def _live_non_roots(store: localckpt.Store, tid: str) -> list[str]:
    return [c.id for c in store.checkpoints(tid) if c.parent_id is not None]


def _pruner(store: localckpt.Store, rng: random.Random, base: list[str], until: float
            ) -> dict[str, Any]:
    pruned: list[str] = []
    while time.monotonic() < until:
        try:
            tids = [t.id for t in store.list_timelines()]
            tid = rng.choice(tids)
            candidates = _live_non_roots(store, tid)
            if not candidates:
                time.sleep(0.02)
                continue
            report = store.prune(rng.choice(candidates), force=True)
            pruned += report.checkpoints
        except NotFoundError:  # deleted by another process meanwhile
            pass
        time.sleep(rng.uniform(0, 0.05))
    return {"pruned": pruned}


def _retainer(store: localckpt.Store, rng: random.Random, base: list[str], until: float
              ) -> dict[str, Any]:
    pruned: list[str] = []
    while time.monotonic() < until:
        try:
            tid = rng.choice([t.id for t in store.list_timelines()])
            report = store.retain(tid, keep_last=rng.randrange(2, 12))
            pruned += report.checkpoints
        except NotFoundError:
            pass
        time.sleep(rng.uniform(0.02, 0.1))
    return {"pruned": pruned}


def _collector(store: localckpt.Store, rng: random.Random, base: list[str], until: float
               ) -> dict[str, Any]:
    purged = rounds = 0
    while time.monotonic() < until:
        purged += collect_garbage(store, older_than=0, grace=0).records_purged
        rounds += 1
        time.sleep(rng.uniform(0, 0.1))
    return {"purged": purged, "rounds": rounds}


def _deleter(store: localckpt.Store, rng: random.Random, base: list[str], until: float
             ) -> dict[str, Any]:
    """Delete timelines the savers made (never the base ones: the savers need them)."""
    deleted: list[str] = []
    while time.monotonic() < until:
        others = [t.id for t in store.list_timelines() if t.id not in base]
        if others:
            tid = rng.choice(others)
            try:
                deleted += store.delete_timeline(tid).timelines
            except NotFoundError:
                pass
        time.sleep(rng.uniform(0.05, 0.2))
    return {"deleted": deleted}


def _upkeep(store: localckpt.Store, rng: random.Random, base: list[str], until: float
            ) -> dict[str, Any]:
    """Every deleting job in turn, in one process (the default run's cheaper mix)."""
    out: dict[str, Any] = {"pruned": [], "deleted": [], "purged": 0}
    jobs = [_pruner, _retainer, _deleter, _collector]
    rng.shuffle(jobs)
    turn = 0
    while time.monotonic() < until:
        job = jobs[turn % len(jobs)]
        turn += 1
        got = job(store, rng, base, min(until, time.monotonic() + 0.3))
        out["pruned"] += got.get("pruned", [])
        out["deleted"] += got.get("deleted", [])
        out["purged"] += got.get("purged", 0)
    return out


ROLES: dict[str, Callable[..., dict[str, Any]]] = {
    "saver": _saver, "pruner": _pruner, "retainer": _retainer, "gc": _collector,
    "deleter": _deleter, "upkeep": _upkeep,
}


def _worker(role: str, url: str, kwargs: dict[str, Any], seed: int, base: list[str],
            ready: Any, go: Any, seconds: float, results: Any) -> None:
    try:
        store = localckpt.open(url, **kwargs)
        ready.put(role)
        if not go.wait(300):
            raise TimeoutError("the test never started the run")
        got = ROLES[role](store, random.Random(seed), base, time.monotonic() + seconds)
        store.close()
        results.put(("ok", role, got))
    except BaseException:
        results.put(("error", role, traceback.format_exc()))


def _run(url: str, kwargs: dict[str, Any], roles: list[str], base: list[str],
         seconds: float) -> list[tuple[str, dict[str, Any]]]:
    ctx = multiprocessing.get_context("fork")  # cheap to start: no store is open here
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(role, url, kwargs, seed, base, ready, go,
                                               seconds, results))
             for seed, role in enumerate(roles)]
    for p in procs:
        p.start()
    outcomes: list[tuple[str, str, Any]] = []
    try:
        for _ in roles:  # start together, once every process has opened the store
            try:
                ready.get(timeout=300)
            except queue.Empty:
                break
        go.set()
        deadline = time.monotonic() + seconds + 300
        while len(outcomes) < len(roles) and time.monotonic() < deadline:
            try:
                outcomes.append(results.get(timeout=1))
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break
        for p in procs:
            p.join(60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    errors = [f"{role}: {got}" for status, role, got in outcomes if status != "ok"]
    assert not errors, "\n".join(errors)
    assert len(outcomes) == len(roles), f"workers exited without a result: {outcomes}"
    return [(role, got) for _, role, got in outcomes]


def _check(store: localckpt.Store, parents: dict[str, str | None], timeline_of: dict[str, str],
           saved: set[str], pruned: set[str], deleted: set[str], *, purged: bool) -> None:
    cat = store.catalog
    marks = cat.tombstones(None)
    dead_timelines = {t.target_id for t in marks if t.kind == "timeline"}
    dead_marks = {t.target_id for t in marks if t.kind == "checkpoint"}
    assert deleted <= dead_timelines

    def expected_live(cid: str) -> bool:
        if timeline_of[cid] in dead_timelines:
            return False
        node: str | None = cid
        while node is not None:
            if node in dead_marks:
                return False
            node = parents[node]
        return True

    live = {c.id for tid in {t.id for t in store.list_timelines()}
            for c in store.checkpoints(tid)}
    want = {cid for cid in parents if expected_live(cid)}
    assert live - set(parents) == set(), "checkpoints no process saved"
    lost = sorted(want - live)
    back = sorted(live - want)
    assert not lost, f"{len(lost)} live checkpoint(s) lost, e.g. {lost[:3]}"
    assert not back, f"{len(back)} deleted checkpoint(s) came back, e.g. {back[:3]}"
    assert not live & pruned, "a checkpoint a prune or retain reported came back"
    assert saved & want, "every save was deleted: the test proved nothing"
    for tid in deleted:
        with pytest.raises(NotFoundError):
            store.get_timeline(tid)
    stored_timelines = {t.id for t in cat.timelines(None)}
    for tid in stored_timelines:
        stored = {c.id: c for c in cat.tree(tid)}
        orphans = [c.id for c in stored.values()
                   if c.parent_id is not None and c.parent_id not in stored]
        assert not orphans, f"stored checkpoints without their parent: {orphans[:3]}"
        if purged:
            assert set(stored) <= want, "the last gc left deleted checkpoints stored"
    if purged:
        assert not stored_timelines & dead_timelines, "the last gc left deleted timelines"
    report = store.verify()
    assert report.ok, [p.message for p in report.damage]


def _stress(kind: str, seconds: float, roles: list[str], request: pytest.FixtureRequest,
            tmp: Path) -> None:
    url, kw = _store_args(kind, request, tmp)
    parents: dict[str, str | None] = {}
    timeline_of: dict[str, str] = {}
    with localckpt.open(url, create=True, **kw) as store:
        base = []
        for _ in range(3):
            tl = store.create_timeline("v.mp4", "p", [FRAME])
            base.append(tl.id)
            parents[tl.root_checkpoint_id] = None
            timeline_of[tl.root_checkpoint_id] = tl.id
    outcomes = _run(url, kw, roles, base, seconds)
    saved: set[str] = set()
    pruned: set[str] = set()
    deleted: set[str] = set()
    purged = refused = 0
    for _, got in outcomes:
        for tid, root in got.get("timelines", []):
            parents[root], timeline_of[root] = None, tid
        for cid, parent, tid in got.get("saved", []):
            parents[cid], timeline_of[cid] = parent, tid
            saved.add(cid)
        pruned |= set(got.get("pruned", []))
        deleted |= set(got.get("deleted", []))
        purged += got.get("purged", 0)
        refused += got.get("refused", 0)
    assert len(saved) >= 20 and pruned and purged, (len(saved), len(pruned), purged)
    with localckpt.open(url, **kw) as store:
        _check(store, parents, timeline_of, saved, pruned, deleted, purged=False)
        collect_garbage(store, older_than=0, grace=0)
        _check(store, parents, timeline_of, saved, pruned, deleted, purged=True)
    with localckpt.open(url, **kw) as store:  # and once more: nothing returns
        collect_garbage(store, older_than=0, grace=0)
        _check(store, parents, timeline_of, saved, pruned, deleted, purged=True)


@pytest.mark.parametrize("kind", KINDS)
def test_savers_and_deleters_at_once_lose_nothing_and_resurrect_nothing(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """4 savers and 2 processes running prune, retain, gc and delete in turn, a few s."""
    _stress(kind, QUICK_SECONDS, ["saver"] * SAVERS + ["upkeep"] * 2, request, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_savers_and_deleters_at_once_for_30_seconds(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """4 savers, a pruner, a retainer, a collector and a deleter, 30 s."""
    require_slow(request)
    _stress(kind, SLOW_SECONDS, ["saver"] * SAVERS + ["pruner", "retainer", "gc", "deleter"],
            request, tmp_path)

