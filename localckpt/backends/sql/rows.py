"""The row codec: records <-> table rows, derived from ``localckpt.schema.FIELDS``, and
the row digest that makes damage inside a row an error instead of other data.

A record's row holds its fields in FIELDS order (JSON as canonical text, times as the
dialect stores them), then the extra columns of its table:

- ``exact`` (timelines and checkpoints): the few values a column cannot hold exactly
  (NUL in PostgreSQL text, numbers jsonb normalises), as canonical JSON, else NULL;
- ``tail`` (timelines and checkpoints): ``localckpt.ids.id_tail(id)``, indexed, for
  short ids;
- ``digest``: a 64-bit digest of the record's fields (:func:`digest`), checked on every
  read. SQLite has no checksum on a row, so a flipped byte inside one would otherwise
  read back as other data.

The digest is computed from the record's values, not from the columns, so it is the
same on every engine whatever a column does to the text it stores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import CodeType
from typing import Any

import attrs
import orjson

from ...canonical import checked_bytes, load_json, record_bytes
from ...errors import CorruptDataError
from ...gcpause import gc_paused
from ...ids import id_tail
from ...schema import FIELDS, TYPES
from ...types import LazyOutputs
from . import _decoders, pg_json
from .dialects import Dialect

__all__ = ["TABLES", "Codec", "codecs", "digest"]

Row = tuple[Any, ...]

#: kind -> table.
TABLES = {"timeline": "timelines", "checkpoint": "checkpoints", "tombstone": "tombstones",
          "tag": "tags"}
#: kinds whose table has the exact and tail columns.
_WITH_EXACT = frozenset({"timeline", "checkpoint"})
_blake2b = hashlib.blake2b
#: the digest's hasher before any data: a copy costs less than a new one with its options
_DIGEST_HASHER = _blake2b(digest_size=8)
_fromiso = datetime.fromisoformat
#: rows from which Codec.records takes its own loop with the GC paused (fewer: one record()
#: each)
_MANY = 16


#: decoder source -> its compiled code (Codec._decoder), shared by every engine's codecs
_COMPILED: dict[str, CodeType] = {}


def _digest_of(values: Sequence[Any]) -> int:
    """The digest of a row's neutral values (str, int, float, None)."""
    try:
        data = orjson.dumps(values)
    except TypeError:  # an integer beyond 64 bits: the standard library writes it
        data = json.dumps(list(values), ensure_ascii=False, separators=(",", ":")
                          ).encode("utf-8")
    return int.from_bytes(_blake2b(data, digest_size=8).digest(), "big", signed=True)


def _neutral(kind: str, record: Any) -> list[Any]:
    """A record's fields as the digest covers them: JSON as canonical text, times as
    ISO 8601 text in UTC, booleans as 0 or 1: what an SQLite row holds."""
    out: list[Any] = []
    for f in FIELDS[kind]:
        value = getattr(record, f.name)
        if value is not None:
            t = f.type
            if t == "json":
                value = checked_bytes(dict(value)).decode("utf-8")
            elif t == "time":
                value = value.astimezone(UTC).isoformat()
            elif t == "bool":
                value = int(value)
            elif t == "float":
                value = float(value)
        out.append(value)
    return out


def digest(kind: str, record: Any) -> int:
    """A signed 64-bit digest of a record's fields (what a row's ``digest`` holds): the
    same on every engine, so a row can be checked wherever it is stored."""
    return _digest_of(_neutral(kind, record))


