"""The catalog at scale: stores of 10,000 to 1,000,000 checkpoints on SQLite, DuckDB and
PostgreSQL, measured in fresh processes, beside LangGraph's SqliteSaver
(catalog_scale: times; catalog_scale_rss: peak RSS; catalog_scale_size: bytes).

Each size has size / 1,000 timelines of one 1,000-checkpoint chain each (built once per
run, ``_bulk``; the smallest store of each engine is checked with ``verify``). A probe
process (``catalog_scale_probe``) imports localckpt, opens the store, lists the
timelines, reads one timeline's tree, the lineage of another timeline's tip (1,000
deep), reads checkpoints by id and saves once under a third (durably), and reports each
step and its peak RSS. ``localckpt ls`` runs as a whole process, less a
``python -c pass`` run just before it. Goals (issue 22) are budget rows of the same run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..configs import StoreConfig
from ..model import Context, Goal, Sample, Subject, Workload
from ._bulk import Built, build_saver, build_store, check_built
from ._common import cached, peer_available

__all__ = ["CATALOG_SCALE", "CATALOG_SCALE_RSS", "CATALOG_SCALE_SIZE"]

_REPO = Path(__file__).resolve().parents[2]
SAVER = "sqlite-saver"
#: row -> (probe steps summed, budget seconds or None)
_STEPS: dict[str, tuple[tuple[str, ...], float | None]] = {
    "open+list": (("open", "list"), 0.020),
    "tree": (("tree",), 0.010),
    "lineage": (("lineage",), 0.015),
    "by id": (("by_id",), 0.0002),
    "one save": (("save",), None),
}
#: the same reads by the standard library's sqlite3 on the same file (the floor)
_BARE = {"open+list": ("bare_open_list",), "tree": ("bare_tree",),
         "lineage": ("bare_lineage",), "by id": ("bare_by_id",)}
LS = "ls - python -c pass"
LS_BUDGET = 0.2


def _budget_label(seconds: float) -> str:
    return f"budget {seconds * 1e3:g} ms"


def _per(ctx: Context) -> int:
    return 100 if ctx.quick else 1000


def _env() -> dict[str, str]:
    """A user's environment: bytecode caches on (pip writes them at install)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"
           and not k.startswith("LOCALCKPT_")}
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
    """One configuration per catalog engine (objects do not matter here): local objects."""
    return [c for c in ctx.configs if c.objects_kind == "local"]


