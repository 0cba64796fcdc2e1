"""verify reports records from the future (problem kind "future").

Transfers refuse a record dated more than ``localckpt.admit.MAX_CLOCK_SKEW`` after the
local clock (by its created_at or its UUIDv7 id); verify said nothing of the ones a
store already held (made on a machine whose clock ran ahead, or written before the
transfers checked): a push of such a store is refused, and the record outranks every
one made here until its time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import attrs
import numpy as np
import pytest
from conftest import CONFORMANCE_KINDS, StoreFactory

from localckpt.admit import MAX_CLOCK_SKEW
from localckpt.catalog import Batch
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Tag, Tombstone

FRAME = np.zeros((4, 4, 3), np.uint8)
KINDS = [k for k in CONFORMANCE_KINDS if k in ("memory", "embedded", "duckdb",
                                                "postgres-local")]


def _uuid7_at(when: datetime) -> str:
    """A well-formed UUIDv7 recording the time when."""
    ms = int(when.timestamp() * 1000) & ((1 << 48) - 1)
    value = ms << 80 | 0x7 << 76 | 0b10 << 62 | int.from_bytes(os.urandom(8)) >> 2
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@pytest.mark.parametrize("kind", KINDS)
def test_verify_reports_records_from_the_future(kind: str, new_store: StoreFactory) -> None:
    store = new_store(kind)
    cat = store.catalog
    tl = store.create_timeline("v.mp4", "p", [FRAME], codec="png", workers=1)
    a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
    gone = store.create_timeline("w.mp4", "p", [FRAME], codec="png", workers=1)
    assert store.verify().ok
    later = utcnow() + MAX_CLOCK_SKEW + timedelta(hours=1)
    soon = utcnow() + MAX_CLOCK_SKEW - timedelta(hours=1)  # within the skew: fine
    record = cat.checkpoints([a])[0]
    late = attrs.evolve(record, id=new_id(), parent_id=a, created_at=later)
    dated = attrs.evolve(record, id=_uuid7_at(later), parent_id=a)
    fine = attrs.evolve(record, id=_uuid7_at(soon), parent_id=a, created_at=soon)
    tag = Tag(new_id(), "late", a, tl.id, later)
    untagged = Tag(_uuid7_at(later), "untagged", a, tl.id, utcnow())
    untag = Tombstone(new_id(), untagged.id, "tag", tl.id, utcnow())
    mark = Tombstone(new_id(), gone.id, "timeline", gone.id, later)  # a deleted timeline's
    cat.commit(Batch(checkpoints=[late, dated, fine], tags=[tag, untagged],
                     tombstones=[untag, mark]))
    expected = {late.id, dated.id, tag.id, mark.id}
    runs = getattr(cat, "runs", None)
    if runs is not None and runs.available:
        run = store.begin_run(tl.id, a, "track", version="1")
        began = runs.get(run.id)
        assert began is not None
        far = attrs.evolve(began, id=new_id(), created_at=later)
        runs.insert_run(far)
        expected.add(far.id)

    report = store.verify()
    found = {p.record: p for p in report.problems if p.kind == "future"}
    assert set(found) == expected  # not the untagged tag (a deletion), not fine
    assert not report.ok
    assert "more than a day after this machine's clock" in found[late.id].message
    assert "was created at" in found[late.id].message
    assert "has an id dated" in found[dated.id].message
    assert found[mark.id].message.startswith(f"tombstone {mark.id} ")

    one = store.verify(tl.id)
    assert {p.record for p in one.problems if p.kind == "future"} == expected - {mark.id}

    store.prune(late.id)
    store.prune(dated.id)
    store.untag("late")
    left = {p.record for p in store.verify().problems if p.kind == "future"}
    assert left == expected - {late.id, dated.id, tag.id}
