"""Byte flips in the SQLite catalog file: never a silent change, never a foreign error.

Three pristine stores of different shapes (a small one with every record kind; a bulk
one whose tables and indexes have interior pages; one with a large output in overflow
pages and free pages left by a purge) are closed cleanly, so that everything is in
``catalog.sqlite``. Each trial copies one, XORs one byte at a random position of the
file with a random non-zero value, opens it, and makes a fixed list of reads:
timelines, trees, checkpoints by id (one by one and all at once), lineages, children,
outputs, tags, tombstones, deletions, id prefixes. Each read must give the pristine
store's answer or raise CorruptDataError; nothing else may be raised. Then ``verify``
must return a report (never raise), and it must report damage whenever a read failed
or changed (verify runs on those trials, and on every fifth other one).

The default run makes 90 trials in all (30 per store); ``-m slow`` makes 600 (200 per
store). A read that returns other data is listed with the page it hit (its table or
index, and the page type, from SQLite's ``dbstat``) so the class of damage can be told.

One class is known and counted, not failed: a damaged entry of an index makes some
lookups it serves miss, without an error (an output by hash; an id prefix search, which
then finds fewer ids), and verify reports every one of those (SQLite's integrity check).
Where a miss would bring deleted data back or lose a record, the catalog reads a second
path and compares (tests at the end): a checkpoint or timeline not found by id is looked
up through the tail index, an id search is read again through the rows, deleted
timelines are read through two indexes, and a timeline's tombstones and tags are checked
against their count and digest in tree_sums.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _slow import require_slow

import localckpt
from localckpt.backends.sql import sqlite_catalog
from localckpt.backends.sql.schema import TABLES
from localckpt.catalog import Batch
from localckpt.errors import CorruptDataError
from localckpt.gc import collect_garbage
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Tag

QUICK_TRIALS = 30  # per store in the default run (90 in all)
SLOW_TRIALS = 200  # per store under -m slow (600 in all)
FRAME = np.zeros((4, 4, 3), np.uint8)
SHAPES = ["small", "bulk", "overflow"]

Read = Callable[[localckpt.Store], Any]


# -- the pristine stores ----------------------------------------------------------------------


def _small(store: localckpt.Store) -> None:
    """Every record kind: branches, a merge, tags, tombstones of each kind."""
    tls = [store.create_timeline(f"{i}.mp4", "p", [FRAME]) for i in range(3)]
    tips = []
    for t in tls[:2]:
        parent = None
        for i in range(4):
            parent = store.save_stage_output(t.id, parent, f"s{i}", {"t": t.id, "i": i},
                                             stats={"i": i}, config_overrides={"k": -0.0})
        side = store.save_stage_output(t.id, None, "side", {"side": t.id}, is_scenario=True,
                                       scenario_label="try")
        tips.append(store.merge(parent, side, "ours"))
    store.tag(tips[0], "best")
    store.tag(tips[1], "gone")
    store.untag("gone")
    store.delete_timeline(tls[2].id)
    doomed = store.save_stage_output(tls[1].id, tips[1], "doomed", {"d": 1})
    store.prune(doomed)


def _bulk(store: localckpt.Store) -> None:
    """3 timelines of 100 checkpoints each, every one with an output of its own: tables
    and indexes deep enough to have interior pages."""
    for t in range(3):
        tl = store.create_timeline(f"{t}.mp4", "p", [FRAME])
        parent = None
        for i in range(99):
            parent = store.save_stage_output(tl.id, parent if i % 5 else None, f"s{i % 3}",
                                             {"t": t, "i": i, "pad": "x" * (i * 7)})
    tl = store.list_timelines()[1]
    store.tag(store.checkpoints(tl.id)[-1].id, "bulk")


def _overflow(store: localckpt.Store) -> None:
    """A large output (overflow pages) and free pages left by a purge."""
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    keep = store.save_stage_output(tl.id, None, "big", {"n": list(range(30_000))})
    parent = keep
    for i in range(60):
        parent = store.save_stage_output(tl.id, parent, "s", {"i": i, "pad": "y" * 300})
    gone = store.save_stage_output(tl.id, keep, "gone", {"huge": "z" * 200_000})
    store.prune(gone)
    store.prune(store.children(keep)[0].id)
    collect_garbage(store, older_than=0)
    store.save_stage_output(tl.id, keep, "after", {"after": 1})


BUILDERS = {"small": _small, "bulk": _bulk, "overflow": _overflow}


def _reads(store: localckpt.Store, rng: random.Random) -> dict[str, Read]:
    """The reads of a trial, over ids taken from the pristine store."""
    cat = store.catalog
    timelines = [t.id for t in cat.timelines()]
    everything = {c.id: c for t in timelines for c in cat.tree(t)}
    ids = sorted(everything)
    sample = sorted(rng.sample(ids, min(15, len(ids))))
    tips = sorted(c.id for c in everything.values()
                  if not any(k.parent_id == c.id for k in everything.values()))
    hashes = sorted({h for c in everything.values() for h in c.stage_hashes.values()})
    reads: dict[str, Read] = {
        "timelines": lambda s: s.catalog.timelines(),
        "live timelines": lambda s: s.list_timelines(),
        "timeline page": lambda s: s.catalog.timeline_page(0, 100),
        "all checkpoints by id": lambda s: s.catalog.checkpoints(ids),
        "outputs": lambda s: s.catalog.outputs(hashes),
        "values": lambda s: s.catalog.load_values(hashes),
        "tags": lambda s: s.catalog.tags(None),
        "tombstones": lambda s: s.catalog.tombstones(None),
        "deleted": lambda s: s.catalog.deleted(ids + timelines),
        "missing outputs": lambda s: s.catalog.missing_outputs(hashes),
    }
    for tid in timelines:
        reads[f"timeline {tid}"] = lambda s, t=tid: s.catalog.timelines([t])
        reads[f"tree {tid}"] = lambda s, t=tid: s.catalog.tree(t)
        reads[f"tags of {tid}"] = lambda s, t=tid: s.catalog.tags([t])
        reads[f"tombstones of {tid}"] = lambda s, t=tid: s.catalog.tombstones([t])
    for cid in sample:
        reads[f"checkpoint {cid}"] = lambda s, c=cid: s.catalog.checkpoints([c])
        reads[f"children of {cid}"] = lambda s, c=cid: s.catalog.children(c)
        reads[f"prefix of {cid}"] = lambda s, c=cid: s.catalog.find_ids("checkpoint", c[:21])
    for name in sorted({g.name for g in cat.tags(None)}):
        reads[f"tag {name}"] = lambda s, n=name: s.tag_target(n)
        reads[f"tags named {name}"] = lambda s, n=name: s.catalog.tags_named(n)
    tags = sorted(g.id for g in cat.tags(None))
    if tags:
        reads["deleted tags"] = lambda s: s.catalog.deleted(tags, "tag")
    for tip in tips[:12]:
        reads[f"lineage {tip}"] = lambda s, c=tip: s.catalog.lineage(c)
        reads[f"outputs of {tip}"] = lambda s, c=tip: [
            dict(x.stage_outputs) for x in s.catalog.checkpoints([c])]
    return reads


def _answers(store: localckpt.Store, reads: dict[str, Read]) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for name, read in reads.items():
        try:
            got[name] = read(store)
        except CorruptDataError:
            got[name] = CORRUPT
        store.catalog.forget()  # each read goes to the file
    return got


CORRUPT = "<CorruptDataError>"


def _pages(path: Path) -> dict[int, str]:
    """page number -> "table-or-index pagetype" of a pristine file (from dbstat)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {int(n): f"{name} {kind}" for name, n, kind in
                conn.execute("SELECT name, pageno, pagetype FROM dbstat")}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, tuple[Path, dict[str, Read], dict[str, Any], dict[int, str]]]:
    made = {}
    for shape in SHAPES:
        root = tmp_path_factory.mktemp(f"pristine-{shape}") / "store"
        with localckpt.open(root, create=True, fsync=False) as store:
            BUILDERS[shape](store)
        assert not (root / "catalog.sqlite-wal").exists(), "the WAL was not checkpointed"
        with localckpt.open(root) as store:
            reads = _reads(store, random.Random(shape))
            expected = _answers(store, reads)
            assert CORRUPT not in expected.values()
            assert store.verify().ok
        made[shape] = (root, reads, expected, _pages(root / "catalog.sqlite"))
    return made


