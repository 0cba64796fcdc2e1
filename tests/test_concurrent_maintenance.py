"""prune, retain, delete and gc while another process writes: nothing live is lost.

A writer process ingests timelines (pausing in the middle of each, as a slow frame
source does) and saves chains whose outputs repeat the outputs of checkpoints this
process prunes meanwhile (so deduplicated outputs are shared with deleted ones). This
process prunes, retains and deletes its own work and runs gc with no grace period
for unleased objects (older_than=0) all the while. Afterwards every checkpoint and
timeline the writer reported is live and complete, verify finds no damage, and a last
gc leaves nothing over.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import numpy as np
import pytest
from conftest import StoreFactory

import localckpt
from localckpt.gc import collect_garbage

KINDS = ("embedded", "postgres-local")
WRITES = 12


def _slow_frames(n: int, pause: float) -> Any:
    rng = np.random.default_rng(n)
    for i in range(n):
        if i == n // 2:
            time.sleep(pause)  # the source stalls mid-ingest; gc runs meanwhile
        yield rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)


def _writer(url: str, kwargs: dict[str, Any], tid: str, root: str, out: Any) -> None:
    with localckpt.open(url, **kwargs) as store:
        parent = root
        for i in range(WRITES):
            parent = store.save_stage_output(tid, parent, f"s{i % 3}", {"v": i % 4})
            out.put(("checkpoint", parent))
            if i % 4 == 0:
                tl = store.create_timeline("w.mp4", "p", _slow_frames(10, 0.4), codec="png")
                out.put(("timeline", tl.id))
    out.put(("done", ""))


@pytest.mark.parametrize("kind", KINDS)
def test_maintenance_while_another_process_writes(kind: str, new_store: StoreFactory) -> None:
    store = new_store(kind)
    url, kwargs = new_store._how[id(store)][1:]  # type: ignore[attr-defined]
    shared = store.create_timeline("v.mp4", "p", [np.zeros((8, 8, 3), np.uint8)] * 2,
                                   codec="png")
    mine = store.create_timeline("m.mp4", "p", [np.ones((8, 8, 3), np.uint8)] * 2,
                                 codec="png")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_writer, args=(url, kwargs, shared.id,
                                             shared.root_checkpoint_id, out))
    proc.start()
    reported: list[tuple[str, str]] = []
    done = False
    rounds = 0
    try:
        while not done:
            rounds += 1
            # my own branches in the shared timeline, with outputs the writer also saves
            a = store.save_stage_output(shared.id, None, "mine", {"v": rounds % 4})
            store.save_stage_output(shared.id, a, "mine", {"v": (rounds + 1) % 4})
            store.prune(a)
            parent = None
            for k in range(3):
                parent = store.save_stage_output(mine.id, parent, "r", {"v": k})
            store.retain(mine.id, keep_last=1)
            doomed = store.create_timeline("d.mp4", "p", [np.zeros((8, 8, 3), np.uint8)],
                                           codec="png")
            store.delete_timeline(doomed.id)
            collect_garbage(store, older_than=0, grace=0.2)
            while not out.empty():
                what, ident = out.get()
                done = done or what == "done"
                if what != "done":
                    reported.append((what, ident))
            assert proc.is_alive() or done or not out.empty() or proc.exitcode == 0
    finally:
        proc.join(60)
    assert proc.exitcode == 0
    assert rounds >= 2  # maintenance really ran while the writer wrote
    assert len([r for r in reported if r[0] == "checkpoint"]) == WRITES
    store = new_store.reopen(store)
    for what, ident in reported:
        if what == "checkpoint":
            c = store.get_checkpoint(ident)
            assert store.load_stage_output(ident, c.stage) is not None
        else:
            tl = store.get_timeline(ident)
            assert len(store.get_timeline_frames(ident)) == tl.frame_count == 10
    report = store.verify()
    assert report.ok, [p.message for p in report.damage]
    collect_garbage(store, older_than=0, lease_ttl=0, grace=0)
    assert store.verify().problems == ()
