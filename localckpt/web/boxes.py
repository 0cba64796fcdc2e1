"""A frame with its detections drawn over it: an ``<img>`` under an SVG overlay.

The overlay's viewBox is the frame's pixel size, so boxes (pixel coordinates, as the
detection convention says) land where they belong at any displayed size. Each box is
coloured by its label (:mod:`localckpt.web.colours`), or by its track when it has a
``track_id``, or, on the compare page, by what changed. Its text sits on a dark chip
(readable on any background) placed by :func:`place_chips`: above the box, else inside
it, else below, never over another chip when there is room, and always inside the image.
The text is fitted to its chip (``textLength``), so it cannot run past it.

Coordinates are whatever a stage wrote: boxes are clipped to the frame, and numbers too
large for a float are drawn at the edge rather than failing the page.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..framediff import Box, FrameChange, parse_detections
from ..types import FrameMeta
from .colours import label_colour, label_key, track_colour, track_text
from .html import attr, esc

__all__ = ["KINDS", "TEXT", "Shape", "change_boxes", "count_boxes", "frame_figure", "kind_legend",
           "label_counts", "label_legend", "overlay", "place_chips", "plain_boxes"]

#: Box classes of a comparison and what they mean (the CSS colours them).
KINDS = {
    "same": "unchanged",
    "added": "added in B",
    "removed": "removed from A",
    "moved": "moved",
    "relabelled": "relabelled",
    "rescored": "rescored",
}
_CHAR = 0.6  # width of a character in ems (the chip font is monospace)
_MAX_CHARS = 28


class Shape(NamedTuple):
    """A box to draw: the detection, its class (a KINDS key) and its track id text."""

    box: Box
    kind: str = "same"
    track: str | None = None


class Chip(NamedTuple):
    x: float
    y: float
    w: float
    h: float
    text: str


def _tracks(value: Any, key: str, count: int) -> list[str | None]:
    items = value.get(key) if isinstance(value, dict) else None
    if not isinstance(items, list):
        return [None] * count
    return [track_text(item.get("track_id")) if isinstance(item, dict) else None
            for item in items[:count]] + [None] * max(0, count - len(items))


def plain_boxes(value: Any) -> list[Shape]:
    """The detections of a frame value, each with its track id (empty when the value
    holds none)."""
    parsed = parse_detections(value)
    if parsed is None:
        return []
    key, dets = parsed
    tracks = _tracks(value, key, len(dets))
    return [Shape(Box._make(d), "same", tracks[d[6]]) for d in dets]


def change_boxes(change: FrameChange, side: str) -> list[Shape]:
    """One side's boxes of a changed frame, each classed by what happened to it."""
    value = change.a if side == "a" else change.b
    parsed = parse_detections(value)
    if parsed is None:
        return []
    key, dets = parsed
    tracks = _tracks(value, key, len(dets))
    pick = (lambda m: m.a) if side == "a" else (lambda m: m.b)
    kind: dict[int, str] = {}
    for name in ("rescored", "moved", "relabelled"):  # later names win
        for m in getattr(change, name):
            kind[pick(m).position] = name
    for box in change.removed if side == "a" else change.added:
        kind[box.position] = "removed" if side == "a" else "added"
    return [Shape(Box._make(d), kind.get(d[6], "same"), tracks[d[6]]) for d in dets]


def count_boxes(n: int) -> str:
    """"1 box", "3 boxes": as every caption says it."""
    return f"{n:,} box" + ("" if n == 1 else "es")


def label_counts(frames: Iterable[Any]) -> dict[str | None, int]:
    """How many boxes of each label the frame values hold (for the legend)."""
    counts: dict[str | None, int] = {}
    for value in frames:
        for s in plain_boxes(value):
            counts[s.box.label] = counts.get(s.box.label, 0) + 1
    return counts


# -- numbers and text ---------------------------------------------------------------------


def _num(v: Any) -> float:
    """A coordinate or score as a float; integers past float range become +-1e308."""
    try:
        f = float(v)
    except OverflowError:
        return 1e308 if v > 0 else -1e308
    return f if math.isfinite(f) else math.copysign(1e308, f)


