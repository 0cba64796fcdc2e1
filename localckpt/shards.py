"""Frame shards: many encoded frames per object, plus a per-timeline Parquet index.

Layout (the same on every filesystem, so sync is "copy missing keys")::

    frames/<timeline_id>/shard-000000.bin   encoded frames back to back
    frames/<timeline_id>/index.parquet      one FrameMeta row per frame, sorted by sequence

Why shards: one object per frame means thousands of small requests on S3; a shard is
read with one ranged GET per contiguous run of wanted frames. Each encoder thread fills
its own shards, so with two workers a shard holds every other stretch of the input and a
sequence range costs one ranged GET per shard it touches (fetched concurrently).

Why temp files: Pillow holds the GIL when encoding into BytesIO but not when encoding
into a real file, so each writer thread encodes straight into its own temp shard file
(in the destination directory when objects are local, so publishing is a rename).
"""

from __future__ import annotations

import binascii
import bisect
import collections
import contextlib
import hashlib
import io
import itertools
import math
import numbers
import os
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, TypeVar

import attrs
import pyarrow as pa
import pyarrow.parquet as pq

from .arguments import integer, shown
from .errors import BackendUnavailableError, CorruptDataError, InvalidInputError, NotFoundError
from .frames import (
    CODECS,
    check_codec,
    check_size,
    decode,
    encode,
    encode_into,
    to_pil,
    validate_frames,
)
from .objects import Objects, make_dirs
from .types import Frame, FrameMeta

__all__ = [
    "FrameReader",
    "WrittenFrames",
    "by_shard",
    "check_frame_key",
    "delete_frames",
    "file_mode",
    "frame_keys",
    "index_hash",
    "index_key",
    "keys_of",
    "parse_index",
    "remove_empty_dir",
    "shard_key",
    "verify_index",
    "verify_shard",
    "write_frames",
    "write_timeline_frames",
]

# A shard closes at whichever limit comes first. 16 MiB keeps a 1000-frame 720p timeline
# to ~10 objects while a ranged GET on servers that read the whole object per range
# (moto) stays cheap; on S3/MinIO a ranged GET costs the same whatever the object size.
SHARD_FRAMES = 256
SHARD_BYTES = 16 << 20
# Concurrent shard fetches: enough to saturate one S3 connection pool, few enough that
# the first shards complete (and decoding starts) early.
_FETCHERS = 4
_HASH_BATCH = 4  # encoded frames handed to the publisher at a time
_SCHEMA = pa.schema(
    [("sequence", pa.int64()), ("timestamp", pa.float64()), ("chunk_id", pa.int64()),
     ("perceptual_hash", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
     ("codec", pa.string()), ("content_hash", pa.string()), ("shard", pa.int64()),
     ("offset", pa.int64()), ("length", pa.int64())],
    metadata={"localckpt.format": "frame-index/1"},
)
_COLUMNS = tuple(f.name for f in attrs.fields(FrameMeta))
_Buf = bytes | memoryview
_T = TypeVar("_T")
_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,127}")
# The only object keys a timeline has (what a bundle or another store may name).
_FRAME_KEY = re.compile(r"frames/([0-9A-Za-z][0-9A-Za-z_-]{0,127})/"
                        r"(?:shard-(\d{6})\.bin|index\.parquet)")
_MAX_SHARD = 999_999  # shard-NNNNNN.bin: six digits
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TMP_PREFIX = ".tmp-shard-"
_mode_lock = threading.Lock()
_mode: list[int] = []


def file_mode() -> int:
    """The mode new files get under this process's umask (0o666 & ~umask).

    mkstemp creates files 0600 whatever the umask, so shards renamed into place were
    unreadable to the other users of a shared store while the index (written with
    open()) was 0644. Read from /proc where it is available: os.umask() can only be
    read by setting it, which would race with other threads creating files.
    """
    with _mode_lock:
        if not _mode:
            umask = None
            try:
                with open("/proc/self/status", encoding="ascii") as fh:
                    for line in fh:
                        if line.startswith("Umask:"):
                            umask = int(line.split()[1], 8)
            except (OSError, ValueError):
                pass
            if umask is None:
                umask = os.umask(0o022)
                os.umask(umask)
            _mode.append(0o666 & ~umask)
        return _mode[0]


