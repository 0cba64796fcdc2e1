"""The reader of old embedded stores (formats 1 and 2), which their conversion calls.

1. The fixtures of ``tests/fixtures/legacy`` (written by the old log engine, with what it
   read from them in ``expected.json``) read back equal, outputs byte for byte.
2. Damage: byte flips and truncations of their files give CorruptDataError naming the file,
   or the same contents; never other data, never a foreign exception. The one exception
   is the formats' own: a segment (or pack) cut at a frame boundary, or whose last commit
   is damaged, is read as its writer's crash (a torn tail), as the old engine read it.
(The comparison with the old engine on stores it made went with the engine; the fixtures
hold what it read.)
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localckpt.backends.legacy import (
    LegacyContents,
    is_legacy_store,
    legacy_format,
    read_legacy,
)
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.errors import BackendUnavailableError, CorruptDataError
from localckpt.schema import to_dict

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
FORMATS = ["format1", "format2"]
HEADER = struct.Struct(">2scII")


def as_json(contents: LegacyContents) -> dict[str, Any]:
    """contents in the form of expected.json (JSON text tells -0.0 from 0 and 1 from 1.0)."""
    return {
        "timelines": [to_dict(t) for t in contents.timelines],
        "checkpoints": sorted((to_dict(c) for c in contents.checkpoints),
                              key=lambda d: d["id"]),
        "tombstones": [to_dict(x) for x in contents.tombstones],
        "tags": [to_dict(g) for g in contents.tags],
        "outputs": {h: base64.b64encode(b).decode() for h, b in contents.outputs.items()},
    }


def text(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, ensure_ascii=False)


def expected(fmt: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / fmt / "expected.json").read_text("utf-8"))
    return {k: doc[k] for k in ("timelines", "checkpoints", "tombstones", "tags", "outputs")}


@pytest.fixture(params=FORMATS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """(format, a copy of that fixture store)."""
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / request.param / "store", root)
    return request.param, root


def frame(kind: bytes, payload: bytes) -> bytes:
    """A frame as the old engine wrote it (its b frames' CRC also covers the kind)."""
    crc = zlib.crc32(payload, zlib.crc32(b"b")) if kind == b"b" else zlib.crc32(payload)
    return HEADER.pack(b"\xa7L", kind, len(payload), crc) + payload


def add_segment(root: Path, data: bytes, name: str = "seg-zz-added.log") -> Path:
    path = root / "catalog" / name
    path.write_bytes(data)
    return path


# -- 1. the fixtures ------------------------------------------------------------------------


def test_each_fixture_reads_as_the_old_engine_read_it(store: tuple[str, Path]) -> None:
    fmt, root = store
    got = as_json(read_legacy(root / "catalog"))
    want = expected(fmt)
    for kind in ("timelines", "checkpoints", "tombstones", "tags"):
        assert [text(d) for d in got[kind]] == [text(d) for d in want[kind]], kind
    assert got["outputs"] == want["outputs"]
    contents = read_legacy(root / "catalog")
    for h, data in contents.outputs.items():
        assert content_hash(data) == h
    used = {h for c in contents.checkpoints for h in c.stage_hashes.values()}
    assert used <= set(contents.outputs), "every output a checkpoint names is there"


def test_the_fixtures_hold_what_they_promise() -> None:
    """The shapes the conversion must handle are really in the committed files."""
    c2 = read_legacy(FIXTURES / "format2" / "store" / "catalog")
    cat = FIXTURES / "format2" / "store" / "catalog"
    assert len(list(cat.glob("run-*.run"))) == 2 and list(cat.glob("blobs/*.blob"))
    assert len(list(cat.glob("seg-*.log"))) == 3  # sealed, unsealed (torn), absorbed
    assert len({c.timeline_id for c in c2.checkpoints}) >= 3
    assert any(c.merged_from for c in c2.checkpoints)
    assert any(c.is_scenario and c.scenario_label for c in c2.checkpoints)
    assert {x.kind for x in c2.tombstones} == {"checkpoint", "timeline", "tag"}
    assert c2.tags and max(len(b) for b in c2.outputs.values()) > 64 << 10
    stats = text(as_json(c2))
    for tricky in ("1180591620717411303424", "-0.0", "1e+16", "\\u0000", "日本語"):
        assert tricky in stats or any(tricky.encode() in b for b in c2.outputs.values())
    c1 = read_legacy(FIXTURES / "format1" / "store" / "catalog")
    assert c1.checkpoints and all(c.merged_from is None and c.stage == ""
                                  for c in c1.checkpoints)


def test_checkpoints_come_parents_first(store: tuple[str, Path]) -> None:
    _, root = store
    seen: set[str] = set()
    checkpoints = read_legacy(root / "catalog").checkpoints
    ids = {c.id for c in checkpoints}
    for c in checkpoints:
        assert c.parent_id is None or c.parent_id not in ids or c.parent_id in seen
        seen.add(c.id)


def test_reading_changes_nothing(store: tuple[str, Path]) -> None:
    _, root = store

    def snapshot() -> dict[str, tuple[int, int, bytes]]:
        return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size,
                                           p.read_bytes())
                for p in sorted(root.rglob("*")) if p.is_file()}

    before = snapshot()
    read_legacy(root / "catalog")
    assert snapshot() == before


