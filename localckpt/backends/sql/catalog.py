"""SqlCatalog: every method of the Catalog interface, written once for SQLite,
PostgreSQL and DuckDB (the engine and its dialect hold what differs).

Writes (``commit``): one transaction of plain INSERTs (outputs with ``ON CONFLICT DO
NOTHING``: they are content-addressed), the output references of new checkpoints and
the per-timeline sums. The usual batch (a save, a new timeline) is all new ids: one
round trip on PostgreSQL, and on SQLite one fsync shared with the other threads that
commit at that moment. When an id is stored already (a retried save, a sync that
overlaps), the plain INSERT fails, writing nothing, and the slow path compares the
stored records' digests with the batch: equal ones are skipped, others raise
ConflictError, and the new ones are written in one transaction.

Reads check every row against its digest and every output against its hash
(CorruptDataError names the table and the id); a tree is also checked against its
timeline's count and XOR of digests, so a row that a damaged index hides is noticed.
"""

from __future__ import annotations

import functools
import operator
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...canonical import content_hash, load_json
from ...catalog import Batch, Catalog, Garbage, TombstonesChanged
from ...errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    InvalidInputError,
)
from ...ids import id_tail
from ...types import Checkpoint, Tag, Timeline, Tombstone
from .engine import Duplicate, Engine, Refused, Step
from .rows import Codec, codecs, digest
from .schema import (
    DELETED_TIMELINES_INDEX,
    NAME_SUMS,
    PURGED_IDS,
    SECOND_PATHS,
    SUMS_OF,
    TAG_NAMES,
    TIMELINE_TOMBSTONE,
    version_of,
)

if TYPE_CHECKING:
    from .engine import Tx
    from .runs import RunTables

__all__ = ["SqlCatalog"]

T = TypeVar("T")

_TOMBSTONES_CHANGED = "LC411"
_REFUSAL = (_TOMBSTONES_CHANGED, "new tombstones")
_PURGED = "LC412"
_PURGED_REFUSAL = (_PURGED, "purged ids")
#: kind -> the ids a tombstone of that kind, of the record's own timeline, targets
_DELETED = {
    "timeline": "SELECT DISTINCT target_id FROM {s}tombstones WHERE target_id{in} "
                "AND kind = 'timeline' AND timeline_id = target_id",
    "checkpoint": "SELECT DISTINCT c.id FROM {s}checkpoints c JOIN {s}tombstones x ON "
                  "x.target_id = c.id AND x.kind = 'checkpoint' AND x.timeline_id = "
                  "c.timeline_id WHERE c.id{in}",
    "tag": "SELECT DISTINCT g.id FROM {s}tags g JOIN {s}tombstones x ON x.target_id = g.id "
           "AND x.kind = 'tag' AND x.timeline_id = g.timeline_id WHERE g.id{in}",
}
_PEEKED = 1024  # checkpoints remembered per catalog (saves read their parent from here)
_VERIFIED = 4096  # timelines whose rows were all checked, remembered per catalog
_SLOW_RETRIES = 4
_ALL_TIMELINES = ""  # tree_sums row of the timelines table itself
#: an id search of up to this many ids is checked against the table's rows (SQLite): the
#: lookups that resolve what a user typed, not the listings of every id
_CROSS_CHECKED = 1000
#: up to this many timelines, deleted ones are looked up by id in both indexes; above it,
#: the partial index of deleted timelines is read whole
_PROBED_AT_MOST = 64
#: SQLite: the deleted timelines among some ids through the target_id index (0) and
#: through the partial index (1; its terms are the query's, so it answers from the index
#: alone)
_DELETED_THROUGH = (f"SELECT target_id, %d FROM {{s}}tombstones INDEXED BY %s "
                    f"WHERE target_id{{in}} AND {TIMELINE_TOMBSTONE}")
_DELETED_TWICE = (f"{_DELETED_THROUGH % (0, 'tombstones_target_id')} UNION ALL "
                  f"{_DELETED_THROUGH % (1, DELETED_TIMELINES_INDEX)}")
#: the same, for many ids: the partial index read whole (it holds only the deleted
#: timelines) instead of looked up once an id
_DELETED_TWICE_MANY = (f"{_DELETED_THROUGH % (0, 'tombstones_target_id')} UNION ALL "
                       f"SELECT target_id, 1 FROM {{s}}tombstones INDEXED BY "
                       f"{DELETED_TIMELINES_INDEX} WHERE {TIMELINE_TOMBSTONE}")
#: ids whose neighbours in tail order one statement seeks (two index seeks each); more
#: timelines than this are most of a store's: their tails are read in order instead
_SEEKS = 500
#: kind -> the table of ids with an indexed tail (short ids)
_ID_TABLES = {"timeline": "timelines", "checkpoint": "checkpoints", "run": "runs"}


def _xor(values: Iterable[int]) -> int:
    return functools.reduce(operator.xor, values, 0)


#: a row's digest (its last column)
_digest_column = operator.itemgetter(-1)


#: tag names per read of tags_named_in (each is a bound list element)
_NAMES_AT_ONCE = 1000


