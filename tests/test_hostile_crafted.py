"""Bundles and sync peers crafted by hand, from the attacker's side: refused with a typed
error, and the destination left exactly as it was.

Each case alters what the code writes: a bundle's members rewritten (its Parquet tables,
its manifest), or a peer store's SQLite catalog written directly, with every row digest
and per-timeline sum made to agree again (as a careful forger would, so that the rows
read as sound and only the transfer's own checks stand in the way). The destination is
an embedded store holding a victim timeline; it is dumped whole before and after
(every catalog row, every file under the store with its SHA-256), and the two dumps
must be equal.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import localckpt
from localckpt.bundle import export_bundle, import_bundle
from localckpt.catalog import Batch
from localckpt.errors import CorruptDataError, LocalckptError
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.schema import FIELDS, from_rows

FRAMES = [np.full((4, 4, 3), i * 80, np.uint8) for i in range(3)]

Members = dict[str, bytes]


# -- the scene: a victim timeline V in dst, a timeline A in src ---------------------------


class Scene:
    def __init__(self, tmp: Path) -> None:
        self.src_path, self.dst_path = tmp / "src", tmp / "dst"
        src = localckpt.open(str(self.src_path), create=True)
        a = src.create_timeline("a.mp4", "p", FRAMES, codec="png", workers=1)
        a1 = src.save_stage_output(a.id, None, "detect", {"a": 1})
        self.a, self.a_ids, self.a_tag = a, [a.root_checkpoint_id, a1], src.tag(a1, "a-best")
        self.bundle = tmp / "a.lckpt"
        export_bundle(src, a.id, self.bundle)
        src.close()
        self.dst = localckpt.open(str(self.dst_path), create=True)
        v = self.dst.create_timeline("victim.mp4", "p", FRAMES, codec="png", workers=1)
        v1 = self.dst.save_stage_output(v.id, None, "detect", {"v": 1})
        v2 = self.dst.save_stage_output(v.id, v1, "track", {"v": 2})
        self.v, self.v_ids = v, [v.root_checkpoint_id, v1, v2]
        self.v_tag = self.dst.tag(v1, "victim-best")
        gone = self.dst.save_stage_output(v.id, v1, "track", {"v": 3})
        self.dst.prune(gone)  # a tombstone of V
        self.v_tombstone = self.dst.catalog.tombstones([v.id])[0]

    def close(self) -> None:
        self.dst.close()


@pytest.fixture
def scene(tmp_path: Path) -> Any:
    s = Scene(tmp_path)
    yield s
    s.close()


def dump(root: Path) -> tuple[list[str], dict[str, str]]:
    """Every catalog row and every file (with its SHA-256) of an embedded store."""
    con = sqlite3.connect(f"file:{root / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        rows = sorted(line for line in con.iterdump()
                      if not line.startswith(("BEGIN", "COMMIT")))
    finally:
        con.close()
    files = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if not rel.startswith("catalog.sqlite"):
            files[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return rows, files


def refused(scene: Scene, attack: Callable[[], object], match: str,
            error: type[LocalckptError] = localckpt.CorruptDataError) -> None:
    """attack raises error (matching match) and dst is exactly as it was."""
    before = dump(scene.dst_path)
    with pytest.raises(error, match=match):
        attack()
    assert dump(scene.dst_path) == before
    assert scene.dst.verify().ok


# -- bundles, rewritten ---------------------------------------------------------------------


def members(path: Path) -> Members:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write(path: Path, m: Members) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in m.items():
            zf.writestr(name, data)
    return path


def rows_of(m: Members, name: str) -> tuple[list[dict[str, Any]], pa.Schema]:
    table = pq.read_table(io.BytesIO(m[name]))
    return table.to_pylist(), table.schema


def set_rows(m: Members, name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    m[name] = buf.getvalue()


def with_column(schema: pa.Schema, name: str, type_: pa.DataType) -> pa.Schema:
    return pa.schema([pa.field(name, type_) if f.name == name else f for f in schema])


def import_edited(scene: Scene, tmp: Path, edit: Callable[[Members], None]) -> Callable[[], Any]:
    m = members(scene.bundle)
    edit(m)
    path = write(tmp / "edited.lckpt", m)
    return lambda: import_bundle(scene.dst, path)


def test_the_unedited_bundle_imports(scene: Scene, tmp_path: Path) -> None:
    """The cases below fail because of their edit, not because of the rewriting."""
    report = import_edited(scene, tmp_path, lambda m: None)()
    assert (report.timelines, report.checkpoints, report.tags) == (1, 2, 1)


def _time_as_text(m: Members) -> None:
    rows, schema = rows_of(m, "checkpoints.parquet")
    for r in rows:
        r["created_at"] = "9999-12-31T23:59:59-05:00"  # 10000-01-01 in UTC
    set_rows(m, "checkpoints.parquet", rows, with_column(schema, "created_at", pa.string()))


def _time_in_a_far_zone(m: Members) -> None:
    rows, schema = rows_of(m, "tags.parquet")
    from datetime import UTC, datetime

    for r in rows:  # in the column's own zone (+14:00) it is year 10000
        r["created_at"] = datetime(9999, 12, 31, 20, 0, tzinfo=UTC)
    set_rows(m, "tags.parquet", rows,
             with_column(schema, "created_at", pa.timestamp("us", tz="+14:00")))


@pytest.mark.parametrize("edit", [_time_as_text, _time_in_a_far_zone],
                         ids=lambda f: f.__name__)
def test_a_time_out_of_range_is_refused(edit: Callable[[Members], None], scene: Scene,
                                        tmp_path: Path) -> None:
    """It was an OverflowError (a foreign exception) out of the bundle reader."""
    refused(scene, import_edited(scene, tmp_path, edit), "out of range")


# -- sync peers, forged in their SQLite catalog ---------------------------------------------


def forge(root: Path, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run statements on a store's SQLite catalog, then make every row's digest and every
    sum agree with the rows again."""
    from localckpt.backends.sql.rows import _digest_of

    con = sqlite3.connect(str(root / "catalog.sqlite"))
    try:
        for sql, args in statements:
            con.execute(sql, args)
        for kind, table in (("timeline", "timelines"), ("checkpoint", "checkpoints"),
                            ("tombstone", "tombstones"), ("tag", "tags")):
            n = len(FIELDS[kind])
            for row in con.execute(f"SELECT * FROM {table}").fetchall():
                con.execute(f"UPDATE {table} SET digest = ? WHERE id = ?",
                            (_digest_of(list(row[:n])), row[0]))
        con.execute("DELETE FROM tree_sums")
        sums: dict[str, tuple[int, int]] = {}

        def add(key: str, digest: int) -> None:
            n, x = sums.get(key, (0, 0))
            sums[key] = (n + 1, x ^ digest)

        for (d,) in con.execute("SELECT digest FROM timelines"):
            add("", d)
        for tid, d in con.execute("SELECT timeline_id, digest FROM checkpoints"):
            add(tid, d)
        for tid, d in con.execute("SELECT timeline_id, digest FROM tombstones"):
            add(f"~tombstones:{tid}", d)
        for tid, name, d in con.execute("SELECT timeline_id, name, digest FROM tags"):
            add(f"~tags:{tid}", d)
            add(f"~names:{name}", d)
        con.executemany("INSERT INTO tree_sums (timeline_id, shard, n, x) VALUES (?, 0, ?, ?)",
                        [(k, n, x) for k, (n, x) in sums.items()])
        con.commit()
    finally:
        con.close()