def check_frame_key(key: object, timeline_id: str) -> str:
    """key if it is one of timeline_id's frame object keys (a shard or its index), else
    CorruptDataError: keys read from a bundle or another store are never used raw."""
    m = _FRAME_KEY.fullmatch(key) if isinstance(key, str) else None
    if m is None or m.group(1) != timeline_id:
        raise CorruptDataError(
            f"object key {key!r} is not a frame object of timeline {timeline_id} (expected "
            f"frames/{timeline_id}/shard-NNNNNN.bin or .../index.parquet)"
        )
    return m.group(0)


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


def _disk_error(exc: OSError, where: str | None) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"writing a frame shard in {where or tempfile.gettempdir()} failed: {exc}; "
        "check free disk space and permissions"
    )


@attrs.define
class _Write:
    """State one write_frames call shares between its threads."""

    objects: Objects
    timeline_id: str
    codec: str
    quality: int
    max_frames: int
    max_bytes: int
    tmp_dir: str | None
    published: queue.SimpleQueue[tuple[Any, ...] | None]
    lease: Any = None  # the IngestLease of this write, which keeps temp files fresh
    stop: threading.Event = attrs.Factory(threading.Event)
    errors: list[BaseException] = attrs.Factory(list)
    written: list[str] = attrs.Factory(list)
    metas: list[FrameMeta] = attrs.Factory(list)
    _shards: Iterator[int] = attrs.Factory(itertools.count)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def next_shard(self) -> int:
        with self._lock:
            return next(self._shards)

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()


class _Encoder:
    """One encoder thread's run of shard files: encode each frame straight into a temp
    file (Pillow releases the GIL for real files) and hand the byte range on."""

    def __init__(self, w: _Write) -> None:
        self.w = w
        self.fh: io.FileIO | None = None
        self.tmp = ""
        self.shard = self.count = self.pos = 0
        self.pending: list[tuple[tuple[Any, ...], int, int]] = []

    def add(self, frame: Frame) -> None:
        w = self.w
        im = to_pil(frame.image)  # here, not in the producer: the copy stays in this cache
        try:
            if self.fh is None:
                if w.tmp_dir:
                    make_dirs(w.tmp_dir)
                fd, self.tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{w.timeline_id}-",
                                                suffix=".bin", dir=w.tmp_dir)
                os.fchmod(fd, file_mode())  # as the umask says, like every other file
                self.fh = io.FileIO(fd, "w+")
                if w.lease is not None:
                    w.lease.track(self.tmp)
                self.shard, self.count, self.pos = w.next_shard(), 0, 0
            start = self.pos
            encode_into(self.fh, im, w.codec, w.quality)
            self.pos = self.fh.tell()
        except OSError as exc:
            raise _disk_error(exc, w.tmp_dir) from exc
        h, wd = frame.image.shape[:2]
        fields = (frame.sequence, frame.timestamp, frame.chunk_id, frame.perceptual_hash, wd, h)
        self.pending.append((fields, start, self.pos))
        if len(self.pending) >= _HASH_BATCH:
            self.hand_on()
        self.count += 1
        if self.count >= w.max_frames or self.pos >= w.max_bytes:
            self.finish(publish=True)

    def hand_on(self) -> None:
        """Pass encoded frames to the publisher in batches (fewer thread wake-ups)."""
        if self.pending:
            self.w.published.put(("frames", self.fh, self.shard, self.pending))
            self.pending = []

    def finish(self, publish: bool) -> None:
        """Hand the open shard to the publisher, to publish or to discard."""
        if self.fh is not None:
            self.hand_on()
            self.w.published.put(("close" if publish else "drop", self.fh, self.tmp, self.shard))
            self.fh = None

    def run(self, todo: queue.Queue[Frame | None]) -> None:
        try:
            while (item := todo.get()) is not None:
                if not self.w.stop.is_set():
                    self.add(item)
        except BaseException as exc:
            self.w.fail(exc)
            while todo.get() is not None:  # keep draining so the producer never blocks
                pass
        finally:
            self.finish(publish=not self.w.stop.is_set())


