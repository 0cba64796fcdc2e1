"""LockstepMachine: the same random records committed to the memory catalog and to a real
one, and every read compared, at every step.

This is what hypothesis does for its example databases (``test_database_agreement``):
the memory catalog is the reference, so any difference is a bug in one of the two. Rules
commit new timelines, chains of checkpoints (new and reused outputs, scenarios, merge
links), tombstones and tags; commit an earlier batch again (idempotent: no change); commit
a batch in which one record reuses an id with other content (ConflictError from both,
nothing of the batch written); reopen the real catalog. Reads (timelines, checkpoints,
children, lineage, tree, outputs, missing_outputs, tombstones, tags, deleted, find_ids,
load_values) are called with the same random arguments, unknown ids included, on both.

Subclass and override :meth:`make_store` (and :meth:`can_reopen` / :meth:`reopen_store`)
to run it on your backend; ``self.real`` is that store's catalog.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, precondition, rule

from ...canonical import canonical_bytes, content_hash
from ...catalog import Batch, Catalog
from ...errors import ConflictError
from ...ids import new_id
from ...records import utcnow
from ...types import Checkpoint, Tag, Timeline, Tombstone
from .. import strategies as lst
from ._base import StoreMachine

__all__ = ["LockstepMachine"]

_STAGES = st.sampled_from(["detect", "track", "ocr", "scène"])
_MAPS = st.dictionaries(st.sampled_from(["a", "b", "thr"]), lst.json_scalars(), max_size=2)
_STEP = st.tuples(_STAGES, lst.json_objects(max_leaves=3), _MAPS, _MAPS, st.booleans(),
                  lst.json_text)


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", exception type name): what both catalogs must agree on."""
    try:
        return "ok", call()
    except ConflictError as exc:
        return "error", type(exc).__name__


def _links(cid: str, catalog: Catalog) -> tuple[Any, ...]:
    return (catalog.children(cid), catalog.lineage(cid), catalog.peek_checkpoint(cid))


def _tree(timeline_id: str, catalog: Catalog) -> list[Checkpoint]:
    return catalog.tree(timeline_id)


