"""Timeline ids that differ only in letter case. A timeline's frames lie under
frames/<id>/, and a case-insensitive filesystem (macOS, Windows: a laptop's store)
holds one directory for 'peer-a' and 'PEER-A': a peer's timeline of the other case
overwrote the shards of one already there. Ids are tokens of either case, so a sync or
an import refuses a timeline whose id another has but for case, and copies nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs
import numpy as np
import pytest
from conftest import StoreFactory

import localckpt
from localckpt import Batch, Store
from localckpt.bundle import export_bundle, import_bundle
from localckpt.errors import ConflictError
from localckpt.frames import encode
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.shards import index_bytes, index_hash, index_key, shard_key
from localckpt.types import FrameMeta

FRAME = np.full((4, 4, 3), 80, np.uint8)


def _timeline_with_id(src: Store, tid: str, shade: int) -> None:
    """A timeline of one real frame (of this shade) with id tid, written into src's
    catalog and objects behind the API (a peer's ids need not be UUIDs)."""
    frame = encode(np.full((4, 4, 3), shade, np.uint8), "png")
    good = src.create_timeline("good.mp4", "p", [FRAME], codec="png", workers=1)
    meta = FrameMeta(0, 0.0, 0, "0" * 16, 4, 4, "png", hashlib.sha256(frame).hexdigest(),
                     0, 0, len(frame))
    index = index_bytes([meta])
    src.objects.put(shard_key(tid, 0), frame)
    src.objects.put(index_key(tid), index)
    root = attrs.evolve(src.get_checkpoint(good.root_checkpoint_id), id=new_id(),
                        timeline_id=tid, created_at=utcnow())
    t = attrs.evolve(good, id=tid, source_video=f"{tid}.mp4", root_checkpoint_id=root.id,
                     frame_count=1, index_hash=index_hash(index), created_at=utcnow())
    src.catalog.commit(Batch(timelines=[t], checkpoints=[root]))


def _state(store: Store) -> tuple[object, ...]:
    cat = store.catalog
    return (sorted(t.id for t in cat.timelines(None)),
            {k: store.objects.get(k) for k in store.objects.list("frames")})


def test_a_timeline_of_another_case_than_one_held_is_refused(
        new_store: StoreFactory, store_kind: str, tmp_path: Path) -> None:
    first, second = new_store("memory"), new_store("memory")
    _timeline_with_id(first, "peer-a", 40)
    _timeline_with_id(second, "PEER-A", 200)
    dst = new_store(store_kind)
    localckpt.sync(first, dst, "peer-a")
    before = _state(dst)
    with pytest.raises(ConflictError, match=r"timeline PEER-A and timeline peer-a .*letter "
                       r"case.*Nothing was copied"):
        localckpt.sync(second, dst, "PEER-A")
    assert _state(dst) == before
    path = tmp_path / "upper.lckpt"
    export_bundle(second, "PEER-A", path)
    with pytest.raises(ConflictError, match=r"PEER-A .* peer-a .*letter case"):
        import_bundle(dst, path)
    assert _state(dst) == before
    localckpt.sync(first, dst, "peer-a")  # the same timeline again is no clash


def test_a_source_carrying_both_cases_is_refused(new_store: StoreFactory,
                                                  store_kind: str) -> None:
    src, dst = new_store("memory"), new_store(store_kind)
    _timeline_with_id(src, "Twin", 40)
    _timeline_with_id(src, "twin", 200)
    before = _state(dst)
    with pytest.raises(ConflictError, match=r"Twin and timeline twin .*letter case"):
        localckpt.sync(src, dst)
    assert _state(dst) == before
    localckpt.sync(src, dst, "twin")  # one of them alone goes
    assert "twin" in _state(dst)[0] and "Twin" not in _state(dst)[0]
