"""SQL over a store (localckpt.query): tables, live records only, read-only, derived files.

The same queries on every store kind (embedded, PostgreSQL + S3, ...) return equal
tables: one store is built in memory and synced into a fresh store of each kind, so ids
and times are the same, and every table must come out identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest

import localckpt
from localckpt import derived
from localckpt.errors import InvalidInputError, NotFoundError
from localckpt.query import ReadOnlyQueryError


def _dets(seq: int, shift: float, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"box": [10.0 * k + shift, 5.0, 10.0 * k + shift + 8, 20.0], "label": lab,
             "score": round(0.5 + 0.1 * k, 2), **({"track_id": k} if k % 2 else {})}
            for k, lab in enumerate(labels) if (seq + k) % 3]


def build(store: Any) -> dict[str, str]:
    """Two timelines; three detect tries (one a scenario, one tagged), a track stage, a
    non-frame-keyed stage, labels; fps 2 then 4, so timestamps differ by timeline."""
    img = np.zeros((16, 16, 3), np.uint8)
    a = store.create_timeline("a.mp4", "p", [img] * 6, fps=2.0)
    b = store.create_timeline("b.mp4", "p", [img] * 4, fps=4.0)
    ids = {"a": a.id, "b": b.id}
    for n, shift in enumerate((0.0, 1.5, 7.0)):
        out = {"frames": [{"sequence": s, "detections": _dets(s, shift, ("car", "person"))}
                          for s in range(6)]}
        ids[f"try{n}"] = store.save_stage_output(
            a.id, None, "detect", out, config_overrides={"thr": 0.3 + n / 10},
            stats={"boxes": sum(len(f["detections"]) for f in out["frames"])},
            is_scenario=n > 0, scenario_label=f"thr={0.3 + n / 10:.1f}" if n else "")
    ids["track"] = store.save_stage_output(a.id, ids["try1"], "track", {"summary": "3 tracks"})
    ids["labels"] = store.save_stage_output(a.id, None, "labels", {"frames": {
        str(s): {"detections": _dets(s, 0.0, ("car", "person", "bus"))} for s in range(6)}})
    ids["b_detect"] = store.save_stage_output(b.id, None, "detect", {"frames": [
        {"sequence": s, "boxes": [[1, 2, 3, 4]]} for s in range(4)]})
    store.tag(ids["try1"], "best")
    return ids


QUERIES = [
    "SELECT * FROM timelines ORDER BY id",
    "SELECT * FROM checkpoints ORDER BY id",
    "SELECT * FROM stage_outputs ORDER BY checkpoint_id, stage",
    "SELECT * FROM frames ORDER BY timeline_id, sequence",
    "SELECT * FROM detections ORDER BY hash, sequence, index",
    """SELECT coalesce(c.scenario_label, '') AS try, d.label, count(*) AS boxes
       FROM detections d JOIN stage_outputs s ON s.hash = d.hash
       JOIN checkpoints c ON c.id = s.checkpoint_id
       WHERE s.stage = 'detect' AND s.added_here GROUP BY ALL ORDER BY ALL""",
    """SELECT c.id, count(*) FILTER (WHERE d.timestamp >= 1.5) AS late
       FROM checkpoints c JOIN stage_outputs s ON s.checkpoint_id = c.id
       JOIN detections d ON d.hash = s.hash WHERE s.stage = 'detect'
       GROUP BY ALL ORDER BY ALL""",
    "SELECT id, config->>'thr' AS thr, tags FROM checkpoints WHERE stage = 'detect' ORDER BY id",
]


@pytest.fixture(scope="module")
def source() -> Any:
    store = localckpt.open("memory://", objects="memory://lc-query-source")
    ids = build(store)
    yield store, ids, [store.sql(q) for q in QUERIES]
    store.close()


def test_the_same_queries_return_equal_tables_on_every_store_kind(
        source: Any, store_kind: str, new_store: Any) -> None:
    src, ids, expected = source
    dst = new_store(store_kind)
    localckpt.sync(src, dst)
    for query, want in zip(QUERIES, expected, strict=True):
        got = dst.sql(query)
        assert got.equals(want), f"{store_kind}: {query}\n{got}\n!=\n{want}"
    assert dst.sql(QUERIES[0]).num_rows == 2
    assert dst.evaluate([ids["try0"], ids["try2"]], ids["labels"]).rows() == \
        src.evaluate([ids["try0"], ids["try2"]], ids["labels"]).rows()


def test_what_the_tables_hold(source: Any) -> None:
    store, ids, _ = source
    cps = {r["id"]: r for r in store.sql("SELECT * FROM checkpoints").to_pylist()}
    assert cps[ids["try1"]]["tags"] == ["best"] and cps[ids["try0"]]["tags"] == []
    assert cps[ids["try2"]]["scenario_label"] == "thr=0.5" and cps[ids["try2"]]["is_scenario"]
    assert store.sql("SELECT stats->>'boxes' AS n FROM checkpoints WHERE id = $id",
                     {"id": ids["try0"]}).column("n").to_pylist() == [
        str(store.get_checkpoint(ids["try0"]).stats["boxes"])]
    outs = store.sql("SELECT stage, added_here FROM stage_outputs WHERE checkpoint_id = ? "
                     "ORDER BY stage", [ids["track"]]).to_pylist()
    assert outs == [{"stage": "detect", "added_here": False},
                    {"stage": "track", "added_here": True}]
    frames = store.sql("SELECT timeline_id, max(timestamp) AS last FROM frames GROUP BY ALL")
    assert dict(zip(*frames.to_pydict().values(), strict=True)) == {ids["a"]: 2.5,
                                                                   ids["b"]: 0.75}
    # timestamps of detections come from the output's own timeline
    b_hash = store.get_checkpoint(ids["b_detect"]).stage_hashes["detect"]
    stamps = store.sql("SELECT sequence, timestamp, label, x2 FROM detections WHERE hash = ? "
                       "ORDER BY sequence", [b_hash]).to_pylist()
    assert stamps == [{"sequence": s, "timestamp": s / 4, "label": None, "x2": 3.0}
                      for s in range(4)]
    # the track stage is not frame-keyed: no rows, and no error
    track_hash = store.get_checkpoint(ids["track"]).stage_hashes["track"]
    assert store.sql("SELECT count(*) AS n FROM detections WHERE hash = ?",
                     [track_hash]).column("n").to_pylist() == [0]
    tracks = store.sql("SELECT count(*) FILTER (WHERE track_id IS NOT NULL) AS t, count(*) AS n "
                       "FROM detections").to_pylist()[0]
    assert 0 < tracks["t"] < tracks["n"]


def test_the_tables_are_listed_as_duckdb_lists_tables(source: Any) -> None:
    """SHOW TABLES and information_schema, which name no table, list the five with the
    columns a query of each one reads (they listed none), and never the detections
    view's own tables; a table read after such a listing has its rows."""
    store, _, _ = source
    five = sorted(localckpt.query.TABLES)
    assert store.sql("SHOW TABLES").column("name").to_pylist() == five
    listed = store.sql("SELECT table_name, column_name, data_type FROM "
                       "information_schema.columns ORDER BY table_name, ordinal_position")
    for name in five:
        got = [(r["column_name"], r["data_type"]) for r in listed.to_pylist()
               if r["table_name"] == name]
        described = store.sql(f"DESCRIBE {name}").to_pylist()
        assert got == [(r["column_name"], r["column_type"]) for r in described], name
    assert store.sql("SELECT count(*) AS n FROM detections").column("n")[0].as_py() > 0
    assert store.sql("SHOW TABLES").column("name").to_pylist() == five
    assert store.sql("SELECT count(*) AS n FROM checkpoints").column("n")[0].as_py() == \
        sum(len(store.checkpoints(t.id)) for t in store.list_timelines())


