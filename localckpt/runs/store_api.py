"""What ``Store.begin_run``, ``get_run``, ``runs``, ``memo_stats`` and ``clear_memo`` do.

Kept here so that the Store's section for runs stays a list of short methods. Input is
checked before anything is written (InvalidInputError names what was wrong).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ..arguments import boolean, shown, text
from ..canonical import json_object
from ..errors import InvalidInputError, NotFoundError
from ..ids import new_id
from ..maintenance.reports import human_bytes
from ..records import utcnow
from ..render import Summarised, plural
from .records import STATES, RunRecord
from .run import StageRun

if TYPE_CHECKING:
    from ..backends.sql.runs import MemoStageStats
    from ..store import Store

__all__ = ["MemoStats", "begin_run", "clear_memo", "get_run", "list_runs", "memo_stats",
           "pending_runs"]


_LISTED = 10
#: What a run reference can be: a run has no tags, so only (a start of) its id.
_RUN_REF = re.compile(r"[0-9a-fA-F-]{1,36}")


def _inputs(inputs: Any) -> tuple[str, ...]:
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Iterable):
        raise InvalidInputError(
            f"inputs must be a tuple of stage names (e.g. ('detect',)), not {shown(inputs)}")
    names = tuple(text(n, "an input stage name", empty=False) for n in inputs)
    if len(set(names)) != len(names):
        raise InvalidInputError(f"inputs names a stage twice: {list(names)}")
    return names


def begin_run(store: Store, timeline_id: str, parent_checkpoint_id: str | None,
              stage_name: str, *, params: Mapping[str, Any] | None, version: str,
              inputs: Iterable[str], memo: bool, config_overrides: Mapping[str, Any] | None,
              stats: Mapping[str, Any] | None, is_scenario: bool,
              scenario_label: str) -> StageRun:
    """Check everything, then write the run's record (one transaction)."""
    from ..framediff import frames_of

    tables = store._run_tables()
    stage = text(stage_name, "stage_name", empty=False)
    version = text(version, "version")
    label = text(scenario_label, "scenario_label")
    names = _inputs(inputs)
    for flag, what in ((memo, "memo"), (is_scenario, "is_scenario")):
        if not isinstance(flag, bool):
            raise InvalidInputError(f"{what} must be True or False, not {shown(flag)}")
    params_ = json_object(params, "params")
    config = None if config_overrides is None else json_object(config_overrides,
                                                               "config_overrides")
    stats_ = json_object(stats, "stats")
    timeline = store.get_timeline(timeline_id)
    parent = store._parent_for(timeline.id, parent_checkpoint_id)
    parent = store.get_checkpoint(parent.id)  # NotFoundError when it was pruned
    for name in names:
        if name not in parent.stage_hashes:
            have = ", ".join(sorted(parent.stage_hashes)) or "none"
            raise InvalidInputError(f"input stage {name!r} has no output at checkpoint "
                                    f"{parent.id} (it has: {have})")
        frames_of(store.load_stage_output(parent.id, name),
                  f"input stage {name!r} of checkpoint {parent.id}")
    record = RunRecord(
        id=new_id(), timeline_id=timeline.id, parent_id=parent.id, stage=stage,
        version=version, params=params_, inputs=names, memo=memo, config_overrides=config,
        stats=stats_, is_scenario=is_scenario, scenario_label=label,
        total=timeline.frame_count, created_at=utcnow())
    tables.insert_run(record)
    return StageRun(store, record.id, record=record)


def get_run(store: Store, ref: str) -> StageRun:
    """The run ref names: a full id, a short id (as ``runs`` shows), or a unique prefix of
    its id (see localckpt.refs); NotFoundError when there is none (also for a ref no run
    id could be, said in the form of every reference that names nothing: "no run matches
    REF in STORE: why; see LISTING"), InvalidInputError listing the candidates when
    several match."""
    from .. import refs

    tables = store._run_tables()
    if isinstance(ref, str) and not _RUN_REF.fullmatch(ref):
        if not ref:  # as localckpt.refs says an empty checkpoint or timeline reference
            raise NotFoundError("no run '' (an empty reference names nothing)")
        raise NotFoundError(refs.names_nothing(
            store, refs._kind("run"), ref[:80], "a run's id, short id or id prefix is hex "
            "digits and dashes, 36 characters at most (runs have no tags)"))
    found = tables.get(refs.resolve(store, ref, "run", what="a run id"))
    if found is None:
        raise NotFoundError(f"no run {ref!r} in {store.catalog.describe()} "
                            f"({refs.listing_here(store, '`localckpt runs`')} lists them)")
    return StageRun(store, found.id, record=found)


