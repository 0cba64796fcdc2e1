"""Commands that look at a store: ls, tree, log, show. None of them writes."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import NotFoundError
from ..records import checkpoint_to_dict, timeline_to_dict
from ..render import (
    printable,
    render_checkpoint,
    render_log,
    render_tree,
    sampled_duration,
    sampling_fps,
    tree_levels,
)
from ..store import Store
from ..types import Checkpoint
from .common import (
    CHECKPOINT_HELP,
    TIMELINE_HELP,
    add_command,
    add_short_ids,
    checkpoint_ref,
    print_json,
    prints_unicode,
    stage_name,
    timeline_or_newest,
    whole,
)

__all__ = ["register"]


def cmd_ls(store: Store, args: argparse.Namespace) -> int:
    # in the order they were made: ids are tokens, and one that is not a UUIDv7 (an old
    # store's, a peer's `zzzz`) sorts after every UUID by its characters
    timelines = store.list_timelines()  # oldest first
    # live checkpoints per timeline, from the sums kept with each write (no tree read)
    counts = store.visibility.live_counts(t.id for t in timelines)
    if args.json:
        records = add_short_ids(store, [timeline_to_dict(t) for t in timelines], "timeline")
        for record in records:
            record["checkpoints"] = counts.get(record["id"], 0)
        print_json(records)
        return 0
    if not timelines:
        print(f"no timelines in {store.url or store.catalog.describe()}")
        return 0
    shorts = store.short_ids([t.id for t in timelines], "timeline")
    idw = max(len("TIMELINE"), *(len(v) for v in shorts.values()))
    profiles = {t.id: printable(t.profile_name) for t in timelines}  # from any store
    width = max(len("PROFILE"), *(len(p) for p in profiles.values()))
    lines = [f"{'TIMELINE':{idw}}  {'FRAMES':>6}  {'FPS':>5}  {'LENGTH':>8}  CHECKPOINTS  "
             f"{'CREATED':19}  {'PROFILE':{width}}  SOURCE"]
    for t in timelines:
        created = t.created_at.isoformat(" ", "seconds")[:19]  # UTC, to the second
        lines.append(
            f"{shorts[t.id]:{idw}}  {t.frame_count:6d}  {sampling_fps(t):>5}  "
            f"{sampled_duration(t):>8}  {counts.get(t.id, 0):11d}  {created:19}  "
            f"{profiles[t.id]:{width}}  {printable(t.source_video)}"
        )
    print("\n".join(lines))
    return 0


def _tag_names(store: Store, timeline_id: str) -> dict[str, list[str]]:
    """checkpoint id -> names of its live tags, sorted."""
    names: dict[str, list[str]] = {}
    for g in store.tags(timeline_id):
        names.setdefault(g.checkpoint_id, []).append(g.name)
    return names


def _checkpoint_records(store: Store, checkpoints: list[Checkpoint],
                        names: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The JSON of checkpoints (tree, log, show): each record with its short ids and
    the names of its live tags (names: checkpoint id -> names)."""
    records = add_short_ids(store, [checkpoint_to_dict(c) for c in checkpoints], "checkpoint")
    for record in records:
        record["tags"] = names.get(record["id"], [])
    return records


def cmd_tree(store: Store, args: argparse.Namespace) -> int:
    timeline = store.get_timeline(timeline_or_newest(store, args.timeline))
    checkpoints = store.checkpoints(timeline.id)
    names = _tag_names(store, timeline.id)
    drawn = checkpoints
    if args.depth is not None:  # the levels drawn, in the text and in the JSON
        levels = tree_levels(checkpoints)
        drawn = [c for c in checkpoints if levels[c.id] <= args.depth]
    if args.json:
        print_json(_checkpoint_records(store, drawn, names))
    else:
        shorts = {**store.short_ids([c.id for c in drawn]),
                  **store.short_ids([timeline.id], "timeline")}
        from .runs import pending_nodes  # open stage runs, under their parents

        print(render_tree(timeline, checkpoints, names, shorts,
                          pending_nodes(store, timeline.id), ascii_only=not prints_unicode(),
                          depth=args.depth))
    return 0


