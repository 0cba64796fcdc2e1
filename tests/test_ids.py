"""Record ids are UUIDv7 strings in canonical form, strictly increasing in a process."""

from __future__ import annotations

import time
import uuid

from localckpt.ids import id_tail, new_id


def test_ids_are_canonical_uuid7_strings_that_increase() -> None:
    ids = [new_id() for _ in range(20_000)]  # many share a millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    now_ms = time.time_ns() // 1_000_000
    for i in ids[:: 997] + ids[-1:]:
        u = uuid.UUID(i)
        assert str(u) == i  # lower-case hex, dashes at 8-4-4-4-12
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert abs((u.int >> 80) - now_ms) < 60_000  # the first 48 bits are the time in ms
    assert id_tail(ids[0]) == ids[0][-12:]