# -- the trials --------------------------------------------------------------------------------

#: Indexes whose damage reads as absence (see the xfail reproducers below): a lookup
#: by key that the damaged entry no longer matches finds nothing, without an error;
#: reads answered from the index alone (id prefixes, deletions) give its damaged keys.
KEY_INDEXES = ("sqlite_autoindex_", "checkpoints_id", "tombstones_target_id", "timelines_tail",
               "checkpoints_tail", "checkpoints_parent_id", "tags_timeline_id",
               "tombstones_timeline_id")
#: Pages of tables SQLite stores as their key's B-tree (WITHOUT ROWID): a leaf holds the
#: keys too, so a damaged key reads as absence like an index entry; a damaged value is
#: still caught by the row's digest. (outputs: a rowid table since migration 8, its hash
#: index an autoindex.)
CLUSTERED = tuple(f": {t.name} " for t in TABLES if t.name != "outputs")


#: reads the catalog checks against a second path: a damaged key must not change them
_CHECKED_TWICE = ("live timelines", "timeline page", "checkpoint ", "timeline ",
                  "all checkpoints by id", "tombstones", "tags", "tag ", "deleted",
                  "lineage", "children")


def _fewer(value: Any, expected: Any) -> bool:
    """value is expected with some records, outputs or ids left out."""
    if isinstance(expected, list) and isinstance(value, list):
        return all(v in expected for v in value) and len(value) < len(expected)
    if isinstance(expected, dict) and isinstance(value, dict):
        return value.items() < expected.items()
    if isinstance(expected, set) and isinstance(value, set):
        return value != expected  # missing_outputs: more missing; deleted: fewer deleted
    return isinstance(expected, tuple) and isinstance(value, tuple)  # timeline_page