def _built(ctx: Context, cfg: StoreConfig, count: int, per: int) -> tuple[dict[str, Any], Built]:
    def make() -> tuple[dict[str, Any], Built]:
        tag = cfg.new_tag(f"scale{count}")
        args = cfg.open_args(tag)
        built = build_store(args, cfg.catalog, max(1, count // per), per)
        ctx.note(f"catalog_scale: {cfg.name} store of {count:,} checkpoints built in "
                 f"{built.seconds:.0f} s")
        sizes = CATALOG_SCALE.quick_sizes if ctx.quick else CATALOG_SCALE.sizes
        if count == sizes[0]:
            t0 = time.perf_counter()
            problems = check_built(args)
            ctx.note(f"catalog_scale: {cfg.name} store of {count:,} checkpoints checked with "
                     f"verify() and a purge in {time.perf_counter() - t0:.0f} s: "
                     + ("no problem" if not problems else "PROBLEMS: " + "; ".join(
                         problems[:5])))
        return {**args, "tag": tag}, built

    found: tuple[dict[str, Any], Built] = cached(
        ctx, f"catalog_scale:{cfg.name}:{count}:{per}", make)
    return found


def _series(ctx: Context, cfg: StoreConfig, count: int, per: int) -> _Series:
    def make() -> _Series:
        args, built = _built(ctx, cfg, count, per)
        open_args = {k: v for k, v in args.items() if k != "tag"}
        spec = {"mode": "store", "open": open_args, **built.picks()}
        if cfg.catalog == "sqlite":
            spec["bare"] = str(Path(open_args["url"]) / "catalog.sqlite")
        return _Series(spec)

    found: _Series = cached(ctx, f"catalog_scale:series:{cfg.name}:{count}:{per}", make)
    return found


def _saver_series(ctx: Context, count: int, per: int) -> _Series | None:
    if not peer_available(ctx, "sqlite", SAVER):
        return None

    def make() -> _Series:
        path = str(ctx.root / f"catalog-scale-saver-{count}.sqlite")
        built = build_saver(path, count, per)
        ctx.note(f"catalog_scale: SqliteSaver database of {count:,} checkpoints built in "
                 f"{built.seconds:.0f} s (one thread of put calls, copied in SQL)")
        return _Series({"mode": "saver", "path": path, "by_id": built.branches[0]})

    found: _Series = cached(ctx, f"catalog_scale:saver:{count}:{per}", make)
    return found


def _ls_over_pass(url: str) -> Sample:
    def wall(cmd: list[str]) -> tuple[float, float]:
        c0 = _children_cpu()
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=_REPO, env=_env(), capture_output=True, timeout=300, check=True)
        return time.perf_counter() - t0, _children_cpu() - c0

    base, base_cpu = wall([sys.executable, "-c", "pass"])
    ls, ls_cpu = wall([sys.executable, "-m", "localckpt.cli", "--store", url, "ls"])
    return Sample(max(ls - base, 1e-6), extra={
        "ls s": ls, "python -c pass s": base, "CPU ms": (ls_cpu - base_cpu) * 1e3})


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _steps(r: dict[str, Any], steps: tuple[str, ...], extra: dict[str, float] | None = None
           ) -> Sample:
    """Wall seconds of the steps of one probe, their CPU milliseconds as a detail."""
    cpu = sum(r["cpu_" + k] for k in steps) * 1e3
    return Sample(sum(r[k] for k in steps), extra={**(extra or {}), "CPU ms": cpu})


def _budget(label: str, seconds: float) -> Subject:
    return Subject(label, lambda: Sample(seconds), role="reference")


def _build_times(ctx: Context, count: int) -> list[Subject]:
    per = min(_per(ctx), count)
    subjects: list[Subject] = []
    budgets = {b for _, b in _STEPS.values() if b is not None} | {LS_BUDGET}
    for cfg in _store_kinds(ctx):
        series = _series(ctx, cfg, count, per)
        for row, (steps, _) in _STEPS.items():
            def run(row: str = row, steps: tuple[str, ...] = steps, s: _Series = series
                    ) -> Sample:
                r = s.next(row)
                extra = {"catalog by id µs": r["catalog_by_id"] * 1e6} if row == "by id" \
                    else {}
                return _steps(r, steps, extra)

            subjects.append(Subject(f"{cfg.name} {row}", run, config=cfg.name))
        if cfg.catalog == "sqlite":
            subjects.append(Subject("import localckpt", lambda s=series: _steps(
                s.next("import"), ("import",)), role="reference", config=cfg.name))
            for row, steps in _BARE.items():
                subjects.append(Subject(f"bare sqlite3 {row}", lambda k=steps, s=series: _steps(
                    s.next(k[0]), k), role="reference", config=cfg.name))
        if cfg.catalog in ("sqlite", "duckdb"):
            url = str(series.spec["open"]["url"])
            subjects.append(Subject(f"{cfg.name} {LS}", lambda u=url: _ls_over_pass(u),
                                    config=cfg.name))
    if ctx.peers:
        saver = _saver_series(ctx, count, per)
        if saver is not None:
            for label, key in (("open", "open"), (f"list of one thread ({per:,})",
                                                  "list_thread"), ("get_tuple by id", "by_id")):
                subjects.append(Subject(f"{SAVER} {label}", lambda k=key, s=saver: _steps(
                    s.next(k), (k,)), role="peer"))
    subjects += [_budget(_budget_label(b), b) for b in sorted(budgets)]
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
            subjects.append(Subject(f"{SAVER} peak RSS",
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
            return Sample(1.0, value=float(cfg.catalog_bytes(tag)))

        subjects.append(Subject(f"{cfg.name} catalog bytes", run, config=cfg.name))
    if ctx.peers and _saver_series(ctx, count, per) is not None:
        path = ctx.root / f"catalog-scale-saver-{count}.sqlite"
        subjects.append(Subject(f"{SAVER} database bytes",
                                lambda: Sample(1.0, value=float(path.stat().st_size)),
                                role="peer"))
    return subjects


def _ours(label: str) -> bool:
    return label.split(" ", 1)[0].count("+") == 1 and not label.startswith(SAVER)


def _baseline(label: str) -> str | None:
    if label.endswith(LS):
        return _budget_label(LS_BUDGET)
    for row, (_, budget) in _STEPS.items():
        if label.endswith(" " + row) and budget is not None:
            return _budget_label(budget)
    return None


def _budget_goals(row: str, text: str, budget: float) -> tuple[Goal, Goal]:
    """The goal on wall time, and on the CPU time of the same step (the machine is shared:
    wall time there includes waiting for a core)."""
    def applies(s: str) -> bool:
        return _ours(s) and s.endswith(" " + row)

    return (Goal(text, applies, "rate", 1.0, against=lambda _: _budget_label(budget),
                 at_size=1_000_000),
            Goal(f"{text} (CPU ms)", applies, "max", budget * 1e3, key="CPU ms",
                 at_size=1_000_000))


CATALOG_SCALE = Workload(
    name="catalog_scale",
    title="Catalog at scale: open, list, tree, lineage, by id, one save in a fresh process",
    unit="operations", size_name="checkpoints in the store",
    sizes=(10_000, 100_000, 1_000_000), quick_sizes=(500,), reps=5, quick_reps=1,
    build=_build_times, baseline_for=_baseline,
    goals=(
        *_budget_goals("open+list", "open + list_timelines < 20 ms", 0.020),
        *_budget_goals("tree", "tree of one 1,000-checkpoint timeline < 10 ms", 0.010),
        *_budget_goals("lineage", "lineage of a 1,000-deep chain < 15 ms", 0.015),
        *_budget_goals("by id", "one checkpoint by id < 0.2 ms", 0.0002),
        *_budget_goals(LS, "`localckpt ls` < 0.2 s over `python -c pass`", LS_BUDGET),
        Goal("growth exponent <= 0.1", _ours, "flat", 0.1),
        Goal("growth exponent of CPU ms <= 0.1", _ours, "flat", 0.1, key="CPU ms"),
    ),
    cost_label="s per operation",
    notes=(
        "Each store has size/1,000 timelines of one 1,000-checkpoint chain (quick: chains "
        "of 100), ids UUIDv7 as the store makes them. Probe processes run with bytecode "
        "caches enabled, as an installed package has them; page cache warm (the store was "
        "just built). 'open+list' is localckpt.open + list_timelines (the import of "
        "localckpt is its own row); 'by id' is the median of Store.get_checkpoint over 50 "
        "ids of different timelines (details: the catalog's own read of one id); 'one "
        "save' is durable (synchronous=FULL on SQLite, DuckDB's commit, a synchronous "
        "commit on PostgreSQL) and its parent is read from disk. Budget rows are the "
        "issue's absolute goals; ratios against them are >= 1 when the goal is met. Each "
        "goal is also checked on the CPU time of the same step ('CPU ms', the probe "
        "process's own: PostgreSQL's server work is not in it): this machine's 2 cores "
        "are shared by up to 8 jobs, and the wall time of a CPU-bound step includes the "
        "wait for a core. 'bare sqlite3' rows: the same reads with the standard library "
        "on the same catalog.sqlite (tuples, no records, digests or visibility): the "
        "floor of the SQLite rows.",
        "sqlite-saver rows: LangGraph's SqliteSaver on a database of the same size "
        "(one thread of 1,000 put calls copied to size/1,000 threads): connect, list one "
        "thread, get_tuple by id (median of 50).",
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
    "reads one timeline's tree, another's lineage, 50 checkpoints by id and saves once).",
    (Goal("peak RSS flat in store size (growth exponent <= 0.1)", _ours, "flat", 0.1),))

CATALOG_SCALE_SIZE = _sibling(
    "catalog_scale_size", "Catalog at scale: size on disk", "bytes", _build_size,
    "Catalog only (SQLite: catalog.sqlite with its WAL; DuckDB: the file with its WAL; "
    "PostgreSQL: the schema's relations; SqliteSaver: the database file). Outputs are "
    "~120 bytes of JSON per checkpoint.")
