"""Derived objects: stage outputs flattened once into Parquet, keyed by the output's hash.

``derived/detections/<hash>.parquet`` holds the detections of the output with that
content hash (:mod:`localckpt.flatten`, lenient: opaque frames give no rows and are
counted), one row per box, columns :data:`SCHEMA`. The key is made from the hash only and
an output never changes, so a file is never stale; an output that is not frame-keyed gets
an empty file saying so, so that nothing is parsed twice. ``store.sql`` reads these files
with DuckDB; ``evaluate`` reads them instead of the JSON when they are there.

A file that cannot be read (damaged, or written by a newer localckpt) is ignored and made
again from the output. These files are a cache: ``gc`` may remove those of outputs that
no live checkpoint refers to (:func:`stale_keys`), and sync does not copy them.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .arrow_flatten import detections_table
from .canonical import load_canonical
from .errors import CorruptDataError, InvalidInputError, LocalckptError
from .flatten import Flat, flatten
from .gcpause import gc_paused

if TYPE_CHECKING:
    import pyarrow as pa

    from .objects import Objects
    from .store import Store

__all__ = ["FORMAT", "PREFIX", "Derived", "decode", "detections_schema", "encode", "fetch",
           "key_of", "load", "make", "make_from_text", "output_text", "stale_keys"]

PREFIX = "derived/detections"
FORMAT = "detections/1"
_KEY = re.compile(r"derived/detections/([0-9a-f]{64})\.parquet")
_HASH = re.compile(r"[0-9a-f]{64}")


def detections_schema() -> pa.Schema:
    """Columns of a derived detections file (and of the ``detections`` SQL table, which
    adds ``timestamp``)."""
    import pyarrow as pa

    return pa.schema([
        ("hash", pa.string()), ("sequence", pa.int64()), ("index", pa.int32()),
        ("label", pa.string()), ("score", pa.float64()), ("x1", pa.float64()),
        ("y1", pa.float64()), ("x2", pa.float64()), ("y2", pa.float64()),
        ("track_id", pa.int64())])


def key_of(output_hash: str) -> str:
    """The object key of an output's derived detections (from the hash only)."""
    if not isinstance(output_hash, str) or not _HASH.fullmatch(output_hash):
        raise InvalidInputError(f"{output_hash!r:.80} is not an output hash")
    return f"{PREFIX}/{output_hash}.parquet"


@attrs.frozen
class Derived:
    """One output's detections. frame_keyed: False for an output that is not
    frame-keyed (no rows); opaque: frames whose value holds no detections in the
    documented form; frames: every frame sequence (frames with no boxes included)."""

    table: pa.Table
    frame_keyed: bool
    frames: tuple[int, ...]
    opaque: int

    def flat(self) -> Flat:
        """The rows as a Flat (numpy columns), as flatten(..., tracks=True) gives them."""
        t = self.table
        cols = {name: t.column(name).to_numpy(zero_copy_only=False)
                for name in ("sequence", "index", "score", "x1", "y1", "x2", "y2")}
        return Flat(self.frames, cols["sequence"], cols["index"],
                    t.column("label").to_pylist(), t.column("score").to_pylist(),
                    cols["x1"], cols["y1"], cols["x2"], cols["y2"],
                    t.column("track_id").to_pylist(), self.opaque)


