"""Stores to look at in the web view tests.

:func:`build`: one timeline, three detect tries. Frames are the demo's two moving balls;
try 1 detects both balls and a person standing at the top right corner (whose label text
must stay inside the image) on every frame; try 2 (a scenario, tagged ``best``) changes
exactly :data:`CHANGED` frames, one kind of change each; try 3's scenario label and
outputs carry script payloads that must show as text. A track stage follows try 1 (not
frame-keyed), then a ``mot`` stage: try 1's boxes, the balls with a ``track_id`` each;
and a merge of try 2 into the track stage (its ``merged_from`` edge crosses the track's
column). The tree has seven checkpoints.

:func:`big_tree`: a timeline whose tree has a given number of checkpoints (5,000 in the
tests), written in one catalog commit, with one tagged checkpoint deep inside.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import attrs

from localckpt import Store
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.demo import synthetic_frames
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Checkpoint
from localckpt.web import make_server

W, H, N = 640, 360, 12
#: Frames where try 2 differs from try 1, and how.
CHANGED = {2: "moved", 5: "added", 7: "relabelled", 9: "rescored", 11: "removed"}
SCRIPT = '<script>alert("planted")</script><img src=x onerror="alert(1)">'
#: A box at the top right corner: its label cannot go above it, nor run off to the right.
PERSON = {"box": [560.0, 2.0, 638.0, 150.0], "label": "person", "score": 0.88}


@attrs.frozen
class Sample:
    timeline: str
    root: str
    try1: str
    try2: str
    try3: str
    track: str
    mot: str
    merged: str

    @property
    def checkpoints(self) -> list[str]:
        return [self.root, self.try1, self.try2, self.try3, self.track, self.mot, self.merged]


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
    out.append(dict(PERSON))
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


def build(store: Store, frames: int = N, tag: str | None = "best") -> Sample:
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
    tracked = {"frames": [  # the balls are tracked, the person is not
        {"sequence": s, "detections": [{**b, "track_id": i + 1} if b["label"] == "ball"
                                       else b for i, b in enumerate(ball_boxes(s))]}
        for s in range(frames)]}
    mot = store.save_stage_output(tl.id, track, "mot", tracked, stats={"tracks": 2})
    if tag:
        store.tag(try2, tag)
    merged = store.merge(track, try2, strategy="ours")
    return Sample(tl.id, tl.root_checkpoint_id, try1, try2, try3, track, mot, merged)


def big_tree(store: Store, size: int, fanout: tuple[int, ...] = (40, 5, 25),
             tag: str = "needle", name: str = "") -> tuple[str, list[str], str]:
    """A timeline with size checkpoints (root included): fanout children per node,
    level by level (detect, track, ocr, ...), stopping at size; each a scenario with its
    own label and config. The last checkpoint made is tagged tag. Returns (timeline id,
    checkpoint ids oldest first, the tagged id)."""
    tl = store.create_timeline(name or f"tries-{size}.mp4", "sweep",
                               synthetic_frames(4, 64, 36), fps=2.0)
    root = store.get_checkpoint(tl.root_checkpoint_id)
    data = canonical_bytes({"frames": [{"sequence": 0, "detections": []}]})
    h = content_hash(data)
    made: list[Checkpoint] = []
    level = [root]
    stages = ["detect", "track", "ocr", "count", "score"]
    for depth, n in enumerate(fanout):
        stage = stages[depth % len(stages)]
        nxt = []
        for parent in level:
            for i in range(n):
                if len(made) + 1 >= size:
                    break
                c = Checkpoint(
                    id=new_id(), timeline_id=tl.id, parent_id=parent.id, stage=stage,
                    stage_hashes={**parent.stage_hashes, stage: h},
                    config_overrides={**parent.config_overrides, f"{stage}_thr": i},
                    stats={**parent.stats, f"{stage}_n": i}, is_scenario=True,
                    scenario_label=f"{stage} try {len(made)}", created_at=utcnow())
                made.append(c)
                nxt.append(c)
        level = nxt
    store.catalog.commit(Batch(checkpoints=made, outputs={h: data}))
    store.tag(made[-1].id, tag)
    return tl.id, [root.id] + [c.id for c in made], made[-1].id


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
