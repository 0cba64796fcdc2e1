"""Model-based test: random sequences of store operations agree with TreeModel, per kind.

The machine is the one shipped as ``localckpt.testing.stateful.CheckpointMachine`` (its
docstring lists the rules); here it runs on every store kind of conftest, subclassed as
a user would subclass it.
"""

from __future__ import annotations

import pytest
from conftest import StoreFactory, machine_for
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from localckpt.testing.stateful import CheckpointMachine


def _run(kind: str, factory: StoreFactory, examples: int) -> None:
    run_state_machine_as_test(machine_for(CheckpointMachine, factory, kind),
                              settings=settings(max_examples=examples))


def test_store_agrees_with_model_briefly(store_kind: str, new_store: StoreFactory) -> None:
    _run(store_kind, new_store, examples=3)


@pytest.mark.slow
def test_store_agrees_with_model(store_kind: str, new_store: StoreFactory) -> None:
    # Half the profile's examples: each is a whole run of steps on a fresh store.
    _run(store_kind, new_store, examples=max(5, settings.default.max_examples // 2))


def test_the_duckdb_catalog_agrees_with_model_briefly(new_store: StoreFactory) -> None:
    """DuckDB is no store_kind (one process at a time, left out of the multi-process
    tests), but it is one of the relational catalog's engines: the machine runs on it."""
    _run("duckdb", new_store, examples=3)


def test_the_default_machine_runs_on_a_memory_store() -> None:
    run_state_machine_as_test(CheckpointMachine, settings=settings(max_examples=3))
