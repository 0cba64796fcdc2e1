"""The one rule for "are we in CI?", and what a missing server does there.

``CI`` is set by every CI service (GitHub Actions, GitLab, ...) and by ``.ci/run``; its
value is ``true`` on most, ``1`` or ``yes`` on some. In CI a server that a test needs but
cannot reach is a failure (it would hide a broken set-up); elsewhere the test skips and
says why. localckpt's own tests and its pytest plugin both use this module.
"""

from __future__ import annotations

import os
from typing import NoReturn

__all__ = ["in_ci", "unavailable"]

_TRUE = frozenset({"1", "true", "yes", "on"})


def in_ci() -> bool:
    """True when the environment variable CI is 1, true, yes or on (any case)."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


def unavailable(message: str) -> NoReturn:
    """Fail the current test in CI, skip it elsewhere; message says what is missing."""
    import pytest

    if in_ci():
        pytest.fail(f"{message} (CI is set: a missing server is a failure)", pytrace=False)
    pytest.skip(message)