def test_a_shell_dot_command_names_the_sql_that_does_it(source: Any) -> None:
    """`localckpt sql .tables`, as the DuckDB and SQLite shells take it, said "Parser
    Error: syntax error at or near '.'": now what it is, and the SQL that lists."""
    store, _, _ = source
    for query, word in ((".tables", ".tables"), ("  .schema checkpoints", ".schema")):
        with pytest.raises(InvalidInputError) as err:
            store.sql(query)
        assert str(err.value) == (
            f"the query failed: {word} is a command of the DuckDB and SQLite shells, not "
            f"SQL; SHOW TABLES lists the store's tables ({', '.join(localckpt.query.TABLES)}"
            "), and DESCRIBE TABLE its columns")


def test_only_live_records(new_store: Any) -> None:
    store = new_store("memory")
    ids = build(store)
    gone = store.get_checkpoint(ids["try1"]).stage_hashes["detect"]
    assert store.sql("SELECT count(*) AS n FROM detections WHERE hash = ?",
                     [gone]).column("n").to_pylist()[0] > 0
    store.prune(ids["try1"])  # and the track stage under it
    live = set(store.sql("SELECT id FROM checkpoints").column("id").to_pylist())
    assert ids["try1"] not in live and ids["track"] not in live and ids["try0"] in live
    assert store.sql("SELECT count(*) AS n FROM detections WHERE hash = ?",
                     [gone]).column("n").to_pylist() == [0]
    assert store.sql("SELECT count(*) AS n FROM stage_outputs WHERE checkpoint_id = ?",
                     [ids["track"]]).column("n").to_pylist() == [0]
    assert store.sql("SELECT * FROM checkpoints WHERE 'best' = ANY(tags)").num_rows == 0
    store.delete_timeline(ids["b"])
    assert store.sql("SELECT id FROM timelines").column("id").to_pylist() == [ids["a"]]
    assert set(store.sql("SELECT DISTINCT timeline_id FROM frames").column(
        "timeline_id").to_pylist()) == {ids["a"]}
    # what a deleted output flattened to is left for gc: its key, nothing live's
    stale = derived.stale_keys(store, older_than=0)
    assert derived.key_of(gone) in stale
    live_hashes = {h for c in store.checkpoints(ids["a"]) for h in c.stage_hashes.values()}
    assert not {derived.key_of(h) for h in live_hashes} & set(stale)


