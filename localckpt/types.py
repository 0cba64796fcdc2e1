"""Frozen value types: what the public API returns.

One small class per concept. Records are immutable and keyed by globally unique ids;
two records with the same id and equal fields are the same record (the basis of sync).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:  # numpy is imported where pixels are compared, not to import localckpt
    import numpy as np

__all__ = ["Checkpoint", "Frame", "FrameMeta", "LazyOutputs", "Tag", "Timeline", "Tombstone"]


@attrs.frozen
class Timeline:
    """Frames sampled from one source video, and the root of one checkpoint tree.

    Attributes:
        id: UUIDv7 string.
        source_video: where the frames came from (free text, never used as a storage key).
        profile_name: the sampling profile that produced the frames.
        fps: sampling rate; a frame given as a bare array gets timestamp = sequence / fps.
        source_asset_id: optional id of the source asset in another system.
        root_checkpoint_id: the checkpoint created with the timeline (stats frames_extracted).
        frame_count: number of frames stored.
        created_at: UTC creation time.
        source_info: what the source video was, when known (``ingest_video`` fills it:
            fps, width, height, codec, duration in seconds, ...); {} otherwise.
        index_hash: SHA-256 of the frame index object, checked when it is read; None for
            timelines written before it was recorded.
    """

    id: str
    source_video: str
    profile_name: str
    fps: float
    source_asset_id: str | None
    root_checkpoint_id: str
    frame_count: int
    created_at: datetime
    source_info: Mapping[str, Any] = attrs.field(factory=dict)
    index_hash: str | None = None


@attrs.frozen(eq=False)
class Frame:
    """One sampled frame with its pixels (HxWx3 uint8, RGB)."""

    sequence: int
    timestamp: float
    chunk_id: int
    perceptual_hash: str
    image: np.ndarray = attrs.field(repr=lambda a: f"<{a.shape} {a.dtype}>")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        import numpy as np

        return (
            self.meta_key() == other.meta_key()
            and self.image.shape == other.image.shape
            and bool(np.array_equal(self.image, other.image))
        )

    __hash__ = None  # type: ignore[assignment]  # pixels are mutable arrays

    def meta_key(self) -> tuple[int, float, int, str]:
        return (self.sequence, self.timestamp, self.chunk_id, self.perceptual_hash)


@attrs.frozen
class FrameMeta:
    """One row of a timeline's frame index (Parquet): where a frame's bytes live.

    Attributes:
        sequence, timestamp, chunk_id, perceptual_hash: as on Frame.
        width, height: pixel size.
        codec: "jpeg" or "png".
        content_hash: SHA-256 of the encoded bytes.
        shard: shard number; the object key is derived from timeline id and this number.
        offset, length: byte range of the encoded frame inside its shard.
    """

    sequence: int
    timestamp: float
    chunk_id: int
    perceptual_hash: str
    width: int
    height: int
    codec: str
    content_hash: str
    shard: int
    offset: int
    length: int


class LazyOutputs(Mapping[str, Any]):
    """Stage outputs of a checkpoint, fetched by hash on first access and then kept.

    Carry-forward shares hashes, not values; this mapping turns hashes into values only
    when someone reads them.
    """

    __slots__ = ("_fetch", "_hashes", "_values")

    def __init__(
        self, hashes: Mapping[str, str], fetch: Callable[[list[str]], Mapping[str, Any]]
    ) -> None:
        self._hashes = dict(hashes)
        self._fetch = fetch
        self._values: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            found = self._fetch(sorted(set(self._hashes.values())))
            self._values = {stage: found[h] for stage, h in self._hashes.items()}
        return self._values

    def __getitem__(self, stage: str) -> Any:
        if stage not in self._hashes:
            raise KeyError(stage)
        return self._load()[stage]

    def __iter__(self) -> Iterator[str]:
        return iter(self._hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def __repr__(self) -> str:
        return f"LazyOutputs({sorted(self._hashes)})"


def _no_outputs(hashes: list[str]) -> Mapping[str, Any]:
    if hashes:
        raise LookupError("this Checkpoint was built without an output loader")
    return {}


@attrs.frozen
class Checkpoint:
    """A snapshot of pipeline state: every stage output so far, config and stats.

    Attributes:
        id: UUIDv7 string.
        timeline_id: the timeline whose tree holds this checkpoint.
        parent_id: None only for a timeline's root checkpoint.
        stage_hashes: stage name -> content hash of its output (carried forward from the parent).
        config_overrides: the parent's config merged with this checkpoint's (child keys win).
        stats: the parent's stats merged with this checkpoint's (child keys win).
        is_scenario, scenario_label: marks a config try.
        created_at: UTC creation time.
        merged_from: for a merge result, the id of the merged-in ("theirs") checkpoint.
        stage: the stage this checkpoint added ("" for a root or a merge).
        stage_outputs: stage name -> output value, loaded lazily (not part of equality:
            stage_hashes already determines it).
    """

    id: str
    timeline_id: str
    parent_id: str | None
    stage_hashes: Mapping[str, str]
    config_overrides: Mapping[str, Any]
    stats: Mapping[str, Any]
    is_scenario: bool
    scenario_label: str
    created_at: datetime
    merged_from: str | None = None
    stage: str = ""
    stage_outputs: Mapping[str, Any] = attrs.field(
        default=attrs.Factory(lambda self: LazyOutputs(self.stage_hashes, _no_outputs),
                              takes_self=True),
        eq=False,
        repr=False,
    )

    def with_loader(self, fetch: Callable[[list[str]], Mapping[str, Any]]) -> Checkpoint:
        """A copy whose stage_outputs load through fetch (hash list -> {hash: value})."""
        return attrs.evolve(self, stage_outputs=LazyOutputs(self.stage_hashes, fetch))


@attrs.frozen
class Tombstone:
    """A deletion, kept as a record so that sync carries it (the store is a 2P-set).

    A tombstoned record is gone for every reader; a checkpoint whose ancestor is
    tombstoned is gone too (pruning removes a subtree, including children that another
    store added before the prune reached it). Tombstones themselves are never removed.

    Attributes:
        id: UUIDv7 of the deletion itself (two deletions of one target are two records).
        target_id: id of the deleted timeline, checkpoint or tag.
        kind: "timeline", "checkpoint" or "tag".
        timeline_id: the timeline the target belongs to (the target itself for a timeline).
        created_at: UTC time of the deletion.
    """

    id: str
    target_id: str
    kind: str
    timeline_id: str
    created_at: datetime


@attrs.frozen
class Tag:
    """A name for a checkpoint, kept by retention and usable wherever an id is.

    Attributes:
        id: UUIDv7 of this tagging (untag tombstones it; tagging again makes a new one).
        name: the tag's name, unique among a store's live tags.
        checkpoint_id, timeline_id: what it names.
        created_at: UTC time of the tagging.
    """

    id: str
    name: str
    checkpoint_id: str
    timeline_id: str
    created_at: datetime