def test_legacy_format_and_is_legacy_store(store: tuple[str, Path], tmp_path: Path) -> None:
    fmt, root = store
    assert legacy_format(root) == int(fmt[-1]) and is_legacy_store(root)
    marker = root / "LOCALCKPT.json"
    marker.unlink()  # a store from before the marker
    assert legacy_format(root) == 0 and is_legacy_store(str(root))
    for content, legacy in [('{"format": 3}', False), ('{"format": true}', False),
                            ('{"kind": "x"}', True), ("{not json", False), ("[1]", False)]:
        marker.write_text(content)
        assert is_legacy_store(root) is legacy, content
    empty = tmp_path / "empty"
    (empty / "catalog").mkdir(parents=True)
    assert not is_legacy_store(empty), "a catalog/ without old files is not an old store"
    (empty / "catalog" / "catalog.sqlite").write_bytes(b"")
    assert not is_legacy_store(empty) and not is_legacy_store(tmp_path / "missing")
    (empty / "LOCALCKPT.json").write_text('{"format": 2}')
    assert is_legacy_store(empty)
    assert read_legacy(empty / "catalog").counts() == dict.fromkeys(
        ["timelines", "checkpoints", "tombstones", "tags", "outputs"], 0)
    assert read_legacy(tmp_path / "missing" / "catalog") == LegacyContents()


def test_a_record_seen_twice_is_kept_once_unless_it_differs(store: tuple[str, Path]) -> None:
    fmt, root = store
    want = expected(fmt)
    row = want["checkpoints"][-1]
    again = json.dumps({"t": want["timelines"], "c": [row]}).encode()
    add_segment(root, frame(b"B", again))
    assert as_json(read_legacy(root / "catalog")) == want
    changed = json.dumps({"t": [], "c": [dict(row, stats={"other": 1})]}).encode()
    path = add_segment(root, frame(b"b", changed), "seg-zz-other.log")
    with pytest.raises(CorruptDataError, match=rf"{row['id']}.*{path.name}"):
        read_legacy(root / "catalog")


def test_an_output_unlike_its_hash_is_corrupt(store: tuple[str, Path]) -> None:
    _, root = store
    data = canonical_bytes({"a": 1})
    add_segment(root, frame(b"O", content_hash(data).encode() + data))
    assert content_hash(data) in read_legacy(root / "catalog").outputs
    path = add_segment(root, frame(b"O", content_hash(data).encode() + b'{"a":2}'),
                       "seg-zz-bad.log")
    with pytest.raises(CorruptDataError, match=rf"{path.name}.*does not match its hash"):
        read_legacy(root / "catalog")


def test_a_bad_record_is_corrupt_and_names_its_file(store: tuple[str, Path]) -> None:
    fmt, root = store
    row = dict(expected(fmt)["checkpoints"][0], id="../escape")
    path = add_segment(root, frame(b"B", json.dumps({"c": [row]}).encode()))
    with pytest.raises(CorruptDataError, match=rf"{path.name}.*not a valid id"):
        read_legacy(root / "catalog")
    path.write_bytes(frame(b"B", b'["not", "a", "batch"]'))
    with pytest.raises(CorruptDataError, match=rf"{path.name}.*batch frame does not parse"):
        read_legacy(root / "catalog")


def _unsealed(root: Path) -> Path:
    """The segment a crash left unsealed (ending in a torn commit)."""
    for path in sorted((root / "catalog").glob("seg-*.log")):
        data = path.read_bytes()
        seal = data[-19:]
        if not (seal[:3] == b"\xa7LS" and int.from_bytes(seal[11:], "big") == len(data) - 19):
            return path
    raise AssertionError(f"no unsealed segment in {root}")


def test_a_torn_tail_is_skipped_but_a_valid_frame_after_it_is_damage(
        store: tuple[str, Path]) -> None:
    fmt, root = store
    path = _unsealed(root)
    ids = {c["id"] for c in expected(fmt)["checkpoints"]}
    assert {c.id for c in read_legacy(root / "catalog").checkpoints} == ids
    data = canonical_bytes({"after": "the torn tail"})
    with open(path, "ab") as fh:
        fh.write(frame(b"O", content_hash(data).encode() + data))
    with pytest.raises(CorruptDataError, match=rf"{path.name}.*a valid one follows"):
        read_legacy(root / "catalog")