class Codec:
    """Columns and conversions of one record kind on one dialect."""

    def __init__(self, kind: str, dialect: Dialect) -> None:
        self.kind = kind
        self.table = TABLES[kind]
        self.dialect = dialect
        self.fields = FIELDS[kind]
        self.has_exact = kind in _WITH_EXACT
        names = [f.name for f in self.fields]
        if self.has_exact:
            names += ["exact", "tail"]
        self.names = [*names, "digest"]
        self.columns = ", ".join(self.names)
        read = [f"{f.name}::text" if f.type == "json" and not dialect.json_exact else f.name
                for f in self.fields]
        read += ["exact"] if self.has_exact else []
        #: the SELECT list: every field, exact, digest (tail is only searched)
        self.read = ", ".join([*read, "digest"])
        self._type = TYPES[kind]
        self._n = len(self.fields)
        #: a row read back holds the neutral values the digest covers (SQLite)
        self._raw = dialect.name == "sqlite"
        self._names = [f.name for f in self.fields]
        #: (name, type) of each field, and the dialect's choices: what row() asks per field
        self._plan = [(f.name, f.type) for f in self.fields]
        self._json_exact = dialect.json_exact
        self._text_nul = dialect.text_holds_nul
        self._time_text = dialect.time_as_text
        self._at = {name: i for i, name in enumerate(self._names)}
        self._decode: Callable[[Row, Any, dict[str, Any] | None], Any] | None = None

    def _decoder(self) -> Callable[[Row, Any, dict[str, Any] | None], Any]:
        """A function made for this kind and dialect that turns a row into its record (exact:
        the values of the row's exact column, or None): one line per field instead of loops
        over index lists, as attrs writes its __init__; reads of trees spend their time
        here. Its code is ``_decoders``'s (Python's bytecode cache loads it for nothing)
        while that module is what this kind's fields make, else compiled here (~0.5 ms)."""
        source = decoder_source(self.kind)
        if _decoders.DIGESTS.get(self.kind) == _source_digest(source):
            factory = getattr(_decoders, self.kind)
        else:  # FIELDS changed without the module being made again (a test says so)
            code = _COMPILED.get(source)
            if code is None:
                code = _COMPILED[source] = compile(source, f"<decode {self.kind}>", "exec")
            scope: dict[str, Any] = {"Any": Any}
            exec(code, scope)
            factory = scope[self.kind]
        decode: Callable[[Row, Any, dict[str, Any] | None], Any] = factory(
            orjson.loads if self.dialect.json_exact else load_json, self._to_time(),
            self._type, LazyOutputs, _slot_setters(self._type))
        self._decode = decode
        return decode

    # -- writing --------------------------------------------------------------------------

    def row(self, record: Any) -> Row:
        """The row of a record (checked by schema.validate when its Batch was made)."""
        json_exact = self._json_exact
        values: list[Any] = []
        neutral: list[Any] = []
        exact: dict[str, Any] = {}
        for name, t in self._plan:
            value = getattr(record, name)
            if value is None:
                values.append(None)
                neutral.append(None)
                continue
            plain = value
            if t == "json":
                data, fast = record_bytes(value if type(value) is dict else dict(value))
                plain = data.decode("utf-8")
                if json_exact:
                    value = plain
                    if not fast:  # read back through the exact column's slower decoder
                        exact[name] = dict(getattr(record, name))
                else:
                    value, changed = pg_json.jsonb_column(data)
                    if changed:
                        exact[name] = dict(getattr(record, name))
            elif t == "text":
                if not self._text_nul:
                    value, changed = pg_json.text_column(value)
                    if changed:
                        exact[name] = plain
            elif t == "time":
                if value.tzinfo is not UTC:  # utcnow's times are UTC already
                    value = value.astimezone(UTC)
                plain = value.isoformat()
                if self._time_text:
                    value = plain
            elif t == "bool":
                plain = int(value)
                value = plain if self._raw else bool(value)
            elif t == "float":
                value = plain = float(value)
            values.append(value)
            neutral.append(plain)
        if self.has_exact:
            values.append(pg_json.exact_text(exact) if exact else None)
            values.append(id_tail(record.id))
        values.append(_digest_of(neutral))
        return tuple(values)

    # -- reading --------------------------------------------------------------------------

    def record(self, row: Row, fetch: Callable[[list[str]], Mapping[str, Any]] | None = None,
               where: str = "", check: bool = True) -> Any:
        """The record of a row read with ``read``; CorruptDataError when the row does not
        parse or does not match its digest (where: the catalog, for the message; check
        False only to compute the digests of rows written before there were any)."""
        n = self._n
        try:
            exact = pg_json.read_exact(row[n]) if self.has_exact and row[n] else None
            if exact is not None and not exact.keys() <= self._at.keys():
                raise KeyError(f"exact names no field {sorted(exact.keys() - self._at.keys())}")
            record = (self._decode or self._decoder())(row, fetch, exact)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise self.damaged(row, where, f"does not parse ({exc})") from None
        if check:
            try:  # a column of another type (bytes where text belongs) has no digest
                got = _digest_of(row[:n]) if self._raw else digest(self.kind, record)
            except (TypeError, ValueError) as exc:
                raise self.damaged(row, where, f"does not parse ({exc})") from None
            if got != row[-1]:
                raise self.damaged(row, where, "does not match its digest")
        return record

    def records(self, rows: Sequence[Row],
                fetch: Callable[[list[str]], Mapping[str, Any]] | None = None,
                where: str = "") -> list[Any]:
        """``record`` of each row, with the same checks and errors, in one loop: a tree's
        thousand rows spend their time here. A row with an ``exact`` column, or one the
        quick path refuses (it does not parse, its digest differs, a column of another
        type), goes through ``record``, which reads it or raises the error naming it. The
        cyclic GC is paused while many rows are made (records hold no cycle; see
        ``localckpt.gcpause``)."""
        if len(rows) < _MANY:
            return [self.record(row, fetch, where) for row in rows]
        with gc_paused():
            return self._records(rows, fetch, where)

    def _records(self, rows: Sequence[Row],
                 fetch: Callable[[list[str]], Mapping[str, Any]] | None, where: str
                 ) -> list[Any]:
        decode = self._decode or self._decoder()
        n, with_exact, raw, kind = self._n, self.has_exact, self._raw, self.kind
        dumps, hasher, from_bytes = orjson.dumps, _DIGEST_HASHER.copy, int.from_bytes
        out: list[Any] = []
        append = out.append
        for row in rows:
            if with_exact and row[n]:
                append(self.record(row, fetch, where))
                continue
            try:
                record = decode(row, fetch, None)
                if raw:  # _digest_of's, from a copy of an empty hasher (no arguments)
                    h = hasher()
                    h.update(dumps(row[:n]))
                    ok = from_bytes(h.digest(), "big", signed=True) == row[-1]
                else:
                    ok = digest(kind, record) == row[-1]
            except (ValueError, TypeError, AttributeError, KeyError):
                ok = False
            append(record if ok else self.record(row, fetch, where))
        return out

    def check(self, row: Row, where: str) -> None:
        """CorruptDataError unless a row matches its digest, without making its record
        where the row holds the neutral values (SQLite)."""
        if not self._raw:
            self.record(row, None, where)
            return
        try:
            ok = _digest_of(row[:self._n]) == row[-1]
        except (TypeError, ValueError) as exc:
            raise self.damaged(row, where, f"does not parse ({exc})") from None
        if not ok:
            raise self.damaged(row, where, "does not match its digest")

    def column(self, name: str) -> int:
        """The position of a field in a row read with ``read``."""
        return self._at[name]

    def _time(self, value: Any) -> datetime:
        if type(value) is str:
            when = _fromiso(value)
            if when.tzinfo is not None:
                return when if self.dialect.time_as_text else when.astimezone(UTC)
        return self.dialect.time_value(value)

    def _to_time(self) -> Callable[[Any], datetime]:
        """_time, as a function that asks the dialect nothing per value where times are
        text (each row of a tree has one)."""
        if not self.dialect.time_as_text:
            return self._time
        time_value = self.dialect.time_value

        def to_time(value: Any) -> datetime:
            if type(value) is str:
                when = _fromiso(value)
                if when.tzinfo is not None:
                    return when
            return time_value(value)

        return to_time

    def damaged(self, row: Row, where: str, what: str) -> CorruptDataError:
        ident = row[0] if row and isinstance(row[0], str) else "?"
        return CorruptDataError(
            f"{self.kind} row {ident!r} in table {self.table} of {where} {what}: the catalog "
            "is damaged (run `localckpt verify`; restore the store or re-sync it from another)"
        )


