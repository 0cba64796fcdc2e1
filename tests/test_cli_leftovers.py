"""Small leftovers of the command line's review: what the examples print is what a user
types next, one style for a reference that names nothing, a remote name wrong by its form
is bad usage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt.cli import main

ROOT = Path(__file__).resolve().parents[1]
DETECT = {"frames": [{"sequence": 0, "detections": []}]}


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


def test_a_reference_that_names_nothing_is_told_in_one_form_with_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pruned tag said "no checkpoint matches 'thr-0.3' (no live id, short id, prefix,
    tag) in ...", a short miss "no checkpoint 'nope': give its id, ...": two forms, and
    neither said the tag had been there. One form now: `no KIND matches REF in STORE:
    why; see LISTING`, why saying what became of the tag."""
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as s:
        tl = s.create_timeline("clip.mp4", "p", [np.zeros((4, 4, 3), np.uint8)],
                               codec="png")
        gone = s.save_stage_output(tl.id, None, "detect", DETECT, is_scenario=True)
        kept = s.save_stage_output(tl.id, None, "detect", DETECT, is_scenario=True)
        s.tag(gone, "thr-0.3")
        s.tag(kept, "keep")
        s.prune(gone)
        s.untag("keep")
        short = s.short_id(kept)
    listing = f"see `localckpt --store {path} tree TIMELINE`\n"
    cases = {
        "thr-0.3": "the tag thr-0.3 went with the checkpoint it named (pruned, or its "
                   "timeline deleted)",
        "keep": f"the tag keep was removed (untag); it named {short}, which is still there "
                f"(`localckpt --store {path} tag {short} keep` tags it again)",
        "nope": "no live tag is named 'nope', and no live checkpoint has a short id that "
                "starts with it (an id prefix needs 6+ characters)",
        "nopenope": "no live checkpoint has that id, short id or id prefix, and no live tag "
                    "that name",
    }
    for ref, why in cases.items():
        assert main(["--store", path, "show", ref]) == 1
        assert capsys.readouterr().err == \
            f"localckpt: error: no checkpoint matches {ref!r} in {path}: {why}; {listing}"
    assert main(["--store", path, "tree", "thr-0.3"]) == 1  # a timeline by a gone tag
    assert capsys.readouterr().err == (
        f"localckpt: error: no timeline matches 'thr-0.3' in {path}: {cases['thr-0.3']}; "
        f"see `localckpt --store {path} ls`\n")
    assert main(["--store", path, "run", "show", "abc"]) == 1  # runs have no tags
    assert capsys.readouterr().err == (
        f"localckpt: error: no run matches 'abc' in {path}: a short id needs 4+ characters, "
        f"an id prefix 6+; see `localckpt --store {path} runs`\n")


def test_a_remote_name_wrong_by_its_form_is_bad_usage(tmp_path: Path) -> None:
    """`remote add 'bad name' URL` exited 1 ('localckpt: error: ...'); a name wrong by its
    form is bad usage: exit 2 under the command's usage, the config file not written.
    --storage-options-from's name likewise; a well-formed name `remote remove` does not
    find stays 1."""
    env = _env(tmp_path)
    config = tmp_path / "config.toml"
    for argv, said in (
            (["add", "bad name", str(tmp_path / "s")],
             "argument NAME: a remote name is letters, digits, '_', '.' or '-' (starting "
             "with a letter or digit, at most 64), not 'bad name'"),
            (["add", "ok", str(tmp_path / "s"), "--storage-options-from", "a b"],
             "argument --storage-options-from: names an environment variable or a "
             "credentials table (letters, digits, '_', '.', '-'), not 'a b'")):
        done = subprocess.run([sys.executable, "-m", "localckpt.cli", "remote", *argv],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("usage: localckpt remote add ")
        assert done.stderr.endswith(f"localckpt remote add: error: {said}\n"), done.stderr
        assert not done.stdout and not config.exists()
    done = subprocess.run([sys.executable, "-m", "localckpt.cli", "remote", "remove", "nope"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no remote named 'nope'" in done.stderr


def test_init_of_a_bare_name_near_a_remote_notes_the_remote(tmp_path: Path) -> None:
    """`--store tem init` with a remote 'team' made ./tem silently: it still does (as
    `git init tem` would), with a one-line note on stderr naming the remote; a second init
    of it, or a name near no remote, says nothing."""
    env = _env(tmp_path)

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "localckpt.cli", *argv], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)

    assert cli("remote", "add", "team", "./team-store").returncode == 0
    done = cli("--store", "team", "init")  # the remote itself: made there, no note
    assert done.returncode == 0 and done.stderr == "" and (tmp_path / "team-store").is_dir()
    done = cli("--store", "tem", "init")
    assert done.returncode == 0 and done.stdout.startswith("localckpt store ready at tem ")
    assert done.stderr == "note: 'tem' is a new store here; did you mean the remote 'team'?\n"
    assert (tmp_path / "tem").is_dir()
    for argv in (("--store", "tem", "init"), ("--store", "zzz", "init"), ("init",)):
        done = cli(*argv)
        assert done.returncode == 0 and done.stderr == "", (argv, done.stderr)


def test_help_says_the_config_files_store_url_is_a_default(tmp_path: Path) -> None:
    """--help said the default store is "$LOCALCKPT_URL, else ./.localckpt" and init's
    "--store, else ./.localckpt", leaving out the config file's [store] url, which a
    command (init too) opens before ./.localckpt."""
    env = _env(tmp_path)
    (tmp_path / "config.toml").write_text(f'[store]\nurl = "{tmp_path / "configured"}"\n')

    def cli(*argv: str) -> str:
        done = subprocess.run([sys.executable, "-m", "localckpt.cli", *argv], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return " ".join(done.stdout.split())

    assert "(default: $LOCALCKPT_URL, else the config file's [store] url, else " \
        "./.localckpt)" in cli("--help")
    assert "else ./.localckpt" not in cli("init", "--help")
    cli("init")
    assert (tmp_path / "configured").is_dir() and not (tmp_path / ".localckpt").exists()
