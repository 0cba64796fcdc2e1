"""Hostile arguments to every public Store method and module function.

For each method (found by introspection, so new methods are fuzzed too), hypothesis
draws each argument from hostile values (tests/fuzzing.py) or from values that name
real things (ids, prefixes, tags, stages, frames), and calls it on a small store. Every
call must:

- return, or raise a ``LocalckptError`` (never TypeError, ValueError, RecursionError,
  OverflowError, OSError, ... from inside);
- answer within its time limit (no hang on 10**6 workers, a FIFO, /dev/zero);
- leave the store exactly as it was when it raises (records, outputs, object keys).

The default run draws a modest number of examples per method; ``-m slow`` draws many.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import StoreFactory
from fuzzing import Hang, hostile, realize, short, snapshot, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import localckpt
from localckpt import LocalckptError, Store

FRAMES = [np.full((8, 8, 3), i * 40, np.uint8) for i in range(3)]
LIMIT = 20.0  # seconds per call
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))  # per method in the default run
#: Methods not fuzzed here: close (ends the store; tested on its own).
SKIP = {"close"}
STORE_METHODS = sorted(
    name for name, f in inspect.getmembers(Store, callable)
    if not name.startswith("_") and name not in SKIP
)


class World:
    """A small store with two timelines, a few checkpoints, a tag and a bundle file."""

    def __init__(self, store: Store, other: Store, tmp: Path) -> None:
        self.store, self.other, self.tmp = store, other, tmp
        a = store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
        b = store.create_timeline("w.mp4", "p", FRAMES[:2], fps=5.0, codec="png", workers=1)
        frames = {"frames": [{"sequence": i, "detections": [
            {"box": [0, 0, 4, 4], "label": "car", "score": 0.9}]} for i in range(3)]}
        self.tids = [a.id, b.id]
        c1 = store.save_stage_output(a.id, None, "detect", frames)
        c2 = store.save_stage_output(a.id, c1, "track", {"t": 1}, config_overrides={"k": 1})
        c3 = store.save_stage_output(a.id, c1, "track", {"t": 2}, is_scenario=True,
                                     scenario_label="try")
        c4 = store.save_stage_output(b.id, None, "detect", {"frames": {"0": {}}})
        store.tag(c2, "best")
        self.cids = [a.root_checkpoint_id, c1, c2, c3, c4, b.root_checkpoint_id]
        self.bundle = str(tmp / "good.zip")
        from localckpt.bundle import export_bundle

        export_bundle(store, a.id, self.bundle)

    def valid(self, name: str) -> st.SearchStrategy[Any]:
        """Values that name real things, for a parameter of this name."""
        ids = st.sampled_from(self.cids + [c[:12] for c in self.cids] + ["best"])
        tids = st.sampled_from(self.tids + [t[:12] for t in self.tids])
        table: dict[str, st.SearchStrategy[Any]] = {
            "timeline_id": tids, "checkpoint_id": ids, "parent_checkpoint_id": ids | st.none(),
            "a": ids, "b": ids, "ours": ids, "theirs": ids, "cid": ids, "ref": ids | tids,
            "ids": st.lists(ids | tids, max_size=3),
            "stage": st.sampled_from(["detect", "track", "none"]),
            "stage_name": st.sampled_from(["detect", "track", "x"]),
            "name": st.sampled_from(["best", "new-tag", "x.y_z"]),
            "output_json": st.sampled_from([{"n": 1}, {"frames": {"0": {}}}, {}]),
            "config_overrides": st.sampled_from([None, {"k": 2}]),
            "stats": st.sampled_from([None, {"s": 1}]),
            "frames": st.sampled_from([FRAMES[:1], np.stack(FRAMES[:2])]),
            "source_video": st.just("x.mp4"), "profile_name": st.just("p"),
            "sequence": st.integers(0, 3), "sequence_or_hash": st.integers(0, 3),
            "start": st.integers(0, 3) | st.none(), "stop": st.integers(0, 3) | st.none(),
            "fps": st.sampled_from([1.0, 2.0]), "batch": st.integers(1, 4),
            "workers": st.integers(1, 2) | st.none(), "codec": st.sampled_from(["png", "jpeg"]),
            "quality": st.integers(1, 95) | st.none(), "keep_last": st.integers(0, 3) | st.none(),
            "dry_run": st.booleans(), "force": st.booleans(), "overwrite": st.booleans(),
            "strategy": st.sampled_from(["fail", "ours", "theirs"]), "path": st.sampled_from(
                [str(self.tmp / "out.zip"), self.bundle, str(self.tmp)]),
            "match_iou": st.floats(0, 1), "max_distance": st.integers(0, 64),
            "dst": st.just(self.other), "src": st.just(self.other),
            "url": st.sampled_from(["memory://", str(self.tmp / "new-store")]),
            "create": st.booleans(), "older_than": st.floats(0, 10),
        }
        return table.get(name, st.nothing())

    def argument(self, name: str) -> st.SearchStrategy[Any]:
        return st.one_of(self.valid(name), hostile())


def _world(new_store: StoreFactory, kind: str, tmp: Path) -> World:
    return World(new_store(kind), new_store("memory"), tmp)


def _consume(value: Any) -> Any:
    """Iterators are read (a few items): their errors come when they are read."""
    if isinstance(value, Iterator):
        return [x for _, x in zip(range(8), value, strict=False)]
    return value


def _call(world: World, func: Callable[..., Any], kwargs: dict[str, Any],
          what: str) -> None:
    before = snapshot(world.store)
    real = {k: realize(v) for k, v in kwargs.items()}
    shown = ", ".join(f"{k}={short(v)}" for k, v in kwargs.items())
    try:
        with time_limit(LIMIT):
            _consume(func(**real))
    except Hang:
        _found(f"{what}({shown}) did not answer within {LIMIT} s", None)
    except LocalckptError:
        after = snapshot(world.store)
        if after != before:
            _found(f"{what}({shown}) raised but changed the store", None)
    except Exception as exc:  # what this test is looking for
        _found(f"{what}({shown}) raised {type(exc).__name__}: {short(str(exc))}", exc)


#: FUZZ_COLLECT=path: record every finding in that file instead of failing (to survey).
_COLLECT = os.environ.get("FUZZ_COLLECT")


def _found(message: str, exc: BaseException | None) -> None:
    if _COLLECT is None:
        pytest.fail(message)
    import traceback

    where = ""
    if exc is not None:
        frames = traceback.extract_tb(exc.__traceback__)
        inside = [f for f in frames if "/localckpt/" in f.filename] or frames
        where = f"{inside[-1].filename.split('/wt-trust/')[-1]}:{inside[-1].lineno}"
        message = f"{type(exc).__name__} at {where}: {message}"
    with open(_COLLECT, "a", encoding="utf-8") as fh:
        fh.write(message.replace("\n", " ")[:600] + "\n")


def _draw_kwargs(data: st.DataObject, world: World, func: Callable[..., Any]
                 ) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for p in inspect.signature(func).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        optional = p.default is not p.empty
        if optional and data.draw(st.booleans(), label=f"pass {p.name}"):
            continue
        kwargs[p.name] = data.draw(world.argument(p.name), label=p.name)
    return kwargs


def _fuzz(new_store: StoreFactory, tmp_path: Path, target: str, examples: int,
          kind: str = "memory") -> None:
    world = _world(new_store, kind, tmp_path)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        func, what = _target(world, target)
        _call(world, func, _draw_kwargs(data, world, func), what)

    run()


def _target(world: World, target: str) -> tuple[Callable[..., Any], str]:
    from localckpt import bundle, gc

    functions: dict[str, Callable[..., Any]] = {
        "localckpt.open": localckpt.open,
        "localckpt.sync": lambda **kw: localckpt.sync(world.store, **kw),
        "export_bundle": lambda **kw: bundle.export_bundle(world.store, **kw),
        "import_bundle": lambda **kw: bundle.import_bundle(world.store, **kw),
        "collect_garbage": lambda **kw: gc.collect_garbage(world.store, **kw),
    }
    if target in functions:
        func = functions[target]
        if target != "localckpt.open":  # the signature of what the lambda calls
            inner = {"localckpt.sync": localckpt.sync, "export_bundle": bundle.export_bundle,
                     "import_bundle": bundle.import_bundle,
                     "collect_garbage": gc.collect_garbage}[target]
            params = list(inspect.signature(inner).parameters.values())[1:]
            func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return func, target
    return getattr(world.store, target), f"Store.{target}"


FUNCTIONS = ["localckpt.open", "localckpt.sync", "export_bundle", "import_bundle",
             "collect_garbage"]


@pytest.mark.parametrize("target", STORE_METHODS + FUNCTIONS)
def test_hostile_arguments(target: str, new_store: StoreFactory, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # open() of a relative path creates nothing elsewhere
    _fuzz(new_store, tmp_path, target, examples=EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("target", STORE_METHODS + FUNCTIONS)
@pytest.mark.parametrize("kind", ["memory", "embedded"])
def test_hostile_arguments_at_length(target: str, kind: str, new_store: StoreFactory,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _fuzz(new_store, tmp_path, target, examples=300, kind=kind)


def test_every_public_method_is_fuzzed() -> None:
    """A method added to Store is fuzzed without anyone listing it."""
    assert {"save_stage_output", "create_timeline", "merge", "verify"} <= set(STORE_METHODS)
    assert not any(name.startswith("_") for name in STORE_METHODS)
    assert os.environ.get("LOCALCKPT_URL") is None