def _publish(w: _Write) -> None:
    """The publisher thread: hash each encoded frame (off the encoders' critical path) and
    publish full shards (rename locally, upload remotely, overlapping further encoding)."""
    while (msg := w.published.get()) is not None:
        try:
            if msg[0] == "frames":
                _, fh, shard, frames = msg
                if not w.stop.is_set():
                    base = frames[0][1]
                    try:  # the batch lies back to back: one read
                        view = memoryview(os.pread(fh.fileno(), frames[-1][2] - base, base))
                    except OSError as exc:
                        raise _disk_error(exc, w.tmp_dir) from exc
                    for (seq, ts, chunk, phash, wd, h), start, end in frames:
                        digest = hashlib.sha256(view[start - base:end - base]).hexdigest()
                        w.metas.append(FrameMeta(seq, ts, chunk, phash, wd, h, w.codec, digest,
                                                 shard, start, end - start))
                continue
            _, fh, tmp, shard = msg
            fh.close()
            try:
                if msg[0] == "close" and not w.stop.is_set():
                    key = shard_key(w.timeline_id, shard)
                    w.written.append(key)
                    w.objects.put_file(tmp, key)
            finally:
                if w.lease is not None:
                    w.lease.untrack(tmp)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)  # left behind by an upload, a failure or a drop
        except BaseException as exc:
            w.fail(exc)


@attrs.frozen
class WrittenFrames:
    """What write_timeline_frames stored: the index rows (by sequence), the SHA-256 of
    the index object (``Timeline.index_hash``) and every key written (index last)."""

    metas: list[FrameMeta]
    index_hash: str
    keys: tuple[str, ...]


def write_frames(objects: Objects, timeline_id: str, frames: Iterable[Frame], *,
                 codec: str = "jpeg", quality: int = 90, workers: int | None = None,
                 shard_frames: int = SHARD_FRAMES, shard_bytes: int = SHARD_BYTES,
                 ) -> list[FrameMeta]:
    """Encode frames into shards and write the index; all or nothing.

    Returns the index rows, sorted by sequence (see write_timeline_frames).
    """
    return write_timeline_frames(objects, timeline_id, frames, codec=codec, quality=quality,
                                 workers=workers, shard_frames=shard_frames,
                                 shard_bytes=shard_bytes).metas


def write_timeline_frames(objects: Objects, timeline_id: str, frames: Iterable[Frame], *,
                          codec: str = "jpeg", quality: int = 90, workers: int | None = None,
                          shard_frames: int = SHARD_FRAMES, shard_bytes: int = SHARD_BYTES,
                          lease: Any = None) -> WrittenFrames:
    """Encode frames into shards and write the index; all or nothing.

    Streams the input (memory holds a few frames per worker, never the whole timeline).
    Encoder threads read a frame's pixels after it was yielded: a generator must yield a
    new array per frame, not refill one buffer. On any error every object written for
    this call is deleted before re-raising. The caller holds the ingest lease
    (``localckpt.lease``) around this and its commit; given here, it also keeps the
    temporary shard files fresh (gc removes stale ones).
    """
    check_codec(codec, quality)
    workers = _default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInputError(f"workers must be an int >= 1, got {shown(workers)}")
    if shard_frames < 1 or shard_bytes < 1:
        raise InvalidInputError("shard_frames and shard_bytes must be >= 1")
    ikey = index_key(timeline_id)
    local = objects.local_path(ikey)
    w = _Write(objects, timeline_id, codec, quality, shard_frames, shard_bytes,
               os.path.dirname(local) if local else None, queue.SimpleQueue(), lease)
    try:
        _encode_all(w, validate_frames(frames), workers)
        if not w.metas:
            raise InvalidInputError("no frames: a timeline needs at least one frame")
        metas = sorted(w.metas, key=lambda m: m.sequence)
        w.written.append(ikey)
        data = index_bytes(metas)
        objects.put(ikey, data)
        return WrittenFrames(metas, hashlib.sha256(data).hexdigest(), tuple(w.written))
    except BaseException as exc:
        try:
            objects.delete(w.written)
            remove_empty_dir(objects, timeline_id)
        except Exception as cleanup:  # keep the original error; say what was left behind
            exc.add_note(f"cleanup of {len(w.written)} frame objects also failed: {cleanup}")
        raise


