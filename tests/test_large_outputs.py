"""Large stage outputs on every backend (issue 9): listings never read output bytes, a
load is one read plus one decode, and a save holds no extra copies of the output."""

from __future__ import annotations

import json
import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import localckpt
import localckpt.canonical
from localckpt import Store

FRAME = np.zeros((4, 4, 3), np.uint8)


def _frames_output(frames: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    return {"frames": [{"sequence": i, "detections": [
        {"box": [rnd.uniform(0, 1280) for _ in range(4)], "label": "player",
         "score": rnd.random()} for _ in range(5)]} for i in range(frames)]}


def _count(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[Any]:
    """Record each call of owner.name (still calling it)."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def _chain(store: Store, frames: int = 300) -> tuple[str, list[str]]:
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    parent, ids = None, []
    for k, stage in enumerate(("detect", "track", "ocr")):
        parent = store.save_stage_output(tl.id, parent, stage, _frames_output(frames, k))
        ids.append(parent)
    return tl.id, ids


def test_listings_never_read_output_bytes(
    new_store: Callable[..., Store], store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store()
    tid, ids = _chain(store)
    reopened = new_store.reopen(store) if new_store.can_reopen(store_kind) else store
    cat = reopened.catalog
    reads, loads = _count(monkeypatch, cat, "outputs"), _count(monkeypatch, cat, "load_values")
    outputs_calls = _count(monkeypatch, type(cat), "outputs")
    tree = reopened.checkpoints(tid)
    chain = reopened.lineage(ids[-1])
    kids = reopened.children(ids[0])
    got = reopened.get_checkpoint(ids[-1])
    assert [c.id for c in chain][1:] == ids and [c.id for c in kids] == [ids[1]]
    assert len(tree) == 4 and set(got.stage_hashes) == {"detect", "track", "ocr"}
    assert reads == [] and loads == [] and outputs_calls == []
    assert got.stage_outputs["ocr"]["frames"][0]["sequence"] == 0  # loads on access only


def test_load_is_one_read_and_one_decode(
    new_store: Callable[..., Store], store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store()
    _, ids = _chain(store, frames=2000)  # ~1.3 MB per output
    expected = _frames_output(2000, 1)
    store.get_checkpoint(ids[-1])  # warm the record caches: only the output is measured
    cat = store.catalog
    reads = _count(monkeypatch, type(cat), "outputs")
    fast, exact = _count(monkeypatch, orjson, "loads"), _count(monkeypatch, json, "loads")
    assert store.load_stage_output(ids[-1], "track") == expected
    assert len(reads) == 1 and list(reads[0][1]) == [
        store.get_checkpoint(ids[-1]).stage_hashes["track"]]
    big = [len(args[0]) for args in fast + exact if len(args[0]) > 100_000]
    assert len(big) == 1 and big[0] > 1_000_000, big  # the output, decoded once


@pytest.mark.parametrize("kind", ["memory", "postgres-local"])
def test_a_save_holds_no_extra_copy_of_a_large_output(
    new_store: Callable[..., Store], kind: str
) -> None:
    store = new_store(kind)
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    value = _frames_output(4000, 3)
    size = len(localckpt.canonical.canonical_bytes(value))
    store.save_stage_output(tl.id, None, "warm", {"x": 1})
    tracemalloc.start()
    try:
        store.save_stage_output(tl.id, None, "detect", value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the encoded bytes once (orjson's buffer keeps up to ~1.6x their length while the save
    # runs; the memory catalog keeps them), plus bounded bookkeeping: no second copy
    assert peak < 2.0 * size, (peak, size)


def test_format_1_outputs_read_and_sync_on_every_backend(
    new_store: Callable[..., Store], store_kind: str
) -> None:
    """Outputs written by code before orjson (canonical JSON format 1) keep their bytes:
    they read, verify and sync as stored, beside format-2 outputs of equal value."""
    import attrs

    from localckpt.backends.sql.pg_json import format_1_bytes
    from localckpt.catalog import Batch
    from localckpt.ids import new_id
    from localckpt.records import utcnow

    store = new_store()
    value = {"score": 1e-05, "tiny": [2.5e-07, 1e-9], "n": 2**70}
    old = format_1_bytes(value)
    h_old = localckpt.canonical.content_hash(old)
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    root = store.get_checkpoint(tl.root_checkpoint_id)
    legacy = attrs.evolve(root, id=new_id(), parent_id=root.id, stage="detect",
                          stage_hashes={"detect": h_old}, created_at=utcnow())
    store.catalog.commit(Batch(checkpoints=[legacy], outputs={h_old: old}))
    new = store.save_stage_output(tl.id, legacy.id, "track", value)
    got = store.get_checkpoint(new)
    assert got.stage_hashes["track"] != h_old  # same value, format 2 bytes
    assert store.load_stage_output(new, "detect") == value == store.load_stage_output(
        new, "track")
    assert store.catalog.outputs([h_old]) == {h_old: old}
    other = new_store("memory" if store_kind != "memory" else "embedded")
    localckpt.sync(store, other)
    assert other.catalog.outputs([h_old]) == {h_old: old}
    assert other.load_stage_output(new, "detect") == value


def test_new_embedded_store_names_its_canonical_format(new_store: Callable[..., Store]) -> None:
    store = new_store("embedded")
    marker = json.loads((Path(store.catalog.engine.path).parent / "LOCALCKPT.json").read_text())
    assert marker["canonical_json"] == localckpt.canonical.FORMAT == 2
