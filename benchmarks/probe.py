"""Peak-RSS probe, run in a fresh subprocess: ``python -m benchmarks.probe '<json>'``.

Opens the store and reads the frame index, resets the kernel's peak-RSS mark (writing 5
to /proc/self/clear_refs sets VmHWM to the current RSS), then streams (iter_frames) or lists
(get_timeline_frames) every frame while dropping them, and prints one JSON line:
{"seconds", "frames", "base_rss", "peak_rss"} in bytes. Without /proc (not Linux) the peak
is ru_maxrss, which also counts start-up.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> int:
    """Reset the peak mark if the kernel allows; return the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return _status("VmRSS") or _maxrss()


def _maxrss() -> int:
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    from .configs import open_from_args

    store = open_from_args(spec["open"])
    tid = spec["timeline"]
    store.frame_index(tid)
    base = _reset_peak()
    t0 = time.perf_counter()
    count = 0
    if spec["mode"] == "stream":
        for frame in store.iter_frames(tid, batch=spec["batch"]):
            count += frame.image.shape[0] > 0
    else:
        frames = store.get_timeline_frames(tid)
        count = len(frames)
        del frames
    seconds = time.perf_counter() - t0
    store.close()
    print(json.dumps({"seconds": seconds, "frames": count, "base_rss": base,
                      "peak_rss": _maxrss()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
