"""A pure model of several stores' trees, deletions and tags, and of sync between them.

The oracle of :class:`localckpt.testing.stateful.sync.SyncMachine`: brute force, no I/O.
It keeps what each store physically holds (records, tombstones, tag records, outputs,
frame objects) and derives what is live from that, with the rules of
``localckpt.visibility`` written again independently:

- a checkpoint is live when its timeline is not deleted and no tombstone targets it or
  a checkpoint on its parent chain;
- a tag record is live when no tombstone targets it and its checkpoint is live; a name
  resolves to its newest live record.

What a store physically keeps of deleted records is up to its backend (a purge may drop
them at any time); the machine lets the model's record of that shrink to what the store
holds, never below what is live.

:meth:`Model.transfer` is what sync must copy: tombstones the destination lacks, and
the records live under the union of both stores' tombstones that it lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import attrs

from ...tree import AMBIGUOUS, MISSING

__all__ = ["Delta", "Mark", "Model", "Node", "Plan", "TagRecord"]


@attrs.frozen
class Node:
    """What one checkpoint must be. config / stats values are canonical JSON bytes."""

    id: str
    timeline: str
    parent: str | None
    merged_from: str | None
    stages: dict[str, str]  # stage -> content hash
    config: dict[str, bytes]
    stats: dict[str, bytes]
    created: datetime | None = attrs.field(default=None, eq=False)
    label: str = attrs.field(default="", eq=False)

    def part(self, kind: str) -> dict[str, Any]:
        parts: dict[str, dict[str, Any]] = {"stage": self.stages, "config": self.config,
                                            "stats": self.stats}
        return parts[kind]


@attrs.frozen
class Mark:
    """A tombstone."""

    id: str
    target: str
    kind: str
    timeline: str


@attrs.frozen
class TagRecord:
    id: str
    name: str
    checkpoint: str
    timeline: str


@attrs.frozen
class Plan:
    """What merging theirs into ours must do."""

    kind: str  # "noop" (returns ours), "ff" (returns theirs) or "merge"
    clean: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # kind -> merged keys
    conflicts: dict[tuple[str, str], tuple[Any, Any, Any]] = attrs.field(factory=dict)


@attrs.frozen
class Delta:
    """What a transfer from one store to another must copy."""

    timelines: frozenset[str]
    checkpoints: frozenset[str]
    marks: frozenset[Mark]
    tags: frozenset[TagRecord]
    outputs: frozenset[str]
    objects: frozenset[str]

    def counts(self) -> dict[str, int]:
        return {"timelines": len(self.timelines), "checkpoints": len(self.checkpoints),
                "tombstones": len(self.marks), "tags": len(self.tags),
                "outputs": len(self.outputs), "objects": len(self.objects)}


class Model:
    """Every checkpoint ever made, and what each store holds. Pure, brute force."""

    def __init__(self, n_stores: int) -> None:
        self.nodes: dict[str, Node] = {}
        self.timelines: dict[str, tuple[str, list[str]]] = {}  # id -> (root, frame keys)
        self.values: dict[str, Any] = {}  # output hash -> value
        self.has: list[set[str]] = [set() for _ in range(n_stores)]  # checkpoint records
        self.has_tl: list[set[str]] = [set() for _ in range(n_stores)]  # timeline records
        self.marks: list[set[Mark]] = [set() for _ in range(n_stores)]
        self.tags: list[set[TagRecord]] = [set() for _ in range(n_stores)]
        # What each store holds besides rows: output hashes and frame object keys. An
        # interrupted sync may leave some of these without the rows that refer to them.
        self.outs: list[set[str]] = [set() for _ in range(n_stores)]
        self.objs: list[set[str]] = [set() for _ in range(n_stores)]

    def add(self, store: int, node: Node) -> None:
        self.nodes[node.id] = node
        self.has[store].add(node.id)
        self.outs[store] |= set(node.stages.values())

    # -- what is live ---------------------------------------------------------------------

    def _chain(self, cid: str) -> list[str]:
        out: list[str] = []
        current: str | None = cid
        while current is not None:
            out.append(current)
            current = self.nodes[current].parent
        return out

    def live_under(self, marks: Iterable[Mark], ids: Iterable[str]) -> set[str]:
        marks = list(marks)
        dead_t = {m.target for m in marks if m.kind == "timeline"}
        marked = {m.target for m in marks if m.kind == "checkpoint"}
        return {c for c in ids if self.nodes[c].timeline not in dead_t
                and not any(x in marked for x in self._chain(c))}

    def live(self, i: int) -> set[str]:
        return self.live_under(self.marks[i], self.has[i])

    def live_timelines(self, i: int) -> set[str]:
        dead = {m.target for m in self.marks[i] if m.kind == "timeline"}
        return self.has_tl[i] - dead

    def tree(self, i: int, tid: str) -> set[str]:
        """The live checkpoints of a timeline in store i."""
        return {c for c in self.live(i) if self.nodes[c].timeline == tid}

    def raw_tree(self, i: int, tid: str) -> set[str]:
        return {c for c in self.has[i] if self.nodes[c].timeline == tid}

    def live_tag_records(self, i: int, live: set[str] | None = None) -> set[TagRecord]:
        live = self.live(i) if live is None else live
        untagged = {m.target for m in self.marks[i] if m.kind == "tag"}
        return {g for g in self.tags[i] if g.id not in untagged and g.checkpoint in live}

    def resolved_tags(self, i: int) -> dict[str, TagRecord]:
        """name -> the live record it resolves to (the newest)."""
        out: dict[str, TagRecord] = {}
        for g in sorted(self.live_tag_records(i), key=lambda g: g.id):
            out[g.name] = g
        return out

    def ancestors(self, cid: str, within: set[str] | None = None) -> set[str]:
        """cid and everything reachable by parent and merged_from links (within: only
        through these ids, as the Store sees a tree with deleted parts left out)."""
        out: set[str] = set()
        todo = [cid]
        while todo:
            x = todo.pop()
            if x in out or (within is not None and x not in within):
                continue
            out.add(x)
            node = self.nodes[x]
            todo.extend(y for y in (node.parent, node.merged_from) if y is not None)
        return out

    def subtree(self, cid: str, within: set[str]) -> set[str]:
        """cid and its descendants by parent links, within these ids."""
        out = {cid}
        grew = True
        while grew:
            more = {c for c in within if self.nodes[c].parent in out} - out
            out |= more
            grew = bool(more)
        return out

    # -- merges ----------------------------------------------------------------------------

    def plan(self, ours: str, theirs: str, within: set[str] | None = None) -> Plan:
        anc_o, anc_t = self.ancestors(ours, within), self.ancestors(theirs, within)
        if theirs in anc_o:
            return Plan("noop")
        if ours in anc_t:
            return Plan("ff")
        common = anc_o & anc_t
        bases = [c for c in common
                 if not any(c in self.ancestors(d, within) - {d} for d in common)]
        o, t = self.nodes[ours], self.nodes[theirs]
        clean: dict[str, dict[str, Any]] = {}
        conflicts = {}
        for kind in ("stage", "config", "stats"):
            clean[kind] = {}
            keys = set(o.part(kind)) | set(t.part(kind))
            for b in bases:
                keys |= set(self.nodes[b].part(kind))
            for key in keys:
                base_values = {self.nodes[b].part(kind).get(key, MISSING) for b in bases}
                base = base_values.pop() if len(base_values) == 1 else AMBIGUOUS
                ov, tv = o.part(kind).get(key, MISSING), t.part(kind).get(key, MISSING)
                if ov == tv or tv == base:
                    value = ov
                elif ov == base:
                    value = tv
                else:
                    conflicts[(kind, key)] = (base, ov, tv)
                    continue
                if value is not MISSING:
                    clean[kind][key] = value
        return Plan("merge", clean, conflicts)

    # -- deletions ---------------------------------------------------------------------------

    def prune_plan(self, i: int, cid: str) -> tuple[set[str], set[str]]:
        """(what prune(cid) deletes, the merged_from ids kept merges name in it)."""
        tree = self.tree(i, self.nodes[cid].timeline)
        gone = self.subtree(cid, tree)
        named = {self.nodes[c].merged_from for c in tree - gone} & gone
        return gone, {x for x in named if x is not None}

    def retain_plan(self, i: int, tid: str, keep_last: int | None, labels: set[str],
                    keep_tagged: bool) -> tuple[set[str], set[str]]:
        """(the roots of the pruned subtrees, everything deleted) for retain."""
        tree = self.tree(i, tid)
        keep = {self.timelines[tid][0]}
        others = sorted((c for c in tree if self.nodes[c].parent is not None),
                        key=lambda c: (self.nodes[c].created, c))
        if keep_last:
            keep |= set(others[-keep_last:])
        keep |= {c for c in tree if self.nodes[c].label in labels}
        if keep_tagged:
            keep |= {g.checkpoint for g in self.live_tag_records(i) if g.timeline == tid}
        closed: set[str] = set()
        for k in keep:
            closed |= self.ancestors(k, tree)
        roots = {c for c in tree - closed if self.nodes[c].parent in closed}
        gone: set[str] = set()
        for r in roots:
            gone |= self.subtree(r, tree)
        return roots, gone

    # -- sync -------------------------------------------------------------------------------

    def transfer(self, src: int, dst: int, tid: str | None,
                 missing_outputs: Callable[[set[str]], set[str]] | None = None) -> Delta:
        """What sync(src, dst, tid) (or importing src's bundle of tid) must copy.

        missing_outputs: which of these outputs dst lacks, asked of the store itself
        (a backend may purge outputs only deleted checkpoints used at any time, so what
        it still holds of those is its own business); else the model's record."""
        own = self.marks[src]
        tids = (self.has_tl[src] | {m.timeline for m in own}) if tid is None else {tid}
        union = own | self.marks[dst]
        new_x = {m for m in own if m.timeline in tids} - self.marks[dst]
        dead_t = {m.target for m in union if m.kind == "timeline"}
        new_tl = (self.has_tl[src] & tids) - dead_t - self.has_tl[dst]
        live = self.live_under(union, {c for c in self.has[src]
                                       if self.nodes[c].timeline in tids})
        new_c = live - self.has[dst]
        untagged = {m.target for m in union if m.kind == "tag"}
        new_g = {g for g in self.tags[src] if g.timeline in tids and g.checkpoint in live
                 and g.id not in untagged} - self.tags[dst]
        needed = {h for c in new_c for h in self.nodes[c].stages.values()}
        lacking = (needed - self.outs[dst] if missing_outputs is None
                   else set(missing_outputs(needed)) if needed else set())
        keys = {k for t in new_tl for k in self.timelines[t][1]}
        return Delta(frozenset(new_tl), frozenset(new_c), frozenset(new_x), frozenset(new_g),
                     frozenset(lacking), frozenset(keys - self.objs[dst]))

    def apply(self, dst: int, delta: Delta) -> None:
        self.has_tl[dst] |= delta.timelines
        self.has[dst] |= delta.checkpoints
        self.marks[dst] |= delta.marks
        self.tags[dst] |= delta.tags
        self.outs[dst] |= delta.outputs
        self.objs[dst] |= delta.objects

    def round_trips(self, src: int, tid: str | None) -> int:
        """Catalog calls of a sync from src that finds nothing to copy."""
        own = self.marks[src]
        tids = (self.has_tl[src] | {m.timeline for m in own}) if tid is None else {tid}
        if not tids:
            return 2  # timelines and tombstones of the source
        records = self.has_tl[src] & tids
        dead = {m.target for m in own if m.kind == "timeline"}
        trees = len(records - dead)
        return 3 + trees + 2 + (1 if records else 0) + (1 if trees else 0)
