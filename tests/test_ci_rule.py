"""One rule for "in CI" (localckpt.testing.ci), used by every test file and the plugin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from localckpt.testing.ci import in_ci

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("1", True), ("yes", True), ("TRUE", True), (" on ", True),
    ("", False), ("0", False), ("false", False), ("no", False),
])
def test_in_ci(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_in_ci_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert in_ci() is False


def test_nothing_else_reads_the_ci_variable() -> None:
    """A second rule (CI == "true" only, say) would let CI=1 skip a missing server."""
    reads = re.compile(r"""environ(\.get)?\s*[\[(]\s*["']CI["']|getenv\(\s*["']CI["']""")
    offenders = [
        str(p.relative_to(ROOT)) for folder in ("tests", "localckpt", "benchmarks", "backends")
        for p in (ROOT / folder).rglob("*.py")
        if reads.search(p.read_text()) and p != ROOT / "localckpt" / "testing" / "ci.py"
    ]
    assert offenders == []
