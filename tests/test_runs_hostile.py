"""Hostile input to runs: each is a typed error, and nothing is written."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest
from conftest import KINDS

import localckpt
from localckpt.errors import InvalidInputError, LocalckptError, NotFoundError

HOSTILE_KINDS = [k for k in ("memory", "embedded", "postgres-local") if k in KINDS]


def frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


def snapshot(store: localckpt.Store) -> dict[str, Any]:
    """Every row of the tables a run writes, and the runs' states."""
    q = store.catalog.engine.query
    return {table: sorted(map(repr, q(f"SELECT * FROM {{s}}{table}")))
            for table in ("runs", "run_puts", "memo_runs", "memo_frames", "outputs",
                          "output_refs", "checkpoints")}


def _cyclic() -> Any:
    a: dict[str, Any] = {"x": 1}
    a["self"] = a
    return a


def _cyclic_list() -> Any:
    a: list[Any] = [1]
    a.append([a])
    return a


def _deep(n: int) -> Any:
    v: Any = 0
    for _ in range(n):
        v = [v]
    return v


class _OddInt(int):
    """An int that is 0 but hashes apart from it (one dict, the same sequence twice)."""

    def __hash__(self) -> int:
        return 12345


BAD_PUTS = [
    pytest.param({"1": {}}, id="str-sequence"),
    pytest.param({1.0: {}}, id="float-sequence"),
    pytest.param({True: {}}, id="bool-sequence"),
    pytest.param({None: {}}, id="none-sequence"),
    pytest.param({(1,): {}}, id="tuple-sequence"),
    pytest.param({-1: {}}, id="negative-sequence"),
    pytest.param({10: {}}, id="unknown-sequence"),
    pytest.param({10**20: {}}, id="huge-sequence"),
    pytest.param({0: {}, 1: float("nan")}, id="nan"),
    pytest.param({0: {"score": math.inf}}, id="infinity"),
    pytest.param({0: _cyclic()}, id="self-referencing-dict"),
    pytest.param({0: _cyclic_list()}, id="self-referencing-list"),
    pytest.param({0: {1: "int key"}}, id="non-string-key"),
    pytest.param({0: {"a": {1, 2}}}, id="set"),
    pytest.param({0: b"bytes"}, id="bytes"),
    pytest.param({0: object()}, id="object"),
    pytest.param({0: "\ud800"}, id="lone-surrogate"),
    pytest.param({0: _deep(255)}, id="too-deep-inside-frames"),
    pytest.param({0: {}, _OddInt(0): {"other": 1}}, id="sequence-twice"),
    pytest.param([(0, {})], id="not-a-mapping"),
]


@pytest.fixture(params=HOSTILE_KINDS)
def store(request: pytest.FixtureRequest, new_store: Any) -> localckpt.Store:
    return new_store(request.param)


@pytest.fixture
def tl(store: localckpt.Store) -> Any:
    return store.create_timeline("v.mp4", "p", frames(10), codec="png")


