"""Random byte flips in every kind of catalog file: never a silent change or loss.

For each trial one byte of one file (a sealed segment, a format-1 pack, a compacted run,
a blob file of outputs) is XORed with a random non-zero value, and a fixed list of
reads is made: each must give the answer of the undamaged store, or CorruptDataError
naming the damaged file. Whenever a read fails, ``storage_problems`` names the file.
Then a full compaction runs (or refuses with CorruptDataError), and every read that
succeeded before must give the same answer after it: compaction loses nothing that was
readable. Trials share a pristine store through hard links (catalog files are never
written in place), so each costs one copied file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from embedded_helpers import frames, timeline_batch
from localckpt.backends._segments import encode_batch, encode_output
from localckpt.backends.embedded import EmbeddedCatalog

import localckpt
from localckpt.catalog import Batch
from localckpt.errors import CorruptDataError
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.schema import to_dict
from localckpt.types import Tag, Tombstone

TRIALS = 200

Read = Callable[[localckpt.Store], Any]


def _populate(root: Path) -> dict[str, Any]:
    """Two timelines with branches, outputs, a tag and a tombstone; closed."""
    with localckpt.open(root, create=True) as store:
        tls = [store.create_timeline(f"{i}.mp4", "p", frames()) for i in range(2)]
        tips = []
        for t in tls:
            parent = t.root_checkpoint_id
            for i in range(4):
                parent = store.save_stage_output(t.id, parent, f"s{i}", {"t": t.id, "i": i})
            store.save_stage_output(t.id, t.root_checkpoint_id, "side", {"side": t.id})
            tips.append(parent)
        now = utcnow()
        store.catalog.commit(Batch(tags=[Tag(new_id(), "best", tips[0], tls[0].id, now)]))
        # a tombstone of nothing present: compaction then has nothing to drop, and every
        # difference after it is a loss
        store.catalog.commit(Batch(tombstones=[
            Tombstone(new_id(), new_id(), "checkpoint", tls[1].id, now)]))
    return {"timelines": [t.id for t in tls], "tips": tips}


def _reads(info: dict[str, Any], ids: list[str]) -> dict[str, Read]:
    reads: dict[str, Read] = {"list": lambda s: s.list_timelines()}
    for n, tid in enumerate(info["timelines"]):
        reads[f"tree{n}"] = lambda s, t=tid: s.checkpoints(t)
    for n, tip in enumerate(info["tips"]):
        reads[f"lineage{n}"] = lambda s, c=tip: s.lineage(c)
        for i in range(4):
            reads[f"load{n}.{i}"] = lambda s, c=tip, i=i: s.load_stage_output(c, f"s{i}")
    for n, cid in enumerate(ids):
        reads[f"get{n}"] = lambda s, c=cid: s.get_checkpoint(c)
    reads["children"] = lambda s: s.children(ids[0])
    reads["tags"] = lambda s: s.catalog.tags(None)
    reads["tombstones"] = lambda s: s.catalog.tombstones(None)
    reads["deleted"] = lambda s: s.catalog.deleted(ids)
    reads["prefix"] = lambda s: s.catalog.find_ids("checkpoint", ids[3][:20], 5)
    return reads


def _answers(store: localckpt.Store, reads: dict[str, Read], where: str) -> dict[str, Any]:
    got = {}
    for name, read in reads.items():
        try:
            got[name] = read(store)
        except CorruptDataError as exc:
            assert where in str(exc), f"{name}: {exc} does not name {where}"
            got[name] = "corrupt"
    return got


@pytest.fixture(scope="module", params=["segment", "pack", "run", "blob"])
def pristine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[str, Path, dict[str, Read], dict[str, Any]]:
    kind = request.param
    root = tmp_path_factory.mktemp(f"pristine-{kind}")
    if kind == "pack":
        info = _format1(root)
    else:
        info = _populate(root)
        if kind in ("run", "blob"):
            with localckpt.open(root) as store:
                assert store.catalog.compact(full=True) >= 1
    with _opened(root) as store:
        ids = sorted(c.id for t in info["timelines"] for c in store.catalog.tree(t))
        reads = _reads(info, ids)
        expected = _answers(store, reads, "-")
    assert "corrupt" not in expected.values()
    return kind, root, reads, expected


def _format1(root: Path) -> dict[str, Any]:
    """A format-1 store: one pack holding every record (no seal frames then)."""
    (root / "catalog").mkdir()
    (root / "LOCALCKPT.json").write_text(json.dumps({"format": 1}))
    batches = [timeline_batch(6, t) for t in range(2)]
    pack = b""
    for batch, _, _ in batches:
        pack += b"".join(encode_output(h, d) for h, d in batch.outputs.items())
        pack += encode_batch({"t": [to_dict(t) for t in batch.timelines],
                              "c": [to_dict(c) for c in batch.checkpoints]})
    (root / "catalog" / f"pack-{new_id()}.pack").write_bytes(pack)
    with localckpt.open(root, create=True):
        pass  # the objects directory
    return {"timelines": [tid for _, tid, _ in batches], "tips": [tip for _, _, tip in batches]}


class _opened:
    """A store whose catalog never compacts by itself (so that trials are repeatable)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __enter__(self) -> localckpt.Store:
        original = EmbeddedCatalog._maybe_compact
        EmbeddedCatalog._maybe_compact = lambda self: None  # type: ignore[method-assign]
        try:
            self.store = localckpt.open(self.root)
        finally:
            EmbeddedCatalog._maybe_compact = original  # type: ignore[method-assign]
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def _victims(root: Path, kind: str) -> list[Path]:
    pattern = {"segment": "seg-*.log", "pack": "pack-*.pack", "run": "run-*.run",
               "blob": "blobs/blob-*.blob"}[kind]
    found = sorted((root / "catalog").glob(pattern))
    assert found, f"no {kind} file in {root}"
    return found


