"""A frame with its detections drawn over it: an ``<img>`` under an SVG overlay.

The overlay's viewBox is the frame's pixel size, so boxes (pixel coordinates, as the
detection convention says) land where they belong at any displayed size; strokes keep
their width (``vector-effect``) and labels are sized to stay readable. The image loads
lazily, so a page of many frames costs only what is scrolled to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..framediff import Box, FrameChange, parse_detections
from ..types import FrameMeta
from .html import attr, esc, shorten

__all__ = ["KINDS", "change_boxes", "frame_figure", "legend", "plain_boxes"]

#: Box classes and what they mean (the CSS colours them; the legend names them).
KINDS = {
    "same": "unchanged",
    "added": "added in B",
    "removed": "removed from A",
    "moved": "moved",
    "relabelled": "relabelled",
    "rescored": "rescored",
}

Drawn = tuple[Box, str]  # a box and its class


def plain_boxes(value: Any) -> list[Drawn]:
    """The detections of a frame value, all drawn alike (empty when it holds none)."""
    parsed = parse_detections(value)
    return [] if parsed is None else [(Box._make(d), "same") for d in parsed[1]]


def change_boxes(change: FrameChange, side: str) -> list[Drawn]:
    """One side's boxes of a changed frame, each classed by what happened to it."""
    value = change.a if side == "a" else change.b
    parsed = parse_detections(value)
    if parsed is None:
        return []
    pick = (lambda m: m.a) if side == "a" else (lambda m: m.b)
    kind: dict[int, str] = {}
    for name in ("rescored", "moved", "relabelled"):  # later names win
        for m in getattr(change, name):
            kind[pick(m).position] = name
    for box in change.removed if side == "a" else change.added:
        kind[box.position] = "removed" if side == "a" else "added"
    return [(Box._make(d), kind.get(d[6], "same")) for d in parsed[1]]


def _label(box: Box) -> str:
    parts = [box.label or ""]
    if box.score is not None:
        parts.append(f"{box.score:.2f}")
    return " ".join(p for p in parts if p)


def _overlay(width: int, height: int, boxes: Iterable[Drawn]) -> str:
    font = max(8.0, width / 36)
    items = []
    for box, cls in boxes:
        w, h = box.x2 - box.x1, box.y2 - box.y1
        items.append(f'<g class={attr("box " + cls)}><rect x="{box.x1:g}" y="{box.y1:g}" '
                     f'width="{w:g}" height="{h:g}" vector-effect="non-scaling-stroke"/>')
        text = shorten(_label(box), 24)
        if text:
            ty = box.y1 - font * 0.3 if box.y1 >= font else box.y1 + font
            tw = len(text) * font * 0.52 + font * 0.4
            items.append(
                f'<rect class="tag" x="{box.x1:g}" y="{ty - font * 0.95:g}" width="{tw:g}" '
                f'height="{font * 1.2:g}"/><text x="{box.x1 + font * 0.2:g}" y="{ty:g}" '
                f'font-size="{font:g}">{esc(text)}</text>'
            )
        items.append("</g>")
    return (f'<svg class="overlay" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(items)}</svg>')


def frame_figure(timeline_id: str, sequence: int, meta: FrameMeta | None,
                 boxes: Sequence[Drawn], caption: str, *, anchor: str = "") -> str:
    """A figure: the frame image with boxes over it, and a caption."""
    ident = f" id={attr(anchor)}" if anchor else ""
    n = f"{len(boxes)} box" + ("" if len(boxes) == 1 else "es")
    if meta is None:
        shot = (f'<div class="shot missing">frame {sequence} is not in the timeline '
                f"({n})</div>")
    else:
        src = attr(f"/frames/{timeline_id}/{sequence}.jpg")
        shot = (f'<div class="shot"><img src={src} loading="lazy" width="{meta.width}" '
                f'height="{meta.height}" alt={attr(f"frame {sequence}")}>'
                f"{_overlay(meta.width, meta.height, boxes)}</div>")
    return (f'<figure class="frame" data-seq="{sequence}" data-boxes="{len(boxes)}"{ident}>'
            f"{shot}<figcaption>{caption}</figcaption></figure>")


def legend() -> str:
    return '<p class="legend">' + " ".join(
        f'<span class={attr("key " + k)}>{esc(v)}</span>' for k, v in KINDS.items()
    ) + "</p>"
