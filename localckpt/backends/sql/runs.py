"""Stage runs, their parts and the per-frame memo: three tables of the one catalog.

Schema (migration 7, rendered per dialect from :data:`TABLES`; migration 9 adds the
columns after the digest-covered fields)::

    runs          one row per run (``localckpt.runs.records.RunRecord``), its ``tail``
                  for short ids, ``puts`` (a counter every put increments: on PostgreSQL
                  it is what makes a put and a commit of one run take turns) and digest
    run_parts     (run_id, sequence) -> value_hash, the frame's memo ``key`` and the
                  value's canonical bytes (``data``)
    memo_entries  key -> value_hash, the key's parts and the run that wrote it; the value
                  lies in output ``value_in`` at ``value_at`` (``value_size`` bytes)

Why this layout (measured: a put of 100 frames wrote ~400 B-tree pages when each value
was an output with references, and a memo entry): a put writes only its run's rows,
which sit together in the (run_id, sequence) range. The memo is written once per run,
in the transaction that commits or aborts it (a deletion that orphans an open run aborts
it in the transaction of its tombstones: change_in): each keyed part becomes an entry pointing
at its value inside the checkpoint's output (an aborted run's values are written as an
output of their own), and one reference owned by the run keeps that output through gc
until clear_memo removes the run's last entry. Until then an open run's parts answer
other open runs of the same stage, version and params. A closed run's parts are read no
more; gc's purge deletes them (drop_closed_parts).

Why a put is one round trip on PostgreSQL (``Engine.write``): its statements are a guard
that refuses the whole write on the server when the run is not open (``LC421``) and a
plain insert of its parts. Only when a frame is there already (the insert meets its key:
Duplicate, nothing kept) does a second write follow, inserting with ``ON CONFLICT DO
NOTHING`` and a guard refusing it when a frame holds another value (``LC422``: the
stored part's digest differs from the one this put would write; a part's digest covers
run id, sequence, value hash and key, so equal digests mean equal values). That guard
read the frames of every put back (measured on SQLite: 0.28 ms of a put of 100 frames,
a third of its statements' time before the COMMIT); a put of new frames, the usual one,
needs no such read.

Every row read is checked against its digest, and a value's bytes against its hash
(CorruptDataError names the table).
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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

__all__ = ["TABLES", "MemoStageStats", "RunTables", "add_value_columns", "create_tables",
           "frames_output", "part_digest", "record_digest"]

_CLOSED = "LC421"
_DIFFERS = "LC422"
_BATCH = 4096  # keys per memo lookup, rows per clearing transaction
_NEUTRAL = {"id": "id", "hash": "id", "text": "text", "json": "text", "bool": "bool",
            "int": "int", "time": "time"}
_TABLE = {"run": "runs", "part": "run_parts", "memo": "memo_entries"}
_PART = "run_id, sequence, value_hash, key, digest"  # a part as read (RunTables._parts)
#: sequence -> (frame hash, inputs) of a run's frame: the parts of its memo key
_MemoOf = Callable[[int], tuple[str, Mapping[str, str | None]]]
#: a committed output's hash, sequence -> (offset, length) of each value in it, and the
#: parts it holds: sequence -> (value hash, memo key)
_Source = tuple[str, Mapping[int, tuple[int, int]], Mapping[int, tuple[str, str | None]]]
_CHECKED_AT_MOST = 1_000_000  # part rows remembered as checked (RunTables._parts)
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


def create_tables(tx: Tx, engine: Engine) -> None:
    """Migration 7: the tables above, rendered for the engine's dialect."""
    d = engine.dialect
    for table in TABLES:
        cols = [f"{name} {d.types[kind]}{'' if nullable else ' NOT NULL'}"
                for name, kind, nullable in table.columns]
        cols.append(f"PRIMARY KEY ({', '.join(table.key)})")
        tx.execute(engine.sql(f"CREATE TABLE {{s}}{table.name} ({', '.join(cols)})"))
        for index in table.indexes:
            tx.execute(engine.sql(f"CREATE INDEX {table.name}_{'_'.join(index)} ON "
                                  f"{{s}}{table.name} ({', '.join(index)})"))


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


