"""Small leftovers of the command line's review: what the examples print is what a user
types next, one style for a reference that names nothing, a remote name wrong by its form
is bad usage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import localckpt

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
            "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home"),
            "LOCALCKPT_CONFIG": str(tmp_path / "config.toml")}


def test_detect_tries_prints_the_short_id_the_cli_takes(tmp_path: Path) -> None:
    """It printed the full id where `localckpt tree` shows (and a user types) the short
    one."""
    with localckpt.open(str(tmp_path / ".localckpt"), create=True) as store:
        frames = [np.full((8, 200, 3), 40 * i, np.uint8) for i in range(3)]
        store.create_timeline("clip.mp4", "p", frames, codec="png")
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "detect_tries.py"), "0.5"],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    with localckpt.open(str(tmp_path / ".localckpt")) as store:
        cid = store.tag_target("thr-0.5")
        assert cid is not None
        short = store.short_id(cid)
    assert done.stdout == f"thr=0.5: checkpoint {short}, tagged thr-0.5\n"
    assert cid not in done.stdout
