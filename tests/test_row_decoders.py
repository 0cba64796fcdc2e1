"""The row decoders of ``localckpt.backends.sql._decoders`` are what ``schema.FIELDS``
make (``rows.decoders_module()``), and a codec whose kind's fields no longer match the
module compiles its decoder from the fields instead of using a stale one."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from sql_records import child, make_output, make_timeline, opener, rows

from localckpt.backends.sql import _decoders
from localckpt.backends.sql import rows as rows_module
from localckpt.backends.sql.dialects import SQLITE
from localckpt.backends.sql.rows import Codec, decoders_module
from localckpt.catalog import Batch
from localckpt.errors import CorruptDataError
from localckpt.types import Checkpoint


def test_the_decoders_module_is_what_the_fields_make() -> None:
    written = Path(_decoders.__file__).read_text(encoding="utf-8")
    assert written == decoders_module(), (
        "localckpt/backends/sql/_decoders.py is stale: write rows.decoders_module() to it")


def test_a_codec_uses_the_module_while_it_matches_and_compiles_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    codec = Codec("tag", SQLITE)
    codec._decoder()
    assert codec._decode is not None
    assert codec._decode.__code__ is _decoders.tag(None, None, None, None).__code__
    monkeypatch.setattr(_decoders, "DIGESTS", {**_decoders.DIGESTS, "tag": "stale"})
    monkeypatch.setattr(rows_module, "_COMPILED", {})
    fresh = Codec("tag", SQLITE)
    fresh._decoder()
    assert fresh._decode is not None
    assert fresh._decode.__code__ is not _decoders.tag(None, None, None, None).__code__
    assert fresh._decode.__code__.co_code == codec._decode.__code__.co_code  # the same code


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_records_of_many_rows_are_the_records_of_each_row(
        engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Codec.records, the loop of a tree's rows (records made by setting their slots, the
    digest from a copied hasher, the GC paused), gives what record() gives row by row:
    equal records of the same type, with the same fields, repr and lazy outputs;
    rows with an exact column among them included."""
    cat = opener(engine, request, tmp_path)()
    timeline, root = make_timeline()
    h, data = make_output({"v": 1})
    chain = [root]
    for i in range(40):
        extra = {"stats": {"big": 2**70, "i": i}} if i % 7 == 3 else {"stats": {"i": i}}
        chain.append(child(chain[-1], f"s{i % 3}", h, **extra))
    cat.commit(Batch([timeline], chain, {h: data}))
    codec = cat.codecs["checkpoint"]
    got = rows(cat, f"SELECT {codec.read} FROM {{s}}checkpoints ORDER BY id")
    assert len(got) > rows_module._MANY and any(r[codec._n] for r in got)  # exact ones
    where = cat.describe()
    one_by_one = [codec.record(r, cat._load_values, where) for r in got]
    together = codec.records(got, cat._load_values, where)
    assert together == one_by_one == sorted(chain, key=lambda c: c.id)
    for a, b in zip(together, one_by_one, strict=True):
        assert type(a) is Checkpoint and repr(a) == repr(b)
        assert attrs.asdict(a, recurse=False) == attrs.asdict(b, recurse=False)
        assert dict(a.stage_outputs) == dict(b.stage_outputs)
    tl_codec = cat.codecs["timeline"]
    tl_rows = rows(cat, f"SELECT {tl_codec.read} FROM {{s}}timelines") * 20
    assert tl_codec.records(tl_rows, None, where) == [timeline] * 20


def test_records_of_many_rows_name_a_damaged_one(request: pytest.FixtureRequest,
                                                  tmp_path: Path) -> None:
    """A row among many that does not match its digest, or does not parse, is
    CorruptDataError naming its table and id, as record() of that row says."""
    cat = opener("sqlite", request, tmp_path)()
    timeline, root = make_timeline()
    h, data = make_output({"v": 1})
    chain = [root]
    for i in range(30):
        chain.append(child(chain[-1], "s", h, stats={"i": i}))
    cat.commit(Batch([timeline], chain, {h: data}))
    codec = cat.codecs["checkpoint"]
    got = rows(cat, f"SELECT {codec.read} FROM {{s}}checkpoints ORDER BY id")
    at = codec.column("stats")
    for bad, what in (('{"i":99}', "does not match its digest"), ('{"i":', "does not parse"),
                      ("[1]", "does not parse")):
        damaged = list(got)
        victim = damaged[17]
        damaged[17] = (*victim[:at], bad, *victim[at + 1:])
        with pytest.raises(CorruptDataError, match=f"{victim[0]}.*checkpoints.*{what}"):
            codec.records(damaged, None, "here")


def test_slot_setters_only_for_records_that_init_sets_plainly() -> None:
    """A decoder sets slots only where attrs' __init__ would do nothing more: no
    converter, validator, hook, nor a slot the fields do not give (a cached hash)."""
    assert rows_module._slot_setters(Checkpoint) is not None

    @attrs.frozen
    class Checked:
        a: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.frozen
    class Hooked:
        a: int

        def __attrs_post_init__(self) -> None:
            pass

    @attrs.define(slots=False)
    class Plain:
        a: int

    @attrs.frozen(cache_hash=True)
    class CachedHash:
        a: int

    for cls in (Checked, Hooked, Plain, CachedHash, int):
        assert rows_module._slot_setters(cls) is None