def _known_escape(where: str, changed: list[str], got: dict[str, Any],
                  expected: dict[str, Any]) -> str | None:
    """The class of a trial whose reads changed without an error, when it is one of the
    known ones (an index entry damaged: the lookups it served miss, index-only reads
    give the damaged key); None otherwise (an escape the test reports)."""
    if not changed or not any(name in where for name in (*KEY_INDEXES, *CLUSTERED)):
        return None
    if any(name.startswith(_CHECKED_TWICE) for name in changed):
        return None
    if all(name.startswith("prefix of") or _fewer(got[name], expected[name])
           for name in changed):
        return "index entry damaged (reads miss it)"
    return None



def _where(offset: int, page_size: int, pages: dict[int, str]) -> str:
    page = offset // page_size + 1
    if offset < 100:
        return f"byte {offset} of the file header"
    return f"byte {offset} (page {page}: {pages.get(page, 'free or pointer-map page')})"


def _trials(shape: str, trials: int, pristine: dict[str, Any], tmp: Path) -> dict[str, int]:
    root, reads, expected, pages = pristine[shape]
    data = (root / "catalog.sqlite").read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    rng = random.Random(f"flips-{shape}")
    outcomes = {"no effect": 0, "detected": 0, "changed": 0, "refused at open": 0}
    escapes: list[str] = []
    for n in range(trials):
        offset, xor = rng.randrange(len(data)), rng.randrange(1, 256)
        where = _where(offset, page_size, pages)
        trial = tmp / f"{shape}-{n}"
        trial.mkdir()
        shutil.copy(root / "LOCALCKPT.json", trial / "LOCALCKPT.json")
        flipped = bytearray(data)
        flipped[offset] ^= xor
        (trial / "catalog.sqlite").write_bytes(bytes(flipped))
        try:
            store = localckpt.open(trial, objects=str(root / "objects"))
        except CorruptDataError:
            outcomes["refused at open"] += 1
            shutil.rmtree(trial)
            continue
        except Exception as exc:  # a foreign or other error: the finding
            escapes.append(f"{shape} trial {n}, {where} ^ {xor:#04x}: open raised "
                           f"{type(exc).__name__}: {exc}")
            shutil.rmtree(trial)
            continue
        try:
            got: dict[str, Any] = {}
            for name, read in reads.items():
                try:
                    got[name] = read(store)
                except CorruptDataError:
                    got[name] = CORRUPT
                except Exception as exc:
                    got[name] = CORRUPT
                    escapes.append(f"{shape} trial {n}, {where} ^ {xor:#04x}: {name} raised "
                                   f"{type(exc).__name__}: {exc}")
                store.catalog.forget()
            changed = [name for name, value in got.items()
                       if value != CORRUPT and value != expected[name]]
            damaged = CORRUPT in got.values()
            report = None
            if damaged or changed or n % 5 == 0:  # verify is slow: where it matters
                try:
                    report = store.verify()
                except Exception as exc:
                    escapes.append(f"{shape} trial {n}, {where} ^ {xor:#04x}: verify "
                                   f"raised {type(exc).__name__}: {exc}")
            if report is not None and (damaged or changed) and report.ok:
                escapes.append(f"{shape} trial {n}, {where} ^ {xor:#04x}: reads changed "
                               "but verify reported no damage")
            known = _known_escape(where, changed, got, expected)
            if known:
                outcomes[known] = outcomes.get(known, 0) + 1
            else:
                escapes += [f"{shape} trial {n}, {where} ^ {xor:#04x}: {name} read other "
                            "data without an error" for name in changed]
            outcomes["detected" if damaged else "changed" if changed else "no effect"] += 1
        finally:
            store.close()
            shutil.rmtree(trial)
    print(f"{shape}: {trials} flips: {outcomes}")  # shown with -s: the counts per class
    assert not escapes, f"{len(escapes)} escape(s) in {trials} trials:\n" + "\n".join(escapes)
    return outcomes


