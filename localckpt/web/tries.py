"""Deciding between tries in the web view: a ranking page and a synced side-by-side view.

- ``/t/{timeline}/tries?stage=&against=&metric=&iou=``: every try of a stage (the
  checkpoints that added it) with its metrics against a reference (imported labels or any
  try), ranked by the metric chosen (header links re-rank), each linking to its
  checkpoint, to its frames beside the reference's and, when both have the stage, to the
  frame diff. The ranking is ``Evaluation.rows()``; nothing is written (derived files
  are read when present, never made: the server is read-only).
- ``/t/{timeline}/side?c=ID&c=ID...&stage=&seq=``: one frame of 2 to 4 checkpoints side by
  side, each with its boxes; a slider and the arrow keys move every pane in step
  (static/tries.js asks ``/t/{timeline}/side/panes`` for the panes of another frame).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .. import derived
from ..errors import InvalidInputError, LocalckptError, NotFoundError
from ..evaluate import METRICS, Evaluation, evaluate
from ..framediff import Box
from ..types import Checkpoint, FrameMeta
from .boxes import Shape, count_boxes, frame_figure
from .data import pixel_aspect
from .html import attr, compact, esc, layout, link, shorten, url
from .names import Names, check_ref, no_frame, resolve

if TYPE_CHECKING:
    import pyarrow as pa

    from ..store import Store
    from .request import Request

__all__ = ["panes_fragment", "side_page", "tries_page"]

REFERENCE_STAGE = "labels"
MAX_PANES = 4
_CACHED_OUTPUTS = 16  # parsed outputs kept for the side view (content-addressed: never stale)
_COLUMNS = [("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("ap50", "AP50"),
            ("ap", "AP"), ("tp", "TP"), ("fp", "FP"), ("fn", "FN")]
_STYLES = '<link rel="stylesheet" href="/static/tries.css">'


def _page(title: str, body: str, store: Store, crumbs: list[tuple[str, str]],
          scripts: list[str] | None = None) -> str:
    html = layout(title, body, crumbs=crumbs, store=store.catalog.describe(),
                  scripts=scripts or [])
    return html.replace("</head>", _STYLES + "</head>", 1)


def _label(c: Checkpoint, tags: dict[str, list[str]]) -> str:
    if tags.get(c.id):
        return ", ".join(sorted(tags[c.id]))
    if c.scenario_label:
        return c.scenario_label
    return c.stage or ("root" if c.parent_id is None else "merge")


def _tags(store: Store, timeline_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for g in store.tags(timeline_id):
        found.setdefault(g.checkpoint_id, []).append(g.name)
    return found


def _number(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,}" if isinstance(v, int) else f"{v:.3f}"


# -- the tries page -----------------------------------------------------------------------


def _default_stage(checkpoints: list[Checkpoint], asked: str | None) -> str | None:
    stages = [c.stage for c in checkpoints if c.stage]
    if asked:
        return asked
    if "detect" in stages:
        return "detect"
    others = [s for s in stages if s != REFERENCE_STAGE]
    return max(others, key=others.count) if others else None


def _default_reference(store: Store, checkpoints: list[Checkpoint],
                       asked: str | None) -> str | None:
    if asked:
        return resolve(store, check_ref(asked, "against"))
    labels = [c for c in checkpoints if c.stage == REFERENCE_STAGE]
    return max(labels, key=lambda c: (c.created_at, c.id)).id if labels else None


def _form(tid: str, checkpoints: list[Checkpoint], tags: dict[str, list[str]],
          shorts: dict[str, str], stage: str | None,
          reference: str | None, metric: str, iou: float) -> str:
    stages = sorted({c.stage for c in checkpoints if c.stage})
    if stage and stage not in stages:  # asked for, none here: shown as the message says
        stages.insert(0, stage)
    stage_opts = "".join(f"<option value={attr(s)}{' selected' if s == stage else ''}>"
                         f"{esc(s)}</option>" for s in stages)
    refs = sorted((c for c in checkpoints if c.parent_id is not None),
                  key=lambda c: (c.stage != REFERENCE_STAGE, c.created_at, c.id))
    ref_opts = '<option value="">(choose a reference)</option>' + "".join(
        f"<option value={attr(c.id)}{' selected' if c.id == reference else ''}>"
        f"{esc(shorten(_label(c, tags), 40))} · {esc(c.stage)} · {esc(shorts[c.id])}</option>"
        for c in refs)
    metric_opts = "".join(f"<option value={attr(m)}{' selected' if m == metric else ''}>"
                          f"{esc(m)}</option>" for m in METRICS)
    return (
        f'<form class="tries-form" action={attr(f"/t/{tid}/tries")} method="get">'
        f'<label>stage <select name="stage">{stage_opts}</select></label> '
        f'<label>against <select name="against" id="against">{ref_opts}</select></label> '
        f'<label>rank by <select name="metric">{metric_opts}</select></label> '
        f'<label>IoU <input name="iou" type="number" min="0.05" max="1" step="0.05" '
        f'value={attr(f"{iou:g}")}></label> <button type="submit">show</button></form>')


def _header(tid: str, query: dict[str, str], metric: str) -> str:
    cells = []
    for key, title in _COLUMNS:
        cls = "metric on" if key == metric else "metric"
        arrow = " ▾" if key == metric else ""
        cells.append(f'<th class={attr(cls)} data-key={attr(key)}>'
                     f'{link(url(f"/t/{tid}/tries", **query, metric=key), title + arrow)}</th>')
    return ('<tr><th>#</th><th class="pick">pick</th><th>try</th><th>config</th>'
            + "".join(cells) + '<th class="num">boxes</th><th>look</th></tr>')


def _rows(tid: str, ev: Evaluation, by_id: dict[str, Checkpoint], shorts: dict[str, str],
          stage: str,
          metric: str) -> str:
    # each try's boxes against the reference's, as `localckpt diff TRY REFERENCE`: the
    # tries' stage (detect) to the reference's (labels), +N the boxes the try missed
    # (against ground truth, a box found is no "move": only misses and false boxes)
    stages = ({"stage": stage} if ev.reference_stage == stage
              else {"stage": stage, "stage_b": ev.reference_stage, "moved_iou": "0.5"})
    out = []
    for r in ev.rows(metric):
        c = by_id[r["checkpoint_id"]]
        config = compact(dict(c.config_overrides))
        looks = [link(url(f"/t/{tid}/side", c=f"{ev.reference},{c.id}", stage=stage),
                      "frames vs reference", "side"),
                 link(url("/compare", a=c.id, b=ev.reference, **stages), "frame diff",
                      "diff")]
        values = "".join(
            f'<td class="num" data-key={attr(k)} data-value={attr(repr(r[k]))}>'
            f"{_number(r[k])}</td>" for k, _ in _COLUMNS)
        out.append(
            f'<tr data-id={attr(c.id)} data-rank="{r["rank"]}">'
            f'<td class="num">{r["rank"]}</td>'
            f'<td class="pick"><input type="checkbox" name="c" value={attr(c.id)}></td>'
            f'<td class="try">{link(f"/c/{c.id}", r["name"])} '
            f'<code>{esc(shorts[c.id])}</code></td>'
            f'<td class="config"><code>{esc(shorten(config, 60))}</code></td>{values}'
            f'<td class="num">{r["boxes"]:,}</td><td class="looks">{" · ".join(looks)}</td></tr>')
    return "".join(out)


def _per_label(ev: Evaluation, metric: str) -> str:
    rows = []
    for r in ev.rows(metric, per_label=True):
        if r["label"] is None:
            continue
        rows.append(f'<tr><td>{esc(r["name"])}</td><td>{esc(r["label"] or "(none)")}</td>'
                    + "".join(f'<td class="num">{_number(r[k])}</td>' for k, _ in _COLUMNS)
                    + f'<td class="num">{r["boxes"]:,}</td>'
                    f'<td class="num">{r["reference_boxes"]:,}</td></tr>')
    head = ("<tr><th>try</th><th>label</th>" + "".join(f'<th class="num">{t}</th>'
                                                      for _, t in _COLUMNS)
            + '<th class="num">boxes</th><th class="num">reference</th></tr>')
    return (f'<details class="per-label"><summary>per label</summary>'
            f'<div class="wide"><table class="list">{head}{"".join(rows)}</table></div>'
            "</details>")


def tries_page(store: Store, req: Request) -> str:
    tid = req.timeline()
    checkpoints = store.checkpoints(tid)
    by_id = {c.id: c for c in checkpoints}
    tags = _tags(store, tid)
    stage = _default_stage(checkpoints, req.text("stage"))
    reference = _default_reference(store, checkpoints, req.text("against"))
    metric = req.text("metric") or "ap50"
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    iou = req.float("iou", 0.5)
    if not 0.0 < iou <= 1.0:  # as a malformed number is: the request, not the evaluation
        raise InvalidInputError(f"iou must be a number in (0, 1], not {iou:g}")
    shorts = req.names.shorts(by_id)
    form = _form(tid, checkpoints, tags, shorts, stage, reference, metric, iou)
    crumbs = [(f"/t/{tid}", req.names.short(tid, "timeline")), (f"/t/{tid}/tries", "tries")]
    title = f"Tries of {stage}" if stage else "Tries"
    tries = [c for c in checkpoints if stage and c.stage == stage and c.id != reference]
    if reference is not None and reference not in by_id:
        raise NotFoundError(f"checkpoint {reference} is not a live checkpoint of timeline {tid}")
    if not stage or not tries:
        body = form + (f'<p class="muted" id="message">No checkpoint of this timeline added '
                       f'stage {esc(stage)!s} besides the reference.</p>' if stage else
                       '<p class="muted" id="message">No checkpoint of this timeline added a '
                       "stage yet.</p>")
        return _page(title, body, store, crumbs)
    if reference is None:
        body = form + ('<p class="muted" id="message">Choose a reference above: imported '
                       "labels (<code>localckpt labels import</code>) or any try.</p>")
        return _page(title, body, store, crumbs)
    try:
        ev = evaluate(store, [c.id for c in tries], reference, stage, iou=iou,
                      metric=metric, write=False, skip_unreadable=True)
    except LocalckptError as exc:
        body = form + f'<p class="error" id="message">{esc(exc)}</p>'
        return _page(title, body, store, crumbs)
    query = {"stage": stage, "against": reference, "iou": f"{iou:g}"}
    ref = by_id[reference]
    summary = (f'<p class="against">{len(ev.tries)} tries of <b>{esc(stage)}</b> against '
               f'{link(f"/c/{ref.id}", _label(ref, tags))} <code>{esc(shorts[ref.id])}</code> '
               f"({esc(ev.reference_stage)}), {ev.frames:,} frames; a box counts as found at "
               f"IoU ≥ {ev.iou:g}; ranked by <b>{esc(metric)}</b>.</p>")
    ignored = sum(x.ignored for x in ev.tries)
    note = (f'<p class="muted">{ignored:,} boxes on frames the reference does not list were '
            "not judged.</p>" if ignored else "")
    if ev.skipped:
        left = "".join(f'<li>{link(f"/c/{cid}", _label(by_id[cid], tags))} '
                       f'<code>{esc(shorts[cid])}</code>: {esc(why)}</li>'
                       for cid, why in ev.skipped)
        note += (f'<div class="skipped" id="skipped"><p>{len(ev.skipped)} '
                 f'{"try" if len(ev.skipped) == 1 else "tries"} of {esc(stage)} left out: '
                 f"their output holds no boxes to judge.</p><ul>{left}</ul></div>")
    table = (
        f'<form class="side-form" action={attr(f"/t/{tid}/side")} method="get">'
        f'<input type="hidden" name="stage" value={attr(stage)}>'
        f'<div class="wide"><table class="list tries" id="tries">{_header(tid, query, metric)}'
        f"{_rows(tid, ev, by_id, shorts, stage, metric)}</table></div>"
        f'<p class="side-pick"><label><input type="checkbox" name="c" value={attr(ref.id)} '
        "checked> with the reference</label> "
        '<button type="submit">view the picked side by side</button> '
        '<span class="hint">pick 1 to 4 tries (2 to 4 panes in all)</span></p></form>')
    body = form + summary + note + table + _per_label(ev, metric)
    return _page(title, body, store, crumbs)


# -- the side-by-side view ----------------------------------------------------------------


class _Outputs:
    """Derived detections of recently shown outputs, by content hash, read-only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, derived.Derived] = OrderedDict()

    def get(self, store: Store, c: Checkpoint, stage: str) -> derived.Derived:
        h = c.stage_hashes[stage]
        with self._lock:
            if h in self._items:
                self._items.move_to_end(h)
                return self._items[h]
        found = derived.load(store.objects, h, lambda: derived.output_text(store, h),
                             write=False)
        with self._lock:
            self._items[h] = found
            while len(self._items) > _CACHED_OUTPUTS:
                self._items.popitem(last=False)
        return found