class LockstepMachine(StoreMachine):
    """Commits the same batches to the memory catalog (SQLite in memory) and to
    make_store()'s catalog."""

    timelines = Bundle("timelines")
    checkpoints = Bundle("checkpoints")

    def __init__(self) -> None:
        super().__init__()
        from ...backends.sql import memory_catalog

        self.reference: Catalog = memory_catalog()
        self.batches: list[Batch] = []
        self.unknown = new_id()  # an id neither catalog holds
        self.commits_since_reopen = 0

    @property
    def real(self) -> Catalog:
        return self.store.catalog

    # -- helpers ------------------------------------------------------------------------------

    def both(self, call: Callable[[Catalog], Any]) -> Any:
        """call on both catalogs; the outcomes (value, or error type) must be equal."""
        expected = _outcome(lambda: call(self.reference))
        got = _outcome(lambda: call(self.real))
        assert got == expected, f"real catalog {got!r} != reference {expected!r}"
        return expected[1]

    def commit(self, batch: Batch) -> None:
        outcome = self.both(lambda c: c.commit(batch))
        if outcome is None:
            self.batches.append(batch)
            self.commits_since_reopen += 1

    def _record(self, cid: str) -> Checkpoint:
        found = self.reference.checkpoints([cid])
        assert found, f"the reference lacks {cid}"
        return found[0]

    # -- writes -------------------------------------------------------------------------------

    @rule(target=timelines, frames=st.integers(0, 5), fps=st.sampled_from([1.0, 2.5, 30.0]),
          info=st.dictionaries(st.sampled_from(["fps", "codec", "width"]), lst.json_scalars(),
                               max_size=2),
          asset=st.none() | st.just("asset-1"))
    def new_timeline(self, frames: int, fps: float, info: dict[str, Any],
                     asset: str | None) -> str:
        now = utcnow()
        tl = Timeline(new_id(), "v.mp4", "p", fps, asset, new_id(), frames, now,
                      source_info=info, index_hash=None if frames == 0 else "ab" * 32)
        root = Checkpoint(tl.root_checkpoint_id, tl.id, None, {}, {},
                          {"frames_extracted": frames}, False, "", now)
        self.commit(Batch(timelines=[tl], checkpoints=[root]))
        return tl.root_checkpoint_id

    @rule(target=checkpoints, root=timelines)
    def a_root(self, root: str) -> str:
        return root

    @rule(target=checkpoints, parent=checkpoints | timelines,
          steps=st.lists(_STEP, min_size=1, max_size=3), reuse=st.booleans(),
          merged=st.none() | checkpoints)
    def new_chain(self, parent: str, steps: list[tuple[Any, ...]], reuse: bool,
                  merged: str | None) -> str:
        """One batch: a chain of checkpoints under parent, their new outputs with it."""
        base = self._record(parent)
        if merged is not None and self._record(merged).timeline_id != base.timeline_id:
            merged = None
        known = sorted(self.reference.outputs(base.stage_hashes.values())) if reuse else []
        outputs: dict[str, bytes] = {}
        chain: list[Checkpoint] = []
        for i, (stage, output, config, stats, scenario, label) in enumerate(steps):
            if known and i == 0:
                h = known[0]  # an output the catalog already holds: not sent again
            else:
                data = canonical_bytes(output)
                h = content_hash(data)
                outputs[h] = data
            prev = chain[-1] if chain else base
            chain.append(Checkpoint(
                new_id(), base.timeline_id, prev.id, {**prev.stage_hashes, stage: h},
                {**prev.config_overrides, **config}, {**prev.stats, **stats}, scenario, label,
                utcnow(), merged_from=merged if i == 0 else None, stage=stage))
        self.commit(Batch(checkpoints=chain, outputs=outputs))
        return chain[-1].id

    @rule(cid=checkpoints, tomb=st.booleans(), name=lst.json_text)
    def mark(self, cid: str, tomb: bool, name: str) -> None:
        c = self._record(cid)
        if tomb:
            batch = Batch(tombstones=[Tombstone(new_id(), cid, "checkpoint", c.timeline_id,
                                                utcnow())])
        else:
            name = name.replace("\x00", "") or "t"  # a NUL is refused when a Batch is made
            batch = Batch(tags=[Tag(new_id(), name, cid, c.timeline_id, utcnow())])
        self.commit(batch)

    @precondition(lambda self: self.batches)
    @rule(pick=st.integers(0, 10**6))
    def commit_again(self, pick: int) -> None:
        """An earlier batch again: accepted, and nothing changes."""
        before = self.both(lambda c: (c.timelines(None), c.tombstones(None), c.tags(None)))
        self.both(lambda c: c.commit(self.batches[pick % len(self.batches)]))
        assert self.both(lambda c: (c.timelines(None), c.tombstones(None), c.tags(None))) \
            == before

    @rule(cid=checkpoints, label=lst.json_text)
    def conflicting_commit(self, cid: str, label: str) -> None:
        """A batch with a new checkpoint and an old id with other content: refused whole."""
        old = self._record(cid)
        changed = attrs.evolve(old, scenario_label=old.scenario_label + "x" + label)
        fresh = attrs.evolve(old, id=new_id(), parent_id=old.id, merged_from=None)
        outcome = self.both(lambda c: c.commit(Batch(checkpoints=[fresh, changed])))
        assert outcome == "ConflictError"
        assert self.both(lambda c: c.checkpoints([fresh.id])) == []

    @precondition(lambda self: self.commits_since_reopen >= 3 and self.can_reopen())
    @rule()
    def reopen(self) -> None:
        self.store = self.reopen_store(self.store)
        self.commits_since_reopen = 0

    # -- reads ------------------------------------------------------------------------------

    @rule(ids=st.lists(checkpoints | timelines, max_size=4), unknown=st.booleans())
    def read_checkpoints(self, ids: list[str], unknown: bool) -> None:
        wanted = ids + [self.unknown] * unknown
        self.both(lambda c: c.checkpoints(wanted))
        self.both(lambda c: c.deleted(wanted))
        for one in wanted[:2]:
            self.both(functools.partial(_links, one))

    @rule(cid=checkpoints, length=st.integers(0, 36), limit=st.integers(1, 5),
          kind=st.sampled_from(["checkpoint", "timeline"]))
    def find_by_prefix(self, cid: str, length: int, limit: int, kind: str) -> None:
        ident = cid if kind == "checkpoint" else self._record(cid).timeline_id
        self.both(lambda c: c.find_ids(kind, ident[:length], limit))

    @rule(cid=checkpoints, unknown=st.booleans())
    def read_outputs(self, cid: str, unknown: bool) -> None:
        hashes = sorted(set(self._record(cid).stage_hashes.values())) + ["0" * 64] * unknown
        self.both(lambda c: c.outputs(hashes))
        self.both(lambda c: c.missing_outputs(hashes))
        values = self.both(lambda c: {h: canonical_bytes(v) for h, v in
                                      c.load_values(hashes).items()})
        assert set(values) == set(hashes) - {"0" * 64}

    @rule(root=timelines)
    def read_marks(self, root: str) -> None:
        tid = self._record(root).timeline_id
        self.both(lambda c: c.tombstones([tid, self.unknown]))
        self.both(lambda c: c.tags([tid]))
        self.both(lambda c: c.timelines([tid, self.unknown]))

    @invariant()
    def listings_agree(self) -> None:
        timelines = self.both(lambda c: c.timelines(None))
        for t in timelines:
            self.both(functools.partial(_tree, t.id))
        self.both(lambda c: c.tombstones(None))
        self.both(lambda c: c.tags(None))
