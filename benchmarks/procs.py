"""Worker processes for the two-writers workload (spawned: importable top-level functions)."""

from __future__ import annotations

import time
from typing import Any

from .data import make_output

__all__ = ["saver_worker", "store_worker"]

_STAGES = ("detect", "track", "ocr", "pose", "ball", "team", "jersey", "event", "camera", "score")


def _outputs(tag: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [(_STAGES[i % 10], make_output(f"{tag}-{i}", 2048)) for i in range(n)]


def store_worker(open_args: dict[str, Any], tid: str, n: int, tag: str, barrier: Any,
                 results: Any) -> None:
    """Open the store, wait for the other writer, save n outputs as 10-stage chains."""
    from .configs import open_from_args

    store = open_from_args(open_args)
    outs = _outputs(tag, n)
    store.get_timeline(tid)
    barrier.wait()
    t0 = time.monotonic()
    parent = None
    for i, (stage, out) in enumerate(outs):
        parent = store.save_stage_output(tid, None if i % 10 == 0 else parent, stage, out)
    results.put((t0, time.monotonic()))
    store.close()


def saver_worker(kind: str, target: str, n: int, tag: str, barrier: Any, results: Any) -> None:
    """The same for a LangGraph saver (its own connection to the shared database)."""
    from .peers.langgraph import SaverPeer

    peer = SaverPeer(kind, target)
    outs = _outputs(tag, n)
    barrier.wait()
    t0 = time.monotonic()
    parent = None
    for i, (stage, out) in enumerate(outs):
        parent = peer.put(tag, None if i % 10 == 0 else parent, stage, out)
    results.put((t0, time.monotonic()))
    peer.close()