_OUTPUTS = _Outputs()  # keyed by content hash: the same bytes in every store, never stale


def _picked(store: Store, req: Request, tid: str) -> list[Checkpoint]:
    query = parse_qs(req.path.partition("?")[2], keep_blank_values=False)
    ids: list[str] = []
    for value in query.get("c", []):
        ids += [resolve(store, check_ref(v, "c")) for v in value.split(",") if v]
    ids = list(dict.fromkeys(ids))
    if not 2 <= len(ids) <= MAX_PANES:
        raise InvalidInputError(f"pick 2 to {MAX_PANES} checkpoints to see side by side "
                                f"(c=ID&c=ID...), not {len(ids)}")
    found = [store.get_checkpoint(i) for i in ids]
    for c in found:
        if c.timeline_id != tid:
            raise InvalidInputError(f"checkpoint {c.id} is not of timeline {tid}")
    return found


def _stage_of(c: Checkpoint, stage: str | None) -> str | None:
    for s in (stage, REFERENCE_STAGE):
        if s and s in c.stage_hashes:
            return s
    return None


def _boxes(table: pa.Table, sequence: int) -> list[Shape]:
    import pyarrow.compute as pc

    rows = table.filter(pc.equal(table.column("sequence"), sequence)).to_pylist()
    return [Shape(Box(r["x1"], r["y1"], r["x2"], r["y2"], r["label"], r["score"], r["index"]),
                  track=None if r["track_id"] is None else str(r["track_id"])) for r in rows]


