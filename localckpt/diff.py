"""Diff: what differs between two checkpoints (stages by content hash, config, stats).

A diff compares two states, not two histories: it does not matter how each checkpoint
got its outputs, only which output (hash) it sees per stage. Comparing by hash needs no
output to be loaded, so a diff costs one catalog read whatever the outputs weigh.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .errors import NotFoundError
from .tree import MISSING, Marker, State, changed_keys

if TYPE_CHECKING:
    from .framediff import FrameDiff
    from .store import Store
    from .types import Checkpoint

__all__ = ["Diff", "diff_checkpoints", "frame_diff_checkpoints", "own_stages"]


@attrs.frozen
class Diff:
    """Differences from checkpoint ``a`` to checkpoint ``b``.

    Attributes:
        a, b: the compared checkpoint ids.
        stages_added: stages b has and a lacks (sorted).
        stages_removed: stages a has and b lacks.
        stages_changed: stages both have, with different outputs.
        stage_hashes: every differing stage -> (hash at a, hash at b); MISSING when absent.
        config_changed, stats_changed: every differing key -> (value at a, value at b);
            :data:`localckpt.tree.MISSING` where a side lacks the key. Values compare by
            canonical JSON, so 1 and 1.0 differ.
    An empty diff is falsy.
    """

    a: str
    b: str
    stages_added: tuple[str, ...] = ()
    stages_removed: tuple[str, ...] = ()
    stages_changed: tuple[str, ...] = ()
    stage_hashes: Mapping[str, tuple[Any, Any]] = attrs.field(factory=dict)
    config_changed: Mapping[str, tuple[Any, Any]] = attrs.field(factory=dict)
    stats_changed: Mapping[str, tuple[Any, Any]] = attrs.field(factory=dict)

    @classmethod
    def between(cls, a_id: str, a: State, b_id: str, b: State) -> Diff:
        """The diff of two states (pure)."""
        stages = changed_keys("stage", a.stage_hashes, b.stage_hashes)
        return cls(
            a=a_id,
            b=b_id,
            stages_added=tuple(k for k, (x, _) in stages.items() if x is MISSING),
            stages_removed=tuple(k for k, (_, y) in stages.items() if y is MISSING),
            stages_changed=tuple(
                k for k, (x, y) in stages.items() if x is not MISSING and y is not MISSING
            ),
            stage_hashes=stages,
            config_changed=changed_keys("config", a.config, b.config),
            stats_changed=changed_keys("stats", a.stats, b.stats),
        )

    def __bool__(self) -> bool:
        return bool(self.stage_hashes or self.config_changed or self.stats_changed)

    @property
    def config_keys(self) -> tuple[str, ...]:
        return tuple(self.config_changed)

    @property
    def stats_keys(self) -> tuple[str, ...]:
        return tuple(self.stats_changed)

    def render(self, shorts: Mapping[str, str] | None = None) -> str:
        """A readable, line-oriented report (``+`` added, ``-`` removed, ``~`` changed);
        shorts: id -> what to show for it (short ids)."""
        name = (shorts or {}).get
        lines = [f"diff {name(self.a, self.a)} -> {name(self.b, self.b)}"]
        if not self:
            lines.append("  (no differences)")
            return "\n".join(lines)
        if self.stage_hashes:
            lines.append("stages:")
            for stage, (x, y) in self.stage_hashes.items():
                if x is MISSING:
                    lines.append(f"  + {stage}  {_short(y)}")
                elif y is MISSING:
                    lines.append(f"  - {stage}  {_short(x)}")
                else:
                    lines.append(f"  ~ {stage}  {_short(x)} -> {_short(y)}")
        for title, changes in (("config", self.config_changed), ("stats", self.stats_changed)):
            if not changes:
                continue
            lines.append(f"{title}:")
            for key, (x, y) in changes.items():
                if x is MISSING:
                    lines.append(f"  + {key}: {_show(y)}")
                elif y is MISSING:
                    lines.append(f"  - {key}: {_show(x)}")
                else:
                    lines.append(f"  ~ {key}: {_show(x)} -> {_show(y)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _short(h: Any) -> str:
    return h[:12] if isinstance(h, str) else repr(h)


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, Marker):
        return repr(value)
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def diff_checkpoints(store: Store, a: str, b: str) -> Diff:
    """Diff two checkpoints of a store, in one catalog read (no output is loaded).

    Checkpoints of different timelines may be compared too. NotFoundError names an
    unknown id.
    """
    for value, what in ((a, "a"), (b, "b")):
        if not isinstance(value, str):
            from .errors import InvalidInputError

            raise InvalidInputError(f"{what} must be a checkpoint id string, not "
                                    f"{type(value).__name__}")
    found = {c.id: c for c in store.live_checkpoints({a, b})}
    for cid in (a, b):
        if cid not in found:
            raise NotFoundError(f"no checkpoint {cid!r} in {store.catalog.describe()}")
    return Diff.between(a, State.of(found[a]), b, State.of(found[b]))


def own_stages(a: Checkpoint, b: Checkpoint) -> tuple[str, str] | None:
    """(a's stage, b's) when each added a stage the other lacks (a try's detect against
    an import's labels): what a frame diff of two such checkpoints compares by default.
    None otherwise."""
    if (a.stage and b.stage and a.stage not in b.stage_hashes
            and b.stage not in a.stage_hashes):
        return a.stage, b.stage
    return None


def frame_diff_checkpoints(store: Store, a: str, b: str, stage: str, *,
                           match_iou: float = 0.5, align: str | None = None,
                           stage_b: str | None = None, moved_iou: float | None = None,
                           ) -> FrameDiff:
    """Store.frame_diff, for two checkpoint ids: refuses checkpoints of different
    timelines unless align="time", which pairs frames by the timestamps of the two
    timelines' frame indexes (localckpt.framediff.align_by_time). stage_b: b's stage,
    when it is another than a's."""
    from .arguments import shown
    from .errors import InvalidInputError
    from .framediff import ALIGNMENTS, MOVED_IOU, align_by_time, diff_outputs, frame_interval

    if align is not None and align not in ALIGNMENTS:
        raise InvalidInputError(
            f"align must be None, 'sequence' or 'time', not {shown(align)}",
            cli=f"--align must be 'time', not {shown(align)}")
    moved_iou = MOVED_IOU if moved_iou is None else moved_iou
    checkpoints = [store.get_checkpoint(a), store.get_checkpoint(b)]
    ta, tb = (c.timeline_id for c in checkpoints)
    if ta != tb and align != "time":
        _refuse_across_timelines(store, a, b, ta, tb)
    outputs = []
    for c, name, flag in zip(checkpoints, (stage, stage_b or stage),
                             ("--stage", "--stage-b"), strict=True):
        if name not in c.stage_hashes:
            stages = ", ".join(sorted(c.stage_hashes)) or "none"
            raise NotFoundError(f"checkpoint {c.id} has no stage {name!r} (it has: {stages})",
                                cli=f"checkpoint {store.short_id(c.id)} has no stage "
                                f"{name!r} (it has: {stages}); name one with {flag}")
        outputs.append(store.load_stage_output(c.id, name))
    if align != "time":
        return diff_outputs(outputs[0], outputs[1], match_iou=match_iou, a=a, b=b,
                            stage=stage, stage_b=stage_b, moved_iou=moved_iou)
    times = [{m.sequence: m.timestamp for m in store.frame_index(t)} for t in (ta, tb)]
    tolerance = max(frame_interval(index.values(), 1 / store.get_timeline(t).fps)
                    for index, t in zip(times, (ta, tb), strict=True)) / 2
    return diff_outputs(outputs[0], outputs[1], match_iou=match_iou, a=a, b=b, stage=stage,
                        pairs=align_by_time(times[0], times[1], tolerance),
                        tolerance=tolerance, stage_b=stage_b, moved_iou=moved_iou)


def _refuse_across_timelines(store: Store, a: str, b: str, ta: str, tb: str) -> None:
    from .errors import InvalidInputError
    from .render import describe_timeline

    timelines = store.short_ids([ta, tb], "timeline")
    checkpoints = store.short_ids([a, b])
    named = [f"{timelines[t]} ({describe_timeline(store.get_timeline(t))})" for t in (ta, tb)]
    msg = (f"checkpoints {checkpoints[a]} and {checkpoints[b]} belong to different timelines, "
           f"{named[0]} and {named[1]}: frame numbers of one do not name the same instants "
           "in the other. Compare them by time")
    raise InvalidInputError(msg + ' with align="time".', cli=msg + " with --align time.")
