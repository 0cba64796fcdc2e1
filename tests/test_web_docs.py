"""docs/web.md: its Python runs as written, and every picture it shows exists."""

from __future__ import annotations

import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "web.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_python_to_run() -> None:
    assert _blocks()


@pytest.mark.parametrize("n", range(len(_blocks())))
def test_each_python_block_runs(n: int) -> None:
    exec(compile(_blocks()[n], f"{DOC.name} block {n}", "exec"), {"__name__": "__doc__"})


def test_every_screenshot_the_page_shows_exists() -> None:
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", DOC.read_text())
    assert len(pictures) >= 7
    missing = [p for p in pictures if not (DOC.parent / p).is_file()]
    assert missing == []
