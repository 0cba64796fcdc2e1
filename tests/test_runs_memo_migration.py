"""Migration 16: memo_entries (a wide row and three indexes per entry) becomes memo_runs
(a run's fields once, with its keys) and memo_frames (one slim row per entry). Entries
convert exactly; a damaged one is refused and nothing changes. And the new tables'
own checks: a damaged row is an error naming its table, clearing cuts a run's key list
batch by batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import numpy as np
import pytest
from conftest import KINDS
from old_memo import code_of_15, old_memo_entry

import localckpt
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.errors import CorruptDataError

MIGRATING_KINDS = [k for k in ("embedded", "postgres-local") if k in KINDS] + ["duckdb"]
T_A = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
T_C1 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
T_C2 = datetime(2026, 12, 3, 10, 30, 0, 5, tzinfo=UTC)


def frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


def value(seq: int, salt: str = "") -> dict[str, Any]:
    return {"label": f"f{seq}{salt}", "score": seq / 3}


def _close(store: localckpt.Store, run_id: str) -> None:
    store._run_tables().change(run_id, lambda rec, tx: attrs.evolve(
        rec, state="aborted", closed_at=T_A, done=0))  # no memo written by this code


def _memo_of_15(old: localckpt.Store, damage: str = "") -> dict[str, Any]:
    """In a store at version 15, what the code of before wrote: run A (detect v1) whose
    5 entries point into one output (a reference owned by A keeps it), and run C (ocr)
    whose 3 entries were written before migration 9, at two times, each value its own
    output kept by a reference its key owns. damage: "digest" (an entry's value hash
    changed behind its digest), "key" (an entry whose key is not a SHA-256, its digest
    made to match)."""
    from localckpt.backends.sql.runs import frames_output
    from localckpt.runs.memo import params_hash

    e = old.catalog.engine
    tl = old.create_timeline("v.mp4", "p", frames(6), codec="png")
    a = old.begin_run(tl.id, None, "detect", version="v1")
    c = old.begin_run(tl.id, None, "ocr")
    datas = {s: canonical_bytes(value(s)) for s in range(5)}
    output, where = frames_output(datas)
    out_hash = content_hash(output)
    info: dict[str, Any] = {"tl": tl.id, "a": a.id, "c": c.id, "output": out_hash,
                            "entries": {}}
    with e.transaction() as tx:
        put = e.sql("INSERT INTO {s}outputs (hash, data) VALUES (?, ?) "
                    "ON CONFLICT (hash) DO NOTHING")
        ref = e.sql("INSERT INTO {s}output_refs (hash, owner) VALUES (?, ?)")
        tx.execute(put, (out_hash, output))
        tx.execute(ref, (out_hash, a.id))
        for s in range(5):
            key = a.memo_key(s)
            h = content_hash(datas[s])
            old_memo_entry(tx, e, key.digest, "detect", "v1", params_hash({}), key.frame, {},
                           h, a.id, T_A, (out_hash, *where[s]))
            info["entries"][key.digest] = ("detect", "v1", h, a.id, T_A, datas[s])
        for s in range(3):
            key = c.memo_key(s)
            data = canonical_bytes(value(s, "c"))
            h = content_hash(data)
            when = T_C1 if s < 2 else T_C2
            tx.execute(put, (h, data))
            tx.execute(ref, (h, key.digest))
            old_memo_entry(tx, e, key.digest, "ocr", "", params_hash({}), key.frame, {}, h,
                           c.id, when, (h, 0, len(data)))
            info["entries"][key.digest] = ("ocr", "", h, c.id, when, data)
        first = sorted(info["entries"])[0]
        if damage == "digest":
            tx.execute(e.sql("UPDATE {s}memo_entries SET value_hash = ? WHERE key = ?"),
                       (content_hash(b"{}"), first))
        elif damage == "key":
            old_memo_entry(tx, e, "K" * 64, "ocr", "", params_hash({}), "f" * 64, {},
                           content_hash(b"{}"), c.id, T_C2, (out_hash, 0, 2))
    _close(old, a.id)
    _close(old, c.id)
    return info


@pytest.mark.parametrize("kind", MIGRATING_KINDS)
def test_migration_16_converts_memo_entries_exactly(new_store: Any, kind: str,
                                                    monkeypatch: Any) -> None:
    """Each old entry answers the same lookup (its value, run, stage, version, params and
    time) and the same bytes; stats, clearing by stage and age, and the references that
    keep the values work on the converted rows as on new ones."""
    from localckpt.backends.sql import schema
    from localckpt.runs.memo import params_hash

    with code_of_15(monkeypatch):
        old = new_store(kind)
        assert schema.version_of(old.catalog.engine) == 15
        info = _memo_of_15(old)
    store = new_store.reopen(old)
    e = store.catalog.engine
    assert schema.version_of(e) == schema.LATEST_VERSION >= 16
    assert not e.has_table("memo_entries")
    a, c, entries = info["a"], info["c"], info["entries"]
    # run A in one row; run C's entries in one row per (time, output): three
    assert sorted(r[0] for r in e.query("SELECT id FROM {s}memo_runs")) == sorted(
        [a, f"{c}/0", f"{c}/1", f"{c}/2"])
    tables = store._run_tables()
    found = tables.lookup(entries)
    assert {k: (x.stage, x.version, x.value_hash, x.run_id, x.created_at)
            for k, x in found.items()} == {k: v[:5] for k, v in entries.items()}
    assert {x.params_hash for x in found.values()} == {params_hash({})}
    assert tables.memo_data(entries) == {k: v[5] for k, v in entries.items()}
    stats = store.memo_stats()
    assert stats.entries == 8 and stats.values == 8
    assert [(s.stage, s.version, s.entries, s.oldest, s.newest) for s in stats.stages] == [
        ("detect", "v1", 5, T_A, T_A), ("ocr", "", 3, T_C1, T_C2)]
    again = store.begin_run(info["tl"], None, "detect", version="v1")
    assert again.todo() == [5] and again.memo_hits == 5
    again.put({5: value(5)})
    cid = again.commit()
    saved = store.save_stage_output(info["tl"], None, "detect", {"frames": {
        str(s): value(s) for s in range(6)}})
    assert store.get_checkpoint(cid).stage_hashes == store.get_checkpoint(saved).stage_hashes
    owners = "SELECT count(*) FROM {s}output_refs WHERE owner{in}"
    c_keys = [k for k, v in entries.items() if v[3] == c]
    assert e.query(owners, (store.catalog.dialect.list_param(c_keys),)) == [(3,)]
    assert store.clear_memo(stage="ocr", older_than=datetime.now(UTC) - T_C2 +
                            timedelta(seconds=1)) == 2
    assert [k for k in c_keys if k in tables.lookup(c_keys)] == [
        k for k in c_keys if entries[k][4] == T_C2]
    assert store.clear_memo(stage="ocr") == 1
    assert e.query(owners, (store.catalog.dialect.list_param([*c_keys, c]),)) == [(0,)]
    assert store.clear_memo() == 6  # A's five, and the frame the new run put
    assert e.query(owners, (store.catalog.dialect.list_param([a, again.id]),)) == [(0,)]
    assert e.query("SELECT count(*) FROM {s}memo_runs") == [(0,)]
    assert e.query("SELECT count(*) FROM {s}memo_frames") == [(0,)]


@pytest.mark.parametrize("kind", MIGRATING_KINDS)
@pytest.mark.parametrize("damage", ["digest", "key"])
def test_migration_16_refuses_a_damaged_entry_and_changes_nothing(
        new_store: Any, kind: str, damage: str, monkeypatch: Any) -> None:
    from localckpt.backends.sql import schema

    with code_of_15(monkeypatch):
        old = new_store(kind)
        _memo_of_15(old, damage)
    with pytest.raises(CorruptDataError, match="memo_entries"):
        new_store.reopen(old)
    with code_of_15(monkeypatch):
        again = new_store.reopen(old)
        e = again.catalog.engine
        assert schema.version_of(e) == 15 and not e.has_table("memo_frames")
        assert not e.has_table("memo_runs")
        assert e.query("SELECT count(*) FROM {s}memo_entries") == [(8 + (damage == "key"),)]


def _memo(store: localckpt.Store, n: int = 5) -> tuple[Any, dict[int, str]]:
    tl = store.create_timeline("v.mp4", "p", frames(n), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    run.put({s: value(s) for s in range(n)})
    run.commit()
    return tl, {s: run.memo_key(s).digest for s in range(n)}


@pytest.mark.parametrize("kind", ["embedded", "duckdb"])
@pytest.mark.parametrize("column", ["value_hash", "value_at", "memo_run"])
def test_a_damaged_memo_frame_is_an_error_naming_its_table(new_store: Any, kind: str,
                                                          column: str) -> None:
    store = new_store(kind)
    tl, keys = _memo(store)
    e = store.catalog.engine
    changed = {"value_hash": content_hash(b"{}"), "value_at": 1, "memo_run": "x"}[column]
    with e.transaction() as tx:
        tx.execute(e.sql(f"UPDATE {{s}}memo_frames SET {column} = ? WHERE key = ?"),
                   (changed, keys[2]))
    with pytest.raises(CorruptDataError, match="memo_frames"):
        store.begin_run(tl.id, None, "detect").todo()


@pytest.mark.parametrize("kind", ["embedded", "duckdb"])
@pytest.mark.parametrize("column", ["stage", "output", "n", "keys"])
def test_a_damaged_memo_run_is_an_error_naming_its_table(new_store: Any, kind: str,
                                                        column: str) -> None:
    """The run's fields are checked where an entry is read with them (its bytes, a
    lookup), its keys where they are read (clearing): a clear by stage deletes nothing
    on the word of a damaged row; clearing the whole memo (what the error advises)
    finds its entries without it."""
    store = new_store(kind)
    tl, keys = _memo(store)
    e = store.catalog.engine
    changed = {"stage": "detecT", "output": content_hash(b"{}"), "n": 4,
               "keys": bytes(32 * 5)}[column]
    with e.transaction() as tx:
        tx.execute(e.sql(f"UPDATE {{s}}memo_runs SET {column} = ?"), (changed,))
    tables = store._run_tables()
    if column != "keys":
        with pytest.raises(CorruptDataError, match="memo_runs"):
            tables.lookup(keys.values())
        with pytest.raises(CorruptDataError, match="memo_runs"):
            store.load_stage_output(store.begin_run(tl.id, None, "detect").commit(),
                                    "detect")
    with pytest.raises(CorruptDataError, match=r"memo_runs.*localckpt memo clear"):
        store.clear_memo(stage="detecT" if column == "stage" else "detect")
    assert e.query("SELECT count(*) FROM {s}memo_frames") == [(5,)]
    assert store.clear_memo() == 5
    assert e.query("SELECT count(*) FROM {s}memo_frames") == [(0,)]
    assert e.query("SELECT count(*) FROM {s}memo_runs") == [(0,)]
    assert store.begin_run(tl.id, None, "detect").todo() == list(range(5))


def test_an_entry_whose_run_row_is_gone_is_an_error(new_store: Any) -> None:
    store = new_store("embedded")
    _, keys = _memo(store)
    e = store.catalog.engine
    with e.transaction() as tx:
        tx.execute("DELETE FROM memo_runs")
    with pytest.raises(CorruptDataError, match="memo_runs"):
        store._run_tables().memo_data(keys.values())
    assert store.clear_memo(stage="detect") == 0  # nothing lists them
    assert store.clear_memo() == 5  # what the error advises
    assert store.memo_stats().entries == 0 and not store._run_tables().lookup(keys.values())


@pytest.mark.parametrize("kind", ["embedded", "duckdb", "postgres-local"])
def test_clearing_cuts_a_runs_key_list_batch_by_batch(new_store: Any, kind: str,
                                                      monkeypatch: Any) -> None:
    """A run's entries go _BATCH a transaction; between them its row lists (and counts)
    the entries left, checked, and they still answer; a clear stopped after a batch
    (here: the third transaction fails) leaves the rest listed, and the next clear takes
    them; nothing cleared comes back."""
    from localckpt.backends.sql import runs

    if kind not in KINDS and kind != "duckdb":
        pytest.skip(f"{kind} not selected")
    store = new_store(kind)
    tl, keys = _memo(store, 7)
    monkeypatch.setattr(runs, "_BATCH", 3)
    e = store.catalog.engine
    real = type(e).transaction
    calls = []

    def failing(self: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("stopped")
        return real(self)

    monkeypatch.setattr(type(e), "transaction", failing)
    with pytest.raises(RuntimeError, match="stopped"):
        store.clear_memo()
    monkeypatch.setattr(type(e), "transaction", real)
    tables = store._run_tables()
    left = tables.lookup(keys.values())
    assert len(left) == 1 and store.memo_stats().entries == 1
    assert e.query("SELECT n FROM {s}memo_runs") == [(1,)]
    assert store.begin_run(tl.id, None, "detect").todo() == [
        s for s, k in keys.items() if k not in left]
    assert store.clear_memo() == 1
    assert store.memo_stats().entries == 0 and not tables.lookup(keys.values())
    assert e.query("SELECT count(*) FROM {s}memo_runs") == [(0,)]
    assert store.begin_run(tl.id, None, "detect").todo() == list(range(7))


@pytest.mark.parametrize("kind", ["embedded", "duckdb", "postgres-local"])
def test_a_run_lists_only_the_entries_it_wrote(new_store: Any, kind: str) -> None:
    """A key held already stays the first run's: the later run's memo_runs row lists
    (and counts) only the keys its commit took, on every engine (SQLite and PostgreSQL
    count the rows inserted, DuckDB reads them back), and clearing its stage version
    leaves the first run's entries."""
    if kind not in KINDS and kind != "duckdb":
        pytest.skip(f"{kind} not selected")
    store = new_store(kind)
    tl = store.create_timeline("v.mp4", "p", frames(6), codec="png")
    first = store.begin_run(tl.id, None, "detect")
    first.put({s: value(s) for s in range(3)})
    first.commit(partial=True)
    later = store.begin_run(tl.id, None, "detect")
    later.put({0: value(0, "again"), **{s: value(s) for s in range(3, 6)}})
    later.commit(partial=True)
    keys = {s: later.memo_key(s).digest for s in range(6)}
    found = store._run_tables().lookup(keys.values())
    assert [found[keys[s]].run_id if keys[s] in found else None for s in range(6)] == [
        first.id, first.id, first.id, later.id, later.id, later.id]
    e = store.catalog.engine
    assert sorted(e.query("SELECT id, n FROM {s}memo_runs")) == sorted(
        [(first.id, 3), (later.id, 3)])
    assert store.memo_stats().entries == 6
    owners = e.query("SELECT owner FROM {s}output_refs WHERE owner{in}",
                     (store.catalog.dialect.list_param([first.id, later.id]),))
    assert sorted(o for (o,) in owners) == sorted([first.id, later.id])
    assert store.clear_memo() == 6
    assert store.memo_stats().entries == 0
