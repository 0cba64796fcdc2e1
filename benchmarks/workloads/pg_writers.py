"""Many writer processes on one PostgreSQL (issue 21): saves/s, latency, connections.

1, 4, 16 and 48 processes, each opening the store itself (the default pool: one
connection, opened lazily), saving 10-stage chains of 2 KB outputs into a timeline of its
own; against the same number of processes of LangGraph's PostgresSaver, each with its
connection, a thread of its own. The cluster is private to this workload (durable, and
``max_connections=100``, PostgreSQL's default), so that ``pg_stat_activity`` counts the
writers' connections and nothing else: sampled every 0.1 s while they save and once
more when all are done but still open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import procs
from ..model import Context, Goal, Sample, Subject, Workload
from ..peers.langgraph import SaverPeer
from ._common import cached, peer_available
from ._writers import run_writers

__all__ = ["PG_WRITERS"]

MAX_CONNECTIONS = 100
STORE_APP = "localckpt"  # the engine's default application_name
SAVER_APP = "bench-postgres-saver"
SAVER = "postgres-saver"
ROW = "postgres+local"


def _per(ctx: Context) -> int:
    return 10 if ctx.quick else 200


class _Cluster:
    """The private cluster, a store on it and a saver schema (made once per run)."""

    def __init__(self, ctx: Context, cfg: Any) -> None:
        import psycopg

        self.pg = cfg.services.private_postgres(MAX_CONNECTIONS)
        self.dsn = str(self.pg.dsn)
        self.args = {"url": self.dsn, "objects": str(ctx.root / "pg-writers-objects"),
                     "options": {"schema": "bench_writers"}}
        from ..configs import open_from_args

        open_from_args(self.args).close()  # the schema made before the writers race
        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS lg_writers")
        self.saver_dsn = (f"{self.dsn}?application_name={SAVER_APP}"
                          "&options=-csearch_path%3Dlg_writers")
        self.saver_ready = False

    def connections(self) -> dict[str, float]:
        """Client connections per application name, this probe's own left out."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True,
                             application_name="bench-probe") as con:
            rows = con.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity WHERE "
                "backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1"
            ).fetchall()
        found: dict[str, int] = {str(name): int(n) for name, n in rows}
        return {"store": float(found.get(STORE_APP, 0)), "saver": float(found.get(SAVER_APP, 0))}

    def close(self) -> None:
        self.pg.stop()


def _run(ctx: Context, cluster: _Cluster, who: str, count: int, n: int) -> Sample:
    rep = time.monotonic_ns()
    target: Callable[..., None]
    args: Callable[[int], tuple[Any, ...]]
    if who == "store":
        target, args = procs.store_worker, (lambda i: (cluster.args, None, n, f"{rep}-{i}"))
    else:
        target, args = procs.saver_worker, (lambda i: ("postgres", cluster.saver_dsn, n,
                                                       f"{rep}-{i}"))

    def probe() -> dict[str, float]:
        return {"max connections": cluster.connections()[who]}

    w = run_writers(target, args, count, sample_every=(0.1, probe),
                    at_end=lambda: {"connections at the end": cluster.connections()[who]})
    held = max(w.probes.get("max connections", 0.0), w.probes["connections at the end"])
    for message in w.messages[:3]:
        ctx.note(f"pg_writers: {who} at {count} processes: {message}")
    return w.sample(**{"max connections": held,
                       "max connections per process": held / count,
                       "processes": float(count)})


def _build(ctx: Context, count: int) -> list[Subject]:
    cfg = next((c for c in ctx.configs if c.catalog == "postgres"), None)
    if cfg is None:
        ctx.note("pg_writers: no PostgreSQL configuration in this run")
        return []
    cluster: _Cluster = cached(ctx, "pg_writers:cluster", lambda: _Cluster(ctx, cfg))
    n = _per(ctx)
    subjects = [Subject(ROW, lambda: _run(ctx, cluster, "store", count, n), config=cfg.name)]
    if ctx.peers and peer_available(ctx, "postgres", SAVER):
        if not cluster.saver_ready:
            SaverPeer("postgres", cluster.saver_dsn).close()  # its tables, made once
            cluster.saver_ready = True
        subjects.append(Subject(SAVER, lambda: _run(ctx, cluster, "saver", count, n), role="peer"))
    return subjects


def _ours(label: str) -> bool:
    return label == ROW


PG_WRITERS = Workload(
    name="pg_writers",
    title="Many processes saving on one PostgreSQL: rate, latency, connections",
    unit="saves", size_name="processes",
    sizes=(1, 4, 16, 48), quick_sizes=(1, 4), reps=3, quick_reps=1,
    build=_build, baseline=SAVER,
    goals=(
        Goal(">= 1.0x PostgresSaver (same processes, same cluster)", _ours, "rate", 1.0),
        Goal("aim: >= 1.2x PostgresSaver", _ours, "rate", 1.2),
        Goal("1 connection per single-threaded process", _ours, "max", 1.0,
             key="max connections per process"),
        Goal(f"connections <= {MAX_CONNECTIONS // 2} (fits max_connections="
             f"{MAX_CONNECTIONS} with room to spare)", _ours, "max", MAX_CONNECTIONS // 2,
             key="max connections"),
        Goal("no errors", _ours, "max", 0.0, key="errors"),
    ),
    notes=("Each process saves 200 outputs (2 KB, 10-stage chains) into its own timeline "
           "(PostgresSaver: its own thread), all released together by a barrier; rate: "
           "every process's saves over the time from the first start to the last finish. "
           "Latency percentiles over every save of every process. 'max connections': the "
           "most client connections of the writers' application_name seen in "
           "pg_stat_activity (sampled every 0.1 s, and once all were done but still open). "
           "Private durable cluster (fsync, synchronous_commit on), max_connections=100.",),
)
