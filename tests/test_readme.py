"""The README's set-up commands are the ones CI runs, and the demo command works."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md must start with a bash block of set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.index("```bash") < text.index("## "), "set-up commands must come first"
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("localckpt demo")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_demo_command_runs_on_the_embedded_default(tmp_path: pathlib.Path) -> None:
    # this checkout's package (an editable install elsewhere must not stand in for it)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "localckpt.cli", "demo", "--frames", "6"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "detect" in result.stdout and "scenario threshold=0.8" in result.stdout
    assert (tmp_path / ".localckpt").is_dir()  # the embedded default, whatever its engine
    listing = subprocess.run(
        [sys.executable, "-m", "localckpt.cli", "ls"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert listing.returncode == 0 and "synthetic://two-balls" in listing.stdout
