"""``python -m backends up --detach`` / ``down``: exactly localckpt's variables, then a
labelled test group; down stops both servers and deletes their data."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt.testing.ci import unavailable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backends.session import pid_alive  # noqa: E402


def _backends(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backends", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def _groups(text: str) -> list[tuple[str, dict[str, str]]]:
    """[(label, {name: value})] from the export lines, in order."""
    groups: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        if line.startswith("# "):
            groups.append((line, {}))
        elif line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            groups[-1][1][name] = shlex.split(value)[0]
    return groups


def test_up_detach_then_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, env_file = tmp_path / "state.json", tmp_path / "servers.env"
    up = _backends("up", "--detach", "--env-file", str(env_file), "--state-file", str(state))
    if up.returncode != 0 and "initdb" in up.stderr:
        unavailable(f"no PostgreSQL here: {up.stderr[-300:]}")
    assert up.returncode == 0, up.stderr
    try:  # the stop command given names this state file: a bare `down` would stop nothing
        assert f"python -m backends down --state-file {state}" in up.stderr
        groups = _groups(up.stdout)
        assert [set(g) for _, g in groups] == [
            {"LOCALCKPT_URL", "LOCALCKPT_OBJECTS", "LOCALCKPT_STORAGE_OPTIONS"},
            {"LOCALCKPT_TEST_PG_DSN", "LOCALCKPT_TEST_S3_URL", "LOCALCKPT_TEST_S3_OPTIONS"},
        ]
        assert "read by localckpt" in groups[0][0] and "test suite" in groups[1][0]
        assert env_file.read_text().strip() == up.stdout.strip()
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        # the printed variables are enough for localckpt.open() to reach both servers
        for name, value in groups[0][1].items():
            monkeypatch.setenv(name, value)
        with localckpt.open(create=True) as store:
            tl = store.create_timeline("v", "p", [np.zeros((2, 2, 3), np.uint8)], codec="png")
        with localckpt.open() as store:
            assert [t.id for t in store.list_timelines()] == [tl.id]
        info = json.loads(state.read_text())
        again = _backends("up", "--detach", "--state-file", str(state))
        assert again.returncode != 0 and "already running" in again.stderr
        assert f"python -m backends down --state-file {state}`" in again.stderr
    finally:
        down = _backends("down", "--state-file", str(state))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not pid_alive(info["pid"]) and not pid_alive(info["moto_pid"])
    assert not Path(info["pg_directory"]).exists()
    assert not state.exists() and not env_file.exists()
    assert list(tmp_path.iterdir()) == []
    assert "nothing to stop" in _backends("down", "--state-file", str(state)).stdout
