"""A pure in-memory model of checkpoint trees: the oracle for stateful tests.

The model knows nothing about backends, hashes or ids it did not record: the store under
test hands out ids, the model records what each operation must have done and answers
what every read must return. Semantics modelled (DESIGN.md, "Public API"):

- creating a timeline creates its root checkpoint (parent None) with stats
  ``{"frames_extracted": n}`` and no stage outputs;
- a saved checkpoint carries forward its parent's stage outputs and adds or replaces one
  stage; its config and stats are the parent's merged with the given ones, child keys
  winning;
- a parent of None means the timeline's root, so every timeline stays one tree;
- lineage is root first; trees and children are in creation order.

Values are kept as canonical JSON bytes, so a model answer compares exactly (``1`` is
not ``1.0`` is not ``true``) and cannot be changed by a caller mutating its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..canonical import canonical_bytes, load_canonical

__all__ = ["ModelCheckpoint", "ModelTimeline", "TreeModel"]


@attrs.frozen
class ModelCheckpoint:
    """What one checkpoint must look like.

    Attributes:
        id, timeline_id, parent_id: as on :class:`localckpt.Checkpoint`.
        stage: the stage this checkpoint added ("" for a root).
        outputs: stage -> canonical JSON bytes of the output seen here (carried forward).
        origins: stage -> id of the checkpoint that wrote the output seen here (itself for
            ``stage``, an ancestor for carried-forward stages): carry-forward must share
            that checkpoint's hash.
        config, stats: merged canonical JSON objects (bytes).
        is_scenario, scenario_label: as saved.
    """

    id: str
    timeline_id: str
    parent_id: str | None
    stage: str
    outputs: Mapping[str, bytes]
    origins: Mapping[str, str]
    config: bytes
    stats: bytes
    is_scenario: bool
    scenario_label: str

    def output(self, stage: str) -> Any:
        """The decoded output of stage here, or None when no such stage ran on the way."""
        data = self.outputs.get(stage)
        return None if data is None else load_canonical(data)

    @property
    def config_value(self) -> Any:
        return load_canonical(self.config)

    @property
    def stats_value(self) -> Any:
        return load_canonical(self.stats)


@attrs.frozen
class ModelTimeline:
    id: str
    root_id: str
    frame_count: int


class TreeModel:
    """Timelines and their checkpoint trees, as plain dicts. Pure: no I/O, no clock."""

    def __init__(self) -> None:
        self.timelines: dict[str, ModelTimeline] = {}
        self.nodes: dict[str, ModelCheckpoint] = {}
        self._children: dict[str, list[str]] = {}
        self._trees: dict[str, list[str]] = {}

    # -- writes (record what the store did) ---------------------------------------------

    def create_timeline(self, timeline_id: str, root_id: str, frame_count: int) -> None:
        """Record a new timeline and its root checkpoint."""
        if timeline_id in self.timelines or root_id in self.nodes:
            raise ValueError(f"model already holds {timeline_id} / {root_id}")
        self.timelines[timeline_id] = ModelTimeline(timeline_id, root_id, frame_count)
        self.nodes[root_id] = ModelCheckpoint(
            id=root_id, timeline_id=timeline_id, parent_id=None, stage="", outputs={},
            origins={}, config=canonical_bytes({}),
            stats=canonical_bytes({"frames_extracted": frame_count}),
            is_scenario=False, scenario_label="",
        )
        self._children[root_id] = []
        self._trees[timeline_id] = [root_id]

    def resolve_parent(self, timeline_id: str, parent_id: str | None) -> str:
        """The parent a save must use: the root for None. Raises KeyError when unknown."""
        if parent_id is None:
            return self.timelines[timeline_id].root_id
        return self.nodes[parent_id].id

    def is_valid_parent(self, timeline_id: str, parent_id: str | None) -> bool:
        """True when the store must accept a save of this timeline under this parent."""
        if timeline_id not in self.timelines:
            return False
        if parent_id is None:
            return True
        node = self.nodes.get(parent_id)
        return node is not None and node.timeline_id == timeline_id

    def save(
        self,
        checkpoint_id: str,
        timeline_id: str,
        parent_id: str | None,
        stage: str,
        output: Mapping[str, Any],
        config: Mapping[str, Any] | None = None,
        stats: Mapping[str, Any] | None = None,
        is_scenario: bool = False,
        scenario_label: str = "",
    ) -> ModelCheckpoint:
        """Record a save that the store accepted under id checkpoint_id."""
        if not self.is_valid_parent(timeline_id, parent_id):
            raise ValueError(f"the model rejects parent {parent_id!r} for {timeline_id!r}")
        if checkpoint_id in self.nodes:
            raise ValueError(f"model already holds checkpoint {checkpoint_id}")
        parent = self.nodes[self.resolve_parent(timeline_id, parent_id)]
        node = ModelCheckpoint(
            id=checkpoint_id,
            timeline_id=timeline_id,
            parent_id=parent.id,
            stage=stage,
            outputs={**parent.outputs, stage: canonical_bytes(dict(output))},
            origins={**parent.origins, stage: checkpoint_id},
            config=canonical_bytes({**parent.config_value, **dict(config or {})}),
            stats=canonical_bytes({**parent.stats_value, **dict(stats or {})}),
            is_scenario=is_scenario,
            scenario_label=scenario_label,
        )
        self.nodes[checkpoint_id] = node
        self._children[parent.id].append(checkpoint_id)
        self._children[checkpoint_id] = []
        self._trees[timeline_id].append(checkpoint_id)
        return node

    # -- reads (what the store must answer) -------------------------------------------------

    def load(self, checkpoint_id: str, stage: str) -> Any:
        """Expected load_stage_output; KeyError for an unknown checkpoint."""
        return self.nodes[checkpoint_id].output(stage)

    def lineage(self, checkpoint_id: str) -> list[str]:
        """Ids from the root to checkpoint_id, root first."""
        chain = []
        current: str | None = checkpoint_id
        while current is not None:
            chain.append(current)
            current = self.nodes[current].parent_id
        chain.reverse()
        return chain

    def tree(self, timeline_id: str) -> list[str]:
        """Every checkpoint id of a timeline in creation order, root first."""
        return list(self._trees[timeline_id])

    def children(self, checkpoint_id: str) -> list[str]:
        """Direct children of a checkpoint, in creation order."""
        return list(self._children[checkpoint_id])

    def timeline_ids(self) -> list[str]:
        """Timeline ids in creation order."""
        return list(self.timelines)
