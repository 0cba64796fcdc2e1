"""sync and bundles by example: what travels, what does not, failures and interruptions."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from typing import Any

import attrs
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import StoreFactory
from hypothesis import event, given, settings
from hypothesis import strategies as st

import localckpt
from localckpt import Store
from localckpt.bundle import export_bundle, import_bundle
from localckpt.catalog import Batch
from localckpt.errors import (
    ConflictError,
    CorruptDataError,
    HiddenWorkError,
    InvalidInputError,
    NotFoundError,
)
from localckpt.sync import CountingCatalog
from localckpt.testing import raw

FRAMES = [np.full((6, 8, 3), i * 40, np.uint8) for i in range(5)]


def test_cli_transfers_name_checkpoints_by_short_ids(tmp_path, capsys: pytest.CaptureFixture
                                                     ) -> None:
    """push's and pull's warnings and a refusal for hidden work said full 36-character
    ids ("first: 01a2503c-e092-73f7-88f6-371c355e770b") where the rest of the command
    line says short ids: each is said by its short id in the store that holds it."""
    from localckpt.cli import main

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with localckpt.open(a, create=True) as store:
        tid, ids = _tree(store, 1)
        store.tag(ids[1], "best")
    assert main(["--store", a, "push", b]) == 0
    with localckpt.open(a) as store:  # below ids[1], which b prunes
        mine = store.save_stage_output(tid, ids[1], "mine", {"m": 1})
        store.tag(mine, "best", force=True)
        short = {i: store.short_id(i) for i in (ids[1], mine)}
    with localckpt.open(b) as store:
        store.prune(ids[1], force=True)
    capsys.readouterr()
    assert main(["--store", a, "push", b]) == 0
    err = capsys.readouterr().err
    assert f"1 checkpoint not copied: the destination deleted what it derives from " \
           f"({short[mine]})\n" in err
    before = _dump(localckpt.open(a))
    assert main(["--store", a, "pull", b]) == 1
    err = capsys.readouterr().err
    assert f"(first: {short[mine]}); nothing was copied" in err and mine not in err
    assert _dump(localckpt.open(a)) == before
    assert main(["--store", a, "pull", b, "--force"]) == 0
    err = capsys.readouterr().err
    assert f"below what it deleted ({short[mine]})\n" in err and mine not in err
    with localckpt.open(a) as store:
        k = store.save_stage_output(tid, None, "k", {"k": 1})
        store.tag(k, "pick")
    assert main(["--store", a, "push", b]) == 0
    with localckpt.open(b) as store:  # a newer tag of that name: it wins at a
        k2 = store.save_stage_output(tid, None, "k", {"k": 2})
        store.tag(k2, "pick", force=True)
        short |= {i: store.short_id(i) for i in (k, k2)}
    capsys.readouterr()
    assert main(["--store", b, "push", a, "--json"]) == 0
    out, err = capsys.readouterr()
    assert f"tag 'pick' moved from checkpoint {short[k]} to {short[k2]}: " in err, err
    assert json.loads(out)["moved_tags"][0]["before"] == k  # JSON: full ids


def _tree(store: Store, n: int = 3) -> tuple[str, list[str]]:
    """A timeline with a chain of n saves, a scenario fork and a merge of the two."""
    tl = store.create_timeline("v.mp4", "p", FRAMES, fps=2.0, codec="png")
    ids = [tl.root_checkpoint_id]
    for i in range(n):
        ids.append(store.save_stage_output(tl.id, ids[-1], f"s{i}", {"i": i}, {"k": i}))
    fork = store.save_stage_output(tl.id, ids[1], "alt", {"alt": True}, {"try": 1},
                                   is_scenario=True, scenario_label="try")
    ids.append(fork)
    ids.append(store.merge(ids[-2], fork))
    return tl.id, ids


def _hashes(store: Store, tid: str) -> list[str]:
    return sorted({h for c in store.catalog.tree(tid) for h in c.stage_hashes.values()})


def _dump(store: Store) -> Any:
    tls = sorted((t.id, t.frame_count, t.created_at) for t in store.list_timelines())
    cps = sorted((c.id, c.parent_id, c.merged_from, tuple(sorted(c.stage_hashes.items())),
                  json.dumps(dict(c.config_overrides), sort_keys=True),
                  json.dumps(dict(c.stats), sort_keys=True), c.created_at)
                 for t in store.list_timelines() for c in store.catalog.tree(t.id))
    hashes = {h for c in cps for _, h in c[3]}
    return tls, cps, sorted(store.objects.list("frames")), sorted(
        store.catalog.outputs(hashes).items())


@pytest.fixture(params=["push", "pull"])
def pair(request: pytest.FixtureRequest, new_store: StoreFactory, store_kind: str
         ) -> tuple[Store, Store]:
    """(src, dst): the kind under test on one side, the memory reference on the other."""
    other = new_store("memory" if store_kind != "memory" else "embedded")
    mine = new_store(store_kind)
    return (mine, other) if request.param == "push" else (other, mine)


def test_sync_copies_everything_once(pair: tuple[Store, Store]) -> None:
    src, dst = pair
    tid, ids = _tree(src)
    report = localckpt.sync(src, dst)
    assert (report.timelines, report.checkpoints) == (1, len(ids))
    assert report.outputs == 4  # s0 s1 s2 alt, each once though carried forward
    assert report.objects == len(src.objects.list(f"frames/{tid}")) and report.bytes > 0
    assert _dump(dst) == _dump(src)
    assert dst.get_timeline_frames(tid) == src.get_timeline_frames(tid)
    assert dst.load_stage_output(ids[-1], "alt") == {"alt": True}
    assert [c.id for c in dst.lineage(ids[-1])] == [c.id for c in src.lineage(ids[-1])]
    again = localckpt.sync(src, dst)
    assert not again and again.round_trips == 8  # 7 + one per timeline
    assert "up to date" in again.summary() and "copied 1 timeline" in report.summary()


def test_only_what_is_missing_travels(new_store: StoreFactory) -> None:
    a, b = new_store("memory"), new_store("embedded")
    tid, ids = _tree(a)
    localckpt.sync(a, b)
    extra_a = a.save_stage_output(tid, ids[-1], "s0", {"i": 0})  # an output b already has
    extra_b = b.save_stage_output(tid, ids[2], "new", {"n": 1})
    report = localckpt.sync(a, b)
    assert (report.timelines, report.checkpoints, report.outputs, report.objects) == (0, 1, 0, 0)
    report = localckpt.sync(b, a)
    assert (report.timelines, report.checkpoints, report.outputs, report.objects) == (0, 1, 1, 0)
    assert _dump(a) == _dump(b)
    assert {extra_a, extra_b} <= {c.id for c in a.checkpoints(tid)}


def test_work_below_what_the_other_side_deleted_is_named(new_store: StoreFactory,
                                                          store_kind: str) -> None:
    """A teammate prunes what my unpushed checkpoint derives from: my push does not copy
    it and my pull deletes it (a deletion never comes back), and both say which, where
    they said "up to date" and "1 deletion"."""
    laptop, team, other = new_store(store_kind), new_store("embedded"), new_store("memory")
    tid, ids = _tree(laptop)
    localckpt.sync(laptop, team)
    mine = laptop.save_stage_output(tid, ids[2], "mine", {"m": 1})  # not pushed
    deeper = laptop.save_stage_output(tid, mine, "deeper", {"d": 1})
    localckpt.sync(team, other)
    other.prune(ids[2])
    localckpt.sync(other, team)

    push = localckpt.sync(laptop, team)
    assert push.withheld == tuple(sorted((mine, deeper))) and not push.hidden
    assert "warning: 2 checkpoints not copied: the destination deleted what they derive " \
           f"from ({min(mine, deeper)}" in push.summary()
    assert {mine, deeper}.isdisjoint(c.id for c in team.checkpoints(tid))

    pull = localckpt.sync(team, laptop)
    assert pull.tombstones == 1 and pull.hidden == tuple(sorted((mine, deeper)))
    assert "also delete 2 checkpoints the source does not hold" in pull.summary()
    assert {mine, deeper}.isdisjoint(c.id for c in laptop.checkpoints(tid))
    again = localckpt.sync(team, laptop)  # said once: now both sides agree
    assert not again and not again.hidden and not again.withheld
    assert "warning" not in again.summary() + localckpt.sync(laptop, team).summary()


def test_hide_unseen_false_refuses_before_copying(new_store: StoreFactory,
                                                   store_kind: str) -> None:
    """hide_unseen=False: a sync whose deletions would take work dst holds and the
    source never held raises HiddenWorkError naming it, and dst stays as it was; a sync
    that hides nothing is not refused."""
    laptop, team = new_store(store_kind), new_store("embedded")
    tid, ids = _tree(laptop)
    localckpt.sync(laptop, team)
    mine = laptop.save_stage_output(tid, ids[2], "mine", {"m": 1})
    team.prune(ids[2], force=True)
    before = _dump(laptop)
    with pytest.raises(HiddenWorkError, match="hide_unseen=True") as exc:
        localckpt.sync(team, laptop, hide_unseen=False)
    assert exc.value.checkpoints == [mine] and mine in str(exc.value)
    assert _dump(laptop) == before
    assert not localckpt.sync(laptop, team, hide_unseen=False).hidden  # withheld, not hidden
    with pytest.raises(InvalidInputError, match="hide_unseen must be True or False"):
        localckpt.sync(team, laptop, hide_unseen="no")  # type: ignore[arg-type]
    assert _dump(laptop) == before
    assert localckpt.sync(team, laptop).hidden == (mine,)  # the default lets it go


def _state(store: Store) -> Any:
    tids = [t.id for t in store.list_timelines()]
    return _dump(store), sorted(x.id for x in store.catalog.tombstones(tids))


@settings(max_examples=20, deadline=None)
def _synced_then_unseen_work(data: Any) -> tuple[Store, Store, str, list[str]]:
    """src with _tree's timeline, dst synced from it, then up to 3 saves on dst that src
    never sees; their ids are appended to ids."""
    src = localckpt.open("memory://")
    tid, ids = _tree(src)
    dst = localckpt.open("memory://")
    localckpt.sync(src, dst)
    for i, parent in enumerate(data.draw(st.lists(st.sampled_from(ids), max_size=3))):
        ids.append(dst.save_stage_output(tid, parent, f"w{i}", {"w": i}))  # unseen by src
    return src, dst, tid, ids


@given(data=st.data())
def test_hide_unseen_false_refuses_exactly_what_the_default_hides(data: Any) -> None:
    """For any work saved on dst and any prunes on src: sync(hide_unseen=False) either
    copies what the default copies and hides nothing, or refuses naming exactly the
    checkpoints the default hides, dst unchanged."""
    src, dst, tid, ids = _synced_then_unseen_work(data)
    for target in data.draw(st.lists(st.sampled_from(ids[1:]), max_size=2)):
        if src.catalog.checkpoints([target]) and target in {c.id for c in src.checkpoints(tid)}:
            src.prune(target, force=True)
    twin = localckpt.open("memory://")
    localckpt.sync(dst, twin)
    before = _state(dst)
    default = localckpt.sync(src, twin)
    try:
        strict = localckpt.sync(src, dst, hide_unseen=False)
    except HiddenWorkError as exc:
        event("refused")
        assert default.hidden and tuple(exc.checkpoints) == default.hidden
        assert _state(dst) == before
    else:
        event("copied")
        assert not default.hidden and not strict.hidden
        assert _state(dst) == _state(twin)


def test_what_the_other_side_saw_is_not_named(new_store: StoreFactory, tmp_path) -> None:
    """No warning for checkpoints the other side held: pruned where rows are kept or
    purged, a whole timeline deleted, or a bundle (which carries live rows only)."""
    a, b = new_store("embedded"), new_store("memory")
    tid, ids = _tree(a)
    tid2, _ = _tree(a)
    localckpt.sync(a, b)
    c = new_store("memory")
    localckpt.sync(a, c)  # before any deletion: c holds the whole tree
    b.prune(ids[2], force=True)
    b.delete_timeline(tid2)
    for _ in range(2):  # as the rows are, then with b's deleted rows purged
        push = localckpt.sync(a, b)
        assert not push.withheld and not push.hidden, push
        b.catalog.purge_deleted()
    pull = localckpt.sync(b, a)
    assert pull.tombstones == 2 and not pull.hidden and not pull.withheld
    bundle = tmp_path / "t.zip"
    export_bundle(a, tid, bundle)  # live rows only: the pruned ones are not in it
    report = import_bundle(c, bundle)
    assert report.tombstones == 1 and not report.hidden and not report.withheld


def test_round_trips_do_not_grow_with_the_tree(new_store: StoreFactory) -> None:
    small, big = new_store("memory"), new_store("memory")
    for store, n in ((small, 5), (big, 300)):
        tl = store.create_timeline("v", "p", FRAMES[:1], codec="png")
        parent = None
        for i in range(n):
            parent = store.save_stage_output(tl.id, parent, "s", {"i": i})
    trips = []
    for src in (small, big):
        dst = new_store("embedded")
        first = localckpt.sync(src, dst)
        second = localckpt.sync(src, dst)
        assert not second
        trips.append((first.round_trips, second.round_trips))
    # the outputs are committed with the rows; one read of dst's deletions of the ids;
    # a sync that adds a timeline asks once for ids equal to its id but for case
    assert trips[0] == trips[1] == (13, 8)


def _run_reads(reads: Any) -> list[str]:
    """The statements of reads that read a stage run table."""
    import re

    tables = r"\b(runs|run_puts|run_parts|memo_entries|memo_runs|memo_frames)\b"
    return [q for q, _ in reads.statements if re.search(tables, q)]


def test_runs_are_read_only_when_deletions_arrive(new_store: StoreFactory,
                                                  store_kind: str) -> None:
    """A transfer that copies no deletion (of a timeline or checkpoint: a tag's deletes
    no run's base) does not read the runs' tables; one that does reads its timelines'
    open runs once (and, finding none orphaned, no more), however many timelines the
    deletions touch."""
    from engine_reads import counting

    src, dst = new_store("memory"), new_store(store_kind)
    (tid, ids), (_, ids2) = _tree(src), _tree(src)
    src.tag(ids[1], "best")
    localckpt.sync(src, dst)
    dst.begin_run(tid, ids[1], "ocr", memo=False)  # on what the deletions keep
    src.save_stage_output(tid, ids[1], "new", {"n": 1})
    src.untag("best")
    with counting(dst.catalog.engine) as reads:
        report = localckpt.sync(src, dst)
    assert (report.checkpoints, report.tombstones) == (1, 1) and reads.statements
    assert _run_reads(reads) == []
    for victims in ([ids[3]], [ids[2], ids2[2]]):
        for victim in victims:
            src.prune(victim, force=True)
        with counting(dst.catalog.engine) as reads:
            report = localckpt.sync(src, dst)
        assert report.tombstones == len(victims) and report.closed_runs == ()
        assert len(_run_reads(reads)) == 1, reads.statements
    with counting(dst.catalog.engine) as reads:
        assert not localckpt.sync(src, dst)
    assert _run_reads(reads) == []


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_after_a_transfer_no_open_run_is_orphaned(data: Any) -> None:
    """For any open runs on dst and any deletions on src: after the sync (refused or
    not) dst's open runs are exactly those whose base is live, and closed_runs names
    those of them the sync closed."""
    from localckpt.runs.closing import orphans

    src, dst, tid, ids = _synced_then_unseen_work(data)
    runs = [dst.begin_run(tid, parent, f"r{i}", memo=False)
            for i, parent in enumerate(data.draw(st.lists(st.sampled_from(ids), max_size=4)))]
    for target in data.draw(st.lists(st.sampled_from(ids[1:]), max_size=2)):
        if target in {c.id for c in src.checkpoints(tid)}:
            src.prune(target, force=True)
    if data.draw(st.booleans()):
        src.delete_timeline(tid)
    strict = data.draw(st.booleans())
    try:
        report = localckpt.sync(src, dst, hide_unseen=not strict)
    except HiddenWorkError:
        event("refused")
        assert {r.id for r in runs} == {r.id for r in dst.runs(state="open")}
        return
    live = {c.id for c in dst.checkpoints(tid)} if dst.live_timelines([tid]) else set()
    assert report.closed_runs == tuple(sorted(r.id for r in runs if r.parent_id not in live))
    assert {r.id for r in dst.runs(state="open")} == {r.id for r in runs
                                                       if r.parent_id in live}
    assert orphans(dst) == []
    event(f"closed {len(report.closed_runs)}")


def test_one_timeline_or_all(new_store: StoreFactory) -> None:
    a, b = new_store("memory"), new_store("memory")
    t1, _ = _tree(a)
    t2, _ = _tree(a, 1)
    report = localckpt.sync(a, b, t2)
    assert [t.id for t in b.list_timelines()] == [t2] and report.timelines == 1
    with pytest.raises(NotFoundError, match="no timeline"):
        localckpt.sync(b, a, t1)
    with pytest.raises(InvalidInputError):
        localckpt.sync(a, b, 7)  # type: ignore[arg-type]
    localckpt.sync(a, b)
    assert {t.id for t in b.list_timelines()} == {t1, t2}


def _snapshot(store: Store) -> Any:
    return _dump(store), sorted(store.objects.list(""))


def test_conflicting_record_raises_and_leaves_dst_unchanged(new_store: StoreFactory,
                                                            store_kind: str) -> None:
    src, dst = new_store("memory"), new_store(store_kind)
    tid, ids = _tree(src)
    localckpt.sync(src, dst)
    later = src.save_stage_output(tid, ids[-1], "late", {"late": 1})
    forged = attrs.evolve(src.get_checkpoint(later), stats={"forged": True})
    h = forged.stage_hashes["late"]
    dst.catalog.commit(Batch(checkpoints=[forged], outputs=src.catalog.outputs([h])))
    second = src.create_timeline("w", "p", FRAMES[:2], codec="png")  # would travel, but not now
    before = _snapshot(dst)
    with pytest.raises(ConflictError, match="nothing was copied"):
        localckpt.sync(src, dst)
    assert _snapshot(dst) == before
    assert second.id not in {t.id for t in dst.list_timelines()}


def test_conflicting_timeline_copies_no_frames(new_store: StoreFactory) -> None:
    src, dst = new_store("memory"), new_store("embedded")
    tid, _ = _tree(src)
    tl = src.get_timeline(tid)
    root = src.get_checkpoint(tl.root_checkpoint_id)
    dst.catalog.commit(Batch(timelines=[attrs.evolve(tl, source_video="other.mp4")],
                             checkpoints=[root]))
    with pytest.raises(ConflictError):
        localckpt.sync(src, dst)
    assert dst.objects.list("frames") == []


def test_interrupted_before_rows_is_completed_by_the_next_sync(
        new_store: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = new_store("memory"), new_store("embedded")
    tid, ids = _tree(src)
    real_commit = dst.catalog.commit

    def crash_on_rows(batch: Batch) -> None:
        if batch.checkpoints:
            raise KeyboardInterrupt  # the process dies between objects and rows
        real_commit(batch)

    monkeypatch.setattr(dst.catalog, "commit", crash_on_rows)
    with pytest.raises(KeyboardInterrupt):
        localckpt.sync(src, dst)
    monkeypatch.undo()
    assert dst.list_timelines() == []  # consistent: nothing half-visible
    assert dst.objects.list(f"frames/{tid}")  # objects went first
    assert not dst.catalog.outputs(_hashes(src, tid))  # the outputs go with the rows
    report = localckpt.sync(src, dst)
    assert (report.objects, report.outputs, report.checkpoints) == (
        0, len(_hashes(src, tid)), len(ids))
    assert _dump(dst) == _dump(src)


def _sharded_timeline(store: Store) -> localckpt.Timeline:
    """A timeline whose frames fill several small shards (create_timeline makes one)."""
    from localckpt.catalog import Batch
    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.shards import write_timeline_frames

    tid = new_id()
    written = write_timeline_frames(
        store.objects, tid, [localckpt.Frame(i, i / 2, 0, "0" * 16, f)
                             for i, f in enumerate(FRAMES)],
        codec="png", workers=1, shard_frames=2)
    root = localckpt.Checkpoint(new_id(), tid, None, {}, {}, {"frames_extracted": len(FRAMES)},
                                False, "", utcnow())
    tl = localckpt.Timeline(tid, "v", "p", 2.0, None, root.id, len(FRAMES), utcnow(),
                            index_hash=written.index_hash)
    store.catalog.commit(Batch(timelines=[tl], checkpoints=[root]))
    return tl


def test_interrupted_object_copy_resumes_with_the_missing_objects(
        new_store: StoreFactory, store_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    src = new_store("memory")
    dst = new_store(store_kind)
    tl = _sharded_timeline(src)
    from localckpt.shards import frame_keys

    keys = frame_keys(src.objects, tl.id)
    assert len(keys) >= 3  # several shards to copy
    real_put = dst.objects.put
    calls = []

    def flaky_put(key: str, data: bytes) -> None:
        calls.append(key)
        if len(calls) == 2:
            raise localckpt.BackendUnavailableError("network went away")
        real_put(key, data)

    monkeypatch.setattr(dst.objects, "put", flaky_put)
    with pytest.raises(localckpt.BackendUnavailableError):
        localckpt.sync(src, dst)
    monkeypatch.undo()
    assert dst.list_timelines() == []
    assert not dst.objects.exists(keys[-1])  # the index is never ahead of its shards
    lacking = [k for k in keys if not dst.objects.exists(k)]
    assert 0 < len(lacking) < len(keys)
    report = localckpt.sync(src, dst)
    assert report.objects == len(lacking)  # only those travel
    assert dst.get_timeline_frames(tl.id) == src.get_timeline_frames(tl.id)


def test_corrupt_source_output_is_refused(new_store: StoreFactory) -> None:
    src, dst = new_store("memory"), new_store("memory")
    _, ids = _tree(src)
    h = src.get_checkpoint(ids[1]).stage_hashes["s0"]
    raw.set_output(src.catalog, h, b'{"i":99}')  # bit rot
    with pytest.raises(CorruptDataError, match="does not match its hash"):
        localckpt.sync(src, dst)
    assert dst.list_timelines() == []


def test_progress_reports(new_store: StoreFactory, capsys: pytest.CaptureFixture[str]) -> None:
    src = new_store("memory")
    _tree(src)
    seen: list[tuple[str, int, int]] = []
    localckpt.sync(src, new_store("memory"), progress=lambda *a: seen.append(a))
    phases = [p for p, _, _ in seen]
    assert phases[-1] == "rows" and "objects" in phases and "outputs" in phases
    assert all(done <= total for _, done, total in seen)

    class Bar:
        total = 0
        n = 0

        def update(self, k: int) -> None:
            self.n += k

    bar = Bar()
    localckpt.sync(src, new_store("memory"), progress=bar)
    assert bar.n == bar.total == len(seen)
    if importlib.util.find_spec("tqdm") is None:
        with pytest.raises(InvalidInputError, match="tqdm"):
            localckpt.sync(src, new_store("memory"), progress=True)
    else:  # a real bar, on stderr, drawn once its total is known (no "0item" line first)
        capsys.readouterr()
        assert localckpt.sync(src, new_store("memory"), progress=True).checkpoints == 6
        drawn = capsys.readouterr().err
        assert f"/{len(seen)} " in drawn and "0item" not in drawn
    with pytest.raises(InvalidInputError):
        localckpt.sync(src, new_store("memory"), progress=42)


def test_counting_catalog_counts_every_call(new_store: StoreFactory) -> None:
    store = new_store("memory")
    tid, ids = _tree(store)
    counted = CountingCatalog(store.catalog)
    counted.tree(tid)
    counted.checkpoints(ids)
    counted.missing_outputs([])
    assert counted.round_trips == 3 and counted.calls["tree"] == 1


# -- bundles ---------------------------------------------------------------------------------


def test_bundle_export_then_import_equals_sync(new_store: StoreFactory, store_kind: str,
                                               tmp_path) -> None:
    src = new_store(store_kind)
    tid, ids = _tree(src)
    path = tmp_path / "t.lcb.zip"
    exported = export_bundle(src, tid, path)
    assert (exported.timelines, exported.checkpoints, exported.outputs) == (1, len(ids), 4)
    via_sync, via_bundle = new_store("memory"), new_store("embedded")
    synced = localckpt.sync(src, via_sync)
    imported = import_bundle(via_bundle, path)
    fields = ("timelines", "checkpoints", "outputs", "objects", "bytes")
    assert [getattr(imported, f) for f in fields] == [getattr(synced, f) for f in fields]
    assert _dump(via_bundle) == _dump(via_sync) == _dump(src)
    assert via_bundle.get_timeline_frames(tid) == src.get_timeline_frames(tid)
    assert not import_bundle(via_bundle, path)  # idempotent
    assert not import_bundle(src, path)


def test_bundle_is_open_parquet_inside_a_zip(new_store: StoreFactory, tmp_path) -> None:
    src = new_store("memory")
    tid, ids = _tree(src)
    path = tmp_path / "b.zip"
    export_bundle(src, tid, path)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("localckpt-bundle.json"))
        assert manifest["format"] == "localckpt-bundle/2" and manifest["timeline_id"] == tid
        rows = pq.read_table(io.BytesIO(zf.read("checkpoints.parquet"))).to_pylist()
        assert sorted(r["id"] for r in rows) == sorted(ids)
        outputs = pq.read_table(io.BytesIO(zf.read("outputs.parquet"))).to_pylist()
        assert {json.loads(r["json"])["i"] for r in outputs if "i" in r["json"]} == {0, 1, 2}
        index = pq.read_table(io.BytesIO(zf.read(f"objects/frames/{tid}/index.parquet")))
        assert index.num_rows == len(FRAMES)


def test_subtree_bundle_carries_what_it_derives_from(new_store: StoreFactory, tmp_path
                                                     ) -> None:
    src = new_store("memory")
    tid, ids = _tree(src)
    root, s0, s1, s2, fork, merge = ids
    other = src.save_stage_output(tid, s0, "other", {"o": 1})
    path = tmp_path / "sub.zip"
    report = export_bundle(src, tid, path, checkpoint_id=s2)
    # s2's subtree (s2, the merge) + lineage (root, s0, s1) + what the merge took in (fork)
    dst = new_store("memory")
    import_bundle(dst, path)
    got = {c.id for c in dst.checkpoints(tid)}
    assert got == {root, s0, s1, s2, fork, merge} and other not in got
    assert report.checkpoints == 6
    assert dst.load_stage_output(merge, "alt") == {"alt": True}
    assert localckpt.sync(src, dst).checkpoints == 1  # the union completes it
    with pytest.raises(NotFoundError):
        export_bundle(src, tid, tmp_path / "x.zip", checkpoint_id="nope")


def test_bad_bundles(new_store: StoreFactory, tmp_path) -> None:
    store = new_store("memory")
    with pytest.raises(NotFoundError):
        import_bundle(store, tmp_path / "missing.zip")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CorruptDataError):
        import_bundle(store, junk)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(CorruptDataError, match=r"lacks localckpt-bundle\.json"):
        import_bundle(store, empty)
    with pytest.raises(NotFoundError):
        export_bundle(store, "no-such-timeline", tmp_path / "x.zip")
    assert store.list_timelines() == []
    assert not list(tmp_path.glob(".tmp-bundle-*"))


def test_import_conflict_writes_nothing(new_store: StoreFactory, tmp_path) -> None:
    src, dst = new_store("memory"), new_store("embedded")
    tid, _ = _tree(src)
    path = tmp_path / "b.zip"
    export_bundle(src, tid, path)
    tl = src.get_timeline(tid)
    dst.catalog.commit(Batch(timelines=[attrs.evolve(tl, frame_count=99)],
                             checkpoints=[src.get_checkpoint(tl.root_checkpoint_id)]))
    before = _snapshot(dst)
    with pytest.raises(ConflictError):
        import_bundle(dst, path)
    assert _snapshot(dst) == before


# -- the command line ---------------------------------------------------------------------


def test_cli_diff_merge_push_pull_export_import(tmp_path, capsys: pytest.CaptureFixture
                                                ) -> None:
    from localckpt.cli import main

    a, b, c = (str(tmp_path / n) for n in "abc")
    with localckpt.open(a, create=True) as store:
        tid, ids = _tree(store)
        x = store.save_stage_output(tid, ids[1], "s1", {"i": 10}, {"k": 10})
    assert main(["--store", a, "diff", ids[2], x]) == 0
    assert "~ s1" in capsys.readouterr().out
    assert main(["--store", a, "merge", ids[2], x]) == 1
    assert "conflict" in capsys.readouterr().err
    assert main(["--store", a, "merge", ids[2], x, "--strategy", "theirs"]) == 0
    assert "merged" in capsys.readouterr().out
    assert main(["--store", a, "push", b, tid[:13]]) == 0
    assert "copied 1 timeline" in capsys.readouterr().out
    assert main(["--store", c, "pull", a, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoints"] == len(ids) + 2
    with localckpt.open(a, create=True) as store:
        store.save_stage_output(tid, x, "s2", {"i": 20})
    bundle = str(tmp_path / "t.zip")
    assert main(["--store", a, "export", tid, bundle]) == 0
    assert main(["--store", b, "import", bundle]) == 0  # b lacks only the last save
    assert "1 checkpoint," in capsys.readouterr().out.splitlines()[-1]
    assert main(["--store", c, "pull", a]) == 0
    assert main(["--store", b, "import", bundle]) == 0
    assert "up to date" in capsys.readouterr().out
    with localckpt.open(b, create=True) as sb, localckpt.open(c, create=True) as sc:
        assert _dump(sb) == _dump(sc)
    # c prunes x, below which a saves more: a's push and pull say so on stderr
    with localckpt.open(a) as store:
        mine = store.save_stage_output(tid, x, "mine", {"m": 1})
    with localckpt.open(c) as store:
        store.prune(x, force=True)  # the merge of x stays
    assert main(["--store", c, "push", b]) == 0
    capsys.readouterr()
    assert main(["--store", a, "push", b]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"push to {b}: up to date") and "warning" not in out
    with localckpt.open(a) as store:  # named by its short id, as the CLI names records
        said = store.short_id(mine)
    assert f"localckpt: warning: push to {b}: 1 checkpoint not copied" in err and said in err
    # a's pull would delete mine, which b never held: refused, nothing copied, unless --force
    before = _dump(localckpt.open(a))
    assert main(["--store", a, "pull", b, "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and said in err and "run the command again with --force" in err
    assert _dump(localckpt.open(a)) == before
    assert main(["--store", a, "pull", b, "--json", "--force"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["hidden"] == [mine] and "also delete 1 checkpoint" in err