WRITES = [
    "INSERT INTO timelines SELECT * FROM timelines",
    "DELETE FROM checkpoints",
    "UPDATE checkpoints SET stage = 'x'",
    "CREATE TABLE t AS SELECT 1",
    "DROP VIEW detections",
    "COPY (SELECT 1) TO '/tmp/lc-out.csv'",
    "ATTACH '/tmp/lc-other.db'",
    "SET threads = 1",
    "PRAGMA version",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT 1; SELECT 2",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM _detection_rows",
    "EXPORT DATABASE '/tmp/lc-export'",
]


@pytest.mark.parametrize("query", WRITES)
def test_anything_but_one_select_is_refused(new_store: Any, query: str) -> None:
    store = new_store("embedded")
    build(store)
    before = store.sql("SELECT * FROM checkpoints ORDER BY id")
    with pytest.raises(ReadOnlyQueryError):
        store.sql(query)
    assert store.sql("SELECT * FROM checkpoints ORDER BY id").equals(before)


def test_numpy_scalars_bind_as_params(source: Any) -> None:
    """A bound taken from an array (np.int64) failed with DuckDB's "Unable to transform
    python value of type numpy.int64"; numpy scalars bind as the values they stand for."""
    import numpy as np

    store = source[0]
    query = ("SELECT count(*) AS n, ? AS f, ? AS b FROM detections WHERE sequence < ? "
             "AND label = ?")
    plain = store.sql(query, [0.5, True, 2, "car"]).to_pylist()
    assert plain[0]["n"] > 0
    assert store.sql(query, [np.float32(0.5), np.bool_(True), np.int64(2), np.str_("car")]
                     ).to_pylist() == plain
    named = "SELECT count(*) AS n FROM detections WHERE sequence < $s"
    assert store.sql(named, {"s": np.int32(2)}).to_pylist() == store.sql(
        named, {"s": 2}).to_pylist()


