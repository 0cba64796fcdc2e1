"""What a new user trips on, trying what the README and docs/ show: one form for a
reference that names nothing, whatever the command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt.cli import main

DETECT = {"frames": [{"sequence": 0, "detections": []}]}


def _store(tmp_path: Path) -> str:
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as s:
        tl = s.create_timeline("clip.mp4", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
        s.begin_run(tl.id, None, "detect", version="v1").put({0: {"n": 1}})
    return path


@pytest.mark.parametrize("action", ["show", "commit", "abort"])
def test_a_run_reference_wrong_by_its_form_is_told_as_every_miss(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str) -> None:
    """`run show nope` said "a run id is hex digits and dashes (36 characters at most),
    such as `localckpt runs` shows, not 'nope'", where `run show abcdef12`, `show nope`
    and `tree nope` say "no KIND matches REF in STORE: why; see LISTING". One form now,
    exit status 1 as for those, nothing changed."""
    path = _store(tmp_path)
    listing = f"see `localckpt --store {path} runs`\n"
    form = ("a run's id, short id or id prefix is hex digits and dashes, 36 characters at "
            "most (runs have no tags)")
    for ref, why in (("nope", form), ("a b", form), ("0123456789" * 4, form)):
        assert main(["--store", path, "run", action, ref]) == 1
        assert capsys.readouterr().err == \
            f"localckpt: error: no run matches {ref!r} in {path}: {why}; {listing}"
    assert main(["--store", path, "run", action, ""]) == 1  # as `show ''`, `tree ''` say
    assert capsys.readouterr().err == \
        "localckpt: error: no run '' (an empty reference names nothing)\n"
    with localckpt.open(path) as s:
        assert [r.state for r in s.runs()] == ["open"]


def test_the_web_view_says_a_miss_as_the_command_line_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The web view answered a reference that names nothing with wording of its own, "no
    checkpoint 'nope': give its id, short id, a unique prefix or a tag", where `localckpt
    show nope` says why ("no live tag is named 'nope', and an id prefix needs 6+
    characters"), and says a removed tag was removed. Now the command line's message,
    without the store (the page's header names it) and the command that lists ids."""
    import json

    from localckpt.web.app import App

    path = _store(tmp_path)
    with localckpt.open(path) as s:
        gone = s.save_stage_output(s.list_timelines()[0].id, None, "detect", DETECT,
                                   is_scenario=True)
        s.tag(gone, "thr-0.3")
        s.prune(gone)
        app = App(s)
        for kind, target, ref in (("checkpoint", "/c/{}", "nope"),
                                  ("checkpoint", "/api/checkpoints/{}", "nopenope"),
                                  ("checkpoint", "/c/{}", "thr-0.3"),
                                  ("timeline", "/t/{}", "nope"),
                                  ("timeline", "/api/timelines/{}", "0123456789abcdef")):
            assert main(["--store", path, "show" if kind == "checkpoint" else "tree", ref]) == 1
            said = capsys.readouterr().err.removeprefix("localckpt: error: ")
            why = said.split(f" in {path}: ", 1)[1].rsplit("; see `localckpt", 1)[0]
            resp = app.handle("GET", target.format(ref))
            assert resp.status == 404
            body = resp.body.decode()
            message = f"no {kind} matches {ref!r}: {why}"
            if target.startswith("/api/"):
                assert json.loads(body)["message"] == message
            else:
                assert message.replace("'", "&#x27;") in body
            assert path not in body.split("</header>")[-1] and "localckpt tree" not in body
        resp = app.handle("GET", "/frames/nope/0.jpg")  # the Store resolves an image's
        assert resp.status == 404 and resp.body.decode() == (  # timeline, not the view
            "no timeline matches 'nope': no live tag is named 'nope', and no live timeline "
            "has a short id that starts with it (an id prefix needs 6+ characters)")


