"""The benchmark harness's command line, as a user types it: wrong names and numbers are
usage errors (exit status 2, like argparse, the valid choices on stderr) that start
nothing; --list prints every workload. Never runs a measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.configs import ALL_CONFIGS  # noqa: E402
from benchmarks.workloads import WORKLOADS  # noqa: E402


def _bench(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args, "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("args, wrong, valid", [
    (["--only", "nope"], "nope", "save_chain"),
    (["--only", "save_chain,nope"], "nope", "save_chain"),
    (["--configs", "nope"], "nope", "postgres+local"),
    (["--configs", "sqlite+local,postgres"], "postgres", "postgres+s3"),
    (["--reps", "0"], "at least 1", "--reps"),
    (["--reps", "-2"], "at least 1", "--reps"),
])
def test_a_wrong_name_or_number_is_a_usage_error(args: list[str], wrong: str, valid: str,
                                                 tmp_path: Path) -> None:
    proc = _bench("--quick", *args, out=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: python -m benchmarks"), proc.stderr
    assert wrong in proc.stderr and valid in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing ran, no report


def test_list_names_every_workload_and_configuration(tmp_path: Path) -> None:
    proc = _bench("--list", out=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # each workload's line starts with its name, then at least one space, then its title
    assert [line.split()[0] for line in lines[:-1]] == list(WORKLOADS)
    for line, w in zip(lines, WORKLOADS.values(), strict=False):
        assert line.split(None, 1)[1] == w.title
    assert lines[-1] == "configs: " + ", ".join(ALL_CONFIGS)


def _without_psycopg(tmp_path: Path) -> dict[str, str]:
    """The environment of a user without the postgres extra: psycopg cannot be imported
    (None in sys.modules is Python's own way to block an import), outside CI."""
    blocker = tmp_path / "no-psycopg"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['psycopg'] = None\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), str(REPO)])
    return env


def test_a_configuration_that_cannot_start_is_said_on_stderr(tmp_path: Path) -> None:
    """Left out with a note (outside CI), said at once on stderr, not only in the report;
    when no configuration of the run is left, nothing is measured and the exit status is 1
    rather than a report of empty tables."""
    env = _without_psycopg(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--no-plots", "--only", "storage",
           "--out", str(out)]
    proc = subprocess.run([*cmd, "--configs", "postgres+local"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "configuration postgres+local skipped" in proc.stderr
    assert "localckpt[postgres]" in proc.stderr
    assert "no configuration of this run could start" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()

    proc = subprocess.run([*cmd, "--configs", "sqlite+local,postgres+local"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "configuration postgres+local skipped" in proc.stderr
    report = json.loads(next(out.glob("*-quick.json")).read_text())
    assert report["meta"]["configs"] == ["sqlite+local"]
    assert any(n.startswith("configuration postgres+local skipped") for n in report["notes"])
