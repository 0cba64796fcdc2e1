"""Plain-dict form of records, for logs, bundles and wire formats.

The dict form is JSON-serialisable and lossless: ``from_dict(to_dict(r)) == r``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .errors import CorruptDataError
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
    return {
        "id": t.id,
        "source_video": t.source_video,
        "profile_name": t.profile_name,
        "fps": t.fps,
        "source_asset_id": t.source_asset_id,
        "root_checkpoint_id": t.root_checkpoint_id,
        "frame_count": t.frame_count,
        "created_at": t.created_at.astimezone(UTC).isoformat(),
    }


def timeline_from_dict(d: dict[str, Any]) -> Timeline:
    try:
        return Timeline(
            id=d["id"],
            source_video=d["source_video"],
            profile_name=d["profile_name"],
            fps=float(d["fps"]),
            source_asset_id=d.get("source_asset_id"),
            root_checkpoint_id=d["root_checkpoint_id"],
            frame_count=int(d["frame_count"]),
            created_at=parse_time(d["created_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptDataError(f"malformed timeline record {d.get('id')!r}: {exc}") from exc


def checkpoint_to_dict(c: Checkpoint) -> dict[str, Any]:
    return {
        "id": c.id,
        "timeline_id": c.timeline_id,
        "parent_id": c.parent_id,
        "stage": c.stage,
        "stage_hashes": dict(c.stage_hashes),
        "config_overrides": dict(c.config_overrides),
        "stats": dict(c.stats),
        "is_scenario": c.is_scenario,
        "scenario_label": c.scenario_label,
        "created_at": c.created_at.astimezone(UTC).isoformat(),
        "merged_from": c.merged_from,
    }


def checkpoint_from_dict(d: dict[str, Any]) -> Checkpoint:
    try:
        return Checkpoint(
            id=d["id"],
            timeline_id=d["timeline_id"],
            parent_id=d.get("parent_id"),
            stage=d.get("stage", ""),
            stage_hashes=dict(d["stage_hashes"]),
            config_overrides=dict(d["config_overrides"]),
            stats=dict(d["stats"]),
            is_scenario=bool(d["is_scenario"]),
            scenario_label=d.get("scenario_label", ""),
            created_at=parse_time(d["created_at"]),
            merged_from=d.get("merged_from"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptDataError(f"malformed checkpoint record {d.get('id')!r}: {exc}") from exc
