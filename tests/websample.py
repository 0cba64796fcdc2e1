"""A small store to look at in the web view tests: one timeline, three detect tries.

Frames are the demo's two moving balls; try 1 detects both balls on every frame; try 2
(a scenario) changes exactly :data:`CHANGED` frames, one kind of change each; try 3's
scenario label and outputs carry script payloads that must show as text. A track stage
follows try 1, so the tree has five checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import attrs

from localckpt import Store
from localckpt.demo import synthetic_frames
from localckpt.web import make_server

W, H, N = 640, 360, 12
#: Frames where try 2 differs from try 1, and how.
CHANGED = {2: "moved", 5: "added", 7: "relabelled", 9: "rescored", 11: "removed"}
SCRIPT = '<script>alert("planted")</script><img src=x onerror="alert(1)">'


@attrs.frozen
class Sample:
    timeline: str
    root: str
    try1: str
    try2: str
    try3: str
    track: str

    @property
    def checkpoints(self) -> list[str]:
        return [self.root, self.try1, self.try2, self.try3, self.track]


def ball_boxes(seq: int) -> list[dict[str, Any]]:
    """Boxes around the demo's two balls in frame seq (its drawing formula)."""
    t = seq / (N - 1)
    out = []
    for cx, cy, r, label, score in (
        (0.1 + 0.8 * t, 0.3, 0.06, "ball", 0.91),
        (0.9 - 0.7 * t, 0.7 + 0.1 * math.sin(6 * t), 0.04, "ball", 0.78),
    ):
        x, y, rad = cx * W, cy * H, r * W
        out.append({"box": [round(x - rad, 1), round(y - rad, 1), round(x + rad, 1),
                            round(y + rad, 1)], "label": label, "score": score})
    return out


def _try2(seq: int) -> list[dict[str, Any]]:
    boxes = ball_boxes(seq)
    kind = CHANGED.get(seq)
    if kind == "moved":
        b = boxes[0]["box"]
        boxes[0] = {**boxes[0], "box": [b[0] + 9, b[1] + 6, b[2] + 9, b[3] + 6]}
    elif kind == "added":
        boxes.append({"box": [20.0, 250.0, 90.0, 330.0], "label": "person", "score": 0.55})
    elif kind == "relabelled":
        boxes[1] = {**boxes[1], "label": "moon"}
    elif kind == "rescored":
        boxes[0] = {**boxes[0], "score": 0.42}
    elif kind == "removed":
        boxes.pop(1)
    return boxes


def build(store: Store, frames: int = N) -> Sample:
    tl = store.create_timeline("match-<b>final</b>.mp4", "broadcast",
                               synthetic_frames(frames, W, H), fps=2.0)
    one = {"frames": [{"sequence": s, "detections": ball_boxes(s)} for s in range(frames)]}
    two = {"frames": {str(s): {"detections": _try2(s)} for s in range(frames)}}
    three = {"note": SCRIPT, "frames": [
        {"sequence": s, "detections": [{**b, "label": SCRIPT} for b in ball_boxes(s)]}
        for s in range(frames)]}
    try1 = store.save_stage_output(tl.id, None, "detect", one, config_overrides={"thr": 0.5},
                                   stats={"boxes": 2 * frames})
    try2 = store.save_stage_output(tl.id, None, "detect", two, config_overrides={"thr": 0.3},
                                   stats={"boxes": 2 * frames}, is_scenario=True,
                                   scenario_label="thr=0.3")
    try3 = store.save_stage_output(tl.id, None, "detect", three,
                                   config_overrides={"thr": 0.7, "model": SCRIPT},
                                   is_scenario=True, scenario_label=SCRIPT)
    track = store.save_stage_output(tl.id, try1, "track", {"tracks": [[0, 1, 2]],
                                                           "comment": SCRIPT},
                                    stats={"tracks": 1})
    return Sample(tl.id, tl.root_checkpoint_id, try1, try2, try3, track)


@contextlib.contextmanager
def serving(store: Store) -> Iterator[tuple[str, Any]]:
    """(base URL, server) of a web view of store on a free loopback port."""
    server = make_server(store, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
