"""Commands that put frames into a store: demo."""

from __future__ import annotations

import argparse
from typing import Any

from ..render import render_tree
from ..store import Store
from .common import add_command, print_json

__all__ = ["register"]


def cmd_demo(store: Store, args: argparse.Namespace) -> int:
    from ..demo import run_demo

    timeline, leaves = run_demo(store, frame_count=args.frames)
    if args.json:
        print_json({"timeline_id": timeline.id, "frames": timeline.frame_count,
                    "leaves": leaves})
        return 0
    print(f"demo: stored {timeline.frame_count} frames and ran detect -> track with two "
          f"thresholds in {store.url}\n")
    print(render_tree(timeline, store.checkpoints(timeline.id)))
    print(f"\nnext: localckpt show {leaves[-1][:13]}")
    return 0


def register(sub: Any) -> None:
    p = add_command(sub, "demo", "run a toy two-stage pipeline with two config tries",
                    cmd_demo, creates=True)
    p.add_argument("--frames", type=int, default=24, help="frames in the synthetic video")
