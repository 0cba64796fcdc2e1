"""Hostile bundles and sync peers, generated: they can never touch another timeline.

The destination holds a victim timeline V (checkpoints, a tag, frames). The source
holds timeline A, into whose records hypothesis writes hostile ones behind the API's
back (into the source's catalog for a sync, into the bundle's tables for an import):
tombstones and tags aimed across timelines and kinds, records filed under V, parent
cycles, a self-parent, parents and merges in V, a root with a parent, tags whose name
breaks the tag-name rule, and outputs whose hash matches but that do not decode.

After each transfer, refused or not: every record, output and object byte of V is as it
was, V reads as before, and verify agrees with the reads (the store verifies clean and
every live output and frame reads).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import StoreFactory
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import localckpt
from localckpt import Batch, Store
from localckpt.bundle import export_bundle, import_bundle
from localckpt.canonical import content_hash
from localckpt.errors import LocalckptError
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.schema import to_arrow
from localckpt.types import Checkpoint, Tag, Tombstone

FRAMES = [np.full((4, 4, 3), i * 80, np.uint8) for i in range(2)]
BAD_OUTPUTS = [b"not json", b'{"a":NaN}', b"[" * 100_000 + b"]" * 100_000,
               b'{"a":' + b"7" * 5000 + b"}", b'{"a":"\\ud800"}', b'{"a":1e999}', b"[1,2]"]


class Scene:
    """Victim V in dst; A in src (and in dst too when dst_has_a)."""

    def __init__(self, src: Store, dst: Store, dst_has_a: bool) -> None:
        self.src, self.dst = src, dst
        v = dst.create_timeline("victim.mp4", "p", FRAMES, codec="png", workers=1)
        v1 = dst.save_stage_output(v.id, None, "detect", {"v": 1})
        v2 = dst.save_stage_output(v.id, v1, "track", {"v": 2})
        self.v_tag = dst.tag(v2, "victim-best")
        self.v, self.v_ids = v, [v.root_checkpoint_id, v1, v2]
        a = src.create_timeline("a.mp4", "p", FRAMES, codec="png", workers=1)
        a1 = src.save_stage_output(a.id, None, "detect", {"a": 1})
        self.a_tag = src.tag(a1, "a-best")
        self.a, self.a_ids = a, [a.root_checkpoint_id, a1]
        if dst_has_a:
            localckpt.sync(src, dst)

    def ref(self, name: str) -> str:
        return {"V": self.v.id, "V.root": self.v_ids[0], "V.c": self.v_ids[2],
                "V.tag": self.v_tag.id, "A": self.a.id, "A.root": self.a_ids[0],
                "A.c": self.a_ids[1], "A.tag": self.a_tag.id}.get(name) or new_id()

    def checkpoint(self, parent: str | None, **fields: Any) -> Checkpoint:
        base = self.src.get_checkpoint(self.a_ids[1])
        return attrs.evolve(base, id=new_id(), parent_id=parent, created_at=utcnow(),
                            **fields)


REFS = ["V", "V.root", "V.c", "V.tag", "A", "A.root", "A.c", "A.tag", "new"]
edits = st.one_of(
    st.tuples(st.just("tombstone"), st.sampled_from(["timeline", "checkpoint", "tag"]),
              st.sampled_from(REFS), st.sampled_from(["A", "V", "new"])),
    st.tuples(st.just("tag"), st.sampled_from(["fine-name", "../../<script>", "a b", ""]),
              st.sampled_from(["V.c", "A.c", "V", "A.tag"]), st.sampled_from(["A", "V"])),
    st.tuples(st.just("tree"), st.sampled_from(
        ["cycle", "self-parent", "parent-in-V", "merge-from-V", "root-with-parent",
         "second-root", "filed-under-V"])),
    st.tuples(st.just("output"), st.sampled_from(range(len(BAD_OUTPUTS)))),
)


def _records(scene: Scene, edit: tuple[Any, ...]) -> Batch:
    """The hostile records of one edit (never checked against anything: the source is
    hostile)."""
    now = utcnow()
    if edit[0] == "tombstone":
        _, kind, target, filed = edit
        return Batch(tombstones=[Tombstone(new_id(), scene.ref(target), kind,
                                           scene.ref(filed), now)])
    if edit[0] == "tag":
        _, name, target, filed = edit
        return Batch(tags=[Tag(new_id(), name or "x", scene.ref(target), scene.ref(filed),
                               now)])
    if edit[0] == "output":
        data = BAD_OUTPUTS[edit[1]]
        h = content_hash(data)
        c = scene.checkpoint(scene.a_ids[1], stage_hashes={"bad": h}, stage="bad")
        return Batch(checkpoints=[c], outputs={h: data})
    what = edit[1]
    root = scene.a_ids[0]
    if what == "cycle":
        x, y = new_id(), new_id()
        return Batch(checkpoints=[attrs.evolve(scene.checkpoint(y), id=x),
                                  attrs.evolve(scene.checkpoint(x), id=y)])
    if what == "self-parent":
        x = new_id()
        return Batch(checkpoints=[attrs.evolve(scene.checkpoint(x), id=x)])
    if what == "parent-in-V":
        return Batch(checkpoints=[scene.checkpoint(scene.v_ids[2])])
    if what == "merge-from-V":
        return Batch(checkpoints=[scene.checkpoint(root, merged_from=scene.v_ids[2])])
    if what == "root-with-parent":  # a new timeline whose root has a parent
        tid = new_id()
        top = scene.checkpoint(None, timeline_id=tid)
        below = scene.checkpoint(top.id, timeline_id=tid)
        return Batch(checkpoints=[top, below], timelines=[attrs.evolve(
            scene.a, id=tid, root_checkpoint_id=below.id)])
    if what == "second-root":
        return Batch(checkpoints=[scene.checkpoint(None)])
    return Batch(checkpoints=[scene.checkpoint(scene.v_ids[0], timeline_id=scene.v.id)])


def _victim(store: Store, scene: Scene) -> tuple[Any, ...]:
    """Every byte of V: records, outputs, objects."""
    cat, tid = store.catalog, scene.v.id
    tree = cat.tree(tid)
    hashes = sorted({h for c in tree for h in c.stage_hashes.values()})
    objects = {k: store.objects.get(k) for k in store.objects.list(f"frames/{tid}")}
    return (cat.timelines([tid]), tree, cat.tombstones([tid]), cat.tags([tid]),
            sorted(cat.outputs(hashes).items()), objects)


def _reads(store: Store, scene: Scene) -> tuple[Any, ...]:
    v = scene.v.id
    return (store.get_timeline(v), [c.id for c in store.checkpoints(v)],
            [(g.name, g.checkpoint_id) for g in store.tags(v)],
            store.tag_target("victim-best"), len(store.get_timeline_frames(v)))


def _everything_reads(store: Store) -> bool:
    try:
        for t in store.list_timelines():
            for c in store.checkpoints(t.id):
                for stage in c.stage_hashes:
                    store.load_stage_output(c.id, stage)
            store.get_timeline_frames(t.id)
    except LocalckptError:
        return False
    return True


def _passes_on(store: Store) -> None:
    """What a transfer admitted never poisons the store: it still syncs all it holds to
    a new store (a tombstone filed under A naming V's tag, admitted as if it named a
    purged record, made every later transfer of A and V refuse the store)."""
    with localckpt.open("memory://") as other:
        localckpt.sync(store, other)


# -- bundles ---------------------------------------------------------------------------


def _hostile_bundle(scene: Scene, batch: Batch, path: Path) -> Path:
    """A's bundle with batch's records appended to its tables (and manifest counts)."""
    clean = path.with_suffix(".clean.zip")
    export_bundle(scene.src, scene.a.id, clean)
    with zipfile.ZipFile(clean) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["localckpt-bundle.json"])
    for kind, name, records in (("timeline", "timelines.parquet", batch.timelines),
                                ("checkpoint", "checkpoints.parquet", batch.checkpoints),
                                ("tombstone", "tombstones.parquet", batch.tombstones),
                                ("tag", "tags.parquet", batch.tags)):
        if records:
            old = pq.read_table(io.BytesIO(members[name]))
            buf = io.BytesIO()
            pq.write_table(pa.concat_tables([old, to_arrow(kind, records)]), buf)
            members[name] = buf.getvalue()
            manifest["counts"][name.split(".")[0]] += len(records)
    if batch.outputs:
        old = pq.read_table(io.BytesIO(members["outputs.parquet"]))
        extra = pa.table({"hash": list(batch.outputs),
                          "json": [d.decode("utf-8", "surrogatepass")
                                   for d in batch.outputs.values()]}, schema=old.schema)
        buf = io.BytesIO()
        pq.write_table(pa.concat_tables([old, extra]), buf)
        members["outputs.parquet"] = buf.getvalue()
        manifest["counts"]["outputs"] += len(batch.outputs)
    members["localckpt-bundle.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _write_as_a_liar(scene: Scene, batch: Batch) -> None:
    """Write the hostile records into the source behind the API's back. Its catalog
    refuses a checkpoint whose parent it does not hold, so while it writes it is let to
    see the victim's checkpoints too: a parent in V counts as held, as a lying peer
    would claim."""
    src = scene.src.catalog
    own = src.checkpoints
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(src, "checkpoints",
                      lambda ids: own(ids) + scene.dst.catalog.checkpoints(ids))
        src.commit(batch)


def _attack(scene: Scene, batches: list[Batch], mode: str, tmp: Path) -> None:
    merged = Batch(
        timelines=[t for b in batches for t in b.timelines],
        checkpoints=[c for b in batches for c in b.checkpoints],
        outputs={h: d for b in batches for h, d in b.outputs.items()},
        tombstones=[x for b in batches for x in b.tombstones],
        tags=[g for b in batches for g in b.tags])
    if mode == "sync":
        _write_as_a_liar(scene, merged)
        localckpt.sync(scene.src, scene.dst)
    else:
        import_bundle(scene.dst, _hostile_bundle(scene, merged, tmp / f"{new_id()}.zip"))


@pytest.mark.parametrize("mode", ["sync", "bundle"])
def test_hostile_sources_never_touch_another_timeline(mode: str, new_store: StoreFactory,
                                                      tmp_path: Path) -> None:
    @settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(chosen=st.lists(edits, min_size=1, max_size=3), dst_has_a=st.booleans())
    def run(chosen: list[tuple[Any, ...]], dst_has_a: bool) -> None:
        if mode == "sync":  # a peer's own deletion of a timeline is what sync carries
            assume(("tombstone", "timeline", "V", "V") not in chosen)
        scene = Scene(localckpt.open("memory://"), localckpt.open("memory://"), dst_has_a)
        before_bytes, before_reads = _victim(scene.dst, scene), _reads(scene.dst, scene)
        try:
            _attack(scene, [_records(scene, e) for e in chosen], mode, tmp_path)
        except LocalckptError:
            pass  # refused: fine, as long as nothing of V changed
        assert _victim(scene.dst, scene) == before_bytes
        assert _reads(scene.dst, scene) == before_reads
        reads = _everything_reads(scene.dst)
        assert reads and scene.dst.verify().ok, scene.dst.verify().problems
        _passes_on(scene.dst)
        scene.src.close()
        scene.dst.close()

    run()


@pytest.mark.parametrize("edit", [
    ("tombstone", "checkpoint", "V", "A"), ("tombstone", "tag", "V", "A"),
    ("tombstone", "checkpoint", "V.c", "V"), ("tombstone", "checkpoint", "A.root", "A"),
    ("tombstone", "tag", "V.c", "A"), ("tombstone", "tag", "V.tag", "A"),
    ("tombstone", "checkpoint", "V.tag", "A"), ("tag", "../../<script>", "A.c", "A"),
    ("tag", "fine-name", "V.c", "A"), ("tree", "cycle"), ("tree", "self-parent"),
    ("tree", "merge-from-V"), ("tree", "root-with-parent"), ("tree", "parent-in-V"),
    ("output", 0), ("output", 1), ("output", 2), ("output", 3), ("output", 4),
], ids=lambda e: "-".join(map(str, e)))
@pytest.mark.parametrize("mode", ["sync", "bundle"])
def test_each_hostile_record_is_refused(edit: tuple[Any, ...], mode: str,
                                        new_store: StoreFactory, tmp_path: Path) -> None:
    """The named attacks, one by one: refused with CorruptDataError, nothing written."""
    scene = Scene(new_store("memory"), new_store("embedded"), dst_has_a=False)
    before = _victim(scene.dst, scene)
    timelines = {t.id for t in scene.dst.catalog.timelines(None)}
    with pytest.raises(localckpt.CorruptDataError) as refused:
        _attack(scene, [_records(scene, edit)], mode, tmp_path)
    if edit == ("tree", "root-with-parent") and mode == "sync":  # bundles: one timeline
        assert "has a parent" in str(refused.value)
    assert _victim(scene.dst, scene) == before
    assert {t.id for t in scene.dst.catalog.timelines(None)} == timelines
    assert not scene.dst.objects.list(f"frames/{scene.a.id}")


def test_a_bundle_cannot_delete_a_timeline_it_does_not_carry(new_store: StoreFactory,
                                                              tmp_path: Path) -> None:
    """A bundle carries its manifest's timeline only; a sync peer may pass on its own
    deletion of a timeline it purged (the 2P-set), a bundle never."""
    scene = Scene(new_store("memory"), new_store("embedded"), dst_has_a=False)
    before = _victim(scene.dst, scene)
    with pytest.raises(localckpt.CorruptDataError, match="not to the bundle's"):
        _attack(scene, [_records(scene, ("tombstone", "timeline", "V", "V"))], "bundle",
                tmp_path)
    assert _victim(scene.dst, scene) == before


def test_a_tombstone_aimed_across_kinds_deletes_nothing_even_inside(
        store_kind: str, new_store: StoreFactory) -> None:
    """Defence in depth: tombstones that got into a catalog anyway (written behind the
    API's back) only delete a record of their own kind in their own timeline."""
    from localckpt.gc import collect_garbage

    scene = Scene(new_store("memory"), new_store(store_kind), dst_has_a=True)
    before = _reads(scene.dst, scene)
    now = utcnow()
    scene.dst.catalog.commit(Batch(tombstones=[
        Tombstone(new_id(), scene.v.id, "checkpoint", scene.v.id, now),
        Tombstone(new_id(), scene.v.id, "tag", scene.v.id, now),
        Tombstone(new_id(), scene.v.id, "checkpoint", scene.a.id, now),
        Tombstone(new_id(), scene.v_ids[2], "checkpoint", scene.a.id, now),
        Tombstone(new_id(), scene.v_tag.id, "tag", scene.a.id, now),
        Tombstone(new_id(), scene.v_ids[1], "tag", scene.v.id, now),
    ]))
    assert _reads(scene.dst, scene) == before
    assert scene.dst.catalog.deleted([scene.v.id, *scene.v_ids, scene.v_tag.id]) == set()
    for kind in ("timeline", "checkpoint", "tag"):
        assert scene.dst.catalog.deleted([scene.v.id, *scene.v_ids, scene.v_tag.id],
                                         kind) == set()
    report = collect_garbage(scene.dst, older_than=0, dry_run=True)
    assert scene.v.id not in (*report.deleted_timelines, *report.orphan_timelines)


def test_the_deleted_contract(new_store: StoreFactory) -> None:
    """Catalog.deleted answers what the contract says, kind by kind."""
    scene = Scene(new_store("memory"), new_store("memory"), dst_has_a=True)
    store = scene.dst
    c = scene.a_ids[1]
    now = utcnow()
    store.catalog.commit(Batch(tombstones=[
        Tombstone(new_id(), c, "checkpoint", scene.a.id, now),
        Tombstone(new_id(), scene.a_tag.id, "tag", scene.a.id, now),
        Tombstone(new_id(), scene.v.id, "timeline", scene.v.id, now),
    ]))
    ids = [c, scene.a_tag.id, scene.v.id, scene.a.id]
    assert store.catalog.deleted(ids, "checkpoint") == {c}
    assert store.catalog.deleted(ids, "tag") == {scene.a_tag.id}
    assert store.catalog.deleted(ids, "timeline") == {scene.v.id}
    assert store.catalog.deleted(ids) == {c, scene.a_tag.id, scene.v.id}
    with pytest.raises(ValueError):
        store.catalog.deleted(ids, "frame")
