"""The row decoders of ``localckpt.backends.sql._decoders`` are what ``schema.FIELDS``
make (``rows.decoders_module()``), and a codec whose kind's fields no longer match the
module compiles its decoder from the fields instead of using a stale one."""

from __future__ import annotations

from pathlib import Path

import pytest

from localckpt.backends.sql import _decoders, rows
from localckpt.backends.sql.dialects import SQLITE
from localckpt.backends.sql.rows import Codec, decoders_module


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
    monkeypatch.setattr(rows, "_COMPILED", {})
    fresh = Codec("tag", SQLITE)
    fresh._decoder()
    assert fresh._decode is not None
    assert fresh._decode.__code__ is not _decoders.tag(None, None, None, None).__code__
    assert fresh._decode.__code__.co_code == codec._decode.__code__.co_code  # the same code
