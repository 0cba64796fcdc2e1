"""docs/runs.md runs as a script: its ```python blocks in order, in a fresh directory,
as ``__main__`` (so that the process-pool block, marked ``{.skip .script}`` because the
docs harness runs pages in a namespace that a process pool cannot pickle from, runs
too). Blocks marked ``{.skip}`` alone need a Dask cluster: they are shown, not run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "runs.md"
BLOCK = re.compile(r"^```python(?P<attrs>[^\n]*)\n(?P<code>.*?)^```", re.S | re.M)


def script_blocks() -> list[str]:
    return [m.group("code") for m in BLOCK.finditer(PAGE.read_text())
            if ".skip" not in m.group("attrs") or ".script" in m.group("attrs")]


def test_the_runs_page_runs_as_a_script(tmp_path: Path) -> None:
    blocks = script_blocks()
    assert len(blocks) >= 6 and any("ProcessPoolExecutor" in b for b in blocks)
    assert not any("LocalCluster" in b for b in blocks)
    script = tmp_path / "runs_page.py"
    script.write_text("\n".join(blocks))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALCKPT_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["LOCALCKPT_CONFIG"] = str(tmp_path / "no-config.toml")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout.splitlines()
    assert "open 40" in out[0] and out[1].startswith("8 [8, 9, 10]")
    assert "[10, 11, 12]" in result.stdout and "[] 40" in result.stdout
    assert "40 memo entries over 1 stage version, " in result.stdout
