"""Tables, indexes and versioned migrations of the catalog, for every engine.

A new database is created at :data:`BASE_VERSION` from :data:`TABLES`, rendered per
dialect; later changes are :data:`MIGRATIONS`, an append-only list that every engine
runs in order, each once, in one transaction, recorded in ``schema_migrations``. (A
PostgreSQL catalog written before the engines shared one catalog is at versions 1-5 of
its own: ``pg_legacy`` brings it to the base first.) Never edit a released table or
migration: append a migration.

Why these tables:

- one table per record kind (timelines, checkpoints, tombstones, tags), columns from
  ``localckpt.schema.FIELDS`` (see ``rows``), each row with its digest;
- ``outputs``: canonical JSON bytes by SHA-256, stored once;
- ``output_refs``: which checkpoint added which output (its parent did not have it).
  Every output a live checkpoint uses was added by it or an ancestor, which is live
  too, so "referenced" is one index lookup, and on PostgreSQL the foreign key on
  ``hash`` stops a purge from removing an output a concurrent save refers to;
- ``tree_sums``: per timeline, the count and XOR of the digests of its checkpoints,
  kept in the transaction of every write: a tree read that misses a row (a damaged
  index) notices. Timeline id '' holds the same for the timelines table, and
  ``SUMS_OF[kind]`` + the timeline's id for its tombstones and its tags (migration 10:
  a tombstone a read misses would bring back what it deletes, a tag would vanish), and
  ``TAG_NAMES`` + a tag name for the tags of that name, in every timeline (migration 11:
  a lookup by name reads that name's rows, not every tag, and notices one it misses).
  Several shards per timeline on PostgreSQL, so that writers of one timeline do not
  queue on one row;
- ``unreferenced``: outputs the last purge found used by nothing (the next one removes
  them: a sync stages outputs before the rows that use them);
- ``purged`` (migration 13): the id of every checkpoint and tag a purge deleted, with
  its kind, its timeline and the tombstone that deleted it (``PURGED_IDS``). A
  tombstone names its target only; the checkpoints below a pruned one, those of a
  deleted timeline and their tags leave nothing else once purged, and a transfer asks
  this table (``tombstones_targeting``) so that their ids never come back.

Timelines are listed in the order they were made, by (created_at, id) (migration 14
indexes it): ids are tokens, and one that is not a UUIDv7 (an old store's, a peer's
``zzzz``) has no time and would sort after every UUID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ...errors import NotFoundError, SchemaVersionError
from ...schema import FIELDS
from .dialects import Dialect
from .rows import TABLES as RECORD_TABLES

if TYPE_CHECKING:
    from .engine import Engine, Tx

__all__ = ["BASE_VERSION", "LATEST_VERSION", "MIGRATIONS", "TABLES", "Migration", "Table",
           "create_statements", "migrate"]


class Table(NamedTuple):
    """A table in neutral types (``Dialect.types``): columns are (name, type, nullable)."""

    name: str
    columns: tuple[tuple[str, str, bool], ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    #: (column, table, column, deferred): foreign keys, enforced on PostgreSQL
    references: tuple[tuple[str, str, str, bool], ...] = ()
    #: the order rows are stored in where the engine stores a table as its key's B-tree
    #: (SQLite WITHOUT ROWID): a timeline's checkpoints side by side, so a tree is one
    #: range read; the key stays unique through an index. Elsewhere: an index.
    cluster: tuple[str, ...] = ()


def _record_table(kind: str, indexes: tuple[tuple[str, ...], ...],
                  references: tuple[tuple[str, str, str, bool], ...] = (),
                  cluster: tuple[str, ...] = ()) -> Table:
    columns: list[tuple[str, str, bool]] = [
        (f.name, "id" if f.type == "hash" else f.type, f.optional) for f in FIELDS[kind]]
    if kind in ("timeline", "checkpoint"):
        columns += [("exact", "text", True), ("tail", "id", False)]
        indexes = (*indexes, ("tail",))
    columns.append(("digest", "digest", False))
    return Table(RECORD_TABLES[kind], tuple(columns), ("id",), indexes, references, cluster)


TABLES: tuple[Table, ...] = (
    _record_table("timeline", ()),
    _record_table("checkpoint", (),
                  (("timeline_id", "timelines", "id", True),
                   ("parent_id", "checkpoints", "id", True)),
                  cluster=("timeline_id", "id")),
    Table("outputs", (("hash", "id", False), ("data", "blob", False)), ("hash",)),
    _record_table("tombstone", (("target_id",), ("timeline_id",))),
    _record_table("tag", (("timeline_id",), ("name",))),
    Table("output_refs", (("hash", "id", False), ("owner", "id", False)), ("hash", "owner"),
          (), (("hash", "outputs", "hash", True),)),
    Table("tree_sums", (("timeline_id", "id", False), ("shard", "int", False),
                        ("n", "int", False), ("x", "digest", False)),
          ("timeline_id", "shard")),
    Table("unreferenced", (("hash", "id", False),), ("hash",)),
)

#: The version a new database is created at.
BASE_VERSION = 6


class Migration(NamedTuple):
    """Statements run once, in order, in one transaction; python runs after them."""

    version: int
    description: str
    statements: tuple[str, ...] = ()
    python: Callable[[Tx, Engine], None] | None = None


def _stage_runs(tx: Tx, engine: Engine) -> None:
    from .runs import create_tables  # its tables, in neutral types (see runs.TABLES)

    create_tables(tx, engine)


def _outputs_rowid(tx: Tx, engine: Engine) -> None:
    """SQLite only: outputs move to a rowid table. A WITHOUT ROWID table is its key's
    B-tree, whose entries are whole rows; a lookup compares against entries that spill
    onto overflow pages and reads them whole, so fetching a 6 MB output by hash cost 3x
    a scan of the table. In a rowid table the hash index holds only hashes."""
    if engine.dialect.name != "sqlite":
        return
    for statement in (
            "CREATE TABLE {s}outputs_rowid (hash TEXT NOT NULL, data BLOB NOT NULL, "
            "PRIMARY KEY (hash))",
            "INSERT INTO {s}outputs_rowid (hash, data) SELECT hash, data FROM {s}outputs",
            "DROP TABLE {s}outputs",
            "ALTER TABLE {s}outputs_rowid RENAME TO outputs"):
        tx.execute(engine.sql(statement))


def _run_values(tx: Tx, engine: Engine) -> None:
    from .runs import add_value_columns

    add_value_columns(tx, engine)


def _run_puts(tx: Tx, engine: Engine) -> None:
    from .runs import add_puts

    add_puts(tx, engine)


def _slim_memo(tx: Tx, engine: Engine) -> None:
    from .runs import slim_memo

    slim_memo(tx, engine)


def _outputs_inline(tx: Tx, engine: Engine) -> None:
    """PostgreSQL only: an output row up to a page long stays in its table's page,
    uncompressed. By default a row over ~2 KB is compressed and, when still too long,
    moved out of line to the TOAST table, with its own index: a 2.8 KB output was three
    index and heap insertions, and a save 8% slower (892 against 824 us, the same saves
    alternated: benchmarks/results/2026-12-07-stop37). Longer outputs are still
    compressed and moved. Rows written before stay as they are."""
    if engine.dialect.name != "postgresql":
        return
    tx.execute(engine.sql("ALTER TABLE {s}outputs SET (toast_tuple_target = 8160)"))


#: SQLite's second path to the deleted timelines (see _deleted_timelines_index)
DELETED_TIMELINES_INDEX = "tombstones_deleted_timelines"
#: what a tombstone of a whole timeline is: the partial index's WHERE, and the terms a
#: query that reads the index must carry
TIMELINE_TOMBSTONE = "kind = 'timeline' AND timeline_id = target_id"


#: tree_sums keys of a timeline's tombstones and tags: this + its id ('~' is in no id and
#: sorts after every id character, so each kind's rows are one key range)
SUMS_OF = {"tombstone": "~tombstones:", "tag": "~tags:"}
#: the version that made them (a catalog below it, opened read-only, reads without them)
SECOND_PATHS = 10
#: the version that made the table of purged ids (below it, a catalog opened read-only
#: remembers none: see SqlCatalog.tombstones_targeting)
PURGED_IDS = 13
#: tree_sums key of the tags of one name, in every timeline: this + the name (sorts
#: before both SUMS_OF prefixes, so their key ranges hold none of these)
TAG_NAMES = "~names:"
#: the version that made them (below it, a lookup by name reads every tag)
NAME_SUMS = 11


def _second_paths(tx: Tx, engine: Engine) -> None:
    """Every engine: the count and digest of each timeline's tombstones and tags in
    tree_sums, as its checkpoints have had (a tombstone a damaged index leaves out of a
    read would bring back what it deletes; a tag would vanish). SQLite: a partial index
    of the tombstones that delete whole timelines, a second path to them (SQLite has no
    checksum on a page: a damaged entry of the target_id index made a deleted timeline
    read as live)."""
    _insert_sums(tx, engine, [
        (prefix + tid, d) for kind, prefix in SUMS_OF.items()
        for tid, d in tx.query(engine.sql(f"SELECT timeline_id, digest FROM {{s}}{kind}s"))])
    if engine.dialect.name != "sqlite":
        return
    # kind and timeline_id in the entries: the index answers its own terms, without the
    # row (a damaged kind in a row then shows as a disagreement)
    tx.execute(engine.sql(f"CREATE INDEX {DELETED_TIMELINES_INDEX} ON {{s}}tombstones "
                          f"(target_id, kind, timeline_id) WHERE {TIMELINE_TOMBSTONE}"))


def _name_sums(tx: Tx, engine: Engine) -> None:
    """Every engine: the count and digest of the tags of each name in tree_sums, so that
    a lookup by name (what a reference that is a tag resolves through) reads the rows of
    that name through its index and notices one that the index misses, instead of
    reading every tag of the store."""
    _insert_sums(tx, engine, [(TAG_NAMES + name, d) for name, d in tx.query(
        engine.sql("SELECT name, digest FROM {s}tags"))])


def _purged_table(tx: Tx, engine: Engine) -> None:
    """Every engine: the ids a purge deleted (see the module docstring). Ids purged
    before this migration left no trace, so the table starts empty."""
    d = engine.dialect
    without_rowid = " WITHOUT ROWID" if d.name == "sqlite" else ""
    tx.execute(engine.sql(
        f"CREATE TABLE {{s}}purged (id {d.types['id']} NOT NULL, kind {d.types['text']} "
        f"NOT NULL, timeline_id {d.types['id']} NOT NULL, tombstone_id {d.types['id']} "
        f"NOT NULL, PRIMARY KEY (id)){without_rowid}"))


def _insert_sums(tx: Tx, engine: Engine, rows: Iterable[tuple[str, Any]]) -> None:
    """tree_sums rows (shard 0) of the count and XOR of digests of each key's rows
    (key, digest): what a migration that adds a kind of sums computes once."""
    sums: dict[str, list[int]] = {}
    for key, d in rows:
        acc = sums.setdefault(key, [0, 0])
        acc[0] += 1
        acc[1] ^= int(d)
    if sums:
        tx.execute(engine.sql("INSERT INTO {s}tree_sums (timeline_id, shard, n, x) "
                              "VALUES (?, 0, ?, ?)"),
                   [(t, n, x) for t, (n, x) in sorted(sums.items())], True)


#: Changes after the base, for every engine (neutral SQL, rendered per dialect).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(7, "stage runs, their parts and the per-frame memo", python=_stage_runs),
    Migration(8, "outputs in a rowid table on SQLite (large rows)", python=_outputs_rowid),
    Migration(9, "stage-run parts and memo entries hold their values", python=_run_values),
    Migration(10, "tombstone and tag sums per timeline; deleted timelines indexed on SQLite",
              python=_second_paths),
    Migration(11, "tag sums per name", python=_name_sums),
    # a purge deletes the tags of the checkpoints it deletes, and a run reads the open
    # runs like it: without these, each read every tag, or every run ever begun
    Migration(12, "tags indexed by checkpoint, runs by state", statements=(
        "CREATE INDEX tags_checkpoint_id ON {s}tags (checkpoint_id)",
        "CREATE INDEX runs_state ON {s}runs (state)")),
    Migration(13, "the ids of purged checkpoints and tags", python=_purged_table),
    # the timelines page (the web index, the newest timeline) in creation order reads
    # its page's rows from one end of this index, not every timeline sorted; below it
    # (a catalog opened read-only) the same query sorts what it reads
    Migration(14, "timelines indexed by creation", statements=(
        "CREATE INDEX timelines_created_at_id ON {s}timelines (created_at, id)",)),
    # a stage run's put is one row (its frames' values side by side), not one row per
    # frame: see localckpt.backends.sql.runs
    Migration(15, "stage-run puts as one row each", python=_run_puts),
    # a memo entry is one small row (its run's fields once, in memo_runs), where it was
    # a wide row and three indexes: see localckpt.backends.sql.runs
    Migration(16, "memo entries as one slim row each, their runs' fields once",
              python=_slim_memo),
    Migration(17, "outputs up to a page kept inline on PostgreSQL", python=_outputs_inline),
)

LATEST_VERSION = BASE_VERSION + len(MIGRATIONS)
assert [m.version for m in MIGRATIONS] == list(range(BASE_VERSION + 1, LATEST_VERSION + 1))

_VERSIONS = """CREATE TABLE IF NOT EXISTS {s}schema_migrations (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"""


def create_statements(dialect: Dialect) -> list[str]:
    """CREATE TABLE and CREATE INDEX statements of the base, for dialect."""
    out = []
    sqlite = dialect.name == "sqlite"
    for table in TABLES:
        cols = [f"{name} {dialect.types[kind]}{'' if nullable else ' NOT NULL'}"
                for name, kind, nullable in table.columns]
        clustered = sqlite and bool(table.cluster)
        cols.append(f"PRIMARY KEY ({', '.join(table.cluster if clustered else table.key)})")
        if dialect.name == "postgresql":
            for column, other, key, deferred in table.references:
                cols.append(f"FOREIGN KEY ({column}) REFERENCES {{s}}{other} ({key})"
                            + (" DEFERRABLE INITIALLY DEFERRED" if deferred else ""))
        rowid = " WITHOUT ROWID" if sqlite else ""
        out.append(f"CREATE TABLE {{s}}{table.name} ({', '.join(cols)}){rowid}")
        indexes = list(table.indexes)
        if dialect.name == "postgresql":  # a foreign key's check reads its column's index
            indexes += [(column,) for column, other, _, _ in table.references
                        if other == table.name]
        if table.cluster:
            indexes.insert(0, table.key if clustered else table.cluster)
        for index in indexes:
            name = f"{table.name}_{'_'.join(index)}"
            unique = "UNIQUE " if clustered and index == table.key else ""
            out.append(f"CREATE {unique}INDEX {name} ON {{s}}{table.name} ({', '.join(index)})")
    return out


def version_of(engine: Engine, tx: Tx | None = None) -> int:
    """The applied version; 0 when there is no catalog yet. With tx: inside a migration,
    after the version table was made."""
    if tx is None and not engine.has_table("schema_migrations"):
        return 0
    statement = "SELECT max(version) FROM {s}schema_migrations"
    rows = tx.query(engine.sql(statement)) if tx is not None else engine.query(statement)
    return int(rows[0][0] or 0) if rows else 0


def _check_not_newer(version: int, where: str) -> None:
    if version > LATEST_VERSION:
        raise SchemaVersionError(
            f"the localckpt catalog at {where} is at schema version {version}, but this "
            f"localckpt knows versions up to {LATEST_VERSION}; upgrade localckpt "
            "(pip install -U localckpt) to open it"
        )


def migrate(engine: Engine, *, create: bool, extras: Sequence[str] = (),
            legacy: Callable[[Tx, int], int] | None = None,
            applied_at: Callable[[], Any] | None = None) -> int:
    """Bring the catalog to LATEST_VERSION and return it.

    A catalog already there costs one small read. ``extras``: engine-specific statements
    run with the base tables (PostgreSQL's fail() function and views). ``legacy(tx,
    version)``: upgrades a catalog older than the base to it, returning BASE_VERSION.
    NotFoundError when there is no catalog and create is False; SchemaVersionError
    when it is newer than this code.
    """
    where = engine.describe()
    current = version_of(engine)
    _check_not_newer(current, where)
    if current >= LATEST_VERSION:
        return current
    if current == 0 and not create:
        raise NotFoundError(
            f"no localckpt catalog at {where}; create one with `localckpt --store URL init`, "
            "or open it with create=True",
            cli=f"no localckpt catalog at {where}; create one with `localckpt --store URL "
            "init` (the first push to it creates one too), or check the --store URL",
        )
    from ...records import utcnow

    stamp = applied_at or (lambda: utcnow().isoformat())
    with engine.transaction() as tx:
        engine.lock_schema(tx)
        tx.execute(engine.sql(_VERSIONS))
        current = version_of(engine, tx)  # another process may have migrated meanwhile
        _check_not_newer(current, where)
        record = engine.sql("INSERT INTO {s}schema_migrations (version, description, "
                            "applied_at) VALUES (?, ?, ?)")
        if current == 0:
            for statement in [*create_statements(engine.dialect), *extras]:
                tx.execute(engine.sql(statement))
            tx.execute(record, (BASE_VERSION, "the relational catalog", stamp()))
            current = BASE_VERSION
        elif current < BASE_VERSION:
            if legacy is None:
                raise SchemaVersionError(f"the catalog at {where} is at version {current}, "
                                         "which this engine cannot upgrade")
            current = legacy(tx, current)
        for migration in MIGRATIONS[current - BASE_VERSION:]:
            for statement in migration.statements:
                tx.execute(engine.sql(statement))
            if migration.python is not None:
                migration.python(tx, engine)
            tx.execute(record, (migration.version, migration.description, stamp()))
            current = migration.version
    return current
