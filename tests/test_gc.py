"""gc removes the shards of failed ingests and nothing a timeline refers to."""

from __future__ import annotations

import numpy as np
import pytest

from localckpt import Store
from localckpt.cli import main
from localckpt.gc import collect_garbage


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(n)]


def _leave_orphan_shards(store: Store) -> str:
    """Write shards for an id the catalog never hears of (a crash before the commit)."""
    from localckpt.frames import coerce_frames
    from localckpt.ids import new_id
    from localckpt.shards import write_frames

    tid = new_id()
    write_frames(store.objects, tid, coerce_frames(_frames(3), 2.0))
    return tid


def test_gc_removes_only_unreferenced_old_objects(store_kind: str, new_store) -> None:  # type: ignore[no-untyped-def]
    store = new_store(store_kind)
    kept = store.create_timeline("v.mp4", "p", _frames(4))
    orphan = _leave_orphan_shards(store)
    before = store.objects.list("frames")
    assert any(orphan in k for k in before)

    recent = collect_garbage(store)  # default grace period: the orphan is too new
    assert recent.objects_removed == 0 and recent.skipped_recent > 0
    dry = collect_garbage(store, older_than=0, dry_run=True)
    assert dry.orphan_timelines == (orphan,) and store.objects.list("frames") == before

    report = collect_garbage(store, older_than=0)
    assert report.orphan_timelines == (orphan,) and report.objects_removed >= 2
    after = store.objects.list("frames")
    assert not any(orphan in k for k in after)
    assert [k for k in before if orphan not in k] == after
    assert len(store.get_timeline_frames(kept.id)) == 4
    assert collect_garbage(store, older_than=0).objects_removed == 0  # idempotent


