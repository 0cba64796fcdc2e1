"""Store.iter_frames keeps peak memory flat in the frame count (measured in fresh processes).

Regression test for peak RSS that grew with the count: iter_frames made new decode threads
per batch, glibc gave them other malloc arenas, and each arena kept the pages of the frames
freed into it (duckdb+local: 203/300/540 MB at 100/300/1000 720p frames).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import localckpt

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"),
    reason="peak RSS reset needs Linux /proc/self/clear_refs",
)

H, W, N, BATCH = 720, 1280, 64, 32
FRAME_BYTES = H * W * 3

# Streams one timeline and prints the growth of peak RSS above the opened store.
_CHILD = r"""
import json, sys
import localckpt

def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

store = localckpt.open(sys.argv[1], create=True)
store.frame_index(sys.argv[2])
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # VmHWM := VmRSS
base = status("VmRSS")
count = sum(1 for _ in store.iter_frames(sys.argv[2], batch=int(sys.argv[3])))
print(json.dumps({"count": count, "growth": status("VmHWM") - base}))
"""


def _stream_growth(root: Path, timeline_id: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(root), timeline_id, str(BATCH)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["count"], r["growth"]


def test_iter_frames_peak_rss_is_flat_in_the_frame_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    pool = [np.clip(np.stack([128 + 100 * np.sin(xx / (40 + i)),
                              128 + 100 * np.cos(yy / (30 + i)),
                              128 + rng.normal(0, 6, xx.shape)], axis=-1),
                    0, 255).astype(np.uint8) for i in range(4)]
    root = tmp_path / "store"
    with localckpt.open(str(root), create=True) as store:
        tids = [store.create_timeline("v.mp4", "p", (pool[i % 4] for i in range(n))).id
                for n in (N, 4 * N)]
    (n1, small), (n4, large) = (_stream_growth(root, t) for t in tids)
    assert (n1, n4) == (N, 4 * N)
    # Before the fix: 111 MB at N, 181 MB at 4N. After: ~36 and ~40 MB.
    assert large - small < 8 * FRAME_BYTES, (
        f"peak RSS grew {(large - small) >> 20} MB from {N} to {4 * N} frames "
        f"({small >> 20} -> {large >> 20} MB)"
    )
    assert small < BATCH * FRAME_BYTES, f"peak {small >> 20} MB above one batch of frames"
