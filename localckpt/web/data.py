"""What the pages and the JSON endpoints show, read through the Store and its catalog.

Each function returns plain JSON-ready values (the ``/api/...`` endpoints send them as
they are, the pages render them), so another front end sees exactly what the pages do.
Every record carries its ``short_id`` beside its id, and checkpoints their ``tags``.
Nothing here writes.

The timelines index costs what one page shows: one ``Catalog.timeline_page`` call gives
the page's timelines with their stored checkpoint counts (two calls: the first learns
the total, as the page lists newest first); one ``tombstones`` call for those timelines
finds the few whose counts a prune makes too high, and only those trees are read.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError
from ..records import checkpoint_to_dict, timeline_to_dict
from ..render import pixel_aspect, sampled_seconds
from ..types import Checkpoint, FrameMeta, Timeline

if TYPE_CHECKING:
    from ..store import Store
    from .names import Names

__all__ = [
    "MAX_PAGE",
    "TIMELINE_PAGE",
    "checkpoint_row",
    "checkpoint_view",
    "choose_stages",
    "duration",
    "frame_row",
    "frames_page",
    "pixel_aspect",
    "source_duration",
    "tag_names",
    "timeline_row",
    "timeline_rows",
    "timeline_view",
]

#: Most frames one page or one /api/.../frames call returns.
MAX_PAGE = 500
#: Timelines per page of the index.
TIMELINE_PAGE = 50


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def duration(t: Timeline) -> float | None:
    """Seconds of video the sampled frames cover, as ``localckpt ls`` says them
    (render.sampled_seconds: the ingest window, else frames / fps); None when that is not
    a number (an fps of 5e-324 gives infinity)."""
    if not t.fps or not math.isfinite(t.fps):
        return None
    try:
        seconds = sampled_seconds(t)
    except OverflowError:
        return None
    return None if seconds is None else _finite(seconds)


def source_duration(t: Timeline) -> float | None:
    """Seconds the source video lasts, when the timeline records it."""
    known = t.source_info.get("duration") if isinstance(t.source_info, Mapping) else None
    if isinstance(known, (int, float)) and not isinstance(known, bool) and known >= 0:
        try:
            return _finite(float(known))
        except OverflowError:
            return None
    return None


def timeline_row(t: Timeline, names: Names, checkpoints: int | None = None
                 ) -> dict[str, Any]:
    row = timeline_to_dict(t)
    row["short_id"] = names.short(t.id, "timeline")
    row["duration"] = duration(t)
    row["source_duration"] = source_duration(t)
    if checkpoints is not None:
        row["checkpoints"] = checkpoints
    return row


def timeline_rows(store: Store, names: Names, start: int = 0,
                  limit: int = TIMELINE_PAGE) -> dict[str, Any]:
    """One page of the live timelines, newest first (by created_at, then id), each with
    its live checkpoint count: {"total", "start", "limit", "timelines"}."""
    catalog = store.catalog
    limit = max(1, min(limit, MAX_PAGE))
    page, stored, total = catalog.timeline_page(start, limit, newest_first=True)
    # a prune hides checkpoints gc has not purged yet: those trees are counted
    counts = store.visibility.live_counts([t.id for t in page], stored) if page else {}
    names.shorts([t.id for t in page], "timeline")  # in one statement, not one a row
    rows = [timeline_row(t, names, counts.get(t.id, 0)) for t in page]
    return {"total": total, "start": start, "limit": limit, "timelines": rows}


def tag_names(store: Store, timeline_id: str) -> dict[str, list[str]]:
    """checkpoint id -> names of its live tags, sorted."""
    out: defaultdict[str, list[str]] = defaultdict(list)
    for g in store.tags(timeline_id):
        out[g.checkpoint_id].append(g.name)
    return {k: sorted(v) for k, v in out.items()}


def checkpoint_row(c: Checkpoint, names: Names, tags: list[str]) -> dict[str, Any]:
    row = checkpoint_to_dict(c)
    row["short_id"] = names.short(c.id)
    row["tags"] = tags
    return row


def timeline_view(store: Store, timeline_id: str, names: Names) -> dict[str, Any]:
    """The timeline, its whole tree and its open stage runs (the page's pending nodes)."""
    from ..runs.store_api import pending_runs

    t = store.get_timeline(timeline_id)
    tags = tag_names(store, t.id)
    return {"timeline": timeline_row(t, names),
            "checkpoints": [checkpoint_row(c, names, tags.get(c.id, []))
                            for c in store.checkpoints(t.id)],
            "runs": pending_runs(store, t.id)}


def frame_row(timeline_id: str, m: FrameMeta, position: int | None = None) -> dict[str, Any]:
    row = {
        "sequence": m.sequence, "timestamp": m.timestamp, "width": m.width,
        "height": m.height, "perceptual_hash": m.perceptual_hash,
        "image": f"/frames/{timeline_id}/{m.sequence}.jpg",
        "thumbnail": f"/thumbs/{timeline_id}/{m.sequence}.jpg",
    }
    if position is not None:
        row["position"] = position
    return row


def frames_page(store: Store, timeline_id: str, start: int, limit: int) -> dict[str, Any]:
    """Frames start .. start+limit-1 by position in the index (not by sequence)."""
    store.get_timeline(timeline_id)
    index = store.frame_index(timeline_id)
    limit = max(1, min(limit, MAX_PAGE))
    return {
        "timeline_id": timeline_id, "total": len(index), "start": start, "limit": limit,
        "frames": [frame_row(timeline_id, m, i)
                   for i, m in enumerate(index[start:start + limit], start)],
    }


def checkpoint_view(store: Store, checkpoint_id: str, names: Names) -> dict[str, Any]:
    """The checkpoint, its tags, lineage (root first) and children, and stage hashes."""
    c = store.get_checkpoint(checkpoint_id)
    row = checkpoint_row(c, names, tag_names(store, c.timeline_id).get(c.id, []))
    row["lineage"] = [x.id for x in store.lineage(c.id)]
    row["children"] = [x.id for x in store.children(c.id)]
    return row


def choose_stages(a: Checkpoint, b: Checkpoint, stage: str | None,
                  names: Names | None = None, stage_b: str | None = None,
                  ) -> tuple[str, str | None]:
    """The stages a comparison looks at, a's and b's where it is another (else None): the
    ones asked for (stage_b alone: a's own stage against it), else the stage both have
    that differs (b's own stage first), else the first both have, else the stage each
    added when neither has the other's (a try's detect against an import's labels).
    names: a page's, whose messages name the checkpoints by short id, as the page does
    (the API's by full id)."""
    def named(c: Checkpoint) -> str:
        return c.id if names is None else names.short(c.id)

    def has(c: Checkpoint, name: str) -> None:
        if name not in c.stage_hashes:
            have = ", ".join(sorted(c.stage_hashes)) or "none"
            raise NotFoundError(f"checkpoint {named(c)} has no stage {name!r} "
                                f"(it has: {have})")

    if stage_b:
        stage = stage or a.stage
        has(a, stage)
        has(b, stage_b)
        return stage, (stage_b if stage_b != stage else None)
    if stage:
        has(a, stage)
        has(b, stage)
        return stage, None
    common = sorted(a.stage_hashes.keys() & b.stage_hashes.keys())
    if not common:
        from ..diff import own_stages

        own = own_stages(a, b)
        if own is not None:
            return own
        raise InvalidInputError(f"checkpoints {named(a)} and {named(b)} have no stage in "
                                "common to compare")
    differing = [s for s in common if a.stage_hashes[s] != b.stage_hashes[s]]
    if b.stage in differing:
        return b.stage, None
    return (differing or common)[0], None
