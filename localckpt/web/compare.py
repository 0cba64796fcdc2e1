"""Two checkpoints side by side, frame by frame (``/compare?a=&b=&stage=``).

Frame numbers name the same moment only within one timeline. Checkpoints of two
timelines (the same video sampled at 2 and 5 fps, say) are therefore not compared frame
by frame: the page says so, names both timelines, and offers the comparison aligned by
time (``align=time``: ``Store.frame_diff(..., align="time")`` pairs frames by nearest
timestamp), which then says that alignment was used.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..framediff import MOVED_IOU, FrameChange, FrameDiff
from ..types import Checkpoint, FrameMeta, Timeline
from . import data
from .boxes import change_boxes, count_boxes, frame_figure, kind_legend, label_legend
from .html import attr, esc, json_text, layout, link, pager, tabs, url
from .names import Names
from .pages import checkpoint_title
from .request import Refused
from .viewer import detection_frames, secs, stage_labels

if TYPE_CHECKING:
    from ..store import Store
    from .request import Request

__all__ = ["compare_api", "compare_page", "describe", "run_diff"]

COMPARE_PAGE = 12  # side-by-side frames per page of a comparison
LIST_PAGE = 1000  # changed frames listed at once


def _about(t: Timeline) -> str:
    return f"{t.source_video or '(unnamed)'}, {t.fps:g} fps, {t.frame_count:,} frames"


def run_diff(store: Store, req: Request, a: Checkpoint, b: Checkpoint, stage: str,
             match_iou: float, align: str, stage_b: str | None = None) -> FrameDiff:
    """store.frame_diff of a and b (moved_iou= of the request: the IoU under which a
    matched box has moved), refused (with the aligned comparison offered) when they
    belong to different timelines and align is not "time"."""
    if align not in ("", "time"):
        raise InvalidInputError(f"align must be 'time' or empty, not {align!r}")
    names = req.names
    if a.timeline_id != b.timeline_id and align != "time":
        ta, tb = store.get_timeline(a.timeline_id), store.get_timeline(b.timeline_id)
        aligned = url("/compare", a=a.id, b=b.id, stage=stage, align="time",
                      **({"stage_b": stage_b} if stage_b else {}))
        raise Refused(
            f"A ({checkpoint_title(a, names)}) is on timeline "
            f"{names.short(ta.id, 'timeline')} ({_about(ta)}) and B "
            f"({checkpoint_title(b, names)}) on timeline {names.short(tb.id, 'timeline')} "
            f"({_about(tb)}). Frame numbers of two timelines do not name the same moment, "
            "so they are not compared frame by frame. Compare them aligned by time: "
            "frames paired by nearest timestamp.",
            [(aligned, "compare them aligned by time"),
             (f"/t/{ta.id}", f"A's timeline ({ta.source_video or ta.id})"),
             (f"/t/{tb.id}", f"B's timeline ({tb.source_video or tb.id})")],
            title="Different timelines")
    return store.frame_diff(a.id, b.id, stage, match_iou=match_iou, align=align or None,
                            stage_b=stage_b, moved_iou=req.float("moved_iou", MOVED_IOU))


def compare_api(store: Store, req: Request) -> Any:
    a = store.get_checkpoint(req.checkpoint("a"))
    b = store.get_checkpoint(req.checkpoint("b"))
    stage, stage_b = data.choose_stages(a, b, req.text("stage"), None, req.text("stage_b"))
    fd = run_diff(store, req, a, b, stage, req.float("match_iou", 0.5), req.text("align") or "",
                  stage_b)
    return fd.to_dict()


def _summary(fd: FrameDiff) -> str:
    s = fd.summary
    cells = [("changed frames", s.changed, ""), ("frames in A", s.frames_a, ""),
             ("frames in B", s.frames_b, ""), ("only in A", s.only_a, ""),
             ("only in B", s.only_b, ""), ("values changed", s.values_changed, ""),
             ("boxes added", s.added, "added"), ("boxes removed", s.removed, "removed"),
             ("moved", s.moved, "moved"), ("relabelled", s.relabelled, "relabelled"),
             ("rescored", s.rescored, "rescored")]
    return '<div class="stats" id="summary">' + "".join(
        f'<div class={attr("stat " + cls)} data-key={attr(k)}><b>{v:,}</b>{esc(k)}</div>'
        for k, v, cls in cells) + "</div>"


class _Frames:
    """Where a changed frame's image is on each side (by sequence, or, aligned by time,
    B's frame nearest in time to A's)."""

    def __init__(self, store: Store, a: Checkpoint, b: Checkpoint, aligned: bool) -> None:
        self.a = {m.sequence: m for m in store.frame_index(a.timeline_id)}
        index_b = (store.frame_index(b.timeline_id) if b.timeline_id != a.timeline_id
                   else list(self.a.values()))
        self.b = {m.sequence: m for m in index_b}
        self.aligned = aligned
        self.aspect_a = data.pixel_aspect(store.get_timeline(a.timeline_id))
        self.aspect_b = (self.aspect_a if b.timeline_id == a.timeline_id
                         else data.pixel_aspect(store.get_timeline(b.timeline_id)))
        self._times = [m.timestamp for m in index_b]
        self._index_b = index_b

    def side_b(self, change: FrameChange) -> FrameMeta | None:
        seq = change.sequence
        if not self.aligned or change.only_b or seq not in self.a or not self._times:
            return self.b.get(seq)
        t = self.a[seq].timestamp
        i = bisect.bisect_left(self._times, t)
        near = [j for j in (i - 1, i) if 0 <= j < len(self._times)]
        return self._index_b[min(near, key=lambda j: abs(self._times[j] - t))]


def describe(change: FrameChange) -> str:
    """What changed on one frame, each count named ("+1 added -2 removed ~1 moved"): the
    CLI's terser "+1 -2" left a reader of the page to guess what -2 counts."""
    text = change.describe().split(" ")
    words = {"+": "added", "-": "removed"}
    return " ".join(f"{t} {words[t[0]]}" if t[:1] in words and t[1:].isdigit() else t
                    for t in text)