def decoder_source(kind: str) -> str:
    """The source of the decoder factory of a record kind, from its FIELDS alone:
    ``kind(loads, to_time, make, lazy, slots=None)`` returns ``decode(row, fetch,
    exact)``, which makes its records with ``make`` (the record type), or, given
    ``slots`` (``_slot_setters``), by setting their slots."""
    fields = FIELDS[kind]
    names = [f.name for f in fields]
    at = {name: i for i, name in enumerate(names)}
    # the record's constructor takes its fields positionally, in its own order: the row
    # index of each (stage_outputs, not a column, comes last when given)
    init = [a.name for a in attrs.fields(TYPES[kind]) if a.init]
    order = [at[name] for name in init if name in at]
    assert init[:len(order)] == [names[i] for i in order], init
    # with every attribute a field (stage_outputs given), a record may be made by setting
    # its slots (see _slot_setters): what attrs' __init__ does, without its calls
    every = len(order) == len(init) - ("stage_hashes" in at)
    setters = [f"s{i}" for i in range(len(init))]
    lines = [f"def {kind}(loads: Any, to_time: Any, make: Any, lazy: Any, slots: Any = None"
             ") -> Any:"]
    if every:
        lines += ["    if slots is not None:", "        new = object.__new__",
                  f"        {', '.join(setters)} = slots"]
    lines.append("    def decode(row: Any, fetch: Any, exact: Any) -> Any:")
    for i, f in enumerate(fields):
        lines.append(f"        v{i} = row[{i}]")
        if f.type == "json":
            # a value orjson cannot read back exactly (an integer beyond 64 bits) is in
            # exact: its column is not parsed (orjson reads such an integer as a float)
            lines += [f"        if v{i} is not None and (exact is None or {f.name!r} not in "
                      "exact):", f"            v{i} = loads(v{i})",
                      f"            if type(v{i}) is not dict:",
                      f"                raise ValueError('{f.name} is not a JSON object')"]
        elif f.type == "time":
            lines += [f"        if v{i} is not None:", f"            v{i} = to_time(v{i})"]
        elif f.type == "bool":
            lines += [f"        if v{i} is not None:", f"            v{i} = bool(v{i})"]
    lines.append("        if exact is not None:")
    lines += [f"            v{i} = exact.get({name!r}, v{i})" for i, name in enumerate(names)]
    args = ", ".join(f"v{i}" for i in order)

    def by_slots(indent: str, values: list[str]) -> list[str]:
        return [f"{indent}if slots is not None:", f"{indent}    r = new(make)",
                *(f"{indent}    {f}(r, {v})" for f, v in zip(setters, values, strict=True)),
                f"{indent}    return r"]

    values = [f"v{i}" for i in order]
    if "stage_hashes" in at:
        lines.append("        if fetch is not None:")
        lazy = f"lazy(v{at['stage_hashes']}, fetch)"
        if every:
            lines += by_slots("            ", [*values, lazy])
        lines.append(f"            return make({args}, {lazy})")
    elif every:
        lines += by_slots("        ", values)
    lines += [f"        return make({args})", "", "    return decode", ""]
    return "\n".join(lines)


