"""The lockstep agreement test: every real catalog against the memory catalog, step by
step (``localckpt.testing.stateful.LockstepMachine``)."""

from __future__ import annotations

import pytest
from conftest import KINDS, StoreFactory, machine_for
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from localckpt import Store
from localckpt.testing.stateful import LockstepMachine

REAL_KINDS = [k for k in KINDS if k != "memory"]


def _run(kind: str, factory: StoreFactory, examples: int) -> None:
    run_state_machine_as_test(machine_for(LockstepMachine, factory, kind),
                              settings=settings(max_examples=examples))


@pytest.mark.parametrize("kind", REAL_KINDS)
def test_catalog_agrees_with_memory_catalog(kind: str, new_store: StoreFactory) -> None:
    _run(kind, new_store, examples=4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", REAL_KINDS)
def test_catalog_agrees_with_memory_catalog_long(kind: str, new_store: StoreFactory) -> None:
    _run(kind, new_store, examples=max(10, settings.default.max_examples))


def test_a_disagreement_is_caught() -> None:
    """A catalog that drops tags must fail the machine (the comparison can fail)."""
    import localckpt
    from localckpt.backends.sql import SqlCatalog, memory_catalog

    class TagLosing(SqlCatalog):
        def tags(self, timeline_ids=None):  # type: ignore[no-untyped-def]
            return super().tags(timeline_ids)[:-1]

    class Broken(LockstepMachine):
        def make_store(self) -> Store:
            store = localckpt.open("memory://")
            return Store(TagLosing(memory_catalog().engine), store.objects)

    with pytest.raises(AssertionError, match="reference"):
        run_state_machine_as_test(Broken, settings=settings(
            max_examples=100, stateful_step_count=30, phases=[Phase.generate]))