def test_gc_command(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    import localckpt

    with localckpt.open(tmp_path / "s", create=True) as store:
        orphan = _leave_orphan_shards(store)
    assert main(["--store", str(tmp_path / "s"), "gc", "--older-than", "2h", "--dry-run"]) == 0
    assert orphan not in capsys.readouterr().out  # left a moment ago: not 2 hours old
    for age, said in (("7days", "'7days' is neither seconds"),  # bad usage: exit 2
                      ("-5", "'-5' is not a span of time: give seconds of 0 or more")):
        with pytest.raises(SystemExit) as exit_:  # -5 said "neither seconds nor an age"
            main(["--store", str(tmp_path / "s"), "gc", "--older-than", age])
        assert exit_.value.code == 2
        assert f"gc: error: argument --older-than: {said}" in capsys.readouterr().err
    assert main(["--store", str(tmp_path / "s"), "gc", "--older-than", "0s", "--dry-run"]) == 0
    assert orphan in capsys.readouterr().out
    assert main(["--store", str(tmp_path / "s"), "gc", "--older-than", "0", "--dry-run"]) == 0
    assert orphan in capsys.readouterr().out
    assert main(["--store", str(tmp_path / "s"), "gc", "--older-than", "0"]) == 0
    with localckpt.open(tmp_path / "s", create=True) as store:
        assert store.objects.list("frames") == []


# -- one measure: what prune / rm say, gc --dry-run says, and gc frees ------------------------


def _measure(store: Store, hashes: set[str]) -> tuple[dict[str, int], dict[str, int],
                                                      set[str]]:
    """Independently of gc: frame objects (key -> size), which of these outputs the
    catalog holds (hash -> size) and the ids of every timeline, checkpoint and tag record.
    hashes gets every hash a checkpoint record refers to."""
    catalog = store.catalog
    timelines = [t.id for t in catalog.timelines(None)]
    checkpoints = [c for tid in timelines for c in catalog.tree(tid)]
    hashes |= {h for c in checkpoints for h in c.stage_hashes.values()}
    outputs = {h: len(v) for h, v in catalog.outputs(hashes).items()}
    objects = {k: size for k, (size, _) in store.objects.stat("frames").items()}
    ids = set(timelines) | {c.id for c in checkpoints} | {g.id for g in catalog.tags(None)}
    return objects, outputs, ids


def _work(store: Store) -> tuple[str, list[str]]:
    """Two timelines; a detect try with a big output, a track below it (tagged), a
    second try; outputs shared between timelines by hash."""
    keep = store.create_timeline("v.mp4", "p", _frames(3))
    other = store.create_timeline("w.mp4", "p", _frames(2))
    big = {"frames": [{"sequence": i, "note": "x" * 5000} for i in range(3)]}
    a = store.save_stage_output(keep.id, None, "detect", big)
    b = store.save_stage_output(keep.id, a, "track", {"t": 1})
    c = store.save_stage_output(keep.id, None, "detect", {"frames": []})
    store.save_stage_output(other.id, None, "detect", {"frames": []})  # shared with c
    store.tag(b, "best")
    return other.id, [a, b, c]


def test_gc_dry_run_after_a_prune_says_what_gc_frees(store_kind: str, new_store) -> None:  # type: ignore[no-untyped-def]
    store = new_store(store_kind)
    other, (a, b, c) = _work(store)
    pruned = store.prune(a)
    assert set(pruned.checkpoints) == {a, b} and pruned.tags == ("best",)
    dry = collect_garbage(store, dry_run=True)
    # nothing else was waiting: the dry run says what the prune said
    assert (dry.records_purged, dry.outputs_purged, dry.output_bytes) == (
        pruned.records, pruned.outputs, pruned.output_bytes)
    assert dry.records_purged == 5  # a, b, the tag, and the outputs of a and b
    assert dry.output_bytes > 15000 and dry.objects_removed == 0
    removed = store.delete_timeline(other)
    assert removed.objects > 0 and removed.object_bytes > 0
    assert removed.outputs == 0  # its output is c's too
    dry = collect_garbage(store, dry_run=True)
    assert dry.objects_removed == removed.objects and dry.bytes_removed == removed.object_bytes
    assert dry.records_purged == pruned.records + removed.records
    hashes: set[str] = set()
    objects, outputs, ids = _measure(store, hashes)
    real = collect_garbage(store)
    objects_after, outputs_after, ids_after = _measure(store, hashes)
    # the dry run, the real run and an independent measure agree, to the byte
    gone_objects = objects.keys() - objects_after.keys()
    gone_outputs = outputs.keys() - outputs_after.keys()
    for report in (dry, real):
        assert report.objects_removed == len(gone_objects)
        assert report.bytes_removed == sum(objects[k] for k in gone_objects)
        assert report.outputs_purged == len(gone_outputs)
        assert report.output_bytes == sum(outputs[h] for h in gone_outputs)
        assert report.records_purged == len(ids - ids_after) + len(gone_outputs)
    again = collect_garbage(store, dry_run=True)
    assert (again.objects_removed, again.records_purged, again.output_bytes) == (0, 0, 0)
    assert store.load_stage_output(c, "detect") == {"frames": []}


def test_an_output_timelines_share_is_freed_with_its_last_owner(store_kind: str,  # type: ignore[no-untyped-def]
                                                                 new_store) -> None:
    """One live owner keeps an output, so a report asks the other owners a few at a time
    (one, two, four...): only the deletion of the last timeline that has it frees it,
    and gc then agrees."""
    store = new_store(store_kind)
    tls = [store.create_timeline(f"{i}.mp4", "p", _frames(1)) for i in range(7)]
    for t in tls:
        store.save_stage_output(t.id, None, "detect", {"frames": []})
    assert [store.delete_timeline(t.id).outputs for t in tls] == [0] * 6 + [1]
    dry = collect_garbage(store, dry_run=True)
    assert dry.outputs_purged == 1
    assert collect_garbage(store).outputs_purged == 1


@pytest.mark.parametrize("where", ["directory", "postgresql"])
def test_gc_dry_run_command_matches_the_real_run(  # type: ignore[no-untyped-def]
        tmp_path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest,
        where: str) -> None:
    import json
    import uuid

    import localckpt

    if where == "directory":
        path, flags = str(tmp_path / "s"), []
    else:
        path = f"{request.getfixturevalue('pg_dsn')}?schema=t_{uuid.uuid4().hex[:12]}"
        flags = ["--objects", str(tmp_path / "objects")]
    with localckpt.open(path, create=True, objects=flags[1] if flags else None) as store:
        other, (a, _, _) = _work(store)

    def run(*argv: str) -> int:
        return main(["--store", path, *flags, *argv])

    assert run("prune", a, "--json") == 0
    pruned = json.loads(capsys.readouterr().out)
    assert run("rm", other, "--json") == 0
    removed = json.loads(capsys.readouterr().out)
    assert run("gc", "--dry-run", "--json") == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["records_purged"] == pruned["records"] + removed["records"]
    assert dry["output_bytes"] == pruned["output_bytes"] + removed["output_bytes"]
    assert dry["bytes_removed"] == removed["object_bytes"] > 0
    with localckpt.open(path, objects=flags[1] if flags else None) as store:
        assert run("gc", "--json") == 0
    real = json.loads(capsys.readouterr().out)
    keys = ("objects_removed", "bytes_removed", "records_purged", "outputs_purged",
            "output_bytes")
    assert [dry[k] for k in keys] == [real[k] for k in keys]
    assert run("gc", "--dry-run") == 0
    assert capsys.readouterr().out.startswith(
        "would remove 0 frame objects (0 B) and 0 catalog records (0 outputs, 0 B of JSON)")


def test_the_purge_deletes_children_before_their_parents_with_targets_one_under_another(
        tmp_path: object) -> None:
    """The dead are deleted deepest first, in batches; the depth was counted below the
    target reached first, so with a pruned checkpoint under another pruned one, the
    parent of the lower target sorted before it: on PostgreSQL a purge in two batches
    met the foreign key, every time (the 30 s stress test's last gc)."""
    import localckpt
    from localckpt.backends.sql.upkeep import _dead

    with localckpt.open(f"{tmp_path}/s", create=True) as store:
        tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)])
        chain = [tl.root_checkpoint_id]
        for i in range(6):
            chain.append(store.save_stage_output(tl.id, chain[-1], f"s{i}", {"i": i}))
        store.prune(chain[4])  # the lower target first (its id is the later one)
        store.prune(chain[2])
        order = [cid for cid, _ in _dead(store.catalog, None).checkpoints]
        assert sorted(order) == sorted(chain[2:])
        at = {cid: i for i, cid in enumerate(order)}
        for child, parent in zip(chain[3:], chain[2:-1], strict=True):
            assert at[child] < at[parent], "a parent would be deleted before its child"
        assert collect_garbage(store).records_purged >= 5
        assert [c.id for c in store.catalog.tree(tl.id)] == chain[:2]