@pytest.mark.parametrize("argv, said", [
    (["ls", "--jsno"], "localckpt ls: error: unrecognized arguments: --jsno (maybe you meant "
                       "'--json'?)"),
    (["prune", "x", "--dryrun"], "localckpt prune: error: unrecognized arguments: --dryrun "
                                 "(maybe you meant '--dry-run'?)"),
    (["tag", "--forse=1", "a", "b"], "unrecognized arguments: --forse=1 (maybe you meant "
                                     "'--force'?)"),
    (["ls", "--xyz"], "localckpt ls: error: unrecognized arguments: --xyz\n"),  # near none
])
def test_a_mistyped_option_names_the_nearest(tmp_path: Path, argv: list[str], said: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """docs/command-line.md says bad usage names the nearest command or option; a
    mistyped command did ("maybe you meant 'ls'?"), a mistyped option only "unrecognized
    arguments: --jsno". Exit 2, before any store is opened."""
    with pytest.raises(SystemExit) as exit_:
        main(["--store", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and said in err, err
    assert not (tmp_path / "s").exists()


def test_untag_of_a_name_no_tag_has_is_told_as_every_miss(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`untag best` a second time said "no tag 'best' in STORE (see `localckpt tags`)",
    a form of its own, and not that the first untag removed it, which `show best` says.
    Now the one form, `no tag matches NAME in STORE: why; see LISTING`, exit 1."""
    path = _store(tmp_path)
    with localckpt.open(path) as s:
        cid = s.save_stage_output(s.list_timelines()[0].id, None, "detect", DETECT)
        s.tag(cid, "best")
        short = s.short_id(cid)
    assert main(["--store", path, "untag", "best"]) == 0
    capsys.readouterr()
    assert main(["--store", path, "tag", short, "keep"]) == 0
    capsys.readouterr()
    listing = f"see `localckpt --store {path} tags`\n"
    for name, why in (
            ("best", f"the tag best was removed (untag); it named {short}, which is still "
                     f"there (`localckpt --store {path} tag {short} best` tags it again)"),
            ("Keep", "no live tag has that name (tag names are case-sensitive: there is "
                     "'keep')"),
            ("nope", "no live tag has that name")):
        assert main(["--store", path, "untag", name]) == 1
        assert capsys.readouterr().err == \
            f"localckpt: error: no tag matches {name!r} in {path}: {why}; {listing}"
    with localckpt.open(path) as s:
        assert [g.name for g in s.tags()] == ["keep"]
        with pytest.raises(localckpt.NotFoundError, match=(  # the API says it so too
                r"^no tag matches 'best' in .*: the tag best was removed \(untag\)")):
            s.untag("best")


@pytest.mark.parametrize("argv", [
    ["export", "TL", "-"],
    ["labels", "export", "CK", "-", "--format", "coco", "--stage", "detect"],
])
def test_a_file_named_dash_is_not_written_in_place_of_stdout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str]) -> None:
    """`export T -` (stdout, as for tar or git bundle) wrote a zip named '-' in the
    working directory and said "export to -: copied ...". Bad usage now, exit 2 before
    the store is opened; `./-` still names that file."""
    path = _store(tmp_path)
    with localckpt.open(path) as s:
        tl = s.list_timelines()[0]
        cid = s.save_stage_output(tl.id, None, "detect", DETECT)
    words = [{"TL": tl.id, "CK": cid}.get(w, w) for w in argv]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["--store", path, *words])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: argument " + ("FILE" if argv[0] == "export" else "PATH") + ": '-' is not "
        "standard output here: this command writes a file, so give its path (./- for a "
        "file named '-')\n")
    assert not (tmp_path / "-").exists()
    assert main(["--store", path, *words[:-1 if argv[0] == "export" else 3], "./-",
                 *words[4:]]) == 0
    assert (tmp_path / "-").is_file()


def test_a_command_started_with_stdout_or_stderr_closed_runs_to_its_own_status(
        tmp_path: Path) -> None:
    """`localckpt ls >&-` (a daemon's job, a cron line) printed a traceback,
    "AttributeError: 'NoneType' object has no attribute 'write'", and exited 120: Python
    leaves sys.stdout None when descriptor 1 is closed. The output is dropped now, as for
    a reader gone, and the status is the command's own."""
    import os
    import subprocess
    import sys

    path = _store(tmp_path)
    root = Path(__file__).resolve().parents[1]
    env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
           "PYTHONPATH": str(root), "HOME": str(tmp_path / "home"),
           "LOCALCKPT_CONFIG": str(tmp_path / "config.toml")}

    def closed(fd: int, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "localckpt.cli", "--store", path, *argv], env=env,
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
            preexec_fn=lambda: os.close(fd))

    for argv, status in ((["ls"], 0), (["ls", "--json"], 0), (["runs"], 0),
                         (["show", "nope"], 1), (["ls", "--jsno"], 2)):
        done = closed(1, *argv)
        assert done.returncode == status, (argv, done.stderr)
        assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
        assert (done.stderr != "") == (status != 0)
        done = closed(2, *argv)
        assert done.returncode == status, (argv, done.stdout)
        assert (done.stdout != "") == (status == 0)


@pytest.mark.parametrize("argv, said", [
    (["run"], "localckpt run: error: the following arguments are required: ACTION (show, "
              "commit or abort)\n"),
    (["memo"], "localckpt memo: error: the following arguments are required: ACTION (stats "
               "or clear)\n"),
    (["labels"], "localckpt labels: error: the following arguments are required: ACTION "
                 "(import or export)\n"),
    (["remote"], "localckpt remote: error: the following arguments are required: ACTION "
                 "(add, list or remove)\n"),
    ([], "localckpt: error: the following arguments are required: COMMAND (`localckpt "
         "--help` lists them)\n"),
])
def test_a_missing_action_names_the_actions(tmp_path: Path, argv: list[str], said: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`localckpt run` said "the following arguments are required: ACTION" under a usage
    of "ACTION ...": which actions there are was left to --help."""
    with pytest.raises(SystemExit) as exit_:
        main(["--store", str(tmp_path / "s"), *argv])
    assert exit_.value.code == 2 and capsys.readouterr().err.endswith(said)


def test_a_timeline_of_every_frame_is_not_said_at_all_fps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After `ingest --fps all`, `tree` said "75 frames @ all fps" (and diff's refusal of
    two timelines "75 frames at all fps"), as if "all" were a rate; `ls` says `all` in
    its FPS column, which is right there."""
    from localckpt.render import describe_timeline
    from localckpt.testing.videos import write_video

    video, path = tmp_path / "clip.mp4", str(tmp_path / "s")
    write_video(video, 10, fps=10.0, size=(64, 48))
    assert main(["--store", path, "ingest", str(video), "--fps", "all"]) == 0
    assert main(["--store", path, "ingest", str(video), "--fps", "5"]) == 0
    capsys.readouterr()
    with localckpt.open(path) as s:
        every, five = s.list_timelines()
        assert describe_timeline(every) == f"{video}, 10 frames, every frame, over 1.0s"
        assert describe_timeline(five) == f"{video}, 5 frames at 5 fps over 1.0s"
    assert main(["--store", path, "tree", every.id]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "(1.0s sampled, 10 frames, every frame, from 1.0s of video at 10 fps" in header
    assert main(["--store", path, "tree", five.id]) == 0
    assert "(1.0s sampled, 5 frames @ 5 fps, from" in capsys.readouterr().out


def test_output_that_cannot_be_written_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    """`localckpt show CKPT --stage detect > out.json` on a full disk (here: a file size
    limit) printed a traceback ("OSError: [Errno 27] File too large") from the middle of
    the command; `sql --csv > out.csv` likewise. Now one line says the output is
    incomplete, exit 1, and the store is as it was."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    path = _store(tmp_path)
    boxes = [{"box": [i, i, i + 10, i + 10], "label": "player", "score": 0.5}
             for i in range(3000)]
    with localckpt.open(path) as s:
        cid = s.save_stage_output(s.list_timelines()[0].id, None, "detect",
                                  {"frames": [{"sequence": 0, "detections": boxes}]})
    root = Path(__file__).resolve().parents[1]
    env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
           "PYTHONPATH": str(root), "HOME": str(tmp_path / "home"),
           "LOCALCKPT_CONFIG": str(tmp_path / "config.toml")}
    limit = 64 << 10  # above SQLite's shared-memory file (32 KiB), below the output

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, as ENOSPC is an error
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out.json"
    with out.open("w") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "localckpt.cli", "--store", path, "show", cid, "--stage",
             "detect"], env=env, stdout=stdout, stderr=subprocess.PIPE, text=True,
            timeout=60, cwd=tmp_path, preexec_fn=limited)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ("localckpt: error: could not write the output (File too large); "
                           "what was printed is incomplete\n")
    assert out.stat().st_size == limit
    with localckpt.open(path) as s:
        assert s.load_stage_output(cid, "detect")["frames"][0]["detections"] == boxes


def test_a_reference_of_any_form_that_names_nothing_is_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/command-line.md: bad usage (2) is a command line wrong by its form, but a
    reference that names nothing is 1 whatever its form, as the page's examples say."""
    path = _store(tmp_path)
    for argv in (["show", "a b"], ["tree", "a b"], ["run", "show", "nope"]):
        assert main(["--store", path, *argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith("localckpt: error: no ") and "usage:" not in err


def test_remote_remove_of_a_mistyped_name_names_the_nearest(tmp_path: Path) -> None:
    """`remote remove tem` said "no remote named 'tem' in FILE (remotes: team)", where
    `push tem` says "did you mean 'team'?" and where to list them. Exit 1, the file
    untouched."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    config = tmp_path / "config.toml"
    env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
           "PYTHONPATH": str(root), "HOME": str(tmp_path / "home"),
           "LOCALCKPT_CONFIG": str(config)}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "localckpt.cli", *argv], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)

    assert cli("remote", "add", "team", "./team-store").returncode == 0
    before = config.read_bytes()
    for name, hint in (("tem", "did you mean 'team'? "), ("zzz", "")):
        done = cli("remote", "remove", name)
        assert done.returncode == 1 and not done.stdout
        assert done.stderr == (f"localckpt: error: no remote named {name!r} in {config} "
                               f"({hint}remotes: team; see `localckpt remote list`)\n")
    assert config.read_bytes() == before


def test_the_web_view_says_a_missing_frame_as_the_command_line_does(tmp_path: Path) -> None:
    """A frame number past the end said "timeline T has no frame 99" (an image) and "the
    timeline has no frame 99" (tries side by side), where `run show --frame 99` and
    `similar T 99` say how many frames there are and which sequences."""
    from localckpt.web.app import App

    path = _store(tmp_path)
    with localckpt.open(path) as s:
        tl = s.list_timelines()[0]
        a = s.save_stage_output(tl.id, None, "detect", DETECT, is_scenario=True)
        b = s.save_stage_output(tl.id, None, "detect", DETECT, is_scenario=True)
        short = s.short_id(tl.id, "timeline")
        app = App(s)
        resp = app.handle("GET", f"/frames/{short}/99.jpg")
        assert (resp.status, resp.body.decode()) == (
            404, f"timeline {short} has no frame 99 (it has 1, sequences 0 to 0)")
        resp = app.handle("GET", f"/t/{short}/side?c={a}&c={b}&seq=99")
        assert resp.status == 404
        assert "the timeline has no frame 99 (it has 1, sequences 0 to 0)" in resp.body.decode()


def test_the_api_says_a_run_reference_wrong_by_its_form_as_every_miss(tmp_path: Path) -> None:
    """store.get_run("nope") raised InvalidInputError ("a run id is hex digits ..."),
    where get_checkpoint("nope") and get_timeline("nope") raise NotFoundError in the one
    form of a reference that names nothing; the command line alone said it that way."""
    path = _store(tmp_path)
    with localckpt.open(path) as s:
        for ref in ("nope", "a b", "0123456789" * 4):
            with pytest.raises(localckpt.NotFoundError, match=(
                    rf"^no run matches '{ref}' in {path}: a run's id, short id or id prefix "
                    r"is hex digits and dashes.*; see `localckpt --store .* runs`$")):
                s.get_run(ref)
        with pytest.raises(localckpt.NotFoundError, match="an empty reference names nothing"):
            s.get_run("")
        with pytest.raises(localckpt.NotFoundError, match=r"^no run matches 'abcdef12'"):
            s.get_run("abcdef12")  # the right form, no such run: as before


@pytest.mark.parametrize("words", [["--store", "", "ls"], ["--objects", " ", "ls"],
                                   ["sql", ""], ["sql", "  "]])
def test_an_empty_store_or_query_is_bad_usage(tmp_path: Path, words: list[str],
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`--store ""` (an unset shell variable) and `sql ''` were errors of the command, exit
    1, after the store was looked for; a value wrong by its form is bad usage: 2, said
    under the usage, before anything is opened."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(words)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: localckpt" in err and "error: argument" in err and "not '" in err
    assert not (tmp_path / ".localckpt").exists()


def test_an_error_message_prints_control_characters_as_escapes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A label file's name (any bytes a directory may hold) is quoted in the error: an
    escape sequence in it must reach the terminal as text, not as a colour change."""
    url = _store(tmp_path)
    tid = localckpt.open(url).list_timelines()[0].id
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    (yolo / "classes.txt").write_text("person\n")
    (yolo / "\x1b[31m000099.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert main(["--store", url, "labels", "import", tid, str(yolo), "--format", "yolo"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\\x1b[31m000099.txt" in err and "frame 99" in err
