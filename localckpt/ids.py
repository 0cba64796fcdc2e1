"""Time-sortable, globally unique ids (UUIDv7, RFC 9562).

Ids sort by creation time, so listings ordered by id are ordered by creation, and two
stores can be merged without renumbering. Python 3.11 has no ``uuid.uuid7``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta

__all__ = ["SHORT_MIN", "full_ids_in", "id_tail", "is_full_uuid", "new_id", "uuid7_time"]

#: Fewest characters of a short id (git's default abbreviation is 7).
SHORT_MIN = 8
_TAIL = 12

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> str:
    """Return a new UUIDv7 string, strictly increasing within this process."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter >= 1 << 12:  # 12-bit counter exhausted: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        _last_ms = ms
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    h = f"{value:032x}"  # str(uuid.UUID(int=value)), without making the UUID object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def id_tail(record_id: str) -> str:
    """The characters a short id is cut from: the last 12 of the id without dashes.

    For a UUIDv7 that is its last group, which is random (the first groups are the
    creation time, shared by every id made in the same millisecond). A short id is the
    shortest prefix of the tail, at least SHORT_MIN long, that no other id of its kind
    in the store shares (see ``Catalog.find_short``)."""
    return record_id.replace("-", "")[-_TAIL:]


def full_ids_in(text: str) -> list[str]:
    """The full ids (UUID text) a message holds, each once, in order."""
    return list(dict.fromkeys(_UUID.findall(text)))


def is_full_uuid(ref: str) -> bool:
    """Whether ref is a UUID in canonical form (lower-case hex, dashed): an id given
    whole, which needs no resolving."""
    return len(ref) == 36 and _UUID.fullmatch(ref) is not None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def uuid7_time(record_id: str) -> datetime | None:
    """The creation time a UUIDv7 id records (its first 48 bits: milliseconds since the
    Unix epoch, UTC), or None for an id that is not a UUIDv7 in canonical form (other
    versions, upper case, ids from other systems, anything but a str). Untrusted ids
    may record any time up to the year 10889; one past 9999 (beyond ``datetime``) reads
    as its last microsecond. ``localckpt.admit`` says what bound transfers put on it."""
    if not isinstance(record_id, str) or not is_full_uuid(record_id) \
            or record_id[14] != "7" or record_id[19] not in "89ab":
        return None
    try:
        return _EPOCH + timedelta(milliseconds=int(record_id[:8] + record_id[9:13], 16))
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)
