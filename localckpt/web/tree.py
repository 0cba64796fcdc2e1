"""The drawn part of a checkpoint tree as inline SVG, laid out on the server.

Depth runs left to right; siblings (config tries) stack under one another and a parent
sits level with its first child. A node shows its stage, short id, tags,
scenario label, and the config and stats keys it changed, one per line (its tooltip
holds the whole config and stats); its text is clipped to its box, so a long value can
never spill over a neighbour. What :mod:`localckpt.web.outline` left out is a dashed
marker under its parent that opens it.

A merge's second parent (``merged_from``) is joined by a dashed arrow routed around the
nodes: it runs only in the gaps between columns, and crosses a column at a height where
no node of that column is.

An open stage run (``localckpt.runs``) is a dashed node under the checkpoint its commit
will save a child of: its stage, the run's short id, "pending 16/40, 12 from memo" and a
progress bar; its tooltip says how to see it from the shell (``localckpt run show``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..types import Checkpoint
from .html import attr, compact, esc, shorten, url
from .outline import OPEN_CHILDREN, Hidden, Outline

__all__ = ["NODE_W", "TreeState", "node_lines", "pending_lines", "render_tree", "route_merge"]

NODE_W = 244
COL_GAP, ROW_GAP, PAD = 52, 12, 14
LINE, HEAD = 16, 28
ANCHOR = 14  # edges meet a box this far below its top (its title row)
STUB_H = 46
_CHARS = 33  # characters that fit on a node's line at 12 px
_ID_CHAR = 6.7  # width of a character of an id (11 px monospace: 0.6 em, and a little)
_TITLE_PX = 14  # a title's font size; its characters' widths in em, rounded up:
_NARROW, _HALF, _USUAL, _UPPER, _WIDE = 0.38, 0.52, 0.72, 0.86, 1.11
_MAX_KEYS = 4  # changed config / stats keys listed on a node; the rest are counted
_ABSENT = object()

Box = tuple[float, float, float, float]  # x, y, width, height


@attrs.frozen
class TreeState:
    """The reader's view of a tree, as carried in the URL (see localckpt.web.outline)."""

    base: str
    start: str | None = None
    opened: Mapping[str, int] = attrs.field(factory=dict)
    shut: frozenset[str] = frozenset()
    query: str = ""

    def href(self, anchor: str = "", extra: Mapping[str, Any] | None = None,
             **change: Any) -> str:
        """This view's URL, with change (fields of this class) and extra query values."""
        s = attrs.evolve(self, **change) if change else self
        opened = ",".join(f"{k}@{v}" if v else k for k, v in sorted(s.opened.items()))
        return url(s.base, at=s.start, open=opened, shut=",".join(sorted(s.shut)),
                   q=s.query, **(extra or {})) + (f"#{anchor}" if anchor else "")

    def open(self, cid: str, offset: int = 0) -> str:
        return self.href(f"n-{cid}", opened={**self.opened, cid: offset},
                         shut=self.shut - {cid})

    def close(self, cid: str) -> str:
        opened = {k: v for k, v in self.opened.items() if k != cid}
        return self.href(f"n-{cid}", opened=opened, shut=self.shut | {cid})


def _changed(mine: Mapping[str, Any], parents: Mapping[str, Any]) -> list[str]:
    return [f"{k}={compact(v)}" for k, v in sorted(mine.items())
            if parents.get(k, _ABSENT) != v]


def _title(c: Checkpoint) -> str:
    if c.parent_id is None:
        return "root"
    return "merge" if c.merged_from else (c.stage or "?")


def node_lines(c: Checkpoint, parent: Checkpoint | None, tags: Sequence[str],
               short: Callable[[str], str]) -> list[tuple[str, str]]:
    """(css class, text) of each line a node shows under its title."""
    lines: list[tuple[str, str]] = []
    if tags:
        lines.append(("tags", "⚑ " + ", ".join(tags)))
    label = " · ".join(filter(None, ["scenario" if c.is_scenario else "", c.scenario_label]))
    if label:
        lines.append(("label", label))
    if c.merged_from:
        lines.append(("merged", f"merged from {short(c.merged_from)}"))
    for cls, name, mine, base in (
            ("cfg", "config", c.config_overrides, parent.config_overrides if parent else {}),
            ("stats", "stats", c.stats, parent.stats if parent else {})):
        keys = _changed(mine, base)
        lines.extend((cls, f"{name} {k}") for k in keys[:_MAX_KEYS])
        if len(keys) > _MAX_KEYS:
            lines.append((cls, f"{name}: {len(keys) - _MAX_KEYS} more (see tooltip)"))
    return lines


def _height(lines: int) -> float:
    return HEAD + LINE * lines + 8


# -- layout -------------------------------------------------------------------------------


