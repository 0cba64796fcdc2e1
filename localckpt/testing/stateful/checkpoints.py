"""CheckpointMachine: random sequences of operations on one store, checked against a model.

Rules create timelines, save stage outputs under random parents (a Bundle of every id
seen), save at the root and as scenarios, try a parent of another timeline (rejected,
nothing written), load outputs and, where the store can be reopened, reopen it mid-run.
After every step the trees, every checkpoint's fields, config / stats merges and the
carry-forward of hashes must match :class:`localckpt.testing.TreeModel`; lineage and
children are checked for each new checkpoint and, now and then, for all of them.

Run it as is (a memory store) or subclass it, as zarr's ``ZarrStoreStateMachine`` is::

    from hypothesis import strategies as st
    from hypothesis.stateful import rule
    from localckpt.testing.stateful import CheckpointMachine

    class MyPipelineMachine(CheckpointMachine):
        def make_store(self):
            return localckpt.open(self.tmp_dir(), create=True)   # or any store

        def can_reopen(self):
            return True

        def reopen_store(self, store):
            store.close()
            return localckpt.open(store.url)

        @rule(target=CheckpointMachine.checkpoints, parent=CheckpointMachine.checkpoints,
              threshold=st.floats(0, 1))
        def run_detect(self, parent, threshold):
            output = my_detector(self.store, parent, threshold)   # your stage
            return self.record_save(self.model.nodes[parent].timeline_id, parent,
                                    "detect", output, {"threshold": threshold}, {})

    TestMyPipeline = MyPipelineMachine.TestCase

``record_save`` saves through the store, records the save in the model and checks the
new checkpoint's links, so the invariants keep holding with your rules mixed in.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, precondition, rule

from ...canonical import canonical_bytes, content_hash
from ...errors import InvalidInputError
from .. import strategies as lst
from ..model import TreeModel
from ._base import StoreMachine

__all__ = ["OUTPUTS", "SMALL_MAPS", "STAGES", "CheckpointMachine", "small_frames"]

#: Stage names the rules pick from (one non-ASCII).
STAGES = st.sampled_from(["detect", "track", "ocr", "scène"])
#: Config overrides and stats: few keys, any JSON scalar, so merges of keys happen.
SMALL_MAPS = st.dictionaries(st.sampled_from(["a", "b", "c", "frames_extracted"]),
                             lst.json_scalars(), max_size=2)
#: Stage outputs: small JSON objects of any shape.
OUTPUTS = lst.json_objects(max_leaves=4)


def small_frames(n: int, seed: int = 0) -> list[Any]:
    """n random 2x3 frames (PNG keeps them exact)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (2, 3, 3), dtype=np.uint8) for _ in range(n)]


class CheckpointMachine(StoreMachine):
    """Drives one store and one TreeModel with the same operations.

    Hooks for subclasses (from :class:`StoreMachine`): :meth:`make_store`,
    :meth:`can_reopen`, :meth:`reopen_store`, :meth:`close_store`; helpers for new rules:
    :meth:`record_save`, ``self.store``, ``self.model`` and the Bundles ``timelines`` and
    ``checkpoints``.
    """

    timelines = Bundle("timelines")
    checkpoints = Bundle("checkpoints")

    def __init__(self) -> None:
        super().__init__()
        self.model = TreeModel()
        self.saves_since_reopen = 0
        self.saves_since_check = 0

    # -- helpers for rules --------------------------------------------------------------------

    def record_save(self, tid: str, parent: str | None, stage: str, output: dict[str, Any],
                    config: dict[str, Any], stats: dict[str, Any], scenario: bool = False,
                    label: str = "") -> str:
        """Save through the store, record it in the model, check the new links; the id."""
        cid = self.store.save_stage_output(tid, parent, stage, output, config_overrides=config,
                                           stats=stats, is_scenario=scenario,
                                           scenario_label=label)
        self.model.save(cid, tid, parent, stage, output, config, stats, scenario, label)
        self.check_links(cid)
        self.saves_since_reopen += 1
        self.saves_since_check += 1
        return cid

    def check_links(self, cid: str) -> None:
        """lineage and children of cid agree with the model."""
        assert [c.id for c in self.store.lineage(cid)] == self.model.lineage(cid)
        assert [c.id for c in self.store.children(cid)] == self.model.children(cid)

    # -- rules ------------------------------------------------------------------------------

    @rule(target=timelines, n=st.integers(1, 3))
    def create_timeline(self, n: int) -> str:
        tl = self.store.create_timeline("v.mp4", "p", small_frames(n, seed=n), codec="png")
        self.model.create_timeline(tl.id, tl.root_checkpoint_id, n)
        return tl.id

    @rule(target=checkpoints, tid=timelines)
    def root_of(self, tid: str) -> str:
        return self.model.timelines[tid].root_id

    @rule(target=checkpoints, parent=checkpoints, stage=STAGES, output=OUTPUTS,
          config=SMALL_MAPS, stats=SMALL_MAPS)
    def save(self, parent: str, stage: str, output: dict[str, Any], config: dict[str, Any],
             stats: dict[str, Any]) -> str:
        return self.record_save(self.model.nodes[parent].timeline_id, parent, stage, output,
                                config, stats)

    @rule(target=checkpoints, tid=timelines, stage=STAGES, output=OUTPUTS, config=SMALL_MAPS)
    def save_at_root(self, tid: str, stage: str, output: dict[str, Any],
                     config: dict[str, Any]) -> str:
        return self.record_save(tid, None, stage, output, config, {})

    @rule(target=checkpoints, parent=checkpoints, stage=STAGES, output=OUTPUTS,
          config=SMALL_MAPS, label=lst.json_text)
    def save_scenario(self, parent: str, stage: str, output: dict[str, Any],
                      config: dict[str, Any], label: str) -> str:
        return self.record_save(self.model.nodes[parent].timeline_id, parent, stage, output,
                                config, {}, scenario=True, label=label)

    @rule(parent=checkpoints, tid=timelines)
    def save_under_another_timeline(self, parent: str, tid: str) -> None:
        assume(self.model.nodes[parent].timeline_id != tid)
        before = {t: self.store.checkpoints(t) for t in self.model.timeline_ids()}
        try:
            self.store.save_stage_output(tid, parent, "detect", {"wrong": "tree"})
        except InvalidInputError:
            pass
        else:
            raise AssertionError("a parent from another timeline was accepted")
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
    @precondition(lambda self: self.saves_since_reopen >= 3 and self.can_reopen())
    @rule()
    def reopen(self) -> None:
        self.store = self.reopen_store(self.store)
        self.saves_since_reopen = 0

    @precondition(lambda self: self.saves_since_check >= 8)
    @rule()
    def check_every_lineage(self) -> None:
        for cid in self.model.nodes:
            self.check_links(cid)
        self.saves_since_check = 0

    # -- invariants -------------------------------------------------------------------------

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