def list_runs(store: Store, timeline_id: str | None, state: str | None) -> list[StageRun]:
    tables = store._run_tables()
    if timeline_id is not None and not isinstance(timeline_id, str):
        raise InvalidInputError(f"timeline_id must be an id str or None, not {shown(timeline_id)}")
    if state is not None and state not in STATES:
        raise InvalidInputError(f"state must be one of {', '.join(STATES)} or None, not "
                                f"{shown(state)}")
    return [StageRun(store, r.id, record=r) for r in tables.listing(timeline_id)
            if state is None or r.state == state]


def pending_runs(store: Store, timeline_id: str) -> list[dict[str, Any]]:
    """The open runs of a timeline (committing ones too), as JSON-ready dicts: RunStatus
    fields (parent_id, stage, done, memo_hits, total, todo, ...) and ``short_id``; not
    those whose parent checkpoint was pruned (``localckpt runs`` lists them). What
    ``tree`` and the web view draw as pending nodes under their parents. [] for a
    catalog without runs (an old one opened read-only)."""
    tables = getattr(store.catalog, "runs", None)
    if tables is None or not tables.available:
        return []
    runs = [r for r in list_runs(store, timeline_id, None)
            if r.record.state in ("open", "committing")]
    if not runs:
        return []
    shorts = store.short_ids([r.id for r in runs], "run")
    out = []
    for run in runs:
        d = run.status().to_dict()
        if d["orphaned"]:  # under a pruned checkpoint: nowhere in the tree
            continue
        d["short_id"] = shorts.get(run.id, run.id)
        out.append(d)
    return out


@attrs.frozen
class MemoStats(Summarised):
    """What the memo holds.

    Attributes:
        entries: memo entries (one per key).
        values: distinct values they point to, and their bytes (canonical JSON).
        stages: entries per stage and version, with the oldest and newest.
        pending: values of open runs with the memo on: they answer other runs too, and
            become entries when their run is committed or aborted.
    """

    entries: int
    values: int
    bytes: int
    stages: tuple[MemoStageStats, ...] = ()
    pending: int = 0

    def summary(self) -> str:
        return (f"{plural(self.entries, 'memo entry', 'memo entries')} over "
                f"{plural(len(self.stages), 'stage version')}, "
                f"{plural(self.values, 'distinct value')} ({human_bytes(self.bytes)})"
                + (f"; {plural(self.pending, 'more value')} in open runs" if self.pending
                   else ""))

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        for s in d["stages"]:
            s["oldest"], s["newest"] = s["oldest"].isoformat(), s["newest"].isoformat()
        return d


def memo_stats(store: Store) -> MemoStats:
    stages, entries, values, size, pending = store._run_tables().memo_stats()
    return MemoStats(entries, values, size, tuple(stages), pending)


def _cutoff(older_than: Any) -> datetime | None:
    """The creation time before which memo entries go (None: all of them)."""
    if older_than is None:
        return None
    if isinstance(older_than, timedelta):
        if older_than < timedelta(0):
            raise InvalidInputError(f"older_than must not be negative, not {older_than}")
        return utcnow() - older_than
    if isinstance(older_than, datetime):
        if older_than.tzinfo is None:
            raise InvalidInputError("older_than must be a timezone-aware datetime (or a "
                                    "timedelta: an age)")
        return older_than
    if isinstance(older_than, int | float) and not isinstance(older_than, bool) and \
            math.isfinite(older_than) and older_than >= 0:
        return utcnow() - timedelta(seconds=older_than)
    raise InvalidInputError(f"older_than must be a timedelta, an aware datetime or "
                            f"seconds, not {shown(older_than)}")


def clear_memo(store: Store, stage: str | None, older_than: datetime | timedelta | None,
               dry_run: bool = False) -> int:
    tables = store._run_tables()
    if stage is not None:
        text(stage, "stage")
    boolean(dry_run, "dry_run")
    try:
        before = _cutoff(older_than)
    except OverflowError:  # an age before the first datetime, or a number past a float's range
        raise InvalidInputError(f"older_than {shown(older_than)} reaches further back than "
                                "any date: give an age in seconds, a timedelta or a datetime "
                                "within the calendar") from None
    return tables.clear_memo(stage, before, dry_run)
