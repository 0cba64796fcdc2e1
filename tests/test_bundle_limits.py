"""Zip bombs and oversized members: refused with a typed error, in bounded memory,
with nothing written; and legitimately large outputs streamed both ways.

Each bomb replaces one member of a valid bundle: a 1 MB file that declares (and would
inflate to) a gigabyte, or a small Parquet table whose dictionary-encoded column
decodes to gigabytes. The import runs in a fresh process, which reports its peak
resident memory (VmHWM) over what it held before the import.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, StoreFactory

import localckpt
from localckpt import bundle_limits
from localckpt.bundle import export_bundle, import_bundle
from localckpt.errors import CorruptDataError

FRAMES = [np.full((6, 6, 3), i * 50, np.uint8) for i in range(3)]
GB = 1 << 30
RSS_BUDGET = 150 << 20  # what an import may add at most while refusing a bomb


def _members(store: localckpt.Store, tmp: Path) -> tuple[str, dict[str, bytes]]:
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
    store.save_stage_output(tl.id, a, "track", {"t": 1})
    path = tmp / "good.zip"
    export_bundle(store, tl.id, path)
    with zipfile.ZipFile(path) as zf:
        return tl.id, {n: zf.read(n) for n in zf.namelist()}


class _ZeroDeflater:
    """Deflates a stream of equal zero chunks without the work: every chunk after the
    first compresses to the same bytes (the window holds only zeros), so those are
    computed once and repeated. zipfile still computes the CRC and sizes."""

    def __init__(self, chunk: bytes) -> None:
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.blocks = [z.compress(chunk) + z.flush(zlib.Z_SYNC_FLUSH),
                       z.compress(chunk) + z.flush(zlib.Z_SYNC_FLUSH)]
        self.tail = z.flush()
        self.calls = 0

    def compress(self, data: bytes) -> bytes:
        self.calls += 1
        return self.blocks[0] if self.calls == 1 else self.blocks[1]

    def flush(self) -> bytes:
        return self.tail


def _write(path: Path, members: dict[str, bytes], bomb: str | None = None,
           size: int = 0) -> Path:
    """A bundle of members, with member bomb replaced by size zero bytes, deflated."""
    chunk = b"\0" * (8 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, data in members.items():
            if name != bomb:
                zf.writestr(name, data)
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            real = zipfile._get_compressor  # type: ignore[attr-defined]
            zipfile._get_compressor = lambda *a: _ZeroDeflater(chunk)  # type: ignore[attr-defined]
            try:
                with zf.open(info, "w", force_zip64=True) as fh:
                    for _ in range(size // len(chunk)):
                        fh.write(chunk)
            finally:
                zipfile._get_compressor = real  # type: ignore[attr-defined]
    return path


def test_the_bombs_are_real(tmp_path: Path) -> None:
    """The fast deflater writes a member that inflates to exactly what it declares."""
    path = _write(tmp_path / "z.zip", {"a": b""}, "a", 64 << 20)
    with zipfile.ZipFile(path) as zf, zf.open("a") as fh:
        total = 0
        while block := fh.read(1 << 20):
            assert not block.strip(b"\0")
            total += len(block)
    assert total == 64 << 20 and path.stat().st_size < 1 << 20


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bombs")
    with localckpt.open("memory://") as store:
        _, members = _members(store, tmp)
    out = {}
    for name, size in (("localckpt-bundle.json", GB), ("outputs.parquet", GB),
                       ("checkpoints.parquet", GB // 4)):
        out[name] = _write(tmp / f"bomb-{name}.zip", members, name, size)
        assert out[name].stat().st_size < 2 << 20  # a small file that declares a lot
    return out


_IMPORT = """
import json, sys
from localckpt.testing.rss import peak, reset_peak
import localckpt
from localckpt.bundle import import_bundle
store = localckpt.open(sys.argv[2], create=True)
store.list_timelines()
before = reset_peak()
try:
    import_bundle(store, sys.argv[1])
    error = None
except Exception as exc:
    error = [type(exc).__name__, isinstance(exc, localckpt.LocalckptError), str(exc)]
print(json.dumps({"added": peak() - before, "error": error,
                  "timelines": len(store.catalog.timelines(None)),
                  "objects": store.objects.list("frames")}))