def frames_output(values: Mapping[int, bytes]) -> tuple[bytes, dict[int, tuple[int, int]]]:
    """The canonical bytes of {"frames": {"<seq>": value}} from each value's canonical
    bytes (keys sorted as canonical JSON sorts them: as text; nothing re-encoded), and
    where each value lies in them: sequence -> (offset, length)."""
    out = [b'{"frames":{']
    at = len(out[0])
    where: dict[int, tuple[int, int]] = {}
    for i, text in enumerate(sorted(str(seq) for seq in values)):
        seq = int(text)
        head = b'%s"%s":' % (b"," if i else b"", text.encode("ascii"))
        at += len(head)
        data = values[seq]
        where[seq] = (at, len(data))
        at += len(data)
        out += (head, data)
    out.append(b"}}")
    return b"".join(out), where


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
        self.part = _Codec("part", self.dialect, ("key", "data"))
        self.memo = _Codec("memo", self.dialect, ("value_in", "value_at", "value_size"))
        self._checked: set[tuple[Any, ...]] = set()
        #: run id -> sequence -> (value hash, memo key, the bytes) of the parts this
        #: process put: see _parts and part_values
        self._written: dict[str, dict[int, tuple[str, str | None, bytes]]] = {}
        self._written_size = 0
        self._written_lock = threading.Lock()
        r, m = self.run.read, self.memo.read
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
            "parts": f"SELECT {_PART} FROM {{s}}run_parts WHERE run_id = ?",
            "parts_at": f"SELECT {_PART} FROM {{s}}run_parts WHERE run_id = ? AND sequence{{in}}",
            "part_values": f"SELECT {_PART}, data FROM {{s}}run_parts WHERE run_id = ?",
            "part_values_at": f"SELECT {_PART}, data FROM {{s}}run_parts WHERE run_id = ? AND "
                              "sequence{in}",
            "keyed_parts": f"SELECT {_PART} FROM {{s}}run_parts WHERE run_id = ? AND key{{in}}",
            "keyed_values": f"SELECT {_PART}, data FROM {{s}}run_parts WHERE run_id = ? AND "
                            "key{in}",
            "memo_parts": f"SELECT {_PART}, data FROM {{s}}run_parts WHERE run_id = ? AND "
                          "key IS NOT NULL",
            "open_like": f"SELECT {r} FROM {{s}}runs WHERE stage = ? AND version = ? AND "
                         "state IN ('open', 'committing') ORDER BY id",
            "memo_data": f"SELECT {m}, value_in, value_at, value_size FROM {{s}}memo_entries WHERE "
                         "key{in}",
            "memo_held": "SELECT key FROM {s}memo_entries WHERE key{in}",
            "memo_of_run": "SELECT 1 FROM {s}memo_entries WHERE run_id = ? AND value_in = ? "
                           "LIMIT 1",
            "memo_of": "SELECT 1 FROM {s}memo_entries WHERE run_id = ? LIMIT 1",
            "output": "INSERT INTO {s}outputs (hash, data) VALUES (?, ?) "
                      "ON CONFLICT (hash) DO NOTHING",
            "ref": "INSERT INTO {s}output_refs (hash, owner) VALUES (?, ?) "
                   "ON CONFLICT (hash, owner) DO NOTHING",
            "done": "SELECT count(*) FROM {s}run_parts WHERE run_id = ?",
            "memo": f"SELECT {m} FROM {{s}}memo_entries WHERE key{{in}}",
            # a put: see the module docstring
            "touch": "UPDATE {s}runs SET puts = puts + 1 WHERE id = ? AND state = 'open'",
            "closed": "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM {s}runs WHERE id = ? "
                      "AND state = 'open')",
            "new_parts": self.part.insert,
            "part": self.part.insert + " ON CONFLICT (run_id, sequence) DO NOTHING",
            "differs": "SELECT 1 FROM {s}run_parts WHERE run_id = ? AND sequence{in} "
                       "AND NOT (digest{in})",
            "memo_entry": self.memo.insert + " ON CONFLICT (key) DO NOTHING",
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
        """Whether the tables exist (a catalog opened read-only is never migrated)."""
        return self.engine.has_table("runs")

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

    def _parts(self, rows: Iterable[Sequence[Any]], data: bool = False
               ) -> Iterable[tuple[int, str, str | None, bytes]]:
        """(sequence, value hash, key, bytes or b"") of part rows read with _PART (and
        data), each checked against its digest (and its bytes against the hash). A part
        never changes, so a row read again with the same columns is not checked again,
        and bytes equal to what this process put there are not hashed again."""
        checked = self._checked
        written: dict[int, tuple[str, str | None, bytes]] = {}
        for row in rows:
            rid, seq, h, key, d = fields = tuple(row[:5])
            if fields not in checked:
                if not (isinstance(seq, int) and isinstance(h, str)) or \
                        part_digest(rid, seq, h, key) != d:
                    raise self.part._damaged(row, self.where, "does not match its digest")
                if len(checked) >= _CHECKED_AT_MOST:
                    checked.clear()
                checked.add(fields)
            if data:
                if not written and rid in self._written:
                    written = self._written[rid]
                mine = written.get(seq)
                if (mine is None or mine[0] != h or mine[2] != row[5]) and \
                        not _holds(row[5], h):
                    raise self.part._damaged(row, self.where, "holds bytes of another value")
            yield seq, h, key, bytes(row[5]) if data else b""

    def parts(self, run_id: str, sequences: Sequence[int] | None = None) -> dict[int, str]:
        """sequence -> value hash of a run's parts (of these sequences, when given)."""
        if sequences is None:
            rows = self.engine.query(self._q["parts"], (run_id,))
        else:
            rows = self.engine.query(self._q["parts_at"],
                                     (run_id, self.dialect.list_param(list(sequences))))
        return {seq: h for seq, h, _, _ in self._parts(rows)}

    def part_values(self, run_id: str) -> dict[int, tuple[str, str | None, bytes]]:
        """sequence -> (value hash, memo key, canonical bytes) of a run's parts, each
        checked. The parts this process put are the ones it put (their rows hold what it
        wrote, or an equal part: the put's guard compares digests, which cover value hash
        and key, and the bytes hash to the value hash): when they are all the run's
        parts (as many as count(*) finds: parts are never deleted while a run is open)
        nothing more is read; else the rows are read and checked, and only the bytes of
        the parts another process put are fetched (and hashed). A commit in the process
        that put every frame read them all back: a sixth of its time, measured on
        SQLite."""
        with self._written_lock:
            mine = dict(self._written.get(run_id, ()))
        if not mine:
            rows = self.engine.query(self._q["part_values"], (run_id,))
            return {seq: (h, key, data) for seq, h, key, data in self._parts(rows, data=True)}
        if self.done(run_id) == len(mine):
            return mine
        found: dict[int, tuple[str, str | None, bytes]] = {}
        other: list[int] = []
        for seq, h, key, _ in self._parts(self.engine.query(self._q["parts"], (run_id,))):
            held = mine.get(seq)
            if held is not None and held[0] == h and held[1] == key:
                found[seq] = held
            else:
                other.append(seq)
        for i in range(0, len(other), _BATCH):
            rows = self.engine.query(self._q["part_values_at"],
                                     (run_id, self.dialect.list_param(other[i:i + _BATCH])))
            found.update((seq, (h, key, data)) for seq, h, key, data in
                         self._parts(rows, data=True))
        return found

    def put(self, run_id: str, parts: Sequence[tuple[int, str, bytes, str | None]]) -> None:
        """Write parts (sequence, value hash, canonical bytes, memo key or None) in one
        transaction (one round trip on PostgreSQL). InvalidInputError when the run is not
        open, ConflictError naming the frames that hold other values; nothing written."""
        self._writable()
        e, q, lp = self.engine, self._q, self.dialect.list_param
        digests = [part_digest(run_id, s, h, k) for s, h, _, k in parts]
        rows = [(run_id, s, h, k, data, d) for (s, h, data, k), d in
                zip(parts, digests, strict=True)]
        guard = [Step(e.sql(q["touch"]), (run_id,)),
                 Step(e.sql(q["closed"]), (run_id,), refuse=(_CLOSED, "the run is not open"))]
        try:
            try:  # new frames, the usual put: no conflict to look for
                e.write([*guard, Step(e.sql(q["new_parts"]), rows, many=True)])
            except Duplicate:  # a frame is there already: equal values are a no-op
                seqs = [s for s, _, _, _ in parts]
                e.write([*guard, Step(e.sql(q["part"]), rows, many=True),
                         Step(e.sql(q["differs"]), (run_id, lp(seqs), lp(digests)),
                              refuse=(_DIFFERS, "a frame already holds another value"))])
        except Refused as exc:
            if exc.code == _CLOSED:
                found = self.get(run_id)
                state = found.state if found is not None else "gone"
                raise InvalidInputError(
                    f"run {run_id} is {state}: it takes no more values; nothing of this put "
                    "was written") from None
            if exc.code == _DIFFERS:
                raise self._conflict(run_id, {seq: h for seq, h, _, _ in parts}) from None
            raise
        self._remember(run_id, parts, digests)

    def _remember(self, run_id: str, parts: Sequence[tuple[int, str, bytes, str | None]],
                  digests: Sequence[int]) -> None:
        """The rows a put wrote are what _parts will read back: their columns count as
        checked, and their bytes are kept with their hash (up to _WRITTEN_AT_MOST in all):
        part_values takes them instead of reading them back, _parts compares them instead
        of hashing again. An equal part stored before holds the same columns and, its
        hash being equal, the same bytes."""
        checked = self._checked
        if len(checked) + len(parts) >= _CHECKED_AT_MOST:
            checked.clear()
        checked.update((run_id, s, h, k, d) for (s, h, _, k), d in
                       zip(parts, digests, strict=True))
        with self._written_lock:
            mine = self._written.setdefault(run_id, {})
            fresh = [(s, (h, k, data)) for s, h, data, k in parts if s not in mine]
            size = sum(len(held[2]) for _, held in fresh)
            if self._written_size + size > _WRITTEN_AT_MOST:
                return
            self._written_size += size
            mine.update(fresh)

    def forget(self, run_id: str) -> None:
        """A closed run's parts are read no more: its remembered bytes go."""
        with self._written_lock:
            gone = self._written.pop(run_id, None)
            if gone:
                self._written_size -= sum(len(data) for _, _, data in gone.values())

    def _conflict(self, run_id: str, wanted: dict[int, str]) -> ConflictError:
        stored = self.parts(run_id, sorted(wanted))
        differ = sorted(s for s, h in stored.items() if wanted.get(s) != h)
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
        memo keys become memo entries in the same transaction (memo_of:
        sequence -> the frame hash and inputs of its key, as FrameKeys.frame_inputs;
        source: the committed output's hash, where each value lies in it and the parts it
        holds (sequence -> value hash, key), else the parts are read and their values
        written as an output of their own). The parts of a closed run are
        read no more; the next purge deletes them (drop_closed_parts). Returns the record
        as it now is."""
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
            self._memo_from_parts(tx, new, memo_of, source)
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

    def _memo_from_parts(self, tx: Tx, rec: RunRecord, memo_of: _MemoOf,
                         source: _Source | None) -> None:
        """Memo entries of a closing run's parts, each pointing at its value inside one
        output that a reference owned by the run keeps (an entry already held for a key
        stays: the first value written under a key answers it; the insert skips it).

        A commit's values are in its checkpoint's output already: every keyed part is
        inserted, without first asking which keys the memo holds (a run rarely puts a
        frame the memo answers: todo() leaves those out). An aborted run's values are
        written as an output of their own, of the fresh keys only."""
        from ...records import utcnow
        from ...runs.memo import params_hash

        e, q = self.engine, self._q
        where: Mapping[int, tuple[int, int]]
        if source is None:  # an aborted run: its values become an output of their own
            rows = tx.query(e.sql(q["memo_parts"]), (rec.id,))
            parts = {seq: (h, key, d) for seq, h, key, d in self._parts(rows, True)}
            held: set[str] = set()
            keys = sorted({key for _, key, _ in parts.values() if key is not None})
            for i in range(0, len(keys), _BATCH):
                held.update(r[0] for r in tx.query(
                    e.sql(q["memo_held"]), (self.dialect.list_param(keys[i:i + _BATCH]),)))
            fresh = {seq: (h, key) for seq, (h, key, _) in parts.items() if key not in held}
            if not fresh:
                return
            data, where = frames_output({seq: parts[seq][2] for seq in fresh})
            output = content_hash(data)
            tx.execute(e.sql(q["output"]), (output, data))
        else:
            output, where, in_output = source
            fresh = {seq: p for seq, p in in_output.items() if p[1] is not None}
        now = utcnow()
        head = [rec.stage, rec.version, params_hash(rec.params)]
        when: Any = _iso(now)
        at = self.dialect.time_as_text
        texts: dict[tuple[tuple[str, str | None], ...], str] = {}
        entries = []
        for seq, (h, key) in fresh.items():
            frame, inputs = memo_of(seq)
            pairs = tuple(inputs.items())
            if pairs not in texts:
                texts[pairs] = _json_text(dict(inputs))
            # MemoEntry(key, *head, frame, inputs, h, rec.id, now) as _Codec.row makes it
            values = [key, *head, frame, texts[pairs], h, rec.id, when]
            d = _digest_of(values)
            if not at:
                values[-1] = now
            entries.append((*values, output, *where[seq], d))
        if entries:
            tx.execute(e.sql(q["memo_entry"]), sorted(entries), many=True)
            # a reference only when an entry of this run landed (on PostgreSQL another
            # run's commit may have taken every key meanwhile): clear_memo drops it with
            # the run's last entry
            if tx.query(e.sql(q["memo_of_run"]), (rec.id, output)):
                tx.execute(e.sql(q["ref"]), (output, rec.id))

    def wrote_memo(self, run_id: str) -> bool:
        """Whether the memo holds an entry a run wrote (at its commit or abort)."""
        return bool(self.engine.query(self._q["memo_of"], (run_id,)))

    def drop_closed_parts(self) -> int:
        """Delete the parts of committed and aborted runs (gc's purge), in short
        transactions of at most _BATCH frames; how many went. A closed run takes no puts,
        so nothing is added behind the purge."""
        self._writable()
        e = self.engine
        closed = [r[0] for r in e.query(
            "SELECT id FROM {s}runs WHERE state IN ('committed', 'aborted') AND EXISTS "
            "(SELECT 1 FROM {s}run_parts p WHERE p.run_id = {s}runs.id) ORDER BY id")]
        removed = 0
        for run_id in closed:
            (lo, hi), = e.query("SELECT min(sequence), max(sequence) FROM {s}run_parts "
                                "WHERE run_id = ?", (run_id,))
            for start in range(int(lo), int(hi) + 1, _BATCH) if lo is not None else ():
                with e.transaction() as tx:
                    removed += max(0, tx.execute(e.sql(
                        "DELETE FROM {s}run_parts WHERE run_id = ? AND sequence >= ? AND "
                        "sequence < ?"), (run_id, start, start + _BATCH)))
        return removed

    def count_parts(self, tx: Tx, run_id: str) -> int:
        return int(tx.query(self.engine.sql(self._q["done"]), (run_id,))[0][0])

    # -- the memo -------------------------------------------------------------------------

    def _memo_rows(self, keys: Iterable[str]) -> Iterable[tuple[Any, ...]]:
        wanted = sorted(set(keys))
        for i in range(0, len(wanted), _BATCH):
            batch = wanted[i:i + _BATCH]
            yield from self.engine.query(self._q["memo"], (self.dialect.list_param(batch),))

    def lookup(self, keys: Iterable[str]) -> dict[str, MemoEntry]:
        """key -> memo entry, for the keys the memo holds."""
        found = [self.memo.record(row, self.where) for row in self._memo_rows(keys)]
        return {entry.key: entry for entry in found}

    def memo_values(self, keys: Iterable[str]) -> dict[str, str]:
        """key -> value hash, for the keys the memo holds (rows checked, not parsed)."""
        found: dict[str, str] = {}
        at = self.memo.names.index("value_hash")
        for row in self._memo_rows(keys):
            self.memo.check(row, self.where)
            found[row[0]] = row[at]
        return found

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
        query = self._q["keyed_values" if data else "keyed_parts"]
        for i in range(0, len(keys), _BATCH):
            rows = self.engine.query(query, (run_id, self.dialect.list_param(keys[i:i + _BATCH])))
            yield from self._parts(rows, data)

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
        output each entry points into (read once per output), checked against its hash."""
        n = len(self.memo.names) + 1
        at = self.memo.names.index("value_hash")
        rows = []
        wanted = sorted(set(keys))
        for i in range(0, len(wanted), _BATCH):
            lp = self.dialect.list_param(wanted[i:i + _BATCH])
            rows += self.engine.query(self._q["memo_data"], (lp,))
        for row in rows:
            self.memo.check(row[:n], self.where)
        sources = self.catalog.outputs(sorted({row[n] for row in rows if row[n]}))
        found: dict[str, bytes] = {}
        for row in rows:
            source, start, size = row[n:n + 3]
            whole = sources.get(source)
            if whole is None:
                continue  # collected meanwhile (its entries cleared): no longer held
            value = whole[start:start + size] if isinstance(start, int) and \
                isinstance(size, int) else b""
            if content_hash(value) != row[at]:
                raise self.memo._damaged(row, self.where, "points at bytes of another value")
            found[row[0]] = value
        return found

    def memo_stats(self) -> tuple[list[MemoStageStats], int, int, int, int]:
        """(per stage and version, entries, distinct values, their bytes, keyed parts of
        open runs)."""
        per = self.engine.query(
            "SELECT stage, version, count(*), min(created_at), max(created_at) "
            "FROM {s}memo_entries GROUP BY stage, version ORDER BY stage, version")
        (entries,), = self.engine.query("SELECT count(*) FROM {s}memo_entries")
        (values, size_of), = self.engine.query(
            "SELECT count(*), coalesce(sum(n), 0) FROM (SELECT value_hash, max(value_size) n "
            "FROM {s}memo_entries GROUP BY value_hash) m")
        (pending,), = self.engine.query(
            "SELECT count(*) FROM {s}run_parts p JOIN {s}runs r ON r.id = p.run_id WHERE "
            "p.key IS NOT NULL AND r.state IN ('open', 'committing')")
        d = self.dialect
        stages = [MemoStageStats(s, v, int(n), d.time_value(lo), d.time_value(hi))
                  for s, v, n, lo, hi in per]
        return stages, int(entries), int(values), int(size_of), int(pending)

    def clear_memo(self, stage: str | None, before: datetime | None) -> int:
        """Delete memo entries (of stage, older than before), in batches of short
        transactions; how many went."""
        self._writable()
        e = self.engine
        where, params = [], []
        if stage is not None:
            where.append("stage = ?")
            params.append(stage)
        if before is not None:
            where.append("created_at < ?")
            params.append(self.dialect.time_param(before))
        # picked by a read, in key order from the last batch on (entries never change,
        # so one that is still there still matches): the write transactions only delete,
        # where picking in them held the write lock while it read past every entry
        # that does not match, again for every batch
        pick = (f"SELECT key FROM {{s}}memo_entries WHERE {' AND '.join([*where, 'key > ?'])} "
                f"ORDER BY key LIMIT {_BATCH}")
        removed, last = 0, ""
        while True:
            keys = [r[0] for r in e.query(pick, (*params, last))]
            if not keys:
                return removed
            last = keys[-1]
            with e.transaction() as tx:
                rows = tx.query(e.sql("DELETE FROM {s}memo_entries WHERE key{in} "
                                      "RETURNING key, value_in, run_id"),
                                (self.dialect.list_param(keys),))
                # the references that kept their values: a key's own (entries written
                # before migration 9: (value_hash, key), and migration 9 set value_in to
                # value_hash), looked up by key, where `owner IN keys` read every
                # reference of the store; a run's once no entry points into its output
                tx.execute(e.sql("DELETE FROM {s}output_refs WHERE hash = ? AND owner = ?"),
                           [(r[1], r[0]) for r in rows], True)
                for source, run_id in sorted({(r[1], r[2]) for r in rows}):
                    if not tx.query(e.sql(self._q["memo_of_run"]), (run_id, source)):
                        tx.execute(e.sql("DELETE FROM {s}output_refs WHERE hash = ? AND "
                                         "owner = ?"), (source, run_id))
                removed += len(rows)
