"""SIGKILL a worker at random points of its puts and its commit; resume; same output.

A child process (forked by runs_crash_worker.py) continues a run chunk by chunk and
commits it, printing each step; the parent picks a step at random (a put returned, the
commit began), waits a random few milliseconds more and kills the child with SIGKILL.
Then, in the parent:

- every part of the run is a whole chunk or absent (a put is all or nothing);
- ``get_run(id).todo()`` is what is missing; putting it and committing gives the same
  output hash as the uninterrupted run (the hash of save_stage_output's dict), also
  when the kill fell inside the commit (the next commit finishes it).

20 trials per backend by default, 100 under ``-m slow``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import KINDS
from runs_crash_worker import value

import localckpt
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.runs.location import StoreLocation

WORKER = str(Path(__file__).with_name("runs_crash_worker.py"))
ROOT = str(Path(__file__).resolve().parents[1])
CRASH_KINDS = [k for k in ("embedded", "postgres-local") if k in KINDS]
FRAMES, CHUNK = 48, 8
EXPECTED = content_hash(canonical_bytes({"frames": {str(s): value(s) for s in range(FRAMES)}}))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


class Zygote:
    """The worker process that forks one child per trial (runs_crash_worker.py)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=_child_env())
        self._read = b""

    def line(self, wait: float = 120.0) -> str:
        """The next line the worker said; AssertionError after wait seconds without one
        (a lost line must fail the test, not hang the suite)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + wait
        while b"\n" not in self._read:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no line from the worker in {wait} s (so far: {self._read!r})"
            chunk = os.read(fd, 4096)
            assert chunk, f"the worker process ended (exit code {self.proc.poll()})"
            self._read += chunk
        line, _, self._read = self._read.partition(b"\n")
        return line.decode().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def trial(self, job: dict[str, Any], target: str, delay: float) -> tuple[str, int]:
        """Start a child on job, kill it delay seconds after it said target; (its last
        line, its exit code)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        kind, pid = self.line().split()
        assert kind == "pid", kind
        last = ""
        while True:
            line = self.line()
            if line.startswith("exit "):
                return last, int(line.split()[2])
            last = line
            if line == target:
                time.sleep(delay)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)


def _trial(store: localckpt.Store, tid: str, zygote: Zygote, rng: random.Random) -> str:
    """One kill and resume; returns where the kill fell (the child's last line, and the
    run's state after it)."""
    run = store.begin_run(tid, None, "detect", version=uuid.uuid4().hex)
    loc = StoreLocation.of(store)
    job = {"url": loc.url, "run": run.id, "chunk": CHUNK,
           "kwargs": {"objects": loc.objects, "storage_options": dict(loc.storage_options),
                      **loc.options}}
    steps = ["ready", *[f"put {s}" for s in range(0, FRAMES, CHUNK)], "commit"]
    target = rng.choice(steps)
    last, code = zygote.trial(job, target, rng.uniform(0, 0.03 if target == "commit"
                                                       else 0.006))
    assert code in (0, -9), f"the child failed before it was killed (after {last!r})"
    state = store.get_run(run.id).state
    if state in ("open", "committing"):  # a put is all or nothing: whole chunks only
        parts = store._run_tables().parts(run.id)
        for first in range(0, FRAMES, CHUNK):
            chunk = set(range(first, min(first + CHUNK, FRAMES)))
            assert chunk <= parts.keys() or not chunk & parts.keys(), (first, sorted(parts))
    again = store.get_run(run.id)
    missing = again.todo()
    if state == "open":
        assert missing == [s for s in range(FRAMES) if s not in store._run_tables().parts(
            run.id)]
    again.put({s: value(s) for s in missing})
    cid = again.commit()
    assert store.get_checkpoint(cid).stage_hashes["detect"] == EXPECTED, (last, state)
    assert again.commit() == cid and again.state == "committed"
    return f"{last.split(' ')[0] or 'start'}/{state}"


def _run_trials(new_store: Any, kind: str, trials: int, seed: int) -> Counter[str]:
    store = new_store(kind)
    pixels = np.random.default_rng(seed).integers(0, 256, (FRAMES, 4, 4, 3), dtype=np.uint8)
    tl = store.create_timeline("v.mp4", "p", pixels, codec="png")  # distinct frames
    zygote = Zygote()
    try:
        phases = Counter(_trial(store, tl.id, zygote, random.Random(seed * 1000 + i))
                         for i in range(trials))
    finally:
        zygote.close()
    runs = store.runs(tl.id)
    assert len(runs) == trials and {r.state for r in runs} == {"committed"}
    assert len(store.checkpoints(tl.id)) == trials + 1  # one checkpoint per run, no more
    return phases


@pytest.mark.parametrize("kind", CRASH_KINDS)
def test_sigkill_during_puts_and_commit_then_resume(new_store: Any, kind: str) -> None:
    phases = _run_trials(new_store, kind, 20, seed=17)
    assert sum(n for p, n in phases.items() if not p.startswith("committed")) > 0, phases


@pytest.mark.slow
@pytest.mark.parametrize("kind", CRASH_KINDS)
def test_sigkill_during_puts_and_commit_then_resume_many(new_store: Any, kind: str) -> None:
    phases = _run_trials(new_store, kind, 100, seed=int.from_bytes(os.urandom(2), "big"))
    assert sum(n for p, n in phases.items() if not p.startswith("committed")) > 0, phases
