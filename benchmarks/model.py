"""The harness's vocabulary: samples, subjects (rows of a table), goals and workloads.

A workload, at one size, builds a list of subjects: our store on each configuration and
the peers. The runner calls each subject's ``run`` once per repetition, round-robin across
subjects, so machine drift hits every subject alike. Each call returns a Sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Metric = Literal["time", "bytes", "rss"]


@dataclass
class Sample:
    """One repetition: wall seconds for `ops` operations that processed `units` items.

    value: the primary figure when the workload's metric is not time (bytes, RSS bytes).
    extra: secondary figures (S3 requests, encoded bytes, ...), reported as medians over
    repetitions (``errors`` and keys starting with "max " as their maximum).
    """

    seconds: float
    ops: int = 1
    units: float = 1.0
    value: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Subject:
    """One row producer: a store configuration or a peer, set up for one size."""

    label: str
    run: Callable[[], Sample]
    role: Literal["store", "peer", "reference"] = "store"
    close: Callable[[], None] = lambda: None
    config: str = ""  # the store configuration (for goals scoped to one), "" for peers


@dataclass(frozen=True)
class Goal:
    """A target for some rows, checked against another row of the same size.

    kind "rate": rate(row) / rate(against) must be >= threshold (">= 1.6x the encode rate").
    kind "cost": the inverse, cost(row) / cost(against) as rate(against) / rate(row), must be
    <= threshold, and that is the figure shown ("<= 1.5x one save": 8.6x is missed; shown
    as a rate ratio it would read 0.12x beside a goal of 1.5x).
    kind "value": value(row) / value(against) must be <= threshold (bytes, RSS).
    kind "flat": the row's growth exponent over sizes must be <= threshold (with ``key``:
    the growth exponent of that figure, e.g. the CPU time beside the wall time).
    kind "max": the row's figure ``key`` (a Sample extra, median over repetitions) must be
    <= threshold (errors, connections per process, a latency percentile).
    at_size: the size the goal is set at ("tree < 10 ms at 1,000,000 checkpoints"): smaller
    sizes show the figure unjudged (a 10 ms budget met at --quick's 500 checkpoints says
    nothing of 1,000,000).
    """

    text: str
    applies: Callable[[str], bool]
    kind: Literal["rate", "cost", "value", "flat", "max"]
    threshold: float
    against: Callable[[str], str] | None = None
    key: str = ""
    at_size: int = 0


@dataclass
class Context:
    """What a workload may use to build its subjects."""

    root: Path
    quick: bool
    configs: list[Any]  # configs.StoreConfig, available ones only
    peers: bool
    notes: list[str]
    frames: Any  # data.FramePool
    cache: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class Workload:
    """A measured operation at three sizes, its baseline and its goals."""

    name: str
    title: str
    unit: str  # what `units` counts: frames, saves, calls, bytes
    size_name: str  # what the size means: frames, saves, depth, checkpoints
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    build: Callable[[Context, int], list[Subject]]
    baseline: str | None = None
    metric: Metric = "time"
    reps: int = 5
    quick_reps: int = 2
    goals: tuple[Goal, ...] = ()
    notes: tuple[str, ...] = ()
    cost_label: str = "s per rep"
    baseline_for: Callable[[str], str | None] | None = None

    def baseline_of(self, label: str) -> str | None:
        if self.baseline_for is not None:
            found = self.baseline_for(label)
            if found is not None:
                return found
        return self.baseline
