"""Commands that compare and combine checkpoints: diff, merge."""

from __future__ import annotations

import argparse
from typing import Any

from ..store import Store
from ..tree import Marker
from .common import (
    CHECKPOINT_HELP,
    UsageError,
    add_command,
    add_short_ids,
    checkpoint_ref,
    print_json,
    stage_name,
    unit_fraction,
)

__all__ = ["register"]


def _json_pairs(pairs: Any) -> Any:
    return {k: [None if isinstance(v, Marker) else v for v in pair] for k, pair in pairs.items()}


def _check_diff(args: argparse.Namespace) -> None:
    if args.frames or args.stage is not None or args.stage_b is not None:
        return
    for flag, value, does in (("--align", args.align, "pairs frames"),
                              ("--match-iou", args.match_iou, "matches boxes frame by frame"),
                              ("--moved-iou", args.moved_iou, "says which boxes moved")):
        if value is not None:  # never ignored silently
            raise UsageError(f"{flag} {does}: it goes with --frames (and --stage)")


def cmd_diff(store: Store, args: argparse.Namespace) -> int:
    a, b = checkpoint_ref(store, args.a), checkpoint_ref(store, args.b)
    if args.frames or args.stage is not None or args.stage_b is not None:
        return _frame_diff(store, args, a, b)
    d = store.diff(a, b)
    if args.json:
        print_json(add_short_ids(store, [{
            "a": d.a, "b": d.b, "stages_added": d.stages_added,
            "stages_removed": d.stages_removed, "stages_changed": d.stages_changed,
            "stage_hashes": _json_pairs(d.stage_hashes),
            "config_changed": _json_pairs(d.config_changed),
            "stats_changed": _json_pairs(d.stats_changed),
        }], None)[0])
    else:
        print(d.render(store.short_ids([a, b])))
    return 0


def _frame_diff(store: Store, args: argparse.Namespace, a: str, b: str) -> int:
    """diff --frames: one line per changed frame of one stage, then the totals."""
    stage, stage_b = args.stage, args.stage_b
    if stage is None:
        stage, own_b = _stage_to_compare(store, a, b)
        stage_b = stage_b or own_b
    fd = store.frame_diff(a, b, stage, match_iou=0.5 if args.match_iou is None else
                          args.match_iou, align=args.align, stage_b=stage_b,
                          moved_iou=args.moved_iou)
    if args.json:
        print_json(add_short_ids(store, [fd.to_dict()], None)[0])
    else:
        print(fd.render(store.short_ids([a, b])))
    return 0


def _stage_to_compare(store: Store, a: str, b: str) -> tuple[str, str | None]:
    """The stage diff --frames compares when none is named: the one stage that differs
    between A and B, else the stages each added where neither has the other's (a try's
    detect against an import's labels: (A's, B's)); else bad usage naming --stage."""
    changed = store.diff(a, b).stages_changed
    if len(changed) == 1:
        return changed[0], None
    if not changed:
        from ..diff import own_stages

        own = own_stages(store.get_checkpoint(a), store.get_checkpoint(b))
        if own is not None:
            return own
    from ..errors import InvalidInputError

    which = (f"stages {', '.join(changed)} differ" if changed
             else "no stage that both have differs")
    shorts = store.short_ids([a, b])
    raise InvalidInputError(f"diff --frames needs --stage NAME ({which} between "
                            f"{shorts[a]} and {shorts[b]}; --stage-b NAME names B's "
                            "where it is another)")


def cmd_merge(store: Store, args: argparse.Namespace) -> int:
    ours, theirs = checkpoint_ref(store, args.ours), checkpoint_ref(store, args.theirs)
    # an earlier merge of the same result is returned, nothing written: say so (the text
    # said "merged", as if a new checkpoint had been made)
    earlier = {c.id for c in store.children(ours) if c.merged_from == theirs}
    result = store.merge(ours, theirs, strategy=args.strategy)
    s = store.short_ids([ours, theirs, result])
    # outcome: what happened, as git says it; nothing is written but for "merged"
    if result == ours:
        outcome = "up-to-date"
        text = (f"already up to date: {s[theirs]} is already part of {s[ours]}; nothing "
                "written")
    elif result == theirs:
        outcome = "fast-forward"
        text = f"fast-forward: {s[ours]} is an ancestor of {s[theirs]}; nothing written"
    elif result in earlier:  # it said outcome "merged", as if it had merged again
        outcome = "up-to-date"
        text = (f"already up to date: {s[theirs]} was merged into {s[ours]} before, as "
                f"{s[result]}  ({result}), with the same result; nothing written")
    else:
        outcome = "merged"
        text = f"merged {s[theirs]} into {s[ours]}: {s[result]}  ({result})"
    if args.json:
        print_json(add_short_ids(store, [{"ours": ours, "theirs": theirs, "result": result,
                                          "outcome": outcome,
                                          "written": outcome == "merged"}], None)[0])
    else:
        print(text)
    return 0


def register(sub: Any) -> None:
    p = add_command(sub, "diff", "what differs between two checkpoints", cmd_diff)
    p.set_defaults(check=_check_diff)
    p.add_argument("a", metavar="A", help=CHECKPOINT_HELP)
    p.add_argument("b", metavar="B", help=CHECKPOINT_HELP)
    p.add_argument("--frames", action="store_true",
                   help="compare one stage's frame-keyed output frame by frame")
    p.add_argument("--stage", metavar="NAME", type=stage_name,
                   help="the stage --frames compares (gives --frames; default: the one "
                   "stage that differs, else the stage each of A and B added)")
    p.add_argument("--stage-b", metavar="NAME", type=stage_name,
                   help="B's stage, where it is another than A's (a try's detect against "
                   "an import's labels; gives --frames)")
    p.add_argument("--match-iou", metavar="IOU", type=unit_fraction,
                   help="with --frames: IoU at which two boxes are the same detection "
                   "(default 0.5)")
    p.add_argument("--moved-iou", metavar="IOU", type=unit_fraction,
                   help="with --frames: IoU under which a matched box has moved (default "
                   "0.95; at --match-iou or less none has: against ground truth, only "
                   "missed, false and relabelled boxes are listed)")
    p.add_argument("--align", choices=("time",),
                   help="with --frames, for checkpoints of different timelines: pair each "
                   "frame with the other timeline's nearest in time (within half the "
                   "coarser frame interval)")

    p = add_command(sub, "merge", "three-way merge THEIRS into OURS (one new checkpoint)",
                    cmd_merge)
    p.add_argument("ours", metavar="OURS", help=CHECKPOINT_HELP + "; the merge's parent")
    p.add_argument("theirs", metavar="THEIRS", help=CHECKPOINT_HELP + "; merged in")
    p.add_argument("--strategy", choices=("fail", "ours", "theirs"), default="fail",
                   help="on conflict: fail listing every conflict (default), or keep a side")
