"""Helpers for the embedded store's tests: records built in bulk, descriptors, and a
second process driving the same store."""

from __future__ import annotations

import os

import numpy as np

import localckpt
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.errors import LocalckptError
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Checkpoint, Timeline

__all__ = ["Peer", "frames", "open_fds", "timeline_batch"]


def frames() -> list[np.ndarray]:
    return [np.full((2, 2, 3), 7, np.uint8)]


def timeline_batch(per: int, tag: int = 0) -> tuple[Batch, str, str]:
    """A timeline with a chain of per checkpoints (root included), as one batch:
    (batch, timeline id, tip id). Each checkpoint adds a small output of its own."""
    tid, now = new_id(), utcnow()
    root = Checkpoint(new_id(), tid, None, {}, {}, {"frames_extracted": 1}, False, "", now)
    timeline = Timeline(tid, "v.mp4", "bulk", 2.0, None, root.id, 1, now)
    checkpoints, outputs, hashes, parent = [root], {}, {}, root
    for i in range(per - 1):
        data = canonical_bytes({"tag": tag, "i": i})
        h = content_hash(data)
        outputs[h] = data
        stage = f"s{i % 5}"
        hashes = {**hashes, stage: h}
        parent = Checkpoint(new_id(), tid, parent.id, hashes, {}, {"i": i}, False, "", now,
                            stage=stage)
        checkpoints.append(parent)
    return Batch(timelines=[timeline], checkpoints=checkpoints, outputs=outputs), tid, parent.id


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- a second process driving the same store (for the two-process stateful test) ----------


def _peer_main(conn: object) -> None:
    """Command loop of the peer process: (op, *args) -> ("ok", value) | ("error", repr)."""
    store = None
    while True:
        op, *args = conn.recv()  # type: ignore[attr-defined]
        try:
            if op == "stop":
                if store is not None:
                    store.close()
                conn.send(("ok", None))  # type: ignore[attr-defined]
                return
            if op == "open":
                if store is not None:
                    store.close()
                store = localckpt.open(args[0])
                value = None
            elif op == "close":
                if store is not None:
                    store.close()
                store = None
                value = None
            else:
                assert store is not None
                value = _peer_op(store, op, args)
            conn.send(("ok", value))  # type: ignore[attr-defined]
        except Exception as exc:  # reported to the test
            conn.send(("error", f"{type(exc).__name__}: {exc}"))  # type: ignore[attr-defined]


def _peer_op(store: localckpt.Store, op: str, args: list[object]) -> object:
    if op == "save":
        tid, parent, stage, value = args
        return store.save_stage_output(tid, parent, stage, value)
    if op == "try_save":  # a save that must be refused: the name of its error
        tid, parent, stage, value = args
        try:
            return store.save_stage_output(tid, parent, stage, value)
        except LocalckptError as exc:
            return type(exc).__name__
    if op == "purge":
        return store.catalog.purge_deleted()
    if op == "tree":
        return sorted(c.id for c in store.catalog.tree(str(args[0])))
    if op == "lineage":
        return [c.id for c in store.lineage(str(args[0]))]
    if op == "load":
        return store.load_stage_output(str(args[0]), str(args[1]))
    raise ValueError(f"unknown peer op {op!r}")


class Peer:
    """A process of its own (spawned once) that runs store operations on request."""

    def __init__(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_peer_main, args=(child,), daemon=True)
        self._proc.start()

    def __call__(self, op: str, *args: object) -> object:
        self._conn.send((op, *args))
        if not self._conn.poll(120):
            raise TimeoutError(f"the peer process did not answer {op}")
        status, value = self._conn.recv()
        if status != "ok":
            raise AssertionError(f"peer {op}{args!r} failed: {value}")
        return value

    def stop(self) -> None:
        try:
            self("stop")
        finally:
            self._proc.join(30)
            if self._proc.is_alive():
                self._proc.kill()