def cmd_log(store: Store, args: argparse.Namespace) -> int:
    """The path from the root to a checkpoint, newest first: how it came to be."""
    lineage = store.lineage(checkpoint_ref(store, args.checkpoint))
    names = _tag_names(store, lineage[-1].timeline_id)
    shown = lineage[::-1][:args.max_count]
    if args.json:
        print_json(_checkpoint_records(store, shown, names))
        return 0
    ids = [c.id for c in shown] + [c.merged_from for c in shown if c.merged_from]
    print(render_log(lineage, names, store.short_ids(ids), args.max_count))
    return 0


def _frame_value(store: Store, c: Checkpoint, stage: str, output: Any, frame: int) -> Any:
    """One frame's value of a frame-keyed stage output, or NotFoundError naming the
    frames it has."""
    from ..framediff import frames_of

    frames = frames_of(output, f"stage {stage!r} at {store.short_id(c.id)}")
    if frame not in frames:
        held = (f"frames {min(frames)}-{max(frames)}, {len(frames)} in all" if frames
                else "no frame")
        raise NotFoundError(f"stage {stage!r} at {store.short_id(c.id)} has no value for "
                            f"frame {frame} (it has {held})")
    return frames[frame]


def cmd_show(store: Store, args: argparse.Namespace) -> int:
    c = store.get_checkpoint(checkpoint_ref(store, args.checkpoint))
    stage = args.stage if args.stage is not None or args.frame is None else c.stage
    if stage:
        value = store.load_stage_output(c.id, stage)
        if value is None:
            raise NotFoundError(
                f"checkpoint {store.short_id(c.id)} has no stage {stage!r} (it has: "
                f"{', '.join(sorted(c.stage_hashes)) or 'none'})"
            )
        if args.frame is not None:
            value = _frame_value(store, c, stage, value, args.frame)
        print(json.dumps(value, indent=None if args.json else 2, sort_keys=True,
                         ensure_ascii=False))
        return 0
    if args.frame is not None:  # the root: no stage of its own to take by default
        raise NotFoundError(f"checkpoint {store.short_id(c.id)} added no stage; name the "
                            "stage whose frame to show with --stage")
    outputs: dict[str, Any] = dict(c.stage_outputs)
    tags = _tag_names(store, c.timeline_id).get(c.id, [])
    if args.json:
        record = _checkpoint_records(store, [c], {c.id: tags})[0]
        record["stage_outputs"] = outputs
        print_json(record)
    else:
        ids = [i for i in (c.id, c.parent_id, c.merged_from) if i is not None]
        shorts = {**store.short_ids(ids), **store.short_ids([c.timeline_id], "timeline")}
        print(render_checkpoint(c, outputs, tags, shorts))
    return 0


def register(sub: Any) -> None:
    add_command(sub, "ls", "list timelines", cmd_ls)

    p = add_command(sub, "tree", "show a timeline's checkpoint tree", cmd_tree)
    p.add_argument("timeline", metavar="TIMELINE", nargs="?",
                   help=TIMELINE_HELP + " (default: the newest)")
    p.add_argument("-L", "--depth", metavar="N", type=whole(1),
                   help="draw N levels, the root's the first (as tree -L); a checkpoint "
                        "with more below says how many (default: all)")

    p = add_command(sub, "log", "show a checkpoint's lineage (root to it), newest first",
                    cmd_log)
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    p.add_argument("-n", "--max-count", metavar="N", type=whole(1),
                   help="show only the newest N (default: all)")

    p = add_command(sub, "show", "show one checkpoint: outputs, config, stats", cmd_show)
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    p.add_argument("--stage", metavar="NAME", type=stage_name,
                   help="print only this stage's output, in full (pretty JSON)")
    p.add_argument("--frame", metavar="N", type=whole(0),
                   help="print only frame N's value of a frame-keyed output (of --stage, "
                        "else of the stage the checkpoint added)")
