"""Stage runs: what durability, the memo, resume and workers cost, as ratios in one run.

Rows (labels start with the store configuration):

- overhead: n frames x 5 boxes written by ``put`` in chunks of 100, then committed, vs
  one ``save_stage_output`` of the same output (goal: at most 1.5x its time); with the
  memo on (the default) and off;
- memo: a first run of a stage costing 5 ms per frame, then a second run over the same
  frames with the same key (goal: at most 2% of the first's wall time);
- resume: the same stage, its worker SIGKILLed once half the frames are written, then
  resumed in another process (goal: the killed worker's time from its start plus the
  resume's at most 55% over an uninterrupted run);
- scale-out: a CPU-bound stage of 20 ms per frame on 1 and on 2 worker processes
  (goal: 2 at least 1.7x as fast; it needs two idle cores);
- 8 workers over PostgreSQL + S3 (postgres+s3 only): parts written per second; they
  must finish without errors.

The stage rows use min(n, 1000) frames (scale-out min(n, 200), 8 workers min(n, 2000),
named in their labels) and run on the first configuration only (its embedded store when
there is one): their cost is the stage's, the same on every store.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from ..configs import StoreConfig, open_from_args
from ..model import Context, Goal, Sample, Subject, Workload
from ._common import cached, shared_store

__all__ = ["STAGE_RUNS"]

_SPAWN = mp.get_context("spawn")
_FORK = mp.get_context("fork")
_CHUNK = 100


# -- stages (module level: worker processes import them) -------------------------------------


def stage_5ms(frames: list[Any]) -> dict[int, Any]:
    """A stage that waits 5 ms per frame (a model on another device)."""
    time.sleep(0.005 * len(frames))
    return {f.sequence: {"score": round(float(f.image.mean()), 3)} for f in frames}


def stage_20ms_cpu(frames: list[Any]) -> dict[int, Any]:
    """A CPU-bound stage: 20 ms of this process's CPU per frame."""
    out = {}
    for f in frames:
        end = time.process_time() + 0.020
        x = 0
        while time.process_time() < end:
            x += 1
        out[f.sequence] = {"mean": round(float(f.image.mean()), 3)}
    return out


def stage_trivial(frames: list[Any]) -> dict[int, Any]:
    return {f.sequence: {"n": f.sequence} for f in frames}


def _resume_child(args: dict[str, Any], run_id: str, ready: Any) -> None:
    """The worker that gets killed: opens the store, says so, computes the run."""
    store = open_from_args(args)
    run = store.get_run(run_id)
    run.todo()  # the run's keys and frame index, read before the clock starts
    ready.put(time.perf_counter())
    run.map(stage_5ms, chunk_size=64)
    ready.put("done")


# -- data ----------------------------------------------------------------------------------


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)


def _values(n: int, rep: int) -> dict[int, Any]:
    """n frames x 5 boxes (as the large-output workloads), distinct per rep."""
    rnd = random.Random(n)
    return {i: {"rep": rep, "detections": [
        {"box": [rnd.uniform(0, 1280), rnd.uniform(0, 720), rnd.uniform(0, 1280),
                 rnd.uniform(0, 720)], "label": rnd.choice(("player", "ball", "ref")),
         "score": rnd.random()} for _ in range(5)]} for i in range(n)}


def _timeline(ctx: Context, cfg: StoreConfig, n: int) -> tuple[Any, str, str]:
    store, tag = shared_store(ctx, cfg, "stage_runs")
    tid = cached(ctx, f"stage_runs:{cfg.name}:{n}", lambda: str(
        store.create_timeline("bench.mp4", "bench", _pixels(n), codec="png").id))
    return store, tag, tid


_reps = iter(range(1 << 30))


def _sample(t0: float, c0: float, units: int) -> Sample:
    """Wall time since t0, and this process's CPU seconds since c0 (what the row costs
    without the waits a loaded machine adds; the store's work is all in this process
    on the embedded store)."""
    return Sample(time.perf_counter() - t0, units=units,
                  extra={"CPU s": time.process_time() - c0})


# -- rows ----------------------------------------------------------------------------------