def _slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...] | None:
    """The setters of the slots of a record type's attributes (in __init__'s order), for a
    decoder to make its records as attrs' __init__ would (a frozen class's __init__
    sets each slot through object.__setattr__): None unless that is all its __init__
    does (a slotted class whose slots are its fields, no converter, validator or hook)."""
    if not attrs.has(cls) or "__slots__" not in cls.__dict__ or any(
            hasattr(cls, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__")):
        return None
    fields = [a for a in attrs.fields(cls) if a.init]
    slots = {s for c in cls.__mro__ for s in c.__dict__.get("__slots__", ())}
    if len(fields) != len(attrs.fields(cls)) or any(
            a.converter is not None or a.validator is not None or a.alias != a.name
            for a in fields) or slots - {a.name for a in fields} - {"__weakref__"}:
        return None  # (a slot that is no field: a cached hash, which __init__ clears)
    return tuple(cls.__dict__[a.name].__set__ for a in fields)


def _source_digest(source: str) -> str:
    return _blake2b(source.encode(), digest_size=16).hexdigest()


def decoders_module() -> str:
    """The text of ``_decoders.py``: every kind's decoder factory and the digest of its
    source (tests/test_row_decoders.py keeps the file equal to this)."""
    head = ('"""Row decoders of every record kind, made by ``rows.decoders_module()`` from '
            "``schema.FIELDS``:\ndo not edit (tests/test_row_decoders.py checks that this "
            "file is what FIELDS make). Python's\nbytecode cache loads them, where "
            'compiling them cost ~0.5 ms a kind on each process\'s first read."""\n\n'
            "from __future__ import annotations\n\nfrom typing import Any\n")
    sources = {kind: decoder_source(kind) for kind in TABLES}
    digests = "".join(f"    {kind!r}: {_source_digest(src)!r},\n" for kind, src in sources.items())
    return (head + "".join(f"\n\n{src}" for src in sources.values())
            + f"\n\nDIGESTS = {{\n{digests}}}\n")


def codecs(dialect: Dialect) -> dict[str, Codec]:
    """The codec of every record kind on a dialect."""
    return {kind: Codec(kind, dialect) for kind in TABLES}

