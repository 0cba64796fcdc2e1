"""Store: the public API over one Catalog (rows) and one Objects (frame shards).

Everything backend-independent lives here: validation, carry-forward, the all-or-nothing
write order (objects first, then one catalog commit), and the translation of "absent"
into NotFoundError.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .arguments import boolean, integer, shown, text
from .canonical import canonical_bytes, content_hash, json_object
from .catalog import Batch, Catalog
from .errors import InvalidInputError, LocalckptError, NotFoundError, StoreClosedError
from .ids import is_full_uuid, new_id
from .objects import Objects
from .records import utcnow
from .schema import check_text
from .types import Checkpoint, Frame, FrameMeta, Tag, Timeline
from .visibility import Visibility

if TYPE_CHECKING:
    import os

    import pyarrow as pa

    from .backends.sql.runs import RunTables
    from .diff import Diff
    from .evaluate import Evaluation
    from .framediff import FrameDiff
    from .labels import LabelExport
    from .maintenance import PruneReport, VerifyReport
    from .runs import MemoStats, RunRecord, StageRun

__all__ = ["Store"]

_READER_CACHE = 64
#: timelines whose root id a store remembers for saves under the root (see _parent_for)
_ROOTS = 1024
#: Frame rates a timeline may have: beyond them timestamps (sequence / fps) overflow or
#: lose all precision.
FPS_RANGE = (1e-6, 1e6)


class Store:
    """Timelines of frames and trees of checkpoints, on any catalog + object store.

    Open one with :func:`localckpt.open`. Thread-safe; a store may be used by many
    threads, and (on backends whose catalog ``supports_multiprocess``) many processes
    may open the same store and write at once.

    Every method that takes a checkpoint or timeline id also takes a reference: a short
    id, a unique prefix, a tag or ``TIMELINE:stage`` (see :meth:`resolve` and
    :mod:`localckpt.refs`); a full id costs no lookup of its own.
    """

    def __init__(self, catalog: Catalog, objects: Objects, *, url: str = "",
                 reads_environ: bool = True) -> None:
        self.catalog = catalog
        self.objects = objects
        self.url = url
        #: whether it was opened reading $LOCALCKPT_* and [store] for what was not given
        #: (False for a remote's store): the workers of its runs resolve options alike
        self.reads_environ = reads_environ
        #: what tombstones hide (localckpt.visibility): every read and save asks it
        self.visibility = Visibility(catalog)
        self._closed = False
        self._readers: OrderedDict[str, Any] = OrderedDict()
        self._readers_lock = threading.Lock()
        #: timeline id -> its root checkpoint's id (a timeline record never changes), so
        #: a save under the root reads no timeline row; bounded, see _parent_for
        self._roots: dict[str, str] = {}
        # a store dropped without close() releases its files and locks when collected,
        # and says so as a ResourceWarning (as an unclosed file does)
        self._finalizer = weakref.finalize(self, _release_unclosed, catalog,
                                           url or type(catalog).__name__)
        self._finalizer.atexit = False  # at exit the process releases them anyway

    def __repr__(self) -> str:
        return f"<localckpt.Store {self.catalog.describe()}; objects {self.objects.describe()}>"

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    def close(self) -> None:
        """Release the catalog's files and connections. Every later call raises
        StoreClosedError; closing twice is harmless."""
        self._closed = True
        self._finalizer.detach()
        with self._readers_lock:
            self._readers.clear()
        self.catalog.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"the store {self.url or self.catalog.describe()} is closed; open it again "
                "with localckpt.open()"
            )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- timelines ----------------------------------------------------------------------

    def create_timeline(
        self,
        source_video: str,
        profile_name: str,
        frames: Iterable[Any],
        fps: float = 2.0,
        source_asset_id: UUID | str | None = None,
        *,
        codec: str = "jpeg",
        quality: int | None = None,
        workers: int | None = None,
        color: str = "rgb",
    ) -> Timeline:
        """Store frames as a new timeline and create its root checkpoint.

        frames: Frame objects, or bare images (numpy HxWx3 uint8 arrays, PIL images of any
        mode, av.VideoFrame) that get sequence i and timestamp i / fps; color "bgr" for
        OpenCV arrays. frames may be a generator: they are encoded and packed into shards
        as they come (bounded memory). quality: JPEG quality 1..95 (None: 90);
        codec="png" is lossless and takes none. The root checkpoint has stats
        ``{"frames_extracted": n}``. All or nothing: on bad input or failure no timeline
        is visible and the shards written so far are removed. For a video file, see
        ingest_video (real timestamps).
        """
        from .frames import coerce_frames, lossless_quality

        self._check_open()
        source_video = _require_str(source_video, "source_video")
        profile_name = _require_str(profile_name, "profile_name")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (
            FPS_RANGE[0] <= fps <= FPS_RANGE[1]
        ):
            raise InvalidInputError(f"fps must be a number from {FPS_RANGE[0]:g} to "
                                    f"{FPS_RANGE[1]:g}, not {shown(fps)}")
        if source_asset_id is not None and not isinstance(source_asset_id, (str, UUID)):
            raise InvalidInputError(
                f"source_asset_id must be a str or UUID, not {type(source_asset_id).__name__}"
            )
        if getattr(frames, "ndim", None) == 3:  # one HxWx3 ndarray
            raise InvalidInputError(
                "frames is a single HxWx3 image; pass a list (or an NxHxWx3 array) of frames"
            )
        stored_quality = 90 if quality is None else quality
        _check_encoding(codec, stored_quality, workers)
        lossless_quality(codec, quality)
        return self._store_timeline(
            source_video, profile_name, coerce_frames(frames, float(fps), color), float(fps),
            source_asset_id, codec=codec, quality=stored_quality, workers=workers,
        )

    def _store_timeline(
        self, source_video: str, profile_name: str, frames: Iterable[Frame], fps: float,
        source_asset_id: UUID | str | None, *, codec: str, quality: int, workers: int | None,
        describe: Callable[[], tuple[Mapping[str, Any], Mapping[str, Any]]] | None = None,
    ) -> Timeline:
        """Write frames, then the timeline and its root in one commit (create_timeline and
        ingest_video). describe, called once the frames are written, returns the
        timeline's source_info and stats for the root beside frames_extracted. The frames
        are written under an ingest lease (localckpt.lease), which gc respects and the
        commit checks, and the index's hash goes into the timeline record."""
        from .lease import IngestLease
        from .shards import delete_frames, write_timeline_frames

        self._check_open()
        _check_encoding(codec, quality, workers)
        tid = new_id()
        lease = IngestLease(self.objects, tid)
        # gc spares frames being written; a failed acquire or release removes the
        # directories the lease made once they are empty: a failed write leaves none
        lease.acquire()
        try:
            written = write_timeline_frames(
                self.objects, tid, frames, codec=codec, quality=quality, workers=workers,
                lease=lease,
            )
            source_info, stats = describe() if describe else ({}, {})
        except LocalckptError as exc:
            lease.release()
            lease.raise_if_revoked(exc)  # gc took the frames: say so, not "missing"
            raise
        except BaseException:
            lease.release()
            raise
        metas = written.metas
        now = utcnow()
        root = Checkpoint(
            id=new_id(),
            timeline_id=tid,
            parent_id=None,
            stage_hashes={},
            config_overrides={},
            stats={"frames_extracted": len(metas), **stats},
            is_scenario=False,
            scenario_label="",
            created_at=now,
        )
        timeline = Timeline(
            id=tid,
            source_video=source_video,
            profile_name=profile_name,
            fps=float(fps),
            source_asset_id=None if source_asset_id is None else str(source_asset_id),
            root_checkpoint_id=root.id,
            frame_count=len(metas),
            created_at=now,
            source_info=dict(source_info),
            index_hash=written.index_hash,
        )
        try:
            lease.confirm()  # LeaseLost if gc collected the frames meanwhile
            self.catalog.commit(Batch(timelines=[timeline], checkpoints=[root]))
        except BaseException:
            lease.release()
            delete_frames(self.objects, tid)
            lease.remove_dirs()  # now empty
            raise
        if not lease.committed_safely():
            from .maintenance.delete import undo_lost_ingest

            undo_lost_ingest(self, timeline)  # raises LeaseLost
        lease.release()
        return timeline

    def ingest_video(
        self,
        path: Any,
        profile_name: str = "",
        *,
        fps: float | None = 2.0,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        chunk_seconds: float | None = None,
        skip_similar: int | None = None,
        codec: str = "jpeg",
        quality: int | None = None,
        workers: int | None = None,
        source_asset_id: UUID | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        progress: Any = None,
    ) -> Timeline:
        """Decode a video file (a path, an fsspec URL such as s3://..., or an open binary
        file) and store its frames sampled at fps by presentation timestamp; None keeps
        every frame. Needs the [video] extra (PyAV). See localckpt.video for the exact
        sampling rule, chunk_id, skip_similar, source_info and the root's stats.
        quality: JPEG quality 1..95 (None: 90); codec="png" is lossless and takes none.
        """
        from .video import ingest_video

        self._check_open()
        if isinstance(path, str):
            # not text(): a file name that is not UTF-8 comes from sys.argv or os.listdir
            # as lone surrogates (os.fsdecode), and opens as the bytes it was; the record
            # says it with U+FFFD (videosource.source_name)
            if not path:
                raise InvalidInputError("path must not be empty")
            if "\x00" in path:
                raise InvalidInputError(f"path {shown(path)} holds a NUL character")
            import os

            try:
                os.fsencode(path)
            except UnicodeEncodeError:
                raise InvalidInputError(f"path {shown(path)} holds a lone surrogate that "
                                        "no file name decodes to") from None
        elif isinstance(path, bytes) and b"\x00" in path:
            raise InvalidInputError("path holds a NUL byte")
        profile_name = text(profile_name, "profile_name")
        from .frames import lossless_quality

        _check_encoding(codec, 90 if quality is None else quality, workers)
        lossless_quality(codec, quality)
        if storage_options is not None and not isinstance(storage_options, Mapping):
            raise InvalidInputError(f"storage_options must be a mapping of fsspec options, "
                                    f"not {shown(storage_options)}")
        return ingest_video(
            self, path, profile_name, fps=fps, start=start, end=end, max_frames=max_frames,
            chunk_seconds=chunk_seconds, skip_similar=skip_similar, codec=codec,
            quality=quality, workers=workers, source_asset_id=source_asset_id,
            storage_options=storage_options, progress=progress,
        )

    def get_timeline(self, timeline_id: str) -> Timeline:
        """A live timeline; NotFoundError for unknown and deleted ids."""
        return self.visibility.timeline(self._ref(timeline_id, "timeline", "timeline_id"))

    def list_timelines(self) -> list[Timeline]:
        """Every live timeline, oldest first: by created_at, then id (a timeline id need
        not be a UUIDv7, whose order is its creation's: a peer's ``zzzz`` made an hour
        ago is not the newest)."""
        self._check_open()
        return sorted(self.visibility.live_timelines(None), key=lambda t: (t.created_at, t.id))

    # -- what is live (not deleted) -------------------------------------------------------

    def live_timelines(self, ids: Iterable[str]) -> list[Timeline]:
        """The timelines with these ids that exist and are not deleted, ordered by id."""
        self._check_open()
        return self.visibility.live_timelines(_ids(ids, "ids"))

    def live_checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        """The checkpoints with these ids that exist and are live (not deleted, nor under
        a deleted checkpoint or timeline), ordered by id."""
        self._check_open()
        return self.visibility.live_checkpoints(_ids(ids, "ids"))

    def tag_target(self, name: str) -> str | None:
        """The checkpoint a live tag of this name points at, or None."""
        self._check_open()
        text(name, "tag name")
        return self.visibility.tag_target(name)

    # -- references and short ids (localckpt.refs) ------------------------------------------

    def resolve(self, ref: str, kind: str = "checkpoint") -> str:
        """The full id of the live checkpoint (or kind="timeline", "run") that ref
        names: a full id, a short id, a unique prefix of the id, a tag, or
        ``TIMELINE:stage``. See :mod:`localckpt.refs` for the rules. NotFoundError when
        nothing matches; InvalidInputError listing the candidates when several do.

        Every method of the Store that takes a checkpoint or timeline id accepts these
        references too: ``store.load_stage_output("best", "detect")``.
        """
        from .refs import resolve

        self._check_open()
        return resolve(self, ref, kind)

    def short_id(self, record_id: str, kind: str = "checkpoint") -> str:
        """The short id of a checkpoint (or timeline, or run) id: at least 8 characters of its
        random tail, unique in this store (see :mod:`localckpt.refs`)."""
        from .refs import short_id

        self._check_open()
        return short_id(self, _id(record_id, "record_id"), kind)

    def short_ids(self, ids: Iterable[str], kind: str = "checkpoint") -> dict[str, str]:
        """Short ids of many ids of one kind, as {full id: short id}; cheaper than
        short_id per id where the catalog has no index."""
        from .refs import short_ids

        self._check_open()
        return short_ids(self, _ids(ids, "ids"), kind)

    def _ref(self, ref: Any, kind: str, what: str) -> str:
        """A reference resolved at a public method's boundary; a full UUID costs no
        catalog call (the method's own lookup says NotFoundError), nor the import of the
        resolver (~1 ms, on the first read of a process)."""
        self._check_open()
        if type(ref) is str and is_full_uuid(ref):
            return ref
        from .refs import resolve

        return resolve(self, ref, kind, what=what, check=False)

    # -- deleting, tags, verify (localckpt.maintenance) -----------------------------------

    def delete_timeline(self, timeline_id: str, dry_run: bool = False) -> PruneReport:
        """Delete a timeline: its tree, tags and frames are gone for every reader now (a
        tombstone, which sync carries); ``gc`` frees the space. See localckpt.maintenance."""
        from .maintenance.delete import delete_timeline

        boolean(dry_run, "dry_run")
        return delete_timeline(self, self._ref(timeline_id, "timeline", "timeline_id"),
                               dry_run=dry_run)

    def prune(self, checkpoint_id: str, dry_run: bool = False, force: bool = False,
              ) -> PruneReport:
        """Delete a checkpoint and all its descendants (never a root; a checkpoint a kept
        merge names as merged_from only with force=True)."""
        from .maintenance.delete import prune

        boolean(dry_run, "dry_run")
        boolean(force, "force")
        return prune(self, self._ref(checkpoint_id, "checkpoint", "checkpoint_id"),
                     dry_run=dry_run, force=force)

    def retain(self, timeline_id: str, keep_last: int | None = None,
               keep_labels: Iterable[str] = (), newer_than: datetime | timedelta | None = None,
               keep_tagged: bool = True, dry_run: bool = False) -> PruneReport:
        """Prune every checkpoint of a timeline that no rule keeps (with its ancestors):
        the keep_last newest, those whose scenario_label is in keep_labels, those newer
        than newer_than, tagged ones (keep_tagged) and the root."""
        from .maintenance.delete import retain

        timeline_id = self._ref(timeline_id, "timeline", "timeline_id")
        keep_last = integer(keep_last, "keep_last", low=0, none=True)
        if isinstance(keep_labels, str) or not isinstance(keep_labels, Iterable):
            raise InvalidInputError(f"keep_labels must be an iterable of labels, not "
                                    f"{shown(keep_labels)}")
        keep_labels = [text(label, "keep_labels item") for label in keep_labels]
        if newer_than is not None and not isinstance(newer_than, datetime | timedelta):
            raise InvalidInputError(f"newer_than must be a datetime, a timedelta or None, not "
                                    f"{shown(newer_than)}")
        boolean(keep_tagged, "keep_tagged")
        boolean(dry_run, "dry_run")
        return retain(self, timeline_id, keep_last=keep_last, keep_labels=keep_labels,
                      newer_than=newer_than, keep_tagged=keep_tagged, dry_run=dry_run)

    def tag(self, checkpoint_id: str, name: str, force: bool = False) -> Tag:
        """Name a live checkpoint; names are unique among live tags (ConflictError),
        unless force=True, which moves the tag here (one commit). A name that starts a
        live record's short id is InvalidInputError: a tag wins over a short id."""
        from .maintenance.tags import swapped, tag

        name = text(name, "tag name")
        boolean(force, "force")
        try:
            cid = self._ref(checkpoint_id, "checkpoint", "checkpoint_id")
        except NotFoundError as exc:
            raise swapped(self, exc, checkpoint_id, name) from None
        return tag(self, cid, name, force=force)

    def untag(self, name: str) -> Tag:
        """Remove a tag (a tombstone); NotFoundError when no live tag has that name."""
        from .maintenance.tags import untag

        self._check_open()
        text(name, "tag name")
        return untag(self, name)

    def tags(self, timeline_id: str | None = None) -> list[Tag]:
        """Live tags of a timeline (of every timeline when None), ordered by name."""
        self._check_open()
        if timeline_id is not None:
            timeline_id = self._ref(timeline_id, "timeline", "timeline_id")
        return self.visibility.tags(timeline_id)

    def verify(self, timeline_id: str | None = None, *, storage: bool | None = None,
               ) -> VerifyReport:
        """Check that the store's bytes and links are sound; a report, never an exception
        for damage found. verify(timeline) reads that timeline only; storage=True adds
        the whole catalog's own storage (the default for a whole-store run). See
        localckpt.maintenance.verify for what is checked."""
        from .maintenance.verify import verify

        self._check_open()
        if timeline_id is not None:
            timeline_id = self._ref(timeline_id, "timeline", "timeline_id")
        if storage is not None:
            boolean(storage, "storage")
        return verify(self, timeline_id, storage=storage)

    # -- frames ---------------------------------------------------------------------------

    def _reader(self, timeline_ref: str) -> Any:
        """The frame reader of a timeline (any reference to one), cached per id."""
        from .shards import FrameReader

        timeline = self.get_timeline(timeline_ref)  # NotFoundError for unknown / deleted ids
        timeline_id = timeline.id
        with self._readers_lock:
            reader = self._readers.get(timeline_id)
            if reader is not None:
                self._readers.move_to_end(timeline_id)
                return reader
        reader = FrameReader(self.objects, timeline_id, timeline.index_hash)
        with self._readers_lock:
            self._readers[timeline_id] = reader
            if len(self._readers) > _READER_CACHE:
                self._readers.popitem(last=False)
        return reader

    def frame_index(self, timeline_id: str) -> list[FrameMeta]:
        """The timeline's frame index rows (also a Parquet object any tool can read)."""
        return list(self._reader(timeline_id).index())

    def similar_frames(
        self, timeline_id: str, sequence_or_hash: int | str, max_distance: int = 8,
        limit: int | None = None,
    ) -> list[tuple[FrameMeta, int]]:
        """Frames whose perceptual hash is within max_distance bits of a frame's (by
        sequence; that frame is among them, at 0) or of a hex hash, nearest first (ties
        by sequence). Reads the frame index only: no pixels are fetched or decoded."""
        from .similar import similar_frames

        if not isinstance(sequence_or_hash, str):
            sequence_or_hash = integer(sequence_or_hash, "sequence_or_hash", low=0)
        max_distance = integer(max_distance, "max_distance", low=0, high=64)
        limit = integer(limit, "limit", low=0, none=True)
        tid = self._ref(timeline_id, "timeline", "timeline_id")
        return similar_frames(self.frame_index(tid), sequence_or_hash, max_distance,
                              limit, tid)

    def get_timeline_frames(
        self, timeline_id: str, start: int | None = None, stop: int | None = None
    ) -> list[Frame]:
        """Decoded frames with start <= sequence < stop (all by default), in sequence order."""
        start, stop = _bounds(start, stop)
        return list(self._reader(timeline_id).frames(start, stop))

    def iter_frames(
        self, timeline_id: str, start: int | None = None, stop: int | None = None,
        batch: int = 64,
    ) -> Iterator[Frame]:
        """Stream decoded frames; memory stays bounded by one batch whatever the count."""
        start, stop = _bounds(start, stop)
        batch = integer(batch, "batch", low=1)
        return iter(self._reader(timeline_id).iter_frames(start, stop, batch=batch))

    def get_frame(self, timeline_id: str, sequence: int) -> Frame:
        """One frame by sequence number (NotFoundError when the timeline lacks it)."""
        sequence = integer(sequence, "sequence", low=0)
        return self._reader(timeline_id).get(sequence)

    def get_timeline_frames_b64(
        self, timeline_id: str, start: int | None = None, stop: int | None = None
    ) -> list[dict[str, Any]]:
        """Frames as dicts with base64 JPEG (``jpeg_b64``) for web front ends."""
        start, stop = _bounds(start, stop)
        return list(self._reader(timeline_id).b64(start, stop))

    # -- checkpoints ----------------------------------------------------------------------

    def save_stage_output(
        self,
        timeline_id: str,
        parent_checkpoint_id: str | None,
        stage_name: str,
        output_json: dict[str, Any],
        config_overrides: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        is_scenario: bool = False,
        scenario_label: str = "",
    ) -> str:
        """Save a stage's output as a new child checkpoint; return its id.

        The child carries forward the parent's stage outputs (by hash: nothing is copied)
        and adds or replaces ``stage_name``; config and stats are the parent's merged with
        the given ones (child keys win). parent_checkpoint_id None means the timeline's
        root. Raises NotFoundError for an unknown timeline or parent, InvalidInputError for
        a parent of another timeline or non-JSON values; nothing is written then.
        """
        self._check_open()
        stage_name = _require_str(stage_name, "stage_name")
        if not stage_name:
            raise InvalidInputError("stage_name must not be empty")
        if not isinstance(output_json, dict):
            raise InvalidInputError(
                f"output_json must be a dict (a JSON object), not {type(output_json).__name__}"
            )
        data = canonical_bytes(output_json, "output_json")
        config = json_object(config_overrides, "config_overrides")
        new_stats = json_object(stats, "stats")
        if not isinstance(is_scenario, bool):
            raise InvalidInputError(f"is_scenario must be a bool, not {is_scenario!r}")
        scenario_label = _require_str(scenario_label, "scenario_label")
        timeline_id = self._ref(timeline_id, "timeline", "timeline_id")
        if parent_checkpoint_id is not None:
            parent_checkpoint_id = self._ref(parent_checkpoint_id, "checkpoint",
                                             "parent_checkpoint_id")
        parent = self._parent_for(timeline_id, parent_checkpoint_id)
        h = content_hash(data)
        child = Checkpoint(
            id=new_id(),
            timeline_id=timeline_id,
            parent_id=parent.id,
            stage=stage_name,
            stage_hashes={**parent.stage_hashes, stage_name: h},
            config_overrides={**parent.config_overrides, **config},
            stats={**parent.stats, **new_stats},
            is_scenario=is_scenario,
            scenario_label=scenario_label,
            created_at=utcnow(),
        )
        # NotFoundError, nothing written, if the parent (or an ancestor, or the timeline)
        # is deleted; no extra round trip where the backend guards its commit
        batch = Batch(checkpoints=[child], outputs={h: data}, validated=True)
        self.visibility.commit(batch, timeline_id, [parent], new=[child.id])
        return child.id

    def _parent_for(self, timeline_id: str, parent_id: str | None) -> Checkpoint:
        _id(timeline_id, "timeline_id")
        if parent_id is None:
            # a root read before: its checkpoint, if still there (a purge in this process
            # forgets it), is the parent; deleted or not, the commit's guard sees a
            # timeline tombstone
            root = self._roots.get(timeline_id)
            if root is not None:
                parent = self.catalog.peek_checkpoint(root)
                if parent is not None and parent.timeline_id == timeline_id:
                    return parent
            found = self.catalog.timelines([timeline_id])
            if not found:
                raise NotFoundError(f"no timeline {timeline_id!r} in {self.catalog.describe()}")
            parent_id = found[0].root_checkpoint_id
            if len(self._roots) >= _ROOTS:
                self._roots.clear()
            self._roots[timeline_id] = parent_id
        parent = self.catalog.peek_checkpoint(_id(parent_id, "parent_checkpoint_id"))
        if parent is None:
            raise NotFoundError(f"no checkpoint {parent_id!r} in {self.catalog.describe()}")
        if parent.timeline_id != timeline_id:
            raise InvalidInputError(
                f"parent checkpoint {parent_id} belongs to timeline {parent.timeline_id}, "
                f"not {timeline_id}; a checkpoint's parent must be in the same tree"
            )
        return parent

    def load_stage_output(self, checkpoint_id: str, stage_name: str) -> dict[str, Any] | None:
        """The output of stage_name as seen at this checkpoint (carried forward from
        ancestors); None if no stage of that name ran on the way here."""
        _require_str(stage_name, "stage_name")
        checkpoint = self.get_checkpoint(checkpoint_id)
        checkpoint_id = checkpoint.id
        h = checkpoint.stage_hashes.get(stage_name)
        if h is None:
            return None
        value = self.catalog.load_values([h])
        if h not in value:
            from .errors import CorruptDataError

            raise CorruptDataError(
                f"checkpoint {checkpoint_id} refers to output {h} that the catalog lacks"
            )
        return value[h]

    def get_checkpoint(self, checkpoint_id: str) -> Checkpoint:
        """A live checkpoint; NotFoundError for unknown and deleted ids (a checkpoint
        under a deleted one, or of a deleted timeline, is deleted too)."""
        return self.visibility.checkpoint(self._ref(checkpoint_id, "checkpoint",
                                                    "checkpoint_id"))

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        """Live direct children (config tries branch here), oldest first."""
        return self.visibility.children(self._ref(checkpoint_id, "checkpoint",
                                                  "checkpoint_id"))

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        """The path from the timeline's root to this checkpoint, root first."""
        return self.visibility.lineage(self._ref(checkpoint_id, "checkpoint",
                                                 "checkpoint_id"))

    def checkpoints(self, timeline_id: str) -> list[Checkpoint]:
        """The live tree of a timeline, root included, oldest first."""
        timeline_id = self._ref(timeline_id, "timeline", "timeline_id")
        tree = self.visibility.live_tree(timeline_id)  # [] when deleted
        if not tree:  # a live timeline has its root: a missing or deleted one, then
            self.visibility.timeline(timeline_id)  # the NotFoundError
        return tree

    # -- diff and merge (localckpt.diff, localckpt.merge) -------------------------------------

    def diff(self, a: str, b: str) -> Diff:
        """What differs from checkpoint a to b: stages (by hash), config and stats keys."""
        from .diff import diff_checkpoints

        return diff_checkpoints(self, self._ref(a, "checkpoint", "a"),
                                self._ref(b, "checkpoint", "b"))

    def frame_diff(self, a: str, b: str, stage: str, match_iou: float = 0.5,
                   align: str | None = None, *, stage_b: str | None = None,
                   moved_iou: float | None = None) -> FrameDiff:
        """Frame by frame, how stage's output differs from checkpoint a to b (b's
        stage_b, when given: a try's detections against an import's ground truth).
        moved_iou: the IoU under which a matched pair of boxes has moved (default
        framediff.MOVED_IOU, 0.95; match_iou or less: none has).

        The output must be frame-keyed (InvalidInputError says the expected shape);
        detections are matched one to one by IoU >= match_iou. See localckpt.framediff.
        NotFoundError names an unknown checkpoint or a stage one side lacks.

        Frames pair by sequence number, which is only meaningful within one timeline:
        checkpoints of different timelines are InvalidInputError unless align="time",
        which pairs each frame with the other timeline's frame nearest in time, within
        half the coarser frame interval (FrameDiff.align, .pairs and .unpaired_* say
        what was compared).
        """
        from .diff import frame_diff_checkpoints

        _require_str(stage, "stage")
        if stage_b is not None:
            _require_str(stage_b, "stage_b")
        ious = {"match_iou": match_iou, **({} if moved_iou is None else {"moved_iou": moved_iou})}
        for what, iou in ious.items():  # checked before either output is read
            if isinstance(iou, bool) or not isinstance(iou, int | float) or not 0 < iou <= 1:
                raise InvalidInputError(f"{what} must be a number in (0, 1], not {shown(iou)}")
        return frame_diff_checkpoints(self, self._ref(a, "checkpoint", "a"),
                                      self._ref(b, "checkpoint", "b"), stage,
                                      match_iou=match_iou, align=align, stage_b=stage_b,
                                      moved_iou=moved_iou)

    def merge(self, ours: str, theirs: str, strategy: str | Callable[..., Any] = "fail") -> str:
        """Three-way merge theirs into ours; returns the merge (or fast-forward) id.

        strategy: "fail" (MergeConflict listing every conflict, nothing written), "ours",
        "theirs" or resolver(kind, key, base, ours, theirs) -> value. See localckpt.merge.
        """
        from .merge import merge_checkpoints

        if not callable(strategy) and not (isinstance(strategy, str)
                                           and strategy in ("fail", "ours", "theirs")):
            raise InvalidInputError(
                f"strategy must be 'fail', 'ours', 'theirs' or a function, not "
                f"{shown(strategy)}", cli="--strategy must be fail, ours or theirs")
        return merge_checkpoints(self, self._ref(ours, "checkpoint", "ours"),
                                 self._ref(theirs, "checkpoint", "theirs"), strategy)

    # -- deciding between tries (localckpt.labels, evaluate, query) ------------------------

    def import_labels(self, timeline_id: str, path: str | os.PathLike[str], format: str, *,
                      stage: str = "labels", parent: str | None = None, tag: str | None = None,
                      frames: str = "sequence", force_tag: bool = False) -> str:
        """Save a COCO, YOLO or MOT label file as a checkpoint (stage "labels" by default,
        a child of parent, else of the root; tag names it, force_tag moves it here from
        another checkpoint); return its id. Frames match
        by sequence or by source frame number (frames="source"); see localckpt.labels.
        The checkpoint's stats count boxes, frames and unmatched entries."""
        from .labels import import_labels

        self._check_open()
        return import_labels(self, timeline_id, path, format, stage=stage, parent=parent,
                             tag=tag, frames=frames, force_tag=force_tag).checkpoint_id

    def export_labels(self, checkpoint_id: str, stage: str, path: str | os.PathLike[str],
                      format: str, *, frames: str = "sequence",
                      overwrite: bool = False) -> LabelExport:
        """Write a checkpoint's detections of stage as a COCO, YOLO or MOT label file.
        An existing file is refused unless overwrite; a YOLO directory must be new or
        empty. See localckpt.labels.export_labels."""
        from .labels import export_labels

        self._check_open()
        return export_labels(self, checkpoint_id, stage, path, format, frames=frames,
                             overwrite=overwrite)

    def evaluate(self, checkpoints: Iterable[str], reference: str, stage: str = "detect", *,
                 iou: float = 0.5, labels: Iterable[str] | None = None,
                 reference_stage: str | None = None, metric: str = "ap50",
                 skip_unreadable: bool = False) -> Evaluation:
        """Precision, recall, F1, AP50 and AP of each try's stage against a reference's
        boxes (reference_stage: by default stage when it has it, else "labels"), per try
        and per label, ranked best first by metric. A try without boxes to judge is an
        error, or with skip_unreadable is left out and named in the result's
        ``skipped``. See localckpt.evaluate."""
        from .evaluate import evaluate

        self._check_open()
        return evaluate(self, checkpoints, reference, stage, iou=iou, labels=labels,
                        reference_stage=reference_stage, metric=metric,
                        skip_unreadable=skip_unreadable)

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None,
            ) -> pa.Table:
        """Run one read-only SELECT with DuckDB over the tables timelines, checkpoints,
        stage_outputs, frames and detections (live records only). See localckpt.query."""
        from .query import sql

        return sql(self, query, params)

    def detections(self, checkpoints: Iterable[str] | str, stage: str) -> pa.Table:
        """The boxes of stage's output at each checkpoint as a pyarrow Table (one row per
        box, with checkpoint_id and timestamp), for pandas and polars."""
        from .query import detections

        return detections(self, checkpoints, stage)

    # -- stage runs (localckpt.runs) ------------------------------------------------------

    def begin_run(
        self,
        timeline_id: str,
        parent_checkpoint_id: str | None,
        stage_name: str,
        *,
        params: dict[str, Any] | None = None,
        version: str = "",
        inputs: Iterable[str] = (),
        memo: bool = True,
        config_overrides: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        is_scenario: bool = False,
        scenario_label: str = "",
    ) -> StageRun:
        """Begin a durable run of stage_name over every frame of a timeline; its commit
        saves a child of parent_checkpoint_id (None: the root) as save_stage_output would.

        params: the stage's parameters (JSON; the checkpoint's config_overrides unless
        config_overrides is given). version: the stage's code version (see
        localckpt.code_version). inputs: earlier stages whose per-frame values the stage
        reads (frame-keyed outputs of the parent). memo: answer frames from earlier runs
        with an equal memo key (False for temporal stages). See localckpt.runs.run.
        """
        from .runs.store_api import begin_run

        timeline_id = self._ref(timeline_id, "timeline", "timeline_id")
        if parent_checkpoint_id is not None:
            parent_checkpoint_id = self._ref(parent_checkpoint_id, "checkpoint",
                                             "parent_checkpoint_id")
        return begin_run(self, timeline_id, parent_checkpoint_id, stage_name, params=params,
                         version=version, inputs=inputs, memo=memo,
                         config_overrides=config_overrides, stats=stats,
                         is_scenario=is_scenario, scenario_label=scenario_label)

    def get_run(self, run_id: str) -> StageRun:
        """A run by id, short id or unique id prefix, from any process that opens this
        store; NotFoundError when the store has none."""
        from .runs.store_api import get_run

        self._check_open()
        return get_run(self, run_id)

    def runs(self, timeline_id: str | None = None, *, state: str | None = None,
             ) -> list[StageRun]:
        """Runs of a timeline (of the store when None): open, committing, committed and
        aborted ones (or those in state), oldest first."""
        from .runs.store_api import list_runs

        self._check_open()
        if timeline_id is not None:
            timeline_id = self._ref(timeline_id, "timeline", "timeline_id")
        return list_runs(self, timeline_id, state)

    def memo_stats(self) -> MemoStats:
        """What the per-frame memo holds: entries per stage and version, values, bytes,
        and the values of open runs (pending: they become entries when their run closes)."""
        from .runs.store_api import memo_stats

        self._check_open()
        return memo_stats(self)

    def clear_memo(self, stage: str | None = None,
                   older_than: datetime | timedelta | None = None, dry_run: bool = False
                   ) -> int:
        """Delete memo entries (of stage; made before older_than, an aware datetime or an
        age); return how many (dry_run: how many would go, deleting nothing). Their values
        go at gc when nothing else uses them. An open run's values are not entries yet:
        they stay, and answer, until it closes."""
        from .runs.store_api import clear_memo

        self._check_open()
        return clear_memo(self, stage, older_than, dry_run)

    def _run_tables(self) -> RunTables:
        self._check_open()
        tables: RunTables | None = getattr(self.catalog, "runs", None)
        if tables is None:
            raise InvalidInputError(f"the catalog {self.catalog.describe()} keeps no stage "
                                    "runs (they need the SQL catalog: a directory, "
                                    "memory://, PostgreSQL or DuckDB)")
        if not tables.available:
            raise InvalidInputError(f"the catalog {self.catalog.describe()} is open read-only "
                                    "and predates stage runs as this version keeps them; "
                                    "open it where it can be written once (that adds "
                                    "their tables)")
        return tables

    def _save_run_checkpoint(self, run: RunRecord, data: bytes, h: str) -> None:
        """A run's checkpoint, saved as save_stage_output saves one (its id and time
        chosen when the commit began, so that a retried commit writes the same record)."""
        parent = self._parent_for(run.timeline_id, run.parent_id)
        config = run.params if run.config_overrides is None else run.config_overrides
        child = Checkpoint(
            id=run.checkpoint_id or "",
            timeline_id=run.timeline_id,
            parent_id=parent.id,
            stage=run.stage,
            stage_hashes={**parent.stage_hashes, run.stage: h},
            config_overrides={**parent.config_overrides, **config},
            stats={**parent.stats, **run.stats},
            is_scenario=run.is_scenario,
            scenario_label=run.scenario_label,
            created_at=run.closed_at or utcnow(),
        )
        tables = self._run_tables()
        self.visibility.commit(Batch(checkpoints=[child], outputs={h: data}, validated=True),
                               run.timeline_id, [parent], new=[child.id],
                               first=lambda tx: tables.hold_commit(tx, run.id, child.id))


