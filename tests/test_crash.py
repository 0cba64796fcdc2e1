"""SIGKILL at random points: nothing committed is lost, nothing partial is visible.

A child process (crash_worker.py) runs one operation in a loop (create_timeline, save,
merge, sync, prune, gc) against a store and reports every write that returned; it is
killed at a random moment. Then, on a freshly opened store:

- every reported write is there (timelines with all their frames, checkpoints with
  their outputs) and every reported deletion holds;
- verify finds no damage (leftovers that gc collects are allowed);
- after all trials, gc collects every leftover: verify then reports nothing at all.

Conversion too: a child opens a copy of the format-2 fixture (an embedded store of the
old log engine), which converts it to the SQLite catalog, and is killed at a random
moment. The store then opens (converting again if the kill came first), every record
and output is equal to the fixture's ``expected.json``, the old files are gone and
verify is clean.

The default run kills a few times per operation on the embedded store and on
PostgreSQL; ``-m slow`` (``nox -s slow``) runs 50 trials per operation per backend.
"""

from __future__ import annotations

import base64
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _slow import require_slow
from conftest import KINDS

import localckpt
from localckpt.errors import NotFoundError
from localckpt.gc import collect_garbage
from localckpt.schema import to_dict

WORKER = str(Path(__file__).with_name("crash_worker.py"))
FORMAT2 = Path(__file__).parent / "fixtures" / "legacy" / "format2"
OPS = ("create_timeline", "save", "merge", "sync", "prune", "gc")
CRASH_KINDS = [k for k in ("embedded", "embedded-s3", "postgres-local", "postgres-s3")
               if k in KINDS]
QUICK = {"embedded": 2, "postgres-local": 1}  # trials per operation in the default run
QUICK_CONVERSIONS = 3
SLOW_TRIALS = 50
_KILL_WITHIN = 0.6  # seconds after the child is ready (grows while no write completes)
_KILL_WITHIN_MAX = 10.0


def _location(kind: str, request: pytest.FixtureRequest, tmp: Path) -> tuple[str, dict[str, Any]]:
    """Where a store of this kind lives, as open() arguments a child process can use."""
    kwargs: dict[str, Any] = {}
    if kind.endswith("-s3"):
        base, opts = request.getfixturevalue("s3_base")
        kwargs |= {"objects": f"{base}/{uuid.uuid4().hex}", "storage_options": opts}
    if kind.startswith("postgres"):
        dsn = request.getfixturevalue("pg_dsn")
        schema = f"crash_{uuid.uuid4().hex[:12]}"
        kwargs["schema"] = schema
        kwargs.setdefault("objects", str(tmp / "objects"))
        request.addfinalizer(lambda: _drop_schema(dsn, schema))
        return dsn, kwargs
    return str(tmp / "store"), kwargs


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run_and_kill(args: dict[str, Any], rng: random.Random, within: float
                  ) -> list[list[str]]:
    """Start the worker, kill it with SIGKILL at a random moment within `within` seconds
    of its start, return its reports (complete lines only: the kill may cut the last)."""
    proc = subprocess.Popen([sys.executable, WORKER, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(WORKER))
    assert proc.stdout is not None and proc.stderr is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"worker did not start: {line!r} {proc.stderr.read()[-2000:]}")
    time.sleep(rng.uniform(0.0, within))
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != -signal.SIGKILL:  # it died on its own: a bug, not our kill
        raise AssertionError(f"worker exited with {proc.returncode}: {err[-3000:]}")
    complete = out.split("\n")[:-1]  # what follows the last newline may be cut short
    return [ln.split() for ln in complete if ln.strip()]


def _check_reported(store: localckpt.Store, reports: list[list[str]]) -> None:
    for what, ident in reports:
        if what == "timeline":
            tl = store.get_timeline(ident)
            assert len(store.get_timeline_frames(ident)) == tl.frame_count
        elif what == "checkpoint":
            c = store.get_checkpoint(ident)
            assert dict(c.stage_outputs).keys() == set(c.stage_hashes)  # outputs load
        elif what == "pruned":
            with pytest.raises(NotFoundError):
                store.get_checkpoint(ident)
        elif what == "deleted":
            with pytest.raises(NotFoundError):
                store.get_timeline(ident)