def remove_empty_dir(objects: Objects, timeline_id: str) -> None:
    """Local stores: drop the timeline's directory once empty (object stores have none):
    after a failed write, once its lease is gone too, the store is as it was."""
    path = objects.local_path(_prefix(timeline_id))
    if path is not None:
        with contextlib.suppress(OSError):
            os.rmdir(path)


def _encode_all(w: _Write, items: Iterator[Frame], workers: int) -> None:
    """Run the pipeline: this thread -> encoders -> publisher.

    This thread pulls, validates and perceptually hashes frames and feeds `workers`
    encoder threads through a small bounded queue (memory: ~3 frames per encoder).
    Encoders copy pixels into Pillow (measured: ~0.16 ms CPU per 720p frame cheaper
    there than in the producer, as the copy stays in the encoding core's cache) and
    encode without the GIL; the publisher hashes and publishes. With workers=1 the
    encoder alone is on the critical path.
    """
    todo: queue.Queue[Frame | None] = queue.Queue(maxsize=2 * workers)
    encoders = [threading.Thread(target=_Encoder(w).run, args=(todo,), daemon=True,
                                 name="localckpt-encode") for _ in range(workers)]
    publisher = threading.Thread(target=_publish, args=(w,), daemon=True,
                                 name="localckpt-publish")
    publisher.start()
    for t in encoders:
        t.start()
    try:
        for i, frame in enumerate(items):
            if w.stop.is_set():
                break
            check_size(frame.image, w.codec, f"frame {i}")
            todo.put(frame)
    except BaseException:
        w.stop.set()
        raise
    finally:
        for _ in encoders:
            todo.put(None)
        for t in encoders:
            t.join()
        w.published.put(None)
        publisher.join()
    if w.errors:
        raise w.errors[0]


def index_bytes(metas: list[FrameMeta]) -> bytes:
    """The Parquet index: columns exactly FrameMeta's fields, readable by DuckDB/pyarrow."""
    cols = {name: [getattr(m, name) for m in metas] for name in _COLUMNS}
    buf = io.BytesIO()
    pq.write_table(pa.table(cols, schema=_SCHEMA), buf)
    return buf.getvalue()


def index_hash(data: bytes) -> str:
    """The SHA-256 of an index object, as ``Timeline.index_hash`` records it."""
    return hashlib.sha256(data).hexdigest()


def verify_index(data: bytes, expected: str | None, where: str) -> None:
    """CorruptDataError unless data hashes to expected (None: an index written before
    the hash was recorded, checked only by parse_index)."""
    if expected is not None and index_hash(data) != expected:
        raise CorruptDataError(
            f"frame index {where} does not match the hash its timeline records; the store "
            "is damaged (restore it from a copy or re-sync it from another store)"
        )


def read_parquet(data: bytes) -> pa.Table:
    """A small Parquet file (an index, a bundle's table) read on this thread only.

    Not ``pq.read_table``: it goes through the dataset scanner and Arrow's thread pools,
    which then abort the interpreter at exit now and then ("terminate called without an
    active exception", apache/arrow#34314): 8 of 200 processes here, after their work was
    done. This path: none of 300."""
    return pq.ParquetFile(pa.BufferReader(data), pre_buffer=False).read(use_threads=False)


