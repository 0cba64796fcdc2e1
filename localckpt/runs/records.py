"""The records of stage runs, their fields defined once (as ``localckpt.schema.FIELDS``
does for timelines and checkpoints).

Kinds::

    run    RunRecord    one stage over one timeline, begun under one parent checkpoint
    part   PartRecord   the value one run wrote for one frame (by hash; its put's row holds it)
    memo   MemoEntry    a value any run wrote for a memo key (see ``localckpt.runs.memo``)

The SQL tables (``localckpt.backends.sql.runs``) derive their columns from
:data:`RUN_FIELDS` (parts: the table of migration 7, replaced by one row per put in
migration 15, whose digest covers its lists; memo: the memo_entries table of migration 7,
replaced by memo_runs and memo_frames in migration 16, which reads it one last time),
and each row carries a digest of these fields. A run changes state
(open, committing, committed, aborted) and the fields after ``state`` with it; the
rest never changes. Parts and memo entries never change: a part is deleted by gc once
its run is committed or aborted, a memo entry when the memo is cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ..schema import Field

__all__ = ["RUN_FIELDS", "STATES", "MemoEntry", "PartRecord", "RunRecord"]

#: The states of a run. ``committing``: the commit began (its checkpoint id is chosen and
#: puts are refused); another commit call finishes it after a crash.
STATES = ("open", "committing", "committed", "aborted")


@attrs.frozen
class RunRecord:
    """A stage run as stored.

    Attributes:
        id: UUIDv7.
        timeline_id, parent_id: where its checkpoint goes (parent_id is resolved: never
            None, the timeline's root when the run was begun with None).
        stage, version: the stage's name and code version (a string the caller chose).
        params: the stage's parameters (a JSON object).
        inputs: names of earlier stages whose per-frame values the stage reads.
        memo: whether the run reads and writes the per-frame memo.
        config_overrides: what the checkpoint's config gets; None means params.
        stats, is_scenario, scenario_label: as for save_stage_output.
        total: frames of the timeline (the run covers every frame).
        created_at: when the run began.
        state: one of STATES.
        checkpoint_id: the id its commit gives the checkpoint (chosen when the commit
            began); None before.
        closed_at: when the commit began, or when the run was aborted; the
            checkpoint's created_at is this time.
        done, memo_hits: frames written and frames answered by the memo, as counted
            when the run was committed or aborted (None while open).
    """

    id: str
    timeline_id: str
    parent_id: str
    stage: str
    version: str
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    memo: bool
    config_overrides: Mapping[str, Any] | None
    stats: Mapping[str, Any]
    is_scenario: bool
    scenario_label: str
    total: int
    created_at: datetime
    state: str = "open"
    checkpoint_id: str | None = None
    closed_at: datetime | None = None
    done: int | None = None
    memo_hits: int | None = None


@attrs.frozen
class PartRecord:
    """The value (by content hash) a run wrote for one frame."""

    run_id: str
    sequence: int
    value_hash: str


@attrs.frozen
class MemoEntry:
    """A per-frame value any run wrote, under the key its parts make (see
    ``localckpt.runs.memo.MemoKey``). The parts every frame of the run shares are kept
    once for the run; the frame's own parts (its content hash, its inputs' hashes) are
    in the key only (since migration 16: ``run.memo_key(seq)`` shows them).

    Attributes:
        key: SHA-256 of the key's canonical JSON.
        stage, version, params_hash: the key's parts that the run gives.
        value_hash: the value's content hash (its bytes lie in an output, see
            ``localckpt.backends.sql.runs``).
        run_id: the run that wrote it first.
        created_at: when.
    """

    key: str
    stage: str
    version: str
    params_hash: str
    value_hash: str
    run_id: str
    created_at: datetime


F = Field
#: kind -> fields, in column order. "json" here is any JSON value, stored as its
#: canonical text (exact on every engine).
RUN_FIELDS: dict[str, tuple[Field, ...]] = {
    "run": (
        F("id", "id"), F("timeline_id", "id"), F("parent_id", "id"), F("stage", "text"),
        F("version", "text"), F("params", "json"), F("inputs", "json"), F("memo", "bool"),
        F("config_overrides", "json", optional=True), F("stats", "json"),
        F("is_scenario", "bool"), F("scenario_label", "text"), F("total", "int"),
        F("created_at", "time"), F("state", "text"),
        F("checkpoint_id", "id", optional=True), F("closed_at", "time", optional=True),
        F("done", "int", optional=True), F("memo_hits", "int", optional=True),
    ),
    "part": (F("run_id", "id"), F("sequence", "int"), F("value_hash", "hash")),
    # the memo_entries table of migrations 7-15 (migration 16 checks its rows, then drops
    # it): MemoEntry is what a lookup reads now
    "memo": (
        F("key", "hash"), F("stage", "text"), F("version", "text"), F("params_hash", "hash"),
        F("frame_hash", "hash"), F("inputs", "json"), F("value_hash", "hash"),
        F("run_id", "id"), F("created_at", "time"),
    ),
}
RUN_TYPES: dict[str, type] = {"run": RunRecord, "part": PartRecord}
