"""Deterministic synthetic inputs: video-like frames and JSON stage outputs of a given size.

Frames look like broadcast video to a JPEG encoder (smooth gradients, a few flat shapes,
mild sensor noise), so encoded sizes and codec speed are realistic (~150-250 KB at q90
for 1280x720), unlike random noise, which is both slower and far larger.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["FramePool", "make_output", "output_bytes"]

WIDTH, HEIGHT = 1280, 720


class FramePool:
    """A small pool of distinct frames, cycled to feed timelines of any length."""

    def __init__(self, count: int = 8, width: int = WIDTH, height: int = HEIGHT) -> None:
        rng = np.random.default_rng(20261125)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.frames: list[np.ndarray] = []
        for i in range(count):
            base = np.stack(
                [
                    96 + 80 * np.sin(xx / (150 + 10 * i) + i),
                    110 + 70 * np.cos(yy / (120 + 7 * i) - i),
                    128 + 60 * np.sin((xx + yy) / (210 + 5 * i)),
                ],
                axis=-1,
            )
            for _ in range(12):  # players / graphics: flat boxes
                x0, y0 = int(rng.integers(0, width - 120)), int(rng.integers(0, height - 160))
                w, h = int(rng.integers(20, 120)), int(rng.integers(40, 160))
                base[y0:y0 + h, x0:x0 + w] = rng.integers(0, 255, 3)
            base += rng.normal(0, 4, base.shape).astype(np.float32)
            self.frames.append(np.clip(base, 0, 255).astype(np.uint8))

    def take(self, n: int) -> Iterator[np.ndarray]:
        """n frames (the pool cycled); arrays are shared, callers must not modify them."""
        for i in range(n):
            yield self.frames[i % len(self.frames)]


def make_output(tag: str, nbytes: int) -> dict[str, Any]:
    """A detection-like JSON object whose compact JSON is about nbytes, distinct per tag."""
    rng = np.random.default_rng(zlib.crc32(tag.encode()))
    out: dict[str, Any] = {"tag": tag, "model": "det-v3", "detections": []}
    size = len(json.dumps(out, separators=(",", ":")))
    dets = out["detections"]
    while size < nbytes:
        box = [round(float(v), 2) for v in rng.uniform(0, 1280, 4)]
        det = {"f": int(rng.integers(0, 10_000)), "box": box,
               "score": round(float(rng.uniform()), 4), "label": "player"}
        dets.append(det)
        size += len(json.dumps(det, separators=(",", ":"))) + 1
    return out


def output_bytes(value: dict[str, Any]) -> int:
    """Size of value as compact JSON (what a content-addressed store keeps once)."""
    return len(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())
