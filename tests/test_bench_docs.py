"""The benchmark docs are true to the harness: benchmarks/README.md's workload table names
every workload with its full sizes, and both benchmark pages list every option."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.cli import parse_args  # noqa: E402
from benchmarks.workloads import WORKLOADS  # noqa: E402

README = REPO / "benchmarks" / "README.md"
PAGES = (README, REPO / "docs" / "benchmarks.md")
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")


def _workload_table() -> list[tuple[list[str], str]]:
    """(names, sizes cell) of each row of the table under '## Workloads and goals'."""
    text = README.read_text().split("## Workloads and goals", 1)[1]
    rows = []
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith(("| workload ", "|---")):
            if rows and not line.startswith("|"):
                break
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows.append(([n.strip() for n in cells[0].split("/")], cells[2]))
    return rows


def test_the_workload_table_names_every_workload_with_its_sizes() -> None:
    rows = _workload_table()
    named = [n for names, _ in rows for n in names]
    assert sorted(named) == sorted(WORKLOADS), set(named) ^ set(WORKLOADS)
    for names, sizes in rows:
        numbers = tuple(int(n.replace(",", "")) for n in NUMBER.findall(sizes))
        if not numbers:  # "as catalog_scale"
            continue
        for name in names:
            assert numbers == WORKLOADS[name].sizes, (name, sizes)


def test_both_pages_list_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    options = set(re.findall(r"--[a-z][a-z-]+", capsys.readouterr().out)) - {"--help"}
    assert {"--quick", "--only", "--configs", "--regoal"} <= options
    for page in PAGES:
        listed = page.read_text().split("Options:", 1)[1].split("\n\n", 1)[0]
        assert options <= set(re.findall(r"--[a-z][a-z-]+", listed)), (page.name, options)
