"""Model-based test: random sequences of store operations agree with TreeModel, per kind.

Rules create timelines, save stage outputs under random parents (a Bundle of every id
seen), save at the root and as scenarios, try a parent of another timeline (rejected,
nothing written), load outputs and, on kinds that persist, reopen the store mid-run.
After every step the trees, every checkpoint's fields, config/stats merges and the
carry-forward of hashes must match the model; lineage and children are checked for the
new checkpoint at each save and for all of them by an occasional rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import StoreFactory
from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from localckpt import InvalidInputError, Store
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.testing import TreeModel
from localckpt.testing import strategies as lst
from localckpt.testing.conformance import noise

STAGES = st.sampled_from(["detect", "track", "ocr", "scène"])
SMALL = st.dictionaries(st.sampled_from(["a", "b", "c", "frames_extracted"]),
                        lst.json_scalars(), max_size=2)
OUTPUTS = lst.json_objects(max_leaves=4)


class CheckpointMachine(RuleBasedStateMachine):
    """Drives one store and one TreeModel with the same operations."""

    factory: StoreFactory
    kind: str

    timelines = Bundle("timelines")
    checkpoints = Bundle("checkpoints")

    def __init__(self) -> None:
        super().__init__()
        self.store: Store = self.factory(self.kind)
        self.model = TreeModel()
        self.saves_since_reopen = 0
        self.saves_since_check = 0

    def teardown(self) -> None:
        self.factory.close(self.store)

    # -- rules ------------------------------------------------------------------------------

    @rule(target=timelines, n=st.integers(1, 3))
    def create_timeline(self, n: int) -> str:
        tl = self.store.create_timeline("v.mp4", "p", noise(n, h=2, w=3, seed=n), codec="png")
        self.model.create_timeline(tl.id, tl.root_checkpoint_id, n)
        return tl.id

    @rule(target=checkpoints, tid=timelines)
    def root_of(self, tid: str) -> str:
        return self.model.timelines[tid].root_id

    def _save(self, tid: str, parent: str | None, stage: str, output: dict[str, Any],
              config: dict[str, Any], stats: dict[str, Any], scenario: bool = False,
              label: str = "") -> str:
        cid = self.store.save_stage_output(tid, parent, stage, output, config_overrides=config,
                                           stats=stats, is_scenario=scenario,
                                           scenario_label=label)
        self.model.save(cid, tid, parent, stage, output, config, stats, scenario, label)
        self._check_links(cid)
        self.saves_since_reopen += 1
        self.saves_since_check += 1
        return cid

    @rule(target=checkpoints, parent=checkpoints, stage=STAGES, output=OUTPUTS,
          config=SMALL, stats=SMALL)
    def save(self, parent: str, stage: str, output: dict[str, Any], config: dict[str, Any],
             stats: dict[str, Any]) -> str:
        return self._save(self.model.nodes[parent].timeline_id, parent, stage, output,
                          config, stats)

    @rule(target=checkpoints, tid=timelines, stage=STAGES, output=OUTPUTS, config=SMALL)
    def save_at_root(self, tid: str, stage: str, output: dict[str, Any],
                     config: dict[str, Any]) -> str:
        return self._save(tid, None, stage, output, config, {})

    @rule(target=checkpoints, parent=checkpoints, stage=STAGES, output=OUTPUTS, config=SMALL,
          label=lst.json_text)
    def save_scenario(self, parent: str, stage: str, output: dict[str, Any],
                      config: dict[str, Any], label: str) -> str:
        return self._save(self.model.nodes[parent].timeline_id, parent, stage, output,
                          config, {}, scenario=True, label=label)

    @rule(parent=checkpoints, tid=timelines)
    def save_under_another_timeline(self, parent: str, tid: str) -> None:
        assume(self.model.nodes[parent].timeline_id != tid)
        before = {t: self.store.checkpoints(t) for t in self.model.timeline_ids()}
        with pytest.raises(InvalidInputError):
            self.store.save_stage_output(tid, parent, "detect", {"wrong": "tree"})
        assert {t: self.store.checkpoints(t) for t in self.model.timeline_ids()} == before

    @rule(cid=checkpoints, stage=STAGES)
    def load(self, cid: str, stage: str) -> None:
        expected = self.model.load(cid, stage)
        got = self.store.load_stage_output(cid, stage)
        if expected is None:
            assert got is None
        else:
            assert canonical_bytes(got) == canonical_bytes(expected)
        outputs = self.store.get_checkpoint(cid).stage_outputs
        assert set(outputs) == set(self.model.nodes[cid].outputs)
        for name, data in self.model.nodes[cid].outputs.items():
            assert canonical_bytes(outputs[name]) == data

    # Argument-free rules are cheap for hypothesis to pick, so these two would crowd out
    # the others: each waits for a few saves since it last ran.
    @precondition(lambda self: self.saves_since_reopen >= 3
                  and self.factory.can_reopen(self.kind))
    @rule()
    def reopen(self) -> None:
        self.store = self.factory.reopen(self.store)
        self.saves_since_reopen = 0

    @precondition(lambda self: self.saves_since_check >= 8)
    @rule()
    def check_every_lineage(self) -> None:
        for cid in self.model.nodes:
            self._check_links(cid)
        self.saves_since_check = 0

    # -- invariants -------------------------------------------------------------------------

    def _check_links(self, cid: str) -> None:
        assert [c.id for c in self.store.lineage(cid)] == self.model.lineage(cid)
        assert [c.id for c in self.store.children(cid)] == self.model.children(cid)

    @invariant()
    def agrees_with_model(self) -> None:
        assert [t.id for t in self.store.list_timelines()] == self.model.timeline_ids()
        for tid in self.model.timeline_ids():
            tree = self.store.checkpoints(tid)
            assert [c.id for c in tree] == self.model.tree(tid)
            by_id = {c.id: c for c in tree}
            for c in tree:
                m = self.model.nodes[c.id]
                assert (c.timeline_id, c.parent_id, c.stage) == (tid, m.parent_id, m.stage)
                assert (c.is_scenario, c.scenario_label) == (m.is_scenario, m.scenario_label)
                assert canonical_bytes(dict(c.config_overrides)) == m.config
                assert canonical_bytes(dict(c.stats)) == m.stats
                assert set(c.stage_hashes) == set(m.outputs)
                for stage, data in m.outputs.items():
                    assert c.stage_hashes[stage] == content_hash(data)
                    # carry-forward shares the hash of the checkpoint that wrote the output
                    assert c.stage_hashes[stage] == by_id[m.origins[stage]].stage_hashes[stage]


@pytest.mark.slow
def test_store_agrees_with_model(store_kind: str, new_store: StoreFactory) -> None:
    machine = type(f"CheckpointMachine_{store_kind.replace('-', '_')}", (CheckpointMachine,),
                   {"factory": new_store, "kind": store_kind})
    # Half the profile's examples: each is a whole run of steps on a fresh store.
    examples = max(5, settings.default.max_examples // 2)
    run_state_machine_as_test(machine, settings=settings(max_examples=examples))
