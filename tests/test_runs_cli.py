"""The run commands: runs, run show|abort, memo stats|clear, and the tree's pending node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt.cli import main


@pytest.fixture
def made(tmp_path: Path) -> dict[str, Any]:
    """A store with a committed run, an open run half done, and an aborted one."""
    path = str(tmp_path / "s")
    rng = np.random.default_rng(0)
    with localckpt.open(path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", rng.integers(0, 256, (10, 6, 6, 3),
                                                               dtype=np.uint8), codec="png")
        done = store.begin_run(tl.id, None, "detect", version="v1")
        done.put({s: {"n": s} for s in range(10)})
        cid = done.commit()
        pending = store.begin_run(tl.id, cid, "classify", inputs=(), version="v1",
                                  params={"thr": 0.5, "model": "b\u00e4r"})
        pending.put({s: {"c": s} for s in range(4)})
        gone = store.begin_run(tl.id, None, "ocr", memo=False)
        gone.abort()
        shorts = store.short_ids([done.id, pending.id, gone.id], "run")
        shorts[cid] = store.short_id(cid)
    return {"path": path, "tl": tl.id, "done": done.id, "pending": pending.id, "cid": cid,
            "gone": gone.id, "shorts": shorts}


def test_runs_lists_short_ids_states_and_progress(made: dict[str, Any],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", made["path"], "runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["RUN", "TIMELINE", "STAGE", "STATE"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    s = made["shorts"]
    assert rows[s[made["done"]]][2:6] == ["detect", "committed", "10/10", "0"]
    assert rows[s[made["pending"]]][2:6] == ["classify", "open", "4/10", "0"]
    assert rows[s[made["gone"]]][2:6] == ["ocr", "aborted", "0/10", "off"]
    assert main(["--store", made["path"], "runs", made["tl"][:8], "--json",
                 "--state", "open"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["short_id"], r["done"], r["todo"]) for r in listed] == [
        (made["pending"], s[made["pending"]], 4, 6)]


def test_run_show_and_a_frames_memo_key(made: dict[str, Any],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    short = made["shorts"][made["pending"]]
    assert main(["--store", made["path"], "run", "show", short]) == 0
    text = capsys.readouterr().out
    assert f"run        {short}  ({made['pending']})" in text  # as `show` gives ids
    assert "4 written, 0 from the memo, 6 to do, of 10" in text and "to do      4, 5" in text
    assert 'params     {"model": "b\u00e4r", "thr": 0.5}' in text  # JSON, as `show` gives config
    assert main(["--store", made["path"], "run", "show", made["done"], "--frame", "3",
                 "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    key = shown["memo_key"]
    assert shown["state"] == "committed" and key["hit"] is True
    assert (key["held_by"], key["pending"]) == (made["done"], False)
    assert set(key["parts"]) == {"stage", "version", "params", "frame", "inputs"}
    # the open run's own value: it answers, though it is no memo entry yet
    assert main(["--store", made["path"], "run", "show", short, "--frame", "2"]) == 0
    assert f"from run {made['pending']}, open: not yet a memo entry)" in \
        capsys.readouterr().out
    assert main(["--store", made["path"], "run", "show", short, "--frame", "7"]) == 0
    assert "(not in the memo)" in capsys.readouterr().out
    assert main(["--store", made["path"], "run", "show", made["done"], "--frame", "3"]) == 0
    assert "memo key of frame 3:" in capsys.readouterr().out
    assert main(["--store", made["path"], "run", "show", "ffffffff"]) == 1
    assert "no run" in capsys.readouterr().err


def test_run_abort(made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", made["path"], "run", "abort", made["pending"], "--json"]) == 0
    aborted = json.loads(capsys.readouterr().out)
    assert (aborted["state"], aborted["memo_kept"]) == ("aborted", True)
    assert main(["--store", made["path"], "run", "abort", made["pending"]]) == 0
    assert "was already aborted; nothing changed" in capsys.readouterr().out
    assert main(["--store", made["path"], "run", "abort", made["done"]]) == 1
    assert "prune that checkpoint" in capsys.readouterr().err


def test_memo_stats_and_clear(made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", made["path"], "memo", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["pending"]) == (10, 4)  # the open run's 4: not yet
    assert [s["stage"] for s in stats["stages"]] == ["detect"]
    assert main(["--store", made["path"], "memo", "stats"]) == 0
    assert "10 memo entries over 1 stage version(s), 10 distinct values (70 bytes); 4 more " \
        "values in open runs" in capsys.readouterr().out
    assert main(["--store", made["path"], "memo", "clear", "--older-than", "1h"]) == 0
    assert "removed 0 memo entries" in capsys.readouterr().out
    assert main(["--store", made["path"], "memo", "clear", "--older-than", "soon"]) == 1
    assert "--older-than 'soon' is neither an age" in capsys.readouterr().err
    assert main(["--store", made["path"], "memo", "clear", "--older-than", "9" * 15 + "d"]) == 1
    assert "further back than any date" in capsys.readouterr().err
    assert main(["--store", made["path"], "memo", "clear", "--stage", "detect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": 10}


def test_tree_shows_an_open_run_as_a_pending_node(made: dict[str, Any],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", made["path"], "tree", made["tl"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if made["shorts"][made["cid"]] in line)
    short = made["shorts"][made["pending"]]
    assert lines[at + 1].endswith(f"classify  [pending 4/10; run {short}]")
    assert lines[at + 1].index("└──") > lines[at].index("──")  # drawn as its child
    assert not any("ocr" in line for line in lines)  # aborted: not pending


def test_a_run_under_a_pruned_checkpoint_is_listed_with_what_to_do(
        made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Pruning the checkpoint an open run sits under made `runs`, `run show` and `tree`
    fail (exit 1, "no checkpoint ... (it was deleted)") for every run of the store.
    (prune closes the runs it orphans; this one is pruned as a sync brings a prune made
    elsewhere: a tombstone.) `run abort` says whether its values stay in the memo: not
    when its keys read inputs of the pruned checkpoint."""
    from test_runs import tombstones

    path, short = made["path"], made["shorts"][made["pending"]]
    with localckpt.open(path) as store:  # one that reads its parent's detect values
        keyed = store.begin_run(made["tl"], made["cid"], "classify", inputs=("detect",))
        keyed.put({0: {"c": 0}})
        keyed_short = store.short_id(keyed.id, "run")
        tombstones(store, (made["cid"], "checkpoint", made["tl"]))
    assert main(["--store", path, "runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows[short][2:5] == ["classify", "open!", "4/10"]
    assert rows[keyed_short][2:5] == ["classify", "open!", "1/10"]
    assert f"! run {short}: its parent checkpoint {made['cid']} was pruned; it can never be " \
           f"committed: `localckpt run abort {short}` closes it" in out
    assert main(["--store", path, "run", "show", short]) == 0
    text = capsys.readouterr().out
    assert "orphaned   its parent checkpoint" in text and "to do      " not in text
    assert main(["--store", path, "tree", made["tl"]]) == 0
    assert "pending" not in capsys.readouterr().out  # its parent is not in the tree
    assert main(["--store", path, "run", "abort", short]) == 0
    assert capsys.readouterr().out == f"aborted run {short} (classify); its values stay in " \
        "the memo, its parts go at the next gc\n"  # its keys read no input
    assert main(["--store", path, "run", "abort", keyed_short]) == 0
    assert capsys.readouterr().out == (
        f"aborted run {keyed_short} (classify); its values do not stay in the memo (its "
        f"parent checkpoint {made['cid']} was pruned, so its frames' memo keys cannot be "
        "made), its parts go at the next gc\n")
    assert main(["--store", path, "runs", "--state", "open", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_run_show_gives_short_ids_beside_the_timeline_and_parent(
        made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """They were full ids only (and the run's own id came before its short id); `show`
    prints a short id, then the full id."""
    with localckpt.open(made["path"]) as store:
        tshort = store.short_id(made["tl"], "timeline")
        root = store.get_timeline(made["tl"]).root_checkpoint_id
        rshort = store.short_id(root)
    cshort = made["shorts"][made["cid"]]
    assert main(["--store", made["path"], "run", "show", made["pending"]]) == 0
    text = capsys.readouterr().out
    assert f"timeline   {tshort}  ({made['tl']})" in text
    assert f"parent     {cshort}  ({made['cid']})" in text
    assert main(["--store", made["path"], "run", "show", made["done"]]) == 0
    text = capsys.readouterr().out
    assert f"parent     {rshort}  ({root})" in text
    assert f"state      committed  checkpoint {cshort}  ({made['cid']})" in text


def test_runs_and_run_show_json_give_short_ids_beside_every_id(
        made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """`runs --json` and `run show --json` gave timeline_id, parent_id and checkpoint_id
    (and memo_key's held_by) as full ids only, against the JSON convention of
    localckpt/cli/common.py that `show --json` and `tree --json` follow."""
    with localckpt.open(made["path"]) as store:
        tshort = store.short_id(made["tl"], "timeline")
        root = store.get_timeline(made["tl"]).root_checkpoint_id
        rshort = store.short_id(root)
    s = made["shorts"]
    assert main(["--store", made["path"], "runs", "--json"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    done, pending = listed[made["done"]], listed[made["pending"]]
    assert (done["short_id"], done["timeline_short_id"], done["parent_short_id"],
            done["checkpoint_short_id"]) == (s[made["done"]], tshort, rshort, s[made["cid"]])
    assert (pending["parent_id"], pending["parent_short_id"]) == (made["cid"], s[made["cid"]])
    assert (pending["checkpoint_id"], pending["checkpoint_short_id"]) == (None, None)
    assert main(["--store", made["path"], "run", "show", s[made["done"]], "--frame", "3",
                 "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["short_id"], shown["timeline_short_id"], shown["parent_short_id"],
            shown["checkpoint_short_id"]) == (s[made["done"]], tshort, rshort, s[made["cid"]])
    assert (shown["memo_key"]["held_by"], shown["memo_key"]["held_by_short_id"]) == (
        made["done"], s[made["done"]])
    assert main(["--store", made["path"], "run", "show", s[made["pending"]], "--frame", "7",
                 "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["memo_key"]
    assert (key["hit"], key["held_by"], key["held_by_short_id"]) == (False, None, None)


def test_text_output_piped_keeps_one_row_per_record_and_whole_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Piped to a file (capsys is no terminal), `memo stats` cut versions to 20
    characters (two versions that share them printed the same) and left the default
    version (empty) a blank column, so `awk '{print $2}'` read the entries; a stage name
    holding a newline or a colour code printed it raw in `runs`, `run show`, `memo stats`
    (a second line, a coloured terminal). Nothing draws a bar or colours on its own."""
    path = str(tmp_path / "s")
    long = ("resnet50-2026-12-01-lr0.001", "resnet50-2026-12-01-lr0.01")
    hostile = "det\x1b[31mect\nx"
    with localckpt.open(path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", np.zeros((3, 4, 4, 3), np.uint8), codec="png")
        ids, cids = [], []
        for stage, version in ((hostile, ""), ("detect", long[0]), ("detect", long[1])):
            run = store.begin_run(tl.id, None, stage, version=version, inputs=())
            run.put({s: {"v": version, "s": s} for s in range(3)})
            cids.append(run.commit())
            ids.append(store.short_id(run.id, "run"))
    escaped = "det\\x1b[31mect\\nx"
    assert main(["--store", path, "memo", "stats"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert sorted(r[:2] for r in rows) == [[escaped, "''"], ["detect", long[0]],
                                           ["detect", long[1]]]
    assert all(len(r) == 5 for r in rows), rows  # stage version entries age "ago"
    assert main(["--store", path, "runs"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 4 and "\x1b" not in out
    assert [line.split()[2] for line in out.splitlines()[1:]] == [escaped, "detect", "detect"]
    assert main(["--store", path, "run", "show", ids[0], "--frame", "0"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and f"stage      {escaped}  version ''" in out
    assert f"  stage    {escaped}\n" in out
    assert "  version  ''\n" in out  # the default version in the memo key too (was blank)
    assert "\r" not in out and "\x1b" not in capsys.readouterr().err
    # tree and show print stored stage names the same way (they printed them raw)
    assert main(["--store", path, "tree", tl.id]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and len(out.splitlines()) == 5
    assert f"  {escaped}\n" in out
    assert main(["--store", path, "show", cids[0]]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and f"stage      {escaped}\n" in out
    assert f"  {escaped} (" in out