"""


def _import_in_a_fresh_process(bundle: Path, store_dir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _IMPORT, str(bundle), str(store_dir)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("member", ["localckpt-bundle.json", "outputs.parquet",
                                   "checkpoints.parquet"])
def test_a_zip_bomb_is_refused_in_bounded_memory(member: str, bombs: dict[str, Path],
                                                 tmp_path: Path) -> None:
    result = _import_in_a_fresh_process(bombs[member], tmp_path / "dst")
    kind, typed, message = result["error"]
    assert typed and kind == "CorruptDataError", result
    assert member in message
    assert result["added"] < RSS_BUDGET, f"the import added {result['added'] >> 20} MB"
    assert result["timelines"] == 0 and result["objects"] == []


def _dictionary_bomb(members: dict[str, bytes], rows: int, width: int) -> None:
    """checkpoints.parquet of rows checkpoints whose stats are one width-byte string,
    stored once in the dictionary: a few hundred KB that decode to rows * width bytes."""
    table = pq.read_table(io.BytesIO(members["checkpoints.parquet"]))
    first = table.slice(0, 1).to_pylist()[0]
    big = json.dumps({"x": "y" * width})
    cols = {name: pa.array([first[name]] * rows, table.schema.field(name).type)
            for name in table.column_names}
    cols["id"] = pa.array([str(uuid.uuid4()) for _ in range(rows)])  # ids do not compress
    cols["stats"] = pa.DictionaryArray.from_arrays(  # built without expanding it here
        pa.array(np.zeros(rows, np.int32)), pa.array([big]))
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf, use_dictionary=True)
    members["checkpoints.parquet"] = buf.getvalue()
    manifest = json.loads(members["localckpt-bundle.json"])
    manifest["counts"]["checkpoints"] = rows
    members["localckpt-bundle.json"] = json.dumps(manifest).encode()


def test_a_parquet_dictionary_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    with localckpt.open("memory://") as store:
        _, members = _members(store, tmp_path)
    _dictionary_bomb(members, rows=20_000, width=100_000)  # 2 GB decoded
    path = _write(tmp_path / "dict-bomb.zip", members)
    assert path.stat().st_size < 4 << 20
    result = _import_in_a_fresh_process(path, tmp_path / "dst")
    kind, typed, message = result["error"]
    assert typed and kind == "CorruptDataError" and "decodes to" in message, result
    assert result["added"] < RSS_BUDGET, f"the import added {result['added'] >> 20} MB"
    assert result["timelines"] == 0 and result["objects"] == []


@pytest.mark.parametrize("member,cap", [
    ("localckpt-bundle.json", bundle_limits.MAX_MANIFEST),
    ("timelines.parquet", bundle_limits.table_cap("timeline", 1)),
])
def test_a_stored_member_over_its_cap_is_refused(member: str, cap: int,
                                                 new_store: StoreFactory,
                                                 tmp_path: Path) -> None:
    """Uncompressed, too: the cap is on what the manifest can sensibly declare."""
    _, members = _members(new_store("memory"), tmp_path)
    members[member] = members[member] + b" " * (cap + 1)
    dst = new_store("embedded")
    with pytest.raises(CorruptDataError, match="more than"):
        import_bundle(dst, _write(tmp_path / "big.zip", members))
    assert dst.list_timelines() == [] and dst.objects.list("frames") == []


def test_a_count_that_disagrees_with_the_table_is_refused(new_store: StoreFactory,
                                                          tmp_path: Path) -> None:
    _, members = _members(new_store("memory"), tmp_path)
    manifest = json.loads(members["localckpt-bundle.json"])
    manifest["counts"]["checkpoints"] = 10**9
    members["localckpt-bundle.json"] = json.dumps(manifest).encode()
    with pytest.raises(CorruptDataError, match="rows"):
        import_bundle(new_store("memory"), _write(tmp_path / "c.zip", members))


def test_outputs_stream_in_row_groups_both_ways(new_store: StoreFactory, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Export writes outputs in row groups; import reads one group at a time (the
    group size is made tiny here so that 40 outputs take many groups)."""
    monkeypatch.setattr(bundle_limits, "OUTPUT_GROUP_BYTES", 2_000)
    src = new_store("memory")
    tl = src.create_timeline("v", "p", FRAMES, codec="png", workers=1)
    parent = None
    for i in range(40):
        parent = src.save_stage_output(tl.id, parent, f"s{i % 4}", {"i": i, "pad": "x" * 300})
    path = tmp_path / "many.zip"
    export_bundle(src, tl.id, path)
    with zipfile.ZipFile(path) as zf, zf.open("outputs.parquet") as fh:
        groups = pq.ParquetFile(pa.PythonFile(fh)).metadata.num_row_groups
    assert groups >= 5
    reads: list[int] = []
    real = bundle_limits.OutputTable._group

    def counted(self: bundle_limits.OutputTable, group: int) -> dict[str, bytes]:
        reads.append(group)
        return real(self, group)

    monkeypatch.setattr(bundle_limits.OutputTable, "_group", counted)
    dst = new_store("embedded")
    report = import_bundle(dst, path)
    assert report.outputs == 40
    assert sorted(set(reads)) == list(range(groups)) and len(reads) <= 2 * groups
    assert dst.load_stage_output(parent, "s3") == src.load_stage_output(parent, "s3")
    assert dst.verify().ok


