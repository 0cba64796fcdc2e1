"""Plain-dict form of records, for logs, bundles and wire formats (see ``schema``).

The dict form is JSON-serialisable and lossless: ``from_dict(to_dict(r)) == r``. The
fields of each kind are defined once, in :mod:`localckpt.schema`; these are the
historical names of its codec.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import schema
from .types import Checkpoint, Timeline

__all__ = [
    "checkpoint_from_dict",
    "checkpoint_to_dict",
    "parse_time",
    "timeline_from_dict",
    "timeline_to_dict",
    "utcnow",
]


def utcnow() -> datetime:
    """Current UTC time at microsecond precision (what every backend stores exactly)."""
    return datetime.now(UTC)


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def timeline_to_dict(t: Timeline) -> dict[str, Any]:
    return schema.to_dict(t)


def timeline_from_dict(d: dict[str, Any]) -> Timeline:
    return schema.from_dict("timeline", d)


def checkpoint_to_dict(c: Checkpoint) -> dict[str, Any]:
    return schema.to_dict(c)


def checkpoint_from_dict(d: dict[str, Any]) -> Checkpoint:
    return schema.from_dict("checkpoint", d)
