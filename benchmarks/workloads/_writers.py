"""Running writer processes (``benchmarks.procs``) together and summarising their saves."""

from __future__ import annotations

import math
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..model import Sample

__all__ = ["Writers", "percentile", "run_writers"]

_MP = mp.get_context("spawn")
START_TIMEOUT = 600.0  # 48 interpreters importing localckpt on 2 busy cores
RUN_TIMEOUT = 1800.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Writers:
    """What the writers of one run did."""

    results: list[dict[str, Any]]
    wall: float  # first start to last end
    probes: dict[str, float] = field(default_factory=dict)  # figures taken while they ran

    @property
    def saves(self) -> int:
        return sum(len(r["seconds"]) for r in self.results)

    @property
    def errors(self) -> int:
        return sum(int(r["errors"]) for r in self.results)

    @property
    def messages(self) -> list[str]:
        return [m for r in self.results for m in r["messages"]]

    def latencies(self, start: float = -math.inf, end: float = math.inf) -> list[float]:
        """Durations of the saves that ran (even partly) within [start, end]."""
        return [d for r in self.results for s, d in zip(r["starts"], r["seconds"], strict=True)
                if s <= end and s + d >= start]

    def sample(self, **extra: float) -> Sample:
        """Aggregate rate over the wall time; latency percentiles and errors as details."""
        lat = self.latencies()
        ok = self.saves - self.errors
        return Sample(self.wall, units=max(ok, 0), extra={
            "errors": float(self.errors), "p50 ms": percentile(lat, 50) * 1e3,
            "p99 ms": percentile(lat, 99) * 1e3, **self.probes, **extra})


def run_writers(target: Callable[..., None], args: Callable[[int], tuple[Any, ...]], count: int,
                *, continuous: Callable[[], None] | None = None,
                sample_every: tuple[float, Callable[[], dict[str, float]]] | None = None,
                at_end: Callable[[], dict[str, float]] | None = None) -> Writers:
    """Start `count` writer processes target(*args(i), barrier, results, stop, hold),
    release them together and collect their results.

    continuous: the writers save until this callable (run here once they are released)
    returns. sample_every: (seconds, probe) polled while they save (figures kept at their
    maximum). at_end: called once every writer has saved and still holds its store open.
    """
    barrier = _MP.Barrier(count + 1)
    hold = _MP.Barrier(count + 1) if at_end is not None else None
    stop = _MP.Event() if continuous is not None else None
    results: Any = _MP.Queue()
    workers = [_MP.Process(target=target, args=(*args(i), barrier, results, stop, hold),
                           daemon=True) for i in range(count)]
    for w in workers:
        w.start()
    probes: dict[str, float] = {}
    done = threading.Event()
    sampler = None
    collected: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while barrier.n_waiting < count:
            _check(workers, collected, results, "open the store")
            if time.monotonic() > deadline:
                raise TimeoutError(f"writers did not open their stores in {START_TIMEOUT:g} s")
            time.sleep(0.05)
        if sample_every is not None:
            sampler = threading.Thread(target=_sample, args=(sample_every, probes, done),
                                       daemon=True)
            sampler.start()
        barrier.wait(timeout=60)
        if continuous is not None:
            try:
                continuous()
            finally:
                assert stop is not None
                stop.set()
        deadline = time.monotonic() + RUN_TIMEOUT
        while len(collected) < count:
            try:
                collected.append(results.get(timeout=0.2))
            except queue.Empty:
                _check(workers, collected, results, "finish")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"writers did not finish in {RUN_TIMEOUT:g} s") from None
        failed = [r["failed"] for r in collected if "failed" in r]
        if failed:
            raise RuntimeError(f"{len(failed)} writer(s) failed: {failed[0]}")
        done.set()
        if at_end is not None:
            probes.update(at_end())
            assert hold is not None
            hold.wait(timeout=60)
    finally:
        done.set()
        if sampler is not None:
            sampler.join()
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.kill()
                w.join()
    wall = max(r["t1"] for r in collected) - min(r["t0"] for r in collected)
    return Writers(collected, wall, probes)


def _check(workers: list[Any], collected: list[dict[str, Any]], results: Any, what: str) -> None:
    """Fail fast when a writer died (after reading any failure it reported)."""
    dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
    if not dead:
        return
    try:
        while True:
            collected.append(results.get_nowait())
    except queue.Empty:
        pass
    failed = [r["failed"] for r in collected if "failed" in r]
    raise RuntimeError(f"a writer process exited before it could {what} (exit codes {dead})"
                       + (f": {failed[0]}" if failed else ""))


def _sample(every: tuple[float, Callable[[], dict[str, float]]], probes: dict[str, float],
            done: threading.Event) -> None:
    period, probe = every
    while not done.is_set():
        try:
            for k, v in probe().items():
                probes[k] = max(v, probes.get(k, v))
        except Exception:  # a probe that fails once is retried next period
            pass
        done.wait(period)
