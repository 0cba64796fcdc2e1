"""`localckpt log CHECKPOINT`: how a checkpoint came to be, as `git log --oneline` shows
a commit's history (newest first, a line each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt.cli import main


def _chain(tmp_path: Path) -> tuple[str, list[str]]:
    """A store with root -> detect -> track -> track again, and a sibling try of detect."""
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as s:
        tl = s.create_timeline("clip.mp4", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
        detect = s.save_stage_output(tl.id, None, "detect", {"n": 1}, {"thr": 0.5},
                                     {"boxes": 3})
        s.save_stage_output(tl.id, None, "detect", {"n": 2}, {"thr": 0.9},
                            is_scenario=True, scenario_label="high")
        track = s.save_stage_output(tl.id, detect, "track", {"t": 1}, {"gap": 2})
        again = s.save_stage_output(tl.id, track, "track", {"t": 2}, {"gap": 3})
        s.tag(again, "best")
        shorts = s.short_ids([tl.root_checkpoint_id, detect, track, again])
        return path, [shorts[i] for i in (again, track, detect, tl.root_checkpoint_id)]


def test_log_lists_the_lineage_newest_first_with_what_each_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, (again, track, detect, root) = _chain(tmp_path)
    assert main(["--store", path, "log", "best"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [again, track, detect, root]
    # each line: short id, time (UTC, to the second), what made it, then only its changes
    assert lines[0].split("  ")[2:] == ["track", "[tag best]", "config gap=3"]
    assert lines[1].split("  ")[2:] == ["track", "config gap=2"]
    assert lines[2].split("  ")[2:] == ["detect", "config thr=0.5", "stats boxes=3"]
    assert lines[3].split("  ")[2] == "root"
    assert all(len(line.split("  ")[1]) == 19 for line in lines)  # 2026-12-07 21:22:53


def test_log_max_count_keeps_the_newest_and_their_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-n N (as git's): the newest N; the last shown still says what it changed beside
    its parent, which is not shown."""
    path, (again, track, _detect, _root) = _chain(tmp_path)
    assert main(["--store", path, "log", "-n", "2", again]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [again, track]
    assert lines[1].endswith("track  config gap=2")
    assert main(["--store", path, "log", "--max-count", "1", again, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["short_id"], r["tags"], r["config_overrides"]) for r in records] == [
        (again, ["best"], {"thr": 0.5, "gap": 3})]


def test_log_refuses_a_count_below_one_and_a_miss(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _chain(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["--store", path, "log", "-n", "0", "best"])
    assert exit_.value.code == 2
    assert "must be a whole number >= 1, not '0'" in capsys.readouterr().err
    assert main(["--store", path, "log", "nope"]) == 1
    assert "no checkpoint matches 'nope'" in capsys.readouterr().err
