"""Model-based properties of merge, sync and bundles over several stores.

A RuleBasedStateMachine saves, forks, merges, syncs and exports/imports between two or
three stores, and after every step compares each store with a pure model:

- a store holds exactly the checkpoints the model says (none lost, none invented), and
  every record (parent link, merged_from, stage hashes, config, stats, timestamps) is
  identical in every store that holds it; every referenced output and frame is there;
- sync is the union: the model's sets grow by set union, which is commutative,
  associative and idempotent; the report counts exactly what was missing;
- a second sync copies nothing, in 3 + (timelines) catalog round trips;
- exporting a bundle and importing it does exactly what a sync does;
- merge is three-way against the merge base, computed here by brute force: clean when
  the sides changed different things, MergeConflict listing exactly the stages / keys
  both sides changed differently (nothing written), symmetric up to ours / theirs, a
  no-op against an ancestor and a fast-forward onto a descendant.

Separate @given tests state the algebra of sync (commutative, associative, idempotent)
directly. Store kinds come from conftest (every available backend pair).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pytest
from conftest import KINDS, StoreFactory
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import localckpt
from localckpt import Store
from localckpt.bundle import export_bundle, import_bundle
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.errors import MergeConflict
from localckpt.shards import frame_keys
from localckpt.tree import AMBIGUOUS, MISSING

STAGES = st.sampled_from(["detect", "track", "ocr"])
OUTPUTS = st.builds(lambda v: {"v": v}, st.integers(0, 2))  # few values: equal outputs happen
JSON_SCALARS = st.sampled_from([0, 1, 1.0, True, None, "s"])  # 1, 1.0, true: distinct in JSON
SMALL_MAPS = st.just({}) | st.dictionaries(st.sampled_from(["x", "y"]), JSON_SCALARS, max_size=2)
STRATEGIES = st.sampled_from(["fail", "ours", "theirs", "mix", "drop"])


# -- the model -----------------------------------------------------------------------------


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

    def part(self, kind: str) -> dict[str, Any]:
        return {"stage": self.stages, "config": self.config, "stats": self.stats}[kind]


@attrs.frozen
class Plan:
    """What merging theirs into ours must do."""

    kind: str  # "noop" (returns ours), "ff" (returns theirs) or "merge"
    clean: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # kind -> merged keys
    conflicts: dict[tuple[str, str], tuple[Any, Any, Any]] = attrs.field(factory=dict)


class Model:
    """Every checkpoint ever made, and which store holds which. Pure, brute force."""

    def __init__(self, n_stores: int) -> None:
        self.nodes: dict[str, Node] = {}
        self.timelines: dict[str, tuple[str, list[str]]] = {}  # id -> (root, frame keys)
        self.values: dict[str, Any] = {}  # output hash -> value
        self.has: list[set[str]] = [set() for _ in range(n_stores)]  # checkpoint ids
        self.has_tl: list[set[str]] = [set() for _ in range(n_stores)]
        # What each store holds besides rows: output hashes and frame object keys. An
        # interrupted sync may leave some of these without the rows that refer to them.
        self.outs: list[set[str]] = [set() for _ in range(n_stores)]
        self.objs: list[set[str]] = [set() for _ in range(n_stores)]

    def add(self, store: int, node: Node) -> None:
        self.nodes[node.id] = node
        self.has[store].add(node.id)
        self.outs[store] |= set(node.stages.values())

    def tree(self, store: int, tid: str) -> set[str]:
        return {i for i in self.has[store] if self.nodes[i].timeline == tid}

    def ancestors(self, cid: str) -> set[str]:
        """cid and everything reachable by parent and merged_from links."""
        out: set[str] = set()
        todo = [cid]
        while todo:
            node = self.nodes[todo.pop()]
            if node.id not in out:
                out.add(node.id)
                todo.extend(x for x in (node.parent, node.merged_from) if x is not None)
        return out

    def plan(self, ours: str, theirs: str) -> Plan:
        anc_o, anc_t = self.ancestors(ours), self.ancestors(theirs)
        if theirs in anc_o:
            return Plan("noop")
        if ours in anc_t:
            return Plan("ff")
        common = anc_o & anc_t
        bases = [c for c in common if not any(c in self.ancestors(d) - {d} for d in common)]
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

    def missing(self, src: int, dst: int, tid: str | None
                ) -> tuple[set[str], set[str], set[str], set[str]]:
        """(timelines, checkpoints, outputs, objects) that dst lacks of src's."""
        tids = self.has_tl[src] if tid is None else {tid}
        new_tl = tids - self.has_tl[dst]
        new = {i for i in self.has[src] - self.has[dst] if self.nodes[i].timeline in tids}
        needed = {h for i in new for h in self.nodes[i].stages.values()}
        keys = {k for t in new_tl for k in self.timelines[t][1]}
        return new_tl, new, needed - self.outs[dst], keys - self.objs[dst]

    def sync_counts(self, src: int, dst: int, tid: str | None) -> dict[str, int]:
        """What sync(src, dst, tid) must copy: exactly what dst lacks."""
        new_tl, new, outs, objs = self.missing(src, dst, tid)
        return {"timelines": len(new_tl), "checkpoints": len(new), "outputs": len(outs),
                "objects": len(objs)}

    def sync(self, src: int, dst: int, tid: str | None) -> None:
        new_tl, new, outs, objs = self.missing(src, dst, tid)
        self.has_tl[dst] |= new_tl
        self.has[dst] |= new
        self.outs[dst] |= outs
        self.objs[dst] |= objs


