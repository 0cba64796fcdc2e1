"""SQL over a store with DuckDB: ``store.sql(query)`` and ``store.detections(...)``.

Tables (live records only: nothing deleted, nothing under a deleted checkpoint):

==============  ===========================================================================
timelines       id, source_video, profile_name, fps, source_asset_id, root_checkpoint_id,
                frame_count, created_at, source_info (JSON text), index_hash
checkpoints     id, timeline_id, parent_id, stage, is_scenario, scenario_label, tags (list
                of names), config, stats (JSON text: ``config->>'thr'``), created_at, merged_from
stage_outputs   checkpoint_id, stage, hash, added_here (the checkpoint brought this output:
                its parent had none, or another, for that stage)
frames          timeline_id, then the frame index: sequence, timestamp, chunk_id,
                perceptual_hash, width, height, codec, content_hash, shard, offset, length
detections      hash, sequence, timestamp, index, label, score, x1, y1, x2, y2, track_id:
                one row per box of every frame-keyed output (join stage_outputs on hash)
==============  ===========================================================================

The first four are built from the catalog (through the :class:`~localckpt.Store` API) for
each query, and only the ones the query names. ``detections`` reads Parquet files that
flatten each output once per content hash (:mod:`localckpt.derived`), written to the
object store the first time a query needs them and read by DuckDB: the store's own files
when its objects are a local directory, else copies made once per engine in a temporary
directory (through fsspec, a query cost a request per column chunk; no DuckDB extension
is ever downloaded). A
box's ``timestamp`` is its frame's time in the timeline of the oldest live checkpoint
holding that output (an output shared by two timelines is one set of rows). Looking it
up costs a join over every box, so it is made only for a query that might read the
column (its parse tree names ``timestamp``, a ``*``, a whole row...).

``SHOW TABLES``, ``DESCRIBE`` and ``information_schema`` list the five as in any DuckDB
(a table the query does not name is there, empty with its columns).

Read-only: one SELECT statement per call; anything else is :class:`ReadOnlyQueryError`.
DuckDB may read nothing but the derived files (``enable_external_access`` is off), so
``read_csv('/etc/passwd')`` and ``COPY ... TO`` are refused as well.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import derived
from .arguments import shown, text
from .errors import InvalidInputError, LocalckptError, NotFoundError, ReadOnlyQueryError

if TYPE_CHECKING:
    import pyarrow as pa

    from .store import Store
    from .types import Checkpoint, Timeline

__all__ = ["TABLES", "QueryEngine", "ReadOnlyQueryError", "detections", "engine_of", "sql"]

TABLES = ("timelines", "checkpoints", "stage_outputs", "frames", "detections")
_ATTR = "_localckpt_query_engine"
_ENGINE_LOCK = threading.Lock()
_TIMESTAMPS = "_timestamps"
_ROWS = "_detection_rows"
_DETECTIONS_VIEW = f"""
CREATE OR REPLACE VIEW detections AS
SELECT d.hash, d.sequence,
       (SELECT t.timestamp FROM {_TIMESTAMPS} t
         WHERE t.hash = d.hash AND t.sequence = d.sequence) AS timestamp,
       d."index", d.label, d.score, d.x1, d.y1, d.x2, d.y2, d.track_id
FROM {_ROWS} d
"""
# Looking a box's time up costs a join over every box (0.27 s of a 0.37 s count over
# 500,000 boxes) that DuckDB keeps even when nothing reads the column. A query that
# provably never names it (see _uses_timestamp) gets the same view with the column NULL.
_DETECTIONS_NO_TIME = f"""
CREATE OR REPLACE VIEW detections AS
SELECT d.hash, d.sequence, CAST(NULL AS DOUBLE) AS timestamp,
       d."index", d.label, d.score, d.x1, d.y1, d.x2, d.y2, d.track_id