def _layout(ol: Outline, heights: Mapping[str, float],
            pending: Mapping[str, Sequence[str]] | None = None) -> dict[str, Box]:
    """item -> (x, y, w, h); items are checkpoint ids, "+<id>" (what is hidden under
    <id>) and "~<run id>" (an open run; pending: parent id -> those items). A parent is
    level with its first child, so the top of a tall tree (the part read first) is where
    the page opens it: at its top left corner."""
    pending = pending or {}

    def kids(item: str) -> list[str]:
        if item[0] in "+~":
            return []
        return (ol.kids.get(item, []) + list(pending.get(item, ()))
                + (["+" + item] if item in ol.hidden else []))

    extent: dict[str, float] = {}
    stack = [(ol.start, False)]
    while stack:
        item, done = stack.pop()
        if done:
            ks = kids(item)
            block = sum(extent[k] for k in ks) + ROW_GAP * max(0, len(ks) - 1)
            extent[item] = max(heights[item], block)
        else:
            stack.append((item, True))
            stack.extend((k, False) for k in kids(item))
    boxes: dict[str, Box] = {}
    todo = [(ol.start, 0, float(PAD))]
    while todo:
        item, col, top = todo.pop()
        h = heights[item]
        boxes[item] = (PAD + col * (NODE_W + COL_GAP), top, float(NODE_W), h)
        y = top
        for k in kids(item):
            todo.append((k, col + 1, y))
            y += extent[k] + ROW_GAP
    return boxes


def route_merge(src: Box, dst: Box, others: Sequence[Box]) -> list[tuple[float, float]]:
    """The corners of a merge arrow from src's right side to dst's left side that
    crosses no box of others: vertical runs only in column gaps, and a horizontal run
    across columns at a height free of boxes."""
    sx, sy = src[0] + src[2], src[1] + src[3] - ANCHOR
    dx, dy = dst[0], dst[1] + dst[3] - ANCHOR
    gx1, gx2 = sx + COL_GAP * 0.7, dx - COL_GAP * 0.3
    if abs(gx1 - gx2) < 1:  # neighbouring columns: one gap holds the whole turn
        return [(sx, sy), (gx1, sy), (gx1, dy), (dx, dy)]
    lo, hi = min(gx1, gx2), max(gx1, gx2)
    blocked = sorted((b[1] - 5, b[1] + b[3] + 5) for b in (*others, src, dst)
                     if b[0] >= lo and b[0] + b[2] <= hi)
    candidates = [dy, sy] + [y for a, b in blocked for y in (a - 1, b + 1)]

    def free(y: float) -> bool:
        return all(not a < y < b for a, b in blocked)

    cy = min((y for y in candidates if free(y)), key=lambda y: (abs(y - dy) + abs(y - sy)))
    return [(sx, sy), (gx1, sy), (gx1, cy), (gx2, cy), (gx2, dy), (dx, dy)]


# -- drawing ------------------------------------------------------------------------------


def _node(c: Checkpoint, parent: Checkpoint | None, box: Box, lines: list[tuple[str, str]],
          short: str, tags: Sequence[str], state: TreeState, ol: Outline,
          hit: bool) -> str:
    x, y, w, h = box
    title = _title(c)
    tip = "\n".join(filter(None, [
        f"{title} {c.id}", "tags " + ", ".join(tags) if tags else "",
        c.scenario_label, "config " + compact(dict(c.config_overrides)),
        "stats " + compact(dict(c.stats)), "stages " + ", ".join(sorted(c.stage_hashes)),
    ]))
    classes = "node" + (" scenario" if c.is_scenario else "") + (
        " root" if c.parent_id is None else "") + (" hit" if hit else "")
    body = "".join(
        f'<text x="10" y="{HEAD + 12 + LINE * i}" class={attr(cls)}>'
        f"{esc(shorten(text, _CHARS))}</text>" for i, (cls, text) in enumerate(lines))
    toggle = ""
    if ol.kids.get(c.id):
        toggle = (f'<a href={attr(state.close(c.id))} class="tog"><title>collapse this '
                  f'subtree</title><rect x="{w - 22}" y="{h - 20}" width="16" height="16" '
                  f'rx="3"/><text x="{w - 14}" y="{h - 8}" text-anchor="middle">\u2212</text></a>')
    return (
        f'<g class={attr(classes)} id={attr("n-" + c.id)} data-id={attr(c.id)} '
        f"data-short={attr(short)} data-tags={attr(' '.join(tags))} "
        f'data-title={attr(title)} transform="translate({x:g},{y:g})">'
        f"<title>{esc(tip)}</title>"
        f'<rect class="card" width="{w:g}" height="{h:g}" rx="7"/>'
        f'<svg width="{w:g}" height="{h:g}">'
        f'<a href={attr("/c/" + c.id)}>{_head(title, short, w)}</a>'
        f"{body}</svg>{toggle}</g>"
    )


