"""Records and objects written into a store behind its API, as an old store's or a
hostile peer's would be: the untrusted sources of the transfer tests."""

from __future__ import annotations

import hashlib
from datetime import datetime

import attrs
import numpy as np

from localckpt import Batch, Store
from localckpt.frames import encode
from localckpt.ids import new_id
from localckpt.shards import index_bytes, index_hash, index_key, shard_key
from localckpt.types import FrameMeta

FRAME = np.zeros((4, 4, 3), np.uint8)


def timeline_with_id(src: Store, tid: str, created_at: datetime) -> None:
    """A timeline of one real 4x4 frame with id tid (ids are tokens: an old store's or a
    peer's need not be UUIDv7, nor lower-case), its source video 'peer.mp4', written
    into src's catalog and objects directly."""
    frame = encode(FRAME, "png")
    good = src.create_timeline("good.mp4", "p", [FRAME], codec="png", workers=1)
    meta = FrameMeta(0, 0.0, 0, "0" * 16, 4, 4, "png", hashlib.sha256(frame).hexdigest(),
                     0, 0, len(frame))
    index = index_bytes([meta])
    src.objects.put(shard_key(tid, 0), frame)
    src.objects.put(index_key(tid), index)
    root = attrs.evolve(src.get_checkpoint(good.root_checkpoint_id), id=new_id(),
                        timeline_id=tid, created_at=created_at)
    t = attrs.evolve(good, id=tid, source_video="peer.mp4", root_checkpoint_id=root.id,
                     frame_count=1, index_hash=index_hash(index), created_at=created_at)
    src.catalog.commit(Batch(timelines=[t], checkpoints=[root]))