@pytest.mark.parametrize("shape", SHAPES)
def test_byte_flips_read_as_written_or_raise_corrupt_data(
        shape: str, pristine: dict[str, Any], tmp_path: Path) -> None:
    outcomes = _trials(shape, QUICK_TRIALS, pristine, tmp_path)
    assert outcomes["detected"] + outcomes["refused at open"] > 0, outcomes


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_byte_flips_600_times(shape: str, pristine: dict[str, Any], tmp_path: Path,
                              request: pytest.FixtureRequest) -> None:
    require_slow(request)
    outcomes = _trials(shape, SLOW_TRIALS, pristine, tmp_path)
    assert outcomes["detected"] > SLOW_TRIALS // 20, outcomes


def test_a_damaged_header_is_corrupt_data_and_verify_reports_it(tmp_path: Path) -> None:
    """The first bytes of the file ("SQLite format 3"): every read and the open say
    CorruptDataError, naming the file; a store that cannot open cannot verify."""
    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        store.catalog.commit(Batch(tags=[Tag(new_id(), "t", tl.root_checkpoint_id, tl.id,
                                             utcnow())]))
    path = root / "catalog.sqlite"
    data = bytearray(path.read_bytes())
    data[3] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match=r"catalog\.sqlite"):
        localckpt.open(root)


