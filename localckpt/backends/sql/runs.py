"""Stage runs, their puts and the per-frame memo: four tables of the one catalog.

Schema (migration 7, rendered per dialect from :data:`TABLES`; migration 9 adds the
columns after the digest-covered fields; migration 15 replaces the parts, one row per
frame, with :data:`PUTS`, one row per put; migration 16 replaces memo_entries with
:data:`MEMO_RUNS` and :data:`MEMO_FRAMES`)::

    runs          one row per run (``localckpt.runs.records.RunRecord``), its ``tail``
                  for short ids, ``puts`` (a counter every put increments: on PostgreSQL
                  it is what makes a put and a commit of one run take turns) and digest
    run_puts      (run_id, lo) -> one put: its frames' sequences (lo and hi the least
                  and the greatest), value hashes, memo keys (NULL for a run with the
                  memo off) and byte sizes, each list as comma-separated text, and
                  ``data``, the values' canonical bytes one after the other
    memo_runs     id -> the fields an entry's run gives it, once per run that wrote
                  entries: run_id, stage, version, params_hash, created_at, ``output``
                  (where its values lie), ``n`` and ``keys`` (its entries' keys, 32
                  bytes each, in order; ``keys_digest`` covers them), digest
    memo_frames   key -> memo_run (a memo_runs id), value_hash, and where the value lies
                  in that row's output: value_at, value_size; digest. On SQLite a
                  WITHOUT ROWID table: an entry is one B-tree entry

A frame's value in a run is its *part*: the put row that holds it, cut at the sizes.

A memo_runs id is the run's id; a run whose entries were written at several times or
into several outputs (entries written one put at a time, before migration 9) has a row
per (time, output), its id the run's id, "/" and a number (migration 16).

Why this layout (measured on SQLite: a put of 100 frames wrote ~400 B-tree pages when
each value was an output with references, and a memo entry; with a row per frame, the
10,000 rows of a run of 10,000 frames cost a third of its puts' time to insert, and a
Python digest each): a put writes one row of its run, beside the run's others in the
(run_id, lo) range. The memo is written once per run,
in the transaction that commits or aborts it (a deletion that orphans an open run aborts
it in the transaction of its tombstones: change_in): each keyed part becomes an entry pointing
at its value inside the checkpoint's output (an aborted run's values are written as an
output of their own), and one reference owned by the run keeps that output through gc
until clear_memo removes the run's last entry. Until then an open run's parts answer
other open runs of the same stage, version and params. A closed run's puts are read no
more; gc's purge deletes them (drop_closed_parts).

Why a put is one round trip on PostgreSQL (``Engine.write``): its statements are a guard
that refuses the whole write on the server when the run is not open (``LC421``), a
guard refusing it when a put row of the run spans one of its sequences (``LC423``: lo
<= its greatest and hi >= its least) and a plain insert of its row. Only when such a
row is there (a frame put again, or puts whose sequences interleave) does a second
write follow, in a transaction that holds the run's row (the ``puts`` counter, which
every put updates first: puts of one run take turns) and compares the frames already
put with this put's values: an equal value is left as it is, another one refuses the
whole put (ConflictError), the rest are inserted as one row. A put of new frames in
ascending order, the usual one, reads no row back.

Why the memo is two tables (migration 16; before it, an entry was a row of ~450 bytes
with its run's fields and its key's parts, in a rowid table with three indexes: its key,
(stage, created_at) and run_id, so 10,000 entries cost ~175 ms of SQLite work at a
commit, half of the run): an entry holds only what a lookup needs, in one B-tree
keyed by its key; what its run gives it is one memo_runs row. What the indexes served is
served per run: clearing (by stage, by age, all) picks memo_runs rows through their
(stage, created_at) index and deletes each one's entries by the keys it lists, up to
_BATCH a transaction that cuts them from its list (the row goes with the last, with the
run's reference to its output; clearing the whole memo, what a damaged memo row's error
advises, takes a row that does not match its digest by a scan for its entries, and
last the entries no row holds); ``memo stats`` sums n per stage and version; whether a
run wrote entries is its row, through the run_id index. A commit inserts its entries
(a key held already stays), counts the rows inserted (SQLite, PostgreSQL: when every
one was, nothing is read back; else, and on DuckDB, it reads which keys are its own),
then writes its row. A key in a put row that is not a SHA-256 cannot be listed: the
commit refuses it (CorruptDataError naming run_puts) and writes nothing.

Every row read is checked against its digest, and a value's bytes against its hash
(CorruptDataError names the table). A put row's digest covers the run id, lo, hi, the
count and the four lists; the bytes are checked per value against the hashes. A
memo_frames row's digest covers its five columns; a memo_runs row's covers its columns
but keys, and keys_digest covers the keys, checked where they are read (clearing). An
entry whose memo_runs row is missing is an error where it is read with it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
import orjson

from ...canonical import checked_bytes, content_hash, load_json
from ...errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    InvalidInputError,
    NotFoundError,
)
from ...ids import id_tail
from ...runs.records import RUN_FIELDS, RUN_TYPES, MemoEntry, RunRecord
from .engine import Duplicate, Refused, Step
from .schema import Table

if TYPE_CHECKING:
    from .catalog import SqlCatalog
    from .dialects import Dialect
    from .engine import Engine, Tx

__all__ = ["PUTS", "TABLES", "MemoStageStats", "RunTables", "add_puts", "add_value_columns",
           "create_tables", "frames_output", "part_digest", "put_row", "record_digest"]

_CLOSED = "LC421"
_SPANNED = "LC423"
_BATCH = 4096  # keys per memo lookup, rows per clearing transaction
_NEUTRAL = {"id": "id", "hash": "id", "text": "text", "json": "text", "bool": "bool",
            "int": "int", "time": "time"}
_TABLE = {"run": "runs", "part": "run_parts", "memo": "memo_entries"}
#: a put row as read (RunTables._puts); its data after these when read too
_PUT = "run_id, lo, hi, n, sequences, value_hashes, keys, sizes, digest"
_PUT_DATA = 9  # where data is in a row read with _PUT, data
#: sequence -> (frame hash, inputs) of a run's frame: the parts of its memo key
_MemoOf = Callable[[int], tuple[str, Mapping[str, str | None]]]
#: a committed output's hash, sequence -> (offset, length) of each value in it, and the
#: parts it holds: sequence -> (value hash, memo key)
_Source = tuple[str, Mapping[int, tuple[int, int]], Mapping[int, tuple[str, str | None]]]
_WRITTEN_AT_MOST = 64 << 20  # bytes of values remembered as put here (RunTables._written)


def _table(kind: str, key: tuple[str, ...], extra: Sequence[tuple[str, str, bool]] = (),
           indexes: tuple[tuple[str, ...], ...] = ()) -> Table:
    columns = [(f.name, _NEUTRAL[f.type], f.optional) for f in RUN_FIELDS[kind]]
    return Table(_TABLE[kind], (*columns, *extra, ("digest", "digest", False)), key, indexes)


#: The tables of migration 7, in neutral types.
TABLES: tuple[Table, ...] = (
    _table("run", ("id",), [("tail", "id", False), ("puts", "int", False)],
           (("tail",), ("timeline_id",))),
    _table("part", ("run_id", "sequence")),
    _table("memo", ("key",), indexes=(("stage", "created_at"),)),
)


#: The put rows of migration 15 (see the module docstring), in neutral types. The
#: index on (run_id, hi, lo) finds the rows a put's sequences fall among reading only
#: the rows from its least sequence on.
PUTS = Table("run_puts", (
    ("run_id", "id", False), ("lo", "int", False), ("hi", "int", False), ("n", "int", False),
    ("sequences", "text", False), ("value_hashes", "text", False), ("keys", "text", True),
    ("sizes", "text", False), ("data", "blob", False), ("digest", "digest", False)),
    ("run_id", "lo"), (("run_id", "hi", "lo"),))


def _create(tx: Tx, engine: Engine, table: Table, without_rowid: bool = False) -> None:
    """CREATE TABLE (without_rowid: on SQLite, the table is its key's B-tree) and its
    indexes, for the engine's dialect."""
    d = engine.dialect
    cols = [f"{name} {d.types[kind]}{'' if nullable else ' NOT NULL'}"
            for name, kind, nullable in table.columns]
    cols.append(f"PRIMARY KEY ({', '.join(table.key)})")
    rowid = " WITHOUT ROWID" if without_rowid and d.name == "sqlite" else ""
    tx.execute(engine.sql(f"CREATE TABLE {{s}}{table.name} ({', '.join(cols)}){rowid}"))
    for index in table.indexes:
        tx.execute(engine.sql(f"CREATE INDEX {table.name}_{'_'.join(index)} ON "
                              f"{{s}}{table.name} ({', '.join(index)})"))


def create_tables(tx: Tx, engine: Engine) -> None:
    """Migration 7: the tables above, rendered for the engine's dialect."""
    for table in TABLES:
        _create(tx, engine, table)


def add_value_columns(tx: Tx, engine: Engine) -> None:
    """Migration 9: parts hold their values' bytes and memo keys, memo entries point at
    their value inside an output (see the module docstring). Parts written before get
    their bytes from ``outputs`` (the references that kept those go: the purge takes
    what nothing else uses) and no key (their memo entries were written with them);
    entries written before point at their value's own output, which the reference owned
    by their key keeps."""
    d = engine.dialect
    size = f"(SELECT {d.blob_length}(o.data) FROM {{s}}outputs o WHERE o.hash = {{s}}" \
           "memo_entries.value_hash)"
    for statement in (
            f"ALTER TABLE {{s}}run_parts ADD COLUMN key {d.types['id']}",
            f"ALTER TABLE {{s}}run_parts ADD COLUMN data {d.types['blob']}",
            "UPDATE {s}run_parts SET data = (SELECT o.data FROM {s}outputs o "
            "WHERE o.hash = {s}run_parts.value_hash)",
            "DELETE FROM {s}output_refs WHERE owner IN (SELECT run_id FROM {s}run_parts)",
            f"ALTER TABLE {{s}}memo_entries ADD COLUMN value_in {d.types['id']}",
            f"ALTER TABLE {{s}}memo_entries ADD COLUMN value_at {d.types['int']}",
            f"ALTER TABLE {{s}}memo_entries ADD COLUMN value_size {d.types['int']}",
            f"UPDATE {{s}}memo_entries SET value_in = value_hash, value_at = 0, "
            f"value_size = {size}",
            "CREATE INDEX memo_entries_run_id ON {s}memo_entries (run_id)"):
        tx.execute(engine.sql(statement))


def add_puts(tx: Tx, engine: Engine) -> None:
    """Migration 15: run_puts replaces run_parts (see the module docstring). The parts of
    open and committing runs move into put rows, up to _BATCH frames a row, each part
    checked first (CorruptDataError naming run_parts, nothing changed); those of closed
    runs are read no more (their values are memo entries), and go with the table, as
    gc's purge would have deleted them."""
    _create(tx, engine, PUTS)
    where = engine.describe()
    runs = [r[0] for r in tx.query(engine.sql(
        "SELECT DISTINCT p.run_id FROM {s}run_parts p JOIN {s}runs r ON r.id = p.run_id "
        "WHERE r.state IN ('open', 'committing') ORDER BY p.run_id"))]
    insert = engine.sql(_INSERT_PUT)
    for run_id in runs:
        parts: list[tuple[int, str, bytes, str | None]] = []
        for rid, seq, h, key, d, data in tx.query(engine.sql(
                "SELECT run_id, sequence, value_hash, key, digest, data FROM {s}run_parts "
                "WHERE run_id = ? ORDER BY sequence"), (run_id,)):
            ok = isinstance(seq, int) and isinstance(h, str) and _holds(data, h)
            if not ok or part_digest(rid, seq, h, key) != d:
                raise CorruptDataError(
                    f"part row {rid!r} (frame {seq}) in table run_parts of {where} does not "
                    "match its digest or holds bytes of another value: the catalog is damaged "
                    "(restore the store, or abort the run); nothing was changed")
            parts.append((seq, h, bytes(data), key))
        for i in range(0, len(parts), _BATCH):
            tx.execute(insert, put_row(run_id, parts[i:i + _BATCH]))
    tx.execute(engine.sql("DROP TABLE {s}run_parts"))


_INSERT_PUT = ("INSERT INTO {s}run_puts (run_id, lo, hi, n, sequences, value_hashes, keys, "
               "sizes, data, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def put_row(run_id: str, parts: Sequence[tuple[int, str, bytes, str | None]]
            ) -> tuple[Any, ...]:
    """The run_puts row of parts (sequence, value hash, canonical bytes, memo key or None;
    ascending sequences, none twice): column values, digest last."""
    seqs = [p[0] for p in parts]
    sequences = ",".join(map(str, seqs))
    hashes = ",".join([p[1] for p in parts])
    keys = None if parts[0][3] is None and all(p[3] is None for p in parts) else \
        ",".join([p[3] or "" for p in parts])
    sizes = ",".join([str(len(p[2])) for p in parts])
    lo, hi, n = seqs[0], seqs[-1], len(seqs)
    digest = _digest_of([run_id, lo, hi, n, sequences, hashes, keys, sizes])
    return (run_id, lo, hi, n, sequences, hashes, keys, sizes,
            b"".join([p[2] for p in parts]), digest)


#: The memo of migration 16 (see the module docstring), in neutral types: a run's
#: fields once, in memo_runs (``keys`` last: a row read without it reads no overflow
#: page), and per entry only what a lookup needs, in memo_frames.
MEMO_RUNS = Table("memo_runs", (
    ("id", "id", False), ("run_id", "id", False), ("stage", "text", False),
    ("version", "text", False), ("params_hash", "id", False), ("created_at", "time", False),
    ("output", "id", False), ("n", "int", False), ("keys_digest", "digest", False),
    ("digest", "digest", False), ("keys", "blob", False)),
    ("id",), (("run_id",), ("stage", "created_at")))
MEMO_FRAMES = Table("memo_frames", (
    ("key", "id", False), ("memo_run", "id", False), ("value_hash", "id", False),
    ("value_at", "int", False), ("value_size", "int", False), ("digest", "digest", False)),
    ("key",))
#: a memo_runs row as read (_MemoRuns.check), without its keys
_MEMO_RUN = "id, run_id, stage, version, params_hash, created_at, output, n, keys_digest, digest"
_MEMO_FRAME = "key, memo_run, value_hash, value_at, value_size, digest"
#: lowercase hex digits: text of only these needs no escaping in JSON, and is a SHA-256's
#: when 64 long (what is left when bytes.translate deletes them tells; str.isalnum reads
#: each character's category)
_HEX = b"0123456789abcdef"


def _is_hex(text: str) -> bool:
    """Whether text is lowercase hex digits only (a SHA-256's, joined)."""
    return text.isascii() and not text.encode("ascii").translate(None, _HEX)


def _keys_digest(keys: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(keys, digest_size=8).digest(), "big", signed=True)


def memo_run_digest(values: Sequence[Any]) -> int:
    """The digest of a memo_runs row: of its columns but keys and digest, in order (the
    time as ISO 8601 UTC text); keys_digest covers the keys."""
    return _digest_of(values)


def frame_digests(memo_run: str, entries: Sequence[tuple[str, str, int, int]]) -> list[int]:
    """The digests of memo_frames rows (key, memo_run, value_hash, value_at, value_size)
    of entries (key, value hash, offset, size): _digest_of each row, whose JSON is put
    together here from the run id encoded once and the hashes (hex: nothing in them is
    escaped); when one is not hex, each row's takes _digest_of itself."""
    if _is_hex("".join([e[0] for e in entries])) and _is_hex("".join([e[1] for e in entries])):
        blake2b, from_bytes = hashlib.blake2b, int.from_bytes
        run = orjson.dumps(memo_run)
        return [from_bytes(blake2b(b'["%s",%s,"%s",%d,%d]' % (key.encode(), run, h.encode(),
                                                              at, size),
                                   digest_size=8).digest(), "big", signed=True)
                for key, h, at, size in entries]
    return [_digest_of([key, memo_run, h, at, size]) for key, h, at, size in entries]


def slim_memo(tx: Tx, engine: Engine) -> None:
    """Migration 16: memo_entries becomes memo_runs and memo_frames (see the module
    docstring). Each entry is checked first (CorruptDataError naming memo_entries,
    nothing changed: a row that does not match its digest, a key that is not a SHA-256,
    an entry that points at no value). The entries of one run that share their key's
    stage, version and params, their time and their output become one memo_runs row (the
    run's id; when a run has several such groups, entries written one put at a time
    before migration 9: the run's id, "/" and the group's number), each entry a
    memo_frames row pointing at it. The references keeping the outputs stay as they are."""
    _create(tx, engine, MEMO_RUNS)
    _create(tx, engine, MEMO_FRAMES, without_rowid=True)
    d, where = engine.dialect, engine.describe()
    legacy = _Codec("memo", d)
    read = engine.sql(f"SELECT {legacy.read}, value_in, value_at, value_size FROM "
                      "{s}memo_entries WHERE run_id = ? ORDER BY key")
    insert_run = engine.sql(_INSERT_MEMO_RUN)
    insert_frame = engine.sql(_INSERT_FRAME)
    n = len(legacy.fields)
    for (run_id,) in tx.query(engine.sql(
            "SELECT DISTINCT run_id FROM {s}memo_entries ORDER BY run_id")):
        groups: dict[tuple[Any, ...], list[tuple[str, str, int, int]]] = {}
        stored: dict[tuple[Any, ...], Any] = {}
        for row in tx.query(read, (run_id,)):
            legacy.check(row, where)
            key, stage, version, ph, _, _, h, _, created = row[:n]
            value_in, at, size = row[n + 1:n + 4]
            if not (isinstance(key, str) and len(key) == 64 and _is_hex(key)):
                raise legacy._damaged(row, where, "holds a key that is not a SHA-256")
            if not (isinstance(value_in, str) and isinstance(at, int) and
                    isinstance(size, int) and at >= 0 and size >= 0):
                raise legacy._damaged(row, where, "points at no value")
            group = (stage, version, ph, legacy.plain.of_row(row[:n])[8], value_in)
            groups.setdefault(group, []).append((key, h, at, size))
            stored.setdefault(group, created)
        for i, group in enumerate(sorted(groups)):
            memo_run = run_id if len(groups) == 1 else f"{run_id}/{i}"
            entries = groups[group]
            tx.execute(insert_frame, [
                (key, memo_run, h, at, size, digest) for (key, h, at, size), digest in
                zip(entries, frame_digests(memo_run, entries), strict=True)], True)
            stage, version, ph, when, value_in = group
            keys = bytes.fromhex("".join([e[0] for e in entries]))
            values = [memo_run, run_id, stage, version, ph, when, value_in, len(entries),
                      _keys_digest(keys)]
            digest = memo_run_digest(values)
            values[5] = stored[group]
            tx.execute(insert_run, (*values, digest, keys))
    tx.execute(engine.sql("DROP TABLE {s}memo_entries"))


_INSERT_MEMO_RUN = ("INSERT INTO {s}memo_runs (id, run_id, stage, version, params_hash, "
                    "created_at, output, n, keys_digest, digest, keys) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_FRAME = ("INSERT INTO {s}memo_frames (key, memo_run, value_hash, value_at, "
                 "value_size, digest) VALUES (?, ?, ?, ?, ?, ?)")

class _Put(NamedTuple):
    """A put row read back and checked against its digest (its lists parsed)."""

    run_id: str
    lo: int
    sequences: list[int]
    hashes: list[str]
    keys: list[str | None]
    sizes: list[int]


def frames_output(values: Mapping[int, bytes]) -> tuple[bytes, dict[int, tuple[int, int]]]:
    """The canonical bytes of {"frames": {"<seq>": value}} from each value's canonical
    bytes (keys sorted as canonical JSON sorts them: as text; nothing re-encoded), and
    where each value lies in them: sequence -> (offset, length)."""
    order = sorted(values, key=str)
    heads = [b',"%d":' % seq for seq in order]
    if heads:
        heads[0] = heads[0][1:]
    datas = [values[seq] for seq in order]
    where: dict[int, tuple[int, int]] = {}
    at = len(_FRAMES_OPEN)
    for seq, head, data in zip(order, heads, datas, strict=True):
        at += len(head)
        where[seq] = (at, len(data))
        at += len(data)
    pieces = [_FRAMES_OPEN] * (2 * len(order) + 2)
    pieces[1:-1:2] = heads
    pieces[2:-1:2] = datas
    pieces[-1] = b"}}"
    return b"".join(pieces), where


_FRAMES_OPEN = b'{"frames":{'


# -- rows -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _json_text(value: Any) -> str:
    """A JSON field's canonical text (the value was checked when its record was made)."""
    if isinstance(value, Mapping):
        value = dict(value)
    elif isinstance(value, tuple):
        value = list(value)
    return checked_bytes(value).decode("utf-8")


def _digest_of(values: Sequence[Any]) -> int:
    try:
        data = orjson.dumps(values)
    except TypeError:  # an integer beyond 64 bits
        data = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


class _Fields:
    """One kind's field values in order, as neutral values: JSON as its canonical text,
    times as ISO 8601 UTC text. A digest is taken of these, so that a row is checked from
    its columns without parsing them."""

    def __init__(self, kind: str) -> None:
        fields = RUN_FIELDS[kind]
        self.get = operator.attrgetter(*(f.name for f in fields))
        self.json = [i for i, f in enumerate(fields) if f.type == "json"]
        self.time = [i for i, f in enumerate(fields) if f.type == "time"]
        self.bool = [i for i, f in enumerate(fields) if f.type == "bool"]

    def of_record(self, record: Any) -> list[Any]:
        values = list(self.get(record))
        for i in self.json:
            if values[i] is not None:
                values[i] = _json_text(values[i])
        for i in self.time:
            if values[i] is not None:
                values[i] = _iso(values[i])
        return values

    def of_row(self, row: Sequence[Any]) -> list[Any]:
        """The neutral values of a row read back (PostgreSQL gives times as datetimes,
        SQLite booleans as integers)."""
        values = list(row)
        for i in self.time:
            if isinstance(values[i], datetime):
                values[i] = _iso(values[i])
        for i in self.bool:
            if values[i] is not None:
                values[i] = bool(values[i])
        return values


_FIELDS = {kind: _Fields(kind) for kind in RUN_FIELDS}


def record_digest(kind: str, record: Any) -> int:
    """A signed 64-bit digest of a record's fields, taken of their neutral values (see
    _Fields): the same on every engine."""
    return _digest_of(_FIELDS[kind].of_record(record))


def part_digest(run_id: str, sequence: int, value_hash: str, key: str | None = None) -> int:
    """The digest of a part row: of [run_id, sequence, value_hash] (a part of a run with
    the memo off, and every part written before parts held their memo keys), with the
    key after them when it has one."""
    return _digest_of([run_id, sequence, value_hash] if key is None else
                      [run_id, sequence, value_hash, key])


class _Codec:
    """Columns and conversions of one kind on one dialect."""

    def __init__(self, kind: str, dialect: Dialect, extra: Sequence[str] = ()) -> None:
        self.kind = kind
        self.table = _TABLE[kind]
        self.dialect = dialect
        self.fields = RUN_FIELDS[kind]
        self.plain = _FIELDS[kind]
        self.names = [f.name for f in self.fields]
        self.read = ", ".join([*self.names, "digest"])
        self.insert = (f"INSERT INTO {{s}}{self.table} ({', '.join([*self.names, *extra])}, "
                       f"digest) VALUES ({', '.join('?' for _ in [*self.names, *extra])}, ?)")

    def row(self, record: Any) -> tuple[list[Any], int]:
        """(column values, digest) of a record."""
        values = self.plain.of_record(record)
        digest = _digest_of(values)
        if not self.dialect.time_as_text:
            for i in self.plain.time:
                if values[i] is not None:
                    values[i] = getattr(record, self.fields[i].name)
        return values, digest

    def check(self, row: Sequence[Any], where: str) -> None:
        """CorruptDataError unless a row (read with ``read``) matches its digest."""
        n = len(self.fields)
        try:
            ok = _digest_of(self.plain.of_row(row[:n])) == row[n]
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise self._damaged(row, where, "does not match its digest")

    def record(self, row: Sequence[Any], where: str) -> Any:
        self.check(row, where)
        values: dict[str, Any] = {}
        try:
            for f, value in zip(self.fields, row, strict=False):
                if value is not None:
                    if f.type == "json":
                        value = load_json(value)
                        if isinstance(value, list):
                            value = tuple(value)
                    elif f.type == "time":
                        value = self.dialect.time_value(value)
                    elif f.type == "bool":
                        value = bool(value)
                    elif f.type == "int":
                        value = int(value)
                values[f.name] = value
            return RUN_TYPES[self.kind](**values)
        except (ValueError, TypeError, AttributeError) as exc:
            raise self._damaged(row, where, f"does not parse ({exc})") from None

    def _damaged(self, row: Sequence[Any], where: str, what: str) -> CorruptDataError:
        ident = row[0] if row and isinstance(row[0], str) else "?"
        return CorruptDataError(
            f"{self.kind} row {ident!r} in table {self.table} of {where} {what}: the catalog "
            "is damaged (restore the store, or abort the run / clear the memo)")


def _holds(data: Any, value_hash: str) -> bool:
    """Whether a row's bytes are the value its hash names."""
    return isinstance(data, bytes | bytearray | memoryview) and \
        content_hash(bytes(data)) == value_hash


@attrs.frozen
class MemoStageStats:
    """Memo entries of one stage version: how many, oldest and newest."""

    stage: str
    version: str
    entries: int
    oldest: datetime
    newest: datetime


# -- the tables -----------------------------------------------------------------------------


class RunTables:
    """Reads and writes of runs, parts and memo entries in one SqlCatalog."""

    def __init__(self, catalog: SqlCatalog) -> None:
        self.catalog = catalog
        self.engine = catalog.engine
        self.dialect = catalog.dialect
        self.run = _Codec("run", self.dialect, ("tail", "puts"))
        #: run id -> sequence -> (value hash, memo key, the bytes) of the parts this
        #: process put: see _cut and part_values
        self._written: dict[str, dict[int, tuple[str, str | None, bytes]]] = {}
        self._written_size = 0
        self._written_sizes: dict[str, int] = {}  # run id -> bytes of _written[run id]
        self._written_lock = threading.Lock()
        r = self.run.read
        self._q = {
            "run": f"SELECT {r} FROM {{s}}runs WHERE id = ?",
            "runs": f"SELECT {r} FROM {{s}}runs ORDER BY id",
            "runs_of": f"SELECT {r} FROM {{s}}runs WHERE timeline_id = ? ORDER BY id",
            "open_runs": f"SELECT {r} FROM {{s}}runs WHERE state IN ('open', 'committing') "
                         "ORDER BY id",
            "open_of": f"SELECT {r} FROM {{s}}runs WHERE timeline_id = ? AND state IN "
                       "('open', 'committing') ORDER BY id",
            "open_in": f"SELECT {r} FROM {{s}}runs WHERE timeline_id{{in}} AND state IN "
                       "('open', 'committing') ORDER BY id",
            "by_prefix": "SELECT id FROM {s}runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            "by_tail": "SELECT id FROM {s}runs WHERE tail >= ? AND tail < ? ORDER BY id LIMIT ?",
            "tails": "SELECT id, tail FROM {s}runs",
            "puts": f"SELECT {_PUT} FROM {{s}}run_puts WHERE run_id = ? ORDER BY lo",
            "puts_data": f"SELECT {_PUT}, data FROM {{s}}run_puts WHERE run_id = ? ORDER BY lo",
            "puts_at": f"SELECT {_PUT}, data FROM {{s}}run_puts WHERE run_id = ? AND lo{{in}} "
                       "ORDER BY lo",
            # the rows whose sequences a range [least, greatest] falls among
            "spanning": f"SELECT {_PUT} FROM {{s}}run_puts WHERE run_id = ? AND hi >= ? AND "
                        "lo <= ? ORDER BY lo",
            "memo_parts": f"SELECT {_PUT}, data FROM {{s}}run_puts WHERE run_id = ? AND "
                          "keys IS NOT NULL ORDER BY lo",
            "open_like": f"SELECT {r} FROM {{s}}runs WHERE stage = ? AND version = ? AND "
                         "state IN ('open', 'committing') ORDER BY id",
            "memo_held": "SELECT key FROM {s}memo_frames WHERE key{in}",
            "memo_of_run": "SELECT 1 FROM {s}memo_runs WHERE run_id = ? AND output = ? "
                           "LIMIT 1",
            "memo_of": "SELECT 1 FROM {s}memo_runs WHERE run_id = ? LIMIT 1",
            "memo_runs": f"SELECT {_MEMO_RUN} FROM {{s}}memo_runs WHERE id{{in}}",
            "memo_run_keys": f"SELECT {_MEMO_RUN}, keys FROM {{s}}memo_runs WHERE id = ?",
            "output": "INSERT INTO {s}outputs (hash, data) VALUES (?, ?) "
                      "ON CONFLICT (hash) DO NOTHING",
            "ref": "INSERT INTO {s}output_refs (hash, owner) VALUES (?, ?) "
                   "ON CONFLICT (hash, owner) DO NOTHING",
            "done": "SELECT coalesce(sum(n), 0) FROM {s}run_puts WHERE run_id = ?",
            "memo": f"SELECT {_MEMO_FRAME} FROM {{s}}memo_frames WHERE key{{in}}",
            # a put: see the module docstring
            "touch": "UPDATE {s}runs SET puts = puts + 1 WHERE id = ? AND state = 'open'",
            "closed": "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM {s}runs WHERE id = ? "
                      "AND state = 'open')",
            "spanned": "SELECT 1 FROM {s}run_puts WHERE run_id = ? AND hi >= ? AND lo <= ? "
                       "LIMIT 1",
            "insert_put": _INSERT_PUT,
            "state": "SELECT state FROM {s}runs WHERE id = ?",
            "memo_run": _INSERT_MEMO_RUN,
            "memo_frames": _INSERT_FRAME + " ON CONFLICT (key) DO NOTHING",
            "memo_own": "SELECT key FROM {s}memo_frames WHERE key{in} AND memo_run = ?",
            # state changes (interactive transactions)
            "lock": "UPDATE {s}runs SET puts = puts + 0 WHERE id = ?",
            "update": "UPDATE {s}runs SET state = ?, checkpoint_id = ?, closed_at = ?, "
                      "done = ?, memo_hits = ?, digest = ? WHERE id = ?",
        }

    @property
    def where(self) -> str:
        return self.engine.describe()

    @functools.cached_property
    def available(self) -> bool:
        """Whether the tables exist, as this code reads them (a catalog opened read-only
        is never migrated: one older than migration 16 has no memo_frames to read, nor,
        older than migration 15, put rows)."""
        return self.engine.has_table("memo_frames")

    def _writable(self) -> None:
        if self.catalog.read_only:
            raise BackendUnavailableError(self.catalog.read_only)

    # -- runs -----------------------------------------------------------------------------

    def insert_run(self, record: RunRecord) -> None:
        """Write a new run (one transaction)."""
        self._writable()
        values, digest = self.run.row(record)
        self.engine.write([Step(self.engine.sql(self.run.insert),
                                (*values, id_tail(record.id), 0, digest))])

    def get(self, run_id: str) -> RunRecord | None:
        rows = self.engine.query(self._q["run"], (run_id,))
        return self.run.record(rows[0], self.where) if rows else None

    def listing(self, timeline_id: str | None = None) -> list[RunRecord]:
        rows = (self.engine.query(self._q["runs"]) if timeline_id is None
                else self.engine.query(self._q["runs_of"], (timeline_id,)))
        return [self.run.record(row, self.where) for row in rows]

    def open_runs(self, timeline_id: str | None = None) -> list[RunRecord]:
        """The open and committing runs of the store (of one timeline)."""
        rows = (self.engine.query(self._q["open_runs"]) if timeline_id is None
                else self.engine.query(self._q["open_of"], (timeline_id,)))
        return [self.run.record(row, self.where) for row in rows]

    def open_runs_in(self, timeline_ids: Collection[str]) -> list[RunRecord]:
        """The open and committing runs of those timelines, read through the timeline
        index (state has none: a read of every open run scans every run ever begun)."""
        ids = sorted(set(timeline_ids))
        rows = [row for i in range(0, len(ids), _BATCH) for row in self.engine.query(
            self._q["open_in"], (self.dialect.list_param(ids[i:i + _BATCH]),))]
        return sorted((self.run.record(row, self.where) for row in rows), key=lambda r: r.id)

    def find(self, prefix: str, *, tail: bool, limit: int = 11) -> list[str]:
        """Ids of runs whose id (or tail) starts with prefix ('~' sorts after every id
        character, so the range is exactly the prefix)."""
        query = self._q["by_tail" if tail else "by_prefix"]
        return [r[0] for r in self.engine.query(query, (prefix, prefix + "~", int(limit)))]

    def tails(self) -> dict[str, str]:
        """run id -> tail, for every run of the store (short ids are cut from tails)."""
        return dict(self.engine.query(self._q["tails"]))

    def done(self, run_id: str) -> int:
        return int(self.engine.query(self._q["done"], (run_id,))[0][0])

    def _puts(self, rows: Iterable[Sequence[Any]]) -> Iterable[_Put]:
        """Put rows read with _PUT, each checked against its digest and parsed
        (CorruptDataError naming run_puts when one does not match or parse)."""
        for row in rows:
            rid, lo, hi, n, sequences, hashes, keys, sizes, d = row[:_PUT_DATA]
            try:
                ok = _digest_of([rid, lo, hi, n, sequences, hashes, keys, sizes]) == d
                if ok:
                    put = _Put(rid, lo, [int(x) for x in sequences.split(",")],
                               hashes.split(","),
                               [None] * n if keys is None else
                               [k or None for k in keys.split(",")],
                               [int(x) for x in sizes.split(",")])
                    ok = len(put.sequences) == len(put.hashes) == len(put.keys) == \
                        len(put.sizes) == n and put.sequences[0] == lo and \
                        put.sequences[-1] == hi
            except (TypeError, ValueError, AttributeError, IndexError):
                ok = False
            if not ok:
                raise self._damaged(row, "does not match its digest")
            yield put

    def _damaged(self, row: Sequence[Any], what: str) -> CorruptDataError:
        rid = row[0] if row and isinstance(row[0], str) else "?"
        lo = row[1] if len(row) > 1 else "?"
        return CorruptDataError(
            f"put row {rid!r} (from frame {lo}) in table run_puts of {self.where} {what}: "
            "the catalog is damaged (restore the store, or abort the run)")

    def _cut(self, put: _Put, row: Sequence[Any], skip: Collection[int] = ()
             ) -> Iterable[tuple[int, str, str | None, bytes]]:
        """(sequence, value hash, key, bytes) of a checked put row read with its data
        (row), but those in skip: each value cut at the row's sizes and checked against
        its hash, unless it equals the bytes this process put there (_remember: those
        hash to it)."""
        data = row[_PUT_DATA]
        if not isinstance(data, bytes | bytearray | memoryview) or \
                len(data) != sum(put.sizes):
            raise self._damaged(row, "holds bytes of another value")
        data = bytes(data)
        with self._written_lock:
            mine = self._written.get(put.run_id, {})
        at = 0
        for seq, h, key, size in zip(put.sequences, put.hashes, put.keys, put.sizes,
                                     strict=True):
            value = data[at:at + size]
            at += size
            if seq in skip:
                continue
            held = mine.get(seq)
            if (held is None or held[0] != h or held[2] != value) and not _holds(value, h):
                raise self._damaged(row, "holds bytes of another value")
            yield seq, h, key, value

    def _values(self, run_id: str, puts: Iterable[_Put],
                skip: Collection[int] = ()) -> dict[int, tuple[str, str | None, bytes]]:
        """sequence -> (value hash, key, bytes) of the frames of puts (but those in skip),
        their rows' data fetched (only those rows), checked."""
        los = [p.lo for p in puts if any(s not in skip for s in p.sequences)]
        found: dict[int, tuple[str, str | None, bytes]] = {}
        for i in range(0, len(los), _BATCH):
            rows = self.engine.query(self._q["puts_at"],
                                     (run_id, self.dialect.list_param(los[i:i + _BATCH])))
            for row, put in zip(rows, self._puts(rows), strict=True):
                found.update((seq, (h, key, value))
                             for seq, h, key, value in self._cut(put, row, skip))
        return found

    def parts(self, run_id: str, sequences: Sequence[int] | None = None) -> dict[int, str]:
        """sequence -> value hash of a run's parts (of these sequences, when given)."""
        if sequences is None:
            rows = self.engine.query(self._q["puts"], (run_id,))
        elif not sequences:
            return {}
        else:
            rows = self.engine.query(self._q["spanning"],
                                     (run_id, min(sequences), max(sequences)))
        found = {s: h for put in self._puts(rows)
                 for s, h in zip(put.sequences, put.hashes, strict=True)}
        if sequences is not None:
            wanted = set(sequences)
            found = {s: h for s, h in found.items() if s in wanted}
        return found

    def part_values(self, run_id: str) -> dict[int, tuple[str, str | None, bytes]]:
        """sequence -> (value hash, memo key, canonical bytes) of a run's parts, each
        checked. The parts this process put are the ones it put (their rows hold what it
        wrote, or an equal part: a put compares value hashes, and the bytes hash to the
        value hash): when they are all the run's parts (as many as the rows count: parts
        are never deleted while a run is open) nothing more is read; else the rows are
        read and checked, and only the data of the rows holding parts another process put
        are fetched (and those parts hashed). A commit in the process that put every
        frame read them all back: a sixth of its time, measured on SQLite."""
        with self._written_lock:
            mine = dict(self._written.get(run_id, ()))
        if not mine:
            rows = self.engine.query(self._q["puts_data"], (run_id,))
            return {seq: (h, key, data) for row, put in zip(rows, self._puts(rows), strict=True)
                    for seq, h, key, data in self._cut(put, row)}
        if self.done(run_id) == len(mine):
            return mine
        found: dict[int, tuple[str, str | None, bytes]] = {}
        puts = list(self._puts(self.engine.query(self._q["puts"], (run_id,))))
        for put in puts:
            for seq, h, key in zip(put.sequences, put.hashes, put.keys, strict=True):
                held = mine.get(seq)
                if held is not None and held[0] == h and held[1] == key:
                    found[seq] = held
        found.update(self._values(run_id, puts, found.keys()))
        return found

    def put(self, run_id: str, parts: Sequence[tuple[int, str, bytes, str | None]]) -> None:
        """Write parts (sequence, value hash, canonical bytes, memo key or None; no
        sequence twice) in one transaction (one round trip on
        PostgreSQL when no row of the run spans them: see the module docstring).
        InvalidInputError when the run is not open, ConflictError naming the frames that
        hold other values; nothing written. Frames that hold equal values stay as they
        are."""
        self._writable()
        if not parts:
            return
        parts = sorted(parts, key=operator.itemgetter(0))  # already so: linear
        e, q = self.engine, self._q
        row = put_row(run_id, parts)
        lo, hi = row[1], row[2]
        try:
            e.write([Step(e.sql(q["touch"]), (run_id,)),
                     Step(e.sql(q["closed"]), (run_id,),
                          refuse=(_CLOSED, "the run is not open")),
                     Step(e.sql(q["spanned"]), (run_id, lo, hi),
                          refuse=(_SPANNED, "a put row spans these frames")),
                     Step(e.sql(q["insert_put"]), row)])
        except Duplicate:  # a row with the same least frame came first
            self._put_among(run_id, parts)
        except Refused as exc:
            if exc.code == _CLOSED:
                raise self._not_open(run_id) from None
            if exc.code != _SPANNED:
                raise
            self._put_among(run_id, parts)
        self._remember(run_id, parts)

    def _put_among(self, run_id: str, parts: Sequence[tuple[int, str, bytes, str | None]]
                   ) -> None:
        """put() where rows of the run span the frames: in a transaction that holds the
        run's row, the frames already put are compared with parts, and the new ones
        written as one row."""
        e, q = self.engine, self._q
        with e.transaction() as tx:
            tx.execute(e.sql(q["lock"]), (run_id,))  # PostgreSQL: puts take turns
            state = tx.query(e.sql(q["state"]), (run_id,))
            if not state or state[0][0] != "open":
                raise self._not_open(run_id)
            stored: dict[int, str] = {}
            for put in self._puts(tx.query(e.sql(q["spanning"]),
                                           (run_id, parts[0][0], parts[-1][0]))):
                stored.update(zip(put.sequences, put.hashes, strict=True))
            differ = [s for s, h, _, _ in parts if s in stored and stored[s] != h]
            if differ:
                raise self._conflict(run_id, differ)
            fresh = [p for p in parts if p[0] not in stored]
            if fresh:
                tx.execute(e.sql(q["insert_put"]), put_row(run_id, fresh))
                tx.execute(e.sql(q["touch"]), (run_id,))

    def _not_open(self, run_id: str) -> InvalidInputError:
        found = self.get(run_id)
        state = found.state if found is not None else "gone"
        return InvalidInputError(f"run {run_id} is {state}: it takes no more values; nothing "
                                 "of this put was written")

    def _remember(self, run_id: str, parts: Sequence[tuple[int, str, bytes, str | None]]
                  ) -> None:
        """The bytes of the parts a put wrote are kept with their hash (up to
        _WRITTEN_AT_MOST in all): part_values takes them instead of reading them back,
        _cut compares them instead of hashing again. An equal part stored before holds
        the same hash, so the same bytes."""
        with self._written_lock:
            mine = self._written.setdefault(run_id, {})
            fresh = [(s, (h, k, data)) for s, h, data, k in parts if s not in mine]
            size = sum(len(held[2]) for _, held in fresh)
            if self._written_size + size > _WRITTEN_AT_MOST:
                return
            self._written_size += size
            self._written_sizes[run_id] = self._written_sizes.get(run_id, 0) + size
            mine.update(fresh)

    def forget(self, run_id: str) -> None:
        """A closed run's parts are read no more: its remembered bytes go."""
        with self._written_lock:
            self._written.pop(run_id, None)
            self._written_size -= self._written_sizes.pop(run_id, 0)

    def _conflict(self, run_id: str, differ: Sequence[int]) -> ConflictError:
        shown = ", ".join(map(str, differ[:10])) + (", ..." if len(differ) > 10 else "")
        return ConflictError(
            f"run {run_id}: frame(s) {shown} already hold other values (another worker wrote "
            "them first); nothing of this put was written. A frame's value is written once: "
            "begin a new run to compute it again")

    def change(self, run_id: str,
               decide: Callable[[RunRecord, Tx], RunRecord | None],
               close: Callable[[RunRecord], bool] = lambda r: False,
               memo_of: _MemoOf | None = None,
               source: _Source | None = None) -> RunRecord:
        """Change a run's state in one transaction: its row is locked and read, decide(old,
        tx) returns the new record (None: leave it), and when close(new) its parts with
        memo keys become memo entries in the same transaction (memo_of: sequence -> the
        frame hash and inputs of its key, as FrameKeys.frame_inputs; None when the keys
        can no longer be made, and then no entry is written; an entry keeps no part but
        the key itself since migration 16; source: the committed output's hash, where
        each value lies in it and the parts it holds (sequence -> value hash, key), else
        the parts are read and their values written as an output of their own). The
        parts of a closed run are read no more; the next purge deletes them
        (drop_closed_parts). Returns the record as it now is."""
        self._writable()
        with self.engine.transaction() as tx:
            old, new = self.change_in(tx, run_id, decide, close, memo_of, source)
        if new is not old and close(new):
            self.forget(run_id)
        return new

    def change_in(self, tx: Tx, run_id: str,
                  decide: Callable[[RunRecord, Tx], RunRecord | None],
                  close: Callable[[RunRecord], bool] = lambda r: False,
                  memo_of: _MemoOf | None = None,
                  source: _Source | None = None) -> tuple[RunRecord, RunRecord]:
        """change() inside a transaction the caller holds (a deletion closes the runs it
        orphans in its own: localckpt.runs.closing): (the record as it was, as it now
        is; the same object when nothing changed). The caller calls forget(run_id) for a
        run that closed, once the transaction is committed."""
        self._writable()
        e, q = self.engine, self._q
        tx.execute(e.sql(q["lock"]), (run_id,))  # PostgreSQL: waits for puts in flight
        rows = tx.query(e.sql(q["run"]), (run_id,))
        if not rows:
            raise NotFoundError(f"no run {run_id!r} in {self.where}")
        old = self.run.record(rows[0], self.where)
        new = decide(old, tx)
        if new is None or new == old:
            return old, old
        values, digest = self.run.row(new)
        at = {name: i for i, name in enumerate(self.run.names)}
        tx.execute(e.sql(q["update"]), (
            *(values[at[name]] for name in ("state", "checkpoint_id", "closed_at", "done",
                                            "memo_hits")), digest, run_id))
        if close(new) and memo_of is not None and new.memo:
            self._memo_from_parts(tx, new, source)
        return old, new

    def hold_commit(self, tx: Tx, run_id: str, checkpoint_id: str) -> None:
        """In the transaction that saves a run's checkpoint: lock the run, so that a
        deletion closing it (change_in) either waits for the save, then finds the
        checkpoint saved, or closes it first, and the save is refused here (on
        PostgreSQL neither would see the other's write in flight). ConflictError,
        nothing written, when the run no longer commits to checkpoint_id or the
        checkpoint is saved already."""
        e, q = self.engine, self._q
        tx.execute(e.sql(q["lock"]), (run_id,))
        rows = tx.query(e.sql(q["run"]), (run_id,))
        rec = self.run.record(rows[0], self.where) if rows else None
        if rec is None or rec.state != "committing" or rec.checkpoint_id != checkpoint_id:
            raise ConflictError(f"run {run_id} is no longer committing to checkpoint "
                                f"{checkpoint_id} (now {rec.state if rec else 'gone'}); "
                                "nothing was saved")
        if self.saved(tx, checkpoint_id):
            raise ConflictError(f"run {run_id}: checkpoint {checkpoint_id} is saved already")

    def saved(self, tx: Tx, checkpoint_id: str | None) -> bool:
        """Whether the catalog holds this checkpoint (a commit that began saved it)."""
        return bool(checkpoint_id) and bool(tx.query(self.engine.sql(
            "SELECT 1 FROM {s}checkpoints WHERE id = ?"), (checkpoint_id,)))

    def _memo_from_parts(self, tx: Tx, rec: RunRecord, source: _Source | None) -> None:
        """Memo entries of a closing run's parts, each pointing at its value inside one
        output that a reference owned by the run keeps (an entry already held for a key
        stays: the first value written under a key answers it; the insert skips it).

        A commit's values are in its checkpoint's output already: every keyed part is
        inserted, without first asking which keys the memo holds (a run rarely puts a
        frame the memo answers: todo() leaves those out). An aborted run's values are
        written as an output of their own, of the fresh keys only. The run's fields go
        once into its memo_runs row, with the keys of the entries that landed."""
        from ...records import utcnow
        from ...runs.memo import params_hash

        e, q = self.engine, self._q
        where: Mapping[int, tuple[int, int]]
        if source is None:  # an aborted run: its values become an output of their own
            rows = tx.query(e.sql(q["memo_parts"]), (rec.id,))
            parts = {seq: (h, key, d) for row, put in zip(rows, self._puts(rows), strict=True)
                     for seq, h, key, d in self._cut(put, row) if key is not None}
            held: set[str] = set()
            keys = sorted({key for _, key, _ in parts.values() if key is not None})
            for i in range(0, len(keys), _BATCH):
                held.update(r[0] for r in tx.query(
                    e.sql(q["memo_held"]), (self.dialect.list_param(keys[i:i + _BATCH]),)))
            fresh: dict[int, tuple[str, str | None]] = {
                seq: (h, key) for seq, (h, key, _) in parts.items() if key not in held}
            if not fresh:
                return
            data, where = frames_output({seq: parts[seq][2] for seq in fresh})
            output = content_hash(data)
            tx.execute(e.sql(q["output"]), (output, data))
        else:
            output, where, in_output = source
            fresh = {seq: p for seq, p in in_output.items() if p[1] is not None}
        # one entry a key (equal frames of a run share theirs: the least frame's stays),
        # in key order
        made = sorted([(key, seq, h) for seq, (h, key) in fresh.items() if key is not None])
        entries: list[tuple[str, str, int, int]] = []
        last = None
        for key, seq, h in made:
            if key != last:
                entries.append((key, h, *where[seq]))
                last = key
        if not entries:
            return
        keys = [entry[0] for entry in entries]
        if set(map(len, keys)) != {64} or not _is_hex("".join(keys)):
            raise CorruptDataError(
                f"a put row of run {rec.id} in table run_puts of {self.where} holds a memo "
                "key that is not a SHA-256: the catalog is damaged (restore the store, or "
                "begin the run again with the memo off); nothing was changed")
        rows = [(key, rec.id, h, at, size, d) for (key, h, at, size), d in
                zip(entries, frame_digests(rec.id, entries), strict=True)]
        inserted = tx.execute(e.sql(q["memo_frames"]), rows, True)
        landed = keys
        if inserted != len(rows):
            # a key held already stays (on PostgreSQL another run's commit may take one
            # meanwhile: the first value under a key answers it): the run lists the
            # entries that are its own (SQLite and PostgreSQL count the rows inserted, so
            # when every row was, nothing is read; DuckDB does not count them: -1)
            landed = []
            for i in range(0, len(keys), _BATCH):
                landed += [r[0] for r in tx.query(e.sql(q["memo_own"]), (
                    self.dialect.list_param(keys[i:i + _BATCH]), rec.id))]
        if not landed:
            return
        landed.sort()
        listed = bytes.fromhex("".join(landed))
        now = utcnow()
        values: list[Any] = [rec.id, rec.id, rec.stage, rec.version, params_hash(rec.params),
                             _iso(now), output, len(landed), _keys_digest(listed)]
        digest = memo_run_digest(values)
        if not self.dialect.time_as_text:
            values[5] = now
        tx.execute(e.sql(q["memo_run"]), (*values, digest, listed))
        # the reference that keeps the output: clear_memo drops it with the run's last
        # entry
        tx.execute(e.sql(q["ref"]), (output, rec.id))

    def wrote_memo(self, run_id: str) -> bool:
        """Whether the memo holds an entry a run wrote (at its commit or abort)."""
        return bool(self.engine.query(self._q["memo_of"], (run_id,)))

    def drop_closed_parts(self) -> int:
        """Delete the puts of committed and aborted runs (gc's purge), in short
        transactions of at most _BATCH frames (a row's, when it holds more); how many
        frames went (counted from the rows each transaction deleted: a gc running at
        the same time takes some first). A closed run takes no puts, so nothing is added
        behind the purge."""
        self._writable()
        e = self.engine
        closed = [r[0] for r in e.query(
            "SELECT id FROM {s}runs WHERE state IN ('committed', 'aborted') AND EXISTS "
            "(SELECT 1 FROM {s}run_puts p WHERE p.run_id = {s}runs.id) ORDER BY id")]
        removed = 0
        for run_id in closed:
            rows = e.query("SELECT lo, n FROM {s}run_puts WHERE run_id = ? ORDER BY lo",
                           (run_id,))
            batch: list[int] = []
            frames = 0
            for i, (lo, n) in enumerate(rows):
                batch.append(lo)
                frames += int(n)
                if frames >= _BATCH or i == len(rows) - 1:
                    with e.transaction() as tx:
                        gone = tx.query(e.sql("DELETE FROM {s}run_puts WHERE run_id = ? AND "
                                              "lo{in} RETURNING n"),
                                        (run_id, self.dialect.list_param(batch)))
                    removed += sum(int(g[0]) for g in gone)
                    batch, frames = [], 0
        return removed

    def count_parts(self, tx: Tx, run_id: str) -> int:
        return int(tx.query(self.engine.sql(self._q["done"]), (run_id,))[0][0])

    # -- the memo -------------------------------------------------------------------------

    def _memo_rows(self, keys: Iterable[str]) -> list[tuple[Any, ...]]:
        """The memo_frames rows of keys (those the memo holds), each checked against its
        digest (CorruptDataError naming memo_frames)."""
        wanted = sorted(set(keys))
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(wanted), _BATCH):
            batch = wanted[i:i + _BATCH]
            rows += self.engine.query(self._q["memo"], (self.dialect.list_param(batch),))
        for row in rows:
            try:
                ok = _digest_of(row[:5]) == row[5]
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise self._memo_damaged("memo_frames", row, "does not match its digest")
        return rows

    def _memo_runs(self, ids: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """id -> memo_runs row (without its keys), each checked against its digest;
        CorruptDataError naming memo_runs when one of ids has none (an entry points at
        it)."""
        wanted = sorted(set(ids))
        found: dict[str, tuple[Any, ...]] = {}
        for i in range(0, len(wanted), _BATCH):
            for row in self.engine.query(self._q["memo_runs"], (
                    self.dialect.list_param(wanted[i:i + _BATCH]),)):
                self._memo_run_check(row)
                found[row[0]] = row
        for missing in set(wanted) - found.keys():
            raise self._memo_damaged("memo_runs", (missing,), "is missing: entries of "
                                     "memo_frames point at it")
        return found

    def _memo_run_check(self, row: Sequence[Any], keys: Any = None) -> None:
        """CorruptDataError unless a memo_runs row read with _MEMO_RUN matches its digest
        (and, given its keys, they match keys_digest and its count)."""
        try:
            values = list(row[:9])
            if isinstance(values[5], datetime):
                values[5] = _iso(values[5])
            ok = memo_run_digest(values) == row[9]
            if ok and keys is not None:
                ok = isinstance(keys, bytes | bytearray | memoryview) and \
                    len(keys) == 32 * int(row[7]) and _keys_digest(bytes(keys)) == row[8]
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise self._memo_damaged("memo_runs", row, "does not match its digest")

    def _memo_damaged(self, table: str, row: Sequence[Any], what: str) -> CorruptDataError:
        ident = row[0] if row and isinstance(row[0], str) else "?"
        return CorruptDataError(
            f"memo row {ident!r} in table {table} of {self.where} {what}: the catalog is "
            "damaged (restore the store, or clear the whole memo: localckpt memo clear)")

    def lookup(self, keys: Iterable[str]) -> dict[str, MemoEntry]:
        """key -> memo entry, for the keys the memo holds."""
        rows = self._memo_rows(keys)
        runs = self._memo_runs(row[1] for row in rows)
        found: dict[str, MemoEntry] = {}
        for key, memo_run, h, _, _, _ in rows:
            _, run_id, stage, version, ph, created = runs[memo_run][:6]
            found[key] = MemoEntry(key, stage, version, ph, h, run_id,
                                   self.dialect.time_value(created))
        return found

    def memo_values(self, keys: Iterable[str]) -> dict[str, str]:
        """key -> value hash, for the keys the memo holds (rows checked)."""
        return {row[0]: row[2] for row in self._memo_rows(keys)}

    def _like(self, rec: RunRecord) -> list[str]:
        """Ids of the other open runs whose parts answer rec's memo keys: memo on, the
        same stage, version and params."""
        from ...runs.memo import params_hash

        rows = self.engine.query(self._q["open_like"], (rec.stage, rec.version))
        ph = params_hash(rec.params)
        return [r.id for r in (self.run.record(row, self.where) for row in rows)
                if r.memo and r.id != rec.id and params_hash(r.params) == ph]

    def _keyed(self, run_id: str, keys: list[str], data: bool
               ) -> Iterable[tuple[int, str, str | None, bytes]]:
        """(sequence, value hash, key, bytes or b"") of a run's parts whose keys are
        among keys: its put rows read (a key is in no index), and with data, only the
        data of the rows holding such parts."""
        wanted = set(keys)
        puts = list(self._puts(self.engine.query(self._q["puts"], (run_id,))))
        if not data:
            for put in puts:
                for seq, h, key in zip(put.sequences, put.hashes, put.keys, strict=True):
                    if key in wanted:
                        yield seq, h, key, b""
            return
        other = {seq for put in puts for seq, key in zip(put.sequences, put.keys, strict=True)
                 if key not in wanted}
        holding = [put for put in puts if len(other.intersection(put.sequences)) < len(put.keys)]
        for seq, (h, key, value) in self._values(run_id, holding, other).items():
            yield seq, h, key, value

    def answers(self, keys: Iterable[str], rec: RunRecord) -> dict[str, str]:
        """key -> value hash, for rec's keys the memo answers: its entries, then the parts
        of other open runs of the same stage, version and params."""
        return self._answered(keys, rec, data=False)

    def holder(self, key: str, rec: RunRecord) -> tuple[str, str, bool] | None:
        """(value hash, run id, whether that run is still open) of what answers one of
        rec's keys (a memo entry, or a part of rec or of another open run like it)."""
        entry = self.lookup([key]).get(key)
        if entry is not None:
            return entry.value_hash, entry.run_id, False
        for run_id in [rec.id, *self._like(rec)]:
            for _, h, found, _ in self._keyed(run_id, [key], False):
                if found == key:
                    return h, run_id, True
        return None

    def answer_bytes(self, keys: Iterable[str], rec: RunRecord) -> dict[str, bytes]:
        """key -> the value's bytes, as answers() finds them."""
        return self._answered(keys, rec, data=True)

    def _answered(self, keys: Iterable[str], rec: RunRecord, data: bool) -> dict[str, Any]:
        """answers (data False: value hashes) or answer_bytes (data True: bytes)."""
        wanted = set(keys)
        found: dict[str, Any] = self.memo_data(wanted) if data else self.memo_values(wanted)
        for run_id in self._like(rec) if len(found) < len(wanted) else ():
            for _, h, key, value in self._keyed(run_id, sorted(wanted - found.keys()), data):
                if key is not None:
                    found.setdefault(key, value if data else h)
        if data and len(found) < len(wanted):
            # a run that closed meanwhile moved its parts into the memo: ask it again
            found.update(self.memo_data(wanted - found.keys()))
        return found

    def memo_data(self, keys: Iterable[str]) -> dict[str, bytes]:
        """key -> the value's canonical bytes, for the keys the memo holds: cut from the
        output each entry's run points into (read once per output), checked against its
        hash."""
        rows = self._memo_rows(keys)
        runs = self._memo_runs(row[1] for row in rows)
        sources = self.catalog.outputs(sorted({runs[row[1]][6] for row in rows}))
        found: dict[str, bytes] = {}
        for row in rows:
            key, memo_run, h, start, size = row[:5]
            whole = sources.get(runs[memo_run][6])
            if whole is None:
                continue  # collected meanwhile (its entries cleared): no longer held
            value = whole[start:start + size]
            if content_hash(value) != h:
                raise self._memo_damaged("memo_frames", row,
                                         "points at bytes of another value")
            found[key] = value
        return found

    def memo_stats(self) -> tuple[list[MemoStageStats], int, int, int, int]:
        """(per stage and version, entries, distinct values, their bytes, keyed parts of
        open runs)."""
        per = self.engine.query(
            "SELECT stage, version, sum(n), min(created_at), max(created_at) "
            "FROM {s}memo_runs GROUP BY stage, version ORDER BY stage, version")
        (entries,), = self.engine.query("SELECT coalesce(sum(n), 0) FROM {s}memo_runs")
        (values, size_of), = self.engine.query(
            "SELECT count(*), coalesce(sum(n), 0) FROM (SELECT value_hash, max(value_size) n "
            "FROM {s}memo_frames GROUP BY value_hash) m")
        (pending,), = self.engine.query(
            "SELECT coalesce(sum(p.n), 0) FROM {s}run_puts p JOIN {s}runs r ON r.id = "
            "p.run_id WHERE p.keys IS NOT NULL AND r.state IN ('open', 'committing')")
        d = self.dialect
        stages = [MemoStageStats(s, v, int(n), d.time_value(lo), d.time_value(hi))
                  for s, v, n, lo, hi in per]
        return stages, int(entries), int(values), int(size_of), int(pending)

    def clear_memo(self, stage: str | None, before: datetime | None, dry_run: bool = False
                   ) -> int:
        """Delete memo entries (of stage, older than before): those of one memo_runs row
        after the other, in short transactions of at most _BATCH entries each, the row's
        key list cut in the same transaction; how many went (dry_run: how many match,
        deleting nothing)."""
        e = self.engine
        where, params = [], []
        if stage is not None:
            where.append("stage = ?")
            params.append(stage)
        if before is not None:
            where.append("created_at < ?")
            params.append(self.dialect.time_param(before))
        if dry_run:
            (n,), = e.query("SELECT coalesce(sum(n), 0) FROM {s}memo_runs"
                            + (f" WHERE {' AND '.join(where)}" if where else ""), params)
            return int(n)
        self._writable()
        # picked by a read, in id order from the last batch on (a row's stage and time
        # never change, so one that is still there still matches): the write
        # transactions only delete what each row lists
        pick = (f"SELECT id FROM {{s}}memo_runs WHERE {' AND '.join([*where, 'id > ?'])} "
                f"ORDER BY id LIMIT {_BATCH}")
        everything = not where
        removed, last = 0, ""
        while True:
            ids = [r[0] for r in e.query(pick, (*params, last))]
            if not ids:
                break
            last = ids[-1]
            for memo_run in ids:
                removed += self._clear_memo_run(memo_run, everything)
        if everything:
            # entries whose memo_runs row is gone (a damaged catalog: reading them is an
            # error, whose advice is this); on PostgreSQL a commit under way, whose row
            # is not seen yet, has entries not seen yet either
            with e.transaction() as tx:
                removed += len(tx.query(e.sql(
                    "DELETE FROM {s}memo_frames WHERE NOT EXISTS (SELECT 1 FROM "
                    "{s}memo_runs r WHERE r.id = {s}memo_frames.memo_run) RETURNING key")))
        return removed

    def _clear_memo_run(self, memo_run: str, damaged_too: bool = False) -> int:
        """Delete the entries of one memo_runs row, _BATCH a transaction, each cutting
        them from its key list (the row goes with its last, and, when no other row of
        its run points into its output, the run's reference to it); how many went. A
        row that does not match its digest is CorruptDataError, unless damaged_too (the
        whole memo is cleared): then its entries are found by a scan, in one
        transaction."""
        e, q = self.engine, self._q
        removed = 0
        while True:
            with e.transaction() as tx:
                # PostgreSQL: a clear of the same row at once waits here
                tx.execute(e.sql("UPDATE {s}memo_runs SET n = n WHERE id = ?"), (memo_run,))
                rows = tx.query(e.sql(q["memo_run_keys"]), (memo_run,))
                if not rows:
                    return removed
                row = rows[0]
                try:
                    self._memo_run_check(row[:10], row[10])
                except CorruptDataError:
                    if not damaged_too:
                        raise
                    rest = b""
                    gone = [r[0] for r in tx.query(e.sql(
                        "DELETE FROM {s}memo_frames WHERE memo_run = ? RETURNING key"),
                        (memo_run,))]
                else:
                    listed = bytes(row[10])
                    batch, rest = listed[:32 * _BATCH], listed[32 * _BATCH:]
                    keys = [batch[i:i + 32].hex() for i in range(0, len(batch), 32)]
                    gone = [r[0] for r in tx.query(e.sql(
                        "DELETE FROM {s}memo_frames WHERE key{in} AND memo_run = ? "
                        "RETURNING key"), (self.dialect.list_param(keys), memo_run))]
                _, run_id, output = row[0], row[1], row[6]
                # the references a key owned (entries written before migration 9 point
                # at their value's own output, which a reference owned by their key kept)
                tx.execute(e.sql("DELETE FROM {s}output_refs WHERE hash = ? AND owner = ?"),
                           [(output, key) for key in gone], True)
                removed += len(gone)
                if rest:
                    values = list(row[:9])
                    if isinstance(values[5], datetime):
                        values[5] = _iso(values[5])
                    values[7], values[8] = len(rest) // 32, _keys_digest(rest)
                    tx.execute(e.sql("UPDATE {s}memo_runs SET n = ?, keys_digest = ?, "
                                     "digest = ?, keys = ? WHERE id = ?"),
                               (values[7], values[8], memo_run_digest(values), rest,
                                memo_run))
                    continue
                tx.execute(e.sql("DELETE FROM {s}memo_runs WHERE id = ?"), (memo_run,))
                if not tx.query(e.sql(q["memo_of_run"]), (run_id, output)):
                    tx.execute(e.sql("DELETE FROM {s}output_refs WHERE hash = ? AND "
                                     "owner = ?"), (output, run_id))
                return removed
