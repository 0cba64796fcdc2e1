"""What the pages and the JSON endpoints show, read through the public Store API only.

Each function returns plain JSON-ready values (the ``/api/...`` endpoints send them as
they are, the pages render them), so another front end sees exactly what the pages do.
Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError
from ..records import checkpoint_to_dict, timeline_to_dict
from ..types import Checkpoint, FrameMeta, Timeline

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "MAX_PAGE",
    "checkpoint_view",
    "choose_stage",
    "duration",
    "frame_row",
    "frames_page",
    "timeline_rows",
    "timeline_view",
]

#: Most frames one page or one /api/.../frames call returns.
MAX_PAGE = 500


def duration(t: Timeline) -> float:
    """Seconds of video the timeline covers: the source's duration when known."""
    known = t.source_info.get("duration") if isinstance(t.source_info, Mapping) else None
    if isinstance(known, (int, float)) and not isinstance(known, bool) and known >= 0:
        return float(known)
    return t.frame_count / t.fps if t.fps else 0.0


def timeline_rows(store: Store) -> list[dict[str, Any]]:
    """Every timeline with its checkpoint count and duration, newest first."""
    rows = []
    for t in reversed(store.list_timelines()):
        row = timeline_to_dict(t)
        row["checkpoints"] = len(store.checkpoints(t.id))
        row["duration"] = duration(t)
        rows.append(row)
    return rows


def timeline_view(store: Store, timeline_id: str) -> dict[str, Any]:
    t = store.get_timeline(timeline_id)
    row = timeline_to_dict(t)
    row["duration"] = duration(t)
    return {"timeline": row,
            "checkpoints": [checkpoint_to_dict(c) for c in store.checkpoints(t.id)]}


def frame_row(timeline_id: str, m: FrameMeta) -> dict[str, Any]:
    return {
        "sequence": m.sequence, "timestamp": m.timestamp, "width": m.width,
        "height": m.height, "perceptual_hash": m.perceptual_hash,
        "image": f"/frames/{timeline_id}/{m.sequence}.jpg",
        "thumbnail": f"/thumbs/{timeline_id}/{m.sequence}.jpg",
    }


def frames_page(store: Store, timeline_id: str, start: int, limit: int) -> dict[str, Any]:
    """Frames start .. start+limit-1 by position in the index (not by sequence)."""
    store.get_timeline(timeline_id)
    index = store.frame_index(timeline_id)
    limit = max(1, min(limit, MAX_PAGE))
    return {
        "timeline_id": timeline_id, "total": len(index), "start": start, "limit": limit,
        "frames": [frame_row(timeline_id, m) for m in index[start:start + limit]],
    }


def checkpoint_view(store: Store, checkpoint_id: str) -> dict[str, Any]:
    """The checkpoint, its lineage (root first) and children, and its stage hashes."""
    c = store.get_checkpoint(checkpoint_id)
    row = checkpoint_to_dict(c)
    row["lineage"] = [x.id for x in store.lineage(c.id)]
    row["children"] = [x.id for x in store.children(c.id)]
    return row


def choose_stage(a: Checkpoint, b: Checkpoint, stage: str | None) -> str:
    """The stage a comparison looks at: the one asked for, else the stage both have that
    differs (b's own stage first), else the first both have."""
    if stage:
        for c in (a, b):
            if stage not in c.stage_hashes:
                have = ", ".join(sorted(c.stage_hashes)) or "none"
                raise NotFoundError(f"checkpoint {c.id} has no stage {stage!r} "
                                    f"(it has: {have})")
        return stage
    common = sorted(a.stage_hashes.keys() & b.stage_hashes.keys())
    if not common:
        raise InvalidInputError(f"checkpoints {a.id} and {b.id} have no stage in common "
                                "to compare")
    differing = [s for s in common if a.stage_hashes[s] != b.stage_hashes[s]]
    if b.stage in differing:
        return b.stage
    return (differing or common)[0]
