"""The seed module's five functions, unchanged in signature and return type.

Code written against the seed (``mediaproc.detect.checkpoint.storage``) runs on localckpt
by switching its import. Each call uses the store named by ``$LOCALCKPT_URL`` at call time
(``./.localckpt`` when unset, created if missing, as the seed did); one Store per URL and
process is kept open and reused.

Differences from the seed, all fixes: a missing parent raises NotFoundError instead of
silently becoming a root (``None`` still means the timeline's root); a parent from another
timeline raises InvalidInputError; stage outputs are shared, not copied.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from uuid import UUID

import numpy as np

from .errors import NotFoundError, TimelineNotFoundError
from .registry import DEFAULT_URL
from .registry import open as open_store
from .store import Store
from .types import Frame

__all__ = [
    "create_timeline",
    "get_timeline_frames",
    "get_timeline_frames_b64",
    "load_stage_output",
    "save_stage_output",
]

_lock = threading.Lock()
_stores: dict[tuple[int, str], Store] = {}


def _store() -> Store:
    url = os.environ.get("LOCALCKPT_URL") or DEFAULT_URL
    key = (os.getpid(), url)
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = open_store(url, create=True)  # as the seed did
        return store


def _as_frame(item: Any) -> Any:
    """Accept the seed's duck-typed frame objects (sequence, timestamp, image, ...)."""
    if isinstance(item, (np.ndarray, Frame)) or not hasattr(item, "image"):
        return item
    return Frame(
        sequence=item.sequence,
        timestamp=item.timestamp,
        chunk_id=getattr(item, "chunk_id", 0),
        perceptual_hash=getattr(item, "perceptual_hash", "") or "",
        image=item.image,
    )


def create_timeline(
    source_video: str,
    profile_name: str,
    frames: list[Any],
    fps: float = 2.0,
    source_asset_id: UUID | None = None,
) -> tuple[str, str]:
    """Create a timeline from frames; return (timeline_id, root_checkpoint_id)."""
    tl = _store().create_timeline(
        source_video, profile_name, [_as_frame(f) for f in frames], fps=fps,
        source_asset_id=source_asset_id,
    )
    return tl.id, tl.root_checkpoint_id


def _known_timeline(store: Store, timeline_id: str) -> None:
    try:
        store.get_timeline(timeline_id)
    except NotFoundError as exc:
        # The seed raised ValueError here; this error is both a ValueError and a LookupError.
        raise TimelineNotFoundError(f"Timeline not found: {timeline_id}") from exc


def get_timeline_frames(timeline_id: str) -> list[Frame]:
    """All frames of a timeline as Frame objects (ValueError if the timeline is unknown)."""
    store = _store()
    _known_timeline(store, timeline_id)
    return store.get_timeline_frames(timeline_id)


def get_timeline_frames_b64(timeline_id: str) -> list[dict[str, Any]]:
    """All frames as base64 JPEG dicts (ValueError if the timeline is unknown)."""
    store = _store()
    _known_timeline(store, timeline_id)
    return store.get_timeline_frames_b64(timeline_id)


def save_stage_output(
    timeline_id: str,
    parent_checkpoint_id: str | None,
    stage_name: str,
    output_json: dict[str, Any],
    config_overrides: dict[str, Any] | None = None,
    stats: dict[str, Any] | None = None,
    is_scenario: bool = False,
    scenario_label: str = "",
) -> str:
    """Save a stage's output as a new child checkpoint; return its id."""
    return _store().save_stage_output(
        timeline_id, parent_checkpoint_id, stage_name, output_json,
        config_overrides=config_overrides, stats=stats, is_scenario=is_scenario,
        scenario_label=scenario_label,
    )


def load_stage_output(checkpoint_id: str, stage_name: str) -> dict[str, Any] | None:
    """A stage's output at a checkpoint; None for an unknown checkpoint (as the seed did)."""
    try:
        return _store().load_stage_output(checkpoint_id, stage_name)
    except NotFoundError:
        return None