def _score(v: Any) -> str:
    f = _num(v)
    return f"{f:.2f}" if abs(f) < 1000 else f"{f:.3g}"


def _text(shape: Shape) -> str:
    box = shape.box
    parts = [f"#{shape.track}" if shape.track is not None else "", box.label or ""]
    if box.score is not None:
        parts.append(_score(box.score))
    return " ".join(p for p in parts if p)


def _colour(shape: Shape) -> str:
    return track_colour(shape.track) if shape.track is not None else label_colour(
        shape.box.label)


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


# -- placing the text chips ---------------------------------------------------------------


def _overlap(a: Chip, b: Chip) -> float:
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return w * h if w > 0 and h > 0 else 0.0


def place_chips(width: int, height: int, boxes: Sequence[tuple[float, float, float, float]],
                texts: Sequence[str], font: float) -> list[Chip | None]:
    """A chip (text background) per box, inside the width x height image: above the box,
    else inside its top, below it, or inside its bottom, the first that overlaps no chip
    placed before (else the one that overlaps least). None for a box without text or an
    image too small for any."""
    h = font * 1.3
    pad = font * 0.3
    chars = int((width - 2 * pad) / (font * _CHAR))
    placed: list[Chip] = []
    out: list[Chip | None] = []
    for (x1, y1, _x2, y2), text in zip(boxes, texts, strict=True):
        text = _fit(text, min(chars, _MAX_CHARS))
        if not text or chars < 1 or h > height:
            out.append(None)
            continue
        w = len(text) * font * _CHAR + 2 * pad
        best: Chip | None = None
        best_cost = math.inf
        for x, y in ((x1, y1 - h), (x1, y1), (x1, y2), (x1, y2 - h)):
            chip = Chip(min(max(0.0, x), width - w), min(max(0.0, y), height - h), w, h,
                        text)
            cost = sum(_overlap(chip, p) for p in placed)
            if cost < best_cost:
                best, best_cost = chip, cost
            if cost == 0:
                break
        assert best is not None
        placed.append(best)
        out.append(best)
    return out


# -- drawing ------------------------------------------------------------------------------


#: Text size as a fraction of the frame's width, by how wide the frame is shown.
TEXT = {"small": 1 / 30, "half": 1 / 42, "big": 1 / 54}


def overlay(width: int, height: int, shapes: Sequence[Shape], *, by_kind: bool = False,
            size: str = "small", aspect: float = 1.0) -> str:
    """The SVG drawn over a width x height frame: boxes coloured by label or track (by
    what changed when by_kind), each with its text chip; text sized for the frame shown
    small (a grid of frames), at half the page's width, or big (the viewer). aspect != 1
    (non-square pixels): the SVG states the frame's shape as shown, width times aspect
    by height, and sizes the figure (app.css, ``.shot.anamorphic``)."""
    font = width * TEXT[size]  # in the frame's pixels, which the page scales to its width:
    # a floor here (it was 8 px) made text on a small frame (160 px wide, shown 960 px
    # wide) six times the size it is on a large one, covering the frame
    clipped = []
    for s in shapes:
        b = s.box
        x1 = min(max(_num(b.x1), 0.0), width)
        y1 = min(max(_num(b.y1), 0.0), height)
        clipped.append((x1, y1, max(x1, min(_num(b.x2), width)),
                        max(y1, min(_num(b.y2), height))))
    chips = place_chips(width, height, clipped, [_text(s) for s in shapes], font)
    items = []
    for s, (x1, y1, x2, y2), chip in zip(shapes, clipped, chips, strict=True):
        colour = _colour(s)
        data = f" data-label={attr(label_key(s.box.label))}"
        if s.track is not None:
            data += f" data-track={attr(s.track)}"
        stroke = "" if by_kind else f' stroke="{colour}"'
        items.append(f'<g class={attr("box " + s.kind)}{data}><rect class="outline" '
                     f'x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}"'
                     f'{stroke} vector-effect="non-scaling-stroke"/>')
        if chip is not None:
            pad = font * 0.3
            items.append(
                f'<rect class="chip" x="{chip.x:.2f}" y="{chip.y:.2f}" width="{chip.w:.2f}" '
                f'height="{chip.h:.2f}"/><rect class="key" x="{chip.x:.2f}" '
                f'y="{chip.y:.2f}" width="{pad * 0.8:.2f}" height="{chip.h:.2f}" '
                f'fill="{colour}"/><text x="{chip.x + pad:.2f}" '
                f'y="{chip.y + chip.h * 0.77:.2f}" font-size="{font:.2f}" '
                f'textLength="{chip.w - 2 * pad:.2f}" lengthAdjust="spacingAndGlyphs">'
                f"{esc(chip.text)}</text>")
        items.append("</g>")
    cls = "overlay kinds" if by_kind else "overlay"
    shown = "" if aspect == 1.0 else f' width="{width * aspect:.2f}" height="{height}"'
    return (f'<svg class="{cls}" viewBox="0 0 {width} {height}"{shown} '
            f'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">'
            f'{"".join(items)}</svg>')


