"""The README's whole path (video -> ingest -> tries in several processes -> diff ->
prune -> push to PostgreSQL + S3), run from the README's own block, so the doc and the
tool cannot drift apart."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import localckpt

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## The whole path"


def walkthrough_lines() -> list[str]:
    """The commands of the README's walkthrough block, but for its install line (this
    environment has the package; CI's fresh venv checks that the install works)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(SECTION):], re.S)
    assert block, f"the README's {SECTION!r} section must hold a sh block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert "pip install" in lines[0]
    return lines[1:]


def test_the_readme_walkthrough_runs_end_to_end(
    tmp_path: Path, pg_dsn: str, s3_base: tuple[str, dict[str, Any]],
) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bucket, options = s3_base
    schema = f"t_{uuid.uuid4().hex[:12]}"
    team_url, team_objects = f"{pg_dsn}?schema={schema}", f"{bucket}/{schema}"
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(ROOT),  # this checkout's localckpt, in the console script too
        "TEAM_URL": team_url, "TEAM_OBJECTS": team_objects, "TEAM_S3": json.dumps(options),
    }
    script = "\n".join(["set -euo pipefail", *walkthrough_lines()])
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "ingested 100 frames (5 fps; 500 decoded)" in out
    assert sorted(re.findall(r"^thr=(\S+): checkpoint", out, re.M)) == ["0.3", "0.5", "0.7",
                                                                       "0.9"]
    assert re.search(r"^  frame  0  -\d+ ~\d+ moved$", out, re.M)  # the per-frame diff
    assert "100 of 100 frames changed" in out
    assert "imported 4" in out and "matched no timeline frame" not in out
    # thr-0.9 against the truth, frame by frame: the boxes it missed, none moved (at
    # --moved-iou 0.5) or rescored (the truth has no scores)
    against = re.findall(r"^(\d+) of 100 frames changed .*: \+(\d+) added, -\d+ removed, "
                         r"~(\d+) moved, ~\d+ relabelled, ~(\d+) rescored$", out, re.M)
    assert len(against) == 2, out
    frames, missed, moved, rescored = map(int, against[1])
    assert 0 < frames < 100 and missed >= frames and moved == rescored == 0, against
    ranked = re.findall(r"^\d+  \w+  (thr-\S+) ", out, re.M)  # compare, best first
    assert ranked[2:] == ["thr-0.3", "thr-0.9"], out
    assert "prune: deleted 2 checkpoints, 2 tags (thr-0.3, thr-0.9)" in out
    assert "copied 1 timeline, 4 checkpoints, 2 deletions, 3 tags" in out
    assert options["secret"] not in out + done.stderr  # the push line names the remote only
    # the team's store holds the winners, their tags and every frame; the losers are gone
    with localckpt.open(team_url, objects=team_objects, storage_options=options,
                        environ=False) as team:
        (timeline,) = team.list_timelines()
        tries = [c for c in team.checkpoints(timeline.id) if c.stage == "detect"]
        assert sorted(c.scenario_label for c in tries) == ["thr=0.5", "thr=0.7"]
        assert sorted(t.name for t in team.tags()) == ["thr-0.5", "thr-0.7", "truth"]
        assert len(team.frame_index(timeline.id)) == 100
        assert team.verify().ok
    team_tree = out.rstrip().splitlines()[-3:]  # `--store team tree`: two tries, the truth
    assert sum(line.count("[tag thr-0.") for line in team_tree) == 2
    assert "[tag truth]" in team_tree[-1]
    # run again in the same clone (the remote exists already, as after git remote add):
    # the tags move to the new tries and the new truth, and the push adds the new timeline
    again = "\n".join(["set -euo pipefail",
                       *(line for line in walkthrough_lines() if "remote add" not in line)])
    done = subprocess.run(["bash", "-c", again], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "prune: deleted 2 checkpoints, 2 tags (thr-0.3, thr-0.9)" in done.stdout
    with localckpt.open(team_url, objects=team_objects, storage_options=options,
                        environ=False) as team:
        newest = max(team.list_timelines(), key=lambda t: t.id)
        assert {team.get_checkpoint(t.checkpoint_id).timeline_id for t in team.tags()} == {
            newest.id}
