"""The catalog at scale: stores of 10,000 to 1,000,000 checkpoints, measured in fresh
processes (catalog_scale: times; catalog_scale_rss: peak RSS; catalog_scale_size: bytes).

Each size has size / 1,000 timelines of one 1,000-checkpoint chain each (built once per
run, ``catalog_scale_build``). A probe process (``catalog_scale_probe``) opens the store,
lists the timelines, reads one timeline's tree, the lineage of another timeline's tip
(1,000 deep) and saves once under a third (durably: fdatasync / synchronous commit), and
reports each step and its peak RSS. ``localckpt ls`` runs as a whole process, less a
``python -c pass`` run just before it. Baselines of the same run: budget rows (the
issue's absolute goals), the same save on a store of one timeline, PostgreSQL, and
LangGraph's SqliteSaver listing one thread of a database of the same size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..configs import StoreConfig, dir_bytes
from ..model import Context, Goal, Sample, Subject, Workload
from ._common import cached, peer_available
from .catalog_scale_build import Built, build_saver, build_store

__all__ = ["CATALOG_SCALE", "CATALOG_SCALE_RSS", "CATALOG_SCALE_SIZE"]

_REPO = Path(__file__).resolve().parents[2]
SAVER = "sqlite-saver list of one thread"
BUDGET_OPEN, BUDGET_LS, BUDGET_TREE = "budget 0.2 s", "budget 0.3 s", "budget 50 ms"
_STEPS = {"open+list": ("open", "list"), "tree": ("tree",), "lineage": ("lineage",),
          "one save": ("save",)}


def _per(ctx: Context) -> int:
    return 100 if ctx.quick else 1000


def _env() -> dict[str, str]:
    """A user's environment: bytecode caches on (pip writes them at install)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _probe(spec: dict[str, Any]) -> dict[str, Any]:
    # run as a script, not -m: the benchmarks package would import the harness first
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("catalog_scale_probe.py")),
         json.dumps(spec)],
        cwd=_REPO, env=_env(), capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"probe failed: {out.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