def sync_forged(scene: Scene, statements: list[tuple[str, tuple[Any, ...]]]
                ) -> Callable[[], Any]:
    forge(scene.src_path, statements)

    def attack() -> Any:
        with localckpt.open(str(scene.src_path)) as src:
            return localckpt.sync(src, scene.dst)

    return attack


def test_an_unforged_peer_syncs(scene: Scene) -> None:
    """The forger's rewrite alone changes nothing a sync can see."""
    report = sync_forged(scene, [])()
    assert (report.timelines, report.checkpoints, report.tags) == (1, 2, 1)


@pytest.mark.parametrize("table", ["tags", "checkpoints", "timelines"])
@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_peer_time_out_of_range_is_refused(table: str, when: str, scene: Scene) -> None:
    """A time with no UTC form read as sound from the peer's rows, and the destination's
    commit raised OverflowError after the frames and outputs were written."""
    refused(scene, sync_forged(scene, [(f"UPDATE {table} SET created_at = ?", (when,))]),
            "out of range")


def test_times_are_still_taken_in_any_zone(scene: Scene) -> None:
    from datetime import timedelta, timezone

    import attrs

    later = utcnow().astimezone(timezone(timedelta(hours=-5)))
    tl = scene.dst.get_timeline(scene.v.id)
    localckpt.Batch(timelines=[attrs.evolve(tl, created_at=later)])  # validates


# -- ids the destination holds in another timeline, and ids twice -----------------------


