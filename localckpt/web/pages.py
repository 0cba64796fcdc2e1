"""The HTML pages: timelines, one timeline (tree, viewer and frame strip), a checkpoint.

Pages are rendered on the server from :mod:`localckpt.web.data` and the Store; the one
script (static/app.js) adds what needs a script: picking two checkpoints on the tree,
stepping the viewer with the arrow keys, hiding labels. Long lists are paged
(``?start=``), trees are drawn in part (:mod:`localckpt.web.outline`), and images load
lazily, so a 10,000-frame, 5,000-checkpoint timeline costs one screenful.
The comparison page is :mod:`localckpt.web.compare`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import InvalidInputError
from ..schema import check_id
from ..types import Checkpoint
from . import data
from .boxes import count_boxes, frame_figure, label_legend, plain_boxes
from .html import attr, compact, esc, json_text, kv_table, layout, link, pager, tabs, url
from .names import Names
from .outline import BUDGET, CHILDREN, DEPTH, SEARCH_DEPTH, outline, search
from .tree import TreeState, pending_lines, render_tree
from .tries import REFERENCE_STAGE
from .viewer import detection_frames, detection_stages, secs, stage_labels, viewer

if TYPE_CHECKING:
    from ..store import Store
    from .request import Request

__all__ = ["checkpoint_page", "checkpoint_title", "error_page", "timeline_page",
           "timelines_page", "when"]

STRIP_PAGE = 120  # thumbnails per page of a timeline's frame strip
BOX_PAGE = 24  # frames with boxes per page of a checkpoint
INLINE_OUTPUT = 200_000  # characters of an output shown inline; past that, a link
SEARCH_SHOWN = 20  # search hits listed under the search box


def when(d: datetime | str) -> str:
    if isinstance(d, str):
        d = datetime.fromisoformat(d)
    return d.strftime("%Y-%m-%d %H:%M:%S")


def _nowrap_words(text: str) -> str:
    """Text that may wrap between its words, never inside one ("2026-12-\n06")."""
    return " ".join(f'<span class="nb">{esc(w)}</span>' for w in text.split(" "))


def _title(c: Checkpoint) -> str:
    if c.parent_id is None:
        return "root"
    return "merge" if c.merged_from else (c.stage or "?")


def checkpoint_title(c: Checkpoint, names: Names) -> str:
    """"detect 3f9a1c2e (thr=0.3)": what a checkpoint is called in text."""
    return f"{_title(c)} {names.short(c.id)}" + (
        f" ({c.scenario_label})" if c.scenario_label else "")


def _store_name(store: Store) -> str:
    return store.catalog.describe()


# -- timelines ----------------------------------------------------------------------------


def timelines_page(store: Store, req: Request) -> str:
    start = req.int("start", 0)
    found = data.timeline_rows(store, req.names, start, data.TIMELINE_PAGE)
    rows = found["timelines"]
    if not found["total"]:
        body = '<p class="muted">This store has no timelines yet.</p>'
    else:
        head = ("<tr><th>source video</th><th>profile</th><th>duration</th><th>fps</th>"
                "<th>frames</th><th>checkpoints</th><th>created</th><th>id</th></tr>")
        body_rows = "".join(
            "<tr>"
            f"<td>{link('/t/' + r['id'], r['source_video'] or '(unnamed)')}</td>"
            f"<td>{esc(r['profile_name'])}</td>"
            f"<td>{esc(secs(r['duration']) if r['duration'] is not None else '—')}</td>"
            f"<td>{r['fps']:g}</td><td>{r['frame_count']:,}</td>"
            f"<td>{r['checkpoints']:,}</td>"
            f"<td>{_nowrap_words(when(r['created_at']))}</td>"
            f"<td><code title={attr(r['id'])}>{esc(r['short_id'])}</code></td></tr>"
            for r in rows
        )
        nav = (pager("/", start, data.TIMELINE_PAGE, found["total"], "timelines")
               if found["total"] > data.TIMELINE_PAGE or start else "")
        body = (f'{nav}<div class="wide"><table class="list timelines">{head}{body_rows}'
                f"</table></div>{nav}" if rows else nav)
    return layout("Timelines", body, store=_store_name(store))


# -- one timeline -------------------------------------------------------------------------


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


def _compare_form(checkpoints: list[Checkpoint], names: Names) -> str:
    stages = sorted({s for c in checkpoints for s in c.stage_hashes})
    a, b = _default_pair(checkpoints)
    stage_opts = '<option value="">(the stage that differs)</option>' + "".join(
        f"<option value={attr(s)}>{esc(s)}</option>" for s in stages)
    return (
        '<form class="compare" action="/compare" method="get">'
        "<strong>Compare</strong> "
        f'<label>A <input name="a" id="pick-a" size="14" value={attr(names.short(a))} '
        'required title="a short id, id or tag"></label> '
        f'<label>B <input name="b" id="pick-b" size="14" value={attr(names.short(b))} '
        'required title="a short id, id or tag"></label> '
        f'<label>stage <select name="stage">{stage_opts}</select></label> '
        '<button type="submit">compare</button>'
        '<span class="hint">or click two nodes of the tree (first A, then B)</span></form>'
    )


def _strip(timeline_id: str, index: list[Any], start: int, current: int,
           link_to: Any, aspect: float = 1.0) -> str:
    page = index[start:start + STRIP_PAGE]
    cells = "".join(
        f'<a class={attr("thumb on" if i == current else "thumb")} '
        f'href={attr(link_to(i) + "#viewer")} data-pos="{i}" data-seq="{m.sequence}">'
        f'<img src={attr(f"/thumbs/{timeline_id}/{m.sequence}.jpg")} loading="lazy" '
        f'width="192" height="{max(1, round(m.height * 192 / max(m.width * aspect, 1)))}" '
        f'alt={attr("frame " + str(m.sequence))}>'
        f'<span>#{m.sequence} · {esc(secs(m.timestamp))}</span></a>'
        for i, m in enumerate(page, start)
    )
    nav = pager(f"/t/{timeline_id}", start, STRIP_PAGE, len(index), "frames")
    return f'{nav}<div class="strip" id="strip">{cells}</div>{nav}'


def _tree_state(req: Request, tid: str) -> TreeState:
    opened: dict[str, int] = {}
    for token in (req.text("open") or "").split(",")[:64]:
        if not token:
            continue
        ident, _, offset = token.partition("@")
        check_id(ident, "open")
        if offset and not (offset.isascii() and offset.isdigit() and len(offset) < 10):
            raise InvalidInputError(f"open: {token!r} is not <id> or <id>@<offset>")
        opened[ident] = int(offset or 0)
    start = req.text("at") or None
    if start:
        check_id(start, "at")
    return TreeState(f"/t/{tid}", start, opened, frozenset(req.ids("shut")),
                     (req.text("q") or "")[:100])


def _search_box(state: TreeState) -> str:
    keep = "".join(f'<input type="hidden" name={attr(k)} value={attr(v)}>'
                   for k, v in (("at", state.start),) if v)
    return (f'<form class="search" action={attr(state.base)} method="get" role="search">'
            f'{keep}<input type="search" name="q" id="tree-q" value={attr(state.query)} '
            'placeholder="find a tag, scenario label or id" size="34">'
            '<button type="submit">find</button></form>')


def _hits_list(hits: list[Any], by_id: dict[str, Checkpoint], names: Names,
               state: TreeState, drawn: set[str]) -> str:
    if not state.query:
        return ""
    if not hits:
        return f'<p class="hits muted" id="hits">nothing matches {esc(state.query)!s}</p>'
    items = []
    for h in hits[:SEARCH_SHOWN]:
        c = by_id[h.checkpoint]
        where = (link(f"#n-{c.id}", "in the tree") if c.id in drawn else
                 link(state.href(f"n-{c.id}", start=c.parent_id or c.id, opened={},
                                 shut=frozenset()), "show in the tree"))
        items.append(f'<li data-id={attr(c.id)}>{link(f"/c/{c.id}", checkpoint_title(c, names))}'
                     f' <span class="why">{esc(h.why)}</span> · {where}</li>')
    more = (f"<li class=\"muted\">and {len(hits) - SEARCH_SHOWN} more: type more "
            "characters</li>" if len(hits) > SEARCH_SHOWN else "")
    return (f'<div class="hits" id="hits"><b>{len(hits):,} found</b> for '
            f"<q>{esc(state.query)}</q> · {link(state.href(query=''), 'clear')}"
            f'<ol>{"".join(items)}{more}</ol></div>')


def timeline_page(store: Store, req: Request) -> str:
    tid = req.timeline()
    t = store.get_timeline(tid)
    aspect = data.pixel_aspect(t)
    names = req.names
    checkpoints = store.checkpoints(tid)
    by_id = {c.id: c for c in checkpoints}
    tags = data.tag_names(store, tid)
    state = _tree_state(req, tid)
    hits = search(checkpoints, tags, state.query) if state.query else []
    ol = outline(checkpoints, start=state.start, opened=state.opened, shut=state.shut,
                 focus=[h.checkpoint for h in hits])
    index = store.frame_index(tid)
    pos = min(req.int("i", 0), max(len(index) - 1, 0))  # past the end: the last frame
    sampled = (index[-1].timestamp - index[0].timestamp + 1 / t.fps
               if index and data.duration(t) is not None else None)
    facts = {
        "source video": esc(t.source_video), "profile": esc(t.profile_name),
        "frames": f"{t.frame_count:,}", "fps": f"{t.fps:g}",
        "sampled": esc(secs(sampled)) if sampled is not None else "—",
        "source duration": esc(secs(data.source_duration(t) or 0.0))
        if data.source_duration(t) is not None else "not recorded",
        "created": esc(when(t.created_at)),
        "id": f"<code>{esc(names.short(tid, 'timeline'))}</code> "
              f'<span class="muted">{esc(tid)}</span>',
    }
    if tags:
        facts["tags"] = " ".join(
            link(f"/c/{cid}", "⚑ " + n, "tag") for cid, ns in sorted(tags.items()) for n in ns)
    facts_html = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in facts.items())
    info = kv_table(dict(t.source_info), "no source details recorded")
    if len(ol.drawn) == len(checkpoints):
        shown = "every checkpoint drawn"
    elif hits:
        shown = (f"{len(ol.drawn):,} of {len(checkpoints):,} drawn: the paths to what the "
                 f"search found, and {SEARCH_DEPTH} level below the top")
    else:
        shown = (f"{len(ol.drawn):,} of {len(checkpoints):,} drawn: {DEPTH} levels, "
                 f"{CHILDREN} children of the top, fewer further down, at most {BUDGET}; "
                 "a dashed box opens what it hides")
    top = ""
    if ol.start and by_id[ol.start].parent_id:
        here = link("/c/" + ol.start, checkpoint_title(by_id[ol.start], names))
        top = (f'<p class="at">the tree from {here} · '
               f"{link(state.href(start=None), '↑ from the root')}</p>")
    strip_start = req.int("start", pos // STRIP_PAGE * STRIP_PAGE)
    from ..runs.store_api import pending_runs

    runs = pending_runs(store, tid)  # open stage runs: pending nodes under their parents
    drawn = set(ol.drawn)
    unseen = sum(1 for r in runs if r["parent_id"] not in drawn)
    runs_said = (f" · {len(runs):,} open stage run{'' if len(runs) == 1 else 's'} (dashed"
                 + (f"; {unseen:,} under checkpoints not drawn" if unseen else "") + ")"
                 if runs else "")
    drawing = render_tree(checkpoints, ol, tags, names.short, state,
                          frozenset(h.checkpoint for h in hits), runs)

    def frame_link(p: int) -> str:
        return state.href(extra={"i": p, "start": strip_start or None})

    body = (
        f'<table class="facts">{facts_html}</table>'
        f"<details><summary>source video details</summary>{info}</details>"
        f"<h2>Checkpoint tree <small>{len(checkpoints):,} checkpoints · {esc(shown)}"
        f"{runs_said} · {_tries_link(tid, checkpoints)}"
        "</small></h2>"
        f'<div class="tools">{_search_box(state)}{_compare_form(checkpoints, names)}</div>'
        f"{_hits_list(hits, by_id, names, state, set(ol.drawn))}{top}"
        f'<div class="tree-wrap" id="tree">{drawing}</div>'
        f"<h2>Frames</h2>"
        f"{viewer(tid, index, pos, frame_link, url(f'/view/{tid}'), aspect=aspect)}"
        f"{_strip(tid, index, strip_start, max(0, min(pos, len(index) - 1)), frame_link, aspect)}"
    )
    return layout(t.source_video or t.id, body,
                  crumbs=[(f"/t/{tid}", names.short(tid, "timeline"))],
                  store=_store_name(store), scripts=["/static/app.js"])


# -- one checkpoint -----------------------------------------------------------------------


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


def _boxes_section(store: Store, c: Checkpoint, req: Request, aspect: float) -> str:
    stages = detection_stages(store, req, c)
    if not stages:
        return ('<p class="muted">No stage output of this checkpoint holds detections '
                '(frame-keyed: <code>{"frames": [{"sequence": n, "detections": [...]}]}</code>).'
                "</p>")
    stage = req.text("stage") or stages[0]
    if stage not in stages:
        raise InvalidInputError(f"stage {stage!r} of checkpoint {req.names.short(c.id)} "
                                f"holds no detections (these do: {', '.join(stages)})")
    row = tabs(stages, stage, lambda s: url(f"/c/{c.id}", stage=s))
    frames = detection_frames(store, req, c, stage)
    counts, tracked = stage_labels(req, c, stage, frames)
    index = store.frame_index(c.timeline_id)
    metas = {m.sequence: m for m in index}
    positions = {m.sequence: i for i, m in enumerate(index)}
    seqs = sorted(frames)
    start = req.int("start", 0)
    pos = req.int("i", positions.get(seqs[0], 0) if seqs else 0)

    def frame_link(p: int) -> str:
        return url(f"/c/{c.id}", stage=stage, start=start or None, i=p)

    figures = "".join(
        frame_figure(c.timeline_id, seq, metas.get(seq), shapes := plain_boxes(frames[seq]),
                     f"#{seq}" + (f" · {secs(metas[seq].timestamp)}" if seq in metas else "")
                     + f" · {count_boxes(len(shapes))}", position=positions.get(seq),
                     aspect=aspect)
        for seq in seqs[start:start + BOX_PAGE]
    )
    nav = pager(f"/c/{c.id}", start, BOX_PAGE, len(seqs), "frames", stage=stage)
    view = viewer(c.timeline_id, index, pos, frame_link,
                  url(f"/view/{c.timeline_id}", c=c.id, stage=stage), frames, aspect=aspect)
    return (f"{row}{label_legend(counts, tracked)}{view}"
            f'<h3>Every frame of {esc(stage)} <small>click one to view it above</small></h3>'
            f'{nav}<div class="frames">{figures}</div>{nav}')


def _tries_link(tid: str, checkpoints: list[Checkpoint]) -> str:
    """The link to the tries page when some stage has two tries to rank (counted as the
    tries page counts them, from the tree this page read anyway), else why not."""
    stages = Counter(c.stage for c in checkpoints if c.stage and not c.merged_from)
    if any(n > 1 for n in stages.values()):
        return link(f"/t/{tid}/tries", "rank the tries against a reference")
    return "no stage has two tries to rank yet"


def checkpoint_page(store: Store, req: Request) -> str:
    c = store.get_checkpoint(req.checkpoint())
    names = req.names
    lineage = store.lineage(c.id)
    children = store.children(c.id)
    tags = data.tag_names(store, c.timeline_id).get(c.id, [])
    outputs: dict[str, Any] = dict(c.stage_outputs)
    ref = names.short
    timeline = store.get_timeline(c.timeline_id)
    video = timeline.source_video
    facts = [("id", f"<code>{esc(ref(c.id))}</code> <span class=\"muted\">{esc(c.id)}</span>"),
             ("tags", " ".join(f'<span class="tag">⚑ {esc(n)}</span>' for n in tags)
              or '<span class="muted">none</span>'),
             ("timeline", link(f"/t/{c.timeline_id}", ref(c.timeline_id, "timeline"))
              + f' <span class="muted">{esc(video or "(unnamed)")}</span>'),
             ("parent", link(f"/c/{c.parent_id}", ref(c.parent_id)) if c.parent_id else "—"),
             ("stage added", esc(c.stage or "—")), ("created", esc(when(c.created_at)))]
    if c.is_scenario:
        facts.append(("scenario", esc(c.scenario_label or "(unlabelled)")))
    if c.merged_from:
        facts.append(("merged from", link(f"/c/{c.merged_from}", ref(c.merged_from))))
    tries = f"/t/{c.timeline_id}/tries"
    if c.stage == REFERENCE_STAGE:  # imported ground truth: what it is for
        facts.append(("tries", link(url(tries, against=c.id), "rank the tries against it")))
    elif c.stage and not c.merged_from:
        facts.append(("tries", link(url(tries, stage=c.stage),
                                    f"rank the tries of {c.stage} against a reference")))
    facts_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    chain = " → ".join(
        link(f"/c/{x.id}", checkpoint_title(x, names)) if x.id != c.id else
        f"<strong>{esc(checkpoint_title(x, names))}</strong>" for x in lineage)
    kids = ", ".join(link(f"/c/{k.id}", checkpoint_title(k, names)) for k in children) or "none"
    from ..runs.store_api import pending_runs

    runs = [r for r in pending_runs(store, c.timeline_id) if r["parent_id"] == c.id]
    pending = ('<p class="runs" id="runs">open stage runs (a commit saves a child here): '
               + ", ".join(f"<b>{esc(r['stage'])}</b> <code>run {esc(r['short_id'])}</code> "
                           f"{esc(pending_lines(r)[0][1])}" for r in runs) + "</p>"
               if runs else "")  # children to come, drawn dashed in the tree
    stages = "".join(_stage_block(c, s, outputs[s]) for s in sorted(outputs)) or (
        '<p class="muted">no stage outputs (a root checkpoint)</p>')
    body = (
        f'<table class="facts">{facts_html}</table>'
        f'<h2>Lineage</h2><p class="lineage">{chain}</p><p>children: {kids}</p>{pending}'
        f'<div class="cols"><div><h2>Config</h2>{kv_table(dict(c.config_overrides))}</div>'
        f"<div><h2>Stats</h2>{kv_table(dict(c.stats))}</div></div>"
        f"<h2>Frames and detections</h2>"
        f"{_boxes_section(store, c, req, data.pixel_aspect(timeline))}"
        f"<h2>Stage outputs</h2>{stages}"
    )
    return layout(f"Checkpoint {checkpoint_title(c, names)}", body, store=_store_name(store),
                  crumbs=[(f"/t/{c.timeline_id}", ref(c.timeline_id, "timeline")),
                          (f"/c/{c.id}", ref(c.id))], scripts=["/static/app.js"])


# -- errors -------------------------------------------------------------------------------


def error_page(status: int, title: str, message: str, store: str = "",
               links: list[tuple[str, str]] | None = None) -> str:
    more = "".join(f"<li>{link(h, t)}</li>" for h, t in links or [])
    offers = f'<ul class="offers">{more}</ul>' if more else ""
    body = (f'<p class="error">{esc(message)}</p>{offers}'
            f'<p>{link("/", "Back to the timelines")}</p>')
    return layout(f"{status} {title}", body, store=store)
