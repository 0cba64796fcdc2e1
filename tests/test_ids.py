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


def test_uuid7_time_reads_the_time_an_id_records() -> None:
    from datetime import UTC, datetime, timedelta

    from localckpt.ids import uuid7_time

    made = uuid7_time(new_id())
    assert made is not None and abs(made - datetime.now(UTC)) < timedelta(minutes=1)
    # the largest UUIDv7 records the year 10889, past what datetime holds
    assert uuid7_time("ffffffff-ffff-7fff-bfff-ffffffffffff") == datetime.max.replace(
        tzinfo=UTC)
    for other in ("zzz", str(uuid.uuid4()), new_id().upper(), None, 7, b"x" * 36,
                  "01a24e18-6716-700a-c674-bb876b87c584"):  # variant 110: not RFC 9562
        assert uuid7_time(other) is None