def _panes(store: Store, names: Names, tid: str, picked: list[Checkpoint], stage: str | None,
           seq: int, meta: FrameMeta | None, tags: dict[str, list[str]],
           aspect: float) -> str:
    cells = []
    for c in picked:
        s = _stage_of(c, stage)
        head = (f'<div class="pane-head">{link(f"/c/{c.id}", _label(c, tags))} '
                f'<code>{esc(names.short(c.id))}</code> · {esc(s or "no boxes")}</div>')
        if s is None:
            figure = frame_figure(tid, seq, meta, [], "no stage with boxes", aspect=aspect)
        else:
            d = _OUTPUTS.get(store, c, s)
            boxes = _boxes(d.table, seq) if d.frame_keyed else []
            listed = seq in set(d.frames) if d.frame_keyed else False
            caption = (count_boxes(len(boxes)) if listed else "frame not in this output")
            figure = frame_figure(tid, seq, meta, boxes, caption, aspect=aspect)
        cells.append(f'<div class="pane" data-id={attr(c.id)} data-seq="{seq}">{head}'
                     f"{figure}</div>")
    return (f'<div class={attr(f"panes n{len(picked)}")} id="panes" data-seq="{seq}">'
            + "".join(cells) + "</div>")


def _sequence(req: Request, metas: list[FrameMeta]) -> tuple[int, FrameMeta | None]:
    if not metas:
        raise NotFoundError("this timeline has no frames")
    seq = req.int("seq", metas[0].sequence)
    found = next((m for m in metas if m.sequence == seq), None)
    if found is None:
        raise NotFoundError(no_frame("the timeline", seq, (m.sequence for m in metas)))
    return seq, found