def test_a_damaged_column_name_in_the_schema_is_corrupt_data(tmp_path: Path) -> None:
    """A flipped byte in a CREATE TABLE text (the schema pages) renames a column: the
    queries that name it are CorruptDataError naming the file (found by the 600-flip
    trials: it was BackendUnavailableError, as for a file another process locks)."""
    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        store.create_timeline("v.mp4", "p", [FRAME])
    conn = sqlite3.connect(root / "catalog.sqlite")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = replace(sql, 'index_hash', 'index_hasx') "
                 "WHERE name = 'timelines'")
    conn.commit()
    conn.close()
    with localckpt.open(root) as store, pytest.raises(CorruptDataError,
                                                      match=r"catalog\.sqlite.*damaged"):
        store.list_timelines()


# -- damaged keys: an index entry or a clustered key changed ------------------------------


def _flip_key(path: Path, index: str, key: str) -> None:
    """Change one character of key in the entry of index that holds it (to another hex
    digit: still valid text, so only the lookup notices)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages = [n for (n,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ?",
                                            (index,))]
    finally:
        conn.close()
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    for page in pages:
        at = data.find(key.encode(), (page - 1) * size, page * size)
        if at >= 0:
            pos = at + len(key) - 3
            data[pos] = ord("0") if data[pos] != ord("0") else ord("1")
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f"{key} not found in the pages of {index}")


@pytest.fixture
def small_store(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        cid = store.save_stage_output(tl.id, None, "s", {"x": 1})
        gone = store.create_timeline("w.mp4", "p", [FRAME])
        store.delete_timeline(gone.id)
    return root, {"timeline": tl.id, "checkpoint": cid, "deleted": gone.id}


def _damaged(root: Path, where: str, key: str) -> localckpt.Store:
    _flip_key(root / "catalog.sqlite", where, key)
    store = localckpt.open(root)
    assert not store.verify().ok  # verify's integrity check notices every one of these
    return store


@pytest.mark.parametrize(("where", "kind"), [
    ("checkpoints_id", "checkpoint"),  # the id index
    ("checkpoints", "checkpoint"),  # the table's own key (timeline_id, id)
    ("timelines", "timeline"),  # the timelines table's key
])
def test_a_record_whose_id_cannot_be_looked_up_is_an_error_not_absent(
        small_store: tuple[Path, dict[str, str]], where: str, kind: str) -> None:
    root, ids = small_store
    with _damaged(root, where, ids[kind]) as store:
        read = store.catalog.checkpoints if kind == "checkpoint" else store.catalog.timelines
        with pytest.raises(CorruptDataError, match=r"cannot be read by id|digest"):
            read([ids[kind]])
        getter = store.get_checkpoint if kind == "checkpoint" else store.get_timeline
        with pytest.raises(CorruptDataError):
            getter(ids[kind])
        if kind == "checkpoint":  # the other reads that start from an id
            for read in (store.catalog.lineage, store.catalog.children):
                store.catalog.forget()
                with pytest.raises(CorruptDataError):
                    read(ids[kind])


def test_an_id_missing_from_every_index_is_still_just_absent(
        small_store: tuple[Path, dict[str, str]]) -> None:
    root, ids = small_store
    with localckpt.open(root) as store:  # the second lookup finds nothing: no error
        assert store.catalog.checkpoints([new_id(), ids["checkpoint"]])[0].id == \
            ids["checkpoint"]
        assert store.catalog.timelines([new_id()]) == []


@pytest.mark.parametrize("where", ["tombstones_target_id", "tombstones_deleted_timelines",
                                   "tombstones_timeline_id"])
def test_a_damaged_tombstone_index_entry_does_not_bring_a_deleted_timeline_back(
        small_store: tuple[Path, dict[str, str]], where: str) -> None:
    root, ids = small_store
    with _damaged(root, where, ids["deleted"]) as store:
        errors = 0
        for read in (lambda: [t.id for t in store.list_timelines()],
                     lambda: [t.id for t in store.catalog.timeline_page(0, 10)[0]],
                     lambda: [i for i in (ids["timeline"], ids["deleted"])
                              if i not in store.catalog.deleted([ids["deleted"]])]):
            try:  # a read through the intact index answers right; the other is an error
                assert read() == [ids["timeline"]]
            except CorruptDataError as exc:
                assert "deleted" in str(exc)
                errors += 1
        assert errors >= 1  # at least one read went through the damaged entry


def test_a_damaged_tombstone_index_entry_does_not_bring_a_pruned_checkpoint_back(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        kept = store.save_stage_output(tl.id, None, "s", {"x": 1})
        pruned = store.save_stage_output(tl.id, kept, "t", {"x": 2})
        store.prune(pruned)
        (tomb,) = store.catalog.tombstones([tl.id])
    with _damaged(root, "tombstones_timeline_id", tl.id) as store:
        with pytest.raises(CorruptDataError, match="tombstones of timeline"):
            store.checkpoints(tl.id)
        with pytest.raises(CorruptDataError, match="tombstones of timeline"):
            store.get_checkpoint(pruned)
    assert tomb.target_id == pruned


@pytest.mark.parametrize("where", ["tombstones_target_id", "tombstones_timeline_id"])
def test_a_checkpoint_whose_tombstone_an_index_misses_is_not_called_live(
        tmp_path: Path, where: str) -> None:
    """Catalog.deleted (merge asks it) reads the timelines' checked tombstones on SQLite,
    not one index's answer."""
    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        pruned = store.save_stage_output(tl.id, None, "s", {"x": 1})
        store.prune(pruned)
    with _damaged(root, where, pruned if where.endswith("target_id") else tl.id) as store:
        for kind in (None, "checkpoint"):
            try:
                assert store.catalog.deleted([pruned], kind) == {pruned}
            except CorruptDataError as exc:
                assert "tombstones of timeline" in str(exc)


