"""Commands that compare and combine checkpoints: diff, merge."""

from __future__ import annotations

import argparse
from typing import Any

from ..store import Store
from ..tree import Marker
from .common import add_command, checkpoint_ref, print_json

__all__ = ["register"]


def _json_pairs(pairs: Any) -> Any:
    return {k: [None if isinstance(v, Marker) else v for v in pair] for k, pair in pairs.items()}


def cmd_diff(store: Store, args: argparse.Namespace) -> int:
    a, b = checkpoint_ref(store, args.a), checkpoint_ref(store, args.b)
    if args.frames or args.stage is not None:
        return _frame_diff(store, args, a, b)
    d = store.diff(a, b)
    if args.json:
        print_json({
            "a": d.a, "b": d.b, "stages_added": d.stages_added,
            "stages_removed": d.stages_removed, "stages_changed": d.stages_changed,
            "stage_hashes": _json_pairs(d.stage_hashes),
            "config_changed": _json_pairs(d.config_changed),
            "stats_changed": _json_pairs(d.stats_changed),
        })
    else:
        print(d.render())
    return 0


def _frame_diff(store: Store, args: argparse.Namespace, a: str, b: str) -> int:
    """diff --frames: one line per changed frame of one stage, then the totals."""
    stage = args.stage
    if stage is None:
        changed = store.diff(a, b).stages_changed
        if len(changed) != 1:
            from ..errors import InvalidInputError

            which = (f"stages {', '.join(changed)} differ" if changed
                     else "no stage that both have differs")
            raise InvalidInputError(f"diff --frames needs --stage NAME ({which} between "
                                    f"{a} and {b})")
        stage = changed[0]
    fd = store.frame_diff(a, b, stage, match_iou=args.match_iou)
    if args.json:
        print_json(fd.to_dict())
    else:
        print(fd.render())
    return 0


def cmd_merge(store: Store, args: argparse.Namespace) -> int:
    ours, theirs = checkpoint_ref(store, args.ours), checkpoint_ref(store, args.theirs)
    result = store.merge(ours, theirs, strategy=args.strategy)
    if result == ours:
        outcome = "up-to-date"
        text = f"already merged: {theirs} is already part of {ours}; nothing written"
    elif result == theirs:
        outcome = "fast-forward"
        text = f"fast-forward: {ours} is an ancestor of {theirs}; nothing written"
    else:
        outcome = "merged"
        text = f"merged {theirs} into {ours}: {result}"
    if args.json:
        print_json({"ours": ours, "theirs": theirs, "result": result, "outcome": outcome})
    else:
        print(text)
    return 0


def register(sub: Any) -> None:
    p = add_command(sub, "diff", "what differs between two checkpoints", cmd_diff)
    p.add_argument("a", metavar="A", help="checkpoint (id, prefix, tag or TIMELINE:stage)")
    p.add_argument("b", metavar="B", help="checkpoint (id, prefix, tag or TIMELINE:stage)")
    p.add_argument("--frames", action="store_true",
                   help="compare one stage's frame-keyed output frame by frame")
    p.add_argument("--stage", metavar="NAME",
                   help="the stage --frames compares (default: the one stage that differs)")
    p.add_argument("--match-iou", metavar="IOU", type=float, default=0.5,
                   help="IoU at which two boxes are the same detection (default 0.5)")

    p = add_command(sub, "merge", "three-way merge THEIRS into OURS (one new checkpoint)",
                    cmd_merge)
    p.add_argument("ours", metavar="OURS", help="checkpoint; the merge's parent")
    p.add_argument("theirs", metavar="THEIRS", help="checkpoint to merge in")
    p.add_argument("--strategy", choices=("fail", "ours", "theirs"), default="fail",
                   help="on conflict: fail listing every conflict (default), or keep a side")
