"""Which checkpoints of a tree the page draws, so that 5,000 cost what 100 do.

A tree view starts at a checkpoint (the timeline's root unless ``at`` says otherwise)
and draws, breadth first, :data:`DEPTH` levels below the start, :data:`BUDGET` nodes in
all, and at most :data:`CHILDREN` children of the start, half as many of each of its
children, and so on down to 2 (so the first screen shows the shape of every level).
Whatever is left out is summed up in a :class:`Hidden` marker under its parent ("+12
more, 340 checkpoints") that opens it; a lone leaf is drawn instead of a marker for it
(which would take its room), even past the depth or the budget. The
reader's choices travel in the URL:

- ``open``: nodes whose children are all drawn, a page of :data:`OPEN_CHILDREN` at a
  time (``id`` or ``id@offset``), and whose subtrees get :data:`DEPTH` levels again;
- ``shut``: nodes whose children are not drawn;
- a search: matching checkpoints (a tag, a scenario label, an id, short id or prefix)
  are drawn with the path to them, when they are at most :data:`FORCE_DEPTH` levels
  below the start (deeper ones are listed with a link that starts the view near them),
  and the rest of the tree only :data:`SEARCH_DEPTH` level deep.

Pure: takes checkpoints, returns ids; the page draws them (:mod:`localckpt.web.tree`).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence

import attrs

from ..ids import id_tail
from ..types import Checkpoint

__all__ = ["BUDGET", "CHILDREN", "DEPTH", "FORCE_DEPTH", "OPEN_CHILDREN", "SEARCH_DEPTH",
           "Hidden", "Match", "Outline", "children_at", "outline", "search"]

DEPTH = 3
CHILDREN = 8
OPEN_CHILDREN = 50
BUDGET = 80
FORCE_DEPTH = 16
#: Levels drawn by default while a search shows its matches (the paths to them stand out).
SEARCH_DEPTH = 1


@attrs.frozen
class Hidden:
    """What is not drawn under a drawn node: children (direct) and checkpoints (all
    their descendants too); offset/after: the page of an opened node's children drawn
    (offset) and how many come after it."""

    children: int
    checkpoints: int
    opened: bool = False
    offset: int = 0
    after: int = 0


@attrs.frozen
class Outline:
    """The drawn part of a tree: start (its top), drawn ids (parents before their
    children), each drawn node's drawn children in order, what is hidden under a node,
    and subtree sizes of every checkpoint."""

    start: str
    drawn: list[str]
    kids: dict[str, list[str]]
    hidden: dict[str, Hidden]
    sizes: dict[str, int]
    parent: dict[str, str | None]

    def depth_of(self, cid: str) -> int:
        """Levels from start down to cid (cid must be at or below start)."""
        n = 0
        while cid != self.start:
            up = self.parent.get(cid)
            if up is None:
                break
            cid, n = up, n + 1
        return n


@attrs.frozen
class Match:
    """A search hit: the checkpoint and why it matched ("tag best", "label thr=0.3",
    "id")."""

    checkpoint: str
    why: str


def _children(checkpoints: Sequence[Checkpoint]) -> tuple[dict[str, list[str]],
                                                          dict[str, str | None]]:
    ids = {c.id for c in checkpoints}
    kids: defaultdict[str, list[str]] = defaultdict(list)
    parent: dict[str, str | None] = {}
    for c in checkpoints:  # oldest first, so children are too
        p = c.parent_id if c.parent_id in ids else None
        parent[c.id] = p
        if p is not None:
            kids[p].append(c.id)
    return dict(kids), parent


def _sizes(roots: Iterable[str], kids: Mapping[str, list[str]]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    stack = [(r, False) for r in roots]
    while stack:  # iterative: trees may be thousands deep
        node, done = stack.pop()
        if done:
            sizes[node] = 1 + sum(sizes[k] for k in kids.get(node, ()))
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in kids.get(node, ()))
    return sizes


def outline(checkpoints: Sequence[Checkpoint], *, start: str | None = None,
            opened: Mapping[str, int] | None = None, shut: Iterable[str] = (),
            focus: Iterable[str] = ()) -> Outline:
    """What to draw of a tree (see the module docstring). start: the checkpoint the view
    begins at (default: the root, the oldest checkpoint without a parent in the tree)."""
    kids, parent = _children(checkpoints)
    roots = [c.id for c in checkpoints if parent[c.id] is None]
    sizes = _sizes(roots, kids)
    if not checkpoints:
        return Outline("", [], {}, {}, sizes, parent)
    top = start if start in parent else roots[0]
    opened = dict(opened or {})
    closed = set(shut)
    forced = _paths(focus, top, parent)
    depth_limit = SEARCH_DEPTH if forced else DEPTH
    drawn = [top]
    shown_kids: dict[str, list[str]] = {}
    hidden: dict[str, Hidden] = {}
    queue = deque([(top, 0)])
    while queue:
        node, level = queue.popleft()
        children = kids.get(node, [])
        if not children:
            continue
        is_open = node in opened and node not in closed
        offset = 0
        if is_open:
            offset = max(0, min(opened[node], len(children) - 1)) // OPEN_CHILDREN \
                * OPEN_CHILDREN
            window = children[offset:offset + OPEN_CHILDREN]
        elif node in closed or level >= depth_limit:
            window = []
        else:
            window = children[:max(0, min(children_at(level), BUDGET - len(drawn)))]
        chosen = set(window) | {k for k in children if k in forced}
        rest = [k for k in children if k not in chosen]
        if len(rest) == 1 and sizes[rest[0]] == 1 and node not in closed:
            chosen.add(rest[0])  # a marker for one leaf would take the room of the leaf
        picked = [k for k in children if k in chosen]
        shown_kids[node] = picked
        for k in picked:
            drawn.append(k)
            queue.append((k, 0 if is_open else level + 1))
        if len(picked) < len(children):
            rest = [k for k in children if k not in chosen]
            after = len(children) - offset - len(window) if is_open else 0
            hidden[node] = Hidden(len(rest), sum(sizes[k] for k in rest), is_open, offset,
                                  after)
    return Outline(top, drawn, shown_kids, hidden, sizes, parent)


def children_at(level: int) -> int:
    """Children drawn by default under a node level levels below the start."""
    return max(2, CHILDREN >> level)


def _paths(focus: Iterable[str], top: str, parent: Mapping[str, str | None]) -> set[str]:
    """The checkpoints on the paths from top down to each focus checkpoint that lies at
    most FORCE_DEPTH levels below top."""
    forced: set[str] = set()
    for cid in focus:
        path: list[str] = []
        node: str | None = cid
        while node is not None and node != top and len(path) <= FORCE_DEPTH:
            path.append(node)
            node = parent.get(node)
        if node == top and len(path) <= FORCE_DEPTH:
            forced.update(path)
    return forced


def search(checkpoints: Sequence[Checkpoint], tags: Mapping[str, Sequence[str]],
           query: str, limit: int = 50) -> list[Match]:
    """Checkpoints a query names: a tag or scenario label containing it (ignoring case),
    or an id, short id (the id's tail) or id prefix starting with it. Tags first, then
    labels, then ids; each group oldest first."""
    q = query.strip().lower()
    if not q:
        return []
    found: dict[str, Match] = {}
    by_tag = [(cid, n) for cid, names in tags.items() for n in names if q in n.lower()]
    for cid, name in sorted(by_tag, key=lambda x: (x[1].lower() != q, x[1])):
        found.setdefault(cid, Match(cid, f"tag {name}"))
    for c in checkpoints:
        if c.scenario_label and q in c.scenario_label.lower():
            found.setdefault(c.id, Match(c.id, f"label {c.scenario_label}"))
    plain = q.replace("-", "")
    for c in checkpoints:
        if c.id.lower().startswith(q) or (plain and id_tail(c.id).startswith(plain)):
            found.setdefault(c.id, Match(c.id, "id"))
    return list(found.values())[:limit]
