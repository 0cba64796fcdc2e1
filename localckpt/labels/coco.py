"""COCO detection files (what CVAT, Label Studio and most tools export).

Reading: an image's frame number is the last run of digits in its ``file_name``
(``frame_000123.jpg`` is 123); each annotation's ``bbox`` ``[x, y, w, h]`` becomes
``[x1, y1, x2, y2]``; its label is the name of its ``category_id`` in ``categories``; a
``score`` is kept, and so is a track id (``track_id``, or ``attributes.track_id`` as CVAT
writes it). An image without annotations is a frame labelled empty. Crowd regions
(``iscrowd: 1``) are not boxes: they are reported as skipped.

Writing: one image per frame (``frame_000123.jpg``, with the frame's width and height),
categories numbered from 1 in label order, one annotation per box.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import (
    MAX_BOXES,
    LabelFileError,
    OutFrame,
    Parsed,
    RawBox,
    RawFrame,
    atomic_write,
    check_label,
    check_track,
    finite,
    last_digits,
    read_bounded,
    text_of,
    too_many_boxes,
    xywh_box,
)

__all__ = ["read", "write"]


#: JSON objects and arrays a COCO file may hold (a box is an annotation and its bbox,
#: an image one more): json.loads makes each a Python object of 56 bytes at least, so
#: a 256 MB file of "{}," took 7 GB. Counted before parsing (brackets inside strings
#: too: at worst a file is refused that holds more than a million of them).
MAX_CONTAINERS = 3 * MAX_BOXES


def _json(path: Path) -> Any:
    data = read_bounded(path)
    containers = data.count(b"{") + data.count(b"[")
    if containers > MAX_CONTAINERS:
        raise LabelFileError(path, "", f"holds {containers:,} JSON objects and arrays, more "
                                       f"than the {MAX_CONTAINERS:,} one import takes "
                                       f"({MAX_BOXES:,} boxes); split it")
    text = text_of(path, data)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelFileError(path, f"line {exc.lineno} column {exc.colno}",
                             f"is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise LabelFileError(path, "", "nests JSON too deeply to be a COCO file") from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise LabelFileError(path, "", f"is not JSON this reader can take ({exc})") from None


def _list(path: Path, doc: dict[str, Any], key: str, required: bool) -> list[Any]:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise LabelFileError(path, key, f'"{key}" must be a list (a COCO file has "images", '
                                        '"annotations" and "categories")')
    return value


def _ident(value: Any) -> bool:
    return (type(value) is int) or (isinstance(value, str) and 0 < len(value) <= 200)


def read(path: Path) -> Parsed:
    """The labelled frames of a COCO file (see the module docstring)."""
    doc = _json(path)
    if not isinstance(doc, dict):
        raise LabelFileError(path, "", "is not a JSON object (a COCO file has \"images\", "
                                        "\"annotations\" and \"categories\")")
    images = _list(path, doc, "images", True)
    annotations = _list(path, doc, "annotations", False)
    categories = _list(path, doc, "categories", True)

    names: dict[Any, str] = {}
    for i, cat in enumerate(categories):
        where = f"categories[{i}]"
        if not isinstance(cat, dict) or not _ident(cat.get("id")):
            raise LabelFileError(path, where, "needs an integer or string \"id\"")
        if cat["id"] in names:
            raise LabelFileError(path, where, f"category id {cat['id']!r} appears twice")
        names[cat["id"]] = check_label(path, where, cat.get("name"))

    frames: dict[Any, tuple[int, str]] = {}  # image id -> (frame number, where)
    by_number: dict[int, str] = {}
    for i, img in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(img, dict) or not _ident(img.get("id")):
            raise LabelFileError(path, where, "needs an integer or string \"id\"")
        where = f"images[{i}] (id {img['id']!r})"
        name = img.get("file_name")
        if not isinstance(name, str):
            raise LabelFileError(path, where, "needs a \"file_name\" string")
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        number = last_digits(base.rsplit(".", 1)[0] if "." in base else base)
        if number is None:
            raise LabelFileError(path, where, f"file_name {name!r:.80} holds no frame number "
                                              "(the last run of digits, as in "
                                              "frame_000123.jpg)")
        if img["id"] in frames:
            raise LabelFileError(path, where, "image id appears twice")
        if number in by_number:
            raise LabelFileError(path, where, f"is frame {number}, as {by_number[number]} is")
        frames[img["id"]] = (number, where)
        by_number[number] = where

    if len(annotations) > MAX_BOXES:
        raise too_many_boxes(path, len(annotations))
    boxes: dict[Any, list[RawBox]] = {k: [] for k in frames}
    skipped: list[tuple[str, str]] = []
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise LabelFileError(path, where, "is not an object")
        if "id" in ann:
            where = f"annotations[{i}] (id {ann['id']!r:.40})"
        image = ann.get("image_id")
        if not _ident(image) or image not in frames:
            raise LabelFileError(path, where, f"image_id {image!r:.40} is not an image of "
                                              "this file")
        cat = ann.get("category_id")
        if not _ident(cat) or cat not in names:
            raise LabelFileError(path, where, f"category_id {cat!r:.40} is not a category of "
                                              "this file")
        if ann.get("iscrowd") in (1, True):
            skipped.append((where, "a crowd region (iscrowd 1), not a box"))
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise LabelFileError(path, where, f"bbox {bbox!r:.60} is not [x, y, width, height]")
        score = ann.get("score")
        if score is not None and not finite(score):
            raise LabelFileError(path, where, f"score {score!r:.40} is not a finite number")
        track = ann.get("track_id")
        attributes = ann.get("attributes")
        if track is None and isinstance(attributes, dict):
            track = attributes.get("track_id")
        if track is not None:
            if type(track) is not int:
                raise LabelFileError(path, where, f"track_id {track!r:.40} is not an integer")
            check_track(path, where, track)
        boxes[image].append(RawBox(xywh_box(path, where, bbox), names[cat],
                                   None if score is None else float(score), track))
    return Parsed(tuple(RawFrame(number, where, tuple(boxes[k]))
                        for k, (number, where) in frames.items()), tuple(skipped))


def write(path: Path, frames: Sequence[OutFrame], *, overwrite: bool = False) -> None:
    """A COCO file of these frames (see the module docstring), written atomically;
    an existing file is replaced only if overwrite."""
    labels = sorted({d["label"] or "" for f in frames for d in f.dets})
    cat_id = {name: i for i, name in enumerate(labels, 1)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for f in frames:
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": f"frame_{f.number:06d}.jpg",
                       "width": f.width, "height": f.height})
        for d in f.dets:
            x1, y1, x2, y2 = d["box"]
            ann: dict[str, Any] = {
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": cat_id[d["label"] or ""], "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            }
            if d.get("score") is not None:
                ann["score"] = d["score"]
            if d.get("track_id") is not None:
                ann["track_id"] = d["track_id"]
            annotations.append(ann)
    doc = {"info": {"description": "exported by localckpt"}, "images": images,
           "annotations": annotations,
           "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in cat_id.items()]}
    atomic_write(path, json.dumps(doc, ensure_ascii=False, allow_nan=False).encode(),
                 overwrite=overwrite)
