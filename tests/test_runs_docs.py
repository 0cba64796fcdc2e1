"""docs/runs.md: its ```python blocks run, in order, as one script (```py blocks are
illustrations that need a cluster: they are shown, not run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "runs.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_runs_page_runs(tmp_path: Path) -> None:
    blocks = _blocks()
    assert len(blocks) >= 5
    script = tmp_path / "runs_page.py"
    script.write_text("\n".join(blocks))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    for name in ("LOCALCKPT_URL", "LOCALCKPT_OBJECTS", "LOCALCKPT_STORAGE_OPTIONS"):
        env.pop(name, None)
    env["LOCALCKPT_CONFIG"] = str(tmp_path / "no-config.toml")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout.splitlines()
    assert "open 40" in out[0] and out[1].startswith("8 [8, 9, 10]")
    assert "[10, 11, 12]" in result.stdout and "[] 40" in result.stdout
    assert "40 memo entries over 1 stage version(s)" in result.stdout
