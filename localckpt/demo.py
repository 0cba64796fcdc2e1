"""The demo job: a synthetic video, a toy two-stage pipeline, two config tries.

``localckpt demo`` runs it on the embedded default store and prints the tree, showing
the whole idea in a few seconds with nothing to install or start.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .store import Store
from .types import Timeline

__all__ = ["detect", "run_demo", "synthetic_frames", "track"]

_GRID = (18, 32)  # detection grid: rows x columns


def synthetic_frames(count: int = 24, width: int = 640, height: int = 360) -> list[np.ndarray]:
    """Frames of two bright balls moving over a dark gradient (deterministic)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = (40 + 40 * xx / width).astype(np.float32)
    frames = []
    for i in range(count):
        t = i / max(count - 1, 1)
        img = np.repeat(background[:, :, None], 3, axis=2)
        for cx, cy, r, color in (
            (0.1 + 0.8 * t, 0.3, 0.06, (250, 230, 60)),
            (0.9 - 0.7 * t, 0.7 + 0.1 * np.sin(6 * t), 0.04, (200, 200, 255)),
        ):
            mask = (xx - cx * width) ** 2 + (yy - cy * height) ** 2 <= (r * width) ** 2
            img[mask] = color
        frames.append(img.astype(np.uint8))
    return frames


def detect(frames: list[np.ndarray], threshold: float) -> dict[str, Any]:
    """Toy detector: grid cells whose mean brightness exceeds threshold (0..1)."""
    rows, cols = _GRID
    per_frame = []
    for seq, img in enumerate(frames):
        gray = img.mean(axis=2)
        h, w = gray.shape
        cells = gray[: h // rows * rows, : w // cols * cols].reshape(
            rows, h // rows, cols, w // cols
        ).mean(axis=(1, 3)) / 255.0
        per_frame.append({"sequence": seq,
                          "boxes": _blobs(cells > threshold, cells, w // cols, h // rows)})
    return {"threshold": threshold, "frames": per_frame}


def _blobs(mask: np.ndarray, cells: np.ndarray, cell_w: int, cell_h: int,
           ) -> list[dict[str, Any]]:
    """Connected groups of bright cells (4-neighbour flood fill), one box each.

    x, y, w, h are in grid cells (the tracker's units); "box" is [x1, y1, x2, y2] in
    pixels with a "label", the detection convention that frame_diff and the web view read.
    """
    seen = np.zeros_like(mask)
    boxes = []
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        stack, members = [(int(y0), int(x0))], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            members.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] \
                        and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        ys = [m[0] for m in members]
        xs = [m[1] for m in members]
        boxes.append({
            "x": round(sum(xs) / len(xs), 2), "y": round(sum(ys) / len(ys), 2),
            "w": max(xs) - min(xs) + 1, "h": max(ys) - min(ys) + 1,
            "score": round(float(max(cells[m] for m in members)), 3),
            "box": [min(xs) * cell_w, min(ys) * cell_h, (max(xs) + 1) * cell_w,
                    (max(ys) + 1) * cell_h],
            "label": "ball",
        })
    return boxes


def track(detections: dict[str, Any], max_jump: float = 3.0) -> dict[str, Any]:
    """Toy tracker: link each box to the nearest box of the previous frame."""
    tracks: list[list[tuple[int, float, float]]] = []
    open_tracks: list[int] = []
    for frame in detections["frames"]:
        next_open = []
        for box in frame["boxes"]:
            x, y = box["x"], box["y"]
            best, best_d = None, max_jump
            for ti in open_tracks:
                _, px, py = tracks[ti][-1]
                d = ((px - x) ** 2 + (py - y) ** 2) ** 0.5
                if d <= best_d and ti not in next_open:
                    best, best_d = ti, d
            if best is None:
                tracks.append([])
                best = len(tracks) - 1
            tracks[best].append((frame["sequence"], x, y))
            next_open.append(best)
        open_tracks = next_open
    long_tracks = [t for t in tracks if len(t) >= 3]
    return {
        "tracks": [{"id": i, "points": [list(p) for p in t]} for i, t in enumerate(long_tracks)],
    }


#: Frames the demo makes at most: it decodes and keeps them all in memory.
MAX_DEMO_FRAMES = 10_000


def run_demo(store: Store, frame_count: int = 24) -> tuple[Timeline, list[str]]:
    """Ingest a synthetic video, run detect -> track with two thresholds; return the leaves.
    frame_count: 1 to MAX_DEMO_FRAMES (the demo holds every frame in memory)."""
    from .arguments import integer

    frame_count = integer(frame_count, "the demo's frame count (--frames)", low=1,
                          high=MAX_DEMO_FRAMES)
    frames = synthetic_frames(frame_count)
    tl = store.create_timeline("synthetic://two-balls", "demo", frames, fps=2.0)
    loaded = [f.image for f in store.get_timeline_frames(tl.id)]
    leaves = []
    for i, threshold in enumerate((0.55, 0.8)):
        dets = detect(loaded, threshold)
        n_boxes = sum(len(f["boxes"]) for f in dets["frames"])
        d = store.save_stage_output(
            tl.id, None, "detect", dets, config_overrides={"threshold": threshold},
            stats={"boxes": n_boxes}, is_scenario=i > 0,
            scenario_label=f"threshold={threshold}",
        )
        tracks = track(store.load_stage_output(d, "detect") or dets)
        leaves.append(
            store.save_stage_output(
                tl.id, d, "track", tracks, config_overrides={"max_jump": 3.0},
                stats={"tracks": len(tracks["tracks"])},
            )
        )
    return tl, leaves