def _side(change: FrameChange, side: str, tid: str, meta: FrameMeta | None,
          aspect: float = 1.0) -> str:
    value = change.a if side == "a" else change.b
    name = side.upper()
    if change.only_b if side == "a" else change.only_a:
        return f'<div class="absent">frame {change.sequence} is not in {name}</div>'
    shapes = change_boxes(change, side)
    seq = meta.sequence if meta is not None else change.sequence
    caption = f"{name} · {count_boxes(len(shapes))}" + (
        f" · frame #{seq} at {secs(meta.timestamp)}" if meta is not None else "")
    fig = frame_figure(tid, seq, meta, shapes, esc(caption), by_kind=True, size="half",
                       aspect=aspect)
    if change.kind == "value":
        text = json_text(value)
        text = text if len(text) <= 4000 else text[:3999] + "…"
        fig += f"<pre>{esc(text)}</pre>"
    return fig


def _at(base: str, query: dict[str, str], i: int, start: int, per_page: int) -> str:
    """Where the i-th changed frame is shown: this page (an anchor) or another page."""
    page = i // per_page * per_page
    return "" if page == start else url(base, **query, start=page)


def _labels(store: Store, req: Request, a: Checkpoint, b: Checkpoint, stage: str,
            stage_b: str | None) -> str:
    counts: dict[str | None, int] = {}
    for c, name in ((a, stage), (b, stage_b or stage)):
        try:
            frames = detection_frames(store, req, c, name)
        except InvalidInputError:
            return ""
        found, _ = stage_labels(req, c, name, frames)
        for k, n in found.items():
            counts[k] = counts.get(k, 0) + n
    return label_legend(counts)  # boxes here are coloured by change: swatches are chips


