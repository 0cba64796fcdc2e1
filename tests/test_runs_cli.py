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


def test_gc_says_what_open_runs_keep(made: dict[str, Any],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """gc leaves an open run's parts, an abandoned run's too, and said nothing of them:
    the space a crashed script's run holds was not freed, and no line said why."""
    path = made["path"]
    assert main(["--store", path, "gc"]) == 0
    out = capsys.readouterr().out
    assert "1 open stage run kept with the parts put so far" in out
    assert (f"open runs keep their parts (an abandoned one's too): `localckpt --store {path} "
            f"runs --state open` lists them, `localckpt --store {path} run abort RUN` closes "
            "one, and the next gc frees its parts") in out
    assert main(["--store", path, "gc", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["open_runs"] == [made["pending"]]
    assert said["short_ids"][made["pending"]] == made["shorts"][made["pending"]]
    assert main(["--store", path, "run", "abort", made["shorts"][made["pending"]]]) == 0
    capsys.readouterr()
    assert main(["--store", path, "gc"]) == 0
    out = capsys.readouterr().out
    assert "open stage run" not in out and "open runs keep" not in out


def test_runs_says_which_filter_found_none(made: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A filter that matches no run says so, the timeline by its short id: it was "no runs
    on timeline <full id>" whatever --state asked, as if the store held none."""
    assert main(["--store", made["path"], "runs", "--state", "committing"]) == 0
    assert capsys.readouterr().out == (  # the store it read: a bare command reads another
        f"no committing runs; `localckpt --store {made['path']} runs` lists every run\n")
    with localckpt.open(made["path"]) as store:
        other = store.create_timeline("w.mp4", "p", np.zeros((2, 6, 6, 3), np.uint8))
        short = store.short_id(other.id, "timeline")
    assert main(["--store", made["path"], "runs", other.id]) == 0
    assert capsys.readouterr().out == (f"no runs on timeline {short}; `localckpt --store "
                                       f"{made['path']} runs` lists every run\n")
    assert main(["--store", made["path"], "runs", made["tl"], "--state", "committing"]) == 0
    assert "no committing runs on timeline " in capsys.readouterr().out


def test_run_given_a_checkpoint_or_timeline_says_what_it_names(
        made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """`run show CKPT` (the id tree shows for a committed run's checkpoint) said only "no
    run matches", and a tag "a run id is hex digits": they name the checkpoint, the run
    that committed it, the timeline's run listing."""
    s = made["shorts"]
    with localckpt.open(made["path"]) as store:
        tshort = store.short_id(made["tl"], "timeline")
        store.tag(made["cid"], "best")
    assert main(["--store", made["path"], "run", "show", s[made["cid"]]]) == 1
    assert capsys.readouterr().err == (
        f"localckpt: error: {s[made['cid']]!r} is a checkpoint ({s[made['cid']]}), not a run; "
        f"run {s[made['done']]} committed it; `localckpt --store {made['path']} runs "
        f"{tshort}` lists that timeline's runs\n")
    assert main(["--store", made["path"], "run", "abort", "best"]) == 1
    assert f"'best' is a checkpoint ({s[made['cid']]}), not a run; run {s[made['done']]} " \
        "committed it" in capsys.readouterr().err
    with localckpt.open(made["path"]) as store:  # a checkpoint no run made: no run named
        plain = store.save_stage_output(made["tl"], None, "note", {"n": 1})
        short = store.short_id(plain)
    assert main(["--store", made["path"], "run", "show", plain]) == 1
    assert f"{plain!r} is a checkpoint ({short}), not a run; `localckpt --store " in \
        capsys.readouterr().err
    assert main(["--store", made["path"], "run", "commit", tshort]) == 1
    assert f"{tshort!r} is a timeline ({tshort}), not a run" in capsys.readouterr().err
    assert main(["--store", made["path"], "run", "show", "deadbeef"]) == 1
    assert "no run matches 'deadbeef'" in capsys.readouterr().err


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
    assert f"from run {short}, open: not yet a memo entry)" in \
        capsys.readouterr().out  # the short id, as the run line gives it (was the full id)
    assert main(["--store", made["path"], "run", "show", short, "--frame", "7"]) == 0
    assert "(not in the memo)" in capsys.readouterr().out
    assert main(["--store", made["path"], "run", "show", made["done"], "--frame", "3"]) == 0
    text = capsys.readouterr().out
    assert "memo key of frame 3:" in text
    assert "  inputs   {}\n" in text and "  version  'v1'\n" in text  # as the header's
    assert "stage      detect  version 'v1'" in text
    with localckpt.open(made["path"]) as store:
        classify = store.begin_run(made["tl"], made["cid"], "classify", inputs=("detect",))
        detect_hash = classify.memo_key(3).parts()["inputs"]["detect"]
    assert main(["--store", made["path"], "run", "show", classify.id, "--frame", "3"]) == 0
    assert f'  inputs   {{"detect": "{detect_hash}"}}\n' in capsys.readouterr().out  # JSON
    assert main(["--store", made["path"], "run", "show", "ffffffff"]) == 1
    assert "no run" in capsys.readouterr().err
    assert main(["--store", made["path"], "run", "show", short, "--frame", "99"]) == 1
    err = capsys.readouterr().err
    assert "has no frame 99 (it has 10, sequences 0 to 9)" in err and made["tl"] not in err


def test_run_abort(made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", made["path"], "run", "abort", made["pending"], "--json"]) == 0
    aborted = json.loads(capsys.readouterr().out)
    assert (aborted["state"], aborted["memo_kept"]) == ("aborted", True)
    assert main(["--store", made["path"], "run", "abort", made["pending"]]) == 0
    assert "was already aborted; nothing changed" in capsys.readouterr().out
    for run_id, kept in ((made["pending"], True), (made["gone"], False)):  # memo=False
        assert main(["--store", made["path"], "run", "abort", run_id, "--json"]) == 0
        again = json.loads(capsys.readouterr().out)  # what the first abort kept
        assert (again["already_aborted"], again["memo_kept"]) == (True, kept)
    with localckpt.open(made["path"]) as store:
        assert store.clear_memo(stage="classify") == 4
    assert main(["--store", made["path"], "run", "abort", made["pending"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["memo_kept"] is False  # cleared since
    assert main(["--store", made["path"], "run", "abort", made["done"]]) == 1
    assert "prune that checkpoint" in capsys.readouterr().err
    with localckpt.open(made["path"]) as store:  # a run that wrote nothing keeps nothing
        empty = store.begin_run(made["tl"], None, "segment", version="v1").id
    assert main(["--store", made["path"], "run", "abort", empty]) == 0
    said = capsys.readouterr().out
    assert "it wrote no values, its parts go" not in said  # nor has it parts
    assert "it wrote no values" in said and "stay in the memo" not in said


def test_memo_stats_and_clear(made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", made["path"], "memo", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["pending"]) == (10, 4)  # the open run's 4: not yet
    assert [s["stage"] for s in stats["stages"]] == ["detect"]
    assert main(["--store", made["path"], "memo", "stats"]) == 0
    assert "10 memo entries over 1 stage version, 10 distinct values (70 B); 4 more " \
        "values in open runs" in capsys.readouterr().out
    # --dry-run counts what a clear would remove, and removes nothing (as gc's, prune's)
    for argv, count in ((["--stage", "detect"], 10), (["--stage", "segment"], 0), ([], 10)):
        assert main(["--store", made["path"], "memo", "clear", *argv, "--dry-run"]) == 0
        assert capsys.readouterr().out == (
            f"would remove {count} memo entr{'y' if count == 1 else 'ies'}; nothing removed "
            "(run again without --dry-run)\n")
    with localckpt.open(made["path"]) as store:
        assert store.clear_memo(dry_run=True) == 10
        assert store.memo_stats().entries == 10
    assert main(["--store", made["path"], "memo", "clear", "--older-than", "1h"]) == 0
    cleared = capsys.readouterr().out
    assert "removed 0 memo entries" in cleared
    # the values are not removed with them: a checkpoint keeps its own, gc takes the rest
    assert "and their values" not in cleared and "go at the next gc" in cleared
    for age, said in (("soon", "'soon' is neither an age"),  # bad usage: exit 2
                      ("9" * 15 + "d", "further back than any date")):
        with pytest.raises(SystemExit) as exit_:
            main(["--store", made["path"], "memo", "clear", "--older-than", age])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "memo clear: error: argument --older-than: " in err and said in err
    assert main(["--store", made["path"], "memo", "clear", "--stage", "detect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": 10, "dry_run": False}


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
    cid = made["shorts"][made["cid"]]  # by short id, as tree named it (it said the full id)
    assert f"! run {short}: its parent checkpoint {cid} was pruned; it can never be " \
           f"committed: `localckpt --store {path} run abort {short}` closes it" in out
    assert main(["--store", path, "run", "show", short]) == 0
    text = capsys.readouterr().out
    assert f"orphaned   its parent checkpoint {cid} was pruned" in text
    assert "to do      " not in text
    assert main(["--store", path, "tree", made["tl"]]) == 0
    assert "pending" not in capsys.readouterr().out  # its parent is not in the tree
    assert main(["--store", path, "run", "abort", short]) == 0
    assert capsys.readouterr().out == f"aborted run {short} (classify); its values stay in " \
        "the memo, its parts go at the next gc\n"  # its keys read no input
    assert main(["--store", path, "run", "abort", keyed_short]) == 0
    assert capsys.readouterr().out == (
        f"aborted run {keyed_short} (classify); its values do not stay in the memo (its "
        f"parent checkpoint {cid} was pruned, so its frames' memo keys cannot be "
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


def test_run_show_says_a_committed_checkpoint_deleted_since(
        made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """It named the checkpoint as if it were there, which `show` of it then denied."""
    assert main(["--store", made["path"], "run", "show", made["done"]]) == 0
    assert "deleted since" not in capsys.readouterr().out
    with localckpt.open(made["path"]) as store:
        store.prune(made["cid"])
    assert main(["--store", made["path"], "run", "show", made["done"]]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("state"))
    assert line.startswith("state      committed  checkpoint ")
    assert line.endswith("  deleted since") and made["cid"] in line


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


def test_a_run_aborted_after_its_commit_began_names_no_checkpoint(
        made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """A commit chose its checkpoint's id, then the process died before saving it; the
    run was aborted. That id names no checkpoint, and never will: neither the run, nor
    `run show`, nor the JSON of `runs` give it (show said `checkpoint 2921bf7e`, which
    `localckpt show` did not find)."""
    from localckpt.ids import new_id
    from localckpt.records import utcnow
    from localckpt.runs.run import _begin_commit

    chosen = new_id()
    with localckpt.open(made["path"]) as store:
        store.catalog.runs.change(made["pending"], _begin_commit(chosen, utcnow()))
        run = store.get_run(made["pending"])
        assert run.checkpoint_id == chosen  # committing: the id it will have
        run.abort()
        assert (run.state, run.checkpoint_id, run.status().checkpoint_id) == (
            "aborted", None, None)
    assert main(["--store", made["path"], "run", "show", made["pending"]]) == 0
    text = capsys.readouterr().out
    assert "state      aborted\n" in text and chosen[-8:] not in text
    assert main(["--store", made["path"], "runs", "--json", "--state", "aborted"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed[made["pending"]]["checkpoint_id"] is None
    assert main(["--store", made["path"], "run", "show", made["done"]]) == 0
    assert f"state      committed  checkpoint {made['shorts'][made['cid']]}" in \
        capsys.readouterr().out


def test_run_show_frame_says_what_todo_and_commit_use(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """`run show --frame N` says what gives frame N its value as todo() and commit()
    see it: the run's own value for N first (it wins over a memo entry), and never the
    run's value for another frame with an equal key (a still picture: todo() lists N, and
    show said it was held)."""
    from localckpt.canonical import canonical_bytes, content_hash

    path = str(tmp_path / "s")
    still = [np.zeros((6, 6, 3), dtype=np.uint8)] * 3  # three equal frames: one key
    with localckpt.open(path, create=True) as store:
        a = store.create_timeline("a.mp4", "p", still, codec="png")
        first = store.begin_run(a.id, None, "detect", version="v1")
        first.put({s: {"n": 1} for s in range(3)})
        first.commit()
        b = store.create_timeline("b.mp4", "p", still, codec="png")
        run = store.begin_run(b.id, None, "detect", version="v2")  # no memo entry
        run.put({0: {"n": 2}})
        assert run.todo() == [1, 2]
        again = store.begin_run(b.id, None, "detect", version="v1")  # the entry answers
        again.put({0: {"n": 3}})  # its own value wins over it
    mine = content_hash(canonical_bytes({"n": 3}))

    def shown(run_id: str, frame: int) -> dict[str, Any]:
        assert main(["--store", path, "run", "show", run_id, "--frame", str(frame),
                     "--json"]) == 0
        return json.loads(capsys.readouterr().out)["memo_key"]

    assert shown(run.id, 0)["held_by"] == run.id
    key = shown(run.id, 1)
    assert (key["hit"], key["held_by"]) == (False, None)  # todo() lists frame 1
    assert main(["--store", path, "run", "show", run.id, "--frame", "1"]) == 0
    assert "(not in the memo)" in capsys.readouterr().out
    key = shown(again.id, 0)
    assert (key["value_hash"], key["held_by"], key["pending"]) == (mine, again.id, True)
    assert shown(again.id, 1)["held_by"] == first.id  # the entry, as todo() sees it


def test_run_commit_finishes_a_run_from_the_shell(
        made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """run commit is the shell's run.commit(): refused (exit 1, nothing saved) while
    frames are missing, --partial saves what is there, a second commit says so and gives
    the same checkpoint; the checkpoint equals save_stage_output's of the same frames."""
    path, short = made["path"], made["shorts"][made["pending"]]
    with localckpt.open(path) as store:
        before = len(store.checkpoints(made["tl"]))
    assert main(["--store", path, "run", "commit", short]) == 1
    err = capsys.readouterr().err
    assert "6 of 10 frames still to do" in err and "--partial" in err
    assert f"run {short} has" in err and f"`localckpt --store {path} run show {short}`" in err
    assert made["pending"] not in err  # short ids on the command line, as tree gives them
    with localckpt.open(path) as store:
        assert len(store.checkpoints(made["tl"])) == before
        assert store.get_run(made["pending"]).state == "open"
    assert main(["--store", path, "run", "commit", short, "--partial", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["short_id"], shown["state"]) == (made["pending"], short,
                                                                "committed")
    assert (shown["done"], shown["total"], shown["already_committed"]) == (4, 10, False)
    with localckpt.open(path) as store:
        c = store.get_checkpoint(shown["checkpoint_id"])
        assert shown["checkpoint_short_id"] == store.short_id(c.id)
        assert c.parent_id == made["cid"]
        assert c.stage_outputs["classify"] == {"frames": {str(s): {"c": s} for s in range(4)}}
    assert main(["--store", path, "run", "commit", short]) == 0
    assert f"run {short} (classify) was already committed: checkpoint " \
        f"{shown['checkpoint_short_id']}" in capsys.readouterr().out
    assert main(["--store", path, "run", "commit", made["gone"]]) == 1
    assert "aborted" in capsys.readouterr().err
