"""Streaming frames (iter_frames): peak memory must not grow with the frame count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..configs import EMBEDDED
from ..model import Context, Goal, Sample, Subject, Workload
from ._common import frames_timeline

__all__ = ["STREAM"]

_REPO = Path(__file__).resolve().parents[2]
LIST_LABEL = f"{EMBEDDED} get_timeline_frames (all in memory)"


def probe(open_args: dict[str, Any], tid: str, mode: str, batch: int) -> Sample:
    """Run benchmarks.probe in a fresh interpreter; RSS growth above the opened store."""
    spec = json.dumps({"open": open_args, "timeline": tid, "mode": mode, "batch": batch})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(_REPO), os.environ.get("PYTHONPATH", "")) if p)}
    out = subprocess.run([sys.executable, "-m", "benchmarks.probe", spec], cwd=_REPO, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"probe failed: {out.stderr.strip()[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return Sample(r["seconds"], units=r["frames"], value=r["peak_rss"] - r["base_rss"],
                  extra={"peak RSS MB": r["peak_rss"] / 2**20})


def _build(ctx: Context, n: int) -> list[Subject]:
    batch = 4 if ctx.quick else 64
    subjects = []
    for cfg in ctx.configs:
        if not cfg.multiprocess:  # the probe process opens the store this process holds
            ctx.note(f"stream: {cfg.name} left out: its catalog takes one process at a time")
            continue
        _, tag, tid = frames_timeline(ctx, cfg, n)
        args = cfg.open_args(tag)
        subjects.append(Subject(cfg.name, lambda a=args, t=tid: probe(a, t, "stream", batch),
                                config=cfg.name))
        if cfg.name == EMBEDDED:
            subjects.append(Subject(LIST_LABEL, lambda a=args, t=tid: probe(a, t, "list", batch),
                                    role="reference", config=cfg.name))
    return subjects


STREAM = Workload(
    name="stream",
    title="Stream frames (iter_frames): peak RSS growth in a subprocess",
    unit="frames", size_name="frames", metric="rss",
    sizes=(100, 300, 1000), quick_sizes=(8, 16), reps=2, quick_reps=1,
    build=_build, baseline=LIST_LABEL,
    goals=(Goal("peak RSS flat in frame count (growth exponent <= 0.15)",
                lambda s: s != LIST_LABEL, "flat", 0.15),),
    notes=("Value: peak RSS of a fresh process after streaming minus its RSS once the store "
           "was open and the frame index read (ru_maxrss). iter_frames batch: 64 frames "
           "(4 in --quick). The reference row holds every decoded frame at once.",),
)
