"""Store.merge: read two checkpoints and their tree, merge three-way, write one checkpoint.

The logic is in ``tree.py`` (pure); this module does the I/O around it: two catalog reads
(the two checkpoints, then their timeline's tree), one more when a resolver function
needs conflicting outputs, and at most one commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .arguments import shown
from .canonical import canonical_bytes, content_hash, json_object
from .catalog import Batch
from .errors import InvalidInputError, MergeConflict, NotFoundError
from .ids import new_id
from .records import utcnow
from .tree import (
    AMBIGUOUS,
    MISSING,
    Conflict,
    Marker,
    State,
    graph_of,
    merge_bases,
    merge_states,
    resolve,
)
from .types import Checkpoint

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Resolver", "merge_checkpoints"]

#: resolver(kind, key, base, ours, theirs) -> value. kind is "stage", "config" or "stats";
#: for stages the values are the outputs (dicts). MISSING marks an absent side, AMBIGUOUS a
#: base that criss-cross merges leave undecided; return MISSING to drop the stage / key.
Resolver = Callable[[str, str, Any, Any, Any], Any]

_MAX_LISTED = 20


def merge_checkpoints(
    store: Store, ours: str, theirs: str, strategy: str | Resolver = "fail"
) -> str:
    """Merge theirs into ours; return the resulting checkpoint id.

    - theirs an ancestor of ours (or equal): returns ours, writes nothing;
    - ours an ancestor of theirs: returns theirs (fast-forward), writes nothing;
    - otherwise writes one checkpoint (parent ours, merged_from theirs, stage "") holding
      the three-way merge of stages, config and stats against the merge base.
    Ancestry follows parent and merged_from links (see ``localckpt.tree``).
    strategy decides conflicts: "fail" raises MergeConflict listing every one and writes
    nothing; "ours" / "theirs" keep that side; a callable is a :data:`Resolver`.
    Idempotent: when ours already has a live child with merged_from theirs and the same
    stages, config and stats as this merge (a merge made before, here or in a store that
    synced it here), that checkpoint's id is returned and nothing is written. A merge
    with another result (another strategy) writes a new sibling.
    """
    choose_side = _check_strategy(strategy)
    for value, what in ((ours, "ours"), (theirs, "theirs")):
        if not isinstance(value, str):
            raise InvalidInputError(
                f"{what} must be a checkpoint id string, not {type(value).__name__}"
            )
    found = {c.id: c for c in store.live_checkpoints({ours, theirs})}
    for cid in (ours, theirs):
        if cid not in found:
            raise NotFoundError(f"no checkpoint {cid!r} in {store.catalog.describe()}")
    o, t = found[ours], found[theirs]
    if o.timeline_id != t.timeline_id:
        shorts = store.short_ids([ours, theirs])  # the command line's: as tree shows them
        tshorts = store.short_ids([o.timeline_id, t.timeline_id], "timeline")
        raise InvalidInputError(
            f"cannot merge checkpoint {theirs} (timeline {t.timeline_id}) into {ours} "
            f"(timeline {o.timeline_id}): merges stay inside one timeline's tree",
            cli=f"cannot merge checkpoint {shorts[theirs]} (timeline "
                f"{tshorts[t.timeline_id]}) into {shorts[ours]} (timeline "
                f"{tshorts[o.timeline_id]}): merges stay inside one timeline's tree",
        )
    if ours == theirs:
        return ours
    tree = {c.id: c for c in store.visibility.live_tree(o.timeline_id)}
    tree.setdefault(ours, o)
    tree.setdefault(theirs, t)
    bases = merge_bases(graph_of(tree.values()), ours, theirs)
    if theirs in bases:
        return ours
    if ours in bases:
        return theirs
    result = merge_states([State.of(tree[b]) for b in bases], State.of(o), State.of(t))
    outputs: dict[str, bytes] = {}
    if result.conflicts:
        if choose_side is None and not callable(strategy):
            listing = _conflict_listing(ours, theirs, result.conflicts)
            shorts = store.short_ids([ours, theirs])  # the command line names them as tree
            cli_listing = _conflict_listing(shorts.get(ours, ours), shorts.get(theirs, theirs),
                                            result.conflicts)
            raise MergeConflict(
                f"{listing}\nPass strategy='ours' or 'theirs' to keep one side, or a "
                "function resolver(kind, key, base, ours, theirs) -> value.",
                [c.as_tuple() for c in result.conflicts],
                cli=f"{cli_listing}\nRun again with --strategy ours or --strategy theirs to "
                "keep one side.",
            )
        if choose_side is not None:
            state = resolve(result, choose_side)
        else:
            state = _resolve_with(store, result, strategy, outputs)  # type: ignore[arg-type]
    else:
        state = result.merged
    existing = _existing_merge(store, tree.values(), ours, theirs, state)
    if existing is not None:
        return existing
    merged = Checkpoint(
        id=new_id(),
        timeline_id=o.timeline_id,
        parent_id=ours,
        stage="",
        stage_hashes=dict(state.stage_hashes),
        config_overrides=dict(state.config),
        stats=dict(state.stats),
        is_scenario=False,
        scenario_label="",
        created_at=utcnow(),
        merged_from=theirs,
    )
    # NotFoundError, nothing written, if ours or theirs was deleted meanwhile
    store.visibility.commit(Batch(checkpoints=[merged], outputs=outputs), o.timeline_id,
                            [o, t], new=[merged.id])
    return merged.id


def _existing_merge(
    store: Store, tree: Iterable[Checkpoint], ours: str, theirs: str, state: State
) -> str | None:
    """The oldest live merge of theirs into ours whose result is state, or None."""
    same = [
        c for c in tree
        if c.parent_id == ours and c.merged_from == theirs and not c.stage
        and not c.is_scenario and _same_state(State.of(c), state)
    ]
    if not same:
        return None
    dead = store.catalog.deleted({c.id for c in same}, "checkpoint")
    live = [c for c in same if c.id not in dead]
    return min(live, key=lambda c: c.id).id if live else None


def _same_state(a: State, b: State) -> bool:
    return dict(a.stage_hashes) == dict(b.stage_hashes) and all(
        canonical_bytes(dict(x)) == canonical_bytes(dict(y))
        for x, y in ((a.config, b.config), (a.stats, b.stats))
    )


def _check_strategy(strategy: Any) -> Callable[[Conflict], Any] | None:
    """The side chooser for "ours"/"theirs"; None for "fail" and callables."""
    if isinstance(strategy, str):
        if strategy == "ours":
            return lambda c: c.ours
        if strategy == "theirs":
            return lambda c: c.theirs
        if strategy == "fail":
            return None
    elif callable(strategy):
        return None
    raise InvalidInputError(
        f"strategy must be 'fail', 'ours', 'theirs' or a function "
        f"resolver(kind, key, base, ours, theirs) -> value, not {shown(strategy)}"
    )


def _resolve_with(
    store: Store, result: Any, resolver: Resolver, outputs: dict[str, bytes]
) -> State:
    """Resolve conflicts with a user function; new stage outputs are added to outputs."""
    wanted = {
        v
        for c in result.conflicts
        if c.kind == "stage"
        for v in (c.base, c.ours, c.theirs)
        if isinstance(v, str)
    }
    values = store.catalog.load_values(wanted) if wanted else {}
    lacking = wanted - set(values)
    if lacking:
        from .errors import CorruptDataError

        raise CorruptDataError(
            f"the catalog lacks stage output(s) {sorted(lacking)[:3]} that checkpoints refer "
            "to; the store is damaged (re-sync it from another store)"
        )

    def value_of(v: Any) -> Any:
        return v if isinstance(v, Marker) else values[v]

    def choose(c: Conflict) -> Any:
        if c.kind == "stage":
            picked = resolver(c.kind, c.key, value_of(c.base), value_of(c.ours),
                              value_of(c.theirs))
            if picked is MISSING:
                return MISSING
            if picked is AMBIGUOUS or not isinstance(picked, dict):
                raise InvalidInputError(
                    f"the resolver returned {type(picked).__name__} for stage {c.key!r}; "
                    "return a dict (the output to keep) or localckpt.tree.MISSING"
                )
            data = canonical_bytes(picked, f"resolved output of stage {c.key!r}")
            h = content_hash(data)
            outputs[h] = data
            return h
        picked = resolver(c.kind, c.key, c.base, c.ours, c.theirs)
        if isinstance(picked, Marker):
            if picked is AMBIGUOUS:
                raise InvalidInputError(
                    f"the resolver returned AMBIGUOUS for {c.kind} key {c.key!r}; return a "
                    "JSON value or localckpt.tree.MISSING"
                )
            return picked
        return json_object({c.key: picked}, f"resolved {c.kind}")[c.key]

    return resolve(result, choose)


def _conflict_listing(ours: str, theirs: str, conflicts: tuple[Conflict, ...]) -> str:
    from .render import plural

    lines = [
        f"merging {theirs} into {ours}: {plural(len(conflicts), 'conflict')}, nothing was "
        "written. "
        "Both sides changed these differently:"
    ]
    for c in conflicts[:_MAX_LISTED]:
        if c.kind == "stage":
            lines.append(f"  stage {c.key!r}: ours {_short(c.ours)}, theirs {_short(c.theirs)}")
        else:
            lines.append(f"  {c.kind} {c.key!r}: ours {c.ours!r}, theirs {c.theirs!r}")
    if len(conflicts) > _MAX_LISTED:
        lines.append(f"  ... and {len(conflicts) - _MAX_LISTED} more")
    return "\n".join(lines)


def _short(h: Any) -> str:
    return f"output {h[:12]}" if isinstance(h, str) else "absent"