def test_a_damaged_name_index_entry_does_not_lose_a_tag(tmp_path: Path) -> None:
    """A tag name is looked up through the name index: an entry whose name was damaged
    would make the name name nothing (or an older tag of it), so the rows found are
    checked against the name's sums."""
    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        cid = store.save_stage_output(tl.id, None, "s", {"x": 1})
        store.tag(cid, "best")
    with _damaged(root, "tags_name", "best") as store:
        for read in (lambda: store.tag_target("best"), lambda: store.get_checkpoint("best"),
                     lambda: store.catalog.tags_named("best")):
            with pytest.raises(CorruptDataError, match="tags named 'best'"):
                read()
        assert [g.name for g in store.tags(tl.id)] == ["best"]  # its timeline's read


@pytest.mark.parametrize("where", ["tags", "tombstones_target_id", "tombstones_timeline_id"])
def test_a_removed_tag_whose_record_or_tombstone_an_index_misses_stays_removed(
        tmp_path: Path, where: str) -> None:
    """Catalog.deleted(ids, "tag") finds a tag's timeline through the tags' key and
    through the tombstones' target_id index, then reads that timeline's tags and
    tombstones, checked: a damaged entry of either index still finds it."""
    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        store.tag(tl.root_checkpoint_id, "gone")
        gone = store.untag("gone")
    key = tl.id if where == "tombstones_timeline_id" else gone.id
    with _damaged(root, where, key) as store:
        for read in (lambda: store.catalog.deleted([gone.id], "tag") == {gone.id},
                     lambda: store.catalog.deleted([gone.id]) == {gone.id},
                     lambda: store.tag_target("gone") is None):
            try:  # the right answer, or the damage named
                assert read()
            except CorruptDataError as exc:
                assert "timeline" in str(exc) or "tags named" in str(exc), exc


def test_a_damaged_kind_in_a_tombstone_row_does_not_bring_a_deleted_timeline_back(
        small_store: tuple[Path, dict[str, str]]) -> None:
    root, _ = small_store  # the one tombstone's kind column: "timeline" made "timel0ne"
    with _damaged(root, "tombstones", "timeline") as store, \
            pytest.raises(CorruptDataError, match="deleted"):
        store.list_timelines()