def compare_page(store: Store, req: Request) -> str:
    names: Names = req.names
    a = store.get_checkpoint(req.checkpoint("a"))
    b = store.get_checkpoint(req.checkpoint("b"))
    stage, stage_b = data.choose_stages(a, b, req.text("stage"), names, req.text("stage_b"))
    align = req.text("align") or ""
    match_iou = req.float("match_iou", 0.5)
    fd = run_diff(store, req, a, b, stage, match_iou, align, stage_b)
    aligned = align == "time"
    base = "/compare"
    query = {"a": a.id, "b": b.id, "stage": stage, **({"align": "time"} if aligned else {}),
             **({"stage_b": stage_b} if stage_b else {}),
             **({"moved_iou": f"{fd.moved_iou:g}"} if fd.moved_iou != MOVED_IOU else {})}
    start = req.int("start", 0)
    per_page = COMPARE_PAGE
    first = start // LIST_PAGE * LIST_PAGE
    if first >= len(fd.changed):  # start past the end: list from the first (the pager says)
        first = 0
    listed = fd.changed[first:first + LIST_PAGE]
    items = "".join(
        f'<li data-seq="{seq}"><a href='
        f'{attr(_at(base, query, i, start, per_page) + f"#f{seq}")}>'
        f"frame {seq}</a> <span>{esc(describe(fd.frames[seq]))}</span></li>"
        for i, seq in enumerate(listed, first))
    more = "" if len(listed) == len(fd.changed) else (
        f'<p class="muted">listing changed frames {first:,}-{first + len(listed) - 1:,} of '
        f"{len(fd.changed):,}, those around the side-by-side page below</p>")
    where = _Frames(store, a, b, aligned)
    rows = []
    for seq in fd.changed[start:start + per_page]:
        change = fd.frames[seq]
        rows.append(
            f'<section class="pair" id="f{seq}"><h3>frame {seq} '
            f"<small>{esc(describe(change))}</small></h3><div class=\"sides\">"
            f"<div>{_side(change, 'a', a.timeline_id, where.a.get(seq), where.aspect_a)}</div>"
            f"<div>{_side(change, 'b', b.timeline_id, where.side_b(change), where.aspect_b)}"
            "</div>"
            "</div></section>")
    nav = pager(base, start, per_page, len(fd.changed), "changed frames", **query)
    common = sorted(a.stage_hashes.keys() & b.stage_hashes.keys())
    row = "" if stage_b else tabs(common, stage, lambda s: url(base, **{**query, "stage": s}))
    note = ""
    if aligned:
        note = ('<p class="aligned" id="aligned"><b>aligned by time</b>: A and B are on '
                "different timelines; each frame of A is paired with the frame of B nearest "
                "in time (frame numbers below are A's)</p>")
    body = (
        f'<table class="facts"><tr><th>A</th><td>{link(f"/c/{a.id}", checkpoint_title(a, names))}'
        f'</td></tr><tr><th>B</th><td>{link(f"/c/{b.id}", checkpoint_title(b, names))}</td></tr>'
        f"<tr><th>stage</th><td>{esc(stage)}"
        + (f" → {esc(stage_b)} (B's)" if stage_b else "")
        + f" · boxes match at IoU ≥ {fd.match_iou:g}"
        + (f", moved below IoU {fd.moved_iou:g}" if fd.moved_iou != MOVED_IOU else "")
        + "</td></tr></table>"
        f"{note}{row}"
        f"<h2>Summary</h2>{_summary(fd)}"
        f"<h2>Changed frames <small>{len(fd.changed):,}</small></h2>"
        + (f'{more}<ol class="changes" id="changes" start="{first + 1}">{items}</ol>'
           if fd.changed else
           '<p class="muted" id="changes">no frame differs</p>')
        + f"<h2>Side by side</h2>{kind_legend()}{_labels(store, req, a, b, stage, stage_b)}{nav}"
        f'<div class="sides heads"><div><b>A</b> {esc(checkpoint_title(a, names))}</div>'
        f"<div><b>B</b> {esc(checkpoint_title(b, names))}</div></div>{''.join(rows)}{nav}"
    )
    crumbs = [(f"/t/{a.timeline_id}", names.short(a.timeline_id, "timeline"))]
    return layout(f"Compare {checkpoint_title(a, names)} ↔ {checkpoint_title(b, names)}",
                  body, crumbs=crumbs, store=store.catalog.describe(),
                  scripts=["/static/app.js"])
