"""Bundles: one portable file holding a timeline (or a subtree) with frames and outputs.

A bundle is a zip archive (stored, not deflated: frames and Parquet are compressed
already) that any tool can open::

    localckpt-bundle.json           manifest: format, timeline, counts, object keys
    timelines.parquet               one row per timeline (the record fields)
    checkpoints.parquet             one row per checkpoint; stage_hashes, config_overrides
                                    and stats are JSON text
    outputs.parquet                 hash, json: each stage output once, canonical JSON
    objects/frames/<tid>/...        the frame shards and the Parquet frame index, as stored

Importing goes through the same transfer as ``sync`` (a bundle is just another source),
so import has the same union semantics: only what the store lacks is written, rows last
in one commit, ConflictError (nothing written) on a record with other content.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import schema
from .errors import CorruptDataError, InvalidInputError, NotFoundError
from .records import utcnow
from .sync import CountingCatalog, SyncReport, transfer
from .types import Checkpoint, Timeline

if TYPE_CHECKING:
    from .store import Store

__all__ = ["FORMAT", "export_bundle", "import_bundle"]

FORMAT = "localckpt-bundle/1"
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
) -> SyncReport:
    """Write a timeline to one bundle file at path; return what it holds.

    checkpoint_id None exports the whole tree; otherwise the subtree under checkpoint_id
    plus everything it derives from (its lineage, and the lineage of anything merged in),
    so that every parent link resolves in the store that imports it. Frames are always
    included. The file appears atomically (written aside, then renamed); an existing file
    is replaced. progress as for :func:`localckpt.sync`.
    """
    from .shards import frame_keys
    from .sync import _Reporter

    if not isinstance(timeline_id, str):
        raise InvalidInputError(f"timeline_id must be an id string, not {timeline_id!r}")
    catalog = CountingCatalog(store.catalog)
    found = catalog.timelines([timeline_id])
    if not found:
        raise NotFoundError(f"no timeline {timeline_id!r} in {store.catalog.describe()}")
    timeline = found[0]
    tree = catalog.tree(timeline_id)
    if checkpoint_id is not None:
        tree = _subtree(tree, timeline_id, checkpoint_id, store)
    hashes = sorted({h for c in tree for h in c.stage_hashes.values()})
    keys = frame_keys(store.objects, timeline_id)
    reporter = _Reporter(progress, "export")
    reporter.start(len(keys) + len(hashes) + 1)
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise InvalidInputError(f"cannot write a bundle to {target}: {directory} is not a "
                                "directory")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-bundle-", suffix=".zip", dir=directory)
    os.close(fd)
    nbytes = 0
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            outputs: dict[str, bytes] = {}
            for i in range(0, len(hashes), _OUTPUT_FETCH):
                chunk = hashes[i : i + _OUTPUT_FETCH]
                got = catalog.outputs(chunk)
                lacking = set(chunk) - set(got)
                if lacking:
                    raise CorruptDataError(
                        f"{store.catalog.describe()} lacks stage output {sorted(lacking)[0]} "
                        "that a checkpoint refers to; the store is damaged"
                    )
                outputs.update(got)
                nbytes += sum(len(got[h]) for h in chunk)
                for j, _ in enumerate(chunk, start=i + 1):
                    reporter.step("outputs", j, len(hashes))
            for n, key in enumerate(keys, start=1):
                data = store.objects.get(key)
                nbytes += len(data)
                zf.writestr(_info(_OBJECTS + key), data)
                reporter.step("objects", n, len(keys))
            zf.writestr(_info("timelines.parquet"),
                        _parquet(schema.to_arrow("timeline", [timeline])))
            zf.writestr(_info("checkpoints.parquet"), _parquet(schema.to_arrow("checkpoint", tree)))
            zf.writestr(_info("outputs.parquet"), _parquet(pa.table(
                {"hash": hashes, "json": [outputs[h].decode("utf-8") for h in hashes]},
                schema=_OUTPUT_SCHEMA,
            )))
            manifest = {
                "format": FORMAT,
                "timeline_id": timeline_id,
                "checkpoint_id": checkpoint_id,
                "exported_at": utcnow().isoformat(),
                "counts": {"timelines": 1, "checkpoints": len(tree), "outputs": len(hashes),
                           "objects": len(keys)},
                "objects": {timeline_id: keys},
            }
            zf.writestr(_info(MANIFEST), json.dumps(manifest, indent=2).encode("utf-8"))
        reporter.step("rows", 1, 1)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        reporter.close()
    return SyncReport(timelines=1, checkpoints=len(tree), outputs=len(hashes),
                      objects=len(keys), bytes=nbytes, round_trips=catalog.round_trips)


def import_bundle(
    store: Store, path: str | os.PathLike[str], progress: Any = None
) -> SyncReport:
    """Add a bundle's records and frames to store: the union, as :func:`localckpt.sync`.

    Idempotent; writes only what the store lacks (objects first, then rows in one
    commit). ConflictError, with nothing written, when a record exists with other
    content; CorruptDataError when the file is not a valid bundle.
    """
    source = BundleSource(path)
    try:
        return transfer(source, store, None, progress, desc="import")
    finally:
        source.close()


class BundleSource:
    """A bundle file read as a transfer source (see ``localckpt.sync.Source``)."""

    round_trips = 0
    local = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self.zf = zipfile.ZipFile(self.path, "r")
        except FileNotFoundError as exc:
            raise NotFoundError(f"no bundle file {self.path}") from exc
        except (zipfile.BadZipFile, OSError) as exc:
            raise CorruptDataError(f"{self.path} is not a localckpt bundle (zip): {exc}") from exc
        try:
            self.manifest = json.loads(self._read(MANIFEST))
            if self.manifest.get("format") != FORMAT:
                raise CorruptDataError(
                    f"{self.path} has bundle format {self.manifest.get('format')!r}; this "
                    f"localckpt reads {FORMAT!r} (upgrade localckpt?)"
                )
            self._timelines = schema.from_rows("timeline", self._table("timelines.parquet"))
            self._checkpoints = schema.from_rows("checkpoint",
                                                 self._table("checkpoints.parquet"))
            self._outputs: dict[str, bytes] | None = None
            self._keys: dict[str, list[str]] = {
                str(t): [str(k) for k in keys] for t, keys in self.manifest["objects"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.zf.close()
            raise CorruptDataError(f"{self.path} is not a valid localckpt bundle: {exc}") from exc
        except BaseException:
            self.zf.close()
            raise
        self._check_links()

    def _check_links(self) -> None:
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

    def _read(self, name: str) -> bytes:
        try:
            return self.zf.read(name)
        except KeyError as exc:
            raise CorruptDataError(f"bundle {self.path} lacks {name}") from exc
        except (zipfile.BadZipFile, OSError) as exc:  # also CRC mismatches
            raise CorruptDataError(f"bundle {self.path}: {name} is damaged: {exc}") from exc

    def _table(self, name: str) -> list[dict[str, Any]]:
        try:
            return pq.read_table(io.BytesIO(self._read(name))).to_pylist()
        except pa.ArrowException as exc:
            raise CorruptDataError(f"bundle {self.path}: {name} cannot be read: {exc}") from exc

    def close(self) -> None:
        self.zf.close()

    def describe(self) -> str:
        return f"bundle {self.path}"

    def timelines(self, ids: Sequence[str] | None) -> list[Timeline]:
        if ids is None:
            return list(self._timelines)
        wanted = set(ids)
        return [t for t in self._timelines if t.id in wanted]

    def checkpoints(self, timeline: Timeline) -> list[Checkpoint]:
        return [c for c in self._checkpoints if c.timeline_id == timeline.id]

    def outputs(self, hashes: Sequence[str]) -> dict[str, bytes]:
        if self._outputs is None:
            rows = self._table("outputs.parquet")
            self._outputs = {r["hash"]: r["json"].encode("utf-8") for r in rows}
        return {h: self._outputs[h] for h in hashes if h in self._outputs}

    def frame_keys(self, timeline_id: str) -> list[str]:
        return list(self._keys.get(timeline_id, []))

    def read_object(self, key: str) -> bytes:
        return self._read(_OBJECTS + key)


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