class _Series:
    """Probe results shared by the rows of one store: each row takes the next one, so a
    round of the runner costs one probe process per store, not one per row."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.results: list[dict[str, Any]] = []
        self.used: dict[str, int] = {}

    def next(self, row: str) -> dict[str, Any]:
        i = self.used.get(row, 0)
        self.used[row] = i + 1
        while len(self.results) <= i:
            self.results.append(_probe(self.spec))
        return self.results[i]


def _store_kinds(ctx: Context) -> list[StoreConfig]:
    """One configuration per catalog (objects do not matter here): local objects."""
    return [c for c in ctx.configs if c.objects_kind == "local"]


def _built(ctx: Context, cfg: StoreConfig, count: int, per: int) -> tuple[dict[str, Any], Built]:
    def make() -> tuple[dict[str, Any], Built]:
        tag = cfg.new_tag(f"scale{count}")
        args = cfg.open_args(tag)
        built = build_store(args, count, per, embedded=cfg.catalog == "duckdb")
        ctx.note(f"catalog_scale: {cfg.name} store of {count} checkpoints built in "
                 f"{built.seconds:.0f} s")
        return {**args, "tag": tag}, built

    return cached(ctx, f"catalog_scale:{cfg.name}:{count}:{per}", make)


def _series(ctx: Context, cfg: StoreConfig, count: int, per: int) -> _Series:
    def make() -> _Series:
        args, built = _built(ctx, cfg, count, per)
        open_args = {k: v for k, v in args.items() if k != "tag"}
        return _Series({"mode": "store", "open": open_args, **built.picks()})

    return cached(ctx, f"catalog_scale:series:{cfg.name}:{count}:{per}", make)


def _saver_series(ctx: Context, count: int, per: int) -> _Series | None:
    if not peer_available(ctx, "sqlite", SAVER):
        return None

    def make() -> _Series:
        path = str(ctx.root / f"catalog-scale-saver-{count}.sqlite")
        built = build_saver(path, count, per)
        ctx.note(f"catalog_scale: SqliteSaver database of {count} checkpoints built in "
                 f"{built.seconds:.0f} s (one thread of put calls, copied in SQL)")
        return _Series({"mode": "saver", "path": path})

    return cached(ctx, f"catalog_scale:saver:{count}:{per}", make)


def _ls_over_pass(url: str) -> Sample:
    def wall(cmd: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=_REPO, env=_env(), capture_output=True, timeout=300, check=True)
        return time.perf_counter() - t0

    base = wall([sys.executable, "-c", "pass"])
    ls = wall([sys.executable, "-m", "localckpt.cli", "--store", url, "ls"])
    return Sample(max(ls - base, 1e-6), extra={"ls s": ls, "python -c pass s": base})


def _budget(label: str, seconds: float) -> Subject:
    return Subject(label, lambda: Sample(seconds), role="reference")


def _build_times(ctx: Context, count: int) -> list[Subject]:
    per = min(_per(ctx), count)
    subjects: list[Subject] = []
    for cfg in _store_kinds(ctx):
        series = _series(ctx, cfg, count, per)
        ref = _series(ctx, cfg, per, per)  # a store of one timeline
        for row, steps in _STEPS.items():
            def run(row: str = row, steps: tuple[str, ...] = steps, s: _Series = series
                    ) -> Sample:
                r = s.next(row)
                extra = {"records read": float(r["records_read"])} if "records_read" in r \
                    else {}
                return Sample(sum(r[k] for k in steps), extra=extra)

            subjects.append(Subject(f"{cfg.name} {row}", run, config=cfg.name))
        subjects.append(Subject(
            f"{cfg.name} one save, one-timeline store",
            lambda r=ref: Sample(r.next("save")["save"]), role="reference", config=cfg.name))
        if cfg.catalog == "duckdb":
            url = str(series.spec["open"]["url"])
            subjects.append(Subject(f"{cfg.name} ls - python -c pass",
                                    lambda u=url: _ls_over_pass(u), config=cfg.name))
    if ctx.peers:
        saver = _saver_series(ctx, count, per)
        if saver is not None:
            subjects.append(Subject(SAVER, lambda: Sample(saver.next("list")["list_thread"]),
                                    role="peer"))
    subjects += [_budget(BUDGET_OPEN, 0.2), _budget(BUDGET_LS, 0.3),
                 _budget(BUDGET_TREE, 0.05)]
    return subjects


def _build_rss(ctx: Context, count: int) -> list[Subject]:
    per = min(_per(ctx), count)
    subjects = []
    for cfg in _store_kinds(ctx):
        series = _series(ctx, cfg, count, per)
        subjects.append(Subject(f"{cfg.name} peak RSS", lambda s=series: _rss(s.next("rss")),
                                config=cfg.name))
    if ctx.peers:
        saver = _saver_series(ctx, count, per)
        if saver is not None:
            subjects.append(Subject("sqlite-saver peak RSS",
                                    lambda: _rss(saver.next("rss")), role="peer"))
    return subjects


def _rss(r: dict[str, Any]) -> Sample:
    return Sample(1.0, value=float(r["peak_rss"]), extra={"peak RSS MB": r["peak_rss"] / 2**20})


def _build_size(ctx: Context, count: int) -> list[Subject]:
    per = min(_per(ctx), count)
    subjects = []
    for cfg in _store_kinds(ctx):
        args, _ = _built(ctx, cfg, count, per)

        def run(cfg: StoreConfig = cfg, tag: str = args["tag"]) -> Sample:
            if cfg.catalog == "duckdb":
                return Sample(1.0, value=float(dir_bytes(cfg.root / cfg.name / tag / "store"
                                                         / "catalog")))
            return Sample(1.0, value=float(cfg.catalog_bytes(tag)))

        subjects.append(Subject(f"{cfg.name} catalog bytes", run, config=cfg.name))
    if ctx.peers and _saver_series(ctx, count, per) is not None:
        path = ctx.root / f"catalog-scale-saver-{count}.sqlite"
        subjects.append(Subject("sqlite-saver database bytes",
                                lambda: Sample(1.0, value=float(path.stat().st_size)),
                                role="peer"))
    return subjects


def _ours(label: str) -> bool:
    return label.startswith("duckdb+") and "one-timeline" not in label


CATALOG_SCALE = Workload(
    name="catalog_scale",
    title="Catalog at scale: open, list, tree, lineage, one save in a fresh process",
    unit="operations", size_name="checkpoints in the store",
    sizes=(10_000, 100_000, 1_000_000), quick_sizes=(200, 600, 2000), reps=5, quick_reps=1,
    build=_build_times,
    baseline_for=lambda label: (BUDGET_OPEN if label.endswith("open+list") else
                                BUDGET_LS if label.endswith("python -c pass") else
                                BUDGET_TREE if label.endswith(" tree") else
                                label + ", one-timeline store" if label.endswith(" one save")
                                else None),
    goals=(
        Goal("open + list_timelines < 0.2 s", lambda s: _ours(s) and s.endswith("open+list"),
             "rate", 1.0, against=lambda _: BUDGET_OPEN),
        Goal("`localckpt ls` < 0.3 s over `python -c pass`",
             lambda s: _ours(s) and s.endswith("python -c pass"), "rate", 1.0,
             against=lambda _: BUDGET_LS),
        Goal("tree of one 1,000-checkpoint timeline < 50 ms",
             lambda s: _ours(s) and s.endswith(" tree"), "rate", 1.0,
             against=lambda _: BUDGET_TREE),
        Goal("one save as fast as on a store of one timeline (>= 0.9x, noise)",
             lambda s: _ours(s) and s.endswith(" one save"), "rate", 0.9,
             against=lambda s: s + ", one-timeline store"),
        Goal("growth exponent <= 0.1", _ours, "flat", 0.1),
    ),
    cost_label="s per operation",
    notes=(
        "Each store has size/1,000 timelines of one 1,000-checkpoint chain (quick: chains "
        "of 100). Probe processes run with bytecode caches enabled, as an installed package "
        "has them; page cache warm (the store was just built). 'one save' is durable "
        "(fdatasync on the embedded store, a synchronous commit on PostgreSQL) and its "
        "parent is read from disk. Budget rows are the issue's absolute goals; ratios "
        "against them are >= 1 when the goal is met.",
    ),
)



def _sibling(name: str, title: str, metric: Any, build: Any, notes: str,
             goals: tuple[Goal, ...] = ()) -> Workload:
    """A workload over the same stores and probes as catalog_scale, another metric."""
    return Workload(name=name, title=title, unit="stores", metric=metric,
                    size_name=CATALOG_SCALE.size_name, sizes=CATALOG_SCALE.sizes,
                    quick_sizes=CATALOG_SCALE.quick_sizes, reps=3, quick_reps=1,
                    build=build, goals=goals, notes=(notes,))


CATALOG_SCALE_RSS = _sibling(
    "catalog_scale_rss", "Catalog at scale: peak RSS of the probe process", "rss", _build_rss,
    "Value: VmHWM of the probe process of catalog_scale (imports included: the process "
    "reads one timeline's tree, another's lineage and saves once).",
    (Goal("peak RSS flat in store size (growth exponent <= 0.1)",
          lambda s: s.startswith("duckdb+"), "flat", 0.1),))

CATALOG_SCALE_SIZE = _sibling(
    "catalog_scale_size", "Catalog at scale: size on disk", "bytes", _build_size,
    "Catalog files only (embedded: catalog/; PostgreSQL: its relations; SqliteSaver: the "
    "database file). Outputs are ~100 bytes of JSON per checkpoint.")
