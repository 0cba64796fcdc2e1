"""The checkpoint tree drawn as inline SVG, laid out on the server (no script needed).

Depth runs left to right; each leaf gets a row of its own and a parent sits level with
the middle of its children, so siblings (config tries) stack under one another. Each node
shows its stage, short id, scenario label, and the config and stats keys it changed;
its tooltip (``<title>``) holds the whole config and stats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ..types import Checkpoint
from .html import attr, compact, esc, short, shorten

__all__ = ["NODE_H", "NODE_W", "render_tree"]

NODE_W, NODE_H = 260, 84
COL_GAP, ROW_GAP, PAD = 56, 14, 12
_CHARS = 36  # characters that fit on a node's line at 12 px


def _layout(checkpoints: Sequence[Checkpoint]) -> dict[str, tuple[int, float]]:
    """id -> (depth, row): rows are leaf order of a depth-first walk, oldest child first."""
    ids = {c.id for c in checkpoints}
    kids: defaultdict[str | None, list[str]] = defaultdict(list)
    for c in checkpoints:  # checkpoints come oldest first, so children do too
        kids[c.parent_id if c.parent_id in ids else None].append(c.id)
    place: dict[str, tuple[int, float]] = {}
    next_row = 0
    # iterative post-order: trees may be thousands deep
    stack: list[tuple[str, int, bool]] = [(r, 0, False) for r in reversed(kids[None])]
    while stack:
        node, depth, expanded = stack.pop()
        children = kids.get(node, [])
        if not children:
            place[node] = (depth, float(next_row))
            next_row += 1
        elif expanded:
            rows = [place[k][1] for k in children]
            place[node] = (depth, (rows[0] + rows[-1]) / 2)
        else:
            stack.append((node, depth, True))
            stack.extend((k, depth + 1, False) for k in reversed(children))
    return place


def _xy(depth: int, row: float) -> tuple[float, float]:
    return PAD + depth * (NODE_W + COL_GAP), PAD + row * (NODE_H + ROW_GAP)


def _changed(mine: Any, parents: Any) -> str:
    return " ".join(f"{k}={compact(v)}" for k, v in sorted(mine.items())
                    if parents.get(k, _ABSENT) != v)


_ABSENT = object()


def _node(c: Checkpoint, parent: Checkpoint | None, x: float, y: float) -> str:
    if c.parent_id is None:
        title = "root"
    elif c.merged_from:
        title = "merge"
    else:
        title = c.stage or "?"
    label = " · ".join(filter(None, ["scenario" if c.is_scenario else "", c.scenario_label]))
    base_cfg = parent.config_overrides if parent else {}
    base_stats = parent.stats if parent else {}
    cfg = _changed(c.config_overrides, base_cfg)
    stats = _changed(c.stats, base_stats)
    tip = "\n".join(filter(None, [
        f"{title} {c.id}", label, "config " + compact(dict(c.config_overrides)),
        "stats " + compact(dict(c.stats)), "stages " + ", ".join(sorted(c.stage_hashes)),
    ]))
    lines = [(cls, text) for cls, text in (
        ("label", label), ("cfg", ("config " + cfg) if cfg else ""),
        ("stats", ("stats " + stats) if stats else ""),
    ) if text]
    classes = "node" + (" scenario" if c.is_scenario else "") + (
        " root" if c.parent_id is None else "")
    href = attr(f"/c/{c.id}")
    body = "".join(
        f'<text x="10" y="{38 + 18 * i}" class={attr(cls)}>{esc(shorten(text, _CHARS))}</text>'
        for i, (cls, text) in enumerate(lines)
    )
    return (
        f'<g class={attr(classes)} data-id={attr(c.id)} data-title={attr(title)} '
        f'transform="translate({x:g},{y:g})"><title>{esc(tip)}</title>'
        f'<rect width="{NODE_W}" height="{NODE_H}" rx="7"/>'
        f'<a href={href}><text x="10" y="19" class="stage">{esc(shorten(title, 24))}</text>'
        f'<text x="{NODE_W - 10}" y="19" class="id" text-anchor="end">{esc(short(c.id))}'
        f"</text></a>{body}</g>"
    )


def render_tree(checkpoints: Sequence[Checkpoint]) -> str:
    """The tree as one ``<svg>`` element (width and height fit the drawing)."""
    if not checkpoints:
        return '<p class="muted">no checkpoints</p>'
    place = _layout(checkpoints)
    by_id = {c.id: c for c in checkpoints}
    edges, nodes = [], []
    for c in checkpoints:
        depth, row = place[c.id]
        x, y = _xy(depth, row)
        parent = by_id.get(c.parent_id) if c.parent_id else None
        for other, cls in ((parent, "edge"),
                           (by_id.get(c.merged_from) if c.merged_from else None,
                            "edge merged")):
            if other is None:
                continue
            px, py = _xy(*place[other.id])
            x1, y1, y2 = px + NODE_W, py + NODE_H / 2, y + NODE_H / 2
            mid = (x1 + x) / 2
            edges.append(f'<path class={attr(cls)} d="M{x1:g} {y1:g} C{mid:g} {y1:g} '
                         f'{mid:g} {y2:g} {x:g} {y2:g}"/>')
        nodes.append(_node(c, parent, x, y))
    width = PAD * 2 + (max(d for d, _ in place.values()) + 1) * (NODE_W + COL_GAP) - COL_GAP
    height = PAD * 2 + (max(r for _, r in place.values()) + 1) * (NODE_H + ROW_GAP) - ROW_GAP
    return (
        f'<svg class="tree" xmlns="http://www.w3.org/2000/svg" width="{width:g}" '
        f'height="{height:g}" viewBox="0 0 {width:g} {height:g}" role="img" '
        f'aria-label="checkpoint tree, {len(checkpoints)} checkpoints">'
        + "".join(edges) + "".join(nodes) + "</svg>"
    )
