"""PostgreSQL catalog trust (issue 10, PostgreSQL parts): damage is never returned, text
that is not Unicode gets a typed error, rows written by older code still read, and
purge_deleted removes only what is deleted, even while another process saves.

Runs against the session's PostgreSQL (``pg_dsn`` in conftest).
"""

from __future__ import annotations

import multiprocessing
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from localckpt.backends.pg_json import format_1_bytes
from localckpt.backends.postgres import PostgresCatalog
from psycopg import sql

import localckpt
from localckpt import CorruptDataError, InvalidInputError, Store
from localckpt.backends import pg_schema
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.catalog import Batch
from localckpt.cli import main as cli_main
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.types import Tag, Tombstone

FRAME = np.zeros((4, 4, 3), np.uint8)


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    from conftest import _drop_schema  # tests/ is on sys.path (pytest's rootdir conftest)

    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    _drop_schema(pg_dsn, name)


def _url(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


@pytest.fixture
def store(pg_dsn: str, schema: str, tmp_path: Path) -> Iterator[Store]:
    with localckpt.open(_url(pg_dsn, schema), objects=str(tmp_path / "objects"),
                        create=True) as s:
        yield s


def _sql(dsn: str, schema: str, text: str, params: list[Any] | None = None) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql.SQL(text).format(s=sql.Identifier(schema)), params)
        return cur.fetchall() if cur.description else []


def _chain(store: Store, n: int = 3) -> tuple[str, list[str], dict[str, Any]]:
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    outputs = {f"s{i}": {"i": i, "small": 1.5e-05 * (i + 1), "boxes": [[i, 0.5]]}
               for i in range(n)}
    parent, ids = None, []
    for stage, out in outputs.items():
        parent = store.save_stage_output(tl.id, parent, stage, out)
        ids.append(parent)
    return tl.id, ids, outputs


# -- every read path checks the hash (defect 7) --------------------------------------------


def _flip(dsn: str, schema: str, h: str, offset: int, mask: int) -> None:
    _sql(dsn, schema, "UPDATE {s}.outputs SET data = set_byte(data, %s, get_byte(data, %s) "
         "# %s) WHERE hash = %s", [offset, offset, mask, h])


def _read_paths(store: Store, tid: str, tip: str, stage: str) -> list[Any]:
    """Every way a reader gets an output value or its bytes."""
    cat = store.catalog
    return [
        lambda: store.load_stage_output(tip, stage),
        lambda: store.get_checkpoint(tip).stage_outputs[stage],
        lambda: dict(store.lineage(tip)[-1].stage_outputs),
        lambda: dict(next(c for c in store.checkpoints(tid) if c.id == tip).stage_outputs),
        lambda: cat.outputs([store.get_checkpoint(tip).stage_hashes[stage]]),
        lambda: cat.load_values([store.get_checkpoint(tip).stage_hashes[stage]]),
    ]