def _title_width(text: str) -> float:
    """About how wide text is as a card's title (14 px bold), in px: DejaVu Sans Bold's
    widths, the widest of the usual fonts, so a title cut to fit fits elsewhere too."""
    return _TITLE_PX * sum(_WIDE if ch in "mwMW@%=…" else _NARROW if ch in "ijlI.,:;'!| "
                           else _HALF if ch in "frt-_()[]" else _UPPER if ch.isupper()
                           else _USUAL for ch in text)


def fit_title(text: str, px: float) -> str:
    """text, or as much of it as fits in px followed by "…" (a title cut where its box
    ends, with no sign that it goes on, read as the whole name)."""
    if _title_width(text) <= px:
        return text
    keep = len(text)
    while keep and _title_width(text[:keep] + "…") > px:
        keep -= 1
    return text[:keep] + "…"


def _head(title: str, ident: str, w: float) -> str:
    """A card's title row: the title (bold, left) cut short of the id (mono, right) with
    "…", and clipped there too, so a long or wide name never runs into the id."""
    room = w - 10 - _ID_CHAR * len(ident) - 8  # where the id begins, less a gap
    return (f'<svg class="head" width="{room:g}" height="{HEAD}"><text x="10" y="19" '
            f'class="stage">{esc(fit_title(title, room - 10))}</text></svg>'
            f'<text x="{w - 10:g}" y="19" class="id" text-anchor="end">{esc(ident)}</text>')


def _stub(parent: str, hidden: Hidden, box: Box, state: TreeState) -> str:
    x, y, w, h = box
    what = f"{hidden.checkpoints:,} checkpoint" + ("" if hidden.checkpoints == 1 else "s")
    if hidden.opened:
        links = []
        if hidden.offset:
            links.append((state.open(parent, hidden.offset - OPEN_CHILDREN), "◂ previous"))
        if hidden.after:
            links.append((state.open(parent, hidden.offset + OPEN_CHILDREN), "next ▸"))
        links.append((state.close(parent), "collapse"))
        head = f"{hidden.children:,} more children ({what})"
    else:
        links = [(state.open(parent), "show")]
        head = f"+{hidden.children:,} more ({what})"
    xs = 10
    anchors = []
    for href, text in links:
        anchors.append(f'<a href={attr(href)}><text x="{xs}" y="36" class="more">'
                       f"{esc(text)}</text></a>")
        xs += 8 * len(text) + 16
    return (f'<g class="hidden" data-parent={attr(parent)} '
            f'data-count="{hidden.checkpoints}" transform="translate({x:g},{y:g})">'
            f'<rect width="{w:g}" height="{h:g}" rx="7"/><svg width="{w:g}" height="{h:g}">'
            f'<text x="10" y="17">{esc(head)}</text>{"".join(anchors)}</svg></g>')


