"""Frame shards: many encoded frames per object, plus a per-timeline Parquet index.

Layout (the same on every filesystem, so sync is "copy missing keys")::

    frames/<timeline_id>/shard-000000.bin   encoded frames back to back
    frames/<timeline_id>/index.parquet      one FrameMeta row per frame, sorted by sequence

Why shards: one object per frame means thousands of small requests on S3; a shard is
read with one ranged GET per contiguous run of wanted frames.

Why temp files: Pillow holds the GIL when encoding into BytesIO but not when encoding
into a real file, so each writer thread encodes straight into its own temp shard file
(in the destination directory when objects are local, so publishing is a rename).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import io
import itertools
import os
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import attrs
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from .errors import BackendUnavailableError, CorruptDataError, InvalidInputError, NotFoundError
from .frames import check_codec, decode, encode, encode_into, to_pil, validate_frames
from .objects import Objects
from .types import Frame, FrameMeta

__all__ = [
    "FrameReader",
    "delete_frames",
    "frame_keys",
    "index_key",
    "shard_key",
    "write_frames",
]

SHARD_FRAMES = 256
SHARD_BYTES = 32 << 20
_SCHEMA = pa.schema(
    [("sequence", pa.int64()), ("timestamp", pa.float64()), ("chunk_id", pa.int64()),
     ("perceptual_hash", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
     ("codec", pa.string()), ("content_hash", pa.string()), ("shard", pa.int64()),
     ("offset", pa.int64()), ("length", pa.int64())],
    metadata={"localckpt.format": "frame-index/1"},
)
_COLUMNS = tuple(f.name for f in attrs.fields(FrameMeta))
_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,127}")


def _default_workers() -> int:
    return min(2, os.cpu_count() or 1)


def _prefix(timeline_id: str) -> str:
    if not isinstance(timeline_id, str) or not _ID.fullmatch(timeline_id):
        raise InvalidInputError(
            f"timeline id {timeline_id!r} is not a valid id (letters, digits, '-', '_')"
        )
    return f"frames/{timeline_id}/"


def shard_key(timeline_id: str, shard: int) -> str:
    return f"{_prefix(timeline_id)}shard-{shard:06d}.bin"


def index_key(timeline_id: str) -> str:
    return f"{_prefix(timeline_id)}index.parquet"


class _ShardSink:
    """One writer thread's run of shard files: encode into a temp file, publish when full."""

    def __init__(self, objects: Objects, timeline_id: str, codec: str, quality: int,
                 limits: tuple[int, int], next_shard: Callable[[], int], written: list[str]):
        self.objects, self.timeline_id = objects, timeline_id
        self.codec, self.quality = codec, quality
        self.max_frames, self.max_bytes = limits
        self.next_shard, self.written = next_shard, written
        local = objects.local_path(shard_key(timeline_id, 0))
        self.tmp_dir = os.path.dirname(local) if local else None
        self.fh: io.FileIO | None = None
        self.tmp = ""
        self.shard = self.count = self.pos = 0

    def add(self, frame: Frame, im: Image.Image) -> FrameMeta:
        try:
            if self.fh is None:
                if self.tmp_dir:
                    os.makedirs(self.tmp_dir, exist_ok=True)
                fd, self.tmp = tempfile.mkstemp(prefix=".tmp-shard-", suffix=".bin",
                                                dir=self.tmp_dir)
                self.fh = io.FileIO(fd, "w+")
                self.shard, self.count, self.pos = self.next_shard(), 0, 0
            start = self.pos
            encode_into(self.fh, im, self.codec, self.quality)
            self.pos = self.fh.tell()
            data = os.pread(self.fh.fileno(), self.pos - start, start)
        except OSError as exc:
            raise BackendUnavailableError(
                f"writing a frame shard to {self.tmp_dir or tempfile.gettempdir()} failed: "
                f"{exc}; check free disk space and permissions"
            ) from exc
        self.count += 1
        h, w = frame.image.shape[:2]
        meta = FrameMeta(frame.sequence, frame.timestamp, frame.chunk_id, frame.perceptual_hash,
                         w, h, self.codec, hashlib.sha256(data).hexdigest(), self.shard,
                         start, self.pos - start)
        if self.count >= self.max_frames or self.pos >= self.max_bytes:
            self.flush()
        return meta

    def flush(self) -> None:
        """Publish the open shard (rename locally, upload remotely)."""
        if self.fh is None:
            return
        self.fh.close()
        self.fh = None
        key = shard_key(self.timeline_id, self.shard)
        self.written.append(key)
        try:
            self.objects.put_file(self.tmp, key)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the open temp file, if any (also after a remote upload left it behind)."""
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        if self.tmp and os.path.exists(self.tmp):
            os.remove(self.tmp)
        self.tmp = ""


def write_frames(objects: Objects, timeline_id: str, frames: Iterable[Frame], *,
                 codec: str = "jpeg", quality: int = 90, workers: int | None = None,
                 shard_frames: int = SHARD_FRAMES, shard_bytes: int = SHARD_BYTES,
                 ) -> list[FrameMeta]:
    """Encode frames into shards and write the index; all or nothing.

    Streams the input (memory holds a few frames per worker, never the whole timeline).
    On any error every object written for this call is deleted before re-raising.
    Returns the index rows, sorted by sequence.
    """
    check_codec(codec, quality)
    workers = _default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInputError(f"workers must be an int >= 1, got {workers!r}")
    if shard_frames < 1 or shard_bytes < 1:
        raise InvalidInputError("shard_frames and shard_bytes must be >= 1")
    ikey = index_key(timeline_id)
    written: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()

    def next_shard() -> int:
        with lock:
            return next(counter)

    def sink() -> _ShardSink:
        return _ShardSink(objects, timeline_id, codec, quality, (shard_frames, shard_bytes),
                          next_shard, written)

    try:
        metas = _encode_all(validate_frames(frames), [sink() for _ in range(workers)], codec)
        if not metas:
            raise InvalidInputError("no frames: a timeline needs at least one frame")
        metas.sort(key=lambda m: m.sequence)
        written.append(ikey)
        objects.put(ikey, index_bytes(metas))
        return metas
    except BaseException as exc:
        try:
            objects.delete(written)
        except Exception as cleanup:  # keep the original error; say what was left behind
            exc.add_note(f"cleanup of {len(written)} frame objects also failed: {cleanup}")
        raise


def _encode_all(items: Iterator[Frame], sinks: list[_ShardSink], codec: str) -> list[FrameMeta]:
    """Feed frames to one encoder thread per sink through a small bounded queue.

    The calling thread pulls and validates frames, hashes them perceptually and copies
    their pixels into PIL images (so a caller reusing its buffer is safe); the encoder
    threads encode into their shard files without the GIL. Even with one encoder this
    overlaps the caller's share with encoding. Memory: at most ~3 frames per encoder.
    """
    todo: queue.Queue[tuple[Frame, Image.Image] | None] = queue.Queue(maxsize=2 * len(sinks))
    metas: list[FrameMeta] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def run(sink: _ShardSink) -> None:
        try:
            while (item := todo.get()) is not None:
                if not stop.is_set():
                    metas.append(sink.add(*item))
            if not stop.is_set():
                sink.flush()
        except BaseException as exc:
            errors.append(exc)
            stop.set()
            while todo.get() is not None:  # keep draining so the producer never blocks
                pass
        finally:
            sink.abort()

    threads = [threading.Thread(target=run, args=(s,), name="localckpt-encode", daemon=True)
               for s in sinks]
    for t in threads:
        t.start()
    try:
        for frame in items:
            if stop.is_set():
                break
            todo.put((frame, to_pil(frame.image, codec)))
    except BaseException:
        stop.set()
        raise
    finally:
        for _ in threads:
            todo.put(None)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return metas


def index_bytes(metas: list[FrameMeta]) -> bytes:
    """The Parquet index: columns exactly FrameMeta's fields, readable by DuckDB/pyarrow."""
    cols = {name: [getattr(m, name) for m in metas] for name in _COLUMNS}
    buf = io.BytesIO()
    pq.write_table(pa.table(cols, schema=_SCHEMA), buf)
    return buf.getvalue()