FROM {_ROWS} d
"""


def _uses_timestamp(tree: Any, names: set[str]) -> bool:
    """Whether a parsed statement (DuckDB's json_serialize_sql) might read the timestamp
    column of a table: it names a column "timestamp", selects a * or COLUMNS(...), uses
    a column position, a NATURAL join or USING (timestamp), or names a whole row (a
    table or alias used as a column). Conservative: True when unsure."""
    if isinstance(tree, list):
        return any(_uses_timestamp(x, names) for x in tree)
    if not isinstance(tree, dict):
        return False
    kind = tree.get("class") or tree.get("type")
    if kind in ("STAR", "POSITIONAL_REFERENCE") or tree.get("ref_type") == "NATURAL":
        return True
    if kind == "COLUMN_REF":
        cols = [str(c).lower() for c in tree.get("column_names") or []]
        return not cols or cols[-1] == "timestamp" or (len(cols) == 1 and cols[0] in names)
    if any(str(c).lower() == "timestamp" for c in tree.get("using_columns") or []):
        return True
    return any(_uses_timestamp(v, names) for v in tree.values() if isinstance(v, (dict, list)))


def _relation_names(tree: Any, found: set[str]) -> set[str]:
    """Every table name and alias of a parsed statement, lower-cased."""
    if isinstance(tree, list):
        for x in tree:
            _relation_names(x, found)
    elif isinstance(tree, dict):
        if tree.get("type") in ("BASE_TABLE", "SUBQUERY", "TABLE_FUNCTION", "JOIN"):
            for key in ("table_name", "alias"):
                if tree.get(key):
                    found.add(str(tree[key]).lower())
        for v in tree.values():
            if isinstance(v, (dict, list)):
                _relation_names(v, found)
    return found


#: DuckDB's message for a table it does not know
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist")


#: DuckDB's messages for a column that no table the query reads has (unqualified, and
#: qualified by a table or an alias)
_MISSING_COLUMN = (re.compile(r'Referenced column "(?P<column>[^"]+)" not found'),
                   re.compile(r'(?:Table|Values list) "(?P<table>[^"]+)" does not have a '
                              r'column named "(?P<column>[^"]+)"'))


#: DuckDB's message for values given that the query has no placeholder for
_PARAM_COUNT = re.compile(r"Parameter/argument count mismatch for prepared statement\. "
                          r"Expected (\d+), got (\d+)")

_PARAM_MISSING = re.compile(r"Values were not provided for the following parameters: "
                            r"(.*)$", re.S)

_PARAM_EXCESS = re.compile(r"Parameter argument/count mismatch, identifiers of the excess "
                           r"parameters: (.*)$", re.S)


def _translate(exc: Exception, query: str) -> LocalckptError:
    import duckdb

    text = str(exc).strip()
    excess = _PARAM_EXCESS.search(text)
    if excess:
        names = excess.group(1).strip()
        return InvalidInputError(
            f"the query failed: it has no placeholder for the values given as {names} "
            "($name or ?); give a value for each placeholder the query uses, and no other",
            cli=f"the query failed: --param {names}: the query has no such $NAME; give "
                "--param NAME=VALUE for each $NAME the query uses, and no other")
    missing_values = _PARAM_MISSING.search(text)
    if missing_values:
        names = sorted(n.strip() for n in missing_values.group(1).split(","))
        return InvalidInputError(
            f"the query failed: no value was given for its placeholder(s) "
            f"{', '.join(names)} ($name or ?); give a value for each placeholder the query "
            "uses, and no other",
            cli=f"the query failed: no --param for {', '.join('$' + n for n in names)}; give "
                "--param NAME=VALUE for each $NAME the query uses, and no other")
    count = _PARAM_COUNT.search(text)
    if count:
        wanted, given = (int(n) for n in count.groups())
        return InvalidInputError(
            f"the query failed: it has {wanted} parameter{'' if wanted == 1 else 's'} ($name "
            f"or ?) but {given} value{' was' if given == 1 else 's were'} given; give a "
            "value for each placeholder the query uses, and no other",
            cli=f"the query failed: it has {wanted} parameter{'' if wanted == 1 else 's'} "
                f"($NAME) but {given} --param value{' was' if given == 1 else 's were'} "
                "given; give --param NAME=VALUE for each $NAME the query uses, and no other")
    if isinstance(exc, duckdb.PermissionException):
        return ReadOnlyQueryError(f"store.sql may read only the store's tables ({text})",
                                  cli=f"localckpt sql may read only the store's tables "
                                      f"({text})")
    missing = _MISSING_TABLE.search(text)
    if missing:  # DuckDB's hint names its own system tables (pg_settings...), never ours
        import difflib

        name = missing.group(1)
        near = difflib.get_close_matches(name.lower(), TABLES, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        return InvalidInputError(f"the query failed: there is no table {name!r}; {hint}the "
                                 f"store's tables are {', '.join(TABLES)}")
    if query.lstrip().startswith("."):  # `.tables`, `.schema`: the shells' own commands
        word = query.split()[0]
        return InvalidInputError(
            f"the query failed: {word} is a command of the DuckDB and SQLite shells, not "
            f"SQL; SHOW TABLES lists the store's tables ({', '.join(TABLES)}), and DESCRIBE "
            "TABLE its columns")
    return InvalidInputError(f"the query failed: {text}")


class QueryEngine:
    """One in-memory DuckDB connection per store, and what it keeps between queries:
    which derived files exist, frame index tables, the detections file list."""

    def __init__(self, store: Store) -> None:
        import duckdb

        self._lock = threading.Lock()
        self._known: set[str] = set()  # hashes whose derived file exists
        self._listed = False
        self._frames: dict[tuple[str, str | None], pa.Table] = {}
        self._rows_state: tuple[str, ...] | None = None
        self._rows_rel: Any = None
        self._ts_state: tuple[Any, ...] | None = None
        self._ts_table: pa.Table | None = None
        #: tables registered empty, as stand-ins (see _stand_ins)
        self._standing: set[str] = set()
        #: whether the detections view's own tables are registered now
        self._internal = False
        #: whether the last query's detections looked up each box's time (for tests)
        self.timestamps_joined = False
        objects = store.objects
        self._con = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        # Local objects: DuckDB reads the store's own files. Other object stores: each
        # file is copied once into a directory of this engine's (content-addressed, so a
        # copy is never stale) and read from there: through fsspec, a query read every
        # column chunk with a request of its own (6 s for 20 files on S3 here, not 0.1 s).
        self._mirror: str | None = None
        if objects.is_local:
            base = objects.path(derived.PREFIX)
        else:
            self._mirror = tempfile.mkdtemp(prefix="localckpt-derived-")
            weakref.finalize(self, shutil.rmtree, self._mirror, True)
            base = self._mirror
        self._objects_path = objects.path
        self._con.execute("SET allowed_directories = ?", [[base.rstrip("/") + "/"]])
        self._con.execute("SET enable_external_access = false")
        # statements are parsed on a connection of their own: once a name is registered
        # here, get_table_names resolves it to the view's (Arrow) source and omits it
        self._parser = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": False, "autoload_known_extensions": False,
            "enable_external_access": False})

    def close(self) -> None:
        with self._lock:
            self._con.close()
            self._parser.close()

    # -- tables from the catalog ----------------------------------------------------------

    def _trees(self, store: Store, timelines: list[Timeline]) -> list[Checkpoint]:
        return [c for t in timelines for c in store.checkpoints(t.id)]

    def _timelines(self, timelines: list[Timeline]) -> pa.Table:
        from .schema import to_arrow

        return to_arrow("timeline", timelines)

    def _checkpoints(self, store: Store, checkpoints: list[Checkpoint],
                     timelines: list[Timeline]) -> pa.Table:
        import pyarrow as pa

        from .schema import to_arrow

        names: dict[str, list[str]] = {}
        for t in timelines:
            for g in store.tags(t.id):
                names.setdefault(g.checkpoint_id, []).append(g.name)
        table = to_arrow("checkpoint", checkpoints).drop_columns(["stage_hashes"])
        table = table.rename_columns(["config" if n == "config_overrides" else n
                                      for n in table.column_names])
        tags = pa.array([sorted(names.get(c.id, [])) for c in checkpoints],
                        pa.list_(pa.string()))
        table = table.append_column("tags", tags)
        order = ["id", "timeline_id", "parent_id", "stage", "is_scenario", "scenario_label",
                 "tags", "config", "stats", "created_at", "merged_from"]
        return table.select(order)

    def _stage_outputs(self, checkpoints: list[Checkpoint]) -> pa.Table:
        import pyarrow as pa

        by_id = {c.id: c for c in checkpoints}
        rows: dict[str, list[Any]] = {"checkpoint_id": [], "stage": [], "hash": [],
                                      "added_here": []}
        for c in checkpoints:
            parent = by_id.get(c.parent_id) if c.parent_id else None
            before = parent.stage_hashes if parent is not None else {}
            for stage, h in sorted(c.stage_hashes.items()):
                rows["checkpoint_id"].append(c.id)
                rows["stage"].append(stage)
                rows["hash"].append(h)
                rows["added_here"].append(before.get(stage) != h)
        return pa.table(rows, schema=pa.schema([
            ("checkpoint_id", pa.string()), ("stage", pa.string()), ("hash", pa.string()),
            ("added_here", pa.bool_())]))

    def _frame_table(self, store: Store, t: Timeline) -> pa.Table:
        import pyarrow as pa

        key = (t.id, t.index_hash)
        if key not in self._frames:
            metas = store.frame_index(t.id)  # verified against the timeline's index hash
            cols: dict[str, Any] = {"timeline_id": pa.array([t.id] * len(metas), pa.string())}
            for f in ("sequence", "timestamp", "chunk_id", "perceptual_hash", "width",
                      "height", "codec", "content_hash", "shard", "offset", "length"):
                cols[f] = [getattr(m, f) for m in metas]
            schema = pa.schema([("timeline_id", pa.string()), ("sequence", pa.int64()),
                                ("timestamp", pa.float64()), ("chunk_id", pa.int64()),
                                ("perceptual_hash", pa.string()), ("width", pa.int64()),
                                ("height", pa.int64()), ("codec", pa.string()),
                                ("content_hash", pa.string()), ("shard", pa.int64()),
                                ("offset", pa.int64()), ("length", pa.int64())])
            self._frames[key] = pa.table(cols, schema=schema)
        return self._frames[key]

    def _frames_of(self, store: Store, timelines: list[Timeline]) -> pa.Table:
        import pyarrow as pa

        live = {(t.id, t.index_hash) for t in timelines}
        for key in [k for k in self._frames if k not in live]:
            del self._frames[key]  # deleted timelines: not kept
        tables = [self._frame_table(store, t) for t in timelines]
        if not tables:
            return self._empty_frames()
        return pa.concat_tables(tables)

    def _empty_frames(self) -> pa.Table:
        import pyarrow as pa

        return pa.schema([("timeline_id", pa.string()), ("sequence", pa.int64()),
                          ("timestamp", pa.float64()), ("chunk_id", pa.int64()),
                          ("perceptual_hash", pa.string()), ("width", pa.int64()),
                          ("height", pa.int64()), ("codec", pa.string()),
                          ("content_hash", pa.string()), ("shard", pa.int64()),
                          ("offset", pa.int64()), ("length", pa.int64())]).empty_table()

    # -- detections ------------------------------------------------------------------------

    def _url(self, h: str) -> str:
        """Where DuckDB reads the derived file of output h."""
        if self._mirror is None:
            return str(self._objects_path(derived.key_of(h)))
        return os.path.join(self._mirror, f"{h}.parquet")

    def ensure_derived(self, store: Store, owners: Mapping[str, Checkpoint]) -> None:
        """Make sure DuckDB can read the derived file of every output hash in owners
        (hash -> a live checkpoint holding it): written to the object store where it is
        missing, and with remote objects copied into the mirror; 4 at a time (Arrow parses
        outputs without holding the GIL)."""
        if self._mirror is not None:
            todo = [h for h in sorted(owners) if not os.path.exists(self._url(h))]

            def work(h: str) -> None:
                _, data = derived.fetch(store.objects, h,
                                        functools.partial(derived.output_text, store, h))
                tmp = f"{self._url(h)}.{threading.get_ident()}.tmp"
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, self._url(h))
        else:
            if not self._listed:
                found = store.objects.list(derived.PREFIX)
                self._known |= {k[len(derived.PREFIX) + 1:-len(".parquet")] for k in found
                                if k.endswith(".parquet")}
                self._listed = True
            todo = [h for h in sorted(owners) if h not in self._known]

            def work(h: str) -> None:
                derived.load(store.objects, h, functools.partial(derived.output_text, store, h))
        if todo:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(work, todo))
            if self._mirror is None:
                self._known.update(todo)

    def _detections(self, store: Store, checkpoints: list[Checkpoint],
                    timelines: list[Timeline], with_time: bool = True) -> None:
        import numpy as np
        import pyarrow as pa

        owners: dict[str, Checkpoint] = {}
        for c in sorted(checkpoints, key=lambda c: (c.created_at, c.id)):
            for h in c.stage_hashes.values():
                owners.setdefault(h, c)
        self.ensure_derived(store, owners)
        hashes = tuple(sorted(owners))
        fresh_rows = hashes != self._rows_state
        if fresh_rows:
            self._rows_rel = (self._con.read_parquet([self._url(h) for h in hashes]) if hashes
                              else self._con.from_arrow(derived.detections_schema().empty_table()))
            self._rows_state = hashes
        if fresh_rows or not self._internal:  # binding a view reads each file's footer
            self._rows_rel.create_view(_ROWS, replace=True)
        by_id = {t.id: t for t in timelines}
        state = tuple(sorted((h, c.timeline_id, by_id[c.timeline_id].index_hash)
                             for h, c in owners.items()))
        fresh_times = state != self._ts_state
        if fresh_times:
            names, parts_h, parts_s, parts_t = [], [], [], []
            for i, (h, c) in enumerate(sorted(owners.items())):
                frames = self._frame_table(store, by_id[c.timeline_id])
                names.append(h)
                parts_h.append(np.full(frames.num_rows, i, dtype=np.int32))
                parts_s.append(frames.column("sequence").to_numpy())
                parts_t.append(frames.column("timestamp").to_numpy())
            table = pa.table({  # hash as a dictionary column: one string per output
                "hash": pa.DictionaryArray.from_arrays(
                    pa.array(np.concatenate(parts_h) if parts_h else [], pa.int32()),
                    pa.array(names, pa.string())),
                "sequence": pa.array(np.concatenate(parts_s) if parts_s else [], pa.int64()),
                "timestamp": pa.array(np.concatenate(parts_t) if parts_t else [],
                                      pa.float64())})
            self._ts_table = table
            self._ts_state = state
        if fresh_times or not self._internal:
            self._con.register(_TIMESTAMPS, self._ts_table)
        self._internal = True
        self._con.execute(_DETECTIONS_VIEW if with_time else _DETECTIONS_NO_TIME)
        self.timestamps_joined = with_time

    # -- queries ---------------------------------------------------------------------------

    def _check(self, query: str) -> set[str]:
        import duckdb

        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query must be a non-empty SQL string")
        text(query, "the query")  # DuckDB's parser takes valid Unicode only
        try:
            statements = self._parser.extract_statements(query)
        except duckdb.Error as exc:
            raise _translate(exc, query) from None
        if len(statements) != 1:
            raise ReadOnlyQueryError(
                f"store.sql runs one SELECT statement at a time, not {len(statements)}",
                cli=f"localckpt sql runs one SELECT statement at a time, not {len(statements)}")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise ReadOnlyQueryError(
                f"store.sql is read-only: it runs SELECT statements, not {kind.name}",
                cli=f"localckpt sql is read-only: it runs SELECT statements, not {kind.name}")
        try:
            names = self._parser.get_table_names(query)
        except duckdb.Error:  # a statement with parameters cannot be bound alone
            return set(TABLES)
        plain = {n.rsplit(".", 1)[-1].strip('"').lower() for n in names}
        if plain & {_ROWS, _TIMESTAMPS}:
            raise ReadOnlyQueryError(f"{_ROWS} and {_TIMESTAMPS} are internal; query "
                                     "detections")
        return plain & set(TABLES)

    def sql(self, store: Store, query: str, params: Sequence[Any] | Mapping[str, Any] | None,
            ) -> pa.Table:
        import duckdb

        if params is not None and not isinstance(params, (list, tuple, dict)):
            raise InvalidInputError("params must be a list (for ? placeholders) or a dict "
                                    f"(for $name), not {type(params).__name__}")
        params = _plain_params(params)
        with self._lock:
            wanted = self._check(query)
            timelines = store.list_timelines()
            needs_tree = wanted & {"checkpoints", "stage_outputs", "detections"}
            checkpoints = self._trees(store, timelines) if needs_tree else []
            self._stand_ins(store, wanted)
            if "timelines" in wanted:
                self._con.register("timelines", self._timelines(timelines))
            if "checkpoints" in wanted:
                self._con.register("checkpoints",
                                   self._checkpoints(store, checkpoints, timelines))
            if "stage_outputs" in wanted:
                self._con.register("stage_outputs", self._stage_outputs(checkpoints))
            if "frames" in wanted:
                self._con.register("frames", self._frames_of(store, timelines))
            with_time = "detections" in wanted and self._needs_time(query)
            if "detections" in wanted:
                self._detections(store, checkpoints, timelines, with_time)
            try:
                return self._run(query, params)
            except duckdb.Error as exc:
                if "detections" not in wanted or ".parquet" not in str(exc):
                    raise self._failed(exc, query, wanted) from None
            # a derived file that does not read (damaged, or half gone): check every one,
            # make the bad ones again, then try once more
            self._repair(store, checkpoints)
            self._detections(store, checkpoints, timelines, with_time)
            try:
                return self._run(query, params)
            except duckdb.Error as exc:
                raise self._failed(exc, query, wanted) from None

    def _failed(self, exc: Exception, query: str, wanted: set[str]) -> LocalckptError:
        """The typed error of a query DuckDB refused, on the first try or after repair."""
        return self._missing_column(str(exc), wanted) or _translate(exc, query)

    def _missing_column(self, text: str, wanted: set[str]) -> LocalckptError | None:
        """A column none of the tables read has, said with the columns they have and the
        tables that have it: DuckDB's own candidates are the nearest names of the tables
        read (for ``checkpoint_id`` in detections, ``track_id``), never the join to make."""
        found = [m for m in (r.search(text) for r in _MISSING_COLUMN) if m]
        if not found:
            return None
        read = [t for t in TABLES if t in wanted]
        if not read:  # a column of the query's own subqueries: DuckDB's text says it
            return None
        name = found[0].group("column")
        qualifier = found[0].groupdict().get("table")
        columns: dict[str, list[str]] = {t: [] for t in TABLES}
        for table, column in self._con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE list_contains(?, table_name) ORDER BY table_name, ordinal_position",
                [list(TABLES)]).fetchall():
            columns[table].append(column)
        has = [t for t in TABLES if name.lower() in (c.lower() for c in columns[t])]
        said = "; ".join(f"{t} has {', '.join(columns[t])}" for t in read)
        if any(t in read for t in has):  # qualified by another table's name or alias
            where = (f"{name} is a column of {' and '.join(t for t in has if t in read)}: "
                     "qualify it with that table's name or alias")
        elif has:
            where = (f"{name} is a column of {' and '.join(has)}: join "
                     f"{'it' if len(has) == 1 else 'one of them'} (examples in "
                     "docs/deciding.md)")
        else:
            where = f"no table of the store has a column {name}"
        missing = (f"{qualifier} has no column {name!r}" if qualifier else
                   f"no column {name!r} in {', '.join(read)}")
        return InvalidInputError(f"the query failed: {missing} ({said}); {where}")

    def _stand_ins(self, store: Store, wanted: set[str]) -> None:
        """Each table the query does not name, empty with its columns: SHOW TABLES,
        DESCRIBE and information_schema list the five (a query reads no table it does
        not name: DuckDB's parser reports even those in query() and query_table()), and
        nothing of an earlier query is left stale. The detections view's own tables go
        with it, so they are listed only to a query of detections. Work is done only
        where the last query registered another table under a name."""
        import pyarrow as pa

        for name in TABLES:
            if name in wanted:  # the query registers the real table
                self._standing.discard(name)
                continue
            if name in self._standing:
                continue
            if name == "detections":
                schema = derived.detections_schema()
                schema = schema.insert(schema.get_field_index("sequence") + 1,
                                       pa.field("timestamp", pa.float64()))
                self._con.from_arrow(schema.empty_table()).create_view(name, replace=True)
            else:
                self._con.register(name, {
                    "timelines": lambda: self._timelines([]),
                    "checkpoints": lambda: self._checkpoints(store, [], []),
                    "stage_outputs": lambda: self._stage_outputs([]),
                    "frames": self._empty_frames}[name]())
            self._standing.add(name)
        if "detections" not in wanted and self._internal:
            self._con.execute(f"DROP VIEW IF EXISTS {_ROWS}")
            self._con.unregister(_TIMESTAMPS)
            self._internal = False

    def _needs_time(self, query: str) -> bool:
        import json

        import duckdb

        try:
            text = self._parser.sql("SELECT json_serialize_sql(?)",
                                    params=[query]).fetchall()[0][0]
            tree = json.loads(text)
        except (duckdb.Error, ValueError, IndexError):
            return True
        if not isinstance(tree, dict) or tree.get("error"):
            return True
        statements = tree.get("statements")
        return _uses_timestamp(statements, _relation_names(statements, set()))

    def _run(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None,
             ) -> pa.Table:
        rel = self._con.sql(query, params=params)
        if rel is None:  # not a query after all
            raise ReadOnlyQueryError("store.sql runs SELECT statements only",
                                     cli="localckpt sql runs SELECT statements only")
        return rel.to_arrow_table()

    def _repair(self, store: Store, checkpoints: list[Checkpoint]) -> None:
        if self._mirror is not None:  # copies again, from files checked as they come
            for name in os.listdir(self._mirror):
                os.unlink(os.path.join(self._mirror, name))
        for c in checkpoints:
            for h in c.stage_hashes.values():
                derived.load(store.objects, h, functools.partial(derived.output_text, store, h))
        self._rows_state = None


def engine_of(store: Store) -> QueryEngine:
    """The store's query engine, made on first use and kept on the store."""
    engine = store.__dict__.get(_ATTR)
    if engine is None:
        with _ENGINE_LOCK:
            engine = store.__dict__.get(_ATTR)
            if engine is None:
                engine = QueryEngine(store)
                store.__dict__[_ATTR] = engine
    assert isinstance(engine, QueryEngine)
    return engine


def _plain_params(params: Sequence[Any] | Mapping[str, Any] | None
                  ) -> Sequence[Any] | Mapping[str, Any] | None:
    """params with numpy scalars as the Python values they stand for: DuckDB binds no
    np.int64 ("Unable to transform python value of type numpy.int64"), and a bound
    taken from an array is one."""
    from .canonical import numpy_scalar

    def plain(value: Any) -> Any:
        scalar = numpy_scalar(value)
        return value if scalar is None else scalar

    if params is None:
        return None
    if isinstance(params, dict):
        return {key: plain(value) for key, value in params.items()}
    return [plain(value) for value in params]


def sql(store: Store, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None,
        ) -> pa.Table:
    """Store.sql: see the module docstring."""
    store._check_open()
    return engine_of(store).sql(store, query, params)


def detections(store: Store, checkpoints: Iterable[str] | str, stage: str) -> pa.Table:
    """Store.detections: the boxes of stage's output at each checkpoint, one row per box:
    checkpoint_id, then the ``detections`` table's columns (timestamp from the
    checkpoint's own timeline). A checkpoint without the stage is NotFoundError; an
    output that is not frame-keyed is InvalidInputError. Derived files are written as
    store.sql writes them."""
    import numpy as np
    import pyarrow as pa

    from .refs import reference_list, resolve_checkpoint

    store._check_open()
    checkpoints = reference_list(checkpoints, "checkpoints")
    if not isinstance(stage, str) or not stage:
        raise InvalidInputError(f"stage must be a non-empty string, not {shown(stage)}")
    found = [store.get_checkpoint(resolve_checkpoint(store, c)) for c in checkpoints]
    tables = []
    times: dict[str, dict[int, float]] = {}
    for c in found:
        h = c.stage_hashes.get(stage)
        if h is None:
            raise NotFoundError(f"checkpoint {c.id} has no stage {stage!r} (it has: "
                                f"{', '.join(sorted(c.stage_hashes)) or 'none'})")
        d = derived.load(store.objects, h, functools.partial(derived.output_text, store, h))
        if not d.frame_keyed:
            from .flatten import flatten

            flatten(store.load_stage_output(c.id, stage), f"stage {stage!r} at {c.id}")
        if c.timeline_id not in times:
            times[c.timeline_id] = {m.sequence: m.timestamp
                                    for m in store.frame_index(c.timeline_id)}
        t = d.table
        lookup = times[c.timeline_id]
        stamps = pa.array([lookup.get(s) for s in t.column("sequence").to_pylist()],
                          pa.float64())
        t = t.add_column(0, "checkpoint_id", pa.array(np.full(t.num_rows, c.id, object),
                                                      pa.string()))
        tables.append(t.add_column(3, "timestamp", stamps))
    if not tables:
        schema = derived.detections_schema()
        schema = schema.insert(0, pa.field("checkpoint_id", pa.string()))
        return schema.insert(3, pa.field("timestamp", pa.float64())).empty_table()
    return pa.concat_tables(tables)
