"""SyncMachine: model-based properties of merge, sync, bundles and deletion, over stores.

A hypothesis ``RuleBasedStateMachine`` saves, forks, merges, syncs, exports / imports,
deletes timelines, prunes, retains, tags, untags and collects garbage between two or
three stores, and after every step compares each store with the pure model of
:mod:`.sync_model`:

- a store shows exactly the live timelines, checkpoints and tags the model says (none
  lost that was not deleted, none invented, nothing deleted visible), and physically
  holds the records, tombstones, outputs and frame objects the model says; every record
  is identical in every store that holds it;
- sync is the union of a 2P-set: tombstones travel, and only records live under both
  stores' tombstones are copied; the report counts exactly that, so unions are
  commutative, associative and idempotent on what is visible; a second sync copies
  nothing, in the round trips the model predicts;
- exporting a bundle and importing it does exactly what a sync does;
- merge is three-way against the merge base (brute force in the model); prune, retain,
  tag and untag do what the model says, or refuse with nothing written.

Subclass it per backend combination, setting ``factory`` (kind -> a fresh Store),
``close_store`` and ``kinds``, then run it with hypothesis' ``run_state_machine_as_test``
(``localckpt``'s own tests do this over every pair of backends).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import localckpt
from localckpt import Store
from localckpt.bundle import export_bundle, import_bundle
from localckpt.canonical import canonical_bytes, content_hash, load_canonical
from localckpt.errors import ConflictError, InvalidInputError, MergeConflict, NotFoundError
from localckpt.gc import collect_garbage
from localckpt.shards import frame_keys
from localckpt.tree import AMBIGUOUS, MISSING

from .sync_model import Delta, Mark, Model, Node, TagRecord

__all__ = ["RESOLVERS", "Crash", "SyncMachine"]

STAGES = st.sampled_from(["detect", "track", "ocr"])
OUTPUTS = st.builds(lambda v: {"v": v}, st.integers(0, 2))  # few values: equal outputs happen
JSON_SCALARS = st.sampled_from([0, 1, 1.0, True, None, "s"])  # 1, 1.0, true: distinct in JSON
SMALL_MAPS: st.SearchStrategy[dict[str, Any]] = st.just({}) | st.dictionaries(
    st.sampled_from(["x", "y"]), JSON_SCALARS, max_size=2)
STRATEGIES = st.sampled_from(["fail", "ours", "theirs", "mix", "drop"])
TAG_NAMES = st.sampled_from(["best", "v1"])


def _canon(kind: str, value: Any) -> Any:
    """Store value -> model value: JSON values as canonical bytes, markers and hashes as is."""
    if value is MISSING or value is AMBIGUOUS or kind == "stage":
        return value
    return canonical_bytes(value)


def _decode(kind: str, value: Any) -> Any:
    if value is MISSING or value is AMBIGUOUS or kind == "stage":
        return value
    return load_canonical(value)


def _mix(kind: str, key: str, base: Any, ours: Any, theirs: Any) -> Any:
    """A resolver: a new output holding both sides for stages, else theirs (or ours)."""
    if kind == "stage":
        return {"mix": [None if ours is MISSING else ours, None if theirs is MISSING else theirs]}
    return theirs if theirs is not MISSING else ours


def _drop(*_: Any) -> Any:
    return MISSING


class Crash(Exception):
    """The process dies here (raised from a patched put / commit)."""


RESOLVERS: dict[str, Any] = {"fail": "fail", "ours": "ours", "theirs": "theirs", "mix": _mix,
                             "drop": _drop}


class SyncMachine(RuleBasedStateMachine):
    """Two or three stores, the model, and the rules. Subclassed per backend combination."""

    factory: Callable[[str], Store]
    close_store: Callable[[Store], None] = staticmethod(lambda s: s.close())
    kinds: tuple[str, ...] = ("memory", "memory")

    def __init__(self) -> None:
        super().__init__()
        self.stores = [self.factory(k) for k in self.kinds]
        self.model = Model(len(self.stores))
        self.records: dict[str, localckpt.Checkpoint] = {}  # first copy seen of each id
        self.frames: dict[str, list[np.ndarray]] = {}
        self.tmp = tempfile.mkdtemp(prefix="lc-bundles-")
        self.n_bundles = 0

    def teardown(self) -> None:
        for s in self.stores:
            self.close_store(s)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------

    def _with_timelines(self) -> list[int]:
        return [i for i in range(len(self.stores)) if self.model.live_timelines(i)]

    def _store_index(self, data: st.DataObject, with_timeline: bool = True) -> int:
        choices = self._with_timelines() if with_timeline else list(range(len(self.stores)))
        return data.draw(st.sampled_from(choices), label="store")

    def _timeline(self, data: st.DataObject, i: int) -> str:
        return data.draw(st.sampled_from(sorted(self.model.live_timelines(i))), label="timeline")

    def _record(self, store: int, cid: str) -> localckpt.Checkpoint:
        c = self.stores[store].get_checkpoint(cid)
        self.records.setdefault(cid, c)
        return c

    def _node_of(self, c: localckpt.Checkpoint) -> Node:
        return Node(c.id, c.timeline_id, c.parent_id, c.merged_from, dict(c.stage_hashes),
                    {k: canonical_bytes(v) for k, v in c.config_overrides.items()},
                    {k: canonical_bytes(v) for k, v in c.stats.items()},
                    created=c.created_at, label=c.scenario_label)

    def _new_timeline(self, store: int, n_frames: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        images = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(n_frames)]
        s = self.stores[store]
        # one encoder thread: the shard layout (and so every later draw) is reproducible
        tl = s.create_timeline("v.mp4", "p", images, fps=1.0, codec="png", workers=1)
        self.frames[tl.id] = images
        keys = frame_keys(s.objects, tl.id)
        self.model.timelines[tl.id] = (tl.root_checkpoint_id, keys)
        self.model.has_tl[store].add(tl.id)
        self.model.objs[store] |= set(keys)
        root = self._record(store, tl.root_checkpoint_id)
        self.model.add(store, self._node_of(root))

    def _new_marks(self, i: int) -> set[Mark]:
        """Tombstones store i holds that the model does not know yet (ids come from the
        store; what they target is checked by the caller)."""
        got = {Mark(x.id, x.target_id, x.kind, x.timeline_id)
               for x in self.stores[i].catalog.tombstones(None)}
        assert self.model.marks[i] <= got  # tombstones are never removed
        return got - self.model.marks[i]

    # -- rules: writing -------------------------------------------------------------------

    @initialize(n_frames=st.integers(1, 3), seed=st.integers(0, 9))
    def first_timeline(self, n_frames: int, seed: int) -> None:
        self._new_timeline(0, n_frames, seed)

    def _live_anywhere(self) -> set[str]:
        return set().union(*(self.model.live_timelines(i) for i in range(len(self.stores))))

    @precondition(lambda self: len(self._live_anywhere()) < 3 and len(self.model.timelines) < 6)
    @rule(data=st.data(), n_frames=st.integers(1, 2), seed=st.integers(0, 9))
    def new_timeline(self, data: st.DataObject, n_frames: int, seed: int) -> None:
        self._new_timeline(self._store_index(data, with_timeline=False), n_frames, seed)

    @precondition(lambda self: self._with_timelines())
    @rule(data=st.data(), stage=STAGES, output=OUTPUTS, config=SMALL_MAPS, stats=SMALL_MAPS)
    def save(self, data: st.DataObject, stage: str, output: dict, config: dict, stats: dict
             ) -> None:
        """The next stage of a pipeline: a child of a leaf (or of the root, via None)."""
        i = self._store_index(data)
        tid = self._timeline(data, i)
        parent = data.draw(st.none() | st.sampled_from(self._leaves(i, tid)), label="parent")
        self._save(i, tid, parent, stage, output, config, stats, False)

    @precondition(lambda self: self._with_timelines())
    @rule(data=st.data(), stage=STAGES, output=OUTPUTS, config=SMALL_MAPS, stats=SMALL_MAPS)
    def fork(self, data: st.DataObject, stage: str, output: dict, config: dict, stats: dict
             ) -> None:
        """A config try (scenario): a sibling branch off any checkpoint."""
        i = self._store_index(data)
        tid = self._timeline(data, i)
        parent = data.draw(st.sampled_from(sorted(self.model.tree(i, tid))), label="parent")
        self._save(i, tid, parent, stage, output, config, stats, True)

    def _leaves(self, i: int, tid: str) -> list[str]:
        """Checkpoints nothing derives from (by parent or merged_from): the branch tips."""
        ids = sorted(self.model.tree(i, tid))
        nodes = [self.model.nodes[c] for c in ids]
        used = {x for n in nodes for x in (n.parent, n.merged_from)}
        return [c for c in ids if c not in used]

    def _save(self, i: int, tid: str, parent: str | None, stage: str, output: dict,
              config: dict, stats: dict, scenario: bool) -> None:
        cid = self.stores[i].save_stage_output(
            tid, parent, stage, output, config, stats, is_scenario=scenario,
            scenario_label="try" if scenario else "",
        )
        pnode = self.model.nodes[parent or self.model.timelines[tid][0]]
        h = content_hash(canonical_bytes(output))
        self.model.values[h] = output
        expected = Node(cid, tid, pnode.id, None, {**pnode.stages, stage: h},
                        {**pnode.config, **{k: canonical_bytes(v) for k, v in config.items()}},
                        {**pnode.stats, **{k: canonical_bytes(v) for k, v in stats.items()}})
        saved = self._record(i, cid)
        assert self._node_of(saved) == expected
        assert (saved.is_scenario, saved.stage) == (scenario, stage)
        self.model.add(i, self._node_of(saved))

    # -- rules: merging -------------------------------------------------------------------

    def _trees(self, related: bool) -> list[tuple[int, str]]:
        """(store, timeline) pairs worth merging in: two or more checkpoints for related
        pairs, two or more leaves (diverged branches) otherwise."""
        return [(i, tid) for i in range(len(self.stores))
                for tid in sorted(self.model.live_timelines(i))
                if (len(self.model.tree(i, tid)) if related else len(self._leaves(i, tid))) > 1]

    def _pair(self, data: st.DataObject, related: bool = False) -> tuple[int, str, str]:
        """A store and two checkpoints of one timeline there: on diverged branches (a real
        merge), or with related=True one an ancestor of the other (no-op, fast-forward)."""
        i, tid = data.draw(st.sampled_from(self._trees(related)), label="tree")
        live = self.model.tree(i, tid)
        ids = sorted(live)
        ours = data.draw(st.sampled_from(ids if related else self._leaves(i, tid)), label="ours")
        mine = self.model.ancestors(ours, live)
        kin = [c for c in ids if c in mine or ours in self.model.ancestors(c, live)]
        pick = kin if related else [c for c in ids if c not in kin]
        return i, ours, data.draw(st.sampled_from(pick), label="theirs")

    @precondition(lambda self: self._trees(related=True))
    @rule(data=st.data(), strategy=STRATEGIES)
    def merge_with_relative(self, data: st.DataObject, strategy: str) -> None:
        """theirs an ancestor of ours: returns ours; a descendant: fast-forward. No write."""
        self._merge(*self._pair(data, related=True), strategy)

    @precondition(lambda self: self._trees(related=False))
    @rule(data=st.data(), strategy=STRATEGIES)
    def merge(self, data: st.DataObject, strategy: str) -> None:
        self._merge(*self._pair(data), strategy)

    def _merge(self, i: int, ours: str, theirs: str, strategy: str) -> None:
        store = self.stores[i]
        tid = self.model.nodes[ours].timeline
        plan = self.model.plan(ours, theirs, self.model.tree(i, tid))
        event(f"merge: {plan.kind}, {'conflict' if plan.conflicts else 'clean'}, {strategy}")
        before = len(store.catalog.tree(tid))
        if plan.kind != "merge":
            assert store.merge(ours, theirs, RESOLVERS[strategy]) == (
                ours if plan.kind == "noop" else theirs)
            assert len(store.catalog.tree(tid)) == before
            return
        if plan.conflicts and strategy == "fail":
            with pytest.raises(MergeConflict) as info:
                store.merge(ours, theirs)
            got = {(k, key): (_canon(k, o), _canon(k, t)) for k, key, o, t in
                   info.value.conflicts}
            assert got == {ck: (o, t) for ck, (_, o, t) in plan.conflicts.items()}
            assert len(info.value.conflicts) == len(got)  # each listed once
            assert len(store.catalog.tree(tid)) == before
            return
        mid = store.merge(ours, theirs, RESOLVERS[strategy])
        merged = {kind: dict(values) for kind, values in plan.clean.items()}
        for (kind, key), (base, o, t) in plan.conflicts.items():
            value = self._resolve(strategy, kind, key, base, o, t)
            if value is not MISSING:
                merged[kind][key] = value
        expected = Node(mid, tid, ours, theirs, merged["stage"], merged["config"],
                        merged["stats"])
        record = self._record(i, mid)
        assert self._node_of(record) == expected
        assert record.stage == ""
        self.model.add(i, self._node_of(record))

    def _resolve(self, strategy: str, kind: str, key: str, base: Any, o: Any, t: Any) -> Any:
        if strategy in ("ours", "theirs"):
            return o if strategy == "ours" else t
        fn = RESOLVERS[strategy]
        if kind == "stage":  # the resolver sees outputs, not hashes
            value = fn(kind, key, *(self.model.values[v] if isinstance(v, str) else v
                                    for v in (base, o, t)))
            if value is MISSING:
                return MISSING
            h = content_hash(canonical_bytes(value))
            self.model.values[h] = value
            return h
        return _canon(kind, fn(kind, key, *(_decode(kind, v) for v in (base, o, t))))

    @precondition(lambda self: self._trees(related=False))
    @rule(data=st.data())
    def merge_is_symmetric(self, data: st.DataObject) -> None:
        """merge(a, b, "ours") and merge(b, a, "theirs") reach the same state; under "fail"
        they report the same conflicts with the sides swapped."""
        i, a, b = self._pair(data)
        store = self.stores[i]
        tid = self.model.nodes[a].timeline
        if self.model.plan(a, b, self.model.tree(i, tid)).kind != "merge":
            return
        try:
            store.merge(a, b)
            ab_conflicts = None
        except MergeConflict as exc:
            ab_conflicts = {(k, key, _canon(k, o), _canon(k, t))
                            for k, key, o, t in exc.conflicts}
        if ab_conflicts is not None:
            with pytest.raises(MergeConflict) as info:
                store.merge(b, a)
            assert {(k, key, _canon(k, t), _canon(k, o)) for k, key, o, t in
                    info.value.conflicts} == ab_conflicts
        else:  # the clean merge above wrote a checkpoint: record it
            self._adopt_new(i, a, b)
        x = store.merge(a, b, "ours")
        self._adopt(i, x)
        y = store.merge(b, a, "theirs")
        self._adopt(i, y)
        cx, cy = self.model.nodes[x], self.model.nodes[y]
        assert (cx.stages, cx.config, cx.stats) == (cy.stages, cy.config, cy.stats)

    def _adopt(self, i: int, cid: str) -> None:
        self.model.add(i, self._node_of(self._record(i, cid)))

    def _adopt_new(self, i: int, ours: str, theirs: str) -> None:
        tid = self.model.nodes[ours].timeline
        for c in self.stores[i].catalog.tree(tid):
            if c.id not in self.model.nodes:
                assert (c.parent_id, c.merged_from) == (ours, theirs)
                self._adopt(i, c.id)

    # -- rules: moving work ----------------------------------------------------------------

    def _other(self, data: st.DataObject, i: int) -> int:
        return data.draw(st.sampled_from([k for k in range(len(self.stores)) if k != i]),
                         label="dst")

    def _source_timeline(self, data: st.DataObject, i: int) -> str:
        known = self.model.has_tl[i] | {m.timeline for m in self.model.marks[i]}
        return data.draw(st.sampled_from(sorted(known)), label="timeline")

    @rule(data=st.data(), whole=st.booleans())
    def sync(self, data: st.DataObject, whole: bool) -> None:
        i = data.draw(st.integers(0, len(self.stores) - 1), label="src")
        j = self._other(data, i)
        known = self.model.has_tl[i] | {m.timeline for m in self.model.marks[i]}
        tid = None if whole or not known else self._source_timeline(data, i)
        expected = self._expected(i, j, tid)
        report = localckpt.sync(self.stores[i], self.stores[j], tid)
        event(f"sync copied {'something' if report else 'nothing'}")
        self._check_report(report, expected)
        self.model.apply(j, expected)
        again = localckpt.sync(self.stores[i], self.stores[j], tid)
        assert not again, again
        assert again.round_trips == self.model.round_trips(i, tid)

    def _expected(self, i: int, j: int, tid: str | None) -> Delta:
        return self.model.transfer(i, j, tid, self.stores[j].catalog.missing_outputs)

    def _check_report(self, report: localckpt.SyncReport, expected: Delta) -> None:
        counts = expected.counts()
        assert {k: getattr(report, k) for k in counts} == counts
        if report.objects:
            assert report.bytes > 0

    @precondition(lambda self: self._with_timelines())
    @rule(data=st.data())
    def export_import(self, data: st.DataObject) -> None:
        """A bundle from store i imported into store j (possibly i itself) = a sync."""
        i = self._store_index(data)
        j = data.draw(st.integers(0, len(self.stores) - 1), label="dst")
        tid = self._timeline(data, i)
        self.n_bundles += 1
        path = os.path.join(self.tmp, f"b{self.n_bundles}.zip")
        exported = export_bundle(self.stores[i], tid, path)
        assert exported.checkpoints == len(self.model.tree(i, tid))
        expected = self._expected(i, j, tid)
        report = import_bundle(self.stores[j], path)
        self._check_report(report, expected)
        self.model.apply(j, expected)
        assert not import_bundle(self.stores[j], path)

    @rule(data=st.data(), at_rows=st.booleans(), after=st.integers(0, 3))
    def interrupted_sync(self, data: st.DataObject, at_rows: bool, after: int) -> None:
        """A sync that dies while copying objects (once `after` of them landed) or just
        before its rows commit leaves dst as it was, apart from objects / outputs nothing
        refers to; the next sync (any rule) copies only what is still missing."""
        i = data.draw(st.integers(0, len(self.stores) - 1), label="src")
        j = self._other(data, i)
        dst = self.stores[j]
        expected = self._expected(i, j, None)
        # The copy order sync promises: timelines by id, each one's shards, then its index.
        order = [k for t in sorted(expected.timelines) for k in self.model.timelines[t][1]
                 if k not in self.model.objs[j]]
        doomed = set() if at_rows else set(order[after:])  # every later put fails too, so
        # what lands does not depend on how the copying threads are scheduled

        def put(key: str, value: bytes, _real: Any = dst.objects.put) -> None:
            if key in doomed:
                raise Crash(key)
            _real(key, value)

        def commit(batch: Any, _real: Any = dst.catalog.commit) -> None:
            if at_rows and (batch.checkpoints or batch.tombstones or batch.tags):
                raise Crash("rows")
            _real(batch)

        dst.objects.put = put  # type: ignore[method-assign, assignment]
        dst.catalog.commit = commit  # type: ignore[method-assign]
        try:
            localckpt.sync(self.stores[i], dst)
            crashed = False
        except Crash:
            crashed = True
        finally:
            del dst.objects.put, dst.catalog.commit
        event(f"interrupted sync: {'crashed' if crashed else 'finished'}")
        if not crashed:  # nothing reached the crash point: a plain, complete sync
            self.model.apply(j, expected)
            return
        landed = set(dst.objects.list("frames")) - self.model.objs[j]
        assert landed == set(order) - doomed  # objects in order, an index after its shards
        self.model.objs[j] |= landed
        outs = set(expected.outputs)
        self.model.outs[j] |= outs - dst.catalog.missing_outputs(outs)

    # -- rules: deleting --------------------------------------------------------------------

    def _deletable(self) -> list[int]:
        """Stores with two live timelines or more: deleting one leaves work to do."""
        return [i for i in range(len(self.stores)) if len(self.model.live_timelines(i)) > 1]

    @precondition(lambda self: self._deletable())
    @rule(data=st.data())
    def delete_timeline(self, data: st.DataObject) -> None:
        i = data.draw(st.sampled_from(self._deletable()), label="store")
        tid = self._timeline(data, i)
        report = self.stores[i].delete_timeline(tid)
        assert report.timelines == (tid,)
        assert set(report.checkpoints) == self.model.tree(i, tid)
        new = self._new_marks(i)
        assert {(m.kind, m.target, m.timeline) for m in new} == {("timeline", tid, tid)}
        self.model.marks[i] |= new

    def _prunable(self) -> list[tuple[int, str]]:
        return [(i, c) for i in range(len(self.stores)) for c in sorted(self.model.live(i))
                if self.model.nodes[c].parent is not None]

    @precondition(lambda self: self._prunable())
    @rule(data=st.data(), force=st.booleans(), dry_run=st.booleans())
    def prune(self, data: st.DataObject, force: bool, dry_run: bool) -> None:
        i, cid = data.draw(st.sampled_from(self._prunable()), label="checkpoint")
        gone, named = self.model.prune_plan(i, cid)
        store = self.stores[i]
        if named and not force:
            with pytest.raises(InvalidInputError, match="merged_from"):
                store.prune(cid, dry_run=dry_run)
            assert not self._new_marks(i)  # refused: nothing written
            return
        report = store.prune(cid, dry_run=dry_run, force=force)
        event(f"prune of {len(gone)} checkpoint(s){' (forced)' if named else ''}")
        assert set(report.checkpoints) == gone
        new = self._new_marks(i)
        if dry_run:
            assert not new and report.tombstones == 0
            return
        tid = self.model.nodes[cid].timeline
        assert {(m.kind, m.target, m.timeline) for m in new} == {
            ("checkpoint", x, tid) for x in {cid} | named}
        self.model.marks[i] |= new

    @precondition(lambda self: self._with_timelines())
    @rule(data=st.data(), keep_last=st.none() | st.integers(0, 3),
          labels=st.sampled_from([(), ("try",)]), keep_tagged=st.booleans())
    def retain(self, data: st.DataObject, keep_last: int | None, labels: tuple[str, ...],
               keep_tagged: bool) -> None:
        i = self._store_index(data)
        tid = self._timeline(data, i)
        store = self.stores[i]
        if keep_last is None and not labels:
            with pytest.raises(InvalidInputError, match="rule"):
                store.retain(tid, keep_tagged=keep_tagged)
            return
        roots, gone = self.model.retain_plan(i, tid, keep_last, set(labels), keep_tagged)
        report = store.retain(tid, keep_last=keep_last, keep_labels=labels,
                              keep_tagged=keep_tagged)
        event(f"retain deleted {'some' if gone else 'nothing'}")
        assert set(report.checkpoints) == gone
        new = self._new_marks(i)
        assert {(m.kind, m.target, m.timeline) for m in new} == {
            ("checkpoint", r, tid) for r in roots}
        self.model.marks[i] |= new

    @precondition(lambda self: self._with_timelines())
    @rule(data=st.data(), name=TAG_NAMES)
    def tag(self, data: st.DataObject, name: str) -> None:
        i = self._store_index(data)
        cid = data.draw(st.sampled_from(sorted(self.model.live(i))), label="checkpoint")
        current = self.model.resolved_tags(i).get(name)
        store = self.stores[i]
        if current is not None and current.checkpoint != cid:
            with pytest.raises(ConflictError):
                store.tag(cid, name)
            return
        g = store.tag(cid, name)
        record = TagRecord(g.id, g.name, g.checkpoint_id, g.timeline_id)
        assert (g.name, g.checkpoint_id, g.timeline_id) == (
            name, cid, self.model.nodes[cid].timeline)
        if current is not None:
            assert record == current  # tagging again: the same tag
        self.model.tags[i].add(record)

    @rule(data=st.data(), name=TAG_NAMES)
    def untag(self, data: st.DataObject, name: str) -> None:
        i = data.draw(st.integers(0, len(self.stores) - 1), label="store")
        live = {g for g in self.model.live_tag_records(i) if g.name == name}
        store = self.stores[i]
        if not live:
            with pytest.raises(NotFoundError):
                store.untag(name)
            return
        got, want = store.untag(name), self.model.resolved_tags(i)[name]
        assert (got.id, got.name, got.checkpoint_id) == (want.id, want.name, want.checkpoint)
        new = self._new_marks(i)
        assert {(m.kind, m.target, m.timeline) for m in new} == {
            ("tag", g.id, g.timeline) for g in live}
        self.model.marks[i] |= new

    @rule(data=st.data())
    def gc(self, data: st.DataObject) -> None:
        """gc frees the frames of deleted timelines and of interrupted syncs, and purges
        deleted records; nothing live changes (the invariants check that)."""
        i = data.draw(st.integers(0, len(self.stores) - 1), label="store")
        store = self.stores[i]
        report = collect_garbage(store, older_than=0, grace=0)
        live_tl = self.model.live_timelines(i)
        keys = {k for t in live_tl for k in self.model.timelines[t][1]}
        objects = set(store.objects.list("frames"))
        assert objects == keys  # exactly the live timelines' objects stay
        assert report.objects_removed == len(self.model.objs[i] - keys)
        # what the catalog purged is the backend's choice; it may only be deleted records
        self._held(i)
        live = self.model.live(i)
        self.model.objs[i] = objects
        outs = self.model.outs[i]
        self.model.outs[i] = outs - store.catalog.missing_outputs(outs)
        needed = {h for c in live for h in self.model.nodes[c].stages.values()}
        assert needed <= self.model.outs[i]

    @precondition(lambda self: any(self.model.live(i) for i in range(len(self.stores))))
    @rule(data=st.data())
    def diff(self, data: st.DataObject) -> None:
        i = data.draw(st.sampled_from([k for k in range(len(self.stores))
                                       if self.model.live(k)]), label="store")
        ids = sorted(self.model.live(i))
        a, b = (data.draw(st.sampled_from(ids), label=x) for x in ("a", "b"))
        d = self.stores[i].diff(a, b)
        na, nb = self.model.nodes[a], self.model.nodes[b]
        differs = False
        for kind, got in (("stage", d.stage_hashes), ("config", d.config_changed),
                          ("stats", d.stats_changed)):
            pa, pb = na.part(kind), nb.part(kind)
            want = {k: (pa.get(k, MISSING), pb.get(k, MISSING)) for k in set(pa) | set(pb)
                    if pa.get(k, MISSING) != pb.get(k, MISSING)}
            assert {k: (_canon(kind, x), _canon(kind, y)) for k, (x, y) in got.items()} == want
            differs = differs or bool(want)
        assert set(d.stages_added) == set(nb.stages) - set(na.stages)
        assert set(d.stages_removed) == set(na.stages) - set(nb.stages)
        assert bool(d) == differs

    # -- invariants ---------------------------------------------------------------------

    def _held(self, i: int) -> None:
        """What store i physically holds: at least what is live, at most what the model
        says it received (a backend may purge deleted records whenever it likes); the
        model follows what it holds."""
        store, m = self.stores[i], self.model
        live = m.live(i)
        records = {t.id for t in store.catalog.timelines(None)}
        assert m.live_timelines(i) <= records <= m.has_tl[i]
        held = {c.id for t in m.timelines for c in store.catalog.tree(t)}
        assert live <= held <= m.has[i]  # none lost or invented
        tags = {TagRecord(g.id, g.name, g.checkpoint_id, g.timeline_id)
                for g in store.catalog.tags(None)}
        assert m.live_tag_records(i, live) <= tags <= m.tags[i]
        m.has_tl[i], m.has[i], m.tags[i] = records, held, tags

    @invariant()
    def stores_match_the_model(self) -> None:
        for i, store in enumerate(self.stores):
            m = self.model
            assert {t.id for t in store.list_timelines()} == m.live_timelines(i)
            marks = {Mark(x.id, x.target_id, x.kind, x.timeline_id)
                     for x in store.catalog.tombstones(None)}
            assert marks == m.marks[i]  # tombstones are never removed
            self._held(i)
            assert {n: g.checkpoint_id for n, g in _names(store.tags()).items()} == {
                n: g.checkpoint for n, g in m.resolved_tags(i).items()}
            for tid in {m.nodes[c].timeline for c in m.has[i]} | m.has_tl[i]:
                raw = store.catalog.tree(tid)
                assert {c.id for c in raw} == m.raw_tree(i, tid)  # none lost or invented
                for c in raw:
                    # identical in every store: parent link, hashes, config, stats, time
                    assert c == self.records.setdefault(c.id, c)
                    assert self._node_of(c) == m.nodes[c.id]
            for cid in sorted(m.has[i] - m.live(i)):  # deleted: gone for every read
                with pytest.raises(NotFoundError):
                    store.get_checkpoint(cid)
                assert store.live_checkpoints([cid]) == []
            for tid in m.live_timelines(i):
                live = store.checkpoints(tid)
                assert {c.id for c in live} == m.tree(i, tid)  # what readers see
                hashes = {h for c in live for h in c.stage_hashes.values()}
                # every carried-forward output is there, verified against its hash
                assert store.catalog.load_values(hashes) == {h: m.values[h] for h in hashes}
            # frame objects: exactly those of the model (nothing stray travelled)
            assert set(store.objects.list("frames")) == m.objs[i]

    def check_frames(self) -> None:
        for i, store in enumerate(self.stores):
            for tid in self.model.live_timelines(i):
                got = [f.image for f in store.get_timeline_frames(tid)]
                assert len(got) == len(self.frames[tid])
                assert all(np.array_equal(a, b) for a, b in zip(got, self.frames[tid],
                                                                strict=True))

    @precondition(lambda self: self._with_timelines())
    @rule()
    def frames_are_identical_everywhere(self) -> None:
        self.check_frames()


def _names(tags: list[Any]) -> dict[str, Any]:
    return {g.name: g for g in tags}

