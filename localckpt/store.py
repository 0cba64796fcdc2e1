"""Store: the public API over one Catalog (rows) and one Objects (frame shards).

Everything backend-independent lives here: validation, carry-forward, the all-or-nothing
write order (objects first, then one catalog commit), and the translation of "absent"
into NotFoundError.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .canonical import canonical_bytes, content_hash, json_object
from .catalog import Batch, Catalog
from .errors import InvalidInputError, NotFoundError
from .ids import new_id
from .objects import Objects
from .records import utcnow
from .types import Checkpoint, Frame, FrameMeta, Timeline

if TYPE_CHECKING:
    from .diff import Diff
    from .framediff import FrameDiff

__all__ = ["Store"]

_READER_CACHE = 64


class Store:
    """Timelines of frames and trees of checkpoints, on any catalog + object store.

    Open one with :func:`localckpt.open`. Thread-safe; a store may be used by many
    threads, and (on backends whose catalog ``supports_multiprocess``) many processes
    may open the same store and write at once.
    """

    def __init__(self, catalog: Catalog, objects: Objects, *, url: str = "") -> None:
        self.catalog = catalog
        self.objects = objects
        self.url = url
        self._readers: OrderedDict[str, Any] = OrderedDict()
        self._readers_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<localckpt.Store {self.catalog.describe()}; objects {self.objects.describe()}>"

    def close(self) -> None:
        """Release the catalog's files and connections."""
        self.catalog.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- timelines ----------------------------------------------------------------------

    def create_timeline(
        self,
        source_video: str,
        profile_name: str,
        frames: Iterable[Any],
        fps: float = 2.0,
        source_asset_id: UUID | str | None = None,
        *,
        codec: str = "jpeg",
        quality: int = 90,
        workers: int | None = None,
        color: str = "rgb",
    ) -> Timeline:
        """Store frames as a new timeline and create its root checkpoint.

        frames: Frame objects, or bare images (numpy HxWx3 uint8 arrays, PIL images of any
        mode, av.VideoFrame) that get sequence i and timestamp i / fps; color "bgr" for
        OpenCV arrays. frames may be a generator: they are encoded and packed into shards
        as they come (bounded memory). The root checkpoint has stats
        ``{"frames_extracted": n}``. All or nothing: on bad input or failure no timeline
        is visible and the shards written so far are removed. For a video file, see
        ingest_video (real timestamps).
        """
        from .frames import coerce_frames

        _require_str(source_video, "source_video")
        _require_str(profile_name, "profile_name")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (
            math.isfinite(fps) and fps > 0
        ):
            raise InvalidInputError(f"fps must be a positive finite number, not {fps!r}")
        if source_asset_id is not None and not isinstance(source_asset_id, (str, UUID)):
            raise InvalidInputError(
                f"source_asset_id must be a str or UUID, not {type(source_asset_id).__name__}"
            )
        if getattr(frames, "ndim", None) == 3:  # one HxWx3 ndarray
            raise InvalidInputError(
                "frames is a single HxWx3 image; pass a list (or an NxHxWx3 array) of frames"
            )
        return self._store_timeline(
            source_video, profile_name, coerce_frames(frames, float(fps), color), float(fps),
            source_asset_id, codec=codec, quality=quality, workers=workers,
        )

    def _store_timeline(
        self, source_video: str, profile_name: str, frames: Iterable[Frame], fps: float,
        source_asset_id: UUID | str | None, *, codec: str, quality: int, workers: int | None,
        describe: Callable[[], tuple[Mapping[str, Any], Mapping[str, Any]]] | None = None,
    ) -> Timeline:
        """Write frames, then the timeline and its root in one commit (create_timeline and
        ingest_video). describe, called once the frames are written, returns the
        timeline's source_info and stats for the root beside frames_extracted."""
        from .shards import delete_frames, write_frames

        tid = new_id()
        metas = write_frames(
            self.objects, tid, frames, codec=codec, quality=quality, workers=workers,
        )
        source_info, stats = describe() if describe else ({}, {})
        now = utcnow()
        root = Checkpoint(
            id=new_id(),
            timeline_id=tid,
            parent_id=None,
            stage_hashes={},
            config_overrides={},
            stats={"frames_extracted": len(metas), **stats},
            is_scenario=False,
            scenario_label="",
            created_at=now,
        )
        timeline = Timeline(
            id=tid,
            source_video=source_video,
            profile_name=profile_name,
            fps=float(fps),
            source_asset_id=None if source_asset_id is None else str(source_asset_id),
            root_checkpoint_id=root.id,
            frame_count=len(metas),
            created_at=now,
            source_info=dict(source_info),
        )
        try:
            self.catalog.commit(Batch(timelines=[timeline], checkpoints=[root]))
        except BaseException:
            delete_frames(self.objects, tid)
            raise
        return timeline

    def ingest_video(
        self,
        path: Any,
        profile_name: str = "",
        *,
        fps: float | None = 2.0,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        chunk_seconds: float | None = None,
        skip_similar: int | None = None,
        codec: str = "jpeg",
        quality: int = 90,
        workers: int | None = None,
        source_asset_id: UUID | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        progress: Any = None,
    ) -> Timeline:
        """Decode a video file (a path, an fsspec URL such as s3://..., or an open binary
        file) and store its frames sampled at fps by presentation timestamp; None keeps
        every frame. Needs the [video] extra (PyAV). See localckpt.video for the exact
        sampling rule, chunk_id, skip_similar, source_info and the root's stats.
        """
        from .video import ingest_video

        return ingest_video(
            self, path, profile_name, fps=fps, start=start, end=end, max_frames=max_frames,
            chunk_seconds=chunk_seconds, skip_similar=skip_similar, codec=codec,
            quality=quality, workers=workers, source_asset_id=source_asset_id,
            storage_options=storage_options, progress=progress,
        )

    def get_timeline(self, timeline_id: str) -> Timeline:
        found = self.catalog.timelines([_id(timeline_id, "timeline_id")])
        if not found:
            raise NotFoundError(f"no timeline {timeline_id!r} in {self.catalog.describe()}")
        return found[0]

    def list_timelines(self) -> list[Timeline]:
        """Every timeline, oldest first."""
        return self.catalog.timelines(None)

    # -- what is live (not deleted) -------------------------------------------------------

    def live_timelines(self, ids: Iterable[str]) -> list[Timeline]:
        """The timelines with these ids that exist and are not deleted, ordered by id."""
        found = self.catalog.timelines(list(ids))
        dead = self.catalog.deleted([t.id for t in found]) if found else set()
        return [t for t in found if t.id not in dead]

    def live_checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        """The checkpoints with these ids that exist and are not deleted, ordered by id."""
        found = self.catalog.checkpoints(list(ids))
        if not found:
            return []
        dead = self.catalog.deleted({c.id for c in found} | {c.timeline_id for c in found})
        return [c for c in found if c.id not in dead and c.timeline_id not in dead]

    def tag_target(self, name: str) -> str | None:
        """The checkpoint a live tag of this name points at, or None."""
        tags = [g for g in self.catalog.tags(None) if g.name == name]
        if not tags:
            return None
        dead = self.catalog.deleted({g.id for g in tags})
        live = [g for g in tags if g.id not in dead]
        return max(live, key=lambda g: g.id).checkpoint_id if live else None

    # -- frames ---------------------------------------------------------------------------

    def _reader(self, timeline_id: str) -> Any:
        from .shards import FrameReader

        with self._readers_lock:
            reader = self._readers.get(timeline_id)
            if reader is not None:
                self._readers.move_to_end(timeline_id)
                return reader
        self.get_timeline(timeline_id)  # NotFoundError for unknown ids
        reader = FrameReader(self.objects, timeline_id)
        with self._readers_lock:
            self._readers[timeline_id] = reader
            if len(self._readers) > _READER_CACHE:
                self._readers.popitem(last=False)
        return reader

    def frame_index(self, timeline_id: str) -> list[FrameMeta]:
        """The timeline's frame index rows (also a Parquet object any tool can read)."""
        return list(self._reader(timeline_id).index())

    def similar_frames(
        self, timeline_id: str, sequence_or_hash: int | str, max_distance: int = 8,
        limit: int | None = None,
    ) -> list[tuple[FrameMeta, int]]:
        """Frames whose perceptual hash is within max_distance bits of a frame's (by
        sequence; that frame is among them, at 0) or of a hex hash, nearest first (ties
        by sequence). Reads the frame index only: no pixels are fetched or decoded."""
        from .similar import similar_frames

        return similar_frames(self.frame_index(timeline_id), sequence_or_hash, max_distance,
                              limit, timeline_id)

    def get_timeline_frames(
        self, timeline_id: str, start: int | None = None, stop: int | None = None
    ) -> list[Frame]:
        """Decoded frames with start <= sequence < stop (all by default), in sequence order."""
        return list(self._reader(timeline_id).frames(start, stop))

    def iter_frames(
        self, timeline_id: str, start: int | None = None, stop: int | None = None,
        batch: int = 64,
    ) -> Iterator[Frame]:
        """Stream decoded frames; memory stays bounded by one batch whatever the count."""
        return iter(self._reader(timeline_id).iter_frames(start, stop, batch=batch))

    def get_frame(self, timeline_id: str, sequence: int) -> Frame:
        """One frame by sequence number (NotFoundError when the timeline lacks it)."""
        return self._reader(timeline_id).get(sequence)

    def get_timeline_frames_b64(
        self, timeline_id: str, start: int | None = None, stop: int | None = None
    ) -> list[dict[str, Any]]:
        """Frames as dicts with base64 JPEG (``jpeg_b64``) for web front ends."""
        return list(self._reader(timeline_id).b64(start, stop))

    # -- checkpoints ----------------------------------------------------------------------

    def save_stage_output(
        self,
        timeline_id: str,
        parent_checkpoint_id: str | None,
        stage_name: str,
        output_json: dict[str, Any],
        config_overrides: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        is_scenario: bool = False,
        scenario_label: str = "",
    ) -> str:
        """Save a stage's output as a new child checkpoint; return its id.

        The child carries forward the parent's stage outputs (by hash: nothing is copied)
        and adds or replaces ``stage_name``; config and stats are the parent's merged with
        the given ones (child keys win). parent_checkpoint_id None means the timeline's
        root. Raises NotFoundError for an unknown timeline or parent, InvalidInputError for
        a parent of another timeline or non-JSON values; nothing is written then.
        """
        _require_str(stage_name, "stage_name")
        if not stage_name:
            raise InvalidInputError("stage_name must not be empty")
        if not isinstance(output_json, dict):
            raise InvalidInputError(
                f"output_json must be a dict (a JSON object), not {type(output_json).__name__}"
            )
        data = canonical_bytes(output_json, "output_json")
        config = json_object(config_overrides, "config_overrides")
        new_stats = json_object(stats, "stats")
        if not isinstance(is_scenario, bool):
            raise InvalidInputError(f"is_scenario must be a bool, not {is_scenario!r}")
        _require_str(scenario_label, "scenario_label")
        parent = self._parent_for(timeline_id, parent_checkpoint_id)
        h = content_hash(data)
        child = Checkpoint(
            id=new_id(),
            timeline_id=timeline_id,
            parent_id=parent.id,
            stage=stage_name,
            stage_hashes={**parent.stage_hashes, stage_name: h},
            config_overrides={**parent.config_overrides, **config},
            stats={**parent.stats, **new_stats},
            is_scenario=is_scenario,
            scenario_label=scenario_label,
            created_at=utcnow(),
        )
        self.catalog.commit(Batch(checkpoints=[child], outputs={h: data}))
        return child.id

    def _parent_for(self, timeline_id: str, parent_id: str | None) -> Checkpoint:
        _id(timeline_id, "timeline_id")
        if parent_id is None:
            parent_id = self.get_timeline(timeline_id).root_checkpoint_id
        parent = self.catalog.peek_checkpoint(_id(parent_id, "parent_checkpoint_id"))
        if parent is None:
            raise NotFoundError(f"no checkpoint {parent_id!r} in {self.catalog.describe()}")
        if parent.timeline_id != timeline_id:
            raise InvalidInputError(
                f"parent checkpoint {parent_id} belongs to timeline {parent.timeline_id}, "
                f"not {timeline_id}; a checkpoint's parent must be in the same tree"
            )
        return parent

    def load_stage_output(self, checkpoint_id: str, stage_name: str) -> dict[str, Any] | None:
        """The output of stage_name as seen at this checkpoint (carried forward from
        ancestors); None if no stage of that name ran on the way here."""
        h = self.get_checkpoint(checkpoint_id).stage_hashes.get(stage_name)
        if h is None:
            return None
        value = self.catalog.load_values([h])
        if h not in value:
            from .errors import CorruptDataError

            raise CorruptDataError(
                f"checkpoint {checkpoint_id} refers to output {h} that the catalog lacks"
            )
        return value[h]

    def get_checkpoint(self, checkpoint_id: str) -> Checkpoint:
        found = self.catalog.checkpoints([_id(checkpoint_id, "checkpoint_id")])
        if not found:
            raise NotFoundError(f"no checkpoint {checkpoint_id!r} in {self.catalog.describe()}")
        return found[0]

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        """Direct children (config tries branch here), oldest first."""
        self.get_checkpoint(checkpoint_id)
        return self.catalog.children(checkpoint_id)

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        """The path from the timeline's root to this checkpoint, root first."""
        chain = self.catalog.lineage(_id(checkpoint_id, "checkpoint_id"))
        if not chain:
            raise NotFoundError(f"no checkpoint {checkpoint_id!r} in {self.catalog.describe()}")
        return chain

    def checkpoints(self, timeline_id: str) -> list[Checkpoint]:
        """The whole tree of a timeline, root included, oldest first."""
        self.get_timeline(timeline_id)
        return self.catalog.tree(timeline_id)

    # -- diff and merge (localckpt.diff, localckpt.merge) -------------------------------------

    def diff(self, a: str, b: str) -> Diff:
        """What differs from checkpoint a to b: stages (by hash), config and stats keys."""
        from .diff import diff_checkpoints

        return diff_checkpoints(self, a, b)

    def frame_diff(self, a: str, b: str, stage: str, match_iou: float = 0.5) -> FrameDiff:
        """Frame by frame, how stage's output differs from checkpoint a to b.

        The output must be frame-keyed (InvalidInputError says the expected shape);
        detections are matched one to one by IoU >= match_iou. See localckpt.framediff.
        NotFoundError names an unknown checkpoint or a stage one side lacks.
        """
        from .framediff import diff_outputs

        _require_str(stage, "stage")
        outputs = []
        for cid in (a, b):
            value = self.load_stage_output(cid, stage)
            if value is None:
                stages = ", ".join(sorted(self.get_checkpoint(cid).stage_hashes)) or "none"
                raise NotFoundError(f"checkpoint {cid} has no stage {stage!r} (it has: {stages})")
            outputs.append(value)
        return diff_outputs(outputs[0], outputs[1], match_iou=match_iou, a=a, b=b, stage=stage)

    def merge(self, ours: str, theirs: str, strategy: str | Callable[..., Any] = "fail") -> str:
        """Three-way merge theirs into ours; returns the merge (or fast-forward) id.

        strategy: "fail" (MergeConflict listing every conflict, nothing written), "ours",
        "theirs" or resolver(kind, key, base, ours, theirs) -> value. See localckpt.merge.
        """
        from .merge import merge_checkpoints

        return merge_checkpoints(self, ours, theirs, strategy)


def _require_str(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(
                f"{what} holds a lone surrogate ({value!r}), which is not valid Unicode and "
                "that no backend can store; decode the text properly"
            ) from None


def _id(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be an id string, not {type(value).__name__}")
    return value
