"""The backend conformance suite: one set of tests every store configuration must pass.

A backend's test module subclasses :class:`StoreConformance` and provides a ``store``
fixture that returns a fresh, empty :class:`localckpt.Store` (and, when the data
survives a close, a ``reopen`` fixture)::

    import pytest
    import localckpt
    from localckpt.testing.conformance import StoreConformance

    class TestMyBackend(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            store = localckpt.open(f"mybackend://{tmp_path}")
            yield store
            store.close()

        @pytest.fixture
        def reopen(self):
            def reopen(store):
                store.close()
                return localckpt.open(store.url)   # same data, new process view
            return reopen

The tests check the public API against raw reads that bypass it where they can: output
bytes from ``store.catalog.outputs`` must hash to ``stage_hashes``, lineage must agree
with the parent links of raw ``catalog.checkpoints`` rows, frames must match the raw
Parquet index and shard bytes in ``store.objects``, and a rejected call must leave the
timelines, every tree and the object listing exactly as they were.

Needs pytest and hypothesis (``pip install 'localckpt[test]'``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from .. import Batch, Checkpoint, ConflictError, Frame, InvalidInputError, NotFoundError
from ..canonical import canonical_bytes, content_hash, load_canonical
from ..ids import new_id
from ..store import Store
from ..types import Timeline
from . import strategies as lst
from .conformance_records import RecordConformance

__all__ = ["Snapshot", "StoreConformance", "assert_same_json", "gradient", "noise", "snapshot"]

Reopen = Callable[[Store], Store]

# A hypothesis test takes the function-scoped store: examples share one store, and each
# works on its own checkpoints, so sharing is harmless. Every subclass runs the same
# method (differing executors): the store is the only thing that differs, and it is an
# argument, so replaying an example in another subclass is still a valid test.
_PROPERTY = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.differing_executors],
    deadline=None,
)


# -- helpers (public: third-party backend tests may use them) ------------------------------


def noise(n: int, h: int = 6, w: int = 8, seed: int = 0) -> list[np.ndarray]:
    """n random HxWx3 uint8 images (exact round trip needs codec="png")."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def gradient(n: int, h: int = 16, w: int = 24) -> list[np.ndarray]:
    """n smooth images, which JPEG keeps close to the original."""
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                        np.full_like(x, (40 * i) % 256)], axis=-1)
        out.append(img.astype(np.uint8))
    return out


@attrs.frozen
class Snapshot:
    """Everything a rejected call must leave as it was."""

    timelines: list[Timeline]
    trees: dict[str, list[Checkpoint]]
    objects: list[str]


def snapshot(store: Store) -> Snapshot:
    timelines = store.list_timelines()
    return Snapshot(
        timelines=timelines,
        trees={t.id: store.checkpoints(t.id) for t in timelines},
        objects=store.objects.list(""),
    )


def assert_same_json(actual: Any, expected: Any) -> None:
    """Equal as JSON, exactly: 1, 1.0 and True differ; key order does not matter."""
    assert canonical_bytes(actual) == canonical_bytes(expected), (actual, expected)


def _nested(depth: int) -> dict[str, Any]:
    """{"a": {"a": ... {}}}, depth levels deep."""
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _raw_lineage(store: Store, checkpoint_id: str) -> list[str]:
    """Root-first ids, walking parent links through raw catalog reads."""
    chain = []
    current: str | None = checkpoint_id
    while current is not None:
        rows = store.catalog.checkpoints([current])
        assert len(rows) == 1, f"parent {current} is missing from the catalog"
        chain.append(rows[0].id)
        current = rows[0].parent_id
        assert len(chain) < 10_000, "parent links form a cycle"
    return chain[::-1]


def _check_outputs_raw(store: Store, cp: Checkpoint) -> None:
    """Every hash a checkpoint references is in the catalog and its bytes hash to it."""
    raw = store.catalog.outputs(list(cp.stage_hashes.values()))
    assert set(raw) == set(cp.stage_hashes.values())
    for h, data in raw.items():
        assert content_hash(bytes(data)) == h
        assert canonical_bytes(load_canonical(bytes(data))) == bytes(data), "not canonical"


def _check_one_tree(store: Store, tl: Timeline) -> list[Checkpoint]:
    """The timeline's checkpoints form one tree rooted at its root checkpoint."""
    tree = store.checkpoints(tl.id)
    raw = store.catalog.tree(tl.id)
    assert tree == raw
    ids = [c.id for c in tree]
    assert ids == sorted(ids), "tree not ordered by id (creation)"
    assert len(set(ids)) == len(ids), "a checkpoint appears twice"
    assert all(c.timeline_id == tl.id for c in tree)
    roots = [c for c in tree if c.parent_id is None]
    assert [r.id for r in roots] == [tl.root_checkpoint_id]
    known = set(ids)
    for c in tree:
        assert c.parent_id is None or c.parent_id in known, f"{c.id} has a parent outside"
        assert _raw_lineage(store, c.id)[0] == tl.root_checkpoint_id
    return tree


