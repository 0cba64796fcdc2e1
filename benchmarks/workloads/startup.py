"""Whole-process start: `localckpt ls`, `show` and `--help` against `python -c pass`,
and how fast an unreachable PostgreSQL server is reported."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..configs import EMBEDDED
from ..model import Context, Goal, Sample, Subject, Workload
from ._ckpt import new_timeline
from ._common import cached

__all__ = ["CLI_START", "PG_UNAVAILABLE"]

BUDGET = "budget: 0.3 s"
PASS = "python -c pass"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("localckpt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "localckpt.cli"]


def _store(ctx: Context, timelines: int) -> tuple[str, str]:
    """(directory, a checkpoint id) of a small embedded store with `timelines` timelines."""
    def make() -> tuple[str, str]:
        import localckpt

        path = str(ctx.root / f"cli-start-{timelines}")
        with localckpt.open(path, create=True) as store:
            cid = ""
            for _ in range(timelines):
                tl = new_timeline(store)
                cid = store.save_stage_output(tl.id, None, "detect", {"boxes": [[1, 2, 3, 4]]})
        return path, cid

    found: tuple[str, str] = cached(ctx, f"cli-store:{timelines}", make)
    return found


def _process(argv: list[str]) -> Sample:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALCKPT_")}
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env, timeout=60)
    return Sample(time.perf_counter() - t0)


def _build_cli(ctx: Context, timelines: int) -> list[Subject]:
    path, cid = _store(ctx, timelines)
    cli = _cli()
    return [
        Subject(PASS, lambda: _process([sys.executable, "-c", "pass"]), role="reference"),
        Subject(BUDGET, lambda: Sample(0.3), role="reference"),
        Subject("localckpt --help", lambda: _process([*cli, "--help"]), config=EMBEDDED),
        Subject("localckpt ls", lambda: _process([*cli, "--store", path, "ls"]),
                config=EMBEDDED),
        Subject("localckpt show", lambda: _process([*cli, "--store", path, "show", cid]),
                config=EMBEDDED),
    ]


CLI_START = Workload(
    name="cli_start", title="CLI commands as whole processes on a small embedded store",
    unit="runs", size_name="timelines in the store", sizes=(1, 20), quick_sizes=(1,),
    reps=7, quick_reps=2, build=_build_cli, baseline=PASS,
    goals=(Goal("ls under 0.3 s wall", lambda s: s == "localckpt ls", "rate", 1.0,
                against=lambda _: BUDGET),),
    notes=("Each row starts a fresh interpreter (the venv's `localckpt` script); "
           "`python -c pass` is the interpreter's own start. The budget row is a fixed "
           "0.3 s, so the goal's ratio is 0.3 s / the command's time.",),
)


def _unreachable(ctx: Context) -> Sample:
    import localckpt
    from backends._util import free_port
    from localckpt.errors import BackendUnavailableError

    port = free_port()
    t0 = time.perf_counter()
    try:
        localckpt.open(f"postgresql://someone@127.0.0.1:{port}/somedb",
                       objects=str(ctx.root / "pg-unreachable-objects"), create=True)
    except BackendUnavailableError:
        return Sample(time.perf_counter() - t0)
    raise AssertionError("an unreachable server opened")


def _killed(ctx: Context) -> Sample:
    """A catalog whose server was killed: the next read reports it (cluster restarted
    afterwards, outside the timing)."""
    import localckpt
    from backends.postgres import ThrowawayPostgres
    from localckpt.errors import BackendUnavailableError

    class Cluster:  # close_cached() stops it at the end of the run
        def __init__(self) -> None:
            self.pg = ThrowawayPostgres().start()

        def close(self) -> None:
            self.pg.stop()

    pg = cached(ctx, "pg-unavailable-cluster", Cluster).pg
    if not pg.running:
        pg.start()
    store = localckpt.open(pg.dsn, objects=str(ctx.root / "pg-killed-objects"), create=True,
                           timeout=5)
    try:
        store.list_timelines()
        pg.kill()
        t0 = time.perf_counter()
        try:
            store.list_timelines()
        except BackendUnavailableError:
            return Sample(time.perf_counter() - t0)
        raise AssertionError("a killed server answered")
    finally:
        store.close()
        pg.start()


def _build_pg(ctx: Context, _: int) -> list[Subject]:
    if not any(c.catalog == "postgres" for c in ctx.configs):
        ctx.note("pg_unavailable: no PostgreSQL configuration in this run")
        return []
    return [
        Subject("budget: 3 s (timeout 5 s)", lambda: Sample(3.0), role="reference"),
        Subject("open, nothing listening", lambda: _unreachable(ctx), config="postgres+local"),
        Subject("read after the server was killed", lambda: _killed(ctx),
                config="postgres+local"),
    ]


PG_UNAVAILABLE = Workload(
    name="pg_unavailable", title="Time until a dead PostgreSQL server is reported",
    unit="errors", size_name="-", sizes=(1,), quick_sizes=(1,), reps=3, quick_reps=1,
    build=_build_pg, baseline="budget: 3 s (timeout 5 s)",
    goals=(Goal("BackendUnavailableError within 3 s", lambda s: not s.startswith("budget"),
                "rate", 1.0),),
    notes=("Was a wall-clock assertion in tests/test_postgres_catalog.py (issue 13). A "
           "killed server is a private throwaway cluster, restarted between repetitions.",),
)