def _ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Sorted sequences as [start, stop) runs: a 10,000-frame output is one run."""
    runs: list[list[int]] = []
    for s in seqs:
        if runs and runs[-1][1] == s:
            runs[-1][1] = s + 1
        else:
            runs.append([s, s + 1])
    return runs


def _table(output_hash: str, flat: Flat | None) -> pa.Table:
    import pyarrow as pa

    schema = detections_schema()
    if flat is None or not len(flat):
        return schema.empty_table()
    n = len(flat)
    return pa.table({
        "hash": pa.array([output_hash] * n, pa.string()),
        "sequence": pa.array(flat.sequence, pa.int64()),
        "index": pa.array(flat.index, pa.int32()),
        "label": pa.array(flat.label, pa.string()), "score": _doubles(flat.score),
        "x1": _doubles(flat.x1), "y1": _doubles(flat.y1),
        "x2": _doubles(flat.x2), "y2": _doubles(flat.y2),
        "track_id": pa.array(flat.track_id, pa.int64())}, schema=schema)


def _doubles(values: Sequence[float | None]) -> pa.Array:
    """Numbers as doubles, each the nearest one (pa.array refuses an int beyond 2**53;
    beyond a double's range: infinity), None as null."""
    import pyarrow as pa

    try:
        return pa.array(values, pa.float64())
    except (pa.ArrowInvalid, OverflowError):
        return pa.array([None if v is None else _double(v) for v in values], pa.float64())


def _double(value: float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond a double (copysign would convert it too)
        return math.inf if value > 0 else -math.inf


def make_from_text(output_hash: str, text: bytes) -> Derived:
    """make() of an output's canonical JSON, already checked against its hash (see
    output_text): parsed into columns by Arrow when it has the common shape
    (localckpt.arrow_flatten), else decoded and flattened in Python."""
    fast = detections_table(output_hash, text, detections_schema())
    if fast is not None:
        return Derived(fast[0], True, fast[1], 0)
    return make(output_hash, load_canonical(text))


def output_text(store: Store, output_hash: str) -> bytes:
    """An output's canonical JSON, as the catalog holds it (checked against its hash)."""
    found = store.catalog.outputs([output_hash])
    if output_hash not in found:
        raise CorruptDataError(f"{store.catalog.describe()} lacks stage output {output_hash} "
                               "that a checkpoint refers to; the catalog is damaged (re-sync "
                               "it from another store)")
    return found[output_hash]


def make(output_hash: str, output: Any) -> Derived:
    """Flatten an output (leniently, track ids included)."""
    try:
        flat = flatten(output, f"output {output_hash}", strict=False)
    except InvalidInputError:  # not frame-keyed
        return Derived(_table(output_hash, None), False, (), 0)
    return Derived(_table(output_hash, flat), True, flat.frames, flat.opaque)


def encode(output_hash: str, derived: Derived) -> bytes:
    import pyarrow.parquet as pq

    meta = {"localckpt.format": FORMAT, "localckpt.hash": output_hash,
            "localckpt.frame_keyed": "true" if derived.frame_keyed else "false",
            "localckpt.frames": json.dumps(_ranges(derived.frames), separators=(",", ":")),
            "localckpt.opaque": str(derived.opaque)}
    table = derived.table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf, use_dictionary=["hash", "label"], compression="zstd")
    return buf.getvalue()


def decode(output_hash: str, data: bytes) -> Derived | None:
    """The file's content, or None when it is not one this code wrote for this hash."""
    import pyarrow as pa

    from .shards import read_parquet

    try:
        table = read_parquet(data)
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        if meta.get("localckpt.format") != FORMAT or meta.get("localckpt.hash") != output_hash:
            return None
        table = table.replace_schema_metadata(None)
        if not table.schema.equals(detections_schema()):
            return None
        runs = json.loads(meta["localckpt.frames"])
        frames = tuple(s for start, stop in runs for s in range(int(start), int(stop)))
        return Derived(table, meta["localckpt.frame_keyed"] == "true", frames,
                       int(meta["localckpt.opaque"]))
    except (pa.ArrowException, LocalckptError, KeyError, ValueError, TypeError, OSError):
        return None


def load(objects: Objects, output_hash: str, text: Callable[[], bytes], *,
         write: bool = True, must_write: bool = True) -> Derived:
    """An output's derived detections: read from the object store when there, else made
    from text() (the output's JSON, see output_text) and, when write, stored for next
    time. With must_write False a failed write is no error (a cache that could not be
    kept: a read-only bucket must not stop an evaluation)."""
    return fetch(objects, output_hash, text, write=write, must_write=must_write)[0]


def fetch(objects: Objects, output_hash: str, text: Callable[[], bytes], *,
          write: bool = True, must_write: bool = True) -> tuple[Derived, bytes]:
    """load(), and the bytes of the file (what the store holds, or would hold)."""
    key = key_of(output_hash)
    try:
        data = objects.get(key)
    except LocalckptError:
        data = None
    found = decode(output_hash, data) if data is not None else None
    if found is not None and data is not None:
        return found, data
    with gc_paused():
        made = make_from_text(output_hash, text())
        data = encode(output_hash, made)
        if write:
            try:
                objects.put(key, data)
            except LocalckptError:
                if must_write:
                    raise
    return made, data


def stale_keys(store: Store, older_than: float = 3600.0) -> dict[str, int]:
    """Derived objects gc may remove, with their sizes: those of outputs that no live
    checkpoint refers to, last written more than older_than seconds ago (a query may be
    reading the file of an output pruned a moment ago). One LIST of the prefix and one
    read of every live tree. Keys that are not derived files are left alone."""
    listing = store.objects.stat(PREFIX)
    if not listing:
        return {}
    live = {h for t in store.list_timelines() for c in store.checkpoints(t.id)
            for h in c.stage_hashes.values()}
    cutoff = time.time() - older_than
    out = {}
    for key, (size, mtime) in sorted(listing.items()):
        m = _KEY.fullmatch(key)
        if m is not None and m.group(1) not in live and mtime <= cutoff:
            out[key] = size
    return out