def _record_commits(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[Batch]:
    """Record every Batch the store sends its catalog from now on."""
    batches: list[Batch] = []
    original = store.catalog.commit
    original_guarded = store.catalog.commit_guarded
    inside: list[bool] = []  # a guarded commit may commit through commit(): count it once

    def commit(batch: Batch) -> None:
        if not inside:
            batches.append(batch)
        original(batch)

    def commit_guarded(batch: Batch, timeline_id: str, seen: Any) -> None:
        batches.append(batch)
        inside.append(True)
        try:
            original_guarded(batch, timeline_id, seen)
        finally:
            inside.pop()

    monkeypatch.setattr(store.catalog, "commit", commit)
    monkeypatch.setattr(store.catalog, "commit_guarded", commit_guarded)
    return batches


class StoreConformance(RecordConformance):
    """The shared suite. Subclass it and provide the ``store`` fixture (see module doc).

    Class attributes a subclass may set:
        frame_side: side of the tiny test frames, in pixels.
    """

    frame_side: int = 8

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("a StoreConformance subclass must provide a `store` fixture")

    @pytest.fixture
    def reopen(self) -> Reopen | None:
        """Override to return ``reopen(store) -> Store``: close it, open the same data."""
        return None

    @pytest.fixture
    def timeline(self, store: Store) -> Timeline:
        return store.create_timeline("clip.mp4", "test", noise(3), fps=2.0, codec="png")

    def _require_reopen(self, reopen: Reopen | None) -> Reopen:
        if reopen is None:
            pytest.skip("this store keeps its data in the process only: nothing to reopen")
        return reopen

    # -- timelines ---------------------------------------------------------------------------

    def test_new_store_is_empty(self, store: Store) -> None:
        assert store.list_timelines() == []
        assert store.catalog.timelines(None) == []
        assert store.objects.list("") == []

    def test_create_timeline_from_arrays(self, store: Store) -> None:
        before = datetime.now(UTC)
        asset = uuid.uuid4()
        tl = store.create_timeline("match.mp4", "broadcast", noise(4), fps=4.0,
                                   source_asset_id=asset, codec="png")
        after = datetime.now(UTC)
        assert (tl.source_video, tl.profile_name, tl.fps, tl.frame_count) == (
            "match.mp4", "broadcast", 4.0, 4)
        assert tl.source_asset_id == str(asset)
        assert before <= tl.created_at <= after
        assert tl.created_at.utcoffset() is not None
        assert tl.id != tl.root_checkpoint_id
        assert store.get_timeline(tl.id) == tl
        assert store.list_timelines() == [tl]
        assert store.catalog.timelines([tl.id]) == [tl]

        root = store.get_checkpoint(tl.root_checkpoint_id)
        assert root.timeline_id == tl.id
        assert root.parent_id is None
        assert dict(root.stats) == {"frames_extracted": 4}
        assert dict(root.stage_hashes) == {}
        assert dict(root.stage_outputs) == {}
        assert dict(root.config_overrides) == {}
        assert (root.is_scenario, root.scenario_label, root.stage, root.merged_from) == (
            False, "", "", None)
        assert before <= root.created_at <= after
        assert store.checkpoints(tl.id) == [root]
        assert store.lineage(root.id) == [root]
        assert store.children(root.id) == []
        assert store.load_stage_output(root.id, "detect") is None

    def test_create_timeline_from_frame_objects(self, store: Store) -> None:
        from ..frames import perceptual_hash

        imgs = noise(3, seed=1)
        given_hash = "0123456789abcdef"
        frames = [
            Frame(30, 15.25, 2, "", imgs[0]),
            Frame(10, 5.5, 1, given_hash, imgs[1]),
            Frame(20, 10.0, 1, "", imgs[2]),
        ]
        tl = store.create_timeline("clip.mp4", "custom", frames, fps=2.0, codec="png")
        assert tl.frame_count == 3
        assert dict(store.get_checkpoint(tl.root_checkpoint_id).stats) == {
            "frames_extracted": 3}
        got = store.get_timeline_frames(tl.id)
        assert [f.sequence for f in got] == [10, 20, 30]
        assert [(f.timestamp, f.chunk_id) for f in got] == [(5.5, 1), (10.0, 1), (15.25, 2)]
        assert got[0].perceptual_hash == given_hash
        assert got[1].perceptual_hash == perceptual_hash(imgs[2])
        assert got[2].perceptual_hash == perceptual_hash(imgs[0])
        for f, img in zip(got, [imgs[1], imgs[2], imgs[0]], strict=True):
            assert np.array_equal(f.image, img)

    def test_create_timeline_from_a_generator_and_a_4d_array(self, store: Store) -> None:
        imgs = noise(5, seed=2)
        a = store.create_timeline("a.mp4", "p", (img for img in imgs), codec="png")
        b = store.create_timeline("b.mp4", "p", np.stack(imgs), codec="png")
        for tl in (a, b):
            assert tl.frame_count == 5
            got = store.get_timeline_frames(tl.id)
            assert all(np.array_equal(f.image, i) for f, i in zip(got, imgs, strict=True))

    def test_list_timelines_in_creation_order(self, store: Store) -> None:
        made = [store.create_timeline(f"v{i}.mp4", "p", noise(1, seed=i)) for i in range(3)]
        assert store.list_timelines() == made
        assert [store.get_timeline(t.id) for t in made] == made
        assert len({t.root_checkpoint_id for t in made}) == 3

    def test_timelines_have_separate_trees(self, store: Store) -> None:
        a = store.create_timeline("a.mp4", "p", noise(1))
        b = store.create_timeline("b.mp4", "p", noise(2))
        ca = store.save_stage_output(a.id, None, "detect", {"in": "a"})
        cb = store.save_stage_output(b.id, None, "detect", {"in": "b"})
        assert [c.id for c in store.checkpoints(a.id)] == [a.root_checkpoint_id, ca]
        assert [c.id for c in store.checkpoints(b.id)] == [b.root_checkpoint_id, cb]
        assert dict(store.get_checkpoint(b.root_checkpoint_id).stats) == {"frames_extracted": 2}
        _check_one_tree(store, a)
        _check_one_tree(store, b)

    # -- frames ------------------------------------------------------------------------------

    def test_png_frames_round_trip_exactly(self, store: Store) -> None:
        from ..frames import perceptual_hash

        imgs = noise(5, h=self.frame_side, w=self.frame_side + 3, seed=3)
        tl = store.create_timeline("v.mp4", "p", imgs, fps=4.0, codec="png")
        got = store.get_timeline_frames(tl.id)
        assert [f.sequence for f in got] == list(range(5))
        for i, (f, img) in enumerate(zip(got, imgs, strict=True)):
            assert f.timestamp == i / 4.0
            assert f.chunk_id == 0
            assert f.perceptual_hash == perceptual_hash(img)
            assert f.image.dtype == np.uint8
            assert np.array_equal(f.image, img)
            assert store.get_frame(tl.id, i) == f

    def test_jpeg_frames_are_close(self, store: Store) -> None:
        imgs = gradient(3)
        tl = store.create_timeline("v.mp4", "p", imgs, quality=90)
        got = store.get_timeline_frames(tl.id)
        assert len(got) == 3
        for f, img in zip(got, imgs, strict=True):
            assert f.image.shape == img.shape and f.image.dtype == np.uint8
            err = np.abs(f.image.astype(int) - img.astype(int)).mean()
            assert err < 6, f"JPEG q90 of a smooth image is off by {err} on average"

    def test_frame_ranges_by_sequence(self, store: Store) -> None:
        imgs = noise(6, seed=4)
        tl = store.create_timeline("v.mp4", "p", imgs, codec="png")
        every = store.get_timeline_frames(tl.id)

        def seqs(frames: list[Frame]) -> list[int]:
            return [f.sequence for f in frames]

        assert seqs(store.get_timeline_frames(tl.id, 2, 5)) == [2, 3, 4]
        assert seqs(store.get_timeline_frames(tl.id, start=4)) == [4, 5]
        assert seqs(store.get_timeline_frames(tl.id, stop=2)) == [0, 1]
        assert store.get_timeline_frames(tl.id, 5, 2) == []
        assert store.get_timeline_frames(tl.id, 100, 200) == []
        assert store.get_timeline_frames(tl.id, 2, 5) == every[2:5]
        for batch in (1, 2, 64):
            assert list(store.iter_frames(tl.id, batch=batch)) == every
        assert list(store.iter_frames(tl.id, 1, 4, batch=2)) == every[1:4]

        sparse = [Frame(s, s / 10, 0, "", img) for s, img in zip((10, 20, 30), imgs,
                                                                 strict=False)]
        tl2 = store.create_timeline("v.mp4", "p", sparse, codec="png")
        assert seqs(store.get_timeline_frames(tl2.id, 15, 31)) == [20, 30]
        assert seqs(store.get_timeline_frames(tl2.id, 10, 20)) == [10]
        assert store.get_frame(tl2.id, 20) == store.get_timeline_frames(tl2.id, 20, 21)[0]
        with pytest.raises(NotFoundError):
            store.get_frame(tl2.id, 15)
        with pytest.raises(LookupError):
            store.get_frame(tl.id, 6)

    def test_frames_match_raw_index_and_shards(self, store: Store) -> None:
        from ..shards import index_key, read_parquet, shard_key

        imgs = noise(4, seed=5)
        tl = store.create_timeline("v.mp4", "p", imgs, fps=2.0, codec="png")
        table = read_parquet(store.objects.get(index_key(tl.id)))
        rows = sorted(table.to_pylist(), key=lambda r: r["sequence"])
        metas = store.frame_index(tl.id)
        assert [attrs.asdict(m) for m in metas] == rows
        assert [m.sequence for m in metas] == [0, 1, 2, 3]
        for m, img in zip(metas, imgs, strict=True):
            assert (m.width, m.height, m.codec) == (img.shape[1], img.shape[0], "png")
            data = store.objects.get_range(shard_key(tl.id, m.shard), m.offset,
                                           m.offset + m.length)
            assert hashlib.sha256(data).hexdigest() == m.content_hash
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), img)
        assert all(k.startswith(f"frames/{tl.id}/") for k in store.objects.list(""))

    def test_frames_b64(self, store: Store) -> None:
        for codec in ("jpeg", "png"):
            imgs = gradient(2, h=10, w=14)
            tl = store.create_timeline("v.mp4", "p", imgs, fps=5.0, codec=codec)
            rows = store.get_timeline_frames_b64(tl.id)
            assert [r["sequence"] for r in rows] == [0, 1]
            frames = store.get_timeline_frames(tl.id)
            for row, f in zip(rows, frames, strict=True):
                assert (row["timestamp"], row["chunk_id"], row["perceptual_hash"]) == (
                    f.timestamp, f.chunk_id, f.perceptual_hash)
                assert (row["width"], row["height"]) == (14, 10)
                data = base64.b64decode(row["jpeg_b64"], validate=True)
                assert data[:2] == b"\xff\xd8", "jpeg_b64 must hold JPEG bytes"
                with Image.open(io.BytesIO(data)) as im:
                    assert im.format == "JPEG" and im.size == (14, 10)
            assert [r["sequence"] for r in store.get_timeline_frames_b64(tl.id, 1, 2)] == [1]

    # -- checkpoints -------------------------------------------------------------------------

    def test_save_and_load(self, store: Store, timeline: Timeline) -> None:
        output = {"boxes": [[1, 2, 3, 4]], "score": 0.5, "label": "ball"}
        cid = store.save_stage_output(timeline.id, None, "detect", output)
        assert isinstance(cid, str) and cid not in (timeline.id, timeline.root_checkpoint_id)
        assert_same_json(store.load_stage_output(cid, "detect"), output)
        assert store.load_stage_output(cid, "track") is None
        assert store.load_stage_output(timeline.root_checkpoint_id, "detect") is None

    def test_get_checkpoint_fields(self, store: Store, timeline: Timeline) -> None:
        before = datetime.now(UTC)
        a = store.save_stage_output(timeline.id, None, "detect", {"n": 1},
                                    config_overrides={"model": "yolo"}, stats={"boxes": 3})
        b = store.save_stage_output(timeline.id, a, "track", {"ids": [7]},
                                    config_overrides={"iou": 0.5}, stats={"tracks": 1},
                                    is_scenario=True, scenario_label="try iou")
        after = datetime.now(UTC)
        cp = store.get_checkpoint(b)
        assert (cp.id, cp.timeline_id, cp.parent_id, cp.stage) == (b, timeline.id, a, "track")
        assert cp.stage_hashes == {
            "detect": content_hash(canonical_bytes({"n": 1})),
            "track": content_hash(canonical_bytes({"ids": [7]})),
        }
        assert dict(cp.config_overrides) == {"model": "yolo", "iou": 0.5}
        assert dict(cp.stats) == {"frames_extracted": 3, "boxes": 3, "tracks": 1}
        assert (cp.is_scenario, cp.scenario_label, cp.merged_from) == (True, "try iou", None)
        assert before <= cp.created_at <= after and cp.created_at.utcoffset() is not None
        assert store.get_checkpoint(a).created_at <= cp.created_at
        # stage_outputs (lazy) equals what load_stage_output returns, stage by stage
        assert set(cp.stage_outputs) == {"detect", "track"}
        assert len(cp.stage_outputs) == 2
        for stage in ("detect", "track"):
            assert_same_json(cp.stage_outputs[stage], store.load_stage_output(b, stage))
        with pytest.raises(KeyError):
            cp.stage_outputs["ocr"]
        _check_outputs_raw(store, cp)
        assert store.get_checkpoint(b) == cp

    def test_outputs_are_content_addressed(self, store: Store, timeline: Timeline) -> None:
        output = {"b": [1, 2.5, None], "a": {"z": True, "é": "ü"}}
        cid = store.save_stage_output(timeline.id, None, "detect", output)
        h = store.get_checkpoint(cid).stage_hashes["detect"]
        assert h == content_hash(canonical_bytes(output))
        raw = store.catalog.outputs([h, "0" * 64])
        assert list(raw) == [h]
        assert bytes(raw[h]) == canonical_bytes(output)
        assert store.catalog.missing_outputs([h, "0" * 64]) == {"0" * 64}
        assert_same_json(store.catalog.load_values([h])[h], output)
        # the same value saved elsewhere (keys reordered) gets the same hash
        other = store.save_stage_output(timeline.id, None, "detect",
                                        {"a": {"é": "ü", "z": True}, "b": [1, 2.5, None]})
        assert store.get_checkpoint(other).stage_hashes["detect"] == h
        assert list(store.catalog.outputs([h])) == [h]

    def test_carry_forward_shares_hashes(
        self, store: Store, timeline: Timeline, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        detect = {"boxes": list(range(50))}
        a = store.save_stage_output(timeline.id, None, "detect", detect)
        batches = _record_commits(store, monkeypatch)
        b = store.save_stage_output(timeline.id, a, "track", {"tracks": [1]})
        c = store.save_stage_output(timeline.id, b, "ocr", {"text": "GOAL"})
        ha = store.get_checkpoint(a).stage_hashes
        hb = store.get_checkpoint(b).stage_hashes
        hc = store.get_checkpoint(c).stage_hashes
        assert hb["detect"] == ha["detect"] and hc["detect"] == ha["detect"]
        assert hc["track"] == hb["track"]
        assert set(hc) == {"detect", "track", "ocr"}
        # carry-forward sent only the new stage's output to the catalog
        assert [set(batch.outputs) for batch in batches] == [{hb["track"]}, {hc["ocr"]}]
        assert all(len(batch.checkpoints) == 1 and not batch.timelines for batch in batches)
        # and the shared output is one record, readable from every descendant
        assert list(store.catalog.outputs([ha["detect"]])) == [ha["detect"]]
        for cid in (a, b, c):
            assert_same_json(store.load_stage_output(cid, "detect"), detect)
        _check_outputs_raw(store, store.get_checkpoint(c))

    def test_saving_a_stage_again_overrides_it(self, store: Store, timeline: Timeline) -> None:
        a = store.save_stage_output(timeline.id, None, "detect", {"v": 1})
        b = store.save_stage_output(timeline.id, a, "track", {"t": 1})
        c = store.save_stage_output(timeline.id, b, "detect", {"v": 2})
        assert store.load_stage_output(c, "detect") == {"v": 2}
        assert store.load_stage_output(b, "detect") == {"v": 1}
        assert store.load_stage_output(a, "detect") == {"v": 1}
        hb, hc = store.get_checkpoint(b).stage_hashes, store.get_checkpoint(c).stage_hashes
        assert hc["track"] == hb["track"]
        assert hc["detect"] != hb["detect"]
        assert store.get_checkpoint(c).stage == "detect"

    def test_config_and_stats_merge_child_keys_win(
        self, store: Store, timeline: Timeline
    ) -> None:
        a = store.save_stage_output(timeline.id, None, "detect", {},
                                    config_overrides={"a": 1, "b": {"deep": 1}},
                                    stats={"x": 1})
        b = store.save_stage_output(timeline.id, a, "track", {},
                                    config_overrides={"b": 2, "c": [3]},
                                    stats={"frames_extracted": 99, "y": 2})
        c = store.save_stage_output(timeline.id, b, "ocr", {})
        ca, cb, cc = (store.get_checkpoint(i) for i in (a, b, c))
        assert_same_json(dict(ca.config_overrides), {"a": 1, "b": {"deep": 1}})
        assert_same_json(dict(ca.stats), {"frames_extracted": 3, "x": 1})
        assert_same_json(dict(cb.config_overrides), {"a": 1, "b": 2, "c": [3]})
        assert_same_json(dict(cb.stats), {"frames_extracted": 99, "x": 1, "y": 2})
        assert_same_json(dict(cc.config_overrides), dict(cb.config_overrides))
        assert_same_json(dict(cc.stats), dict(cb.stats))
        root = store.get_checkpoint(timeline.root_checkpoint_id)
        assert dict(root.stats) == {"frames_extracted": 3} and dict(root.config_overrides) == {}

    def test_mutating_inputs_or_results_changes_nothing(
        self, store: Store, timeline: Timeline
    ) -> None:
        output = {"boxes": [1, 2]}
        config = {"model": {"name": "yolo"}}
        a = store.save_stage_output(timeline.id, None, "detect", output,
                                    config_overrides=config, stats={"n": [1]})
        output["boxes"].append(3)
        config["model"]["name"] = "changed"
        got = store.get_checkpoint(a)
        got.stage_outputs["detect"]["boxes"].append(4)
        got.config_overrides["model"]["name"] = "mutated"
        got.stats["n"].append(2)
        loaded = store.load_stage_output(a, "detect")
        assert loaded is not None
        loaded["boxes"].append(5)
        fresh = store.get_checkpoint(a)
        assert fresh.stage_outputs["detect"] == {"boxes": [1, 2]}
        assert store.load_stage_output(a, "detect") == {"boxes": [1, 2]}
        assert fresh.config_overrides == {"model": {"name": "yolo"}}
        assert fresh.stats["n"] == [1]
        child = store.get_checkpoint(store.save_stage_output(timeline.id, a, "track", {}))
        assert child.config_overrides == {"model": {"name": "yolo"}}

    def test_scenarios_are_siblings(self, store: Store, timeline: Timeline) -> None:
        base = store.save_stage_output(timeline.id, None, "detect", {"boxes": 3})
        tries = [
            store.save_stage_output(timeline.id, base, "track", {"iou": iou},
                                    config_overrides={"iou": iou}, is_scenario=True,
                                    scenario_label=f"iou={iou}")
            for iou in (0.3, 0.5, 0.7)
        ]
        plain = store.save_stage_output(timeline.id, base, "track", {"iou": 0.4})
        kids = store.children(base)
        assert [k.id for k in kids] == [*tries, plain]
        assert [(k.is_scenario, k.scenario_label) for k in kids] == [
            (True, "iou=0.3"), (True, "iou=0.5"), (True, "iou=0.7"), (False, "")]
        base_hash = store.get_checkpoint(base).stage_hashes["detect"]
        assert {k.stage_hashes["detect"] for k in kids} == {base_hash}
        assert len({k.stage_hashes["track"] for k in kids}) == 4
        for t in tries:
            assert [c.id for c in store.lineage(t)] == [timeline.root_checkpoint_id, base, t]
            assert store.children(t) == []
        assert [c.config_overrides.get("iou") for c in kids] == [0.3, 0.5, 0.7, None]

    def test_parent_none_and_root_id_both_mean_root(
        self, store: Store, timeline: Timeline
    ) -> None:
        a = store.save_stage_output(timeline.id, None, "detect", {"i": 1})
        b = store.save_stage_output(timeline.id, timeline.root_checkpoint_id, "detect", {"i": 2})
        for cid in (a, b):
            assert store.get_checkpoint(cid).parent_id == timeline.root_checkpoint_id
        assert [c.id for c in store.children(timeline.root_checkpoint_id)] == [a, b]
        assert [c.id for c in store.checkpoints(timeline.id)] == [
            timeline.root_checkpoint_id, a, b]

    def test_lineage_children_and_tree_agree_with_parent_links(
        self, store: Store, timeline: Timeline
    ) -> None:
        # a tree with two branches of depth 4 and a fork in the middle of one
        ids = [timeline.root_checkpoint_id]
        parents: list[int] = [-1, 0, 1, 2, 3, 0, 5, 2, 7, 6]  # -1: the root
        stages = ["", "detect", "track", "ocr", "score", "detect", "track", "ocr", "x", "y"]
        for i in range(1, len(parents)):
            ids.append(store.save_stage_output(timeline.id, ids[parents[i]], stages[i], {"i": i}))
        tree = _check_one_tree(store, timeline)
        assert [c.id for c in tree] == ids
        by_id = {c.id: c for c in tree}
        for i, cid in enumerate(ids):
            lineage = store.lineage(cid)
            assert [c.id for c in lineage] == _raw_lineage(store, cid)
            assert lineage == store.catalog.lineage(cid)
            assert lineage[0].id == timeline.root_checkpoint_id and lineage[-1].id == cid
            assert all(lineage[k + 1].parent_id == lineage[k].id for k in range(len(lineage) - 1))
            expected_kids = [ids[j] for j in range(len(ids)) if parents[j] == i]
            assert [c.id for c in store.children(cid)] == expected_kids
            assert [c.id for c in store.catalog.children(cid)] == expected_kids
            assert by_id[cid] == store.get_checkpoint(cid)
        deep = store.get_checkpoint(ids[4])
        assert set(deep.stage_hashes) == {"detect", "track", "ocr", "score"}
        # ocr ran at 3 and at 7: each branch sees its own, the third branch none
        assert store.load_stage_output(ids[4], "ocr") == {"i": 3}
        assert store.load_stage_output(ids[8], "ocr") == {"i": 7}
        assert store.load_stage_output(ids[8], "track") == {"i": 2}
        assert store.load_stage_output(ids[9], "ocr") is None
        assert store.load_stage_output(ids[9], "track") == {"i": 6}

    def test_threads_saving_at_once(self, store: Store, timeline: Timeline) -> None:
        saved: list[list[str]] = [[] for _ in range(4)]
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                parent = None
                for i in range(15):
                    parent = store.save_stage_output(timeline.id, parent, f"s{k}", {"i": i})
                    saved[k].append(parent)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        tree = _check_one_tree(store, timeline)
        assert len(tree) == 1 + 4 * 15
        for k in range(4):
            lineage = store.lineage(saved[k][-1])
            assert [c.id for c in lineage] == [timeline.root_checkpoint_id, *saved[k]]
            assert store.load_stage_output(saved[k][-1], f"s{k}") == {"i": 14}

    # -- absent ids --------------------------------------------------------------------------

    UNKNOWN = ("0190a000-0000-7000-8000-000000000000", "", "../../etc/passwd",
               "x'; DROP TABLE checkpoints; --")

    @pytest.mark.parametrize("unknown", UNKNOWN)
    def test_unknown_ids_raise_not_found(
        self, store: Store, timeline: Timeline, unknown: str
    ) -> None:
        calls: list[Callable[[], object]] = [
            lambda: store.get_timeline(unknown),
            lambda: store.get_checkpoint(unknown),
            lambda: store.load_stage_output(unknown, "detect"),
            lambda: store.children(unknown),
            lambda: store.lineage(unknown),
            lambda: store.checkpoints(unknown),
            lambda: store.get_timeline_frames(unknown),
            lambda: list(store.iter_frames(unknown)),
            lambda: store.get_frame(unknown, 0),
            lambda: store.get_timeline_frames_b64(unknown),
            lambda: store.frame_index(unknown),
        ]
        before = snapshot(store)
        for call in calls:
            with pytest.raises(NotFoundError) as info:
                call()
            assert isinstance(info.value, LookupError)
            assert str(info.value), "errors must say what was wrong"
        assert snapshot(store) == before

    def test_catalog_reads_of_unknown_ids_are_empty(
        self, store: Store, timeline: Timeline
    ) -> None:
        unknown = "0190a000-0000-7000-8000-000000000000"
        cat = store.catalog
        assert cat.timelines([unknown]) == []
        assert cat.timelines([unknown, timeline.id]) == [timeline]
        assert cat.checkpoints([unknown]) == []
        assert cat.children(unknown) == []
        assert cat.lineage(unknown) == []
        assert cat.tree(unknown) == []
        assert cat.outputs(["f" * 64]) == {}
        assert cat.missing_outputs(["f" * 64]) == {"f" * 64}

    # -- rejected input leaves the store unchanged ------------------------------------------

    def _other_timeline_parent(self, store: Store, timeline: Timeline) -> str:
        other = store.create_timeline("other.mp4", "p", noise(1, seed=9))
        return store.save_stage_output(other.id, None, "detect", {"other": True})

    BAD_SAVES: dict[str, tuple[type[Exception], dict[str, Any]]] = {
        "unknown parent": (NotFoundError,
                           {"parent": "0190a000-0000-7000-8000-000000000000"}),
        "unknown timeline": (NotFoundError, {"timeline": "0190a000-0000-7000-8000-000000000001",
                                             "parent": None}),
        "parent of another timeline": (InvalidInputError, {"parent": "OTHER"}),
        "NaN in output": (InvalidInputError, {"output": {"score": math.nan}}),
        "Infinity in output": (InvalidInputError, {"output": {"x": [1, {"y": math.inf}]}}),
        "NaN in config": (InvalidInputError, {"config": {"lr": math.nan}}),
        "-Infinity in stats": (InvalidInputError, {"stats": {"t": -math.inf}}),
        "list output": (InvalidInputError, {"output": [1, 2]}),
        "str output": (InvalidInputError, {"output": '{"json": "text"}'}),
        "None output": (InvalidInputError, {"output": None}),
        "int key in output": (InvalidInputError, {"output": {1: "one"}}),
        "tuple key in config": (InvalidInputError, {"config": {(1, 2): "pair"}}),
        "None key in stats": (InvalidInputError, {"stats": {"ok": {None: 1}}}),
        "set in output": (InvalidInputError, {"output": {"s": {1, 2}}}),
        "bytes in output": (InvalidInputError, {"output": {"b": b"raw"}}),
        "object in output": (InvalidInputError, {"output": {"o": object()}}),
        "lone surrogate in output": (InvalidInputError, {"output": {"s": "\ud800"}}),
        "lone surrogate key in config": (InvalidInputError, {"config": {"\udfff": 1}}),
        "lone surrogate stage name": (InvalidInputError, {"stage": "det\ud800"}),
        "lone surrogate scenario_label": (InvalidInputError, {"scenario_label": "\udc00"}),
        "output nested too deeply": (InvalidInputError, {"output": "DEEP"}),
        "list config": (InvalidInputError, {"config": [("a", 1)]}),
        "str stats": (InvalidInputError, {"stats": "n=1"}),
        "empty stage name": (InvalidInputError, {"stage": ""}),
        "non-str stage name": (InvalidInputError, {"stage": 3}),
        "non-bool is_scenario": (InvalidInputError, {"is_scenario": "yes"}),
        "non-str scenario_label": (InvalidInputError, {"scenario_label": None}),
        "non-str timeline id": (InvalidInputError, {"timeline": 7}),
        "non-str parent id": (InvalidInputError, {"parent": 7}),
    }

    @pytest.mark.parametrize("case", sorted(BAD_SAVES))
    def test_rejected_save_leaves_store_unchanged(
        self, store: Store, timeline: Timeline, case: str
    ) -> None:
        error, args = self.BAD_SAVES[case]
        other_parent = self._other_timeline_parent(store, timeline)
        ok = store.save_stage_output(timeline.id, None, "detect", {"ok": 1})
        call: dict[str, Any] = {
            "timeline": timeline.id, "parent": ok, "stage": "track",
            "output": {"valid": "output", "case": case}, "config": {"c": 1},
            "stats": {"s": 1}, "is_scenario": False, "scenario_label": "",
        }
        call.update(args)
        if call["parent"] == "OTHER":
            call["parent"] = other_parent
        if call["output"] == "DEEP":
            call["output"] = _nested(5000)
        probe = None
        if isinstance(call["output"], dict):
            try:
                probe = content_hash(canonical_bytes(call["output"]))
            except (InvalidInputError, UnicodeError):
                probe = None
        before = snapshot(store)
        with pytest.raises(error) as info:
            store.save_stage_output(
                call["timeline"], call["parent"], call["stage"], call["output"],
                config_overrides=call["config"], stats=call["stats"],
                is_scenario=call["is_scenario"], scenario_label=call["scenario_label"],
            )
        assert isinstance(info.value, LookupError if error is NotFoundError else ValueError)
        assert str(info.value)
        assert snapshot(store) == before
        if probe is not None:
            assert store.catalog.outputs([probe]) == {}, "a rejected save stored its output"

    BAD_FRAMES: dict[str, Callable[[], dict[str, Any]]] = {
        "float32 frames": lambda: {"frames": [f.astype(np.float32) for f in noise(2)]},
        "uint16 frames": lambda: {"frames": [f.astype(np.uint16) for f in noise(2)]},
        "RGBA frames": lambda: {"frames": [np.zeros((4, 4, 4), np.uint8)]},
        "grayscale frames": lambda: {"frames": [np.zeros((4, 4), np.uint8)]},
        "4-d frame in a list": lambda: {"frames": [np.zeros((1, 4, 4, 3), np.uint8)]},
        "zero-height frame": lambda: {"frames": [np.zeros((0, 4, 3), np.uint8)]},
        "single HxWx3 array": lambda: {"frames": noise(1)[0]},
        "no frames": lambda: {"frames": []},
        "empty generator": lambda: {"frames": (f for f in noise(0))},
        "bad frame after good ones": lambda: {
            "frames": [*noise(300, h=2, w=2), np.zeros((2, 2), np.uint8)]},
        "non-array frame": lambda: {"frames": [noise(1)[0], "frame.jpg"]},
        "duplicate sequences": lambda: {
            "frames": [Frame(1, 0.0, 0, "", noise(1)[0]), Frame(1, 0.5, 0, "", noise(1)[0])]},
        "NaN timestamp": lambda: {"frames": [Frame(0, math.nan, 0, "", noise(1)[0])]},
        "zero fps": lambda: {"fps": 0},
        "NaN fps": lambda: {"fps": math.nan},
        "bool fps": lambda: {"fps": True},
        "unknown codec": lambda: {"codec": "gif"},
        "JPEG quality 0": lambda: {"codec": "jpeg", "quality": 0},
        "PNG with a quality": lambda: {"codec": "png", "quality": 90},
        "non-str source_video": lambda: {"source_video": None},
        "non-str profile_name": lambda: {"profile_name": 3},
        "lone surrogate source_video": lambda: {"source_video": "clip\ud800.mp4"},
        "lone surrogate profile_name": lambda: {"profile_name": "\udfff"},
        "int source_asset_id": lambda: {"source_asset_id": 12},
    }

    @pytest.mark.parametrize("case", sorted(BAD_FRAMES))
    def test_rejected_timeline_leaves_store_unchanged(
        self, store: Store, timeline: Timeline, case: str
    ) -> None:
        call: dict[str, Any] = {
            "source_video": "v.mp4", "profile_name": "p", "frames": noise(2), "fps": 2.0,
            "source_asset_id": None, "codec": "png",
        }
        call.update(self.BAD_FRAMES[case]())
        before = snapshot(store)
        with pytest.raises(InvalidInputError) as info:
            store.create_timeline(**call)
        assert isinstance(info.value, ValueError) and str(info.value)
        assert snapshot(store) == before

    # -- properties --------------------------------------------------------------------------

    @_PROPERTY
    @given(stage=lst.stage_names(), output=lst.json_objects(), config=lst.json_objects(),
           stats=lst.json_objects(), label=lst.json_text, scenario=st.booleans())
    def test_any_json_round_trips(
        self, store: Store, timeline: Timeline, stage: str, output: dict[str, Any],
        config: dict[str, Any], stats: dict[str, Any], label: str, scenario: bool,
    ) -> None:
        cid = store.save_stage_output(timeline.id, None, stage, output, config_overrides=config,
                                      stats=stats, is_scenario=scenario, scenario_label=label)
        cp = store.get_checkpoint(cid)
        assert cp.stage == stage
        assert cp.stage_hashes == {stage: content_hash(canonical_bytes(output))}
        assert_same_json(store.load_stage_output(cid, stage), output)
        assert_same_json(cp.stage_outputs[stage], output)
        assert_same_json(dict(cp.config_overrides), config)
        assert_same_json(dict(cp.stats), {"frames_extracted": 3, **stats})
        assert (cp.is_scenario, cp.scenario_label) == (scenario, label)
        _check_outputs_raw(store, cp)
        child = store.get_checkpoint(store.save_stage_output(timeline.id, cid, "next", {}))
        assert child.stage_hashes[stage] == cp.stage_hashes[stage]
        assert_same_json(dict(child.config_overrides), config)

    @_PROPERTY
    @given(where=st.sampled_from(["output", "config", "stats"]), bad=lst.bad_json_values())
    def test_non_json_is_rejected(
        self, store: Store, timeline: Timeline, where: str, bad: dict[Any, Any]
    ) -> None:
        kwargs: dict[str, Any] = {"output": {"ok": 1}, "config": None, "stats": None}
        kwargs[where] = bad
        before = store.checkpoints(timeline.id)
        with pytest.raises(InvalidInputError):
            store.save_stage_output(timeline.id, None, "detect", kwargs["output"],
                                    config_overrides=kwargs["config"], stats=kwargs["stats"])
        assert store.checkpoints(timeline.id) == before

    # -- the catalog contract: idempotent, all-or-nothing commits ------------------------------

    def _batch(self, store: Store) -> Batch:
        """A new timeline with a root and one child, written straight to the catalog."""
        now = datetime.now(UTC)
        tid, root_id, child_id = new_id(), new_id(), new_id()
        data = canonical_bytes({"made": "by hand"})
        h = content_hash(data)
        tl = Timeline(tid, "hand.mp4", "p", 1.0, None, root_id, 0, now)
        root = Checkpoint(root_id, tid, None, {}, {}, {"frames_extracted": 0}, False, "", now)
        child = Checkpoint(child_id, tid, root_id, {"detect": h}, {"k": [1]},
                           {"frames_extracted": 0}, True, "hand", now, stage="detect")
        return Batch(timelines=[tl], checkpoints=[root, child], outputs={h: data})

    def test_commit_is_idempotent(self, store: Store, timeline: Timeline) -> None:
        batch = self._batch(store)
        store.catalog.commit(batch)
        once = snapshot(store)
        store.catalog.commit(batch)
        assert snapshot(store) == once
        tl = batch.timelines[0]
        assert store.get_timeline(tl.id) == tl
        assert store.checkpoints(tl.id) == list(batch.checkpoints)
        child = batch.checkpoints[1]
        assert store.load_stage_output(child.id, "detect") == {"made": "by hand"}
        # records read back from the store, committed again, change nothing either
        tree = store.checkpoints(timeline.id)
        hashes = [h for c in tree for h in c.stage_hashes.values()]
        store.catalog.commit(Batch(timelines=[timeline], checkpoints=tree,
                                   outputs=store.catalog.outputs(hashes)))
        store.catalog.commit(Batch())
        assert snapshot(store) == once

    @pytest.mark.parametrize("what", ["checkpoint", "timeline"])
    def test_conflicting_commit_writes_nothing(
        self, store: Store, timeline: Timeline, what: str
    ) -> None:
        cid = store.save_stage_output(timeline.id, None, "detect", {"v": 1}, stats={"n": 1})
        new = self._batch(store)
        if what == "checkpoint":
            changed = attrs.evolve(store.get_checkpoint(cid), stats={"n": 2})
            batch = Batch(timelines=new.timelines, checkpoints=[*new.checkpoints, changed],
                          outputs=new.outputs)
        else:
            changed_tl = attrs.evolve(timeline, profile_name="other")
            batch = Batch(timelines=[*new.timelines, changed_tl], checkpoints=new.checkpoints,
                          outputs=new.outputs)
        before = snapshot(store)
        with pytest.raises(ConflictError):
            store.catalog.commit(batch)
        assert snapshot(store) == before
        assert store.catalog.timelines([new.timelines[0].id]) == []
        assert store.catalog.checkpoints([c.id for c in new.checkpoints]) == []
        assert store.catalog.outputs(list(new.outputs)) == {}
        assert dict(store.get_checkpoint(cid).stats) == {"frames_extracted": 3, "n": 1}

    @pytest.mark.parametrize("what", ["checkpoint", "timeline"])
    def test_two_versions_of_one_id_in_a_batch_conflict(
        self, store: Store, timeline: Timeline, what: str
    ) -> None:
        """Every backend refuses a batch that holds one id twice with different content."""
        new = self._batch(store)
        if what == "checkpoint":
            first = new.checkpoints[1]
            batch = Batch(timelines=new.timelines, outputs=new.outputs,
                          checkpoints=[*new.checkpoints, attrs.evolve(first, stats={"v": 2})])
        else:
            batch = Batch(checkpoints=new.checkpoints, outputs=new.outputs,
                          timelines=[*new.timelines,
                                     attrs.evolve(new.timelines[0], profile_name="other")])
        before = snapshot(store)
        with pytest.raises(ConflictError, match="two different"):
            store.catalog.commit(batch)
        assert snapshot(store) == before
        assert store.catalog.timelines([new.timelines[0].id]) == []

    # -- persistence -------------------------------------------------------------------------

    def test_reopen_keeps_everything(
        self, store: Store, timeline: Timeline, reopen: Reopen | None
    ) -> None:
        reopen = self._require_reopen(reopen)
        a = store.save_stage_output(timeline.id, None, "detect", {"x": [1.5, "é", None]},
                                    config_overrides={"m": 1}, stats={"t": 0.25})
        b = store.save_stage_output(timeline.id, a, "track", {"y": 2}, is_scenario=True,
                                    scenario_label="s")
        before = snapshot(store)
        frames = store.get_timeline_frames(timeline.id)
        again = reopen(store)
        assert snapshot(again) == before
        assert again.get_timeline_frames(timeline.id) == frames
        assert again.load_stage_output(b, "detect") == {"x": [1.5, "é", None]}
        assert [c.id for c in again.lineage(b)] == [timeline.root_checkpoint_id, a, b]
        c = again.save_stage_output(timeline.id, b, "ocr", {"z": 3})
        assert set(again.get_checkpoint(c).stage_hashes) == {"detect", "track", "ocr"}
        third = reopen(again)
        assert [x.id for x in third.lineage(c)] == [timeline.root_checkpoint_id, a, b, c]
        assert third.load_stage_output(c, "ocr") == {"z": 3}
        _check_one_tree(third, timeline)

    def test_many_timelines_survive_reopen(
        self, store: Store, reopen: Reopen | None
    ) -> None:
        reopen = self._require_reopen(reopen)
        made = []
        for i in range(5):
            tl = store.create_timeline(f"v{i}.mp4", "p", noise(1, seed=i), codec="png")
            made.append((tl, store.save_stage_output(tl.id, None, "detect", {"i": i})))
        again = reopen(store)
        assert again.list_timelines() == [tl for tl, _ in made]
        for i, (tl, cid) in enumerate(made):
            assert again.load_stage_output(cid, "detect") == {"i": i}
            assert np.array_equal(again.get_frame(tl.id, 0).image, noise(1, seed=i)[0])
