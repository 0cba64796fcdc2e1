"""Comparing two tries frame by frame: Store.frame_diff's pass over two detect outputs."""

from __future__ import annotations

import json
import random
from typing import Any

from ..model import Context, Goal, Subject, Workload
from ._common import cached, timed

__all__ = ["FRAME_DIFF"]

BOXES = 5
DECODE = "json.loads of both outputs (reference)"


def _outputs(ctx: Context, frames: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two tries of a detector: every frame differs (boxes jitter, a third lose one box,
    scores drift), the worst case for the comparison."""
    rnd = random.Random(frames)

    def box() -> dict[str, Any]:
        x, y = rnd.uniform(0, 1200), rnd.uniform(0, 640)
        return {"box": [x, y, x + 40, y + 60], "label": rnd.choice(["car", "person"]),
                "score": rnd.random()}

    a = {"frames": [{"sequence": s, "detections": [box() for _ in range(BOXES)]}
                    for s in range(frames)]}
    b = json.loads(json.dumps(a))
    for f in b["frames"]:
        for d in f["detections"]:
            d["box"][0] += rnd.uniform(0, 8)
            d["score"] = min(1.0, d["score"] + rnd.uniform(-0.1, 0.1))
        if f["sequence"] % 3 == 0:
            f["detections"].pop()
    return a, b


def _build(ctx: Context, frames: int) -> list[Subject]:
    from localckpt.framediff import diff_outputs

    a, b = cached(ctx, f"framediff:{frames}", lambda: _outputs(ctx, frames))
    texts = json.dumps(a), json.dumps(b)
    return [
        Subject("frame_diff", lambda: timed(lambda: diff_outputs(a, b), units=frames)),
        Subject(DECODE, lambda: timed(lambda: [json.loads(t) for t in texts], units=frames),
                role="reference"),
    ]


FRAME_DIFF = Workload(
    name="frame_diff",
    title=f"frame_diff of two detect outputs, {BOXES} boxes per frame, every frame changed",
    unit="frames", size_name="frames", sizes=(1000, 3000, 10000),
    quick_sizes=(100, 300), reps=5, build=_build, baseline=DECODE,
    goals=(Goal(">= 1x the rate of decoding both outputs", lambda s: s == "frame_diff",
                "rate", 1.0),),
    notes=("The pure comparison (localckpt.framediff.diff_outputs) on outputs already in "
           "memory; Store.frame_diff adds loading the two outputs, which is the reference "
           "row's decode (the issue's target: 10,000 frames x 5 boxes in under a second).",),
)