def test_bad_queries_are_typed_errors(new_store: Any) -> None:
    store = new_store("memory")
    with pytest.raises(InvalidInputError, match="surrogate"):  # DuckDB's parser raised TypeError
        store.sql("SELECT '\ud800'")
    with pytest.raises(InvalidInputError, match="no table 'nope'; the store's tables are "
                       "timelines, checkpoints,"):
        store.sql("SELECT * FROM nope")
    with pytest.raises(InvalidInputError, match=r"no table 'detection'; did you mean "
                       r"detections\?"):  # DuckDB's own hint named its pg_ system tables
        store.sql("SELECT * FROM detection")
    with pytest.raises(InvalidInputError, match="Parser Error"):
        store.sql("SELEC 1")
    # DuckDB offered track_id, the nearest name, and no word of the table to join
    with pytest.raises(InvalidInputError, match=r"no column 'checkpoint_id' in detections "
                       r"\(detections has hash, sequence, .*\); checkpoint_id is a column of "
                       "stage_outputs: join it"):
        store.sql("SELECT checkpoint_id, label FROM detections")
    with pytest.raises(InvalidInputError, match="hash is a column of stage_outputs and "
                       "detections: join one of them"):
        store.sql("SELECT c.hash FROM checkpoints c")
    with pytest.raises(InvalidInputError, match=r"c has no column 'hash' .*; hash is a column "
                       "of stage_outputs: qualify it with that table's name or alias"):
        store.sql("SELECT c.hash FROM checkpoints c JOIN stage_outputs s ON s.checkpoint_id = c.id")
    with pytest.raises(InvalidInputError, match="no table of the store has a column frame"):
        store.sql("SELECT d.frame FROM detections d")
    with pytest.raises(InvalidInputError, match='Referenced column "x" not found'):
        store.sql("SELECT x FROM (SELECT 1 AS y)")  # no table of the store: DuckDB's words
    with pytest.raises(InvalidInputError, match="non-empty"):
        store.sql("  ")
    with pytest.raises(InvalidInputError, match="params must be"):
        store.sql("SELECT ?", params=5)  # type: ignore[arg-type]
    # DuckDB says "Parameter/argument count mismatch for prepared statement"
    with pytest.raises(InvalidInputError, match=r"it has 0 parameters \(\$name or \?\) but "
                       "1 value was given"):
        store.sql("SELECT 1", {"n": 1})
    with pytest.raises(InvalidInputError, match="no placeholder for the values given as m"):
        store.sql("SELECT $n", {"n": 1, "m": 2})
    # DuckDB said "Invalid Input Error: Values were not provided for the following ..."
    with pytest.raises(InvalidInputError, match=r"no value was given for its placeholder\(s\) "
                       r"m \(\$name or \?\)"):
        store.sql("SELECT $n, $m", {"n": 1})