def parse_index(data: bytes, where: str) -> list[FrameMeta]:
    """Index rows sorted by sequence; CorruptDataError naming where if the bytes are not
    a well-formed index (whatever pyarrow raises on damaged bytes, and rows that cannot
    be right: a duplicate sequence, a negative offset, a shard number out of range)."""
    try:
        table = read_parquet(data)
        cols = [table.column(name).to_pylist() for name in _COLUMNS]
        metas = [FrameMeta(*row) for row in zip(*cols, strict=True)]
        sound = _columns_sound(table, dict(zip(_COLUMNS, cols, strict=True)))
    except Exception as exc:  # damaged Parquet raises many kinds (UnicodeDecodeError, ...)
        raise CorruptDataError(
            f"frame index {where} cannot be read ({type(exc).__name__}: {exc}); the store is "
            "damaged (restore it from a copy or re-sync it from another store)"
        ) from exc
    if sound:
        return metas if _ascending(cols[0]) else sorted(metas, key=lambda m: m.sequence)
    seen: set[int] = set()
    for m in metas:
        problem = _bad_row(m)
        if problem is None and m.sequence in seen:
            problem = "sequence appears twice"
        if problem is not None:
            raise CorruptDataError(
                f"frame index {where} is damaged: row for sequence {m.sequence!r}: {problem}"
            )
        seen.add(m.sequence)
    metas.sort(key=lambda m: m.sequence)
    return metas


_INT_COLUMNS = ("sequence", "chunk_id", "width", "height", "shard", "offset", "length")
_TEXT_COLUMNS = ("perceptual_hash", "codec", "content_hash")
_NOT_HEX = re.compile(r"[^0-9a-f]")


def _columns_sound(table: pa.Table, cols: dict[str, list[Any]]) -> bool:
    """Whether every row passes _bad_row and no sequence repeats, told column by column
    (C loops: a tenth of the time of the row-by-row check on a two-hour video's index).
    False says only "look row by row": that check finds the row and says what is wrong."""
    if not cols["sequence"]:
        return True
    for name in _COLUMNS:
        if table.column(name).null_count:
            return False
    types = {name: table.schema.field(name).type for name in _COLUMNS}
    if any(types[n] != pa.int64() for n in _INT_COLUMNS) or \
            types["timestamp"] != pa.float64() or \
            any(types[n] != pa.string() for n in _TEXT_COLUMNS):
        return False
    hashes = cols["content_hash"]
    return (min(cols["sequence"]) >= 0 and min(cols["width"]) >= 1 and min(cols["height"]) >= 1
            and min(cols["offset"]) >= 0 and min(cols["length"]) >= 1
            and min(cols["shard"]) >= 0 and max(cols["shard"]) <= _MAX_SHARD
            and not any(map(math.isnan, cols["timestamp"]))
            and set(cols["codec"]) <= set(CODECS)
            and set(map(len, hashes)) == {64}
            and _NOT_HEX.search("".join(hashes)) is None
            and len(set(cols["sequence"])) == len(cols["sequence"]))


