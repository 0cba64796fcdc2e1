"""Writer processes for the multi-process workloads (spawned: importable top-level
functions).

Every writer opens its store (or saver) itself, waits at a barrier so that all start
together, saves ``n`` outputs as 10-stage chains (or, with ``stop``, until that event is
set) and puts one result on the queue: its start and end (``time.monotonic``, shared by
the processes of one machine), the start and duration of every save, and how many saves
raised (a save that raises is counted and the chain goes on from the last saved parent).
With ``hold``, it then waits at that second barrier before closing, so that the parent
can count the connections the writers still hold.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from .data import make_output

__all__ = ["saver_worker", "store_worker"]

_STAGES = ("detect", "track", "ocr", "pose", "ball", "team", "jersey", "event", "camera", "score")


def _outputs(tag: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [(_STAGES[i % 10], make_output(f"{tag}-{i}", 2048)) for i in range(n)]


def _save_loop(save: Callable[[str | None, str, dict[str, Any]], str], tag: str, n: int,
               barrier: Any, stop: Any) -> dict[str, Any]:
    outs = _outputs(tag, n if stop is None else 200)
    starts: list[float] = []
    seconds: list[float] = []
    errors = 0
    messages: list[str] = []
    barrier.wait()
    t0 = time.monotonic()
    parent: str | None = None
    i = 0
    while (i < n) if stop is None else not stop.is_set():
        stage, out = outs[i % len(outs)]
        if stop is not None:
            out = {**out, "i": i}  # distinct outputs however long it runs
        s0 = time.monotonic()
        try:
            parent = save(None if i % 10 == 0 else parent, stage, out)
        except Exception as exc:
            errors += 1
            if len(messages) < 5:
                messages.append(f"{type(exc).__name__}: {exc}"[:300])
        starts.append(s0)
        seconds.append(time.monotonic() - s0)
        i += 1
    return {"t0": t0, "t1": time.monotonic(), "starts": starts, "seconds": seconds,
            "errors": errors, "messages": messages}


def store_worker(open_args: dict[str, Any], tid: str | None, n: int, tag: str, barrier: Any,
                 results: Any, stop: Any = None, hold: Any = None) -> None:
    """Save into timeline tid (None: a new timeline of the worker's own)."""
    from .configs import open_from_args

    try:
        store = open_from_args(open_args)
        if tid is None:
            import numpy as np

            tid = store.create_timeline("bench.mp4", "bench", [np.zeros((8, 8, 3), np.uint8)]).id
        else:
            store.get_timeline(tid)
        result = _save_loop(lambda p, s, o: store.save_stage_output(tid, p, s, o), tag, n,
                            barrier, stop)
    except BaseException:
        results.put({"failed": traceback.format_exc()[-2000:]})
        raise
    results.put(result)
    if hold is not None:
        hold.wait()
    store.close()


def saver_worker(kind: str, target: str, n: int, tag: str, barrier: Any, results: Any,
                 stop: Any = None, hold: Any = None) -> None:
    """The same for a LangGraph saver (its own connection to the shared database)."""
    from .peers.langgraph import SaverPeer

    try:
        peer = SaverPeer(kind, target)
        if kind == "sqlite":  # wait for the writer lock as long as it takes (default 5 s)
            peer._con.execute("PRAGMA busy_timeout = 120000")
        result = _save_loop(lambda p, s, o: peer.put(tag, p, s, o), tag, n, barrier, stop)
    except BaseException:
        results.put({"failed": traceback.format_exc()[-2000:]})
        raise
    results.put(result)
    if hold is not None:
        hold.wait()
    peer.close()
