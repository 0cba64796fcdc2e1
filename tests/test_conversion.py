"""Old embedded stores (formats 1 and 2: the log engine's files under ``catalog/``)
convert to the SQLite catalog on their first open for writing, all or nothing.

- both fixtures (written by the old engine, with what it read in ``expected.json``) open
  with every record and output equal to what the old code read, outputs byte for byte
  (so with the same hashes); the marker then says format 3 and ``catalog/`` is gone;
- two processes opening an old store at once convert it once;
- a checkpoint whose parent chain the old engine lost (its resurrection: a pruned
  ancestor purged while a descendant stayed) is not carried over;
- a store the old code cannot read (damage), or one an old process still writes, is
  refused with a typed error and left exactly as it was;
- a store from before the marker converts too, and so does one opened by its old
  ``duckdb://`` URL (with a DeprecationWarning).

A conversion killed halfway is in ``test_crash.py`` (``conversion``); reading an old store
from a process that may not write it, in ``test_sqlite_store.py``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import multiprocessing
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

import localckpt
from localckpt.canonical import content_hash
from localckpt.errors import BackendUnavailableError, CorruptDataError
from localckpt.ids import new_id
from localckpt.schema import to_dict

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
FORMATS = ["format1", "format2"]
KINDS = ("timelines", "checkpoints", "tombstones", "tags", "outputs")


def _expected(fmt: str) -> dict[str, Any]:
    doc = json.loads((FIXTURES / fmt / "expected.json").read_text("utf-8"))
    return {k: doc[k] for k in KINDS}


def _as_json(store: localckpt.Store, hashes: list[str]) -> dict[str, Any]:
    """The store's records (every stored one, deleted or not) and these outputs, in the
    form of expected.json."""
    cat = store.catalog
    timelines = cat.timelines()
    return {
        "timelines": [to_dict(t) for t in timelines],
        "checkpoints": sorted((to_dict(c) for t in timelines for c in cat.tree(t.id)),
                              key=lambda d: d["id"]),
        "tombstones": [to_dict(x) for x in cat.tombstones(None)],
        "tags": [to_dict(g) for g in cat.tags(None)],
        "outputs": {h: base64.b64encode(b).decode() for h, b in cat.outputs(hashes).items()},
    }


def _text(d: Any) -> str:
    return json.dumps(d, sort_keys=True, ensure_ascii=False)  # tells -0.0 from 0, 1 from 1.0


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".convert.lock"}


@pytest.fixture(params=FORMATS)
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / request.param / "store", root)
    return request.param, root


def test_each_fixture_converts_with_every_record_and_output_equal(
        old_store: tuple[str, Path]) -> None:
    fmt, root = old_store
    want = _expected(fmt)
    objects_before = {k: v for k, v in _files(root).items() if k.startswith("objects")}
    with localckpt.open(root) as store:
        got = _as_json(store, list(want["outputs"]))
        for kind in KINDS:
            assert _text(got[kind]) == _text(want[kind]), kind
        for h, data in store.catalog.outputs(list(want["outputs"])).items():
            assert content_hash(data) == h
        report = store.verify()
        assert report.ok, [p.message for p in report.damage]
        assert store.catalog.storage_problems() == []
        live = store.list_timelines()
        assert live and all(len(store.get_timeline_frames(t.id)) == t.frame_count for t in live)
        more = store.save_stage_output(live[0].id, None, "after", {"converted": True})
    assert json.loads((root / "LOCALCKPT.json").read_text())["format"] == 3
    assert not (root / "catalog").exists()
    assert (root / "catalog.sqlite").is_file()
    assert not list(root.glob("catalog.sqlite.tmp-*"))
    after = _files(root)
    assert {k: v for k, v in after.items() if k.startswith("objects")} == objects_before
    with localckpt.open(root) as store:  # and it stays converted
        assert store.load_stage_output(more, "after") == {"converted": True}
        assert _text(_as_json(store, list(want["outputs"]))["tags"]) == _text(want["tags"])


def test_a_store_from_before_the_marker_converts(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / "format1" / "store", root)
    (root / "LOCALCKPT.json").unlink()
    want = _expected("format1")
    with localckpt.open(root) as store:
        assert _text(_as_json(store, list(want["outputs"]))) == _text(want)
    assert json.loads((root / "LOCALCKPT.json").read_text())["format"] == 3


def test_an_old_duckdb_url_opens_and_converts_with_a_deprecation_warning(tmp_path: Path
                                                                          ) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / "format2" / "store", root)
    with pytest.warns(DeprecationWarning, match=rf"open it as {root}"), \
            localckpt.open(f"duckdb://{root}") as store:
        assert [t.id for t in store.catalog.timelines()] == [
            t["id"] for t in _expected("format2")["timelines"]]
    assert json.loads((root / "LOCALCKPT.json").read_text())["format"] == 3


# -- two processes at once ------------------------------------------------------------------


def _open_counting(root: str, log: str, barrier: Any, results: Any) -> None:
    """Open root (an old store) once every opener is ready; log each conversion."""
    import os

    from localckpt.backends import conversion

    real = conversion._fill

    def fill(catalog: Any, where: str, allow_live: bool = False) -> None:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        real(catalog, where, allow_live)

    conversion._fill = fill  # type: ignore[assignment]
    try:
        barrier.wait(60)
        with localckpt.open(root) as store:
            results.put(("ok", [t.id for t in store.catalog.timelines()]))
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_processes_opening_an_old_store_at_once_convert_it_once(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / "format2" / "store", root)
    log = tmp_path / "conversions.log"
    ctx = multiprocessing.get_context("fork")
    n = 3
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_counting, args=(str(root), str(log), barrier, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    want = [t["id"] for t in _expected("format2")["timelines"]]
    assert outcomes == [("ok", want)] * n, outcomes
    assert len(log.read_text().split()) == 1, "converted more than once"
    assert not (root / "catalog").exists()


# -- what is not carried over, and what is refused ----------------------------------------------

_HEADER = struct.Struct(">2scII")


def _frame(kind: bytes, payload: bytes) -> bytes:
    """A frame of the old engine's log (its b frames' CRC also covers the kind)."""
    crc = zlib.crc32(payload, zlib.crc32(b"b")) if kind == b"b" else zlib.crc32(payload)
    return _HEADER.pack(b"\xa7L", kind, len(payload), crc) + payload


def test_a_checkpoint_whose_parent_chain_was_lost_is_not_carried_over(tmp_path: Path) -> None:
    """What the old engine's resurrection left: a pruned ancestor purged, descendants
    kept (in a segment compaction had not reached). They were deleted: they stay so."""
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / "format2" / "store", root)
    want = _expected("format2")
    template = next(c for c in want["checkpoints"] if c["parent_id"] is not None)
    orphan = dict(template, id=new_id(), parent_id=new_id())  # its parent was purged
    below = dict(template, id=new_id(), parent_id=orphan["id"])
    batch = json.dumps({"t": [], "c": [orphan, below]}).encode()
    (root / "catalog" / "seg-zz-resurrected.log").write_bytes(_frame(b"B", batch))
    with localckpt.open(root) as store:
        assert store.catalog.checkpoints([orphan["id"], below["id"]]) == []
        assert _text(_as_json(store, list(want["outputs"]))) == _text(want)
        assert store.verify().ok


def test_a_damaged_old_store_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / "format2" / "store", root)
    run = sorted((root / "catalog").glob("run-*.run"))[0]
    data = bytearray(run.read_bytes())
    data[len(data) // 2] ^= 0x10
    run.write_bytes(bytes(data))
    before = _files(root)
    with pytest.raises(CorruptDataError, match=run.name):
        localckpt.open(root)
    assert _files(root) == before, "a refused conversion changed the store"


def test_a_store_an_old_process_still_writes_is_refused_and_left_as_it_was(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / "format2" / "store", root)
    before = _files(root)
    held = [open(p, "rb") for p in sorted((root / "catalog").glob("seg-*.log"))]  # noqa: SIM115
    try:
        for fh in held:  # what a live writer of the old engine holds on its segment
            fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(BackendUnavailableError, match="older localckpt is writing"):
            localckpt.open(root)
    finally:
        for fh in held:
            fh.close()
    assert _files(root) == before
    with localckpt.open(root) as store:  # once it is gone, the store converts
        assert [t.id for t in store.catalog.timelines()] == [
            t["id"] for t in _expected("format2")["timelines"]]