def _trial_dir(pristine_root: Path, trial: Path, victim: Path, offset: int,
               xor: int) -> Path:
    """A copy of the store (hard links) whose victim file has one byte flipped."""
    for dirpath, _, files in os.walk(pristine_root):
        rel = Path(dirpath).relative_to(pristine_root)
        (trial / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            src = Path(dirpath) / name
            if src == victim:
                data = bytearray(src.read_bytes())
                data[offset] ^= xor
                (trial / rel / name).write_bytes(bytes(data))
            elif not name.endswith(".lock"):
                os.link(src, trial / rel / name)
    return trial / victim.relative_to(pristine_root)


def test_byte_flips_raise_naming_the_file_or_change_nothing(
    pristine: tuple[str, Path, dict[str, Read], dict[str, Any]], tmp_path: Path
) -> None:
    kind, root, reads, expected = pristine
    rng = random.Random(f"flips-{kind}")
    victims = _victims(root, kind)
    outcomes = {"no effect": 0, "detected": 0}
    for n in range(TRIALS):
        victim = rng.choice(victims)
        offset = rng.randrange(victim.stat().st_size)
        trial = tmp_path / f"t{n}"
        flipped = _trial_dir(root, trial, victim, offset, rng.randrange(1, 256))
        where = flipped.name
        context = f"{kind} trial {n}: byte {offset} of {victim.name}"
        try:
            with _opened(trial) as store:
                before = _answers(store, reads, where)
                problems = store.catalog.storage_problems()
        except CorruptDataError as exc:  # the open itself refused: nothing was answered
            assert where in str(exc), context
            before = dict.fromkeys(reads, "corrupt")
            problems = [(str(flipped), str(exc))]
        for name, value in before.items():
            assert value == "corrupt" or value == expected[name], f"{context}: {name} changed"
        damaged = "corrupt" in before.values()
        if damaged:
            assert any(where in p[0] for p in problems), f"{context}: verify missed it"
        outcomes["detected" if damaged else "no effect"] += 1
        try:
            with _opened(trial) as store:
                store.catalog.compact(full=True)
        except CorruptDataError as exc:
            assert where in str(exc), context
        with _opened(trial) as store:
            after = _answers(store, reads, where)
        for name, value in before.items():
            if value != "corrupt":
                assert after[name] == value, f"{context}: compaction lost {name}"
        shutil.rmtree(trial)
    assert outcomes["detected"] > TRIALS // 4, outcomes  # the flips did reach the data


def test_a_damaged_manifest_refuses_reads_but_lets_verify_look(tmp_path: Path) -> None:
    _populate(tmp_path)
    with localckpt.open(tmp_path) as store:
        store.catalog.compact(full=True)
    manifest = tmp_path / "catalog" / "MANIFEST"
    data = bytearray(manifest.read_bytes())
    data[len(data) // 2] ^= 0x20
    manifest.write_bytes(bytes(data))
    with _opened(tmp_path) as store:
        with pytest.raises(CorruptDataError, match="MANIFEST"):
            store.list_timelines()
        problems = store.catalog.storage_problems()
        assert [p for p, _ in problems] == [str(manifest)]