def pending_lines(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(css class, text) of each line an open run's node shows under its title."""
    what = "committing" if run["state"] == "committing" else "pending"
    memo = f", {run['memo_hits']:,} from memo" if run["memo_hits"] else ""
    lines = [("progress", f"{what} {run['done'] + run['memo_hits']:,}/{run['total']:,}{memo}")]
    if run.get("version"):
        lines.append(("stats", f"version {run['version']}"))
    return lines


def _pending(run: Mapping[str, Any], box: Box, lines: list[tuple[str, str]]) -> str:
    """An open run: a dashed card with its progress (done + memo hits of total) as a bar."""
    x, y, w, h = box
    total = run["total"]
    shown = run["done"] + run["memo_hits"]
    bar_w = w - 20
    filled = bar_w * min(1.0, shown / total) if total else 0.0
    tip = "\n".join([
        f"open run {run['id']} of stage {run['stage']}" + (
            " (its commit began)" if run["state"] == "committing" else ""),
        f"{run['done']:,} written, {run['memo_hits']:,} from the memo, {run['todo']:,} to do, "
        f"of {total:,} frames", f"version {run['version']!r}",
        f"see it with: localckpt run show {run['short_id']}"])
    body = "".join(
        f'<text x="10" y="{HEAD + 12 + LINE * i}" class={attr(cls)}>'
        f"{esc(shorten(text, _CHARS))}</text>" for i, (cls, text) in enumerate(lines))
    bar_y = HEAD + LINE * len(lines) + 4
    return (
        f'<g class="pending" id={attr("r-" + run["id"])} data-run={attr(run["id"])} '
        f'data-short={attr(run["short_id"])} data-state={attr(run["state"])} '
        f'data-done="{shown}" data-total="{total}" transform="translate({x:g},{y:g})">'
        f"<title>{esc(tip)}</title>"
        f'<rect class="card" width="{w:g}" height="{h:g}" rx="7"/>'
        f'<svg width="{w:g}" height="{h:g}">{_head(run["stage"], "run " + run["short_id"], w)}'
        f"{body}"
        f'<rect class="bar" x="10" y="{bar_y:g}" width="{bar_w:g}" height="6" rx="3"/>'
        f'<rect class="done" x="10" y="{bar_y:g}" width="{filled:.1f}" height="6" rx="3"/>'
        f"</svg></g>"
    )


def _elbow(a: Box, b: Box, cls: str) -> str:
    """Parent a to child b: right from a's title row, down the gap, right into b's title
    row (children of one parent share the vertical run, as in a file tree)."""
    x1, y1 = a[0] + a[2], a[1] + ANCHOR
    x2, y2 = b[0], b[1] + ANCHOR
    mid = x1 + COL_GAP / 2
    return f'<path class={attr(cls)} d="M{x1:g} {y1:g} H{mid:g} V{y2:g} H{x2:g}"/>'



def render_tree(checkpoints: Sequence[Checkpoint], ol: Outline,
                tags: Mapping[str, Sequence[str]], short: Callable[[str], str],
                state: TreeState, hits: frozenset[str] = frozenset(),
                runs: Sequence[Mapping[str, Any]] = ()) -> str:
    """The drawn part of the tree as one ``<svg>`` element sized to fit. runs: open
    stage runs (``localckpt.runs.store_api.pending_runs``), each drawn under its parent
    checkpoint when that one is drawn."""
    if not ol.drawn:
        return '<p class="muted">no checkpoints</p>'
    by_id = {c.id: c for c in checkpoints}
    lines = {cid: node_lines(by_id[cid], by_id.get(by_id[cid].parent_id or ""),
                             tags.get(cid, ()), short) for cid in ol.drawn}
    # a node with a collapse button (bottom right) has a line under its title for it
    heights: dict[str, float] = {cid: _height(max(len(v), 1 if ol.kids.get(cid) else 0))
                                 for cid, v in lines.items()}
    heights.update({"+" + p: float(STUB_H) for p in ol.hidden})
    drawn = set(ol.drawn)
    open_runs = {"~" + r["id"]: r for r in runs if r["parent_id"] in drawn}
    pending: dict[str, list[str]] = {}
    run_lines: dict[str, list[tuple[str, str]]] = {}
    for item, r in open_runs.items():
        pending.setdefault(r["parent_id"], []).append(item)
        run_lines[item] = pending_lines(r)
        heights[item] = _height(len(run_lines[item])) + 10  # and the progress bar
    boxes = _layout(ol, heights, pending)
    # edges to open runs first: the solid edges drawn over them keep the shared run solid
    edges = [_elbow(boxes[p], boxes[k], "edge to-pending") for p, ks in pending.items()
             for k in ks]
    merges, items = [], []
    for cid in ol.drawn:
        for k in ol.kids.get(cid, []):
            edges.append(_elbow(boxes[cid], boxes[k], "edge"))
        if cid in ol.hidden:
            edges.append(_elbow(boxes[cid], boxes["+" + cid], "edge to-hidden"))
    all_boxes = list(boxes.values())
    for cid in ol.drawn:
        src = by_id[cid].merged_from
        if src and src in boxes:
            others = [b for b in all_boxes if b is not boxes[src] and b is not boxes[cid]]
            pts = route_merge(boxes[src], boxes[cid], others)
            d = "M" + " L".join(f"{x:g} {y:g}" for x, y in pts)
            merges.append(f'<path class="edge merged" d="{d}" marker-end="url(#arrow)"/>')
    for cid in ol.drawn:
        c = by_id[cid]
        items.append(_node(c, by_id.get(c.parent_id or ""), boxes[cid], lines[cid],
                           short(cid), tags.get(cid, ()), state, ol, cid in hits))
    for p, hidden in ol.hidden.items():
        items.append(_stub(p, hidden, boxes["+" + p], state))
    for item, r in open_runs.items():
        items.append(_pending(r, boxes[item], run_lines[item]))
    width = max(b[0] + b[2] for b in all_boxes) + PAD
    height = max(b[1] + b[3] for b in all_boxes) + PAD
    defs = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" '
            'class="arrow"/></marker></defs>')
    runs_said = (f", {len(open_runs)} open run" + ("" if len(open_runs) == 1 else "s")
                 if open_runs else "")
    return (
        f'<svg class="tree" xmlns="http://www.w3.org/2000/svg" width="{width:g}" '
        f'height="{height:g}" viewBox="0 0 {width:g} {height:g}" role="img" '
        f'aria-label="checkpoint tree, {len(ol.drawn)} of {len(checkpoints)} checkpoints '
        f'drawn{runs_said}">{defs}' + "".join(edges) + "".join(merges) + "".join(items)
        + "</svg>"
    )