def _ascending(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def _bad_row(m: FrameMeta) -> str | None:
    ints = (m.sequence, m.chunk_id, m.width, m.height, m.shard, m.offset, m.length)
    if any(type(v) is not int for v in ints):
        return "a null or non-integer field"
    if m.sequence < 0:
        return f"a negative sequence number ({m.sequence})"
    if m.width < 1 or m.height < 1 or m.offset < 0 or m.length < 1:
        return "a size, offset or length out of range"
    if not 0 <= m.shard <= _MAX_SHARD:
        return f"shard number {m.shard} out of range"
    if type(m.timestamp) is not float or m.timestamp != m.timestamp:
        return "timestamp is not a number"
    if m.codec not in CODECS:
        return f"unknown codec {m.codec!r}"
    if type(m.content_hash) is not str or not _HEX64.fullmatch(m.content_hash):
        return "content hash is not a SHA-256 hex digest"
    if type(m.perceptual_hash) is not str:
        return "perceptual hash is not text"
    return None


def by_shard(metas: Iterable[FrameMeta]) -> dict[int, list[FrameMeta]]:
    """The index's rows by shard, in one pass: checking each shard against every row
    cost frames x shards (a hostile bundle of 100,000 one-frame shards: minutes)."""
    out: dict[int, list[FrameMeta]] = {}
    for m in metas:
        out.setdefault(m.shard, []).append(m)
    return out


def verify_shard(timeline_id: str, shard: int, data: bytes, metas: Iterable[FrameMeta],
                 where: str, *, trailing: bool = True) -> int:
    """CorruptDataError unless every frame the index puts in this shard has its bytes
    there, matching its content hash, and (trailing) no bytes follow its last frame: a
    shard is written whole, so such bytes are damage that a copy would carry on (what
    sync and bundles check). Returns where the last frame ends: verify, which passes
    trailing=False, reports bytes past it as a kind of its own."""
    view = memoryview(data)
    end = 0
    for m in metas:
        if m.shard != shard:
            continue
        part = view[m.offset:m.offset + m.length]
        if len(part) != m.length or hashlib.sha256(part).hexdigest() != m.content_hash:
            raise CorruptDataError(
                f"shard {shard} of timeline {timeline_id} in {where}: frame {m.sequence} "
                "does not match its content hash; refusing the damaged shard"
            )
        end = max(end, m.offset + m.length)
    if trailing and end and len(data) > end:
        raise CorruptDataError(
            f"shard {shard} of timeline {timeline_id} in {where}: {len(data) - end} bytes "
            f"follow its last frame (byte {end}), which no frame of the index covers; "
            "refusing the damaged shard")
    return end


class FrameReader:
    """Reads one timeline's frames; loads the index once (one GET), then ranged reads only."""

    def __init__(self, objects: Objects, timeline_id: str,
                 index_hash: str | None = None) -> None:
        self.objects = objects
        self.timeline_id = timeline_id
        self.index_hash = index_hash  # checked on every index read (None: not recorded)
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
                    where = f"{self.objects.describe()}/{self._ikey}"
                    verify_index(data, self.index_hash, where)
                    metas = parse_index(data, where)
                    self._seqs = [m.sequence for m in metas]
                    self._by_seq = {m.sequence: m for m in metas}
                    self._metas = metas
        return self._metas

    def index(self) -> list[FrameMeta]:
        return list(self._index())

    def meta(self, sequence: int) -> FrameMeta:
        self._index()
        try:
            if isinstance(sequence, bool):
                raise KeyError(sequence)
            return self._by_seq[sequence]
        except (KeyError, TypeError):
            raise NotFoundError(
                f"timeline {self.timeline_id} has no frame with sequence {shown(sequence)}"
            ) from None

    def _select(self, start: int | None, stop: int | None) -> list[FrameMeta]:
        for name, bound in (("start", start), ("stop", stop)):
            if bound is not None and (isinstance(bound, bool)
                                      or not isinstance(bound, numbers.Integral)):
                raise InvalidInputError(f"{name} must be an int or None, got {shown(bound)}")
        metas = self._index()
        lo = 0 if start is None else bisect.bisect_left(self._seqs, start)
        hi = len(metas) if stop is None else bisect.bisect_left(self._seqs, stop)
        return metas[lo:max(lo, hi)]

    def _check(self, meta: FrameMeta, data: _Buf) -> _Buf:
        if len(data) != meta.length or hashlib.sha256(data).hexdigest() != meta.content_hash:
            raise CorruptDataError(
                f"frame {meta.sequence} of timeline {self.timeline_id} does not match its "
                f"content hash ({self.objects.describe()}/"
                f"{shard_key(self.timeline_id, meta.shard)}); the store is damaged (restore "
                "it from a copy or re-sync it from another store)"
            )
        return data

    def _fetch_parts(self, metas: list[FrameMeta], pool: ThreadPoolExecutor | None = None,
                     ) -> Iterator[list[tuple[int, _Buf]]]:
        """Raw bytes of metas (unverified, zero-copy views) as (position, view), one part
        per shard as it arrives; one ranged read per contiguous run of a shard, remote
        shards fetched concurrently (on `pool` when given, else on threads of this call)."""
        by_shard: dict[int, list[int]] = {}
        for i, m in enumerate(metas):
            by_shard.setdefault(m.shard, []).append(i)

        def one_shard(shard: int) -> list[tuple[int, _Buf]]:
            runs: list[list[int]] = []
            for i in sorted(by_shard[shard], key=lambda i: metas[i].offset):
                last = metas[runs[-1][-1]] if runs else None
                if last is not None and last.offset + last.length == metas[i].offset:
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
            out: list[tuple[int, _Buf]] = []
            for run, (base, _), blob in zip(runs, ranges, blobs, strict=True):
                view = memoryview(blob)
                for i in run:
                    at = metas[i].offset - base
                    out.append((i, view[at:at + metas[i].length]))
            return out

        shards = list(by_shard)
        if len(shards) > 1 and not self.objects.is_local:
            with contextlib.ExitStack() as stack:
                ex = pool or stack.enter_context(
                    ThreadPoolExecutor(min(_FETCHERS, len(shards)),
                                       thread_name_prefix="localckpt-fetch"))
                yield from (f.result() for f in as_completed(
                    [ex.submit(one_shard, s) for s in shards]))
        else:
            yield from map(one_shard, shards)

    def _fetch(self, metas: list[FrameMeta], pool: ThreadPoolExecutor | None = None,
               ) -> list[_Buf]:
        result: list[_Buf] = [b""] * len(metas)
        for part in self._fetch_parts(metas, pool):
            for i, data in part:
                result[i] = data
        return result

    def _frame(self, meta: FrameMeta, data: _Buf) -> Frame:
        image = decode(self._check(meta, data), meta.codec, (meta.width, meta.height))
        return Frame(meta.sequence, meta.timestamp, meta.chunk_id, meta.perceptual_hash, image)

    def _decode(self, metas: list[FrameMeta], parts: Iterable[list[tuple[int, _Buf]]],
                workers: int | None) -> list[Frame]:
        """Verify and decode parts as they arrive, on `workers` threads (Pillow's decoder
        and sha256 release the GIL: ~1.8x with two)."""
        workers = _default_workers() if workers is None else workers
        out: list[Frame | None] = [None] * len(metas)
        if workers <= 1 or len(metas) < 2:
            for part in parts:
                for i, data in part:
                    out[i] = self._frame(metas[i], data)
            return out  # type: ignore[return-value]
        ex = ThreadPoolExecutor(workers, thread_name_prefix="localckpt-decode")
        try:
            futures = [(i, ex.submit(self._frame, metas[i], data))
                       for part in parts for i, data in part]
            for i, fut in futures:
                out[i] = fut.result()
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
        return out  # type: ignore[return-value]

    def get(self, sequence: int) -> Frame:
        """One frame: a single ranged read once the index is cached."""
        m = self.meta(sequence)
        data = self.objects.get_range(shard_key(self.timeline_id, m.shard), m.offset,
                                      m.offset + m.length)
        return self._frame(m, data)

    def encoded(self, start: int | None = None, stop: int | None = None,
                ) -> list[tuple[FrameMeta, bytes]]:
        """Verified encoded bytes of frames with start <= sequence < stop."""
        return self._verified(self._select(start, stop),
                              lambda m, data: (m, bytes(self._check(m, data))))

    def _verified(self, metas: list[FrameMeta], fn: Callable[[FrameMeta, _Buf], _T],
                  ) -> list[_T]:
        """fn(meta, bytes) over fetched frames, each shard as it arrives, in two halves on
        two threads (sha256 releases the GIL; halves keep per-item overhead away)."""
        out: list[_T | None] = [None] * len(metas)

        def run(items: list[tuple[int, _Buf]]) -> None:
            for i, data in items:
                out[i] = fn(metas[i], data)

        if len(metas) < 32 or _default_workers() < 2:
            for part in self._fetch_parts(metas):
                run(part)
            return out  # type: ignore[return-value]
        with ThreadPoolExecutor(2, thread_name_prefix="localckpt-verify") as ex:
            futures = []
            for part in self._fetch_parts(metas):
                half = len(part) // 2
                futures += [ex.submit(run, part[:half]), ex.submit(run, part[half:])]
            for fut in futures:
                fut.result()
        return out  # type: ignore[return-value]

    def frames(self, start: int | None = None, stop: int | None = None,
               workers: int | None = None) -> list[Frame]:
        """Decoded frames with start <= sequence < stop, decoded on `workers` threads."""
        metas = self._select(start, stop)
        return self._decode(metas, self._fetch_parts(metas), workers)

    def iter_frames(self, start: int | None = None, stop: int | None = None,
                    batch: int = 64, workers: int | None = None) -> Iterator[Frame]:
        """Like frames() but streamed: encoded bytes are fetched `batch` frames at a time
        (the next batch while this one is decoded) and decoded on `workers` threads at
        most 2 x workers frames ahead of the consumer, in sequence order.

        Memory: two batches of encoded bytes plus a few decoded frames, whatever the
        count. Every thread lives for the whole stream, on purpose: glibc gives each new
        thread a malloc arena (up to 8 per core), and an arena keeps the pages of the
        frames freed into it. With threads made afresh per batch the frames landed in a
        different arena each time and peak RSS grew with the frame count (k=0.5, 723
        MB at 1000 720p frames); with long-lived threads the memory is reused.
        """
        batch = integer(batch, "batch", low=1)
        metas = self._select(start, stop)
        batches = [metas[i:i + batch] for i in range(0, len(metas), batch)]
        if not batches:
            return
        workers = _default_workers() if workers is None else workers
        with contextlib.ExitStack() as stack:
            def pool(n: int, name: str) -> ThreadPoolExecutor:
                ex = ThreadPoolExecutor(n, thread_name_prefix=f"localckpt-{name}")
                stack.callback(ex.shutdown, wait=True, cancel_futures=True)
                return ex

            fetchers = None if self.objects.is_local else pool(_FETCHERS, "fetch")
            decoders = pool(workers, "decode") if workers > 1 else None
            pre = pool(1, "prefetch")  # shut down first: its fetch may use the fetchers

            ahead = 2 * workers if decoders is not None else 0  # frames decoded ahead

            def encoded() -> Iterator[tuple[FrameMeta, _Buf]]:
                """Frames' bytes in order. Batch k+1 is fetched once batch k-1's last
                frames are decoded: two batches' bytes in memory, never three."""
                fetch = pre.submit(self._fetch, batches[0], fetchers)
                for k, chunk in enumerate(batches):
                    blobs = fetch.result()
                    for i, item in enumerate(zip(chunk, blobs, strict=True)):
                        if i == min(ahead, len(chunk) - 1) and k + 1 < len(batches):
                            fetch = pre.submit(self._fetch, batches[k + 1], fetchers)
                        yield item

            if decoders is None:
                for m, data in encoded():
                    yield self._frame(m, data)
                return
            pending: collections.deque[Future[Frame]] = collections.deque()
            for m, data in encoded():
                pending.append(decoders.submit(self._frame, m, data))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def b64(self, start: int | None = None, stop: int | None = None) -> list[dict[str, Any]]:
        """Frames as JSON-ready dicts; JPEG bytes are sent as stored (no re-encode)."""

        def row(m: FrameMeta, data: _Buf) -> dict[str, Any]:
            jpeg = self._check(m, data)
            if m.codec != "jpeg":
                jpeg = encode(decode(jpeg, m.codec, (m.width, m.height)), "jpeg", 90)
            return {
                "sequence": m.sequence, "chunk_id": m.chunk_id, "timestamp": m.timestamp,
                "perceptual_hash": m.perceptual_hash, "width": m.width, "height": m.height,
                "jpeg_b64": binascii.b2a_base64(jpeg, newline=False).decode("ascii"),
            }

        return self._verified(self._select(start, stop), row)


def frame_keys(objects: Objects, timeline_id: str, index_hash: str | None = None) -> list[str]:
    """Every object of a timeline's frames: shards first, index last.

    Copying in this order never exposes an index whose shards are missing.
    """
    metas = FrameReader(objects, timeline_id, index_hash).index()
    return keys_of(timeline_id, metas)


def keys_of(timeline_id: str, metas: Iterable[FrameMeta]) -> list[str]:
    """The object keys an index refers to: its shards (by number), then the index."""
    shards = sorted({m.shard for m in metas})
    return [shard_key(timeline_id, s) for s in shards] + [index_key(timeline_id)]


def delete_frames(objects: Objects, timeline_id: str) -> None:
    """Delete a timeline's frames: index first (readers then see "no frames", not half)."""
    ikey = index_key(timeline_id)
    objects.delete([ikey])
    objects.delete(objects.list(_prefix(timeline_id).rstrip("/")))
    remove_empty_dir(objects, timeline_id)
