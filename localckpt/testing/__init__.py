"""Testing helpers shipped with localckpt, for its own tests and for yours.

- :mod:`localckpt.testing.model`: :class:`TreeModel`, a pure in-memory model of checkpoint
  trees (the oracle of the stateful tests).
- :mod:`localckpt.testing.strategies`: hypothesis strategies (JSON values, stage names,
  small frames, non-JSON input).
- :mod:`localckpt.testing.conformance`: :class:`StoreConformance`, the one test suite every
  backend runs; subclass it and provide a ``store`` fixture.
- :mod:`localckpt.testing.stateful`: hypothesis state machines to run or subclass
  (``CheckpointMachine``: one store against the model; ``LockstepMachine``: a real
  catalog against the memory catalog, read by read; ``SyncMachine``: several stores).
- :mod:`localckpt.testing.pytest_plugin`: the fixtures ``localckpt_store``,
  ``localckpt_timeline`` and ``localckpt_store_factory``, loaded by pytest automatically.
- :mod:`localckpt.testing.ci`: the one rule for "in CI" (a missing server fails there).

For a store to use in your own pipeline tests, ``localckpt.open("memory://")`` gives a
fresh in-process store (the reference backend). The conformance suite, the strategies
and the machines need pytest and hypothesis (``pip install 'localckpt[test]'``); they are
imported lazily, so ``import localckpt.testing`` works without them.
"""

from __future__ import annotations

import importlib
from typing import Any

from .model import ModelCheckpoint, ModelTimeline, TreeModel

__all__ = ["ModelCheckpoint", "ModelTimeline", "StoreConformance", "TreeModel", "strategies"]


def __getattr__(name: str) -> Any:
    if name == "StoreConformance":
        return importlib.import_module(f"{__name__}.conformance").StoreConformance
    if name == "strategies":
        return importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module 'localckpt.testing' has no attribute {name!r}")