def test_a_damaged_id_index_entry_is_not_given_as_an_id(
        small_store: tuple[Path, dict[str, str]]) -> None:
    root, ids = small_store
    with _damaged(root, "checkpoints_id", ids["checkpoint"]) as store:
        with pytest.raises(CorruptDataError, match=r"the id index of table checkpoints"):
            store.catalog.find_ids("checkpoint", ids["checkpoint"][:20])
        with pytest.raises(CorruptDataError):
            store.get_checkpoint(ids["checkpoint"][:20])  # a prefix, as a user types it


def test_a_store_of_before_the_second_paths_gets_them_and_reads_without_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from localckpt.backends.sql import schema

    root = tmp_path / "old"
    with monkeypatch.context() as m:  # the code of before: migrations up to 9
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:3])
        m.setattr(schema, "LATEST_VERSION", 9)
        with localckpt.open(root, create=True) as old:
            gone = old.create_timeline("w.mp4", "p", [FRAME])
            old.delete_timeline(gone.id)
            kept = old.create_timeline("v.mp4", "p", [FRAME])
            pruned = old.save_stage_output(kept.id, None, "s", {"x": 1})
            old.prune(pruned)
            old.tag(kept.root_checkpoint_id, "first")
            with old.catalog.engine.transaction() as tx:  # the code of before kept no
                tx.execute("DELETE FROM tree_sums WHERE timeline_id >= '~'")  # such sums
    reader = sqlite_catalog(str(root / "catalog.sqlite"), read_only=True)
    try:  # a reader that cannot migrate (a read-only directory): no second path
        assert schema.version_of(reader.engine) == 9 and not reader._second_path_to_deleted
        assert reader.deleted([gone.id, kept.id]) == {gone.id}
        assert [t.target_id for t in reader.tombstones([kept.id])] == [pruned]  # no sums
    finally:
        reader.close()
    with localckpt.open(root) as store:  # a writer migrates
        assert schema.version_of(store.catalog.engine) == schema.LATEST_VERSION
        assert store.catalog._second_path_to_deleted
        assert [t.id for t in store.list_timelines()] == [kept.id]
        assert {t.target_id for t in store.catalog.tombstones([kept.id, gone.id])} == {
            gone.id, pruned}  # checked against the sums the migration made
        assert [c.id for c in store.checkpoints(kept.id)] == [kept.root_checkpoint_id]
        assert [g.name for g in store.catalog.tags(None)] == ["first"]
        assert store.verify().ok
    _flip_key(root / "catalog.sqlite", "tombstones_target_id", gone.id)
    with localckpt.open(root) as store, pytest.raises(CorruptDataError, match="deleted"):
        store.list_timelines()


@pytest.mark.parametrize("table,column", [("tags", "name"), ("checkpoints", "stage"),
                                          ("timelines", "profile_name")])
def test_a_text_column_holding_bytes_is_corrupt_data(tmp_path: Path, table: str,
                                                     column: str) -> None:
    """SQLite lets any column hold any type: bytes where text belongs (a damaged row,
    or a peer's catalog written by hand) have no digest, and were a TypeError."""
    import sqlite3

    root = tmp_path / "store"
    with localckpt.open(root, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        cid = store.save_stage_output(tl.id, None, "s", {"x": 1})
        store.tag(cid, "best")
    with contextlib.closing(sqlite3.connect(root / "catalog.sqlite")) as con, con:
        con.execute(f"UPDATE {table} SET {column} = CAST({column} AS BLOB)")
    with localckpt.open(root) as store, pytest.raises(CorruptDataError, match=table):
        {"tags": lambda: store.tags(tl.id), "checkpoints": lambda: store.checkpoints(tl.id),
         "timelines": store.list_timelines}[table]()
