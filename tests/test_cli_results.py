"""The command line of issue 8: diff --frames (also across timelines, issue 19), show
--stage, serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websample import CHANGED, SCRIPT, Sample, build

import localckpt
from localckpt.cli import main


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Sample]:
    where = str(tmp_path_factory.mktemp("cli"))
    with localckpt.open(where, create=True) as store:
        return where, build(store)


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_diff_frames_prints_one_line_per_changed_frame_and_totals(made: Any, capsys: Any
                                                                  ) -> None:
    where, s = made
    code, out, _ = run(capsys, "--store", where, "diff", s.try1, s.try2, "--stage", "detect",
                       "--frames")
    assert code == 0
    lines = out.splitlines()
    with localckpt.open(where) as store:
        short = store.short_ids([s.try1, s.try2])
    assert lines[0].startswith(f"frame diff {short[s.try1]} -> {short[s.try2]}, stage detect")
    body = [ln.split() for ln in lines[1:-1]]
    assert [int(b[1]) for b in body] == sorted(CHANGED)
    assert lines[1:-1] == [
        "  frame  2  ~1 moved", "  frame  5  +1", "  frame  7  ~1 relabelled",
        "  frame  9  ~1 rescored", "  frame 11  -1"]
    assert lines[-1] == ("5 of 12 frames changed (0 only in A, 0 only in B, 0 values "
                         "changed): +1 added, -1 removed, ~1 moved, ~1 relabelled, "
                         "~1 rescored")


def test_diff_frames_of_a_try_against_ground_truth_in_another_stage(
        tmp_path: Path, capsys: Any) -> None:
    """A try's detect against an import's labels: `diff --frames` said it needed
    --stage, and --stage detect that the truth has no stage detect."""
    from websample import ball_boxes

    where = str(tmp_path / "s")
    with localckpt.open(where, create=True) as store:
        s = build(store, frames=6, tag=None)
        truth = {"frames": {str(q): {"detections": [
            {"box": b["box"], "label": b["label"]}  # no scores, as a labelling tool's
            for b in ball_boxes(q)[: 2 if q == 3 else 3]]} for q in range(6)}}
        gt = store.save_stage_output(s.timeline, None, "labels", truth)
        fd = store.frame_diff(s.try1, gt, "detect", stage_b="labels")
        assert fd.changed == (3,) and len(fd.frames[3].removed) == 1
        assert (fd.stage, fd.stage_b) == ("detect", "labels")
        assert not fd.frames[3].rescored  # truth has no scores: nothing was rescored
        with pytest.raises(localckpt.errors.InvalidInputError, match="moved_iou must be"):
            store.frame_diff(s.try1, gt, "detect", stage_b="labels", moved_iou=True)
        short = store.short_ids([s.try1, gt])
    code, out, _ = run(capsys, "--store", where, "diff", s.try1, gt, "--frames")
    assert code == 0  # the stage each added, when neither has the other's
    assert out.splitlines()[0].startswith(
        f"frame diff {short[s.try1]} -> {short[gt]}, stage detect -> labels")
    assert out.splitlines()[1:] == [
        "  frame 3  -1", "1 of 6 frames changed (0 only in A, 0 only in B, 0 values "
        "changed): +0 added, -1 removed, ~0 moved, ~0 relabelled, ~0 rescored"]
    code, out, _ = run(capsys, "--store", where, "diff", s.try1, gt, "--stage-b", "labels",
                       "--json")
    assert code == 0 and json.loads(out)["stage_b"] == "labels"
    code, _, err = run(capsys, "--store", where, "diff", s.try1, gt, "--stage", "detect")
    assert code == 1 and "has no stage 'detect' (it has: labels); name one with --stage-b" \
        in err


def test_diff_frames_json_and_the_stage_that_differs(made: Any, capsys: Any) -> None:
    where, s = made
    code, out, _ = run(capsys, "--store", where, "diff", s.try1, s.try2, "--frames", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["stage"] == "detect" and data["changed"] == sorted(CHANGED)
    assert data["frames"]["5"]["added"][0]["label"] == "person"
    code, _, err = run(capsys, "--store", where, "diff", s.try1, s.track, "--frames")
    assert code == 1 and "diff --frames needs --stage NAME (no stage that both have differs" in err
    code, _, err = run(capsys, "--store", where, "diff", s.track, s.track, "--stage", "track")
    assert code == 1 and "is not frame-keyed" in err and '{"frames": [' in err
    code, _, err = run(capsys, "--store", where, "diff", s.try1, s.try2, "--stage", "nope")
    assert code == 1 and "has no stage 'nope'" in err


def test_diff_frames_across_timelines_needs_align_time(tmp_path: Path, capsys: Any) -> None:
    """One video ingested at 2 and at 5 fps: frame n is not the same instant in both, so
    the diff refuses, naming both timelines, unless asked to pair frames by time."""
    pytest.importorskip("av")
    from localckpt.testing.videos import write_video

    video, where = tmp_path / "clip.mp4", str(tmp_path / "s")
    write_video(video, 100, size=(64, 48))  # 4 s at 25 fps
    tids = []
    for fps in ("2", "5"):
        code, out, _ = run(capsys, "--store", where, "ingest", str(video), "--fps", fps,
                           "--json")
        assert code == 0
        tids.append(json.loads(out)["timeline_id"])
    with localckpt.open(where) as store:
        tries = [store.save_stage_output(tid, None, "detect", {"frames": [
            {"sequence": m.sequence, "detections": [
                {"box": [0, 0, 10, 10], "label": "ball" if m.timestamp < 2 else "car"}]}
            for m in store.frame_index(tid)]}) for tid in tids]
        shorts = store.short_ids(tids, "timeline")
    code, out, err = run(capsys, "--store", where, "diff", *tries, "--stage", "detect",
                         "--frames")
    assert code == 1 and out == ""
    assert "different timelines" in err and "--align time" in err
    assert shorts[tids[0]] in err and shorts[tids[1]] in err
    assert "align=" not in err  # the CLI's words, not the API's
    code, out, _ = run(capsys, "--store", where, "diff", *tries, "--stage", "detect",
                       "--frames", "--align", "time")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("aligned by time: 8 frame pairs within 0.26 s; 0 of A's and "
                               "12 of B's output frames")
    assert lines[-1].startswith("0 of 8 frames changed")  # paired frames agree
    code, out, _ = run(capsys, "--store", where, "diff", *tries, "--stage", "detect",
                       "--frames", "--align", "time", "--json")
    data = json.loads(out)
    assert data["align"] == "time" and len(data["pairs"]) == 8 and data["pairs"]["2"] == 5
    with pytest.raises(SystemExit) as exit_:  # bad usage, exit 2 (was 1)
        run(capsys, "--store", where, "diff", *tries, "--align", "time")
    assert exit_.value.code == 2 and "diff: error: --align" in capsys.readouterr().err
    # --match-iou without --frames was ignored: a whole-checkpoint diff, exit 0
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "--store", where, "diff", *tries, "--match-iou", "0.3")
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and not out
    assert "diff: error: --match-iou matches boxes frame by frame: it goes with --frames" \
        in err
    code, out, _ = run(capsys, "--store", where, "diff", *tries, "--stage", "detect",
                       "--match-iou", "0.3", "--align", "time")  # --stage gives --frames
    assert code == 0 and "(matched at IoU >= 0.3)" in out
    code, out, err = run(capsys, "--store", where, "diff", *tries, "--stage", "detcet",
                         "--align", "time")
    assert code == 1 and not out  # by the short id tree shows (it gave the full id)
    with localckpt.open(where) as st:
        short = st.short_id(st.resolve(tries[0]))
    assert f"checkpoint {short} has no stage 'detcet' (it has: " in err
    assert err.rstrip().endswith("; name one with --stage")


def test_show_stage_prints_the_whole_output(made: Any, capsys: Any) -> None:
    where, s = made
    code, out, _ = run(capsys, "--store", where, "show", s.try3, "--stage", "detect")
    assert code == 0 and len(out) > 2000 and "..." not in out
    assert json.loads(out)["note"] == SCRIPT
    code, out, _ = run(capsys, "--store", where, "show", s.try3, "--stage", "detect", "--json")
    assert code == 0 and json.loads(out)["note"] == SCRIPT and out.count("\n") == 1


def _serve(where: str, *extra: str) -> subprocess.Popen[str]:
    """serve as started from a terminal, where Ctrl-C reaches it: SIGINT as default,
    whatever this run inherited (a background job of a script ignores it, and Python
    then leaves it ignored: the test's Ctrl-C would not stop the server)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "localckpt.cli", "--store", where, "serve", "--port", "0",
         *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_serve_says_it_is_read_only_on_loopback_and_stops_on_ctrl_c(made: Any) -> None:
    where, s = made
    proc = _serve(where, "--json")
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["read_only"] is True and info["loopback"] is True
        assert info["host"] == "127.0.0.1" and info["url"].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(info["url"] + "api/timelines", timeout=30) as resp:
            assert [t["id"] for t in json.load(resp)["timelines"]] == [s.timeline]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc = _serve(where)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "read-only at http://127.0.0.1:" in first
        assert proc.stdout.readline().startswith("loopback only: other machines cannot connect")
        with urllib.request.urlopen(first.split(" at ", 1)[1].split()[0] + "api/timelines",
                                    timeout=30) as resp:  # serving: no longer starting
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)  # docker stop, systemd: a clean stop too
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None and "warning" not in proc.stderr.read()


def test_serve_warns_when_bound_beyond_loopback(made: Any) -> None:
    where, _ = made
    proc = _serve(where, "--host", "0.0.0.0")
    try:
        assert proc.stdout is not None
        assert "read-only at http://0.0.0.0:" in proc.stdout.readline()
        assert "reachable from other machines" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "warning: --host 0.0.0.0 lets anyone who can reach this machine" in err
    assert "no authentication" in err


def test_serve_on_a_busy_port_is_a_clear_error(made: Any, capsys: Any, tmp_path: Path) -> None:
    import socket

    where, _ = made
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "--store", where, "serve", "--port", str(port))
    assert code == 1 and f"cannot listen on 127.0.0.1 port {port}" in err
    assert "choose another --port" in err
