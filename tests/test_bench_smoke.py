"""Smoke test of the benchmark harness: it runs and writes a well-formed report.

Never asserts a speed. Runs in a subprocess on the embedded store only, with two cheap
workloads; LangGraph and matplotlib are optional (a missing peer is a note in the report).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ("save_chain", "lineage")
TABLE_HEADER = "| config | size | median | spread | rate | x baseline | goal | met | details |"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--configs", "sqlite+local",
           "--out", str(out)]
    for name in WORKLOADS:
        cmd += ["--only", name]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _one(out: Path, pattern: str) -> Path:
    found = sorted(out.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {out}, found {found}"
    return found[0]


def test_json_has_every_workload_and_numeric_medians(report: Path) -> None:
    data = json.loads(_one(report, "*-quick.json").read_text())
    assert data["meta"]["quick"] is True
    assert data["meta"]["configs"] == ["sqlite+local"]
    assert set(data["workloads"]) == set(WORKLOADS)
    for name, w in data["workloads"].items():
        ours = {label: r for label, r in w["results"].items() if r["role"] == "store"}
        assert "sqlite+local" in ours, f"{name}: no sqlite+local row in {list(w['results'])}"
        for label, res in ours.items():
            assert {int(s) for s in res["sizes"]} == set(w["sizes"]), (name, label)
            for cell in res["sizes"].values():
                assert isinstance(cell["median"], float) and math.isfinite(cell["median"])
                assert cell["median"] > 0
                assert cell["samples"], (name, label)
            assert res["exponent"] is None or isinstance(res["exponent"], float)


def test_markdown_has_a_table_per_workload(report: Path) -> None:
    text = _one(report, "*-quick.md").read_text()
    assert text.count(TABLE_HEADER) == len(WORKLOADS)  # the same header as benchmarks/report.py
    for name in WORKLOADS:
        assert f"## {name}:" in text
    assert "## Goals" in text
    assert "Growth exponent" in text


def test_plots_are_png_when_matplotlib_is_installed(report: Path) -> None:
    pngs = sorted(report.glob("*.png"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not pngs
        return
    assert {p.name.rsplit("-", 1)[1] for p in pngs} == {f"{w}.png" for w in WORKLOADS}
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