def parse_index(data: bytes, where: str) -> list[FrameMeta]:
    try:
        table = pq.read_table(io.BytesIO(data))
        cols = [table.column(name).to_pylist() for name in _COLUMNS]
    except (pa.ArrowException, KeyError, OSError) as exc:
        raise CorruptDataError(f"frame index {where} cannot be read: {exc}") from exc
    metas = [FrameMeta(*row) for row in zip(*cols, strict=True)]
    metas.sort(key=lambda m: m.sequence)
    return metas


class FrameReader:
    """Reads one timeline's frames; loads the index once (one GET), then ranged reads only."""

    def __init__(self, objects: Objects, timeline_id: str) -> None:
        self.objects = objects
        self.timeline_id = timeline_id
        self._ikey = index_key(timeline_id)
        self._lock = threading.Lock()
        self._metas: list[FrameMeta] | None = None
        self._seqs: list[int] = []
        self._by_seq: dict[int, FrameMeta] = {}

    def _index(self) -> list[FrameMeta]:
        if self._metas is None:
            with self._lock:
                if self._metas is None:
                    try:
                        data = self.objects.get(self._ikey)
                    except NotFoundError as exc:
                        raise NotFoundError(
                            f"timeline {self.timeline_id} has no frames in "
                            f"{self.objects.describe()} (missing {self._ikey})"
                        ) from exc
                    metas = parse_index(data, f"{self.objects.describe()}/{self._ikey}")
                    self._seqs = [m.sequence for m in metas]
                    self._by_seq = {m.sequence: m for m in metas}
                    self._metas = metas
        return self._metas

    def index(self) -> list[FrameMeta]:
        return list(self._index())

    def meta(self, sequence: int) -> FrameMeta:
        self._index()
        try:
            return self._by_seq[sequence]
        except (KeyError, TypeError):
            raise NotFoundError(
                f"timeline {self.timeline_id} has no frame with sequence {sequence!r}"
            ) from None

    def _select(self, start: int | None, stop: int | None) -> list[FrameMeta]:
        metas = self._index()
        lo = 0 if start is None else bisect.bisect_left(self._seqs, start)
        hi = len(metas) if stop is None else bisect.bisect_left(self._seqs, stop)
        return metas[lo:max(lo, hi)]

    def _check(self, meta: FrameMeta, data: bytes) -> bytes:
        if len(data) != meta.length or hashlib.sha256(data).hexdigest() != meta.content_hash:
            raise CorruptDataError(
                f"frame {meta.sequence} of timeline {self.timeline_id} does not match its "
                f"content hash (shard {meta.shard}); the store is damaged (restore it from a "
                "copy or re-sync it from another store)"
            )
        return data

    def _fetch(self, metas: list[FrameMeta]) -> list[bytes]:
        """Raw bytes of metas (unverified), one ranged read per contiguous run per shard."""
        by_shard: dict[int, list[int]] = {}
        for i, m in enumerate(metas):
            by_shard.setdefault(m.shard, []).append(i)

        def one_shard(shard: int) -> list[tuple[int, bytes]]:
            idx = sorted(by_shard[shard], key=lambda i: metas[i].offset)
            runs: list[list[int]] = []
            for i in idx:
                if runs and metas[runs[-1][-1]].offset + metas[runs[-1][-1]].length \
                        == metas[i].offset:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            ranges = [(metas[r[0]].offset, metas[r[-1]].offset + metas[r[-1]].length)
                      for r in runs]
            key = shard_key(self.timeline_id, shard)
            if len(ranges) == 1:
                blobs = [self.objects.get_range(key, *ranges[0])]
            else:
                blobs = self.objects.get_ranges(key, ranges)
            out = []
            for run, (base, _), blob in zip(runs, ranges, blobs, strict=True):
                view = memoryview(blob)
                for i in run:
                    at = metas[i].offset - base
                    out.append((i, bytes(view[at:at + metas[i].length])))
            return out

        shards = list(by_shard)
        if len(shards) > 1 and not self.objects.is_local:
            with ThreadPoolExecutor(min(8, len(shards))) as ex:
                parts = list(ex.map(one_shard, shards))
        else:
            parts = [one_shard(s) for s in shards]
        result: list[bytes] = [b""] * len(metas)
        for part in parts:
            for i, data in part:
                result[i] = data
        return result

    def _frame(self, meta: FrameMeta, data: bytes) -> Frame:
        image = decode(self._check(meta, data), meta.codec)
        return Frame(meta.sequence, meta.timestamp, meta.chunk_id, meta.perceptual_hash, image)

    def _decode_all(self, metas: list[FrameMeta], workers: int | None) -> list[Frame]:
        blobs = self._fetch(metas)
        workers = _default_workers() if workers is None else workers
        if workers <= 1 or len(metas) < 2:
            return [self._frame(m, b) for m, b in zip(metas, blobs, strict=True)]
        with ThreadPoolExecutor(workers) as ex:  # Pillow decode and sha256 release the GIL
            return list(ex.map(self._frame, metas, blobs))

    def get(self, sequence: int) -> Frame:
        """One frame: a single ranged read once the index is cached."""
        m = self.meta(sequence)
        data = self.objects.get_range(shard_key(self.timeline_id, m.shard), m.offset,
                                      m.offset + m.length)
        return self._frame(m, data)

    def encoded(self, start: int | None = None, stop: int | None = None,
                ) -> list[tuple[FrameMeta, bytes]]:
        """Verified encoded bytes of frames with start <= sequence < stop."""
        metas = self._select(start, stop)
        blobs = self._fetch(metas)
        return [(m, self._check(m, b)) for m, b in zip(metas, blobs, strict=True)]

    def frames(self, start: int | None = None, stop: int | None = None,
               workers: int | None = None) -> list[Frame]:
        """Decoded frames with start <= sequence < stop, decoded on `workers` threads."""
        return self._decode_all(self._select(start, stop), workers)

    def iter_frames(self, start: int | None = None, stop: int | None = None,
                    batch: int = 64, workers: int | None = None) -> Iterator[Frame]:
        """Like frames() but fetches and decodes `batch` frames at a time (bounded memory)."""
        if batch < 1:
            raise InvalidInputError(f"batch must be >= 1, got {batch!r}")
        metas = self._select(start, stop)
        for i in range(0, len(metas), batch):
            yield from self._decode_all(metas[i:i + batch], workers)

    def b64(self, start: int | None = None, stop: int | None = None) -> list[dict]:
        """Frames as JSON-ready dicts; JPEG bytes are sent as stored (no re-encode)."""
        out = []
        for m, data in self.encoded(start, stop):
            jpeg = data if m.codec == "jpeg" else encode(decode(data, m.codec), "jpeg", 90)
            out.append({
                "sequence": m.sequence, "chunk_id": m.chunk_id, "timestamp": m.timestamp,
                "perceptual_hash": m.perceptual_hash, "width": m.width, "height": m.height,
                "jpeg_b64": base64.b64encode(jpeg).decode("ascii"),
            })
        return out


def frame_keys(objects: Objects, timeline_id: str) -> list[str]:
    """Every object of a timeline's frames: shards first, index last.

    Copying in this order never exposes an index whose shards are missing.
    """
    metas = FrameReader(objects, timeline_id).index()
    shards = sorted({m.shard for m in metas})
    return [shard_key(timeline_id, s) for s in shards] + [index_key(timeline_id)]


def delete_frames(objects: Objects, timeline_id: str) -> None:
    """Delete a timeline's frames: index first (readers then see "no frames", not half)."""
    ikey = index_key(timeline_id)
    objects.delete([ikey])
    objects.delete(objects.list(_prefix(timeline_id).rstrip("/")))
