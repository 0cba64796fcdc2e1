"""A derived detections table made straight from an output's JSON text by Arrow.

``flatten`` builds a Python object per box and then columns from them: 0.3 s for an output
of 10,000 frames x 5 boxes, most of an ``evaluate``'s first call. Arrow's JSON reader
parses the text into columns in C++ (and without the GIL, so outputs parse side by side),
and the checks ``flatten`` makes box by box become a few checks of whole columns.

This path takes only the common shape: ``{"frames": [{"sequence": n, "detections":
[{"box": [x1, y1, x2, y2], "label": ..., "score": ..., "track_id": ...}, ...]}, ...]}``
(or ``"boxes"`` for ``"detections"`` in every frame), every frame and box well formed.
Anything else (frames keyed by number, bare boxes, a frame without the key, an opaque
frame, a sequence given twice, values whose type Arrow cannot unify) gives None, and the
caller flattens the output in Python, which knows every rule and names what is wrong.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["detections_table"]

_EXACT = 2**53  # integers beyond this do not survive a double


def detections_table(output_hash: str, data: bytes, schema: pa.Schema
                     ) -> tuple[pa.Table, tuple[int, ...]] | None:
    """(rows in schema, every frame sequence ascending) of canonical JSON text, or None
    when the output is not in the shape above."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.json as pj

    try:
        read = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(
            use_threads=False, block_size=len(data) + 1))
    except pa.ArrowException:  # types that do not unify, a line too long, ...
        return None
    if read.num_rows != 1 or "frames" not in read.column_names:
        return None
    frames = read.column("frames").combine_chunks()
    if not pa.types.is_list(frames.type) or frames.null_count:
        return None
    rows = frames.flatten()
    if not pa.types.is_struct(rows.type) or rows.null_count:
        return None
    names = {f.name for f in rows.type}
    if "sequence" not in names or len(names & {"detections", "boxes"}) != 1:
        return None
    seq = rows.field("sequence")
    lists = rows.field("detections" if "detections" in names else "boxes")
    if seq.type != pa.int64() or seq.null_count or not pa.types.is_list(lists.type) \
            or lists.null_count:
        return None
    seqs = seq.to_numpy()
    if not len(seqs) or seqs.min() < 0 or len(np.unique(seqs)) != len(seqs):
        return None
    items = lists.flatten()
    if not len(items):
        return None
    if not pa.types.is_struct(items.type) or items.null_count \
            or "box" not in {f.name for f in items.type}:
        return None
    columns = _columns(items)
    if columns is None:
        return None
    counts = np.diff(lists.offsets.to_numpy())
    sequence = np.repeat(seqs, counts)
    index = np.arange(len(sequence)) - np.repeat(np.cumsum(counts) - counts, counts)
    n = len(sequence)
    table = pa.table({
        "hash": pa.repeat(pa.scalar(output_hash, pa.string()), n),
        "sequence": pa.array(sequence, pa.int64()),
        "index": pa.array(index.astype(np.int32)), **columns}, schema=schema)
    if bool(np.all(seqs[1:] > seqs[:-1])):  # usually already in order
        return table, tuple(seqs.tolist())
    order = np.argsort(sequence, kind="stable")  # frames ascending, list order within
    return table.take(pa.array(order)), tuple(sorted(seqs.tolist()))


def _columns(items: pa.StructArray) -> dict[str, pa.Array] | None:
    """label, score, x1, y1, x2, y2, track_id of the items, or None for a bad one."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    box = items.field("box")
    if not pa.types.is_list(box.type) or box.null_count:
        return None
    coords = box.flatten()
    if len(coords) != 4 * len(box) or pc.min(pc.list_value_length(box)).as_py() != 4 \
            or coords.null_count or coords.type not in (pa.int64(), pa.float64()) \
            or _inexact(coords):
        return None
    xy = coords.to_numpy()
    xy = xy.astype(np.float64).reshape(-1, 4)
    if (xy[:, 0] > xy[:, 2]).any() or (xy[:, 1] > xy[:, 3]).any():
        return None
    n = len(items)
    names = {f.name for f in items.type}
    label = items.field("label") if "label" in names else pa.nulls(n)
    score = items.field("score") if "score" in names else pa.nulls(n)
    track = items.field("track_id") if "track_id" in names else pa.nulls(n)
    if label.type not in (pa.string(), pa.null()) \
            or score.type not in (pa.float64(), pa.int64(), pa.null()) \
            or _inexact(score):
        return None
    if track.type == pa.float64():  # ints and floats: only the ints are track ids
        return None
    if track.type != pa.int64():  # no track id is an integer (flatten keeps ints only)
        track = pa.nulls(n, pa.int64())
    return {"label": label.cast(pa.string()), "score": score.cast(pa.float64()),
            "x1": pa.array(xy[:, 0]), "y1": pa.array(xy[:, 1]),
            "x2": pa.array(xy[:, 2]), "y2": pa.array(xy[:, 3]), "track_id": track}


def _inexact(values: pa.Array) -> bool:
    """Whether integer values hold one a double cannot represent exactly."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if values.type != pa.int64():
        return False
    low, high = pc.min_max(values).values()
    return low.is_valid and (low.as_py() < -_EXACT or high.as_py() > _EXACT)