def _crash_trials(op: str, kind: str, trials: int, request: pytest.FixtureRequest,
                  tmp: Path) -> None:
    url, kwargs = _location(kind, request, tmp)
    rng = random.Random(f"{op}-{kind}")
    with localckpt.open(url, create=True, **kwargs) as store:
        tl = store.create_timeline("v.mp4", "p", [np.zeros((8, 8, 3), np.uint8)] * 3,
                                   codec="png")
        state: dict[str, Any] = {"timeline": tl.id, "root": tl.root_checkpoint_id}
    if op == "sync":
        src_url = str(tmp / "source")
        with localckpt.open(src_url, create=True) as src:
            stl = src.create_timeline("s.mp4", "p", [np.ones((8, 8, 3), np.uint8)] * 3,
                                      codec="png")
        state |= {"src_url": src_url, "src_kwargs": {}, "src_timeline": stl.id,
                  "src_root": stl.root_checkpoint_id}
    seen: list[list[str]] = []
    within = _KILL_WITHIN
    for trial in range(trials):
        args = {"url": url, "kwargs": kwargs, "op": op, "seed": trial, "state": state}
        reports = _run_and_kill(args, rng, within)
        if not reports:  # slow operations (a sync to S3): give the next trial longer
            within = min(within * 1.5, _KILL_WITHIN_MAX)
        seen += reports
        with localckpt.open(url, **kwargs) as store:
            _check_reported(store, reports)  # this trial's; every trial's at the end
            report = store.verify()
            assert report.ok, (trial, [p.message for p in report.damage])
    with localckpt.open(url, **kwargs) as store:
        collect_garbage(store, older_than=0, lease_ttl=0, grace=0)
        report = store.verify()
        assert report.problems == (), [p.message for p in report.problems]
        _check_reported(store, seen)
    assert seen or trials < 3, "no write completed in any trial: kill later"


@pytest.mark.parametrize("kind", [k for k in CRASH_KINDS if k in QUICK])
@pytest.mark.parametrize("op", OPS)
def test_kill_at_random_points(op: str, kind: str, request: pytest.FixtureRequest,
                               tmp_path: Path) -> None:
    _crash_trials(op, kind, QUICK[kind], request, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", CRASH_KINDS)
@pytest.mark.parametrize("op", OPS)
def test_kill_at_random_points_50_times(op: str, kind: str, request: pytest.FixtureRequest,
                                        tmp_path: Path) -> None:
    require_slow(request)
    _crash_trials(op, kind, SLOW_TRIALS, request, tmp_path)


# -- conversion of an old store ---------------------------------------------------------------


def _as_expected(store: localckpt.Store, hashes: list[str]) -> dict[str, object]:
    """The store's records, and its outputs of these hashes, in the form of the
    fixture's expected.json."""
    cat = store.catalog
    timelines = cat.timelines()
    checkpoints = [c for t in timelines for c in cat.tree(t.id)]
    return {
        "timelines": [to_dict(t) for t in timelines],
        "checkpoints": sorted((to_dict(c) for c in checkpoints), key=lambda d: d["id"]),
        "tombstones": [to_dict(x) for x in cat.tombstones(None)],
        "tags": [to_dict(g) for g in cat.tags(None)],
        "outputs": {h: base64.b64encode(b).decode() for h, b in cat.outputs(hashes).items()},
    }


def _conversion_trials(trials: int, tmp: Path) -> dict[str, int]:
    want = json.loads((FORMAT2 / "expected.json").read_text("utf-8"))
    want = {k: want[k] for k in ("timelines", "checkpoints", "tombstones", "tags", "outputs")}
    text = json.dumps(want, sort_keys=True)
    rng = random.Random("conversion")
    outcomes = {"killed before the marker": 0, "killed after": 0}
    for trial in range(trials):
        root = tmp / f"store{trial}"
        shutil.copytree(FORMAT2 / "store", root)
        args = {"url": str(root), "kwargs": {}, "op": "conversion", "seed": trial, "state": {}}
        _run_and_kill(args, rng, 1.0)
        marker = json.loads((root / "LOCALCKPT.json").read_text())
        outcomes["killed after" if marker["format"] == 3 else "killed before the marker"] += 1
        with localckpt.open(root) as store:  # converts now if the kill came first
            got = _as_expected(store, list(want["outputs"]))
            assert json.dumps(got, sort_keys=True) == text, trial
            report = store.verify()
            assert report.ok, (trial, [p.message for p in report.damage])
        assert json.loads((root / "LOCALCKPT.json").read_text())["format"] == 3
        assert not (root / "catalog").exists(), "the old catalog files stayed"
        assert not list(root.glob("catalog.sqlite.tmp-*")), "a temporary catalog stayed"
        shutil.rmtree(root)
    return outcomes


def test_kill_a_conversion_at_random_points(tmp_path: Path) -> None:
    _conversion_trials(QUICK_CONVERSIONS, tmp_path)


@pytest.mark.slow
def test_kill_a_conversion_at_random_points_50_times(request: pytest.FixtureRequest,
                                                     tmp_path: Path) -> None:
    require_slow(request)
    outcomes = _conversion_trials(SLOW_TRIALS, tmp_path)
    assert outcomes["killed before the marker"] > 0, outcomes  # some kills hit it
