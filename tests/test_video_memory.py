"""ingest_video keeps peak memory flat in the video's length (measured in fresh processes).

Every frame of a generated 720p H.264 video is ingested (fps=None: the most frames per
second of video there can be). Peak RSS above a warmed-up process (store open, PyAV
loaded, one short ingest done) must not grow with the number of frames: frames stream
from the decoder through the encoder threads and none is kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localckpt.testing.videos import write_video

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"),
    reason="peak RSS reset needs Linux /proc/self/clear_refs",
)

W, H = 1280, 720
FRAME_BYTES = W * H * 3

_CHILD = r"""
import json, sys
import localckpt
from localckpt.testing.rss import peak, reset_peak

store = localckpt.open(sys.argv[1], create=True)
store.ingest_video(sys.argv[2], fps=None)  # warm-up: codecs, threads, allocator arenas
base = reset_peak()
tl = store.ingest_video(sys.argv[3], fps=None)
print(json.dumps({"frames": tl.frame_count, "growth": peak() - base}))
"""


def _growth(tmp: Path, warm: Path, video: Path) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(tmp / f"store-{video.stem}"),
                          str(warm), str(video)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["frames"], r["growth"]


def _check_flat(tmp: Path, short: int, long: int) -> None:
    warm = tmp / "warm.mp4"
    write_video(warm, 8, size=(W, H))
    videos = [tmp / f"v{n}.mp4" for n in (short, long)]
    for path, n in zip(videos, (short, long), strict=True):
        write_video(path, n, size=(W, H))
    (n1, small), (n2, large) = (_growth(tmp, warm, v) for v in videos)
    assert (n1, n2) == (short, long)
    assert large - small < 8 * FRAME_BYTES, (
        f"peak RSS grew {(large - small) >> 20} MB from {short} to {long} frames "
        f"({small >> 20} -> {large >> 20} MB)"
    )
    # a few batches at most: the encoder queue, each encoder's frame and Pillow copy,
    # the decoder's own frames
    assert small < 32 * FRAME_BYTES, f"peak {small >> 20} MB above the warmed-up process"


def test_ingest_peak_rss_is_flat_in_the_video_length(tmp_path: Path) -> None:
    _check_flat(tmp_path, 40, 160)


@pytest.mark.slow
def test_ingest_peak_rss_is_flat_for_a_long_video(tmp_path: Path) -> None:
    _check_flat(tmp_path, 100, 1500)
