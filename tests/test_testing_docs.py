"""docs/testing.md presents everything localckpt.testing ships for property tests: each
strategy and each state machine is named there (the multi-store SyncMachine, which
checks merge and sync, was shipped but named on no page)."""

from __future__ import annotations

from pathlib import Path

import localckpt.testing.stateful as stateful
import localckpt.testing.strategies as strategies

PAGE = Path(__file__).resolve().parents[1] / "docs" / "testing.md"


def test_the_testing_page_names_every_strategy_and_machine() -> None:
    text = PAGE.read_text()
    missing = [name for name in (*strategies.__all__, *stateful.__all__)
               if f"`{name}" not in text and f".{name}`" not in text]
    assert not missing


def test_the_testing_page_shows_a_merge_and_sync_property_it_runs() -> None:
    """The page's blocks run (tests/test_docs.py); one of them subclasses SyncMachine and
    one is a property of two stores' merge with the strategies."""
    text = PAGE.read_text()
    assert "class MemoryAndEmbedded(SyncMachine):" in text
    assert "run_state_machine_as_test(MemoryAndEmbedded" in text
    assert "a.merge(ours, theirs, strategy=strategy)" in text
