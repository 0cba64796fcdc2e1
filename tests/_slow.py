"""Long trials (@pytest.mark.slow) run only when asked for: ``-m slow`` or ``nox -s slow``
(or LOCALCKPT_SLOW=1), so the default suite stays within its time budget."""

from __future__ import annotations

import os

import pytest


def require_slow(request: pytest.FixtureRequest) -> None:
    """Skip, saying how to run it, unless slow tests were selected."""
    selected = "slow" in (request.config.getoption("markexpr") or "")
    if not selected and os.environ.get("LOCALCKPT_SLOW", "") != "1":
        pytest.skip("a long trial: run with -m slow (nox -s slow) or LOCALCKPT_SLOW=1")
