"""The HTML pages: timelines, one timeline (tree and frame strip), a checkpoint, a comparison.

Pages are rendered on the server from :mod:`localckpt.web.data` and the Store; the one
script (static/app.js) only lets a user pick two checkpoints on the tree. Long lists are
paged (``?start=``), and images load lazily, so a 10,000-frame timeline costs one page.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import InvalidInputError
from ..framediff import FrameChange, FrameDiff, frames_of
from ..types import Checkpoint, FrameMeta
from . import data
from .boxes import change_boxes, frame_figure, legend, plain_boxes
from .html import attr, compact, esc, json_text, kv_table, layout, link, pager, short, tabs, url
from .tree import render_tree

if TYPE_CHECKING:
    from ..store import Store
    from .request import Request

__all__ = ["checkpoint_page", "compare_page", "error_page", "timeline_page",
           "timelines_page"]

STRIP_PAGE = 120  # thumbnails per page of a timeline's frame strip
BOX_PAGE = 24  # frames with boxes per page of a checkpoint
COMPARE_PAGE = 12  # side-by-side frames per page of a comparison
LIST_PAGE = 1000  # changed frames listed at once
INLINE_OUTPUT = 200_000  # characters of an output shown inline; past that, a link


def _when(d: datetime | str) -> str:
    if isinstance(d, str):
        d = datetime.fromisoformat(d)
    return d.strftime("%Y-%m-%d %H:%M:%S")


def _secs(s: float) -> str:
    m, sec = divmod(s, 60)
    return f"{int(m)}:{sec:05.2f}" if m else f"{sec:.2f} s"


def _title(c: Checkpoint) -> str:
    if c.parent_id is None:
        return "root"
    return "merge" if c.merged_from else (c.stage or "?")


def _name(c: Checkpoint) -> str:
    return f"{_title(c)} {short(c.id)}" + (f" ({c.scenario_label})" if c.scenario_label else "")


def _store_name(store: Store) -> str:
    return store.catalog.describe()


# -- timelines ----------------------------------------------------------------------------


def timelines_page(store: Store, req: Request) -> str:
    rows = data.timeline_rows(store)
    if not rows:
        body = '<p class="muted">This store has no timelines yet.</p>'
    else:
        head = ("<tr><th>source video</th><th>profile</th><th>duration</th><th>fps</th>"
                "<th>frames</th><th>checkpoints</th><th>created</th><th>id</th></tr>")
        body_rows = "".join(
            "<tr>"
            f"<td>{link('/t/' + r['id'], r['source_video'] or '(unnamed)')}</td>"
            f"<td>{esc(r['profile_name'])}</td><td>{esc(_secs(r['duration']))}</td>"
            f"<td>{r['fps']:g}</td><td>{r['frame_count']:,}</td><td>{r['checkpoints']}</td>"
            f"<td>{esc(_when(r['created_at']))}</td><td><code>{esc(short(r['id']))}</code></td>"
            "</tr>"
            for r in rows
        )
        body = f'<table class="list timelines">{head}{body_rows}</table>'
    return layout("Timelines", body, store=_store_name(store))


# -- one timeline -------------------------------------------------------------------------


def _compare_form(checkpoints: list[Checkpoint]) -> str:
    stages = sorted({s for c in checkpoints for s in c.stage_hashes})

    def options(selected: str) -> str:
        return "".join(
            f"<option value={attr(c.id)}{' selected' if c.id == selected else ''}>"
            f"{esc(_name(c))}</option>" for c in checkpoints)

    a, b = _default_pair(checkpoints)
    stage_opts = '<option value="">(the stage that differs)</option>' + "".join(
        f"<option value={attr(s)}>{esc(s)}</option>" for s in stages)
    return (
        '<form class="compare" action="/compare" method="get">'
        "<strong>Compare</strong> "
        f'<label>A <select name="a" id="pick-a">{options(a)}</select></label> '
        f'<label>B <select name="b" id="pick-b">{options(b)}</select></label> '
        f'<label>stage <select name="stage">{stage_opts}</select></label> '
        '<button type="submit">compare</button>'
        '<span class="hint">or click two nodes of the tree (first A, then B)</span></form>'
    )


def _default_pair(checkpoints: list[Checkpoint]) -> tuple[str, str]:
    """Two tries of one stage when there are (the first two that added the same stage)."""
    seen: dict[str, str] = {}
    for c in checkpoints:
        if c.stage and c.stage in seen:
            return seen[c.stage], c.id
        if c.stage:
            seen[c.stage] = c.id
    ids = [c.id for c in checkpoints]
    return ids[0], ids[1] if len(ids) > 1 else ids[0]


def _strip(store: Store, timeline_id: str, start: int) -> str:
    page = data.frames_page(store, timeline_id, start, STRIP_PAGE)
    cells = "".join(
        f'<a class="thumb" href={attr(f["image"])} data-seq="{f["sequence"]}">'
        f'<img src={attr(f["thumbnail"])} loading="lazy" width="192" '
        f'height="{max(1, round(f["height"] * 192 / max(f["width"], 1)))}" '
        f'alt={attr("frame " + str(f["sequence"]))}>'
        f'<span>#{f["sequence"]} · {esc(_secs(f["timestamp"]))}</span></a>'
        for f in page["frames"]
    )
    nav = pager(f"/t/{timeline_id}", start, STRIP_PAGE, page["total"], "frames")
    return f'{nav}<div class="strip" id="strip">{cells}</div>{nav}'


def timeline_page(store: Store, req: Request) -> str:
    tid = req.params["timeline"]
    t = store.get_timeline(tid)
    checkpoints = store.checkpoints(tid)
    facts = {
        "source video": t.source_video, "profile": t.profile_name,
        "frames": f"{t.frame_count:,}", "fps": f"{t.fps:g}",
        "duration": _secs(data.duration(t)), "created": _when(t.created_at), "id": t.id,
    }
    facts_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                         for k, v in facts.items())
    info = kv_table(dict(t.source_info), "no source details recorded")
    body = (
        f'<table class="facts">{facts_html}</table>'
        f"<details><summary>source video details</summary>{info}</details>"
        f"<h2>Checkpoint tree <small>{len(checkpoints)} checkpoints</small></h2>"
        f"{_compare_form(checkpoints)}"
        f'<div class="tree-wrap">{render_tree(checkpoints)}</div>'
        f"<h2>Frames</h2>{_strip(store, tid, req.int('start', 0))}"
    )
    return layout(t.source_video or t.id, body, crumbs=[(f"/t/{tid}", short(tid))],
                  store=_store_name(store), scripts=["/static/app.js"])


# -- one checkpoint -----------------------------------------------------------------------


def _detection_stages(outputs: dict[str, Any]) -> list[str]:
    """Stages whose output is frame-keyed with at least one frame holding detections."""
    found = []
    for stage, value in sorted(outputs.items()):
        try:
            frames = frames_of(value)
        except InvalidInputError:
            continue
        if any(plain_boxes(v) for v in frames.values()):
            found.append(stage)
    return found


def _stage_block(c: Checkpoint, stage: str, value: Any) -> str:
    size = len(compact(value))  # the C encoder: cheap even for a 10,000-frame output
    where = url(f"/api/checkpoints/{c.id}/outputs/{quote(stage, safe='')}")
    own = ' <span class="badge">added here</span>' if stage == c.stage else ""
    if size > INLINE_OUTPUT:
        inner = (f'<p class="muted">too long to show here; {link(where, "open it as JSON")}'
                 "</p>")
    else:
        inner = f"<pre>{esc(json_text(value))}</pre>"
    return (f"<details class=\"stage\"><summary><strong>{esc(stage)}</strong>{own} "
            f"<code>{esc(c.stage_hashes[stage][:12])}</code> "
            f'<span class="muted">{size:,} characters</span></summary>{inner}</details>')


def _metas(store: Store, timeline_id: str) -> dict[int, FrameMeta]:
    return {m.sequence: m for m in store.frame_index(timeline_id)}


def _boxes_section(store: Store, c: Checkpoint, outputs: dict[str, Any], req: Request) -> str:
    stages = _detection_stages(outputs)
    if not stages:
        return ('<p class="muted">No stage output of this checkpoint holds detections '
                '(frame-keyed: <code>{"frames": [{"sequence": n, "detections": [...]}]}</code>).'
                "</p>")
    stage = req.text("stage") or stages[0]
    if stage not in stages:
        raise InvalidInputError(f"stage {stage!r} of checkpoint {c.id} holds no detections "
                                f"(these do: {', '.join(stages)})")
    row = tabs(stages, stage, lambda s: url(f"/c/{c.id}", stage=s))
    frames = frames_of(outputs[stage])
    seqs = sorted(frames)
    start = req.int("start", 0)
    metas = _metas(store, c.timeline_id)
    figures = "".join(
        frame_figure(c.timeline_id, seq, metas.get(seq), boxes := plain_boxes(frames[seq]),
                     f"#{seq}" + (f" · {_secs(metas[seq].timestamp)}" if seq in metas else "")
                     + f" · {len(boxes)} boxes")
        for seq in seqs[start:start + BOX_PAGE]
    )
    nav = pager(f"/c/{c.id}", start, BOX_PAGE, len(seqs), "frames", stage=stage)
    return f'{row}{nav}<div class="frames">{figures}</div>{nav}'


def checkpoint_page(store: Store, req: Request) -> str:
    c = store.get_checkpoint(req.params["checkpoint"])
    lineage = store.lineage(c.id)
    children = store.children(c.id)
    outputs: dict[str, Any] = dict(c.stage_outputs)
    facts = [("id", esc(c.id)), ("timeline", link(f"/t/{c.timeline_id}", c.timeline_id)),
             ("parent", link(f"/c/{c.parent_id}", c.parent_id) if c.parent_id else "—"),
             ("stage added", esc(c.stage or "—")), ("created", esc(_when(c.created_at)))]
    if c.is_scenario:
        facts.append(("scenario", esc(c.scenario_label or "(unlabelled)")))
    if c.merged_from:
        facts.append(("merged from", link(f"/c/{c.merged_from}", c.merged_from)))
    facts_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    chain = " → ".join(
        link(f"/c/{x.id}", _name(x)) if x.id != c.id else f"<strong>{esc(_name(x))}</strong>"
        for x in lineage)
    kids = ", ".join(link(f"/c/{k.id}", _name(k)) for k in children) or "none"
    stages = "".join(_stage_block(c, s, outputs[s]) for s in sorted(outputs)) or (
        '<p class="muted">no stage outputs (a root checkpoint)</p>')
    body = (
        f'<table class="facts">{facts_html}</table>'
        f'<h2>Lineage</h2><p class="lineage">{chain}</p><p>children: {kids}</p>'
        f'<div class="cols"><div><h2>Config</h2>{kv_table(dict(c.config_overrides))}</div>'
        f"<div><h2>Stats</h2>{kv_table(dict(c.stats))}</div></div>"
        f"<h2>Stage outputs</h2>{stages}"
        f"<h2>Frames and detections</h2>{_boxes_section(store, c, outputs, req)}"
    )
    return layout(f"Checkpoint {_name(c)}", body, store=_store_name(store), crumbs=[
        (f"/t/{c.timeline_id}", short(c.timeline_id)), (f"/c/{c.id}", short(c.id))])


# -- comparing two checkpoints --------------------------------------------------------------


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


def _side(change: FrameChange, side: str, tid: str, meta: FrameMeta | None) -> str:
    value = change.a if side == "a" else change.b
    name = side.upper()
    if change.only_b if side == "a" else change.only_a:
        return f'<div class="absent">frame {change.sequence} is not in {name}</div>'
    boxes = change_boxes(change, side)
    fig = frame_figure(tid, change.sequence, meta, boxes, f"{name} · {len(boxes)} boxes")
    if change.kind == "value":
        text = json_text(value)
        text = text if len(text) <= 4000 else text[:3999] + "…"
        fig += f"<pre>{esc(text)}</pre>"
    return fig


def _at(base: str, query: dict[str, str], i: int, start: int, per_page: int) -> str:
    """Where the i-th changed frame is shown: this page (an anchor) or another page."""
    page = i // per_page * per_page
    return "" if page == start else url(base, **query, start=page)


def compare_page(store: Store, req: Request) -> str:
    a = store.get_checkpoint(req.id("a"))
    b = store.get_checkpoint(req.id("b"))
    stage = data.choose_stage(a, b, req.text("stage"))
    match_iou = req.float("match_iou", 0.5)
    fd = store.frame_diff(a.id, b.id, stage, match_iou=match_iou)
    base = "/compare"
    query = {"a": a.id, "b": b.id, "stage": stage}
    start = req.int("start", 0)
    per_page = COMPARE_PAGE
    # the list shows the LIST_PAGE changed frames around this page (all, up to 1,000)
    first = start // LIST_PAGE * LIST_PAGE
    listed = fd.changed[first:first + LIST_PAGE]
    items = "".join(
        f'<li data-seq="{seq}"><a href='
        f'{attr(_at(base, query, i, start, per_page) + f"#f{seq}")}>'
        f"frame {seq}</a> <span>{esc(fd.frames[seq].describe())}</span></li>"
        for i, seq in enumerate(listed, first))
    more = "" if len(listed) == len(fd.changed) else (
        f'<p class="muted">listing changed frames {first:,}-{first + len(listed) - 1:,} of '
        f"{len(fd.changed):,}, those around the side-by-side page below</p>")
    metas_a = _metas(store, a.timeline_id)
    metas_b = metas_a if b.timeline_id == a.timeline_id else _metas(store, b.timeline_id)
    rows = []
    for seq in fd.changed[start:start + per_page]:
        change = fd.frames[seq]
        rows.append(
            f'<section class="pair" id="f{seq}"><h3>frame {seq} '
            f"<small>{esc(change.describe())}</small></h3><div class=\"sides\">"
            f"<div>{_side(change, 'a', a.timeline_id, metas_a.get(seq))}</div>"
            f"<div>{_side(change, 'b', b.timeline_id, metas_b.get(seq))}</div></div></section>")
    nav = pager(base, start, per_page, len(fd.changed), "changed frames", **query)
    common = sorted(a.stage_hashes.keys() & b.stage_hashes.keys())
    row = tabs(common, stage, lambda s: url(base, a=a.id, b=b.id, stage=s))
    body = (
        f'<table class="facts"><tr><th>A</th><td>{link(f"/c/{a.id}", _name(a))}</td></tr>'
        f'<tr><th>B</th><td>{link(f"/c/{b.id}", _name(b))}</td></tr>'
        f"<tr><th>stage</th><td>{esc(stage)} · boxes match at IoU ≥ {fd.match_iou:g}"
        "</td></tr></table>"
        f"{row}"
        f"<h2>Summary</h2>{_summary(fd)}"
        f"<h2>Changed frames <small>{len(fd.changed):,}</small></h2>"
        + (f'{more}<ol class="changes" id="changes" start="{first + 1}">{items}</ol>'
           if fd.changed else
           '<p class="muted" id="changes">no frame differs</p>')
        + f"<h2>Side by side</h2>{legend()}{nav}"
        f'<div class="sides heads"><div><b>A</b> {esc(_name(a))}</div>'
        f"<div><b>B</b> {esc(_name(b))}</div></div>{''.join(rows)}{nav}"
    )
    crumbs = [(f"/t/{a.timeline_id}", short(a.timeline_id))]
    return layout(f"Compare {_name(a)} ↔ {_name(b)}", body, crumbs=crumbs,
                  store=_store_name(store))


# -- errors -------------------------------------------------------------------------------


def error_page(status: int, title: str, message: str, store: str = "") -> str:
    body = (f'<p class="error">{esc(message)}</p>'
            f'<p>{link("/", "Back to the timelines")}</p>')
    return layout(f"{status} {title}", body, store=store)