def test_tampered_output_is_refused_on_every_read_path(
    store: Store, pg_dsn: str, schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tid, ids, outputs = _chain(store)
    tip = ids[-1]
    h = store.get_checkpoint(tip).stage_hashes["s0"]
    _sql(pg_dsn, schema, "UPDATE {s}.outputs SET data = convert_to(%s, 'UTF8') WHERE hash = %s",
         ['{"boxes":[[0,0.5]],"i":666,"small":0.000015}', h])
    for read in _read_paths(store, tid, tip, "s0"):
        with pytest.raises(CorruptDataError, match=h):
            read()
    code = cli_main(["--store", _url(pg_dsn, schema), "--objects", str(tmp_path / "objects"),
                     "show", tip])
    assert code == 1
    assert "does not match its hash" in capsys.readouterr().err
    assert [w for w, _ in store.catalog.storage_problems()] == [
        f"{store.catalog.describe()} outputs row {h}"]
    # the other outputs still read
    assert store.load_stage_output(tip, "s1") == outputs["s1"]


def test_random_byte_flips_in_output_rows_never_read_silently(
    store: Store, pg_dsn: str, schema: str
) -> None:
    """200 flips: each read gives CorruptDataError naming the output, storage_problems
    reports it, and once the byte is restored everything reads as before."""
    tid, ids, outputs = _chain(store, 4)
    tip = ids[-1]
    hashes = dict(store.get_checkpoint(tip).stage_hashes)
    sizes = {h: len(store.catalog.outputs([h])[h]) for h in hashes.values()}
    rnd = random.Random(10)
    for _ in range(200):
        stage = rnd.choice(sorted(hashes))
        h = hashes[stage]
        offset, mask = rnd.randrange(sizes[h]), 1 << rnd.randrange(8)
        _flip(pg_dsn, schema, h, offset, mask)
        read = rnd.choice(_read_paths(store, tid, tip, stage))
        with pytest.raises(CorruptDataError, match=h):
            read()
        assert [w.rsplit(" ", 1)[-1] for w, _ in store.catalog.storage_problems()] == [h]
        _flip(pg_dsn, schema, h, offset, mask)  # restore
    assert store.catalog.storage_problems() == []
    assert {s: store.load_stage_output(tip, s) for s in hashes} == outputs


def test_rows_that_do_not_parse_are_storage_problems(store: Store, pg_dsn: str,
                                                     schema: str) -> None:
    tid, ids, _ = _chain(store, 1)
    _sql(pg_dsn, schema, "UPDATE {s}.checkpoints SET stage_hashes = '{{\"s0\": 3}}' "
         "WHERE id = %s", [ids[0]])
    _sql(pg_dsn, schema, "UPDATE {s}.timelines SET exact = 'not json' WHERE id = %s", [tid])
    problems = dict(store.catalog.storage_problems())
    assert {k.rsplit(" ", 3)[-3:][0] + " " + k.rsplit(" ", 1)[-1] for k in problems} == {
        f"checkpoints {ids[0]}", f"timelines {tid}"}
    assert all("does not parse" in what for what in problems.values())


# -- rows written before schema version 4 (canonical JSON format 1, JSONB) -------------------


def test_outputs_written_by_older_code_read_verify_and_sync(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        pg_schema.migrate(conn, schema, target=3)
    old_value = {"score": 1e-05, "tiny": 2.5e-07, "big": 2**70, "exp": 1e16}
    data = format_1_bytes(old_value)  # what version-3 code hashed
    assert data != canonical_bytes(old_value)
    h = content_hash(data)
    # version-3 code kept JSONB plus the exact text when JSONB changes the value
    _sql(pg_dsn, schema, "INSERT INTO {s}.outputs (hash, value, canonical) VALUES "
         "(%s, %s::jsonb, %s)", [h, data.decode(), data.decode()])
    plain = {"n": 1.0, "t": "x"}
    plain_h = content_hash(format_1_bytes(plain))
    _sql(pg_dsn, schema, "INSERT INTO {s}.outputs (hash, value) VALUES (%s, %s::jsonb)",
         [plain_h, format_1_bytes(plain).decode()])
    url = _url(pg_dsn, schema)
    with localckpt.open(url, objects=str(tmp_path / "o"), create=True) as store:
        cat = store.catalog
        assert cat.outputs([h, plain_h]) == {h: data, plain_h: format_1_bytes(plain)}
        assert cat.load_values([h, plain_h]) == {h: old_value, plain_h: plain}
        assert cat.storage_problems() == []
        tl = store.create_timeline("v.mp4", "p", [FRAME])
        root = store.get_checkpoint(tl.root_checkpoint_id)
        import attrs

        old = attrs.evolve(root, id=new_id(), parent_id=root.id, stage="detect",
                           stage_hashes={"detect": h, "plain": plain_h}, created_at=utcnow())
        cat.commit(Batch(checkpoints=[old]))
        new = store.save_stage_output(tl.id, old.id, "track", {"v": 1e-05})
        with localckpt.open(str(tmp_path / "laptop"), create=True) as laptop:
            localckpt.sync(store, laptop)
            assert laptop.load_stage_output(new, "detect") == old_value
            assert laptop.catalog.outputs([h]) == {h: data}  # copied as stored
        # tampering with a legacy row is caught too
        _sql(pg_dsn, schema, "UPDATE {s}.outputs SET canonical = replace(canonical, 'score', "
             "'scare') WHERE hash = %s", [h])
        with pytest.raises(CorruptDataError, match=h):
            store.load_stage_output(new, "detect")
    view = _sql(pg_dsn, schema, "SELECT stage, value FROM {s}.stage_outputs "
                "WHERE checkpoint_id = %s ORDER BY stage", [new])
    assert [r[0] for r in view] == ["detect", "plain", "track"]
    assert view[2][1] == {"v": 1e-05}


# -- text that is not Unicode (defect 5 on PostgreSQL) ---------------------------------------


def test_lone_surrogates_in_arguments_are_invalid_input(store: Store) -> None:
    tid, ids, _ = _chain(store, 1)
    cat = store.catalog
    bad = "x\ud800"
    calls = [
        lambda: cat.timelines([bad]), lambda: cat.checkpoints([bad]),
        lambda: cat.children(bad), lambda: cat.lineage(bad), lambda: cat.tree(bad),
        lambda: cat.outputs([bad]), lambda: cat.missing_outputs([bad]),
        lambda: cat.deleted([bad]), lambda: cat.tags([bad]), lambda: cat.tombstones([bad]),
        lambda: cat.find_ids("checkpoint", bad),
        lambda: store.get_checkpoint(bad), lambda: store.children(bad),
        lambda: store.save_stage_output(tid, ids[0], bad, {}),
        lambda: store.save_stage_output(tid, ids[0], "s", {"k": bad}),
        lambda: store.create_timeline(bad, "p", [FRAME]),
        lambda: store.create_timeline("v", "p", [FRAME], source_asset_id=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()
    assert len(store.checkpoints(tid)) == 2


# -- purge_deleted ----------------------------------------------------------------------------


def _tombstone(store: Store, target: str, kind: str, tid: str) -> None:
    store.catalog.commit(Batch(tombstones=[Tombstone(new_id(), target, kind, tid, utcnow())]))


def test_purge_removes_what_tombstones_delete_and_unreferenced_outputs(
    store: Store, pg_dsn: str, schema: str
) -> None:
    tid, ids, outputs = _chain(store, 4)
    shared = store.save_stage_output(tid, ids[0], "s1", outputs["s1"])  # same output as ids[1]
    other, _, _ = _chain(store, 2)
    tag = Tag(new_id(), "keep", ids[0], tid, utcnow())
    dead_tag = Tag(new_id(), "gone", ids[2], tid, utcnow())
    store.catalog.commit(Batch(tags=[tag, dead_tag]))
    count = {t: _sql(pg_dsn, schema, f"SELECT count(*) FROM {{s}}.{t}")[0][0]
             for t in ("checkpoints", "outputs", "tags", "timelines")}

    _tombstone(store, ids[1], "checkpoint", tid)  # prune ids[1] and its subtree
    _tombstone(store, other, "timeline", other)
    removed = store.catalog.purge_deleted()
    # ids[1..3], the other timeline's root + 2, dead_tag, the other timeline, outputs s2,
    # s3 and the other chain's distinct ones (s0/s1 of the other chain equal ours)
    left = {t: _sql(pg_dsn, schema, f"SELECT count(*) FROM {{s}}.{t}")[0][0] for t in count}
    assert left == {"checkpoints": count["checkpoints"] - 6, "tags": 1, "timelines": 1,
                    "outputs": count["outputs"] - 2}
    assert removed == 6 + 1 + 1 + 2
    assert store.load_stage_output(shared, "s1") == outputs["s1"]  # still referenced
    assert store.catalog.tags(None) == [tag]
    assert store.catalog.storage_problems() == []
    assert len(store.catalog.tombstones(None)) == 2  # never removed
    assert store.catalog.purge_deleted() == 0


def test_a_batch_referring_to_a_purged_output_writes_nothing(store: Store) -> None:
    tid, ids, outputs = _chain(store, 2)
    h = store.get_checkpoint(ids[1]).stage_hashes["s1"]
    _tombstone(store, ids[1], "checkpoint", tid)
    store.catalog.purge_deleted()
    assert store.catalog.missing_outputs([h]) == {h}
    import attrs

    parent = store.get_checkpoint(ids[0])
    late = attrs.evolve(parent, id=new_id(), parent_id=parent.id, stage="s1",
                        stage_hashes={**parent.stage_hashes, "s1": h}, created_at=utcnow())
    fresh = PostgresCatalog(store.catalog._dsn, schema=store.catalog.schema)  # no cache
    try:
        for cat in (store.catalog, fresh):
            with pytest.raises(InvalidInputError, match=h):
                cat.commit(Batch(checkpoints=[late]))
            assert cat.checkpoints([late.id]) == []
    finally:
        fresh.close()
    store.catalog.commit(Batch(checkpoints=[late], outputs={h: canonical_bytes(outputs["s1"])}))
    assert store.load_stage_output(late.id, "s1") == outputs["s1"]


def _saver(url: str, objects: str, tid: str, root: str, n: int, seed: int) -> list[str]:
    """Save chains below root whose outputs repeat ones that purged checkpoints held."""
    rnd = random.Random(seed)
    saved = []
    with localckpt.open(url, objects=objects) as store:
        parent = root
        for i in range(n):
            out = {"shared": rnd.randrange(6)}
            parent = store.save_stage_output(tid, root if i % 4 == 0 else parent,
                                             f"s{i % 3}", out)
            saved.append(parent)
    return saved


def test_purge_while_another_process_saves_loses_nothing_live(
    store: Store, pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    url, objects = _url(pg_dsn, schema), str(tmp_path / "objects")
    tl = store.create_timeline("v.mp4", "p", [FRAME])
    ctx = multiprocessing.get_context("spawn")
    doomed: list[str] = []
    overlapped = 0
    with ctx.Pool(1) as pool:
        pending = pool.apply_async(_saver, (url, objects, tl.id, tl.root_checkpoint_id, 400, 1))
        r = 0
        while not pending.ready() or r < 3:
            # checkpoints holding the outputs the writer saves too, then deleted and purged
            for k in range(6):
                doomed.append(store.save_stage_output(tl.id, None, f"d{r}", {"shared": k}))
            for cid in doomed[-6:]:
                _tombstone(store, cid, "checkpoint", tl.id)
            before = len(store.catalog.tree(tl.id))
            store.catalog.purge_deleted()
            overlapped += len(store.catalog.tree(tl.id)) > before - 6  # the writer saved
            r += 1
        saved = pending.get(timeout=300)
    assert overlapped >= 2, "the purges never ran while the writer saved"
    store.catalog.purge_deleted()
    assert store.catalog.checkpoints(doomed) == []
    live = store.catalog.checkpoints(saved)
    assert [c.id for c in live] == sorted(saved)
    for c in live:
        assert set(store.catalog.load_values(c.stage_hashes.values())) == set(
            c.stage_hashes.values())
    assert store.catalog.storage_problems() == []


def test_purge_waits_for_a_commit_in_flight_that_reuses_a_dead_output(
    store: Store, pg_dsn: str, schema: str
) -> None:
    """The interleaving that would lose an output: a save finds its output stored (so it
    skips writing it) while a purge decides that output is unreferenced. The purge must
    wait for the save, then see its checkpoint and keep the output."""
    import threading

    import attrs
    from localckpt.backends.pg_rows import CODECS, output_rows
    from localckpt.backends.pg_sql import commit_params, shape

    tid, ids, outputs = _chain(store, 2)
    doomed = ids[1]
    h = store.get_checkpoint(doomed).stage_hashes["s1"]
    _tombstone(store, doomed, "checkpoint", tid)
    parent = store.get_checkpoint(ids[0])
    child = attrs.evolve(parent, id=new_id(), parent_id=parent.id, stage="s1",
                         stage_hashes={**parent.stage_hashes, "s1": h}, created_at=utcnow())
    rows = output_rows({h: canonical_bytes(outputs["s1"])})
    ckpts = [CODECS["checkpoint"].row(child)]
    cat = store.catalog
    statement = cat._q.commit(shape(rows, [], ckpts, []))
    with psycopg.connect(pg_dsn) as writer:  # a save, held open before its commit
        writer.execute(statement, commit_params(rows, [], ckpts, []))
        purged: list[int] = []
        gc_thread = threading.Thread(target=lambda: purged.append(cat.purge_deleted()))
        gc_thread.start()
        gc_thread.join(timeout=1.0)
        assert gc_thread.is_alive(), "the purge did not wait for the commit in flight"
        writer.commit()
    gc_thread.join(timeout=30)
    assert purged == [1]  # the pruned checkpoint only; the output is referenced again
    assert store.load_stage_output(child.id, "s1") == outputs["s1"]
    assert store.catalog.storage_problems() == []


def test_outputs_no_checkpoint_used_go_only_at_the_second_purge(store: Store) -> None:
    """A sync commits outputs before the rows that refer to them: one purge between the
    two must not take them."""
    staged = canonical_bytes({"staged": True})
    h = content_hash(staged)
    store.catalog.commit(Batch(outputs={h: staged}))
    assert store.catalog.purge_deleted() == 0
    assert store.catalog.missing_outputs([h]) == set()
    _, ids, _ = _chain(store, 1)
    import attrs

    parent = store.get_checkpoint(ids[0])
    user = attrs.evolve(parent, id=new_id(), parent_id=parent.id, stage="x",
                        stage_hashes={**parent.stage_hashes, "x": h}, created_at=utcnow())
    store.catalog.commit(Batch(checkpoints=[user]))  # the rows of the "sync" arrive
    assert store.catalog.purge_deleted() == 0
    assert store.load_stage_output(user.id, "x") == {"staged": True}
    other = canonical_bytes({"orphan": 1})
    store.catalog.commit(Batch(outputs={content_hash(other): other}))
    assert store.catalog.purge_deleted() == 0  # first sighting
    assert store.catalog.purge_deleted() == 1  # still unreferenced: gone
    assert store.catalog.missing_outputs([content_hash(other)]) == {content_hash(other)}
