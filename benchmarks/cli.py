"""Command line: choose workloads and configurations, run them interleaved, write the report."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from . import REPORT_FORMAT
from .configs import ALL_CONFIGS, EMBEDDED, Services, available_configs
from .data import FramePool
from .model import Context
from .plots import plot_workload
from .report import write_json, write_markdown
from .runner import close_cached, evaluate_goals, run_workload
from .workloads import WORKLOADS, pending_notes

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
_VERSIONS = ("localckpt", "duckdb", "pillow", "numpy", "pyarrow", "psycopg", "s3fs", "moto",
             "langgraph-checkpoint", "langgraph-checkpoint-sqlite",
             "langgraph-checkpoint-postgres", "matplotlib")


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _repetitions(text: str) -> int:
    """--reps: a whole number of at least 1 (0 or less would measure nothing)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked as argparse checks them: an unknown workload or configuration
    name is a usage error (exit status 2, the valid names on stderr) before anything
    starts."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help=f"tiny sizes, fewer repetitions, {EMBEDDED} only unless --configs "
                        "says otherwise (a smoke run, not for conclusions)")
    p.add_argument("--only", action="append", metavar="WORKLOAD",
                   help=f"run only these (repeatable or comma-separated): {', '.join(WORKLOADS)}")
    p.add_argument("--configs", action="append", metavar="CONFIG",
                   help=f"store configurations (default: all whose servers start): "
                        f"{', '.join(ALL_CONFIGS)}; sqlite = the embedded store (a directory "
                        "with catalog.sqlite), duckdb = the catalog in a DuckDB file (one "
                        "process), postgres = a throwaway PostgreSQL 15 cluster")
    p.add_argument("--no-peers", action="store_true", help="skip the peers (baselines)")
    p.add_argument("--no-plots", action="store_true",
                   help="skip the PNG plots (about 0.5 s of matplotlib per workload)")
    p.add_argument("--reps", type=_repetitions, metavar="N",
                   help="repetitions per size, at least 1 (default per workload)")
    p.add_argument("--out", type=Path, default=RESULTS, help="report directory")
    p.add_argument("--list", action="store_true", help="list workloads and configurations")
    p.add_argument("--regoal", type=Path, metavar="REPORT.json",
                   help="evaluate the goals of a stored report again with the goals as "
                        "defined now (figures unchanged) and rewrite its Markdown")
    args = p.parse_args(argv)
    unknown = [n for n in _split(args.only) if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                f"known: {', '.join(WORKLOADS)} (python -m benchmarks --list)")
    unknown = [n for n in _split(args.configs) if n not in ALL_CONFIGS]
    if unknown:
        p.error(f"unknown configuration{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)}; known: {', '.join(ALL_CONFIGS)}")
    return args


def _versions() -> dict[str, str]:
    found = {}
    for name in _VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _commit() -> str:
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, text=True,
                              capture_output=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "localckpt"], cwd=repo,
                               text=True, capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" + uncommitted changes in localckpt/" if dirty else "")


def _noted(notes: list[str]) -> Callable[[str], None]:
    """A note of the report that is also said on stderr at once (a configuration whose
    server cannot start is left out: the user should not learn it from the report only)."""

    def note(text: str) -> None:
        notes.append(text)
        log(text)

    return note