def _canon(kind: str, value: Any) -> Any:
    """Store value -> model value: JSON values as canonical bytes, markers and hashes as is."""
    if value is MISSING or value is AMBIGUOUS or kind == "stage":
        return value
    return canonical_bytes(value)


def _decode(kind: str, value: Any) -> Any:
    if value is MISSING or value is AMBIGUOUS or kind == "stage":
        return value
    return localckpt.canonical.load_canonical(value)


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


# -- the state machine ---------------------------------------------------------------------


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
        self.bundles = 0

    def teardown(self) -> None:
        for s in self.stores:
            self.close_store(s)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------

    def _store_index(self, data: st.DataObject, with_timeline: bool = True) -> int:
        choices = [i for i in range(len(self.stores)) if self.model.has_tl[i] or not with_timeline]
        return data.draw(st.sampled_from(choices), label="store")

    def _record(self, store: int, cid: str) -> localckpt.Checkpoint:
        c = self.stores[store].get_checkpoint(cid)
        self.records.setdefault(cid, c)
        return c

    def _node_of(self, c: localckpt.Checkpoint) -> Node:
        return Node(c.id, c.timeline_id, c.parent_id, c.merged_from, dict(c.stage_hashes),
                    {k: canonical_bytes(v) for k, v in c.config_overrides.items()},
                    {k: canonical_bytes(v) for k, v in c.stats.items()})

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

    # -- rules --------------------------------------------------------------------------

    @initialize(n_frames=st.integers(1, 3), seed=st.integers(0, 9))
    def first_timeline(self, n_frames: int, seed: int) -> None:
        self._new_timeline(0, n_frames, seed)

    @precondition(lambda self: len(self.model.timelines) < 3)
    @rule(data=st.data(), n_frames=st.integers(1, 2), seed=st.integers(0, 9))
    def new_timeline(self, data: st.DataObject, n_frames: int, seed: int) -> None:
        self._new_timeline(self._store_index(data, with_timeline=False), n_frames, seed)

    @rule(data=st.data(), stage=STAGES, output=OUTPUTS, config=SMALL_MAPS, stats=SMALL_MAPS)
    def save(self, data: st.DataObject, stage: str, output: dict, config: dict, stats: dict
             ) -> None:
        """The next stage of a pipeline: a child of a leaf (or of the root, via None)."""
        i = self._store_index(data)
        tid = data.draw(st.sampled_from(sorted(self.model.has_tl[i])), label="timeline")
        leaves = self._leaves(i, tid)
        parent = data.draw(st.none() | st.sampled_from(leaves), label="parent")
        self._save(i, tid, parent, stage, output, config, stats, False)

    @rule(data=st.data(), stage=STAGES, output=OUTPUTS, config=SMALL_MAPS, stats=SMALL_MAPS)
    def fork(self, data: st.DataObject, stage: str, output: dict, config: dict, stats: dict
             ) -> None:
        """A config try (scenario): a sibling branch off any checkpoint."""
        i = self._store_index(data)
        tid = data.draw(st.sampled_from(sorted(self.model.has_tl[i])), label="timeline")
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
        self.model.add(i, expected)

    def _trees(self, related: bool) -> list[tuple[int, str]]:
        """(store, timeline) pairs worth merging in: two or more checkpoints for related
        pairs, two or more leaves (diverged branches) otherwise."""
        return [(i, tid) for i in range(len(self.stores)) for tid in sorted(self.model.has_tl[i])
                if (len(self.model.tree(i, tid)) if related else len(self._leaves(i, tid))) > 1]

    def _pair(self, data: st.DataObject, related: bool = False) -> tuple[int, str, str]:
        """A store and two checkpoints of one timeline there: on diverged branches (a real
        merge), or with related=True one an ancestor of the other (no-op, fast-forward)."""
        i, tid = data.draw(st.sampled_from(self._trees(related)), label="tree")
        ids = sorted(self.model.tree(i, tid))
        ours = data.draw(st.sampled_from(ids if related else self._leaves(i, tid)), label="ours")
        mine = self.model.ancestors(ours)
        kin = [c for c in ids if c in mine or ours in self.model.ancestors(c)]
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
        plan = self.model.plan(ours, theirs)
        event(f"merge: {plan.kind}, {'conflict' if plan.conflicts else 'clean'}, {strategy}")
        before = len(store.catalog.tree(self.model.nodes[ours].timeline))
        if plan.kind != "merge":
            assert store.merge(ours, theirs, RESOLVERS[strategy]) == (
                ours if plan.kind == "noop" else theirs)
            assert len(store.catalog.tree(self.model.nodes[ours].timeline)) == before
            return
        if plan.conflicts and strategy == "fail":
            with pytest.raises(MergeConflict) as info:
                store.merge(ours, theirs)
            got = {(k, key): (_canon(k, o), _canon(k, t)) for k, key, o, t in
                   info.value.conflicts}
            assert got == {ck: (o, t) for ck, (_, o, t) in plan.conflicts.items()}
            assert len(info.value.conflicts) == len(got)  # each listed once
            assert len(store.catalog.tree(self.model.nodes[ours].timeline)) == before
            return
        mid = store.merge(ours, theirs, RESOLVERS[strategy])
        merged = {kind: dict(values) for kind, values in plan.clean.items()}
        for (kind, key), (base, o, t) in plan.conflicts.items():
            value = self._resolve(strategy, kind, key, base, o, t)
            if value is not MISSING:
                merged[kind][key] = value
        expected = Node(mid, self.model.nodes[ours].timeline, ours, theirs, merged["stage"],
                        merged["config"], merged["stats"])
        assert self._node_of(self._record(i, mid)) == expected
        assert self._record(i, mid).stage == ""
        self.model.add(i, expected)

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
        if self.model.plan(a, b).kind != "merge":
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
        c = self._record(i, cid)
        self.model.add(i, self._node_of(c))

    def _adopt_new(self, i: int, ours: str, theirs: str) -> None:
        tid = self.model.nodes[ours].timeline
        for c in self.stores[i].catalog.tree(tid):
            if c.id not in self.model.nodes:
                assert (c.parent_id, c.merged_from) == (ours, theirs)
                self._adopt(i, c.id)

    @rule(data=st.data(), whole=st.booleans())
    def sync(self, data: st.DataObject, whole: bool) -> None:
        i = self._store_index(data)
        j = data.draw(st.sampled_from([k for k in range(len(self.stores)) if k != i]),
                      label="dst")
        tid = None if whole else data.draw(st.sampled_from(sorted(self.model.has_tl[i])))
        expected = self.model.sync_counts(i, j, tid)
        report = localckpt.sync(self.stores[i], self.stores[j], tid)
        event(f"sync copied {'something' if report else 'nothing'}")
        self._check_report(report, expected, i, tid)
        self.model.sync(i, j, tid)
        again = localckpt.sync(self.stores[i], self.stores[j], tid)
        assert not again, again
        assert again.round_trips == 3 + (len(self.model.has_tl[i]) if tid is None else 1)

    def _check_report(self, report: localckpt.SyncReport, expected: dict[str, int], src: int,
                      tid: str | None) -> None:
        got = {k: getattr(report, k) for k in expected}
        assert got == expected
        if report.objects:
            assert report.bytes > 0
        if not report:
            assert report.round_trips == 3 + (len(self.model.has_tl[src]) if tid is None else 1)

    @rule(data=st.data())
    def export_import(self, data: st.DataObject) -> None:
        """A bundle from store i imported into store j (possibly i itself) = a sync."""
        i = self._store_index(data)
        j = data.draw(st.integers(0, len(self.stores) - 1), label="dst")
        tid = data.draw(st.sampled_from(sorted(self.model.has_tl[i])), label="timeline")
        self.bundles += 1
        path = os.path.join(self.tmp, f"b{self.bundles}.zip")
        exported = export_bundle(self.stores[i], tid, path)
        assert exported.checkpoints == len(self.model.tree(i, tid))
        expected = self.model.sync_counts(i, j, tid)
        report = import_bundle(self.stores[j], path)
        assert {k: getattr(report, k) for k in expected} == expected
        self.model.sync(i, j, tid)
        assert not import_bundle(self.stores[j], path)

    @rule(data=st.data(), at_rows=st.booleans(), after=st.integers(0, 3))
    def interrupted_sync(self, data: st.DataObject, at_rows: bool, after: int) -> None:
        """A sync that dies while copying objects (once `after` of them landed) or just
        before its rows commit leaves dst as it was, apart from objects / outputs nothing
        refers to; the next sync (any rule) copies only what is still missing."""
        i = self._store_index(data)
        j = data.draw(st.sampled_from([k for k in range(len(self.stores)) if k != i]),
                      label="dst")
        dst = self.stores[j]
        new_tl, _, outs, _ = self.model.missing(i, j, None)
        # The copy order sync promises: timelines by id, each one's shards, then its index.
        order = [k for t in sorted(new_tl) for k in self.model.timelines[t][1]
                 if k not in self.model.objs[j]]
        doomed = set() if at_rows else set(order[after:])  # every later put fails too, so
        # what lands does not depend on how the copying threads are scheduled

        def put(key: str, value: bytes, _real: Any = dst.objects.put) -> None:
            if key in doomed:
                raise Crash(key)
            _real(key, value)

        def commit(batch: Any, _real: Any = dst.catalog.commit) -> None:
            if at_rows and batch.checkpoints:
                raise Crash("rows")
            _real(batch)

        dst.objects.put = put  # type: ignore[method-assign]
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
            self.model.sync(i, j, None)
            return
        landed = set(dst.objects.list("frames")) - self.model.objs[j]
        assert landed == set(order) - doomed  # objects in order, an index after its shards
        self.model.objs[j] |= landed
        self.model.outs[j] |= outs - dst.catalog.missing_outputs(outs)

    @rule(data=st.data())
    def diff(self, data: st.DataObject) -> None:
        i = self._store_index(data)
        ids = sorted(self.model.has[i])
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

    @invariant()
    def stores_match_the_model(self) -> None:
        for i, store in enumerate(self.stores):
            assert {t.id for t in store.list_timelines()} == self.model.has_tl[i]
            for tid in self.model.has_tl[i]:
                tree = store.catalog.tree(tid)
                assert {c.id for c in tree} == self.model.tree(i, tid)  # none lost or invented
                hashes = set()
                for c in tree:
                    # identical in every store: parent link, hashes, config, stats, time
                    assert c == self.records.setdefault(c.id, c)
                    assert self._node_of(c) == self.model.nodes[c.id]
                    hashes |= set(c.stage_hashes.values())
                # every carried-forward output is there, verified against its hash
                assert store.catalog.load_values(hashes) == {h: self.model.values[h]
                                                             for h in hashes}
            assert not store.catalog.missing_outputs(self.model.outs[i])
            # frame objects: exactly those of the model (nothing stray travelled)
            assert set(store.objects.list("frames")) == self.model.objs[i]

    def check_frames(self) -> None:
        for i, store in enumerate(self.stores):
            for tid in self.model.has_tl[i]:
                got = [f.image for f in store.get_timeline_frames(tid)]
                assert len(got) == len(self.frames[tid])
                assert all(np.array_equal(a, b) for a, b in zip(got, self.frames[tid],
                                                                strict=True))

    @precondition(lambda self: any(self.model.has_tl))
    @rule()
    def frames_are_identical_everywhere(self) -> None:
        self.check_frames()