def frame_figure(timeline_id: str, sequence: int, meta: FrameMeta | None,
                 shapes: Sequence[Shape], caption: str, *, anchor: str = "",
                 by_kind: bool = False, cls: str = "frame", lazy: bool = True,
                 position: int | None = None, size: str = "small", aspect: float = 1.0
                 ) -> str:
    """A figure: the frame image with boxes over it, and a caption (markup).
    position: the frame's place in the timeline's index, when a click on the figure
    should show it in the viewer. aspect: width over height of one pixel (see
    data.pixel_aspect): the image, and the boxes with it, are drawn that much wider."""
    ident = f" id={attr(anchor)}" if anchor else ""
    if position is not None:
        cls += " pick"
        ident += f' data-pos="{position}"'
    n = count_boxes(len(shapes))
    if meta is None:
        shot = (f'<div class="shot missing">frame {sequence} is not in the timeline '
                f"({n})</div>")
    else:
        src = attr(f"/frames/{timeline_id}/{sequence}.jpg")
        loading = ' loading="lazy"' if lazy else ""
        shot = (f'<div class="{"shot" if aspect == 1.0 else "shot anamorphic"}"><img '
                f'src={src}{loading} width="{meta.width}" height="{meta.height}" '
                f'alt={attr(f"frame {sequence}")}>'
                + overlay(meta.width, meta.height, shapes, by_kind=by_kind, size=size,
                          aspect=aspect)
                + "</div>")
    return (f'<figure class={attr(cls)} data-seq="{sequence}" data-boxes="{len(shapes)}"'
            f"{ident}>{shot}<figcaption>{caption}</figcaption></figure>")


def kind_legend() -> str:
    """What the colours of a comparison mean."""
    return '<p class="legend">' + " ".join(
        f'<span class={attr("key " + k)}>{esc(v)}</span>' for k, v in KINDS.items()
    ) + "</p>"


def label_legend(counts: Mapping[str | None, int],
                 tracked: Collection[str | None] = ()) -> str:
    """A swatch, name, count and a show/hide toggle per label (app.js does the hiding);
    tracked: labels whose boxes all have a track id (coloured by track, so no swatch)."""
    if not counts:
        return ""
    order = sorted(counts, key=lambda k: (-counts[k], k or ""))

    def swatch(k: str | None) -> str:
        if k in tracked:  # its boxes take their track's colour: a swatch would mislead
            return '<span class="swatch track">#</span>'
        return (f'<svg class="swatch" width="12" height="12" viewBox="0 0 12 12">'
                f'<rect width="12" height="12" rx="2" fill="{label_colour(k)}"/></svg>')

    items = "".join(
        f'<label class="lab"><input type="checkbox" checked '
        f"data-label={attr(label_key(k))}>{swatch(k)}"
        f'{esc(k if k else "(no label)")} <span class="n">{counts[k]:,}</span></label>'
        for k in order)
    note = ('<span class="muted">boxes with a track_id are coloured by track; their text '
            "starts with #id</span>") if tracked else ""
    return f'<div class="labels" id="labels"><b>labels</b> {items}{note}</div>'