def test_each_output_is_flattened_once_into_one_file_keyed_by_its_hash(
        new_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = new_store("embedded")
    ids = build(store)
    loads: list[str] = []
    real = store.catalog.outputs
    monkeypatch.setattr(store.catalog, "outputs",
                        lambda hashes: loads.extend(hashes) or real(hashes))
    store.sql("SELECT count(*) FROM detections")
    hashes = {h for t in store.list_timelines() for c in store.checkpoints(t.id)
              for h in c.stage_hashes.values()}
    assert sorted(loads) == sorted(hashes)  # one read per distinct output, shared ones once
    keys = set(store.objects.list(derived.PREFIX))
    assert keys == {derived.key_of(h) for h in hashes}
    loads.clear()
    store.sql("SELECT count(*) FROM detections")
    store.detections([ids["try0"], "best"], "detect")
    reopened = new_store.reopen(store)
    again = reopened.catalog.outputs
    monkeypatch.setattr(reopened.catalog, "outputs",
                        lambda hashes: loads.extend(hashes) or again(hashes))
    reopened.sql("SELECT count(*) FROM detections")
    assert loads == []  # files are found again by a new process, never remade


def test_a_damaged_derived_file_is_made_again(new_store: Any) -> None:
    store = new_store("embedded")
    ids = build(store)
    expected = store.sql("SELECT * FROM detections ORDER BY hash, sequence, index")
    h = store.get_checkpoint(ids["try0"]).stage_hashes["detect"]
    store.objects.put(derived.key_of(h), b"not parquet")
    again = new_store.reopen(store)
    assert again.sql("SELECT * FROM detections ORDER BY hash, sequence, index").equals(expected)
    store = again
    store.objects.put(derived.key_of(h), b"not parquet either")
    got = store.detections([ids["try0"]], "detect")
    assert got.num_rows == expected.filter(pc.equal(expected.column("hash"), h)).num_rows


def test_detections_for_pandas_users(source: Any) -> None:
    store, ids, _ = source
    t = store.detections([ids["try0"], "best"], "detect")
    assert t.column_names == ["checkpoint_id", "hash", "sequence", "timestamp", "index",
                              "label", "score", "x1", "y1", "x2", "y2", "track_id"]
    assert set(t.column("checkpoint_id").to_pylist()) == {ids["try0"], ids["try1"]}
    out = store.load_stage_output(ids["try0"], "detect")
    assert t.filter(pc.equal(t.column("checkpoint_id"), ids["try0"])).num_rows == sum(
        len(f["detections"]) for f in out["frames"])
    first = t.to_pylist()[0]
    assert first["timestamp"] == first["sequence"] / 2
    with pytest.raises(NotFoundError, match="no stage 'ocr'"):
        store.detections([ids["try0"]], "ocr")
    with pytest.raises(InvalidInputError, match="not frame-keyed"):
        store.detections([ids["track"]], "track")


@pytest.mark.parametrize("query,joined", [
    ("SELECT label, count(*) FROM detections GROUP BY ALL", False),
    ("SELECT count(*) FROM detections d JOIN frames f USING (sequence)", False),
    ("SELECT max(timestamp) FROM detections", True),
    ("SELECT * FROM detections", True),
    ("SELECT d FROM detections d", True),  # a whole row, as a struct
    ("SELECT #3 FROM detections", True),
    ("SELECT count(*) FROM detections NATURAL JOIN frames", True),
    ("SELECT count(*) FROM (SELECT * EXCLUDE (track_id) FROM detections)", True),
    ("SELECT COLUMNS('x.') FROM detections", True),
])
def test_boxes_are_timed_whenever_a_query_might_read_the_time(source: Any, query: str,
                                                              joined: bool) -> None:
    from localckpt.query import engine_of

    store, _, _ = source
    store.sql(query)
    assert engine_of(store).timestamps_joined is joined
    if joined:
        times = store.sql("SELECT d.timestamp FROM detections d WHERE d.timestamp IS NULL")
        assert times.num_rows == 0  # every box has its frame's time


def test_remote_objects_are_read_from_copies_made_once(
        new_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from localckpt.query import engine_of

    store = new_store("memory")  # memory:// objects are not a local directory
    ids = build(store)
    expected = store.sql("SELECT * FROM detections ORDER BY hash, sequence, index")
    mirror = engine_of(store)._mirror
    assert mirror is not None
    hashes = {h for t in store.list_timelines() for c in store.checkpoints(t.id)
              for h in c.stage_hashes.values()}
    assert sorted(os.listdir(mirror)) == sorted(f"{h}.parquet" for h in hashes)
    gets: list[str] = []
    real_get = store.objects.get
    monkeypatch.setattr(store.objects, "get", lambda k: gets.append(k) or real_get(k))
    store.sql("SELECT count(*) FROM detections")
    assert [k for k in gets if k.startswith(derived.PREFIX)] == []  # no request again
    h = store.get_checkpoint(ids["try2"]).stage_hashes["detect"]
    with open(os.path.join(mirror, f"{h}.parquet"), "wb") as fh:
        fh.write(b"damaged")
    assert store.sql("SELECT * FROM detections ORDER BY hash, sequence, index").equals(expected)


def test_a_track_id_beyond_64_bits_is_no_track_and_no_failure(new_store: Any) -> None:
    """Any try may save any JSON: one box whose track_id no int64 column holds made
    every query of detections, evaluate and the web's tries page fail (OverflowError
    from Arrow), for the whole store. It counts as no track id, as a non-integer does."""
    store = new_store("embedded")
    tl = store.create_timeline("v.mp4", "p", [np.zeros((16, 16, 3), np.uint8)] * 2, fps=2.0)
    big = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": 0, "detections": [
            {"box": [1, 2, 5, 6], "label": "a", "track_id": 10**30},
            {"box": [1, 2, 5, 6], "label": "a", "track_id": 2**63 - 1},
            {"box": [1, 2, 5, 6], "label": "a", "track_id": -(2**63) - 1}]}]})
    got = store.sql("SELECT track_id FROM detections ORDER BY index")
    assert got.column("track_id").to_pylist() == [None, 2**63 - 1, None]
    ev = store.evaluate([big], big)
    assert ev.rows()[0]["tp"] == 3