def _overhead(ctx: Context, cfg: StoreConfig, n: int) -> list[Subject]:
    store, _, tid = _timeline(ctx, cfg, n)
    base = f"{cfg.name} save_stage_output (one call)"

    def save() -> Sample:
        values = _values(n, next(_reps))
        t0, c0 = time.perf_counter(), time.process_time()
        store.save_stage_output(tid, None, "detect", {"frames": {str(s): v for s, v in
                                                                 values.items()}})
        return _sample(t0, c0, n)

    def put_commit(memo: bool) -> Sample:
        rep = next(_reps)
        values = _values(n, rep)
        t0, c0 = time.perf_counter(), time.process_time()
        run = store.begin_run(tid, None, "detect", version=f"rep{rep}", memo=memo)
        for i in range(0, n, _CHUNK):
            run.put({s: values[s] for s in range(i, min(i + _CHUNK, n))})
        run.commit()
        return _sample(t0, c0, n)

    return [Subject(base, save, role="reference", config=cfg.name),
            Subject(f"{cfg.name} run: put x{_CHUNK} + commit", lambda: put_commit(True),
                    config=cfg.name),
            Subject(f"{cfg.name} run: put x{_CHUNK} + commit, memo=False",
                    lambda: put_commit(False), config=cfg.name)]


def _stage_rows(ctx: Context, cfg: StoreConfig, n: int) -> list[Subject]:
    m = min(n, 1000)
    store, tag, tid = _timeline(ctx, cfg, m)
    args = cfg.open_args(tag)

    def first() -> Sample:
        t0 = time.perf_counter()
        run = store.begin_run(tid, None, "score", version=f"rep{next(_reps)}")
        run.map(stage_5ms, chunk_size=64)
        run.commit()
        return Sample(time.perf_counter() - t0, units=m)

    def second() -> Sample:
        version = f"rep{next(_reps)}"
        made = store.begin_run(tid, None, "score", version=version)  # the memo, untimed
        made.map(lambda fs: {f.sequence: {"score": round(float(f.image.mean()), 3)}
                             for f in fs}, chunk_size=256)
        made.commit()
        t0, c0 = time.perf_counter(), time.process_time()
        run = store.begin_run(tid, None, "score", version=version)
        computed = run.map(stage_5ms, chunk_size=64)
        run.commit()
        sample = _sample(t0, c0, m)
        assert computed == 0 and run.memo_hits == m
        return sample

    def uninterrupted() -> Sample:
        run = store.begin_run(tid, None, "score", memo=False)
        run.todo()  # as the killed worker: keys and frame index before the clock
        t0 = time.perf_counter()
        run.map(stage_5ms, chunk_size=64)
        run.commit()
        return Sample(time.perf_counter() - t0, units=m)

    def killed_and_resumed() -> Sample:
        run = store.begin_run(tid, None, "score", memo=False)
        ready = _SPAWN.Queue()
        child = _SPAWN.Process(target=_resume_child, args=(args, run.id, ready))
        child.start()
        try:
            started = ready.get(timeout=120)
            while run.done < m // 2:
                if not child.is_alive():
                    raise RuntimeError(f"the worker ended early ({child.exitcode})")
                time.sleep(0.01)
            child.kill()
            child.join()
            killed = time.perf_counter()
        finally:
            if child.is_alive():
                child.kill()
                child.join()
        t0 = time.perf_counter()
        again = store.get_run(run.id)
        redo = again.map(stage_5ms, chunk_size=64)
        again.commit()
        resumed = time.perf_counter() - t0
        return Sample(killed - started + resumed, units=m, extra={"frames resumed": redo})

    k = min(n, 40 if ctx.quick else 200)
    _, _, tk = _timeline(ctx, cfg, k)

    def scale(workers: int) -> Sample:
        run = store.begin_run(tk, None, "mean", memo=False)
        run.todo()
        t0 = time.perf_counter()
        with ProcessPoolExecutor(workers, mp_context=_FORK) as pool:
            run.map(stage_20ms_cpu, pool, chunk_size=10)
        run.commit()
        return Sample(time.perf_counter() - t0, units=k)

    c = cfg.name
    return [
        Subject(f"{c} memo: first run, {m} frames x 5 ms", first, role="reference", config=c),
        Subject(f"{c} memo: second run, same key", second, config=c),
        Subject(f"{c} resume: uninterrupted, {m} frames x 5 ms", uninterrupted,
                role="reference", config=c),
        Subject(f"{c} resume: SIGKILL at 50% + resume", killed_and_resumed, config=c),
        Subject(f"{c} scale: 1 worker process, {k} frames x 20 ms CPU", lambda: scale(1),
                role="reference", config=c),
        Subject(f"{c} scale: 2 worker processes", lambda: scale(2), config=c),
    ]