def _directory_bomb(path: Path, entries: int) -> Path:
    """A zip of one empty member named entries times in its directory: 47 bytes an
    entry on disk, a Python object of some 600 bytes each once zipfile reads them."""
    import struct

    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 1, 0) + b"a"
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0,
                        0, 0, 0, 0, 0) + b"a"
    directory = entry * entries
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory),
                      len(local), 0)
    path.write_bytes(local + directory + end)
    return path


def test_a_zip_directory_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """zipfile reads an archive's whole directory into objects before any member is
    read: a 40 MB file of 850,000 empty members made an import take some 500 MB (and
    a 1 GB one gigabytes). A directory larger than any bundle's is refused from the
    archive's end record."""
    entries = (bundle_limits.MAX_DIRECTORY * 5 // 2) // 47
    path = _directory_bomb(tmp_path / "directory-bomb.zip", entries)
    with zipfile.ZipFile(_directory_bomb(tmp_path / "small.zip", 3)) as zf:
        assert zf.namelist() == ["a"] * 3  # the bomb is a zip zipfile reads
    result = _import_in_a_fresh_process(path, tmp_path / "dst")
    kind, typed, message = result["error"]
    assert typed and kind == "CorruptDataError" and "zip directory" in message, result
    assert result["added"] < RSS_BUDGET, f"the import added {result['added'] >> 20} MB"
    assert result["timelines"] == 0 and result["objects"] == []


def _with_index(members: dict[str, bytes], tid: str, index: bytes) -> None:
    """members with timeline tid's frame index replaced by index, and the timeline's
    index hash and the manifest's hash of it made to agree (as a forger would)."""
    import hashlib

    key = f"frames/{tid}/index.parquet"
    members[f"objects/{key}"] = index
    digest = hashlib.sha256(index).hexdigest()
    table = pq.read_table(io.BytesIO(members["timelines.parquet"]))
    rows = table.to_pylist()
    rows[0]["index_hash"] = digest
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), buf)
    members["timelines.parquet"] = buf.getvalue()
    manifest = json.loads(members["localckpt-bundle.json"])
    manifest["hashes"][key] = digest
    members["localckpt-bundle.json"] = json.dumps(manifest).encode()


def test_a_frame_index_dictionary_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A frame index comes with its timeline's hash of it, so a bundle may hand over
    any index: one whose perceptual hash column is one 5 MB string on 200 rows (a
    240 KB file) was decoded whole, 1 GB, before anything else looked at it. Now it is
    measured as the bundle's tables are."""
    with localckpt.open("memory://") as store:
        tid, members = _members(store, tmp_path)
    key = f"objects/frames/{tid}/index.parquet"
    index = pq.read_table(io.BytesIO(members[key]))
    rows = 200
    cols = {name: pa.array([index.column(name)[0].as_py()] * rows, index.schema.field(name).type)
            for name in index.column_names}
    cols["sequence"] = pa.array(range(rows), pa.int64())
    cols["perceptual_hash"] = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows, np.int32)), pa.array(["0" * (5 << 20)]))
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf, use_dictionary=True)
    assert len(buf.getvalue()) < 1 << 20
    _with_index(members, tid, buf.getvalue())
    result = _import_in_a_fresh_process(_write(tmp_path / "index-bomb.zip", members),
                                        tmp_path / "dst")
    kind, typed, message = result["error"]
    assert typed and kind == "CorruptDataError" and "frame index" in message, result
    assert "decodes to" in message
    assert result["added"] < RSS_BUDGET, f"the import added {result['added'] >> 20} MB"
    assert result["timelines"] == 0 and result["objects"] == []


