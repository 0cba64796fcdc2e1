"""Threads of one process saving at once on one store (group commit on the embedded
store) against SqliteSaver with one connection per thread on one database file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..model import Context, Goal, Sample, Subject, Workload
from ._ckpt import SQLITE_SAVER, chain_outputs, fresh, new_timeline, save_chains
from ._common import peer_available, postgres_schema_dsn, shared_store

__all__ = ["SAVE_THREADS"]

THREADS = 4


def _in_threads(work: list[Callable[[], Any]]) -> float:
    """Run the callables in threads released together; wall time first start to last end."""
    barrier = threading.Barrier(len(work) + 1)
    errors: list[BaseException] = []

    def body(fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(fn,)) for fn in work]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def _build(ctx: Context, n: int) -> list[Subject]:
    per = n // THREADS
    base = chain_outputs(ctx, per)
    subjects = []
    for cfg in ctx.configs:
        if cfg.objects_kind != "local":
            continue  # saves write no objects: one row per catalog
        store, _ = shared_store(ctx, cfg, "threads")

        def run(store: Any = store) -> Sample:
            tids = [new_timeline(store).id for _ in range(THREADS)]
            outs = [fresh(base) for _ in range(THREADS)]
            work = [lambda tid=tid, o=o: save_chains(
                lambda p, s, out: store.save_stage_output(tid, p, s, out), o)
                for tid, o in zip(tids, outs, strict=True)]
            return Sample(_in_threads(work), units=per * THREADS)

        subjects.append(Subject(cfg.name, run, config=cfg.name))
    if not ctx.peers:
        return subjects
    from ..peers.langgraph import SaverPeer

    targets: list[tuple[str, str, str]] = []
    if peer_available(ctx, "sqlite", SQLITE_SAVER):
        targets.append((SQLITE_SAVER, "sqlite", str(ctx.root / f"threads-{n}.sqlite")))
    dsn = postgres_schema_dsn(ctx, f"lg_threads_{n}")
    if dsn is not None and peer_available(ctx, "postgres", "postgres-saver"):
        targets.append(("postgres-saver", "postgres", dsn))
    for label, kind, target in targets:
        peers = [SaverPeer(kind, target) for _ in range(THREADS)]  # a connection each
        if kind == "sqlite":  # wait for the writer lock as long as it takes (default 5 s)
            for peer in peers:
                peer._con.execute("PRAGMA busy_timeout = 120000")

        def run_peer(peers: list[Any] = peers) -> Sample:
            outs = [fresh(base) for _ in range(THREADS)]
            tags = [f"t{time.monotonic_ns()}-{i}" for i in range(THREADS)]

            def chains(peer: Any, tag: str, o: Any) -> None:
                save_chains(lambda p, s, out: str(peer.put(tag, p, s, out)), o)

            work = [lambda peer=peer, tag=tag, o=o: chains(peer, tag, o)
                    for peer, tag, o in zip(peers, tags, outs, strict=True)]
            return Sample(_in_threads(work), units=per * THREADS)

        subjects.append(Subject(label, run_peer, role="peer",
                                close=lambda peers=peers: [p.close() for p in peers]))
    return subjects


def _saver_for(label: str) -> str:
    return "postgres-saver" if label.startswith("postgres+") else SQLITE_SAVER


SAVE_THREADS = Workload(
    name="save_threads",
    title=f"save_stage_output from {THREADS} threads of one process at once (one store)",
    unit="saves", size_name="saves (all threads)",
    sizes=(400, 2000), quick_sizes=(40, 80), reps=3, quick_reps=1,
    build=_build, baseline=SQLITE_SAVER, baseline_for=_saver_for,
    goals=(Goal(">= 1.5x SqliteSaver, one connection per thread",
                lambda s: s.startswith("sqlite+"), "rate", 1.5,
                against=lambda _: SQLITE_SAVER),
           Goal(">= 1.0x PostgresSaver, one connection per thread",
                lambda s: s.startswith("postgres+"), "rate", 1.0,
                against=lambda _: "postgres-saver")),
    notes=(f"{THREADS} threads share one open store, each saving its own timeline's "
           "10-stage chains of 2 KB outputs; the saver rows give each thread its own "
           "connection to one database (SQLite file: WAL, synchronous=FULL). Durability as "
           "in save_chain. The embedded store shares one commit (one fsync) among the "
           "threads that save at the same moment (group commit).",),
)
