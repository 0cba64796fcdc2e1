"""Bundles: one portable file holding a timeline (or a subtree) with frames and outputs.

A bundle is a zip archive (stored, not deflated: frames and Parquet are compressed
already) that any tool can open::

    localckpt-bundle.json           manifest: format, timeline, counts, object keys and
                                    their SHA-256
    timelines.parquet               one row per timeline (the record fields)
    checkpoints.parquet             one row per checkpoint; stage_hashes, config_overrides
                                    and stats are JSON text
    tombstones.parquet              the timeline's deletions (format 2)
    tags.parquet                    the tags of the exported checkpoints (format 2)
    outputs.parquet                 hash, json: each stage output once, canonical JSON
    objects/frames/<tid>/...        the frame shards and the Parquet frame index, as stored

Format 2 added tombstones and tags (so an import never brings back what was pruned) and
object hashes; format 1 bundles still import (they have neither).

Importing goes through the same transfer as ``sync`` (a bundle is just another source),
so import has the same union semantics and the same distrust: only what the store lacks
is written, rows last in one commit, ConflictError (nothing written) on a record with
other content, CorruptDataError (nothing written) for a bundle whose records, keys,
manifest or bytes do not check out. Nothing is ever extracted by a name the archive
chooses: every member read is named by a validated timeline id and frame key.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import bundle_limits as limits
from . import schema
from .arguments import shown
from .errors import CorruptDataError, InvalidInputError, LocalckptError, NotFoundError
from .placefile import place, regular_target
from .progress import Reporter
from .records import utcnow
from .sync import CountingCatalog, SyncReport, transfer
from .transfer import verified_outputs
from .types import Checkpoint, Tag, Timeline, Tombstone
from .visibility import Marks, dead_in_tree

if TYPE_CHECKING:
    from .store import Store

__all__ = ["FORMAT", "READABLE", "export_bundle", "import_bundle"]

FORMAT = "localckpt-bundle/2"
#: Formats import reads (1: before tombstones, tags and object hashes).
READABLE = ("localckpt-bundle/1", FORMAT)
MANIFEST = "localckpt-bundle.json"
_OBJECTS = "objects/"
_OUTPUT_FETCH = 1000

_OUTPUT_SCHEMA = pa.schema([("hash", pa.string()), ("json", pa.string())])


def export_bundle(
    store: Store,
    timeline_id: str,
    path: str | os.PathLike[str],
    checkpoint_id: str | None = None,
    progress: Any = None,
    *,
    overwrite: bool = False,
) -> SyncReport:
    """Write a live timeline to one bundle file at path; return what it holds.

    checkpoint_id None exports the whole live tree; otherwise the subtree under
    checkpoint_id plus everything it derives from (its lineage, and the lineage of
    anything merged in), so that every parent link resolves in the store that imports
    it. Frames are always included, each shard checked against the frame index (and
    the index against its recorded hash) as it is read; the timeline's tombstones and
    the exported checkpoints' live tags go along; outputs are streamed into the file a
    row group at a time (memory stays bounded whatever their size). The file appears
    atomically (written aside, then renamed; mode as the umask says). An existing file
    is an InvalidInputError unless overwrite is True (``localckpt export --force``; as
    ``export_labels``), checked before anything is read and again before the rename.
    InvalidInputError, with no file left behind, for a path that cannot be written (a
    directory, a missing directory, a name too long, ...).
    progress as for :func:`localckpt.sync`.
    """
    from .shards import index_key, keys_of, parse_index, verify_index

    store._check_open()
    if not isinstance(timeline_id, str):
        raise InvalidInputError(f"timeline_id must be an id string, not {shown(timeline_id)}")
    if checkpoint_id is not None and not isinstance(checkpoint_id, str):
        raise InvalidInputError(f"checkpoint_id must be an id string or None, not "
                                f"{type(checkpoint_id).__name__}")
    if not isinstance(overwrite, bool):
        raise InvalidInputError(f"overwrite must be True or False, not {shown(overwrite)}")
    target = _export_target(path, overwrite)
    timeline = store.get_timeline(timeline_id)
    catalog = CountingCatalog(store.catalog)
    tombstones = catalog.tombstones([timeline_id])
    marks = Marks.of(timeline_id, tombstones)
    tree = catalog.tree(timeline_id)
    dead = dead_in_tree(tree, marks.checkpoints)
    tree = [c for c in tree if c.id not in dead]
    if checkpoint_id is not None:
        tree = _subtree(tree, timeline_id, checkpoint_id, store)
    exported = {c.id for c in tree}
    tags = [g for g in catalog.tags([timeline_id])
            if g.id not in marks.tags and g.checkpoint_id in exported]
    hashes = sorted({h for c in tree for h in c.stage_hashes.values()})
    ikey = index_key(timeline_id)
    index = store.objects.get(ikey)
    where = f"{store.objects.describe()}/{ikey}"
    verify_index(index, timeline.index_hash, where)
    metas = parse_index(index, where)
    keys = keys_of(timeline_id, metas)
    reporter = Reporter(progress, "export")
    reporter.start(len(keys) + len(hashes) + 1)
    tmp = ""
    try:
        from .shards import file_mode

        fd, tmp = tempfile.mkstemp(prefix=".tmp-bundle-", suffix=".zip",
                                   dir=os.path.dirname(target))
        os.fchmod(fd, file_mode())
        os.close(fd)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            digests, object_bytes = _write_objects(zf, store, timeline_id, keys, index,
                                                   metas, reporter)
            for name, kind, records in (("timelines.parquet", "timeline", [timeline]),
                                        ("checkpoints.parquet", "checkpoint", tree),
                                        ("tombstones.parquet", "tombstone", tombstones),
                                        ("tags.parquet", "tag", tags)):
                zf.writestr(_info(name), _parquet(schema.to_arrow(kind, records)))
            output_bytes = _write_outputs(zf, catalog, store, hashes, reporter)
            manifest = {
                "format": FORMAT,
                "timeline_id": timeline_id,
                "checkpoint_id": checkpoint_id,
                "exported_at": utcnow().isoformat(),
                "counts": {"timelines": 1, "checkpoints": len(tree), "outputs": len(hashes),
                           "objects": len(keys), "tombstones": len(tombstones),
                           "tags": len(tags)},
                "objects": {timeline_id: keys},
                "hashes": digests,
            }
            zf.writestr(_info(MANIFEST), json.dumps(manifest, indent=2).encode("utf-8"))
        reporter.step("rows", 1, 1)
        try:  # without overwrite, not over a file that appeared while it was written
            place(tmp, target, overwrite=overwrite)
        except FileExistsError:
            _refuse_existing(target)
            raise
    except OSError as exc:
        raise InvalidInputError(f"cannot write the bundle {target}: {exc}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
        reporter.close()
    return SyncReport(timelines=1, checkpoints=len(tree), outputs=len(hashes),
                      objects=len(keys), bytes=object_bytes + output_bytes,
                      round_trips=catalog.round_trips,
                      tombstones=len(tombstones), tags=len(tags))


def _export_target(path: Any, overwrite: bool) -> str:
    """The absolute file path a bundle goes to, checked before anything is read or
    written: its directory exists, it is not itself a directory, and it is no existing
    file unless overwrite."""
    target = regular_target(os.path.abspath(bundle_path(path, "bundle")), "export_bundle")
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise InvalidInputError(f"cannot write a bundle to {target}: {directory} is not a "
                                "directory")
    if os.path.isdir(target):
        raise InvalidInputError(f"cannot write a bundle to {target}: it is a directory; name "
                                "a file in it")
    if not overwrite:
        _refuse_existing(target)
    return target


def _refuse_existing(target: str) -> None:
    """InvalidInputError if target exists (a file, or a symlink even dangling)."""
    if os.path.lexists(target):
        raise InvalidInputError(
            f"cannot write a bundle to {target}: it already exists; choose a new name, or "
            "pass overwrite=True to replace it",
            cli=f"cannot write a bundle to {target}: it already exists; choose a new name, or "
            "pass --force to replace it")


def _write_objects(zf: zipfile.ZipFile, store: Store, timeline_id: str, keys: list[str],
                   index: bytes, metas: list[Any], reporter: Reporter,
                   ) -> tuple[dict[str, str], int]:
    """Every frame object, each shard checked against the index; their SHA-256 by key."""
    from .shards import by_shard, index_key, verify_shard

    ikey = index_key(timeline_id)
    rows = by_shard(metas)
    digests: dict[str, str] = {}
    nbytes = 0
    for n, key in enumerate(keys, start=1):
        data = index if key == ikey else store.objects.get(key)
        if key != ikey:
            shard = int(key.rsplit("-", 1)[1].split(".")[0])
            verify_shard(timeline_id, shard, data, rows.get(shard, []),
                         store.objects.describe())
        digests[key] = hashlib.sha256(data).hexdigest()
        nbytes += len(data)
        zf.writestr(_info(_OBJECTS + key), data)
        reporter.step("objects", n, len(keys))
    return digests, nbytes


def _write_outputs(zf: zipfile.ZipFile, catalog: CountingCatalog, store: Store,
                   hashes: list[str], reporter: Reporter) -> int:
    """outputs.parquet, streamed into the archive in row groups of about
    OUTPUT_GROUP_BYTES, each output checked against its hash as it is read."""
    nbytes = 0
    with zf.open(_info("outputs.parquet"), "w", force_zip64=True) as fh, \
            pq.ParquetWriter(pa.PythonFile(fh, mode="w"), _OUTPUT_SCHEMA) as writer:
        group: dict[str, list[str]] = {"hash": [], "json": []}
        size = 0
        for n, (h, data) in enumerate(
                verified_outputs(catalog.outputs, hashes, store.catalog.describe()), start=1):
            group["hash"].append(h)
            group["json"].append(data.decode("utf-8"))
            size += len(data)
            nbytes += len(data)
            if size >= limits.OUTPUT_GROUP_BYTES:
                writer.write_table(pa.table(group, schema=_OUTPUT_SCHEMA))
                group, size = {"hash": [], "json": []}, 0
            reporter.step("outputs", n, len(hashes))
        writer.write_table(pa.table(group, schema=_OUTPUT_SCHEMA))
    return nbytes


def import_bundle(
    store: Store, path: str | os.PathLike[str], progress: Any = None
) -> SyncReport:
    """Add a bundle's records and frames to store: the union, as :func:`localckpt.sync`.

    Idempotent; writes only what the store lacks (objects first, then rows in one
    commit). ConflictError, with nothing written, when a record exists with other
    content; CorruptDataError, with nothing written, when the file is not a valid bundle
    (a hostile one included: see the module docstring); InvalidInputError for a path
    that cannot name a file, NotFoundError when there is none.
    """
    store._check_open()
    source = BundleSource(path)
    try:
        return transfer(source, store, None, progress, desc="import")
    finally:
        source.close()


class BundleSource:
    """A bundle file read as a transfer source (see ``localckpt.transfer.Source``).

    Reads are capped (see :mod:`localckpt.bundle_limits`): no member is read beyond what
    the manifest can sensibly declare, and outputs are read one row group at a time."""

    round_trips = 0
    local = True
    #: every output its checkpoints name is in the file (export writes them all), also
    #: those the destination holds: the transfer checks so (localckpt.admit)
    holds_its_outputs = True

    def __init__(self, path: str | os.PathLike[str], *, cli_store: str | None = None
                 ) -> None:
        """cli_store: the ``--store`` the command line gave, which the pull it suggests
        for a directory keeps (a bare `localckpt pull` copies into the default store)."""
        from .safefiles import open_regular

        self.path = bundle_path(path, "bundle file")
        if os.path.isdir(self.path):  # a store's directory, most likely: say what copies it
            import shlex

            shown = self.path if os.sep in self.path else os.path.join(".", self.path)
            into = "" if cli_store is None else f"--store {shlex.quote(cli_store)} "
            raise InvalidInputError(
                f"the bundle file {self.path} is a directory: a bundle is the one file "
                "export_bundle writes; to copy from a store in a directory, sync from it: "
                f"localckpt.sync(localckpt.open({shown!r}), store)",
                cli=f"{self.path} is a directory, not a bundle file (the one file `localckpt "
                    f"export` writes); to copy from a store in a directory, pull from it: "
                    f"`localckpt {into}pull {shlex.quote(shown)}`")
        fd = open_regular(self.path, "bundle file", error=InvalidInputError)
        if fd is None:
            raise NotFoundError(f"no bundle file {self.path}")
        fh = os.fdopen(fd, "rb")
        try:
            limits.check_directory(fh)
            self.zf = zipfile.ZipFile(fh, "r")
        except limits.TooLarge as exc:
            fh.close()
            raise CorruptDataError(f"{self.path} is not a localckpt bundle: {exc}; refusing "
                                   "it, nothing was imported") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            fh.close()
            raise CorruptDataError(f"{self.path} is not a localckpt bundle (zip): {exc}") from None
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        self._outputs: limits.OutputTable | None = None
        try:
            self._load()
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError,
                pa.ArrowException) as exc:
            self.close()
            raise CorruptDataError(f"{self.path} is not a valid localckpt bundle: "
                                   f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        from .safefiles import parse_json

        data = self._read(MANIFEST, limits.MAX_MANIFEST)
        manifest = parse_json(data, f"manifest of bundle {self.path}",
                              max_bytes=limits.MAX_MANIFEST, max_depth=8, error=CorruptDataError)
        if not isinstance(manifest, dict):
            raise self._bad("its manifest is not a JSON object")
        self.manifest = manifest
        fmt = manifest.get("format")
        if fmt not in READABLE:
            raise CorruptDataError(
                f"{self.path} has bundle format {fmt!r}; this localckpt reads "
                f"{', '.join(map(repr, READABLE))} (upgrade localckpt?)"
            )
        v2 = fmt == FORMAT
        counts = manifest.get("counts", {})
        if not isinstance(counts, dict) or not all(
                type(v) is int and v >= 0 for v in counts.values()):
            raise self._bad("its manifest's counts are not a JSON object of counts")
        self._counts: dict[str, int] = counts
        self._timelines = self._records("timeline", "timelines.parquet", 1)
        self._checkpoints = self._records("checkpoint", "checkpoints.parquet",
                                          counts.get("checkpoints"))
        self._tombstones: list[Tombstone] = (
            self._records("tombstone", "tombstones.parquet", counts.get("tombstones"))
            if v2 else [])
        self._tags: list[Tag] = (self._records("tag", "tags.parquet", counts.get("tags"))
                                 if v2 else [])
        objects = manifest["objects"]
        if not isinstance(objects, dict):
            raise self._bad("its manifest lists objects in a form it does not know")
        tids = {t.id for t in self._timelines}
        self._keys: dict[str, list[str]] = {}
        from .shards import check_frame_key

        for tid, keys in objects.items():
            if tid not in tids or not isinstance(keys, list):
                raise self._bad(f"its manifest lists objects of timeline {tid!r}, which "
                                "timelines.parquet does not hold")
            try:
                self._keys[tid] = [check_frame_key(k, tid) for k in keys]
            except CorruptDataError as exc:
                raise self._bad(str(exc)) from None
        self._hashes: dict[str, str] | None = None
        if v2:
            hashes = manifest["hashes"]
            if not isinstance(hashes, dict) or set(hashes) != {
                k for keys in self._keys.values() for k in keys
            } or not all(isinstance(v, str) for v in hashes.values()):
                raise self._bad("its manifest's object hashes do not match its object list")
            self._hashes = dict(hashes)
        self._check_manifest()
        self._check_links()

    def _bad(self, what: str) -> CorruptDataError:
        return CorruptDataError(f"bundle {self.path}: {what}; refusing it, nothing was "
                                "imported")

    def _records(self, kind: str, name: str, declared: int | None) -> list[Any]:
        data = self._read(name, limits.table_cap(kind, declared))
        try:
            rows = limits.read_table(data, kind, declared).to_pylist()
        except limits.TooLarge as exc:
            raise self._bad(f"{name}: {exc}") from None
        except (pa.ArrowException, OSError, ValueError, OverflowError) as exc:
            # OverflowError: a time beyond year 9999 in the column's time zone
            raise self._bad(f"{name} cannot be read: {exc}") from None
        records = schema.from_rows(kind, rows)
        for r in records:
            try:
                schema.validate(r)
            except LocalckptError as exc:
                raise self._bad(f"{name} holds an invalid record ({exc})") from None
        return records

    def _check_manifest(self) -> None:
        """The manifest must agree with the tables it describes."""
        m = self.manifest
        if [t.id for t in self._timelines] != [m.get("timeline_id")]:
            raise self._bad(f"its manifest names timeline {m.get('timeline_id')!r} but "
                            f"timelines.parquet holds {[t.id for t in self._timelines]}")
        counts = self._counts
        actual = {"timelines": len(self._timelines), "checkpoints": len(self._checkpoints),
                  "objects": sum(len(k) for k in self._keys.values())}
        if m["format"] == FORMAT:
            actual |= {"tombstones": len(self._tombstones), "tags": len(self._tags)}
        differ = [k for k, v in actual.items() if k in counts and counts[k] != v]
        if differ:
            raise self._bad(f"its manifest counts {differ[0]} as {counts[differ[0]]!r} but "
                            f"the bundle holds {actual[differ[0]]}")
        self._expected_outputs = counts.get("outputs")

    def _check_links(self) -> None:
        """Every record is of the bundle's timeline (a bundle carries one timeline: it
        can never touch another's records), and no tombstone deletes that timeline (a
        bundle is of a live one); parents resolve inside the bundle."""
        tids = {t.id for t in self._timelines}
        ids = {c.id for c in self._checkpoints}
        for t in self._timelines:
            if t.root_checkpoint_id not in ids or t.id not in self._keys:
                raise CorruptDataError(f"bundle {self.path} lacks the root checkpoint or the "
                                       f"frames of timeline {t.id}")
        for c in self._checkpoints:
            if c.timeline_id not in tids or (c.parent_id is not None and c.parent_id not in ids):
                raise CorruptDataError(f"bundle {self.path}: checkpoint {c.id} refers to a "
                                       "parent or timeline the bundle lacks")
        records: list[Tombstone | Tag] = [*self._tombstones, *self._tags]
        for record in records:
            if record.timeline_id not in tids:
                raise self._bad(f"{type(record).__name__.lower()} {record.id} belongs to "
                                f"timeline {record.timeline_id}, not to the bundle's")
        for x in self._tombstones:  # export writes live timelines only
            if x.kind == "timeline":
                raise self._bad(f"tombstone {x.id} deletes its timeline {x.target_id}; a "
                                "bundle holds a live timeline and never passes on a "
                                "timeline's deletion (sync with the store that deleted it)")

    def _read(self, name: str, cap: int) -> bytes:
        try:
            return limits.read_member(self.zf, name, cap)
        except KeyError:
            raise CorruptDataError(f"bundle {self.path} lacks {name}") from None
        except limits.TooLarge as exc:
            raise self._bad(str(exc)) from None
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError,
                zlib.error) as exc:  # also CRC mismatches, unknown compression, encryption
            raise CorruptDataError(f"bundle {self.path}: {name} is damaged: {exc}") from None

    def close(self) -> None:
        if self._outputs is not None:
            self._outputs.close()
        self.zf.close()
        self._fh.close()

    def describe(self) -> str:
        return f"bundle {self.path}"

    def timelines(self, ids: Sequence[str] | None) -> list[Timeline]:
        if ids is None:
            return list(self._timelines)
        wanted = set(ids)
        return [t for t in self._timelines if t.id in wanted]

    def checkpoints(self, timeline: Timeline) -> list[Checkpoint]:
        return [c for c in self._checkpoints if c.timeline_id == timeline.id]

    def tombstones(self, timeline_ids: Sequence[str] | None) -> list[Tombstone]:
        if timeline_ids is None:
            return list(self._tombstones)
        wanted = set(timeline_ids)
        return [x for x in self._tombstones if x.timeline_id in wanted]

    def tags(self, timeline_ids: Sequence[str]) -> list[Tag]:
        wanted = set(timeline_ids)
        return [g for g in self._tags if g.timeline_id in wanted]

    def outputs(self, hashes: Sequence[str]) -> dict[str, bytes]:
        """The outputs with these hashes, read one row group at a time (outputs.parquet
        may be far larger than memory)."""
        if self._outputs is None:
            try:
                self._outputs = limits.OutputTable(self.zf, "outputs.parquet",
                                                   self._expected_outputs)
            except KeyError:
                raise CorruptDataError(f"bundle {self.path} lacks outputs.parquet") from None
            except limits.TooLarge as exc:
                raise self._bad(f"outputs.parquet: {exc}") from None
            except (pa.ArrowException, OSError, ValueError, EOFError, zipfile.BadZipFile,
                    NotImplementedError, RuntimeError, zlib.error) as exc:
                raise self._bad(f"outputs.parquet cannot be read ({exc})") from None
        try:
            return self._outputs.get(hashes)
        except limits.TooLarge as exc:
            raise self._bad(f"outputs.parquet: {exc}") from None
        except (pa.ArrowException, OSError, ValueError, EOFError, zipfile.BadZipFile,
                zlib.error) as exc:
            raise self._bad(f"outputs.parquet cannot be read ({exc})") from None

    def frame_keys(self, timeline_id: str) -> list[str] | None:
        return list(self._keys.get(timeline_id, []))

    def read_object(self, key: str) -> bytes:
        tid = key.split("/")[1] if key.count("/") >= 2 else ""
        if key not in self._keys.get(tid, ()):
            raise self._bad(f"object {key!r} is not in its manifest")
        data = self._read(_OBJECTS + key, limits.MAX_OBJECT)
        if self._hashes is not None and hashlib.sha256(data).hexdigest() != self._hashes[key]:
            raise self._bad(f"object {key} does not match the hash its manifest records")
        return data


def bundle_path(path: Any, what: str) -> str:
    """path as a usable file path string, else InvalidInputError saying why (None, bytes,
    empty, a NUL, text the file system cannot encode, a name too long)."""
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise InvalidInputError(f"the {what} path must be a str or os.PathLike, not "
                                f"{type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidInputError(f"the {what} path must be text, not {type(text).__name__}")
    if not text:
        raise InvalidInputError(f"the {what} path is empty; name a file")
    if "\x00" in text:
        raise InvalidInputError(f"the {what} path {text!r} holds a NUL character")
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError:
        raise InvalidInputError(f"the {what} path {text!r} cannot be encoded for the file "
                                "system (a lone surrogate?)") from None
    name = os.path.basename(encoded.rstrip(b"/"))
    if len(name) > 255:
        raise InvalidInputError(f"the {what} name is {len(name)} bytes long; file names "
                                "have at most 255")
    return text


def _subtree(
    tree: list[Checkpoint], timeline_id: str, checkpoint_id: str, store: Store
) -> list[Checkpoint]:
    """checkpoint_id, its descendants, and the closure of all of them over parent and
    merged_from links (so the bundle is self-contained); ordered by id."""
    by_id = {c.id: c for c in tree}
    if checkpoint_id not in by_id:
        raise NotFoundError(
            f"no checkpoint {checkpoint_id!r} in timeline {timeline_id} of "
            f"{store.catalog.describe()}"
        )
    children: dict[str, list[str]] = {}
    for c in tree:
        if c.parent_id is not None:
            children.setdefault(c.parent_id, []).append(c.id)
    keep: set[str] = set()
    todo = [checkpoint_id]
    while todo:  # descendants
        cid = todo.pop()
        if cid not in keep:
            keep.add(cid)
            todo.extend(children.get(cid, ()))
    todo = list(keep)
    while todo:  # and everything they derive from
        c = by_id[todo.pop()]
        for link in (c.parent_id, c.merged_from):
            if link is not None and link in by_id and link not in keep:
                keep.add(link)
                todo.append(link)
    return [by_id[i] for i in sorted(keep)]


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=utcnow().timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    return info


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