def test_a_live_old_process_is_refused(store: tuple[str, Path]) -> None:
    fmt, root = store
    with open(_unsealed(root), "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # what a live writer of the old engine holds
        with pytest.raises(BackendUnavailableError, match="older localckpt is writing"):
            read_legacy(root / "catalog")
        got = read_legacy(root / "catalog", allow_live_writers=True)
        assert as_json(got) == expected(fmt)
    lock = root / "catalog" / "compact.lock"
    lock.touch()
    with open(lock, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # an old compaction under way
        with pytest.raises(BackendUnavailableError, match="compacting"):
            read_legacy(root / "catalog")
    assert as_json(read_legacy(root / "catalog")) == expected(fmt)


def test_a_run_named_by_the_manifest_must_be_there(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / "format2" / "store", root)
    run = sorted((root / "catalog").glob("run-*.run"))[0]
    run.unlink()
    with pytest.raises(CorruptDataError, match=rf"{run.name} .*missing"):
        read_legacy(root / "catalog")


def test_the_reader_needs_none_of_the_old_engine() -> None:
    code = ("import sys, localckpt.backends.legacy; "
            "print([n for n in sys.modules if n.startswith('localckpt.backends._') "
            "or n == 'localckpt.backends.embedded'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


# -- 2. damage --------------------------------------------------------------------------------

FLIPS = 300
CUTS = 100


def _victims(root: Path) -> list[Path]:
    return [p for p in sorted((root / "catalog").rglob("*")) if p.is_file() and p.stat().st_size]


def _frame_starts(data: bytes) -> list[int]:
    """Where the frames of a log start (the last may be torn)."""
    starts, pos = [], 0
    while pos + HEADER.size <= len(data):
        magic, _, length, _ = HEADER.unpack_from(data, pos)
        if magic != b"\xa7L":
            break
        starts.append(pos)
        pos += HEADER.size + length
    return starts or [0]


def _trial(pristine: Path, trial: Path, victim: Path, damage: Callable[[bytearray], bytes]
           ) -> Path:
    """A copy of the store's catalog (hard links) whose victim file is damaged."""
    for src in (pristine / "catalog").rglob("*"):
        dst = trial / src.relative_to(pristine)
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src == victim:
                dst.write_bytes(damage(bytearray(src.read_bytes())))
            else:
                os.link(src, dst)
    return trial / victim.relative_to(pristine)


def _judge(pristine: Path, trial: Path, victim: Path, at: int, clean: LegacyContents,
           outcomes: dict[str, int]) -> None:
    """The trial reads as the pristine store, or fails naming the victim, or (logs only)
    reads as the pristine store with the victim cut at the frame boundary at or before
    the damage (what a crash there would have left)."""
    try:
        got = read_legacy(trial / "catalog")
    except CorruptDataError as exc:
        assert victim.name in str(exc), f"{exc} does not name {victim.name}"
        outcomes["detected"] += 1
        return
    if text(as_json(got)) == text(as_json(clean)):
        outcomes["same"] += 1
        return
    assert victim.suffix in (".log", ".pack"), f"damage at {at} of {victim.name} read as other data"
    data = victim.read_bytes()
    cut = max(s for s in _frame_starts(data) if s <= at)
    shutil.rmtree(trial)
    _trial(pristine, trial, victim, lambda _: data[:cut])
    assert text(as_json(got)) == text(as_json(read_legacy(trial / "catalog"))), (
        f"damage at {at} of {victim.name} is neither detected nor a torn tail at {cut}")
    outcomes["torn tail"] += 1


@pytest.fixture(scope="module")
def pristine_stores(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, LegacyContents]]:
    found = []
    for fmt in FORMATS:
        root = tmp_path_factory.mktemp(fmt) / "store"
        shutil.copytree(FIXTURES / fmt / "store", root)
        found.append((root, read_legacy(root / "catalog")))
    return found


@pytest.mark.parametrize("how", ["flip", "cut"])
def test_damage_is_detected_or_changes_nothing(
        how: str, pristine_stores: list[tuple[Path, LegacyContents]], tmp_path: Path) -> None:
    rng = random.Random(f"legacy-{how}")
    outcomes = {"detected": 0, "same": 0, "torn tail": 0}
    for n in range(FLIPS if how == "flip" else CUTS):
        root, clean = rng.choice(pristine_stores)
        victim = rng.choice(_victims(root))
        at = rng.randrange(victim.stat().st_size)
        xor = rng.randrange(1, 256)

        def damage(b: bytearray, at: int = at, xor: int = xor) -> bytes:
            if how == "cut":
                return bytes(b[:at])
            b[at] ^= xor
            return bytes(b)

        trial = tmp_path / f"t{n}"
        _trial(root, trial, victim, damage)
        _judge(root, trial, victim, at, clean, outcomes)
        shutil.rmtree(trial)
    assert outcomes["detected"] > 0 and outcomes["same"] + outcomes["torn tail"] > 0, outcomes
