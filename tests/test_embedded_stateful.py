"""Two processes share one embedded store (the SQLite catalog): saves, deletions,
purges and reopens in random interleavings, against a model.

Process A is this one, process B a spawned peer. Each save goes to either; either may
purge or reopen its store. After every step A (and, now and then, B) must see exactly
the model's live checkpoints in every tree, their lineages and their outputs. Deleted
checkpoints (a tombstone on one, so its subtree) stay stored until a purge takes them,
and must never come back once gone; no stored checkpoint is ever without its parent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from embedded_helpers import Peer, frames
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import localckpt
from localckpt.catalog import Batch
from localckpt.errors import NotFoundError
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.testing import TreeModel
from localckpt.types import Tombstone

STAGES = st.sampled_from(["detect", "track", "ocr"])
VALUES = st.fixed_dictionaries({"v": st.integers(0, 3)})  # repeats: outputs get shared
PROCS = st.sampled_from(["A", "B"])


class TwoProcessMachine(RuleBasedStateMachine):
    peer: Peer
    base: Path
    count = 0

    timelines = Bundle("timelines")
    checkpoints = Bundle("checkpoints")

    def __init__(self) -> None:
        super().__init__()
        TwoProcessMachine.count += 1
        self.path = str(self.base / f"store{self.count}")
        self.a = localckpt.open(self.path, create=True)
        self.peer("open", self.path)
        self.model = TreeModel()
        self.dead: set[str] = set()
        self.gone: set[str] = set()  # dead ids that A no longer saw once

    def teardown(self) -> None:
        self.a.close()
        self.peer("close")

    def _dead_ids(self) -> set[str]:
        out = set()
        for cid in self.model.nodes:
            if set(self.model.lineage(cid)) & self.dead:
                out.add(cid)
        return out

    @rule(target=timelines)
    def create_timeline(self) -> str:
        tl = self.a.create_timeline("v.mp4", "p", frames())
        self.model.create_timeline(tl.id, tl.root_checkpoint_id, 1)
        return tl.id

    @rule(target=checkpoints, proc=PROCS, tid=timelines, data=st.data(),
          stage=STAGES, value=VALUES)
    def save(self, proc: str, tid: str, data: st.DataObject, stage: str,
             value: dict[str, Any]) -> str:
        candidates = [None, *(c for c in self.model.tree(tid) if c not in self._dead_ids())]
        parent = data.draw(st.sampled_from(candidates))
        if proc == "A":
            cid = self.a.save_stage_output(tid, parent, stage, value)
        else:
            cid = str(self.peer("save", tid, parent, stage, value))
        self.model.save(cid, tid, parent, stage, value)
        return cid

    @precondition(lambda self: self.model.nodes)
    @rule(cid=checkpoints)
    def delete(self, cid: str) -> None:
        node = self.model.nodes[cid]
        mark = Tombstone(new_id(), cid, "checkpoint", node.timeline_id, utcnow())
        self.a.catalog.commit(Batch(tombstones=[mark]))
        self.dead.add(cid)

    @precondition(lambda self: self.dead)
    @rule(proc=PROCS, data=st.data())
    def save_under_a_deleted_checkpoint(self, proc: str, data: st.DataObject) -> None:
        """Refused, whether the parent is still stored or purged already (and whether
        this process remembers it from an earlier save or not)."""
        cid = data.draw(st.sampled_from(sorted(self._dead_ids())))
        tid = self.model.nodes[cid].timeline_id
        if proc == "A":
            with pytest.raises(NotFoundError):
                self.a.save_stage_output(tid, cid, "late", {"v": 9})
        else:
            assert self.peer("try_save", tid, cid, "late", {"v": 9}) == "NotFoundError"

    @rule(proc=PROCS)
    def purge(self, proc: str) -> None:
        if proc == "A":
            self.a.catalog.purge_deleted()
        else:
            self.peer("purge")

    @rule(proc=PROCS)
    def reopen(self, proc: str) -> None:
        if proc == "A":
            self.a.close()
            self.a = localckpt.open(self.path)
        else:
            self.peer("open", self.path)

    @invariant()
    def a_sees_the_model(self) -> None:
        dead = self._dead_ids()
        for tid in self.model.timeline_ids():
            stored = self.a.catalog.tree(tid)
            seen = {c.id for c in stored}
            assert all(c.parent_id in seen for c in stored if c.parent_id is not None), (
                "a stored checkpoint without its parent")
            live = set(self.model.tree(tid)) - dead
            assert seen - dead == live, (tid, seen ^ live)
            assert not (seen & self.gone), "a purged checkpoint came back"
            self.gone |= (set(self.model.tree(tid)) & dead) - seen
            for cid in sorted(live)[-3:]:
                assert [c.id for c in self.a.lineage(cid)] == self.model.lineage(cid)
                node = self.model.nodes[cid]
                for stage in node.outputs:
                    assert self.a.load_stage_output(cid, stage) == node.output(stage)

    @precondition(lambda self: self.model.nodes)
    @rule(tid=timelines)
    def b_sees_the_model(self, tid: str) -> None:
        dead = self._dead_ids()
        seen = set(self.peer("tree", tid))  # type: ignore[arg-type]
        assert seen - dead == set(self.model.tree(tid)) - dead
        live = sorted(set(self.model.tree(tid)) - dead)
        tip = live[-1]
        assert self.peer("lineage", tip) == self.model.lineage(tip)
        for stage in self.model.nodes[tip].outputs:
            assert self.peer("load", tip, stage) == self.model.nodes[tip].output(stage)


@pytest.fixture(scope="module")
def peer() -> Any:
    p = Peer()
    yield p
    p.stop()


def test_two_processes_agree_with_the_model(peer: Peer, tmp_path: Path) -> None:
    TwoProcessMachine.peer = peer
    TwoProcessMachine.base = tmp_path
    # fewer runs than the profile says: each step crosses to the other process
    run_state_machine_as_test(TwoProcessMachine, settings=settings(
        settings.default, max_examples=min(settings.default.max_examples, 12)))
