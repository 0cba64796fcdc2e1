"""What must not depend on the Python version (nox -s tests-versions runs 3.11, 3.12
and 3.13)."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from localckpt.canonical import MAX_DEPTH, canonical_bytes, load_canonical
from localckpt.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[1]


def _nested(levels: int, wrap: Any = list) -> Any:
    """levels containers, each holding the next; the innermost holds 1."""
    value: Any = 1
    for _ in range(levels):
        value = wrap([value]) if wrap is list else wrap({"k": value})
    return value


@pytest.mark.parametrize("wrap", [list, dict, MappingProxyType], ids=["list", "dict", "mapping"])
def test_nesting_limit_is_the_same_on_every_python(wrap: Any) -> None:
    """Python 3.13's C encoder no longer stops at the recursion limit: a fixed limit keeps
    what one interpreter stores readable by the others."""
    data = canonical_bytes(_nested(MAX_DEPTH, wrap))
    assert load_canonical(data) is not None
    with pytest.raises(InvalidInputError, match=f"more than {MAX_DEPTH} levels"):
        canonical_bytes(_nested(MAX_DEPTH + 1, wrap))


def test_noxfile_python_versions_match_pyproject() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    versions = re.search(r"PYTHONS = \[(.*?)\]", noxfile)
    assert versions is not None
    assert [v.strip(' "') for v in versions.group(1).split(",")] == ["3.11", "3.12", "3.13"]
    assert 'requires-python = ">=3.11"' in pyproject
