"""`localckpt tree -L N`: the first N levels of a large tree, as `tree -L` draws a
directory, each cut branch saying how much lies below it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt.cli import main
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.render import render_tree, tree_levels
from localckpt.types import Checkpoint, Timeline


def _tree() -> tuple[Timeline, list[Checkpoint]]:
    """root -> a -> a1 -> a2, root -> b; in that order (children oldest first)."""
    ids = {name: new_id() for name in ("root", "a", "a1", "a2", "b")}
    parents = {"root": None, "a": "root", "a1": "a", "a2": "a1", "b": "root"}
    tl = Timeline(new_id(), "v.mp4", "p", 1.0, None, ids["root"], 1, utcnow())
    cps = [Checkpoint(ids[n], tl.id, ids[p] if p else None, {}, {}, {}, False, n, utcnow(),
                      stage=n) for n, p in parents.items()]
    return tl, cps


def test_levels_count_from_the_root_as_one() -> None:
    _, cps = _tree()
    assert [tree_levels(cps)[c.id] for c in cps] == [1, 2, 3, 4, 2]


def test_a_cut_branch_says_what_lies_below_it() -> None:
    tl, cps = _tree()
    a1 = cps[2].id
    pending = {a1: ["classify  [pending 1/2; run 1234abcd]"]}
    full = render_tree(tl, cps, pending=pending).splitlines()
    assert len(full) == 1 + 5 + 1  # the header, every checkpoint, the open run
    cut = render_tree(tl, cps, pending=pending, depth=2).splitlines()
    assert len(cut) == 1 + 3 + 1
    assert cut[3].endswith("... 2 checkpoints and 1 open run below")  # under a
    assert not any(line.endswith(" a1") for line in cut)
    assert cut[-1].endswith(" b")  # b: none below
    assert render_tree(tl, cps, depth=1).splitlines()[2].endswith("... 4 checkpoints below")
    assert render_tree(tl, cps, pending=pending, depth=4) == "\n".join(full)
    one = render_tree(tl, cps, pending=pending, depth=3).splitlines()
    assert one[4].endswith("... 1 checkpoint and 1 open run below")  # under a1


def test_tree_depth_on_the_command_line_and_in_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as s:
        tl = s.create_timeline("clip.mp4", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
        parent = None
        for i in range(30):  # a chain 31 deep: its lines grow wider and wider
            parent = s.save_stage_output(tl.id, parent, f"s{i}", {"i": i})
    assert main(["--store", path, "tree", "-L", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[-1].endswith("... 29 checkpoints below")
    assert main(["--store", path, "tree", "--depth", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    with pytest.raises(SystemExit) as bad:
        main(["--store", path, "tree", "-L", "0"])
    assert bad.value.code == 2
    assert "must be a whole number >= 1" in capsys.readouterr().err