def _eight_workers(ctx: Context, cfg: StoreConfig, n: int) -> list[Subject]:
    p = min(n, 2000)
    store, _, tid = _timeline(ctx, cfg, p)
    secrets = {k: v for k, v in cfg.open_args("x")["storage_options"].items()
               if k in ("key", "secret")}

    def run_eight() -> Sample:
        import json

        os.environ["LOCALCKPT_STORAGE_OPTIONS"] = json.dumps(secrets)  # the workers' own
        run = store.begin_run(tid, None, "n", memo=False)
        run.todo()
        t0 = time.perf_counter()
        with ProcessPoolExecutor(8, mp_context=_FORK) as pool:
            written = run.map(stage_trivial, pool, chunk_size=25)
        run.commit()
        seconds = time.perf_counter() - t0
        assert written == p and run.state == "committed"
        return Sample(seconds, units=p)

    return [Subject(f"{cfg.name} 8 worker processes, {p} frames (parts/s)", run_eight,
                    config=cfg.name)]


def _build(ctx: Context, n: int) -> list[Subject]:
    subjects: list[Subject] = []
    for cfg in ctx.configs:
        subjects += _overhead(ctx, cfg, n)
    # The embedded store first; never DuckDB (one process: no workers, no resume elsewhere).
    local = ([c for c in ctx.configs if c.catalog == "sqlite"]
             or [c for c in ctx.configs if c.multiprocess])
    if local:
        subjects += _stage_rows(ctx, local[0], n)
    for cfg in ctx.configs:
        if cfg.name == "postgres+s3":
            subjects += _eight_workers(ctx, cfg, n)
    return subjects


def _baseline(label: str) -> str | None:
    config = label.split(" ", 1)[0]
    for row, base in (("run: put", "save_stage_output (one call)"),
                      ("memo: second", "memo: first run"),
                      ("resume: SIGKILL", "resume: uninterrupted"),
                      ("scale: 2", "scale: 1 worker")):
        if f" {row}" in label:
            return _match(config, base)
    return None


_LABELS: dict[str, str] = {}


def _match(config: str, prefix: str) -> str:
    """The full label of config's row starting with prefix (labels name their sizes)."""
    return _LABELS.get(f"{config} {prefix}", f"{config} {prefix}")


def _remember_labels(subjects: list[Subject]) -> list[Subject]:
    for s in subjects:
        config, rest = s.label.split(" ", 1)
        for prefix in ("save_stage_output (one call)", "memo: first run",
                       "resume: uninterrupted", "scale: 1 worker"):
            if rest.startswith(prefix):
                _LABELS[f"{config} {prefix}"] = s.label
    return subjects


GOALS = (
    Goal("put in chunks of 100 + commit <= 1.5x one save_stage_output",
         lambda s: " run: put" in s, "cost", 1.5),
    Goal("a second run over the same frames and key <= 2% of the first",
         lambda s: " memo: second" in s, "cost", 0.02),
    Goal("SIGKILL at 50% + resume <= 1.55x the uninterrupted run",
         lambda s: " resume: SIGKILL" in s, "cost", 1.55),
    Goal("2 worker processes >= 1.7x one (CPU-bound 20 ms/frame)",
         lambda s: " scale: 2" in s, "rate", 1.7),
)

STAGE_RUNS = Workload(
    name="stage_runs",
    title="Stage runs: put + commit overhead, memo, resume after SIGKILL, worker processes",
    unit="frames", size_name="frames", sizes=(10000,), quick_sizes=(100,),
    reps=3, quick_reps=1, build=lambda ctx, n: _remember_labels(_build(ctx, n)),
    baseline=None, baseline_for=_baseline, goals=GOALS,
    notes=("Stage rows run on the first configuration only (the stage's cost is the same on "
           "every store); scale-out needs two idle cores: read it with the load average.",),
)
