"""Smoke test of the benchmark harness: every workload runs at tiny sizes and the report
is well formed.

Never asserts a speed. Two runs in subprocesses (``--quick``): every workload that runs
on the embedded store, on ``sqlite+local`` without plots; and the PostgreSQL-only
workloads on ``postgres+local`` with plots (a throwaway cluster, as the tests start).
LangGraph and matplotlib are optional (a missing peer or plot is a note in the report).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localckpt.testing.ci import unavailable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.workloads import WORKLOADS  # noqa: E402

PG_ONLY = ("pg_writers", "pg_save_parts", "pg_unavailable")
GROUPS = {
    "embedded": ("sqlite+local", tuple(w for w in WORKLOADS if w not in PG_ONLY), False),
    "postgres": ("postgres+local", PG_ONLY, True),
}
#: The workloads of issues 21 and 22 and of the stage-run and decide work: each must judge
#: its goals on some row even at tiny sizes.
JUDGED = ("save_chain", "save_procs", "save_threads", "pg_writers", "gc_under_load",
          "web_index", "verify_one", "ingest_video", "catalog_scale", "stage_runs",
          "evaluate", "sql_later")
TABLE_HEADER = "| config | size | median | spread | rate | x baseline | goal | met | details |"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_workload_runs_and_reports(group: str, tmp_path: Path) -> None:
    """One test per group (one run each, also under xdist), every check on its report."""
    report = _run(group, tmp_path)
    _check_json(report)
    _check_goals(report)
    _check_markdown(report)
    _check_plots(report)


def _run(group: str, out: Path) -> tuple[str, Path]:
    config, workloads, plots = GROUPS[group]
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--configs", config,
           "--only", ",".join(workloads), "--out", str(out)]
    if not plots:
        cmd.append("--no-plots")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)
    skipped = [line for line in proc.stderr.splitlines()
               if line.startswith(f"configuration {config} skipped")]
    if proc.returncode != 0 and skipped:
        # its server cannot start here (the harness raises instead under CI): skip, as the
        # suite's other PostgreSQL tests do, rather than fail on an empty report
        unavailable(skipped[0])
    assert proc.returncode == 0, proc.stderr[-4000:]
    # A workload whose subject raised is logged with its traceback and left without rows.
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    return group, out


def _one(out: Path, pattern: str) -> Path:
    found = sorted(out.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {out}, found {found}"
    return found[0]


def _data(report: tuple[str, Path]) -> dict[str, Any]:
    return json.loads(_one(report[1], "*-quick.json").read_text())


def _check_json(report: tuple[str, Path]) -> None:
    group, _ = report
    config, workloads, _ = GROUPS[group]
    data = _data(report)
    assert data["meta"]["quick"] is True
    assert data["meta"]["configs"] == [config]
    assert set(data["workloads"]) == set(workloads)
    assert any(r["config"] == config for w in data["workloads"].values()
               for r in w["results"].values())
    for name, w in data["workloads"].items():
        assert w["results"], f"{name}: no rows"
        for label, res in w["results"].items():
            assert res["sizes"], (name, label)
            assert {int(s) for s in res["sizes"]} <= set(w["sizes"]), (name, label)
            for cell in res["sizes"].values():
                assert isinstance(cell["median"], float) and math.isfinite(cell["median"])
                assert cell["median"] >= 0, (name, label)
                assert cell["seconds"], (name, label)
            assert res["exponent"] is None or isinstance(res["exponent"], float)


def _check_goals(report: tuple[str, Path]) -> None:
    """The issues' workloads judge their goals on some row; every judged figure (a
    ratio against a row of the same run, an exponent or a value) is a number."""
    data = _data(report)
    for name, w in data["workloads"].items():
        judged = [g for r in w["results"].values() for c in r["sizes"].values()
                  for g in c.get("goals", ())]
        judged += [g for r in w["results"].values() for g in r.get("goals", ())]
        if name in JUDGED:
            assert judged, f"{name}: goals {w['goals']} judged no row"
        for g in judged:
            assert g["figure"] is None or math.isfinite(g["figure"]), (name, g)


def _check_markdown(report: tuple[str, Path]) -> None:
    group, out = report
    workloads = GROUPS[group][1]
    text = _one(out, "*-quick.md").read_text()
    assert text.count(TABLE_HEADER) == len(workloads)  # the same header as benchmarks/report.py
    for name in workloads:
        assert f"## {name}:" in text
    assert "## Goals" in text
    assert "Growth exponent" in text


def _check_plots(report: tuple[str, Path]) -> None:
    group, out = report
    pngs = sorted(out.glob("*.png"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not pngs
        return
    if not GROUPS[group][2]:
        assert not pngs  # --no-plots
        return
    assert pngs
    assert {p.name.rsplit("-", 1)[1] for p in pngs} <= {f"{w}.png" for w in GROUPS[group][1]}
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