def _insert_tag(scene: Scene, tag_id: str) -> tuple[str, tuple[Any, ...]]:
    return ("INSERT INTO tags (id, name, checkpoint_id, timeline_id, created_at, digest) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            (tag_id, "stolen", scene.a_ids[1], scene.a.id, utcnow().isoformat()))


def _insert_tombstone(scene: Scene, tombstone_id: str) -> tuple[str, tuple[Any, ...]]:
    return ("INSERT INTO tombstones (id, target_id, kind, timeline_id, created_at, digest) "
            "VALUES (?, ?, 'tag', ?, ?, 0)",
            (tombstone_id, scene.a_tag.id, scene.a.id, utcnow().isoformat()))


@pytest.mark.parametrize("kind", ["tag", "tombstone"])
def test_a_peer_record_with_the_id_of_another_timelines_record(kind: str,
                                                                scene: Scene) -> None:
    """A peer's tag (tombstone) of its own timeline A, with the id of a tag (tombstone)
    of V: the destination's commit refused it, but only after A's frames and outputs
    were written, and they stayed."""
    statement = (_insert_tag(scene, scene.v_tag.id) if kind == "tag"
                 else _insert_tombstone(scene, scene.v_tombstone.id))
    before = scene.dst.catalog.tags([scene.v.id]), scene.dst.catalog.tombstones([scene.v.id])
    refused(scene, sync_forged(scene, [statement]), "other content",
            localckpt.ConflictError)
    assert (scene.dst.catalog.tags([scene.v.id]),
            scene.dst.catalog.tombstones([scene.v.id])) == before


def _twice(name: str, field: str, value: str) -> Callable[[Members], None]:
    def edit(m: Members) -> None:
        import json

        rows, schema = rows_of(m, f"{name}s.parquet")
        rows.append({**rows[-1], field: value})
        set_rows(m, f"{name}s.parquet", rows, schema)
        manifest = json.loads(m["localckpt-bundle.json"])
        manifest["counts"][f"{name}s"] += 1
        m["localckpt-bundle.json"] = json.dumps(manifest).encode()

    edit.__name__ = f"{name}_twice"
    return edit


@pytest.mark.parametrize("edit", [_twice("checkpoint", "stage", "other"),
                                  _twice("tag", "name", "other-name"),
                                  _twice("checkpoint", "stage", "detect")],
                         ids=["checkpoint", "tag", "checkpoint-same"])
def test_a_bundle_holding_an_id_twice_is_refused(edit: Callable[[Members], None],
                                                 scene: Scene, tmp_path: Path) -> None:
    """It was a ConflictError from the commit, after the frames and outputs were
    written; now refused as what it is, before anything is written."""
    refused(scene, import_edited(scene, tmp_path, edit), "two .* records with id")


def test_a_bundle_refused_after_its_objects_leaves_no_directory(scene: Scene,
                                                                tmp_path: Path) -> None:
    """An output that does not match its hash is found after the frames were copied:
    they are removed, and so is the timeline's directory their lease made."""
    def edit(m: Members) -> None:
        rows, schema = rows_of(m, "outputs.parquet")
        rows[0]["json"] = '{"a": 2}'
        set_rows(m, "outputs.parquet", rows, schema)

    refused(scene, import_edited(scene, tmp_path, edit), "does not match its hash")
    assert not (scene.dst_path / "objects" / "frames" / scene.a.id).exists()


def _damaged_output(m: Members) -> None:
    rows, schema = rows_of(m, "outputs.parquet")
    rows[0]["json"] = '{"a": 2}'
    set_rows(m, "outputs.parquet", rows, schema)


def _damaged_shard(m: Members) -> None:
    name = next(n for n in m if n.endswith("shard-000000.bin"))
    m[name] = m[name][:-1] + bytes([m[name][-1] ^ 1])


@pytest.mark.parametrize("edit", [_damaged_output, _damaged_shard],
                         ids=["output", "shard"])
def test_a_refused_import_into_an_empty_store_leaves_no_directory(
        edit: Callable[[Members], None], scene: Scene, tmp_path: Path) -> None:
    """Into a store that held no timeline, the objects/frames/ directory the ingest
    lease made stayed behind, empty, whether the bundle was refused while its shards
    were copied or after (its output); the store is now exactly as it was."""
    m = members(scene.bundle)
    edit(m)
    bundle = write(tmp_path / "edited.lckpt", m)
    path = tmp_path / "empty"
    with localckpt.open(str(path), create=True) as store:
        before = dump(path)
        with pytest.raises(localckpt.CorruptDataError, match="does not match"):
            import_bundle(store, bundle)
        assert dump(path) == before
        assert not (path / "objects" / "frames").exists()
        assert store.verify().ok
        import_bundle(store, scene.bundle)  # and the next import makes it as before
        assert (path / "objects" / "frames" / scene.a.id).is_dir()


# -- ids that are not UUIDs -----------------------------------------------------------------


def test_an_imported_id_cannot_take_over_a_tag_or_a_short_id(scene: Scene,
                                                              tmp_path: Path) -> None:
    """Ids need not be UUIDs (records from other systems), and an exact id was looked up
    before tags and short ids: a bundle adding checkpoints with the ids "victim-best" (a
    tag of V) and V's short id made both names resolve to its own checkpoints, so that
    ``show``, ``diff``, ``merge`` or a run from that name used the attacker's work."""
    from localckpt.refs import resolve

    short = scene.dst.short_id(scene.v_ids[2])
    assert resolve(scene.dst, "victim-best") == scene.v_ids[1]
    assert resolve(scene.dst, short) == scene.v_ids[2]

    def edit(m: Members) -> None:
        import json

        rows, schema = rows_of(m, "checkpoints.parquet")
        rows += [{**rows[-1], "id": "victim-best", "stage": "poisoned"},
                 {**rows[-1], "id": short, "stage": "poisoned"}]
        set_rows(m, "checkpoints.parquet", rows, schema)
        manifest = json.loads(m["localckpt-bundle.json"])
        manifest["counts"]["checkpoints"] += 2
        m["localckpt-bundle.json"] = json.dumps(manifest).encode()

    assert import_edited(scene, tmp_path, edit)().checkpoints == 4  # imported: ids may be
    for name in ("victim-best", short):
        with pytest.raises(localckpt.InvalidInputError, match="ambiguous"):
            resolve(scene.dst, name)
        with pytest.raises(localckpt.InvalidInputError, match="ambiguous"):
            scene.dst.get_checkpoint(name)
    assert scene.dst.get_checkpoint(scene.v_ids[1]).stage == "detect"
    longer = scene.dst.short_id(scene.v_ids[2])  # the short id shown now is unique again
    assert longer != short and resolve(scene.dst, longer) == scene.v_ids[2]


# -- outputs too many for one commit ----------------------------------------------------------


def _many_outputs(root: Path) -> list[str]:
    """1,001 tries under A's root in the source store at root, each with an output of
    its own (a transfer fetches outputs 1,000 at a time), written in one commit; their
    hashes, in the order a transfer copies them."""
    import attrs

    from localckpt.canonical import canonical_bytes, content_hash
    from localckpt.ids import new_id

    with localckpt.open(str(root)) as src:
        a = src.list_timelines()[0]
        root_checkpoint = src.get_checkpoint(a.root_checkpoint_id)
        outputs = {}
        tries = []
        for i in range(1001):
            data = canonical_bytes({"i": i, "pad": "x" * 50})
            h = content_hash(data)
            outputs[h] = data
            tries.append(attrs.evolve(root_checkpoint, id=new_id(), stage="s",
                                      parent_id=root_checkpoint.id, stage_hashes={"s": h},
                                      is_scenario=True, created_at=utcnow()))
        src.catalog.commit(localckpt.Batch(checkpoints=tries, outputs=outputs))
    return sorted(outputs)


@pytest.mark.parametrize("mode", ["bundle", "sync"])
def test_a_damaged_output_past_the_first_commit_leaves_no_output(
        mode: str, scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs too many for one commit were committed a chunk at a time as they were
    read, so a source refused for an output further down the list left the chunks
    before it in the destination (unreferenced rows, "Nothing was copied" said). Now
    every output is checked before the first chunk is committed."""
    import localckpt.transfer as transfer

    monkeypatch.setattr(transfer, "OUTPUT_CHUNK_BYTES", 1000)  # about 15 outputs a chunk
    hashes = _many_outputs(scene.src_path)
    last = hashes[-1]
    if mode == "sync":
        attack = sync_forged(scene, [])
        con = sqlite3.connect(str(scene.src_path / "catalog.sqlite"))
        with con:
            con.execute("UPDATE outputs SET data = ? WHERE hash = ?",
                        (b'{"i":1,"pad":"damaged"}', last))
        con.close()
    else:
        with localckpt.open(str(scene.src_path)) as src:
            path = tmp_path / "many.lckpt"
            export_bundle(src, scene.a.id, path)

        def damage(m: Members) -> None:
            rows, schema = rows_of(m, "outputs.parquet")
            for r in rows:
                if r["hash"] == last:
                    r["json"] = r["json"].replace("x", "y", 1)
            set_rows(m, "outputs.parquet", rows, schema)

        m = members(path)
        damage(m)
        bad = write(tmp_path / "damaged.lckpt", m)

        def attack() -> Any:
            return import_bundle(scene.dst, bad)

    refused(scene, attack, f"{last} .*does not match its hash")


# -- frame indexes --------------------------------------------------------------------------


def _index_timestamps(scene: Scene, times: list[float]) -> Callable[[Members], None]:
    """An edit giving A's frame index these timestamps, the hashes made to agree."""
    def edit(m: Members) -> None:
        import json

        key = f"frames/{scene.a.id}/index.parquet"
        table = pq.read_table(io.BytesIO(m[f"objects/{key}"]))
        table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp",
                                 pa.array(times, pa.float64()))
        buf = io.BytesIO()
        pq.write_table(table, buf)
        m[f"objects/{key}"] = buf.getvalue()
        digest = hashlib.sha256(buf.getvalue()).hexdigest()
        rows, schema = rows_of(m, "timelines.parquet")
        rows[0]["index_hash"] = digest
        set_rows(m, "timelines.parquet", rows, schema)
        manifest = json.loads(m["localckpt-bundle.json"])
        manifest["hashes"][key] = digest
        m["localckpt-bundle.json"] = json.dumps(manifest).encode()

    return edit


@pytest.mark.parametrize("bad", [float("inf"), float("-inf")])
def test_a_frame_index_with_an_infinite_time_is_refused(bad: float, scene: Scene,
                                                        tmp_path: Path) -> None:
    """create_timeline refuses a frame time that is not finite; an index from a bundle
    (or a peer) holding one imported, and exporting labels by source frame number then
    raised OverflowError."""
    refused(scene, import_edited(scene, tmp_path, _index_timestamps(scene, [0.0, bad, 1.0])),
            "has timestamp -?inf")
    assert import_edited(scene, tmp_path, _index_timestamps(scene, [0.0, 0.5, 9.0]))()


def test_a_frame_time_past_any_source_frame_number_is_a_typed_error(
        scene: Scene, tmp_path: Path) -> None:
    """A timeline (from a bundle or a peer) may hold any finite frame time and any
    source frame rate: exporting labels by source frame number multiplied the two, and
    round() raised OverflowError on the infinite product."""
    from localckpt.labels import export_labels

    def edit(m: Members) -> None:
        _index_timestamps(scene, [0.0, 1e307, 2e307])(m)
        rows, schema = rows_of(m, "timelines.parquet")
        rows[0]["source_info"] = '{"fps": 25.0}'
        set_rows(m, "timelines.parquet", rows, schema)

    assert import_edited(scene, tmp_path, edit)()
    boxes = scene.dst.save_stage_output(scene.a.id, None, "detect", {"frames": [
        {"sequence": 1, "detections": [{"box": [0, 0, 2, 2], "label": "x"}]}]})
    out = tmp_path / "out.json"
    with pytest.raises(localckpt.InvalidInputError, match="past any source frame number"):
        export_labels(scene.dst, boxes, "detect", out, "coco", frames="source")
    assert not out.exists()


@pytest.mark.parametrize("kind", ["tag", "tombstone"])
def test_an_id_of_another_timeline_leaves_no_output_past_the_first_commit(
        kind: str, scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer's tag (tombstone) with the id of one of V's, and outputs too many for one
    commit: the rows' commit refused it, but the output chunks before it stayed."""
    import localckpt.transfer as transfer

    monkeypatch.setattr(transfer, "OUTPUT_CHUNK_BYTES", 1000)
    _many_outputs(scene.src_path)
    statement = (_insert_tag(scene, scene.v_tag.id) if kind == "tag"
                 else _insert_tombstone(scene, scene.v_tombstone.id))
    refused(scene, sync_forged(scene, [statement]), "(other|different) content",
            localckpt.ConflictError)


# -- records from the future --------------------------------------------------------------


def _uuid7_at(when: Any) -> str:
    """A well-formed UUIDv7 recording the time when (as a forger makes one)."""
    import os

    ms = int(when.timestamp() * 1000) & ((1 << 48) - 1)
    value = ms << 80 | 0x7 << 76 | 0b10 << 62 | int.from_bytes(os.urandom(8)) >> 2
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_FAR = "ffffffff-ffff-7fff-bfff-ffffffffffff"  # the largest UUIDv7: the year 10889


def _retag(scene: Scene, mode: str, tmp: Path, **fields: Any) -> Callable[[], Any]:
    """A's tag rewritten (in the bundle's table, or in the peer's catalog) with fields."""
    if mode == "sync":
        sets = ", ".join(f"{k} = ?" for k in fields)
        values = tuple(v.isoformat() if hasattr(v, "isoformat") else v
                       for v in fields.values())
        return sync_forged(scene, [(f"UPDATE tags SET {sets}", values)])

    def edit(m: Members) -> None:
        rows, schema = rows_of(m, "tags.parquet")
        set_rows(m, "tags.parquet", [{**r, **fields} for r in rows], schema)

    return import_edited(scene, tmp, edit)


@pytest.mark.parametrize("mode", ["bundle", "sync"])
def test_a_tag_from_the_future_cannot_take_over_a_name(mode: str, scene: Scene,
                                                      tmp_path: Path) -> None:
    """The newest tag of a name (by id: a UUIDv7 is its time) wins it everywhere, so a
    tag of A named "victim-best" with a forged id from the year 10889 made that name
    resolve to A's checkpoint in the destination, for good (untag removed both; any tag
    made later lost to it again once synced back)."""
    attack = _retag(scene, mode, tmp_path, id=_FAR, name="victim-best")
    refused(scene, attack, f"tag {_FAR} has an id dated 9999-12-31.*more than a day after")
    assert scene.dst.tag_target("victim-best") == scene.v_ids[1]


@pytest.mark.parametrize("mode", ["bundle", "sync"])
def test_a_tag_id_that_is_not_a_uuid7_is_refused(mode: str, scene: Scene,
                                                 tmp_path: Path) -> None:
    """Ids need not be UUIDs, but a tag's decides the winner of its name by sorting:
    "zzzzzzzz" sorts after every UUID, a forged tag that never ages."""
    attack = _retag(scene, mode, tmp_path, id="zzzzzzzz", name="victim-best")
    refused(scene, attack, "tag zzzzzzzz .* not a UUIDv7")
    assert scene.dst.tag_target("victim-best") == scene.v_ids[1]


@pytest.mark.parametrize("mode", ["bundle", "sync"])
@pytest.mark.parametrize("table", ["checkpoints", "tags", "timelines"])
def test_a_created_at_from_the_future_is_refused(mode: str, table: str, scene: Scene,
                                                 tmp_path: Path) -> None:
    """A checkpoint dated 9999 is the newest of its stage forever (``A:detect``), one
    that ``retain(keep_last=..., newer_than=...)`` always keeps; the same for every
    kind of record: refused, naming the record and the time."""
    from datetime import timedelta

    later = utcnow() + timedelta(days=2)
    if mode == "sync":
        attack = sync_forged(scene, [(f"UPDATE {table} SET created_at = ?",
                                      (later.isoformat(),))])
    else:
        def edit(m: Members) -> None:
            rows, schema = rows_of(m, f"{table}.parquet")
            set_rows(m, f"{table}.parquet", [{**r, "created_at": later} for r in rows],
                     schema)

        attack = import_edited(scene, tmp_path, edit)
    refused(scene, attack, f"{table[:-1]} .* was created at {later.year}-.*more than a day")


@pytest.mark.parametrize("mode", ["bundle", "sync"])
def test_a_tombstone_from_the_future_is_refused(mode: str, scene: Scene,
                                                tmp_path: Path) -> None:
    """The peer untagged its tag with a tombstone whose id and time are from 2100."""
    from datetime import UTC, datetime

    when = datetime(2100, 1, 1, tzinfo=UTC)
    forged = _uuid7_at(when)
    if mode == "sync":
        attack = sync_forged(scene, [(
            "INSERT INTO tombstones (id, target_id, kind, timeline_id, created_at, digest) "
            "VALUES (?, ?, 'tag', ?, ?, 0)",
            (forged, scene.a_tag.id, scene.a.id, utcnow().isoformat()))])
    else:
        def edit(m: Members) -> None:
            import json

            rows, schema = rows_of(m, "tombstones.parquet")
            rows.append({"id": forged, "target_id": scene.a_tag.id, "kind": "tag",
                         "timeline_id": scene.a.id, "created_at": utcnow()})
            set_rows(m, "tombstones.parquet", rows, schema)
            manifest = json.loads(m["localckpt-bundle.json"])
            manifest["counts"]["tombstones"] += 1
            m["localckpt-bundle.json"] = json.dumps(manifest).encode()

        attack = import_edited(scene, tmp_path, edit)
    refused(scene, attack, f"tombstone {forged} has an id dated 2100-01-01")


def test_a_record_from_the_future_deleted_at_the_source_lets_the_rest_through(
        scene: Scene) -> None:
    """What the refusal says: a record deleted in the source does not travel, so
    untagging the tag from the future there lets the sync go through."""
    from datetime import timedelta

    attack = sync_forged(scene, [("UPDATE tags SET created_at = ?",
                                  ((utcnow() + timedelta(days=2)).isoformat(),))])
    with pytest.raises(localckpt.CorruptDataError, match="deleted there, by prune, untag"):
        attack()
    with localckpt.open(str(scene.src_path)) as src:
        src.untag("a-best")
    report = attack()
    assert (report.checkpoints, report.tags, report.tombstones) == (2, 0, 1)


@pytest.mark.parametrize("mode", ["bundle", "sync"])
def test_a_peer_whose_clock_is_hours_ahead_still_syncs(mode: str, scene: Scene,
                                                      tmp_path: Path) -> None:
    """A clock off by hours (a time zone taken for UTC) is within the day allowed: its
    tag, made "later" than the destination's, wins the name as it would have."""
    from datetime import timedelta

    ahead = utcnow() + timedelta(hours=14)
    forged = _uuid7_at(ahead)
    report = _retag(scene, mode, tmp_path, id=forged, created_at=ahead)()
    assert report.tags == 1
    assert [g.id for g in scene.dst.tags(scene.a.id)] == [forged]
    assert scene.dst.tag_target("a-best") == scene.a_ids[1]


# -- a timeline's text and source details, shown ----------------------------------------------


def _timeline_fields(**fields: Any) -> Callable[[Members], None]:
    def edit(m: Members) -> None:
        import json

        rows, schema = rows_of(m, "timelines.parquet")
        values = {k: json.dumps(v) if k == "source_info" else v for k, v in fields.items()}
        set_rows(m, "timelines.parquet", [{**r, **values} for r in rows], schema)

    return edit


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from localckpt.cli.main import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("info", [
    {"fps": {"num": 25}, "duration": 3}, {"fps": "25", "duration": "long", "codec": ["h264"]},
    {"fps": 25, "duration": 5, "sampling": {"start": "a", "end": [1], "max_frames": "x"}},
    {"sampling": [1, 2], "width": {"w": 1}, "height": None},
], ids=["fps-object", "fps-text", "sampling-text", "sampling-list"])
def test_source_details_of_any_json_type_still_show(info: dict[str, Any], scene: Scene,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A timeline's source_info is any JSON object (from a bundle or a peer too), and
    ``localckpt tree`` formatted its fps with ``:g``: a traceback for text or an object."""
    import_edited(scene, tmp_path, _timeline_fields(source_info=info))()
    code, out, err = _cli(capsys, "--store", str(scene.dst_path), "tree", scene.a.id)
    assert (code, err) == (0, "") and out.startswith("timeline ")
    assert _cli(capsys, "--store", str(scene.dst_path), "ls")[0] == 0


def test_a_timelines_text_cannot_write_escape_sequences_to_a_terminal(
        scene: Scene, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stage names, tags and scenario labels print with control characters escaped
    (render.printable); a timeline's source video, profile and codec printed raw, so a
    bundle could retitle the terminal, or clear and redraw what ``ls`` showed."""
    evil = "a.mp4\x1b]0;pwned\x07\x1b[2J\r\nfake line"
    import_edited(scene, tmp_path, _timeline_fields(
        source_video=evil, profile_name="p\x1b[31m",
        source_info={"codec": "h264\x1b[8m", "width": "1\n2", "height": 2}))()
    store = str(scene.dst_path)
    for argv in (("ls",), ("tree", scene.a.id), ("diff", scene.a_ids[1], scene.v_ids[1])):
        code, out, err = _cli(capsys, "--store", store, *argv)
        assert code == 0, err
        assert "\x1b" not in out + err and "\x07" not in out + err and "\r" not in out
        assert "fake line" not in out.replace("\\r\\nfake line", "")  # on its own line
    code, out, _ = _cli(capsys, "--store", store, "ls")
    assert "a.mp4\\x1b]0;pwned\\x07" in out


def test_an_integer_beyond_a_double_in_a_record_reads_back(scene: Scene,
                                                          tmp_path: Path) -> None:
    """schema.validate takes integers of up to 4,300 digits in config, stats and
    source_info (docs/trust.md), and a bundle's timeline with one imports: it reads back
    exactly (the embedded catalog's row decoder called the row damaged, and ``ls``
    failed for the whole store)."""
    import_edited(scene, tmp_path, _timeline_fields(source_info={"duration": 10**400}))()
    assert scene.dst.get_timeline(scene.a.id).source_info == {"duration": 10**400}


# -- the id of a record deleted (and purged) elsewhere ---------------------------------------


@pytest.mark.parametrize("mode", ["bundle", "sync"])
@pytest.mark.parametrize("kind", ["checkpoint", "tag"])
def test_a_deleted_id_never_comes_back_in_another_timeline(kind: str, mode: str,
                                                          scene: Scene,
                                                          tmp_path: Path) -> None:
    """V's checkpoint (tag) was deleted and gc purged its row; the tombstone stays, filed
    under V. A source carrying A brought a checkpoint (tag) of A with that id: nothing
    compared it with V's deletions, so the deleted id was live again, with the
    attacker's content, for every reference and script that named it."""
    from localckpt.gc import collect_garbage

    if kind == "tag":
        scene.dst.untag("victim-best")
    gone = next(x.target_id for x in scene.dst.catalog.tombstones([scene.v.id])
                if x.kind == kind)
    assert collect_garbage(scene.dst).records_purged
    assert not (scene.dst.catalog.checkpoints([gone]) if kind == "checkpoint"
                else [g for g in scene.dst.catalog.tags(None) if g.id == gone])
    old = scene.a_ids[1] if kind == "checkpoint" else scene.a_tag.id
    if mode == "sync":
        statements = [(f"UPDATE {kind}s SET id = ? WHERE id = ?", (gone, old))]
        if kind == "checkpoint":
            statements.append(("UPDATE tags SET checkpoint_id = ? WHERE checkpoint_id = ?",
                               (gone, old)))
        attack = sync_forged(scene, statements)
    else:
        def edit(m: Members) -> None:
            for table, field in (("checkpoints", "id"), ("tags", "id"),
                                 ("tags", "checkpoint_id")):
                rows, schema = rows_of(m, f"{table}.parquet")
                rows = [{**r, field: gone} if r[field] == old else r for r in rows]
                set_rows(m, f"{table}.parquet", rows, schema)

        attack = import_edited(scene, tmp_path, edit)
    refused(scene, attack, f"{kind} {gone} .*deleted in timeline {scene.v.id}")
    if kind == "checkpoint":
        with pytest.raises(localckpt.NotFoundError):
            scene.dst.get_checkpoint(gone)


# -- frames whose bytes are not what their codec says ----------------------------------------


def test_a_jpeg_frame_that_is_not_one_is_a_typed_error_in_the_web_view(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle's frame may hold any bytes, its index, hashes and manifest made to agree.
    JPEG frames are served as stored, but a thumbnail decodes them: Pillow's error went
    out as "Internal error" with a traceback in the server's log, not a typed error
    saying which frame of which timeline is damaged."""
    import json

    from localckpt.web.app import App

    with localckpt.open(str(tmp_path / "src"), create=True) as src:
        tl = src.create_timeline("j.mp4", "p", FRAMES, codec="jpeg", workers=1)
        export_bundle(src, tl.id, tmp_path / "j.lckpt")
    m = members(tmp_path / "j.lckpt")
    shard_key, index_key = (f"frames/{tl.id}/shard-000000.bin", f"frames/{tl.id}/index.parquet")
    table = pq.read_table(io.BytesIO(m[f"objects/{index_key}"]))
    first = table.to_pylist()[0]
    shard = bytearray(m[f"objects/{shard_key}"])
    junk = b"not a jpeg".ljust(first["length"], b"!")
    shard[first["offset"]:first["offset"] + first["length"]] = junk
    hashes = table.column("content_hash").to_pylist()
    hashes[0] = hashlib.sha256(junk).hexdigest()
    table = table.set_column(table.schema.get_field_index("content_hash"), "content_hash",
                             pa.array(hashes, pa.string()))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    m[f"objects/{shard_key}"], m[f"objects/{index_key}"] = bytes(shard), buf.getvalue()
    manifest = json.loads(m["localckpt-bundle.json"])
    for key in (shard_key, index_key):
        manifest["hashes"][key] = hashlib.sha256(m[f"objects/{key}"]).hexdigest()
    m["localckpt-bundle.json"] = json.dumps(manifest).encode()
    rows, schema = rows_of(m, "timelines.parquet")
    rows[0]["index_hash"] = manifest["hashes"][index_key]
    set_rows(m, "timelines.parquet", rows, schema)
    with localckpt.open(str(tmp_path / "dst"), create=True) as dst:
        # an import refuses it now (each frame's header is checked: test_transfer_trust36);
        # a store damaged on disk may still hold one: written into it as it is
        with pytest.raises(CorruptDataError, match=r"frame 0 of timeline .*not a jpeg"):
            import_bundle(dst, write(tmp_path / "edited.lckpt", m))
        records = {kind: from_rows(kind, rows_of(m, f"{kind}s.parquet")[0])
                   for kind in ("timeline", "checkpoint")}
        for key in (shard_key, index_key):
            dst.objects.put(key, m[f"objects/{key}"])
        dst.catalog.commit(Batch(timelines=records["timeline"],
                                 checkpoints=records["checkpoint"]))
        capsys.readouterr()
        app = App(dst)
        assert app.handle("GET", f"/thumbs/{tl.id}/1.jpg", "localhost").status == 200
        r = app.handle("GET", f"/thumbs/{tl.id}/0.jpg", "localhost")
        assert r.status == 500 and b"frame 0 of timeline" in r.body
        assert b"cannot be decoded" in r.body and capsys.readouterr().err == ""


def test_a_bundle_never_deletes_a_timeline_not_even_its_own(scene: Scene,
                                                           tmp_path: Path) -> None:
    """Export writes live timelines only, so a bundle never holds a timeline's deletion
    (docs/trust.md: a sync peer may pass one on, a bundle cannot). One that carried V's
    record (exported from the victim once) and a tombstone of V deleted all of V."""
    import json

    from localckpt.ids import new_id

    export_bundle(scene.dst, scene.v.id, tmp_path / "v.lckpt")

    def edit(m: Members) -> None:
        rows, schema = rows_of(m, "tombstones.parquet")
        rows.append({"id": new_id(), "target_id": scene.v.id, "kind": "timeline",
                     "timeline_id": scene.v.id, "created_at": utcnow()})
        set_rows(m, "tombstones.parquet", rows, schema)
        manifest = json.loads(m["localckpt-bundle.json"])
        manifest["counts"]["tombstones"] += 1
        m["localckpt-bundle.json"] = json.dumps(manifest).encode()

    m = members(tmp_path / "v.lckpt")
    edit(m)
    path = write(tmp_path / "delete-v.lckpt", m)
    refused(scene, lambda: import_bundle(scene.dst, path),
            f"deletes its timeline {scene.v.id}.*never")
    assert scene.dst.get_timeline(scene.v.id).id == scene.v.id


# -- outputs named by hash alone ---------------------------------------------------------------


def test_a_bundle_cannot_name_an_output_of_the_destination_it_does_not_hold(
        scene: Scene, tmp_path: Path) -> None:
    """Outputs are stored once by hash, and an import copied only those the destination
    lacked: a bundle whose checkpoint named the hash of one of V's outputs (seen in a
    log, or guessed), without holding it, was admitted, and that output then left with
    A's timeline when it was exported (or pushed) back to the sender."""
    import json

    from localckpt.canonical import canonical_bytes, content_hash

    secret = content_hash(canonical_bytes({"v": 1}))  # v1's detect output
    assert scene.dst.get_checkpoint(scene.v_ids[1]).stage_hashes["detect"] == secret

    def edit(m: Members) -> None:
        rows, schema = rows_of(m, "checkpoints.parquet")
        leaf = next(r for r in rows if r["id"] == scene.a_ids[1])
        rows.append({**leaf, "id": new_id(), "parent_id": leaf["id"], "stage": "steal",
                     "stage_hashes": json.dumps({**json.loads(leaf["stage_hashes"]),
                                                 "steal": secret})})
        set_rows(m, "checkpoints.parquet", rows, schema)
        manifest = json.loads(m["localckpt-bundle.json"])
        manifest["counts"]["checkpoints"] += 1
        m["localckpt-bundle.json"] = json.dumps(manifest).encode()

    refused(scene, import_edited(scene, tmp_path, edit),
            f"lacks stage output {secret} that its checkpoints refer to")
