"""Pure tree logic: ancestry, merge base, three-way merge. No I/O, no clock.

A timeline's checkpoints form a tree by ``parent_id``; a merge result also records the
merged-in checkpoint in ``merged_from``. Ancestry here follows both links, so a
checkpoint that was merged in counts as an ancestor of the merge result (as in git):
merging it again is a no-op, and merging a later checkpoint of the same branch uses it as
the base instead of re-reporting conflicts that were already resolved. In a tree without
merges this is exactly the lowest common ancestor of the two lineages.

The three-way rule, per stage (by content hash) and per config / stats key, with
:data:`MISSING` standing for "absent" (so a deletion is a change like any other):

==================  ==================  ===========
ours vs base        theirs vs base      result
==================  ==================  ===========
same                same or changed     theirs
changed             same                ours
changed             changed, equal      ours (= theirs)
changed             changed, differ     conflict
==================  ==================  ===========

Written over plain mappings so that it can be checked exhaustively and is the same for
every backend; the Store (``localckpt.merge``) does the reads and the one write.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .canonical import canonical_bytes
from .types import Checkpoint

__all__ = [
    "AMBIGUOUS",
    "KINDS",
    "MISSING",
    "Conflict",
    "Graph",
    "Marker",
    "MergeResult",
    "State",
    "ancestors",
    "changed_keys",
    "descendants",
    "graph_of",
    "lineage_ids",
    "lowest_common_ancestor",
    "merge_bases",
    "merge_states",
    "resolve",
    "three_way",
]

KINDS = ("stage", "config", "stats")


class Marker(enum.Enum):
    """Placeholders that are never a stored value."""

    #: The key or stage is absent on that side (never set, or deleted by a merge).
    MISSING = "MISSING"
    #: Several best common ancestors disagree on this key (criss-cross merges): no single
    #: base value exists, so any difference between the sides is a conflict.
    AMBIGUOUS = "AMBIGUOUS"

    def __repr__(self) -> str:
        return self.value


MISSING = Marker.MISSING
AMBIGUOUS = Marker.AMBIGUOUS

#: id -> (parent_id, merged_from): the only fields ancestry needs.
Graph = Mapping[str, tuple[str | None, str | None]]


@attrs.frozen
class State:
    """What a merge compares: stage hashes, config and stats of one checkpoint."""

    stage_hashes: Mapping[str, str] = attrs.field(factory=dict)
    config: Mapping[str, Any] = attrs.field(factory=dict)
    stats: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> State:
        return cls(
            dict(checkpoint.stage_hashes), dict(checkpoint.config_overrides),
            dict(checkpoint.stats),
        )

    def part(self, kind: str) -> Mapping[str, Any]:
        """The mapping of one kind: "stage", "config" or "stats"."""
        if kind == "stage":
            return self.stage_hashes
        if kind == "config":
            return self.config
        if kind == "stats":
            return self.stats
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


@attrs.frozen
class Conflict:
    """Both sides changed one stage or key, differently.

    For kind "stage" the values are content hashes; for "config" / "stats" they are the
    JSON values. Any of them may be :data:`MISSING`; base may be :data:`AMBIGUOUS`.
    """

    kind: str
    key: str
    base: Any
    ours: Any
    theirs: Any

    def as_tuple(self) -> tuple[str, str, Any, Any]:
        """The ``(kind, key, ours, theirs)`` form that MergeConflict.conflicts holds."""
        return (self.kind, self.key, self.ours, self.theirs)

    def swapped(self) -> Conflict:
        return Conflict(self.kind, self.key, self.base, self.theirs, self.ours)


@attrs.frozen
class MergeResult:
    """A three-way merge before conflict resolution.

    merged holds every key that merged cleanly (conflicting keys are left out); conflicts
    lists every conflict, ordered by kind (stage, config, stats) then key.
    """

    merged: State
    conflicts: tuple[Conflict, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.conflicts


# -- ancestry -----------------------------------------------------------------------------


def graph_of(checkpoints: Iterable[Checkpoint]) -> dict[str, tuple[str | None, str | None]]:
    """The ancestry graph of some checkpoints (usually one timeline's whole tree)."""
    return {c.id: (c.parent_id, c.merged_from) for c in checkpoints}


def lineage_ids(graph: Graph, checkpoint_id: str) -> list[str]:
    """Ids from the root to checkpoint_id along parent links, root first.

    Stops at a parent the graph does not hold; [] when checkpoint_id itself is unknown.
    """
    chain: list[str] = []
    current: str | None = checkpoint_id
    seen: set[str] = set()
    while current is not None and current in graph and current not in seen:
        seen.add(current)
        chain.append(current)
        current = graph[current][0]
    chain.reverse()
    return chain


def lowest_common_ancestor(a: Sequence[str], b: Sequence[str]) -> str | None:
    """The deepest id two lineages (each root first) share; None when they share none.

    In a tree two lineages share a prefix, so this is the last element of that prefix.
    """
    found = None
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        found = x
    return found


def ancestors(graph: Graph, checkpoint_id: str) -> set[str]:
    """checkpoint_id and everything reachable by parent and merged_from links.

    Ids the graph does not hold are not followed (a dangling merged_from is ignored).
    """
    seen: set[str] = set()
    todo = [checkpoint_id]
    while todo:
        cid = todo.pop()
        if cid in seen or cid not in graph:
            continue
        seen.add(cid)
        parent, merged = graph[cid]
        if parent is not None:
            todo.append(parent)
        if merged is not None:
            todo.append(merged)
    return seen


def merge_bases(graph: Graph, a: str, b: str) -> list[str]:
    """The best common ancestors of a and b (sorted): common ancestors that are not an
    ancestor of another common ancestor.

    One id in a tree, or after merges that do not cross; several after criss-cross
    merges. b is the only base exactly when b is an ancestor of a (and vice versa).
    [] when a and b share no ancestor (different timelines, or unknown ids).
    """
    common = ancestors(graph, a) & ancestors(graph, b)
    # c is a proper ancestor of some d in common iff one of c's direct descendants is in
    # common (every node on a path from c to d is itself an ancestor of a and of b).
    redundant = {p for d in common for p in graph[d] if p is not None and p in common}
    return sorted(common - redundant)


# -- three-way merge ----------------------------------------------------------------------


def _key(kind: str, value: Any) -> Any:
    """What "equal" means: hashes compare as strings, JSON values by canonical form
    (so 1, 1.0 and true are three different values)."""
    if isinstance(value, Marker) or kind == "stage":
        return value
    return canonical_bytes(value)


def _base_value(bases: Sequence[Mapping[str, Any]], kind: str, key: str) -> Any:
    values = [m.get(key, MISSING) for m in bases]
    if not values:
        return MISSING
    first = _key(kind, values[0])
    if all(_key(kind, v) == first for v in values[1:]):
        return values[0]
    return AMBIGUOUS


def three_way(
    kind: str,
    bases: Sequence[Mapping[str, Any]],
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
) -> tuple[dict[str, Any], list[Conflict]]:
    """Merge one kind of mapping per key; return (clean keys, conflicts sorted by key).

    bases: the mapping at each best common ancestor (one in the usual case). A key on
    which the bases disagree has base :data:`AMBIGUOUS`, which equals no side.
    """
    merged: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    keys = set(ours) | set(theirs)
    for m in bases:
        keys |= set(m)
    for key in sorted(keys):
        base = _base_value(bases, kind, key)
        o, t = ours.get(key, MISSING), theirs.get(key, MISSING)
        ko, kt, kb = _key(kind, o), _key(kind, t), _key(kind, base)
        if ko == kt:
            value = o
        elif ko == kb:
            value = t
        elif kt == kb:
            value = o
        else:
            conflicts.append(Conflict(kind, key, base, o, t))
            continue
        if value is not MISSING:
            merged[key] = value
    return merged, conflicts


def merge_states(bases: Sequence[State], ours: State, theirs: State) -> MergeResult:
    """Three-way merge of stages, config and stats against the merge base(s)."""
    parts: dict[str, dict[str, Any]] = {}
    conflicts: list[Conflict] = []
    for kind in KINDS:
        merged, found = three_way(
            kind, [b.part(kind) for b in bases], ours.part(kind), theirs.part(kind)
        )
        parts[kind] = merged
        conflicts.extend(found)
    return MergeResult(State(parts["stage"], parts["config"], parts["stats"]), tuple(conflicts))


def resolve(result: MergeResult, choose: Callable[[Conflict], Any]) -> State:
    """The merged state with every conflict decided by choose(conflict).

    choose returns the value to keep (a hash for stages, a JSON value otherwise) or
    :data:`MISSING` to leave the stage / key out.
    """
    parts = {
        "stage": dict(result.merged.stage_hashes),
        "config": dict(result.merged.config),
        "stats": dict(result.merged.stats),
    }
    for conflict in result.conflicts:
        value = choose(conflict)
        if value is AMBIGUOUS:
            raise ValueError(f"cannot keep AMBIGUOUS as the value of {conflict.kind} "
                             f"{conflict.key!r}")
        if value is not MISSING:
            parts[conflict.kind][conflict.key] = value
    return State(parts["stage"], parts["config"], parts["stats"])


def changed_keys(
    kind: str, a: Mapping[str, Any], b: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """Keys whose value differs between a and b -> (value in a, value in b), sorted by key;
    :data:`MISSING` where a side lacks the key."""
    out = {}
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, MISSING), b.get(key, MISSING)
        if _key(kind, x) != _key(kind, y):
            out[key] = (x, y)
    return out


def descendants(children: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """roots and every id below them by ``children`` (parent id -> child ids); iterative,
    since trees may be thousands deep. Roots the mapping lacks still count."""
    found: set[str] = set()
    todo = list(roots)
    while todo:
        cid = todo.pop()
        if cid not in found:
            found.add(cid)
            todo.extend(children.get(cid, ()))
    return found