def _varint(value: int, length: int | None = None) -> bytes:
    """value as a Thrift compact varint (of length bytes, padded, if given)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        last = value == 0 if length is None else len(out) == length - 1
        out.append(byte if last else byte | 0x80)
        if last:
            assert value == 0
            return bytes(out)


def _understated(table: pa.Table, **options: object) -> bytes:
    """table as Parquet whose footer declares every size over 1 MB as 1,000 bytes (the
    footer's sizes are the writer's word; a forger's says what it likes)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, **options)
    data = buf.getvalue()
    md = pq.ParquetFile(io.BytesIO(data)).metadata
    end = len(data) - 8
    start = end - int.from_bytes(data[end:end + 4], "little")
    footer = data[start:end]
    sizes = {md.row_group(0).total_byte_size} | {
        md.row_group(0).column(i).total_uncompressed_size for i in range(md.num_columns)}
    for size in sizes:
        if size > 1 << 20:  # zigzag, as Thrift writes an i64
            honest = _varint(2 * size)
            assert honest in footer
            footer = footer.replace(honest, _varint(2 * 1000, len(honest)))
    forged = data[:start] + footer + data[end:]
    assert pq.ParquetFile(io.BytesIO(forged)).metadata.row_group(0).total_byte_size == 1000
    return forged


def test_a_zstd_page_bomb_with_understated_sizes_is_refused_in_bounded_memory(
        tmp_path: Path) -> None:
    """checkpoints.parquet whose stats hold 200 MB that ZSTD stores in 7 KB, its footer
    declaring 1,000 bytes: the sizes passed and the page was decompressed whole (about
    three times 200 MB) before its decoded size was measured. localckpt writes Snappy, which
    cannot expand so far; other codecs are refused from the footer."""
    with localckpt.open("memory://") as store:
        _, members = _members(store, tmp_path)
    table = pq.read_table(io.BytesIO(members["checkpoints.parquet"]))
    rows = table.to_pylist()
    rows[0]["stats"] = json.dumps({"x": "0" * (200 << 20)})
    members["checkpoints.parquet"] = _understated(
        pa.Table.from_pylist(rows, schema=table.schema), compression="zstd",
        use_dictionary=False)
    del rows
    assert len(members["checkpoints.parquet"]) < 1 << 20
    result = _import_in_a_fresh_process(_write(tmp_path / "zstd-bomb.zip", members),
                                        tmp_path / "dst")
    kind, typed, message = result["error"]
    assert typed and kind == "CorruptDataError" and "ZSTD" in message, result
    assert result["added"] < RSS_BUDGET, f"the import added {result['added'] >> 20} MB"
    assert result["timelines"] == 0 and result["objects"] == []


def test_a_dictionary_bomb_in_the_output_hash_column_is_refused_in_bounded_memory(
        tmp_path: Path) -> None:
    """outputs.parquet whose hash column is one 5 MB string on 200 rows, dictionary
    encoded, written without the Arrow schema that says so: the hash column was read
    expanded (1 GB; the import took 1.7 GB) before it was measured."""
    with localckpt.open("memory://") as store:
        _, members = _members(store, tmp_path)
    rows = 200
    table = pa.table({
        "hash": pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)),
                                               pa.array(["f" * (5 << 20)])),
        "json": pa.array(["{}"] * rows)})
    buf = io.BytesIO()
    pq.write_table(table, buf, use_dictionary=True, store_schema=False)
    assert len(buf.getvalue()) < 1 << 20
    members["outputs.parquet"] = buf.getvalue()
    manifest = json.loads(members["localckpt-bundle.json"])
    manifest["counts"]["outputs"] = rows
    members["localckpt-bundle.json"] = json.dumps(manifest).encode()
    result = _import_in_a_fresh_process(_write(tmp_path / "hash-bomb.zip", members),
                                        tmp_path / "dst")
    kind, typed, message = result["error"]
    assert typed and kind == "CorruptDataError" and "outputs.parquet" in message, result
    assert result["added"] < RSS_BUDGET, f"the import added {result['added'] >> 20} MB"
    assert result["timelines"] == 0 and result["objects"] == []