# -- running it over the backends ------------------------------------------------------------


def _combinations() -> list[tuple[str, ...]]:
    """Three memory stores (fast, most examples), then every unordered pair of kinds."""
    pairs = [p for p in itertools.combinations_with_replacement(KINDS, 2)
             if p != ("memory", "memory")]
    return [("memory", "memory", "memory"), *pairs]


def _budget(kinds: tuple[str, ...]) -> settings:
    """Most examples on the fast in-memory triple; fewer per pair of real backends, fewest
    where a server (PostgreSQL, S3) is involved. Scales with the hypothesis profile."""
    base = settings.default
    if kinds == ("memory", "memory", "memory"):
        return settings(base, max_examples=base.max_examples * 4, stateful_step_count=40)
    slow = any(k.endswith("s3") or k.startswith("postgres") for k in kinds)
    return settings(base, max_examples=max(2, base.max_examples // (3 if slow else 1)),
                    stateful_step_count=25)


@pytest.mark.parametrize("kinds", _combinations(), ids="+".join)
def test_sync_and_merge_agree_with_the_model(new_store: StoreFactory, kinds: tuple[str, ...]
                                             ) -> None:
    class Machine(SyncMachine):
        pass

    Machine.factory = staticmethod(new_store)  # type: ignore[assignment]
    Machine.close_store = staticmethod(new_store.close)  # type: ignore[assignment]
    Machine.kinds = kinds
    run_state_machine_as_test(Machine, settings=_budget(kinds))


# -- the algebra of sync, stated directly -------------------------------------------------------


def _dump(store: Store) -> tuple[Any, ...]:
    """Everything a store holds, comparable across stores."""
    tls = sorted((t.id, t.frame_count) for t in store.list_timelines())
    cps = sorted(
        (c.id, c.parent_id, c.merged_from, tuple(sorted(c.stage_hashes.items())),
         canonical_bytes(dict(c.config_overrides)), canonical_bytes(dict(c.stats)), c.created_at)
        for t in store.list_timelines() for c in store.catalog.tree(t.id)
    )
    objs = sorted(store.objects.list("frames"))
    return tls, cps, objs


@st.composite
def diverged_stores(draw: st.DrawFn) -> list[Store]:
    """Three memory stores that share a timeline and then each saved their own work."""
    stores = [localckpt.open("memory://") for _ in range(3)]
    tl = stores[0].create_timeline("v", "p", [np.zeros((2, 2, 3), np.uint8)], codec="png")
    for s in stores[1:]:
        localckpt.sync(stores[0], s)
    for s in stores:
        ids = [tl.root_checkpoint_id]
        for _ in range(draw(st.integers(0, 4))):
            parent = draw(st.sampled_from(ids))
            ids.append(s.save_stage_output(tl.id, parent, draw(STAGES), draw(OUTPUTS),
                                           draw(SMALL_MAPS)))
    if draw(st.booleans()):  # and one store has a timeline of its own
        draw(st.sampled_from(stores)).create_timeline(
            "w", "p", [np.ones((2, 2, 3), np.uint8)], codec="png")
    return stores


def _union(*stores: Store) -> Store:
    out = localckpt.open("memory://")
    for s in stores:
        localckpt.sync(s, out)
    return out


@given(diverged_stores())
def test_sync_is_commutative(stores: list[Store]) -> None:
    a, b, _ = stores
    assert _dump(_union(a, b)) == _dump(_union(b, a))


@given(diverged_stores())
def test_sync_is_associative(stores: list[Store]) -> None:
    a, b, c = stores
    ab = _union(a, b)
    localckpt.sync(c, ab)
    bc = _union(b, c)
    localckpt.sync(bc, a)
    assert _dump(ab) == _dump(a)


@given(diverged_stores())
def test_sync_is_idempotent_and_both_ways_make_equal_stores(stores: list[Store]) -> None:
    a, b, _ = stores
    before = _dump(b)
    first = localckpt.sync(a, b)
    snapshot = _dump(b)
    assert first.checkpoints == len(snapshot[1]) - len(before[1])
    assert first.timelines == len(snapshot[0]) - len(before[0])
    assert not localckpt.sync(a, b)
    assert _dump(b) == snapshot
    localckpt.sync(b, a)
    assert _dump(a) == _dump(b)