def panes_fragment(store: Store, req: Request) -> str:
    """Just the panes of one frame (what the slider asks for)."""
    tid = req.timeline()
    picked = _picked(store, req, tid)
    metas = store.frame_index(tid)
    seq, meta = _sequence(req, metas)
    return _panes(store, req.names, tid, picked, req.text("stage"), seq, meta, _tags(store, tid),
                  pixel_aspect(store.get_timeline(tid)))


def side_page(store: Store, req: Request) -> str:
    tid = req.timeline()
    aspect = pixel_aspect(store.get_timeline(tid))
    picked = _picked(store, req, tid)
    stage = req.text("stage") or None
    metas = store.frame_index(tid)
    seq, meta = _sequence(req, metas)
    tags = _tags(store, tid)
    seqs = [m.sequence for m in metas]
    times = {m.sequence: m.timestamp for m in metas}
    position = seqs.index(seq)
    ids = ",".join(c.id for c in picked)
    controls = (
        f'<div class="scrub" id="scrub" data-timeline={attr(tid)} data-ids={attr(ids)} '
        f'data-stage={attr(stage or "")} data-seqs={attr(",".join(map(str, seqs)))} '
        f'data-times={attr(",".join(f"{times[s]:.3f}" for s in seqs))}>'
        f'<button type="button" id="prev" title="previous frame (←)">◀</button>'
        f'<input type="range" id="slider" min="0" max="{len(seqs) - 1}" value="{position}" '
        f'aria-label="frame">'
        f'<button type="button" id="next" title="next frame (→)">▶</button>'
        f'<output id="where">frame {seq} · {times[seq]:.2f} s</output>'
        f'<span class="hint">← → move every pane</span></div>')
    body = controls + _panes(store, req.names, tid, picked, stage, seq, meta, tags, aspect)
    crumbs = [(f"/t/{tid}", req.names.short(tid, "timeline")), (f"/t/{tid}/tries", "tries"),
              (url(f"/t/{tid}/side", c=ids, stage=stage), "side by side")]
    return _page(f"{len(picked)} checkpoints side by side", body, store, crumbs,
                 scripts=["/static/tries.js"])