def _durability(ctx: Context) -> list[str]:
    from .peers.langgraph import sqlite_synchronous

    sync = sqlite_synchronous(str(ctx.root / "probe.sqlite"))
    return [
        "embedded store (sqlite+*): SQLite in WAL mode with synchronous=FULL (localckpt.open "
        "default fsync=True): the WAL is fsynced at every commit; rows marked fsync=False "
        "use localckpt.open(path, fsync=False) (synchronous=NORMAL).",
        "duckdb+local: the catalog in a DuckDB file; every commit is DuckDB's own durable "
        "commit (its WAL is synced); one process at a time.",
        "postgres+*: ThrowawayPostgres(durable=True): fsync=on, synchronous_commit=on, "
        "full_page_writes=on.",
        f"SqliteSaver: WAL (set by its setup()); synchronous left at the default, read back as "
        f"PRAGMA synchronous={sync} ({'FULL' if sync == 2 else sync}): fsync of the WAL per "
        "commit. Rows marked synchronous=OFF set it OFF.",
        "PostgresSaver: autocommit on the same durable cluster.",
        "seed layout (sqlite JSON): WAL, synchronous=FULL; (postgres JSONB): same cluster.",
        "Objects: local files are written to a temp file and renamed (no fsync, for store "
        "and seed alike); S3 is moto on loopback (in memory).",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        width = max(map(len, WORKLOADS))
        for name, w in WORKLOADS.items():
            print(f"{name:{width}s}  {w.title}")
        print("configs:", ", ".join(ALL_CONFIGS))
        return 0
    if args.regoal:
        return _regoal(args.regoal)
    only = _split(args.only) or list(WORKLOADS)
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _terminate)  # tear servers down when killed
    root = Path(tempfile.mkdtemp(prefix="lckpt-bench-"))
    services = Services()
    notes: list[str] = []
    try:
        default = [EMBEDDED] if args.quick else list(ALL_CONFIGS)
        configs = available_configs(_split(args.configs) or default, root, services,
                                    _noted(notes))
        if not configs:
            log("no configuration of this run could start, so nothing was measured "
                "(the reasons are above); choose others with --configs")
            return 1
        ctx = Context(root=root, quick=args.quick, configs=configs, peers=not args.no_peers,
                      notes=notes, frames=FramePool(4 if args.quick else 8))
        durability = _durability(ctx)
        if not args.only:
            notes.extend(pending_notes())
        workloads: dict[str, Any] = {}
        plots: dict[str, str] = {}
        for name in only:
            log(f"{name} ...")
            t0 = time.perf_counter()
            workloads[name] = run_workload(WORKLOADS[name], ctx, args.reps, log)
            log(f"{name} done in {time.perf_counter() - t0:.1f} s")
            # Write as we go: a long run that is stopped keeps what it measured.
            data = _assemble(args, configs, notes, durability, workloads,
                             time.perf_counter() - started)
            if not args.no_plots:
                _plot(args.out, data, name, plots)
            _write(args.out, data, plots, quiet=True, plotted=not args.no_plots)
        close_cached(ctx)
    finally:
        services.close()
        shutil.rmtree(root, ignore_errors=True)
    data = _assemble(args, configs, notes, durability, workloads, time.perf_counter() - started)
    _write(args.out, data, plots, plotted=not args.no_plots)
    return 0


def _assemble(args: argparse.Namespace, configs: list[Any], notes: list[str],
              durability: list[str], workloads: dict[str, Any], seconds: float,
              ) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    meta = {
        "format": REPORT_FORMAT, "date": now.strftime("%Y-%m-%d"),
        "time": now.isoformat(timespec="seconds"), "host": socket.gethostname(),
        "platform": platform.platform(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "quick": args.quick,
        "configs": [c.name for c in configs], "peers": not args.no_peers,
        "commit": _commit(), "versions": _versions(), "durability": durability,
        "total_seconds": seconds,
    }
    return {"meta": meta, "notes": notes, "workloads": workloads}


def _stem(data: dict[str, Any]) -> str:
    meta = data["meta"]
    return f"{meta['date']}-{meta['host']}" + ("-quick" if meta["quick"] else "")


def _plot(out: Path, data: dict[str, Any], name: str, plots: dict[str, str]) -> None:
    """Draw one workload's PNG (once, when it is done)."""
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{_stem(data)}-{name}.png"
    if plot_workload(png, name, data["workloads"][name]):
        plots[name] = png.name


def _write(out: Path, data: dict[str, Any], plots: dict[str, str], quiet: bool = False,
           plotted: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(data)
    no_plots = ("no plots: matplotlib is not installed (pip install matplotlib)" if plotted
                else "no plots: --no-plots")
    if not plots and data["workloads"] and no_plots not in data["notes"]:
        data["notes"].append(no_plots)
    write_json(out / f"{stem}.json", data)
    write_markdown(out / f"{stem}.md", data, plots)
    if not quiet:
        log(f"report: {out / (stem + '.md')}")


def _regoal(path: Path) -> int:
    """Goals of a stored report evaluated again (they depend on its summaries only)."""
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    for name, summary in data["workloads"].items():
        w = WORKLOADS.get(name)
        if w is None:
            continue
        evaluate_goals(w, summary["results"])
        summary["goals"] = [g.text for g in w.goals]
    note = ("goals evaluated again after the run (python -m benchmarks --regoal) with the "
            "goals as defined at commit " + _commit() + "; every figure is the run's own")
    data["notes"] = [n for n in data["notes"] if not n.startswith("goals evaluated again")]
    data["notes"].append(note)
    plots = {name: f"{path.stem}-{name}.png" for name in data["workloads"]
             if (path.parent / f"{path.stem}-{name}.png").exists()}
    write_json(path, data)
    write_markdown(path.with_suffix(".md"), data, plots)
    log(f"report: {path.with_suffix('.md')}")
    return 0


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