def _release_unclosed(catalog: Catalog, where: str) -> None:
    """The finalizer of a Store collected without close(): warn, then close its catalog."""
    warnings.warn(f"unclosed localckpt store {where}; close it (store.close(), or `with "
                  "localckpt.open(...) as store:`)", ResourceWarning, stacklevel=2)
    with contextlib.suppress(Exception):  # a finalizer never raises
        catalog.close()


#: Encoder threads at most: more than the cores only costs memory (each holds a frame).
MAX_WORKERS = 64


def _check_encoding(codec: Any, quality: Any, workers: Any) -> None:
    """codec, quality and workers of a frame write, before anything is written: workers
    becomes threads, so it is bounded (MAX_WORKERS)."""
    from .frames import CODECS

    if not isinstance(codec, str) or codec not in CODECS:
        raise InvalidInputError(f"codec must be one of {', '.join(CODECS)}, not "
                                f"{shown(codec)}")
    if isinstance(quality, bool) or not isinstance(quality, int):
        raise InvalidInputError(f"quality must be an int, not {shown(quality)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= MAX_WORKERS):
        raise InvalidInputError(f"workers must be None or an int from 1 to {MAX_WORKERS} "
                                f"(encoder threads), not {shown(workers)}")


def _ids(value: Any, what: str) -> list[str]:
    """An iterable of id strings (not one string) as a list; InvalidInputError else."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidInputError(f"{what} must be an iterable of id strings, not "
                                f"{shown(value)}")
    ids = list(value)
    for i in ids:
        _id(i, what)
    return ids


def _bounds(start: Any, stop: Any) -> tuple[int | None, int | None]:
    """A range of frame sequences as ints (numpy's integers too), None for an open end."""
    return integer(start, "start", none=True), integer(stop, "stop", none=True)


def _require_str(value: Any, what: str) -> str:
    """value as a plain str, which records hold (a subclass, numpy's str_ say, is taken
    as its text: it was refused later, by the record's check, naming the record); not
    a str or not valid Unicode: InvalidInputError."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    plain = value if type(value) is str else str.__str__(value)
    check_text(plain, what)
    return plain


def _id(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be an id string, not {type(value).__name__}")
    return text(value, what)  # no NUL, no lone surrogate: no backend can look those up