def test_a_bad_put_writes_nothing(store: localckpt.Store, tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect")
    run.put({5: {"fine": True}})
    before = snapshot(store)
    for case in BAD_PUTS:
        with pytest.raises(InvalidInputError):
            run.put(case.values[0])
        assert snapshot(store) == before, case.id
    assert run.state == "open" and run.done == 1


def test_a_value_just_shallow_enough_is_taken(store: localckpt.Store, tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect", memo=False)
    run.put({0: _deep(254)})  # 256 levels inside {"frames": {...}}: the limit
    cid = run.commit(partial=True)
    assert store.load_stage_output(cid, "detect") == {"frames": {"0": _deep(254)}}


MALFORMED = ["", "../../etc/passwd", "x" * 100, "01a2'; DROP TABLE runs;--", "zzzzzzzz",
             "0" * 37, " ", "01a2\x00"]


def test_a_malformed_run_id_is_refused(store: localckpt.Store, tl: Any) -> None:
    """A str no run id could be names nothing (NotFoundError, as get_checkpoint says a
    malformed reference); what is no str at all is InvalidInputError. Nothing written."""
    store.begin_run(tl.id, None, "detect")
    before = snapshot(store)
    for ref in MALFORMED:
        with pytest.raises(NotFoundError, match=r"^no run (matches )?['\"]"):
            store.get_run(ref)
    for bad in (123, None, b"01a2", ["id"]):
        with pytest.raises(InvalidInputError):
            store.get_run(bad)  # type: ignore[arg-type]
    assert snapshot(store) == before


def test_a_run_id_of_another_store_is_not_found(store: localckpt.Store, tl: Any,
                                                new_store: Any) -> None:
    other = new_store("memory")
    foreign = other.begin_run(other.create_timeline("v", "p", frames(2)).id, None, "s")
    before = snapshot(store)
    for ref in (foreign.id, foreign.id[:8], "01a2b3c4-0000-7000-8000-000000000000"):
        with pytest.raises(NotFoundError):
            store.get_run(ref)
    assert snapshot(store) == before


BAD_BEGINS = [
    pytest.param(dict(stage_name=""), InvalidInputError, id="empty-stage"),
    pytest.param(dict(stage_name=5), InvalidInputError, id="int-stage"),
    pytest.param(dict(stage_name="a\x00b"), InvalidInputError, id="nul-stage"),
    pytest.param(dict(params={"t": float("nan")}), InvalidInputError, id="nan-param"),
    pytest.param(dict(params=[1]), InvalidInputError, id="list-params"),
    pytest.param(dict(version=2), InvalidInputError, id="int-version"),
    pytest.param(dict(inputs="detect"), InvalidInputError, id="inputs-a-str"),
    pytest.param(dict(inputs=("nothing",)), InvalidInputError, id="input-missing"),
    pytest.param(dict(inputs=("plain",)), InvalidInputError, id="input-not-frame-keyed"),
    pytest.param(dict(inputs=("keyed", "keyed")), InvalidInputError, id="input-twice"),
    pytest.param(dict(memo="yes"), InvalidInputError, id="memo-a-str"),
    pytest.param(dict(stats={"x": {1, 2}}), InvalidInputError, id="set-in-stats"),
    pytest.param(dict(timeline_id="0190a000-0000-7000-8000-000000000000"), NotFoundError,
                 id="unknown-timeline"),
    pytest.param(dict(parent="other-timeline"), InvalidInputError, id="foreign-parent"),
]


def test_a_bad_begin_writes_nothing(store: localckpt.Store, tl: Any) -> None:
    parent = store.save_stage_output(tl.id, None, "plain", {"x": 1})
    parent = store.save_stage_output(tl.id, parent, "keyed", {"frames": {"0": 1}})
    other = store.create_timeline("w.mp4", "p", frames(2), codec="png")
    before = snapshot(store)
    for case in BAD_BEGINS:
        change, error = case.values
        args: dict[str, Any] = dict(timeline_id=tl.id, parent=parent, stage_name="s")
        args.update(change)
        if args["parent"] == "other-timeline":
            args["parent"] = other.root_checkpoint_id
        with pytest.raises(error):
            store.begin_run(args.pop("timeline_id"), args.pop("parent"),
                            args.pop("stage_name"), **args)
        assert snapshot(store) == before, case.id


def test_a_stage_function_that_answers_wrongly_writes_nothing(store: localckpt.Store,
                                                              tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect")
    before = snapshot(store)
    for fn in (lambda fs: [1], lambda fs: {f.sequence + 1: 1 for f in fs},
               lambda fs: {f.sequence: float("nan") for f in fs}):
        with pytest.raises(InvalidInputError):
            run.map(fn, chunk_size=20)
    for size in (0, -1, True, "8"):
        with pytest.raises(InvalidInputError):
            run.map(lambda fs: {}, chunk_size=size)
    with pytest.raises(InvalidInputError):
        run.map(lambda fs: {}, executor=object())
    assert snapshot(store) == before


def test_runs_of_a_memory_store_do_not_leave_the_process(new_store: Any) -> None:
    store = new_store("memory")
    run = store.begin_run(store.create_timeline("v", "p", frames(2)).id, None, "s")
    with pytest.raises(InvalidInputError, match="this process only"):
        pickle.dumps(run)


def test_a_bad_sequence_for_memo_key_is_said_in_its_terms(store: localckpt.Store,
                                                          tl: Any) -> None:
    """memo_key writes nothing: its error does not speak of a put."""
    run = store.begin_run(tl.id, None, "detect")
    for bad in (1.0, True, "1", float("nan")):
        with pytest.raises(InvalidInputError, match="a frame sequence must be an int") as e:
            run.memo_key(bad)
        assert "put" not in str(e.value)
    with pytest.raises(InvalidInputError, match="nothing of this put was written"):
        run.put({1.5: {}})


def test_todo_takes_a_numpy_integer_limit_as_put_takes_numpy_sequences(
        store: localckpt.Store, tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect")
    run.put({np.int64(0): {}})
    assert run.todo(limit=np.int64(3)) == [1, 2, 3]
    for bad in (-1, np.int64(-1), 2.0, np.float64(2), True, "3"):
        with pytest.raises(InvalidInputError, match="limit must be a non-negative integer"):
            run.todo(limit=bad)


def test_every_error_is_a_localckpt_error(store: localckpt.Store, tl: Any) -> None:
    run = store.begin_run(tl.id, None, "detect")
    for call in (lambda: run.todo(limit=-1), lambda: run.commit(partial="no"),
                 lambda: run.memo_key(99), lambda: store.runs(state="done"),
                 lambda: store.clear_memo(stage=3)):
        with pytest.raises(LocalckptError):
            call()