def _totals(sums: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
    """The count and digest of a timeline's rows from its sums rows (..., n, x)."""
    return sum(int(r[-2]) for r in sums), _xor(int(r[-1]) for r in sums)


def _added(c: Checkpoint, parent_hashes: Mapping[str, str] | None) -> set[str]:
    """The outputs c refers to that its parent does not (what c adds)."""
    if parent_hashes is None:
        return set(c.stage_hashes.values())
    return {h for s, h in c.stage_hashes.items() if parent_hashes.get(s) != h}


def _names(columns: str) -> str:
    """The names of a SELECT list's columns (``stage_hashes::text`` -> stage_hashes)."""
    return ", ".join(c.split("::")[0].strip() for c in columns.split(","))


def _depth(row: tuple[Any, ...]) -> Any:
    """The depth of a row of the lineage statement (before its digest)."""
    return row[-2]


def _record_id(record: Any) -> str:
    return str(record.id)


def _step(statement: str, rows: list[tuple[Any, ...]]) -> Step:
    """One statement for rows: execute for one (cheaper), executemany for several."""
    return Step(statement, rows[0]) if len(rows) == 1 else Step(statement, rows, many=True)


class SqlCatalog(Catalog):
    """The catalog in SQL tables (see ``schema``), on any engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.supports_multiprocess = engine.supports_multiprocess
        self.codecs: dict[str, Codec] = codecs(engine.dialect)
        #: why writes are refused (an old store read by a process that cannot convert it)
        self.read_only: str | None = None
        self._peeked: OrderedDict[str, Checkpoint] = OrderedDict()
        self._peek_lock = threading.Lock()
        #: timeline id -> its sums (count, xor) when every row of it was last checked
        self._verified: dict[str, tuple[int, int]] = {}
        self._one: dict[str, str] = {}  # statement name -> its form for one key ("": none)
        self._save_sql: tuple[str, ...] | None = None  # rendered by _save_steps
        #: SQLite has no checksum on a page: a damaged index entry reads as a missing row
        #: or a wrong id without an error, so answers from one index are checked against
        #: another path (DuckDB checksums its blocks; PostgreSQL its pages when the
        #: cluster was made with data checksums)
        self._checks_indexes = engine.dialect.name == "sqlite"
        c = self.codecs
        tl, ck, tb, tg = (c[k].read for k in ("timeline", "checkpoint", "tombstone", "tag"))
        self._q = {
            "all_timelines": f"SELECT {tl} FROM {{s}}timelines ORDER BY id",
            "timelines": f"SELECT {tl} FROM {{s}}timelines WHERE id{{in}} ORDER BY id",
            # ids are ASCII (schema.check_id), which lower() folds on every engine
            "folding_to": "SELECT id FROM {s}timelines WHERE lower(id){in} ORDER BY id",
            "checkpoints": f"SELECT {ck} FROM {{s}}checkpoints WHERE id{{in}} ORDER BY id",
            # within the parent's timeline: its rows lie together (no parent_id index to
            # update on every save)
            "children": f"SELECT {ck} FROM {{s}}checkpoints WHERE timeline_id = (SELECT "
                        "timeline_id FROM {s}checkpoints WHERE id = ?) AND parent_id = ? "
                        "ORDER BY id",
            "family_sums": "SELECT timeline_id, n, x FROM {s}tree_sums WHERE timeline_id = "
                           "(SELECT timeline_id FROM {s}checkpoints WHERE id = ?)",
            "family": f"SELECT {ck} FROM {{s}}checkpoints WHERE timeline_id = (SELECT "
                      "timeline_id FROM {s}checkpoints WHERE id = ?) ORDER BY id",
            "tree": f"SELECT {ck} FROM {{s}}checkpoints WHERE timeline_id = ? ORDER BY id",
            "sums": "SELECT n, x FROM {s}tree_sums WHERE timeline_id = ?",
            "sums_of": "SELECT timeline_id, n, x FROM {s}tree_sums WHERE timeline_id{in}",
            "sums_range": "SELECT timeline_id, n, x FROM {s}tree_sums "
                          "WHERE timeline_id >= ? AND timeline_id < ?",
            # each step reads the parent's row by the table's key (timeline_id, id; a
            # parent is of its child's timeline) and carries its columns: one lookup a
            # row, where joining ids back to the table took two by the id index. Rows come
            # in any order: lineage() sorts them by depth, which comes just before the
            # digest (a row read with ``read``, and a column after exact, which a codec
            # does not look at)
            "lineage": (
                f"WITH RECURSIVE chain({_names(ck)}, depth) AS (SELECT {ck}, 0 FROM "
                "{s}checkpoints WHERE id = ? UNION ALL SELECT "
                f"{', '.join('c.' + x.strip() for x in ck.split(','))}, chain.depth + 1 "
                "FROM {s}checkpoints c JOIN chain ON c.timeline_id = chain.timeline_id AND "
                "c.id = chain.parent_id WHERE chain.depth < 1000000) "
                f"SELECT {_names(ck).rsplit(', ', 1)[0]}, depth, digest FROM chain"
            ),
            "outputs": "SELECT hash, data FROM {s}outputs WHERE hash{in}",
            "missing": "SELECT hash FROM {s}outputs WHERE hash{in}",
            "all_tombstones": f"SELECT {tb} FROM {{s}}tombstones ORDER BY id",
            "tombstones": f"SELECT {tb} FROM {{s}}tombstones WHERE timeline_id{{in}} "
                          "ORDER BY id",
            "all_tags": f"SELECT {tg} FROM {{s}}tags ORDER BY id",
            "tags": f"SELECT {tg} FROM {{s}}tags WHERE timeline_id{{in}} ORDER BY id",
            "tags_named": f"SELECT {tg} FROM {{s}}tags WHERE name = ? ORDER BY id",
            "tags_named_in": f"SELECT {tg} FROM {{s}}tags WHERE name{{in}} ORDER BY id",
            "tags_by_id": f"SELECT {tg} FROM {{s}}tags WHERE id{{in}}",
            "tombstones_by_id": f"SELECT {tb} FROM {{s}}tombstones WHERE id{{in}}",
            # the timelines whose tag tombstones target some ids (a second path to the
            # timelines of those tags: see _deleted_by_tombstones)
            "tag_tombstone_timelines": "SELECT DISTINCT timeline_id FROM {s}tombstones "
                                       "WHERE target_id{in} AND kind = 'tag'",
            "tombstone_timelines": "SELECT DISTINCT timeline_id FROM {s}tombstones "
                                   "WHERE target_id{in}",
            "purged": "SELECT id, kind, timeline_id, tombstone_id FROM {s}purged "
                      "WHERE id{in} ORDER BY id",
            "page": (
                f"SELECT {', '.join('t.' + x.strip() for x in tl.split(','))}, "
                "(SELECT sum(n) FROM {s}tree_sums s WHERE s.timeline_id = t.id) "
                "FROM {s}timelines t WHERE NOT EXISTS (SELECT 1 FROM {s}tombstones d "
                "WHERE d.target_id = t.id AND d.kind = 'timeline' AND d.timeline_id = t.id) "
                "ORDER BY t.created_at %s, t.id %s LIMIT ? OFFSET ?"
            ),
            # a marked id by the id index, its children by a range read per timeline
            # (no parent index: it would cost every save a B-tree more)
            "holding_hidden": ("SELECT timeline_id FROM {s}checkpoints WHERE id{in} UNION "
                               "SELECT timeline_id FROM {s}checkpoints WHERE "
                               "timeline_id{in} AND parent_id{in}"),
            "checkpoint_counts": ("SELECT timeline_id, sum(n) FROM {s}tree_sums WHERE "
                                  "timeline_id{in} GROUP BY timeline_id"),
            "page_total": (
                "SELECT (SELECT sum(n) FROM {s}tree_sums WHERE timeline_id = ''), "
                "(SELECT count(DISTINCT d.target_id) FROM {s}tombstones d "
                "JOIN {s}timelines t ON t.id = d.target_id "
                "WHERE d.kind = 'timeline' AND d.timeline_id = d.target_id)"
            ),
            "stored_digests": "SELECT id, digest FROM {s}%s WHERE id{in}",
            "insert_output": "INSERT INTO {s}outputs (hash, data) VALUES (?, ?) "
                             "ON CONFLICT (hash) DO NOTHING",
            "insert_ref": "INSERT INTO {s}output_refs (hash, owner) VALUES (?, ?)",
            "add_sums": (
                "INSERT INTO {s}tree_sums AS t (timeline_id, shard, n, x) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (timeline_id, shard) DO UPDATE SET n = t.n + excluded.n, "
                "x = {xor:t.x,excluded.x}"
            ),
            "guard": "SELECT 1 FROM {s}tombstones WHERE timeline_id = ? AND NOT (id{in})",
            "purged_guard": "SELECT 1 FROM {s}purged WHERE id{in}",
            "guard_none": "SELECT 1 FROM {s}tombstones WHERE timeline_id = ? LIMIT 1",
        }
        self._inserts = {
            kind: f"INSERT INTO {{s}}{codec.table} ({codec.columns}) VALUES "
                  f"({', '.join('?' for _ in codec.names)})"
            for kind, codec in self.codecs.items()
        }

    @functools.cached_property
    def runs(self) -> RunTables:
        """Stage runs, their parts and the memo: tables of this catalog (``runs``)."""
        from .runs import RunTables

        return RunTables(self)

    # -- helpers ----------------------------------------------------------------------------

    def describe(self) -> str:
        return self.engine.describe()

    def __repr__(self) -> str:
        return f"<SqlCatalog {self.engine.describe()}>"

    def close(self) -> None:
        self.engine.close()

    def _rows(self, name: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.engine.query(self._q.get(name, name), params)

    def _ids(self, ids: Iterable[str]) -> list[str]:
        wanted = sorted({i for i in ids if isinstance(i, str)})
        return wanted

    def _records(self, kind: str, rows: Iterable[tuple[Any, ...]]) -> list[Any]:
        return self.codecs[kind].records(
            rows if isinstance(rows, list) else list(rows),
            self._load_values if kind == "checkpoint" else None, self.engine.describe())

    def _list(self, name: str, ids: Iterable[str]) -> list[tuple[Any, ...]]:
        wanted = self._ids(ids)
        if not wanted:
            return []
        if len(wanted) == 1:  # a plain `= ?` reads one key without a list to unpack
            one = self._one.get(name)
            if one is None:
                statement = self._q.get(name, name)
                one = statement.replace("{in}", " = ?") if statement.count("{in}") == 1 else ""
                self._one[name] = one
            if one:
                return self.engine.query(one, (wanted[0],))
        return self._rows(name, (self.dialect.list_param(wanted),))

    # -- reads ------------------------------------------------------------------------------

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        if ids is not None:
            wanted = set(self._ids(ids))
            found = self._records("timeline", self._list("timelines", wanted))
            return self._all_found("timelines", wanted, found)
        rows, sums = self.engine.snapshot([(self._q["all_timelines"], ()),
                                           (self._q["sums"], (_ALL_TIMELINES,))])
        found = self._records("timeline", rows)
        self._check_sums("the timelines table", rows, sums)
        return found

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        wanted = set(self._ids(ids))
        found = self._records("checkpoint", self._list("checkpoints", wanted))
        return self._all_found("checkpoints", wanted, found)

    def _all_found(self, table: str, wanted: set[str], found: list[Any]) -> list[Any]:
        """found, the records of wanted ids read by id; on SQLite an id not found is
        looked up again through the table's tail index, a B-tree of its own: a damaged
        entry of the id index (or of the table's key) reads as a missing record without
        an error, and a record is never reported absent while it is stored."""
        found = [r for r in found if r.id in wanted]
        if self._checks_indexes and len(found) < len(wanted):
            self._truly_absent(table, wanted.difference(r.id for r in found))
        return found

    def _truly_absent(self, table: str, absent: set[str]) -> None:
        """SQLite: CorruptDataError if the tail index holds any of these ids, which a
        lookup by id did not find (see _all_found)."""
        tails = sorted({id_tail(i) for i in absent})
        there = {row[0] for row in self._rows(
            f"SELECT id FROM {{s}}{table} WHERE tail{{in}}", (self.dialect.list_param(tails),))}
        if there & absent:
            raise CorruptDataError(
                f"{table} {', '.join(sorted(there & absent)[:3])} of {self.describe()} "
                "cannot be read by id, though the table holds them: the catalog is damaged "
                "(run `localckpt verify`; restore the store or re-sync it from another)")

    def peek_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        with self._peek_lock:
            hit = self._peeked.get(checkpoint_id)
            if hit is not None:
                self._peeked.move_to_end(checkpoint_id)
                return hit
        found = self.checkpoints([checkpoint_id])
        if found:
            self._remember(found)
        return found[0] if found else None

    def _remember(self, records: Iterable[Checkpoint]) -> None:
        """Keep records this catalog wrote or read for peek_checkpoint (immutable, and a
        purge clears them; peek's callers read the fields, not the outputs)."""
        with self._peek_lock:
            for c in records:
                self._peeked[c.id] = c
                self._peeked.move_to_end(c.id)
            while len(self._peeked) > _PEEKED:
                self._peeked.popitem(last=False)

    def forget(self) -> None:
        """Drop what this catalog remembers of earlier reads (checkpoints peeked,
        timelines whose rows were all checked): later reads check the database again,
        as a new process would."""
        with self._peek_lock:
            self._peeked.clear()
        self._verified.clear()

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        """Only the rows naming the parent are made records, but a row whose parent link
        was damaged would not name it, and only its digest tells (the sums are of the
        stored digests, which a damaged column leaves as they were): so the first read of
        a timeline's children checks every row of it (digests and sums, without making
        records), and later reads only that its sums have not changed since. When that
        first read is sure to be needed (this catalog has checked no timeline yet, or it
        holds the parent and has not checked its timeline since it last wrote to it), it
        is the only read: the timeline's rows and sums, in one snapshot."""
        codec = self.codecs["checkpoint"]
        at = codec.column("parent_id")
        with self._peek_lock:
            peeked = self._peeked.get(checkpoint_id)
        if peeked is not None and peeked.timeline_id not in self._verified:
            family, _ = self._read_tree(peeked.timeline_id, records=False)
        elif not self._verified:
            family, sums = self.engine.snapshot([
                (self._q["family"], (checkpoint_id,)),
                (self._q["family_sums"], (checkpoint_id,))])
            timeline_id = sums[0][0] if sums else \
                family[0][codec.column("timeline_id")] if family else None
            if timeline_id is None:  # the parent was not found by id
                if self._checks_indexes:
                    self._truly_absent("checkpoints", {checkpoint_id})
                return []
            self._check_tree(timeline_id, family, sums, records=False)
        else:
            family = self._checked_children(checkpoint_id)
        found = self._records("checkpoint", [r for r in family if r[at] == checkpoint_id])
        return [c for c in found if c.parent_id == checkpoint_id]

    def _checked_children(self, checkpoint_id: str) -> list[tuple[Any, ...]]:
        """The rows of a checkpoint's children, read with its timeline's sums; every row
        of the timeline (rows of other parents too) when the sums are not those this
        catalog last checked it at."""
        rows, sums = self.engine.snapshot([
            (self._q["children"], (checkpoint_id, checkpoint_id)),
            (self._q["family_sums"], (checkpoint_id,))])
        codec = self.codecs["checkpoint"]
        timeline_id = sums[0][0] if sums else rows[0][codec.column("timeline_id")] if rows \
            else None  # rows without sums: the check below reports the damage
        if timeline_id is None and self._checks_indexes:  # the parent was not found by id
            self._truly_absent("checkpoints", {checkpoint_id})
        if timeline_id is not None and self._verified.get(timeline_id) != _totals(sums):
            rows, _ = self._read_tree(timeline_id, records=False)
        return rows

    def _read_tree(self, timeline_id: str, records: bool
                   ) -> tuple[list[tuple[Any, ...]], list[Checkpoint]]:
        """Every checkpoint row of a timeline, checked (see _check_tree)."""
        rows, sums = self.engine.snapshot([(self._q["tree"], (timeline_id,)),
                                           (self._q["sums"], (timeline_id,))])
        return rows, self._check_tree(timeline_id, rows, sums, records)

    def _check_tree(self, timeline_id: str, rows: list[tuple[Any, ...]],
                    sums: Sequence[tuple[Any, ...]], records: bool) -> list[Checkpoint]:
        """The rows of a timeline's tree, each checked against its digest (made into
        records when asked, else checked from its columns) and all of them against the
        timeline's sums (rows ending n, x), which are remembered as checked (see
        children)."""
        codec = self.codecs["checkpoint"]
        found: list[Checkpoint] = []
        if records:
            found = self._records("checkpoint", rows)
            owners = {c.timeline_id for c in found}
        else:
            where, at = self.engine.describe(), codec.column("timeline_id")
            for row in rows:
                codec.check(row, where)
            owners = {row[at] for row in rows}
        if owners - {timeline_id}:
            raise CorruptDataError(f"the tree of timeline {timeline_id} in {self.describe()} "
                                   "holds rows of another timeline; the catalog is damaged")
        self._check_sums(f"the tree of timeline {timeline_id}", rows, sums)
        self._remember_checked(timeline_id, sums)
        return found

    def _remember_checked(self, timeline_id: str, sums: Sequence[tuple[Any, ...]]) -> None:
        if len(self._verified) >= _VERIFIED:
            self._verified.clear()
        self._verified[timeline_id] = _totals(sums)

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        rows = self._rows("lineage", (checkpoint_id,))
        rows.sort(key=_depth, reverse=True)  # root first (they come by depth: a reversal)
        chain = self._records("checkpoint", rows)
        if not chain:
            if self._checks_indexes:  # not found by id: absent, or the id index damaged
                self._truly_absent("checkpoints", {checkpoint_id})
            return []
        if len({c.id for c in chain}) != len(chain) or len(chain) >= 1_000_000:
            raise CorruptDataError(
                f"the parent chain of checkpoint {checkpoint_id} in {self.describe()} loops; "
                "the catalog is damaged (restore it or re-sync it from another store)")
        expected = None
        for c in chain:
            if c.parent_id != expected:
                raise CorruptDataError(  # first: its parent is not in its timeline's rows
                    f"checkpoint {c.parent_id if expected is None else expected} in "
                    f"{self.describe()} is missing from its chain (its child "
                    f"{c.id} names parent {c.parent_id}); the catalog is damaged (run "
                    "`localckpt verify`)")
            expected = c.id
        if chain[-1].id != checkpoint_id:
            raise CorruptDataError(f"lineage of {checkpoint_id} in {self.describe()} does not "
                                   "end at it; the catalog is damaged")
        return chain

    def tree(self, timeline_id: str) -> list[Checkpoint]:
        return self._read_tree(timeline_id, records=True)[1]

    def _check_sums(self, what: str, rows: Sequence[tuple[Any, ...]],
                    sums: Sequence[tuple[Any, ...]]) -> None:
        n, x = _totals(sums)
        if n != len(rows) or x != _xor(map(_digest_column, rows)):
            raise CorruptDataError(
                f"{what} in {self.describe()} has {len(rows)} rows where its sums say {n} (or "
                "their digests differ): a row is missing or damaged; the catalog is damaged "
                "(run `localckpt verify`)")

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for h, data in self._list("outputs", hashes):
            data = bytes(data)
            if content_hash(data) != h:
                raise CorruptDataError(
                    f"stage output {h} in {self.describe()} does not match its hash; the "
                    "catalog is damaged (restore it or re-sync it from another store)")
            found[h] = data
        return found

    def load_values(self, hashes: Iterable[str]) -> dict[str, Any]:
        try:
            return {h: load_json(data) for h, data in self.outputs(hashes).items()}
        except ValueError as exc:
            raise CorruptDataError(
                f"a stage output in {self.describe()} is not valid JSON ({exc}); the catalog "
                "is damaged (restore it or re-sync it from another store)") from None

    def _load_values(self, hashes: list[str]) -> dict[str, Any]:
        """Loader of LazyOutputs: verified like every other read of an output."""
        found = self.load_values(hashes)
        if missing := set(hashes) - found.keys():
            raise CorruptDataError(
                f"{self.describe()} lacks stage output(s) {sorted(missing)} that checkpoints "
                "refer to; the catalog is damaged (re-sync it from another store)")
        return found

    def missing_outputs(self, hashes: Iterable[str]) -> set[str]:
        wanted = set(self._ids(hashes))
        return wanted - {r[0] for r in self._list("missing", wanted)}

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        return self._by_timeline("tombstone", timeline_ids)

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        return self._by_timeline("tag", timeline_ids)

    def with_ids(self, kind: str, ids: Iterable[str]) -> list[Any]:
        """Read through the primary key: the rows of those ids only, each checked
        against its digest (a row an index leaves out is one the commit of the same
        records would not find either: it compares through the same key)."""
        if kind not in ("tombstone", "tag"):
            raise InvalidInputError(f"with_ids reads tombstones or tags, not {kind!r}")
        found = self._records(kind, self._list(f"{self.codecs[kind].table}_by_id", ids))
        return sorted(found, key=_record_id)

    def tags_named(self, name: str) -> list[Tag]:
        """The name's rows read through the name index and checked against the name's
        sums (``TAG_NAMES``) in one snapshot: a row the index leaves out, or gives for
        another name, is CorruptDataError, as in a read of a timeline's tags."""
        return self.tags_named_in([name])[name]

    def tags_named_in(self, names: Iterable[str]) -> dict[str, list[Tag]]:
        """tags_named of many names: per batch of names (one name: by ``= ?``), their
        rows through the name index and their sums in one snapshot, each name's rows
        checked against its sums."""
        wanted = list(names)
        for n in wanted:
            if not isinstance(n, str):
                raise InvalidInputError(f"a tag name must be a str, not {type(n).__name__}")
        wanted = sorted(set(wanted))
        if not self._name_sums:  # an older catalog opened read-only: no sums of names
            every = self.tags(None)
            return {n: [g for g in every if g.name == n] for n in wanted}
        found: dict[str, list[Tag]] = {n: [] for n in wanted}
        # no tag holds a NUL (schema.validate), and PostgreSQL's text cannot
        asked = [n for n in wanted if "\x00" not in n]
        lp = self.dialect.list_param
        for i in range(0, len(asked), _NAMES_AT_ONCE):
            batch = asked[i:i + _NAMES_AT_ONCE]
            if len(batch) == 1:
                reads = [(self._q["tags_named"], (batch[0],)),
                         (self._q["sums_of"].replace("{in}", " = ?"), (TAG_NAMES + batch[0],))]
            else:
                reads = [(self._q["tags_named_in"], (lp(batch),)),
                         (self._q["sums_of"], (lp([TAG_NAMES + n for n in batch]),))]
            rows, sums = self.engine.snapshot(reads)
            by_name: dict[str, list[tuple[Any, ...]]] = {n: [] for n in batch}
            for g, row in zip(self._records("tag", rows), rows, strict=True):
                if g.name not in by_name:
                    raise CorruptDataError(
                        f"the name index of table tags of {self.describe()} gives a tag of "
                        f"a name not asked for ({g.name!r}): the catalog is damaged (run "
                        "`localckpt verify`; restore the store or re-sync it from another)")
                by_name[g.name].append(row)
                found[g.name].append(g)
            sums_by: dict[str, list[tuple[Any, ...]]] = {n: [] for n in batch}
            for row in sums:
                sums_by[str(row[0])[len(TAG_NAMES):]].append(tuple(row))
            for n in batch:
                self._check_sums(f"the tags named {n!r}", by_name[n], sums_by[n])
        return found

    def tombstones_targeting(self, target_ids: Iterable[str]) -> list[Tombstone]:
        """Catalog.tombstones_targeting through the index on target_id, and the ids gc
        purged (table ``purged``: the checkpoints below a pruned one, those of a deleted
        timeline, their tags), in one snapshot: for a purged id, the tombstone that
        deleted it, aimed at that id (``target_id`` the id, ``kind`` its kind; the
        tombstone's own id, timeline and time). The timelines of the tombstones found
        are read and checked against their sums, as any read of a timeline's tombstones
        is (the default read and checked every tombstone of the store, for each
        transfer). A tombstone a damaged target index leaves out is not noticed here:
        verify's integrity check reports the index."""
        wanted = self._ids(target_ids)
        if not wanted:
            return []
        if not self._second_paths:  # an older catalog opened read-only: no sums
            return super().tombstones_targeting(wanted)
        param = (self.dialect.list_param(wanted),)
        if self._version >= PURGED_IDS:
            filed, purged = self.engine.snapshot([(self._q["tombstone_timelines"], param),
                                                  (self._q["purged"], param)])
        else:  # an older catalog opened read-only: it remembers no purged id
            filed, purged = self._rows("tombstone_timelines", param), []
        timelines = {r[0] for r in filed} | {r[2] for r in purged}
        targets = set(wanted)
        marks = self._checked({"tombstone": timelines})["tombstone"]
        found = [x for x in marks if x.target_id in targets]
        by_id = {x.id: x for x in marks}
        direct = {(x.id, x.target_id) for x in found}
        for pid, kind, tid, xid in purged:
            if (xid, pid) in direct:  # a tombstone's own target: found already
                continue
            x = by_id.get(xid)
            if x is None or x.timeline_id != tid:
                raise CorruptDataError(
                    f"{kind} {pid}, purged from timeline {tid} of {self.describe()}, names "
                    f"tombstone {xid}, which that timeline does not hold: the catalog is "
                    "damaged (run `localckpt verify`; restore the store or re-sync it from "
                    "another)")
            found.append(Tombstone(x.id, pid, kind, tid, x.created_at))
        return sorted(found, key=lambda x: (x.id, x.target_id))

    def _by_timeline(self, kind: str, timeline_ids: Iterable[str] | None) -> list[Any]:
        """The tombstones or tags of some timelines (all when None), checked against each
        timeline's sums of that kind, read in the same snapshot: a tombstone a damaged
        index leaves out would bring back what it deletes, and a tag would vanish."""
        table = self.codecs[kind].table
        if not self._second_paths:  # an older catalog opened read-only: no sums
            return self._records(kind, self._rows(f"all_{table}") if timeline_ids is None
                                 else self._list(table, timeline_ids))
        if timeline_ids is not None:
            return self._checked({kind: timeline_ids})[kind]
        prefix = SUMS_OF[kind]
        rows, sums = self.engine.snapshot([
            (self._q[f"all_{table}"], ()),
            (self._q["sums_range"], (prefix, prefix[:-1] + ";"))])  # ';' follows ':'
        return self._checked_rows(kind, rows, sums)

    def _checked(self, wanted: dict[str, Iterable[str]]) -> dict[str, list[Any]]:
        """kind -> the records of that kind (tombstones, tags) of some timelines, every
        kind read in one snapshot with the timelines' sums of it and checked against them
        (see _by_timeline). Needs the sums (_second_paths)."""
        queries: list[tuple[str, Sequence[Any]]] = []
        kinds = []
        for kind, timeline_ids in wanted.items():
            ids = self._ids(timeline_ids)
            if not ids:
                continue
            kinds.append(kind)
            queries += [(self._q[self.codecs[kind].table], (self.dialect.list_param(ids),)),
                        (self._q["sums_of"],
                         (self.dialect.list_param([SUMS_OF[kind] + t for t in ids]),))]
        found: dict[str, list[Any]] = {kind: [] for kind in wanted}
        if not queries:
            return found
        got = self.engine.snapshot(queries)
        for i, kind in enumerate(kinds):
            found[kind] = self._checked_rows(kind, got[2 * i], got[2 * i + 1])
        return found

    def _checked_rows(self, kind: str, rows: Sequence[tuple[Any, ...]],
                      sums: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The records of rows (tombstones or tags), each timeline's rows checked against
        its sums rows (key, n, x) of that kind."""
        table, prefix = self.codecs[kind].table, SUMS_OF[kind]
        found = self._records(kind, rows)
        held: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for record, row in zip(found, rows, strict=True):
            held[record.timeline_id].append(row)
        said: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in sums:
            said[row[0][len(prefix):]].append(row)
        for tid in sorted(held.keys() | said.keys()):
            self._check_sums(f"the {table} of timeline {tid}", held[tid], said[tid])
        return found

    def deleted(self, target_ids: Iterable[str], kind: str | None = None) -> set[str]:
        """Catalog.deleted's contract, one query per kind asked."""
        if kind is not None and kind not in _DELETED:
            raise ValueError(f"deleted kind must be one of {tuple(_DELETED)} or None, not "
                             f"{kind!r}")
        wanted = self._ids(target_ids)
        if not wanted:
            return set()
        kinds = tuple(_DELETED) if kind is None else (kind,)
        if self._second_path_to_deleted:  # not one index's answer (see _deleted_timelines)
            found = self._deleted_timelines(wanted) if "timeline" in kinds else set()
            others = [k for k in kinds if k != "timeline"]  # from the checked tombstones
            return found | self._deleted_by_tombstones(set(wanted), others) if others \
                else found
        found = set()
        for name in kinds:
            found.update(r[0] for r in self._rows(_DELETED[name],
                                                  (self.dialect.list_param(wanted),)))
        return found

    def _deleted_by_tombstones(self, wanted: set[str], kinds: Sequence[str]) -> set[str]:
        """Catalog._deleted_by_tombstones (deleted() on SQLite, for checkpoints and tags),
        reading only the timelines the ids need: a checkpoint's timeline is its row's
        (found by id, or through the tail index: checkpoints()); a tag's is found through
        the tags' key and through the tombstones that target it (two indexes, read in one
        snapshot: a damaged entry of one still finds it), and that timeline's tags are
        read with its tombstones, both checked against their sums."""
        if not wanted:
            return set()
        owner: dict[tuple[str, str], str] = {}
        if "timeline" in kinds:
            owner.update({("timeline", i): i for i in wanted})
        if "checkpoint" in kinds:
            owner.update({("checkpoint", c.id): c.timeline_id for c in self.checkpoints(wanted)})
        tagged: set[str] = set()
        if "tag" in kinds:
            param = self.dialect.list_param(sorted(wanted))
            by_id, filed = self.engine.snapshot([
                (self._q["tags_by_id"], (param,)),
                (self._q["tag_tombstone_timelines"], (param,))])
            tagged = {g.timeline_id for g in self._records("tag", by_id)}
            tagged.update(r[0] for r in filed)
        timelines = set(owner.values()) | tagged
        if not timelines:
            return set()
        read = self._checked({"tombstone": timelines, "tag": tagged})
        owner.update({("tag", g.id): g.timeline_id for g in read["tag"] if g.id in wanted})
        return {x.target_id for x in read["tombstone"]
                if owner.get((x.kind, x.target_id)) == x.timeline_id}

    @functools.cached_property
    def _version(self) -> int:
        return version_of(self.engine)

    @property
    def _second_paths(self) -> bool:
        """Whether this catalog has the tombstone sums and (SQLite) the partial index of
        deleted timelines: a catalog of an older version opened read-only has not."""
        return self._version >= SECOND_PATHS

    @property
    def _name_sums(self) -> bool:
        """Whether this catalog has the sums of the tags of each name (see tags_named)."""
        return self._version >= NAME_SUMS

    @property
    def _second_path_to_deleted(self) -> bool:
        return self._checks_indexes and self._second_paths

    def _deleted_timelines(self, wanted: list[str]) -> set[str]:
        """The deleted timelines among wanted, read through the target_id index and
        through the partial index of timeline tombstones, in one snapshot: a damaged entry
        of either (or a damaged kind or timeline_id in a tombstone row) makes them
        disagree instead of bringing a deleted timeline back."""
        param = self.dialect.list_param(wanted)
        if len(wanted) > _PROBED_AT_MOST:
            rows = self._rows(_DELETED_TWICE_MANY, (param,))
            asked = set(wanted)
            rows = [r for r in rows if r[0] in asked]
        else:
            rows = self._rows(_DELETED_TWICE, (param, param))  # one statement: one snapshot
        found = {i for i, second in rows if not second}
        if found != {i for i, second in rows if second}:
            odd = sorted(found ^ {i for i, second in rows if second})
            raise CorruptDataError(
                f"the tombstones of {self.describe()} disagree on whether timeline "
                f"{', '.join(odd[:3])} is deleted (its tombstone row or an index entry is "
                "damaged): the catalog is damaged (run `localckpt verify`; restore the "
                "store or re-sync it from another)")
        return found

    def timelines_folding_to(self, ids: Iterable[str]) -> list[str]:
        given = set(self._ids(ids))
        if not given:
            return []
        rows = self._rows("folding_to", (self.dialect.list_param(sorted({i.lower()
                                                                        for i in given})),))
        return [r[0] for r in rows if r[0] not in given]

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        return self._find(kind, "id", prefix, limit)

    def find_short(self, kind: str, short: str, limit: int = 10) -> list[str]:
        return self._find(kind, "tail", short, limit)

    def short_neighbours(self, kind: str, ids: Sequence[str]
                         ) -> dict[str, tuple[str | None, str | None]]:
        table = _ID_TABLES.get(kind)
        if table is None:
            raise ValueError(f"kind must be 'timeline', 'checkpoint' or 'run', not {kind!r}")
        wanted = sorted(set(ids))
        if kind == "timeline" and (len(wanted) > _SEEKS or not self.dialect.seeks_ranges):
            # most of a store's timelines (a listing of them), or an engine whose range
            # reads are scans anyway: their tails in one ordered read
            tails = self.engine.query("SELECT id, tail FROM {s}timelines ORDER BY tail, id")
            at = {rid: i for i, (rid, _) in enumerate(tails)}
            return {rid: (tails[i - 1][1] if i > 0 else None,
                          tails[i + 1][1] if i + 1 < len(tails) else None)
                    for rid in ids if (i := at.get(rid)) is not None}
        # two index seeks per id, in one statement per batch
        query = (f"SELECT w.id, (SELECT t.tail FROM {{s}}{table} t WHERE t.tail <= w.tail AND "
                 f"t.id <> w.id ORDER BY t.tail DESC LIMIT 1), (SELECT t.tail FROM {{s}}{table} "
                 "t WHERE t.tail >= w.tail AND t.id <> w.id ORDER BY t.tail LIMIT 1) "
                 f"FROM {{s}}{table} w WHERE w.id{{in}}")
        found: dict[str, tuple[str | None, str | None]] = {}
        for i in range(0, len(wanted), _SEEKS):
            lp = self.dialect.list_param(wanted[i:i + _SEEKS])
            found.update((r[0], (r[1], r[2])) for r in self.engine.query(query, (lp,)))
        return found

    def _find(self, kind: str, column: str, prefix: str, limit: int) -> list[str]:
        tables = _ID_TABLES
        if kind not in tables:
            raise ValueError(f"kind must be 'timeline', 'checkpoint' or 'run', not {kind!r}")
        if not isinstance(prefix, str):
            raise InvalidInputError(f"an id prefix must be a str, not {type(prefix).__name__}")
        # a key range, not LIKE: ids are ASCII tokens and '~' sorts after all of them
        query = (f"SELECT id FROM {{s}}{tables[kind]} WHERE {column} >= ? AND {column} < ? "
                 "ORDER BY id LIMIT ?")
        params = (prefix, prefix + "~", int(limit))
        if not self._checks_indexes or limit > _CROSS_CHECKED:
            return [r[0] for r in self.engine.query(query, params)]
        # The ids come from the index alone. A damaged entry would give an id no row has
        # (SQLite has no checksum on a page): the same range read through the rows (the
        # digest is in no index) must give the same ids.
        through_rows = (f"SELECT id FROM {{s}}{tables[kind]} WHERE digest IS NOT NULL AND "
                        f"{column} >= ? AND {column} < ? ORDER BY id LIMIT ?")
        by_index, by_rows = self.engine.snapshot([(query, params), (through_rows, params)])
        if by_index != by_rows:
            odd = sorted({r[0] for r in by_index} ^ {r[0] for r in by_rows})
            raise CorruptDataError(
                f"the {column} index of table {tables[kind]} of {self.describe()} and the "
                f"table's rows disagree ({', '.join(map(repr, odd[:3]))}): the catalog is "
                "damaged (run `localckpt verify`; restore the store or re-sync it from "
                "another)")
        return [r[0] for r in by_index]

    def timeline_page(self, offset: int, limit: int, newest_first: bool = False,
                      ) -> tuple[list[Timeline], dict[str, int], int]:
        direction = "DESC" if newest_first else "ASC"
        page = self._q["page"] % (direction, direction)
        rows = self._rows(page, (int(limit), int(offset)))
        found = self._records("timeline", [row[:-1] for row in rows])
        if found and self._second_path_to_deleted:  # the page left deleted ones out
            back = self._deleted_timelines([t.id for t in found])
            if back:
                raise CorruptDataError(
                    f"the timelines page of {self.describe()} lists deleted timeline "
                    f"{', '.join(sorted(back)[:3])} (an index entry of its tombstone is "
                    "damaged): the catalog is damaged (run `localckpt verify`; restore the "
                    "store or re-sync it from another)")
        counts = {t.id: int(row[-1] or 0) for t, row in zip(found, rows, strict=True)}
        (stored, gone), = self._rows("page_total")
        return found, counts, int(stored or 0) - int(gone or 0)

    def checkpoint_counts(self, timeline_ids: Iterable[str]) -> dict[str, int]:
        """From the per-timeline sums kept with every write (tree_sums): no tree read."""
        wanted = self._ids(timeline_ids)
        rows = self._list("checkpoint_counts", wanted)
        counts = dict.fromkeys(wanted, 0)
        counts.update({tid: int(n or 0) for tid, n in rows})
        return counts

    def holding_hidden(self, marked: Mapping[str, Collection[str]]) -> set[str]:
        """One query over the marked ids and the rows of the marked timelines (read in
        the engine, none decoded), in place of a tree read of each."""
        marks = {tid: self._ids(ids) for tid, ids in marked.items()}
        tids = self._ids(tid for tid, ids in marks.items() if ids)
        if not tids:
            return set()
        lp = self.dialect.list_param
        ids = lp(self._ids(i for tid in tids for i in marks[tid]))
        rows = self._rows("holding_hidden", (ids, lp(tids), ids))
        return {tid for (tid,) in rows} & set(tids)

    # -- writes -----------------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        self._commit(batch, None)

    def commit_with(self, batch: Batch, first: Callable[[Tx], T],
                    guard: tuple[str, Iterable[str]] | None = None) -> T:
        """first(tx), then the records of batch, in one transaction: all or nothing (a
        deletion closes the stage runs it orphans: localckpt.runs.closing; a run's
        commit holds its run while it saves the checkpoint). The batch's records are
        new (fresh ids), so there is no slow path for stored ones. guard: (timeline id,
        tombstone ids seen), as commit_guarded's."""
        if self.read_only:
            raise BackendUnavailableError(self.read_only)
        seen = None if guard is None else (guard[0], sorted(set(guard[1])))
        try:
            with self.engine.transaction() as tx:
                result = first(tx)
                tx.run(self._steps(batch, seen, batch.checkpoints, batch.timelines))
        except Refused as exc:
            raise self._refused(exc, seen, batch) from None
        for tid in {c.timeline_id for c in batch.checkpoints}:  # their sums changed
            self._verified.pop(tid, None)
        self._remember(batch.checkpoints)
        return result

    def commit_guarded(self, batch: Batch, timeline_id: str, seen: Iterable[str]) -> None:
        """The guard is a step of the commit's own transaction: no extra round trip."""
        self._commit(batch, (timeline_id, sorted(set(seen))))

    def _commit(self, batch: Batch, guard: tuple[str, list[str]] | None) -> None:
        if not batch:
            return
        if self.read_only:
            raise BackendUnavailableError(self.read_only)
        for kind, records in (("timeline", batch.timelines), ("checkpoint", batch.checkpoints),
                              ("tombstone", batch.tombstones), ("tag", batch.tags)):
            if len(records) > 1 and len({r.id for r in records}) != len(records):
                self._one_per_id(kind, records)
        try:
            try:
                if (guard is not None and len(batch.checkpoints) == 1 and not batch.timelines
                        and not batch.tombstones and not batch.tags
                        and len(batch.outputs) <= 1):
                    steps = self._save_steps(batch, guard)
                else:
                    steps = self._steps(batch, guard, batch.checkpoints, batch.timelines)
                self.engine.write(steps)
            except Duplicate:
                self._commit_slowly(batch, guard)
        except Refused as exc:
            raise self._refused(exc, guard, batch) from None
        for tid in {c.timeline_id for c in batch.checkpoints}:  # their sums changed
            self._verified.pop(tid, None)
        self._remember(batch.checkpoints)

    def _one_per_id(self, kind: str, records: Sequence[Any]) -> None:
        seen: dict[str, Any] = {}
        for r in records:
            if seen.setdefault(r.id, r) != r:
                raise ConflictError(f"the batch holds two different {kind} records with id "
                                    f"{r.id}; nothing was written")

    def _refused(self, exc: Refused, guard: tuple[str, list[str]] | None,
                 batch: Batch) -> Exception:
        if exc.code == _TOMBSTONES_CHANGED and guard is not None:
            return TombstonesChanged(f"timeline {guard[0]} has new tombstones; nothing was "
                                     "written")
        if exc.code == _PURGED:  # which record, said as a transfer's check says it
            from ...admit import check_undeleted

            records: list[Checkpoint | Tag] = [*batch.checkpoints, *batch.tags]
            try:
                check_undeleted(lambda said: CorruptDataError(
                    f"{said} (purged by gc from {self.describe()}): nothing was written"),
                    records, self.tombstones_targeting(r.id for r in records))
            except CorruptDataError as refused:
                return refused
            return CorruptDataError(f"a record of this batch has the id of a record gc "
                                    f"purged from {self.describe()}; a deleted record never "
                                    "comes back: nothing was written")
        return exc

    def _steps(self, batch: Batch, guard: tuple[str, list[str]] | None,
               checkpoints: Sequence[Checkpoint], timelines: Sequence[Timeline],
               tombstones: Sequence[Tombstone] | None = None,
               tags: Sequence[Tag] | None = None,
               refs: list[tuple[str, str]] | None = None) -> list[Step]:
        """The statements that write the new records of batch (plain INSERTs). refs: the
        output references of the batch's checkpoints, when computed already (a
        transaction must not wait for another connection to look up parents)."""
        e = self.engine
        steps: list[Step] = []
        if guard is not None:
            steps.append(Step(e.sql(self._q["guard"]),
                              (guard[0], self.dialect.list_param(guard[1])),
                              refuse=_REFUSAL) if guard[1] else
                         Step(e.sql(self._q["guard_none"]), (guard[0],), refuse=_REFUSAL))
        else:  # see _purged_guard
            steps.extend(self._purged_guard(checkpoints,
                                            batch.tags if tags is None else tags))
        if batch.outputs:
            steps.append(_step(e.sql(self._q["insert_output"]),
                               [(h, d if type(d) is bytes else bytes(d))
                                for h, d in sorted(batch.outputs.items())]))
        groups: tuple[tuple[str, Sequence[Any]], ...] = (
            ("timeline", timelines), ("checkpoint", checkpoints),
            ("tombstone", batch.tombstones if tombstones is None else tombstones),
            ("tag", batch.tags if tags is None else tags))
        sums: dict[tuple[str, int], list[int]] = {}
        shards = self.dialect.sum_shards
        for kind, records in groups:
            if not records:
                continue
            codec = self.codecs[kind]
            # rows in key order: no deadlocks
            ordered = sorted(records, key=_record_id) if len(records) > 1 else records
            rows = [codec.row(r) for r in ordered]
            steps.append(_step(e.sql(self._inserts[kind]), rows))
            prefix = SUMS_OF.get(kind, "")
            for r, row in zip(ordered, rows, strict=True):
                d = row[-1]
                shard = d % shards
                keys = [(_ALL_TIMELINES if kind == "timeline" else prefix + r.timeline_id,
                         shard)]
                if kind == "tag":  # and the tags of its name (see tags_named)
                    keys.append((TAG_NAMES + r.name, shard))
                for key in keys:
                    acc = sums.get(key)
                    if acc is None:
                        sums[key] = [1, d]
                    else:
                        acc[0] += 1
                        acc[1] ^= d
        if checkpoints:
            if refs is None:
                refs = self._refs(checkpoints)
            else:
                new = {c.id for c in checkpoints}
                refs = [r for r in refs if r[1] in new]
            if refs:
                steps.append(_step(e.sql(self._q["insert_ref"]), refs))
        if sums:
            steps.append(_step(e.sql(self._q["add_sums"]),
                               [(t, s, n, x) for (t, s), (n, x) in sorted(sums.items())]))
        return steps

    def _save_steps(self, batch: Batch, guard: tuple[str, list[str]]) -> list[Step]:
        """The steps of a save (one checkpoint, at most one output, guarded): what _steps
        makes of it, without its loops over record kinds, groups and sums (a save is
        CPU-bound, and this is its shape; tests/test_save_cost.py holds the two equal)."""
        q = self._save_sql
        if q is None:
            e = self.engine
            q = self._save_sql = (*[e.sql(self._q[name]) for name in (
                "guard", "guard_none", "insert_output", "insert_ref", "add_sums")],
                e.sql(self._inserts["checkpoint"]))
        c = batch.checkpoints[0]
        steps = [Step(q[0], (guard[0], self.dialect.list_param(guard[1])), refuse=_REFUSAL)
                 if guard[1] else Step(q[1], (guard[0],), refuse=_REFUSAL)]
        for h, d in batch.outputs.items():
            steps.append(Step(q[2], (h, d if type(d) is bytes else bytes(d))))
        row = self.codecs["checkpoint"].row(c)
        steps.append(Step(q[5], row))
        refs = self._refs((c,))
        if refs:
            steps.append(_step(q[3], refs))
        d = row[-1]
        steps.append(Step(q[4], (c.timeline_id, d % self.dialect.sum_shards, 1, d)))
        return steps

    def _purged_guard(self, checkpoints: Sequence[Checkpoint], tags: Sequence[Tag]
                      ) -> list[Step]:
        """The step that refuses (Refused _PURGED) a write of a checkpoint or tag whose id
        gc purged (table ``purged``): a deleted id never comes back, also in the timeline
        it was deleted from, where no tombstone names it any more (a checkpoint below a
        pruned one, re-parented under a live one by a forged source). Transfers ask
        ``tombstones_targeting`` first and refuse it in another timeline; this is the
        check every other write meets, in the write's own transaction. Guarded commits
        (saves and merges: fresh ids made here) skip it, so a save costs no more."""
        ids = [r.id for r in checkpoints] + [g.id for g in tags]
        if not ids or self._version < PURGED_IDS:
            return []
        return [Step(self.engine.sql(self._q["purged_guard"]),
                     (self.dialect.list_param(sorted(set(ids))),), refuse=_PURGED_REFUSAL)]

    def _refs(self, checkpoints: Sequence[Checkpoint]) -> list[tuple[str, str]]:
        """(hash, checkpoint id) for every output a checkpoint adds (see schema)."""
        by_id = {c.id: c for c in checkpoints}
        parents: dict[str, Mapping[str, str] | None] = {}  # read, never changed
        unknown = []
        for c in checkpoints:
            pid = c.parent_id
            if pid is None or pid in parents:
                continue
            if pid in by_id:
                parents[pid] = by_id[pid].stage_hashes
                continue
            with self._peek_lock:
                hit = self._peeked.get(pid)
            if hit is not None:
                parents[pid] = hit.stage_hashes
            else:
                unknown.append(pid)
        if unknown:
            for p in self.checkpoints(unknown):
                parents[p.id] = p.stage_hashes
            absent = sorted(set(unknown) - parents.keys())
            if absent:  # PostgreSQL's foreign key says the same; SQLite and DuckDB have none
                raise InvalidInputError(
                    f"a checkpoint names parent {', '.join(absent)}, which neither the batch "
                    f"nor {self.describe()} holds; nothing was written (commit a parent "
                    "before its children, or in the same batch)")
        if len(checkpoints) == 1:  # a save: its one checkpoint's new outputs
            c = checkpoints[0]
            added = _added(c, parents.get(c.parent_id) if c.parent_id is not None else None)
            return [(h, c.id) for h in sorted(added)]
        refs: set[tuple[str, str]] = set()
        for c in checkpoints:
            parent = parents.get(c.parent_id) if c.parent_id is not None else None
            refs.update((h, c.id) for h in _added(c, parent))
        return sorted(refs)

    def _commit_slowly(self, batch: Batch, guard: tuple[str, list[str]] | None) -> None:
        """Some id is stored already: skip equal records, refuse differing ones, write the
        rest, in one transaction (again if another writer raced us)."""
        refs = self._refs(batch.checkpoints)
        for _ in range(_SLOW_RETRIES):
            try:
                with self.engine.transaction() as tx:
                    if guard is not None and tx.query(self.engine.sql(self._q["guard"]), (
                            guard[0], self.dialect.list_param(guard[1]))):
                        raise TombstonesChanged(f"timeline {guard[0]} has new tombstones; "
                                                "nothing was written")
                    new: dict[str, list[Any]] = {}
                    for kind, records in (("timeline", batch.timelines),
                                          ("checkpoint", batch.checkpoints),
                                          ("tombstone", batch.tombstones),
                                          ("tag", batch.tags)):
                        new[kind] = self._unstored(tx, kind, records)
                    tx.run(self._steps(batch, None, new["checkpoint"], new["timeline"],
                                       new["tombstone"], new["tag"], refs))
                return
            except Duplicate:
                continue
        raise ConflictError(f"{self.describe()}: other writers kept inserting the records of "
                            "this batch; nothing was written, try again")

    def _unstored(self, tx: Any, kind: str, records: Sequence[Any]) -> list[Any]:
        """The records not stored yet; ConflictError when a stored one differs."""
        if not records:
            return []
        codec = self.codecs[kind]
        ids = sorted({r.id for r in records})
        stored = dict(tx.query(self.engine.sql(self._q["stored_digests"] % codec.table),
                               (self.dialect.list_param(ids),)))
        if not stored:
            return list(records)
        unsure = [r for r in records if r.id in stored and stored[r.id] != digest(kind, r)]
        if unsure:  # digests differ: compare the records (0.0 == -0.0, 1e16 == 10**16)
            query = self.engine.sql(f"SELECT {codec.read} FROM {{s}}{codec.table} "
                                    "WHERE id{in}")
            rows = tx.query(query, (self.dialect.list_param([r.id for r in unsure]),))
            old = {row[0]: codec.record(row, None, self.describe()) for row in rows}
            differ = sorted(r.id for r in unsure if old.get(r.id) != r)
            if differ:
                raise ConflictError(
                    f"{kind} {', '.join(differ)} already stored in {self.describe()} with "
                    "other content; nothing of this batch was written. Ids are unique per "
                    "record: the same id with other content means two stores disagree.")
        return [r for r in records if r.id not in stored]

    # -- upkeep -----------------------------------------------------------------------------

    def storage_problems(self) -> list[tuple[str, str]]:
        from .upkeep import storage_problems

        return storage_problems(self)

    def garbage(self, timeline_ids: Iterable[str] | None = None,
                extra: Sequence[Tombstone] = ()) -> Garbage:
        from .upkeep import garbage

        return garbage(self, timeline_ids, extra)

    def purge_deleted(self) -> int:
        from .upkeep import purge

        if self.read_only:
            raise BackendUnavailableError(self.read_only)
        removed = purge(self)
        if self.runs.available:
            removed += self.runs.drop_closed_parts()
        self.forget()
        return removed

