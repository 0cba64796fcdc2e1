"""The deciding commands through subprocesses: labels import|export, compare, sql."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt.labels import LabelFileError

ROOT = Path(__file__).resolve().parents[1]


def _dets(k: int) -> list[dict[str, Any]]:
    return [{"box": [10.0 + k, 10.0, 30.0 + k, 40.0], "label": "car", "score": 0.9},
            {"box": [50.0, 10.0, 60.0, 30.0], "label": "person", "score": 0.4}]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("cli-decide")
    with localckpt.open(root / "store", create=True) as s:
        tl = s.create_timeline("clip.mp4", "p", [np.zeros((48, 64, 3), np.uint8)] * 5, fps=2.0)
        good = s.save_stage_output(tl.id, None, "detect", {"frames": [
            {"sequence": n, "detections": _dets(0)} for n in range(5)]},
            is_scenario=True, scenario_label="thr=0.3")
        poor = s.save_stage_output(tl.id, None, "detect", {"frames": [
            {"sequence": n, "detections": _dets(25)[:1]} for n in range(5)]},
            is_scenario=True, scenario_label="thr=0.9")
    gt = {"images": [{"id": n + 1, "file_name": f"frame_{n:06d}.jpg"} for n in range(7)],
          "annotations": [{"id": n + 1, "image_id": n + 1, "category_id": 1,
                           "bbox": [10, 10, 20, 30]} for n in range(7)],
          "categories": [{"id": 1, "name": "car"}]}
    (root / "gt.json").write_text(json.dumps(gt))  # frames 5 and 6: past the timeline
    gt["images"] = gt["images"][:5]
    gt["annotations"] = gt["annotations"][:5]
    (root / "gt5.json").write_text(json.dumps(gt))
    return root, {"timeline": tl.id, "good": good, "poor": poor}


@pytest.fixture
def world(template: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root, ids = template
    shutil.copytree(root / "store", tmp_path / "store")
    for name in ("gt.json", "gt5.json"):
        shutil.copy(root / name, tmp_path / name)
    return tmp_path, ids


def cli(where: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(where / "home"), "PYTHONPATH": str(ROOT),
           "LOCALCKPT_CONFIG": str(where / "none.toml")}
    return subprocess.run([sys.executable, "-m", "localckpt.cli", "--store",
                           str(where / "store"), *argv], env=env, cwd=where,
                          capture_output=True, text=True, timeout=120)


def checkpoints(where: Path) -> int:
    with localckpt.open(where / "store") as s:
        return sum(len(s.checkpoints(t.id)) for t in s.list_timelines())


def test_labels_import_reports_what_it_saved(world: Any) -> None:
    where, ids = world
    r = cli(where, "labels", "import", ids["timeline"][:10], "gt5.json", "--format", "coco",
            "--tag", "gt", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["boxes"], out["frames"], out["unmatched"]) == (5, 5, [])
    assert len(out["short_id"]) >= 8
    assert out["checkpoint_id"].replace("-", "")[-12:].startswith(out["short_id"])
    assert out["checkpoint_short_id"] == out["short_id"]  # X_id has X_short_id beside it
    assert out["timeline_id"].replace("-", "")[-12:].startswith(out["timeline_short_id"])
    with localckpt.open(where / "store") as s:
        assert s.tag_target("gt") == out["checkpoint_id"]
    before = checkpoints(where)
    again = cli(where, "labels", "import", "gt5.json", "--format", "coco", "--tag", "gt")
    assert again.returncode == 1 and "pass --force-tag to move it" in again.stderr
    short = json.loads(r.stdout)["short_id"]  # as `tag` names it (it gave the full id)
    assert f"tag 'gt' already names checkpoint {short}; choose another --tag" in again.stderr
    assert checkpoints(where) == before  # refused before anything was written
    unnamed = cli(where, "labels", "import", "gt5.json", "--format", "coco", "--stage", "")
    assert unnamed.returncode == 2  # bad usage (was 1)
    assert "argument --stage: must name a stage, not ''" in unnamed.stderr
    assert "stage must be a non-empty string" not in unnamed.stderr  # Python's words
    moved = cli(where, "labels", "import", "gt5.json", "--format", "coco", "--tag", "gt",
                "--force-tag", "--json")
    assert moved.returncode == 0, moved.stderr
    with localckpt.open(where / "store") as s:
        assert s.tag_target("gt") == json.loads(moved.stdout)["checkpoint_id"]


def test_labels_text_output_names_the_checkpoint_by_its_short_id(world: Any) -> None:
    """The text output named the new checkpoint by its full id only (ingest and merge give
    the short id that tree shows first) and said nothing of --tag."""
    where, _ = world
    r = cli(where, "labels", "import", "gt5.json", "--format", "coco", "--tag", "gt-text")
    assert r.returncode == 0, r.stderr
    with localckpt.open(where / "store") as s:
        cid = s.resolve("gt-text")
        short = s.short_id(cid)
    assert f"checkpoint {short}  ({cid}), tagged gt-text" in r.stdout
    r = cli(where, "labels", "export", "gt-text", str(where / "out.json"), "--format", "coco")
    assert r.returncode == 0, r.stderr
    assert f"at {short} to " in r.stdout and cid not in r.stdout


def test_labels_import_refuses_frames_past_the_timeline(world: Any) -> None:
    where, ids = world
    before = checkpoints(where)
    r = cli(where, "labels", "import", ids["timeline"], "gt.json", "--format", "coco")
    assert r.returncode == 1
    assert "gt.json, images[5] (id 6): frame 5 is not a frame of timeline" in r.stderr
    # the way out in the command line's terms (it said "with frames source", neither the
    # flag nor the Python argument)
    assert "source video frame numbers are matched by time with --frames source)" in r.stderr
    assert checkpoints(where) == before
    with localckpt.open(where / "store") as s, pytest.raises(LabelFileError) as err:
        s.import_labels(ids["timeline"], where / "gt.json", "coco")
    assert "matched by time with frames='source')" in str(err.value)


def test_labels_import_lists_unmatched_entries(world: Any) -> None:
    where, _ = world
    with localckpt.open(where / "store") as s:
        from localckpt.types import Frame

        tl = s.create_timeline("gappy.mp4", "p", [
            Frame(n, n / 2, 0, "", np.zeros((8, 8, 3), np.uint8)) for n in (0, 1, 4)])
    (where / "gt.txt").write_text("1,1,1,1,2,2,1\n3,1,1,1,2,2,1\n4,1,1,1,2,2,1\n5,1,1,1,2,2,1\n")
    r = cli(where, "labels", "import", tl.id, "gt.txt", "--format", "mot")
    assert r.returncode == 0, r.stderr
    assert "imported 2 boxes on 3 frames" in r.stdout
    assert "2 labelled frames (2 boxes) matched no timeline frame" in r.stdout
    assert "line 2: frame 2, 1 boxes" in r.stdout and "line 3: frame 3" in r.stdout


@pytest.mark.parametrize("fmt,name", [("coco", "out.json"), ("yolo", "out"), ("mot", "out.txt")])
def test_labels_export_writes_each_format(world: Any, fmt: str, name: str) -> None:
    where, ids = world
    r = cli(where, "labels", "export", ids["good"], name, "--format", fmt, "--stage", "detect",
            "--json")
    assert r.returncode == 0, r.stderr
    exported = json.loads(r.stdout)
    assert exported["boxes"] == 10
    assert exported["checkpoint_short_id"] == exported["short_id"]
    assert (where / name).exists()
    again = cli(where, "labels", "import", ids["timeline"], name, "--format", fmt, "--stage",
                f"back_{fmt}")
    assert again.returncode == 0, again.stderr
    assert "imported 10 boxes on 5 frames" in again.stdout


def test_labels_export_refuses_a_missing_directory(world: Any) -> None:
    where, ids = world
    r = cli(where, "labels", "export", ids["good"], "typo-dir/sub/out.json", "--format",
            "coco", "--stage", "detect")
    assert r.returncode == 1
    assert "typo-dir/sub is not a directory" in r.stderr and "Traceback" not in r.stderr
    assert not (where / "typo-dir").exists()


@pytest.mark.parametrize("fmt", ["coco", "mot"])
def test_labels_export_replaces_a_file_only_with_force(world: Any, fmt: str) -> None:
    """Like YOLO's directory, an existing file is not overwritten unless asked."""
    where, ids = world
    before = (where / "gt.json").read_bytes()
    argv = ["labels", "export", ids["good"], "gt.json", "--format", fmt, "--stage", "detect"]
    r = cli(where, *argv)
    assert r.returncode == 1
    assert "gt.json: already exists" in r.stderr and "pass --force to replace it" in r.stderr
    assert "overwrite=" not in r.stderr
    assert (where / "gt.json").read_bytes() == before
    assert not [p for p in where.iterdir() if p.name.startswith(".gt.json")]
    r = cli(where, *argv, "--force")
    assert r.returncode == 0, r.stderr
    assert (where / "gt.json").read_bytes() != before


def test_compare_ranks_tries_against_a_tagged_reference(world: Any) -> None:
    where, ids = world
    assert cli(where, "labels", "import", ids["timeline"], "gt5.json", "--format", "coco",
               "--tag", "gt").returncode == 0
    r = cli(where, "compare", ids["poor"], ids["good"][:13] + ids["good"][13:], "--against",
            "gt", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [row["checkpoint_id"] for row in out["rows"]] == [ids["good"], ids["poor"]]
    assert [row["name"] for row in out["rows"]] == ["thr=0.3", "thr=0.9"]
    assert all(row["short_id"] for row in out["rows"]) and out["reference_short_id"]
    # docs/command-line.md: a field X_id has X_short_id beside it, in every --json
    assert all(row["checkpoint_short_id"] == row["short_id"] for row in out["rows"])
    assert out["reference_stage"] == "labels"
    assert out["rows"][0]["recall"] == 1.0 and out["rows"][1]["tp"] == 0
    text = cli(where, "compare", "--against", "gt").stdout  # every try of the stage
    lines = [x for x in text.splitlines() if x[:1].isdigit()]
    assert [x.split()[2] for x in lines] == ["thr=0.3", "thr=0.9"]
    assert "PRECISION" in text and "AP50" in text
    assert text.startswith("stage 'detect' of 2 tries against ")
    one = cli(where, "compare", ids["good"], "--against", "gt").stdout  # was "of 1 tries"
    assert one.startswith("stage 'detect' of 1 try against ") and ", 5 frames;" in one
    by_fp = json.loads(cli(where, "compare", "--against", "gt", "--metric", "fp",
                           "--per-label", "--json").stdout)
    assert [r["label"] for r in by_fp["rows"][:3]] == [None, "car", "person"]
    fps = [r["fp"] for r in by_fp["rows"] if r["label"] is None]
    assert fps == sorted(fps) == [5, 5]  # fewest false positives first; ties keep order


def test_compare_prints_stored_labels_and_names_with_control_characters_escaped(
        world: Any) -> None:
    """Box labels and scenario labels are stored text (from a bundle or a peer too): the
    compare table wrote them raw but for line breaks, so an escape sequence in one could
    clear the terminal or redraw the ranking it printed."""
    where, ids = world
    evil = "car\x1b[2J\x1b[1;1H\rfake"
    with localckpt.open(where / "store") as s:
        s.save_stage_output(ids["timeline"], None, "detect", {"frames": [
            {"sequence": n, "detections": [{**d, "label": evil} for d in _dets(0)]}
            for n in range(5)]}, is_scenario=True, scenario_label="try\x1b]0;x\x07")
    assert cli(where, "labels", "import", ids["timeline"], "gt5.json", "--format", "coco",
               "--tag", "gt").returncode == 0
    r = cli(where, "compare", "--against", "gt", "--per-label")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\r" not in r.stdout
    assert "car\\x1b[2J" in r.stdout and "try\\x1b]0;x\\x07" in r.stdout


def test_compare_leaves_out_a_try_without_boxes_and_says_so(world: Any) -> None:
    """Every try of the stage (none named): one whose output holds no boxes was an
    error for the whole ranking; it is left out with a note. Named, it is an error."""
    where, ids = world
    with localckpt.open(where / "store") as s:
        odd = s.save_stage_output(ids["timeline"], None, "detect", {"count": 3})
        short = s.short_ids([odd])[odd]
    r = cli(where, "compare", "--against", ids["poor"], "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [row["checkpoint_id"] for row in out["rows"]] == [ids["good"]]
    assert [(x["checkpoint_id"], x["checkpoint_short_id"]) for x in out["skipped"]] == [
        (odd, short)]
    assert "not frame-keyed" in out["skipped"][0]["reason"]
    assert f"note: try {short} left out:" in r.stderr
    assert odd not in r.stderr and f"at {short} is not" in r.stderr  # short, as the try is
    r = cli(where, "compare", ids["good"], odd, "--against", ids["poor"])
    assert r.returncode == 1 and "not frame-keyed" in r.stderr and not r.stdout


def test_compare_errors(world: Any) -> None:
    where, ids = world
    r = cli(where, "compare", ids["good"], "--against", "nope-no-such")
    assert r.returncode == 1 and "no checkpoint" in r.stderr
    r = cli(where, "compare", ids["good"], "--against", ids["poor"], "--iou", "2")
    # bad usage, as argparse's own errors: exit 2 (was 1), under compare's usage
    assert r.returncode == 2 and r.stderr.startswith("usage: localckpt compare")
    assert "compare: error: argument --iou: must be a number in (0, 1], not '2'" in r.stderr
    assert cli(where, "compare", ids["good"]).returncode == 2  # --against is required
    r = cli(where, "compare", "--against", ids["good"], "--stage", "detcet")
    with localckpt.open(where / "store") as s:
        short = s.short_id(ids["timeline"], "timeline")
    assert r.returncode == 1 and not r.stdout  # the timeline by its short id (was the full)
    assert f"timeline {short} has no checkpoint that added stage 'detcet' besides the " \
        "reference (stages there: 'detect'); name the tries' stage with --stage" in r.stderr
    assert cli(where, "compare", "--against", ids["good"], "--metric", "best").returncode == 2


def test_compare_across_timelines_names_both_by_short_id(world: Any) -> None:
    """It gave four full ids for the two short ids or tags typed."""
    where, ids = world
    with localckpt.open(where / "store") as s:
        other = s.create_timeline("w.mp4", "p", [np.zeros((48, 64, 3), np.uint8)] * 2)
        far = s.save_stage_output(other.id, None, "detect", {"frames": []})
        c = s.short_ids([ids["good"], far])
        t = s.short_ids([ids["timeline"], other.id], "timeline")
    r = cli(where, "compare", c[ids["good"]], "--against", c[far])
    assert r.returncode == 1 and not r.stdout
    assert r.stderr == (f"localckpt: error: try {c[ids['good']]} is of timeline "
                        f"{t[ids['timeline']]}, the reference {c[far]} of {t[other.id]}: "
                        "frames of different timelines cannot be compared\n")


def test_a_missing_stage_is_told_by_its_flag(world: Any) -> None:
    """The API's "give reference_stage=" on the command line said nothing a user can
    type; exporting a try under the default --stage labels did not say which flag."""
    where, ids = world
    with localckpt.open(where / "store") as s:
        root = s.get_timeline(ids["timeline"]).root_checkpoint_id
    r = cli(where, "compare", ids["good"], "--against", root)
    assert r.returncode == 1
    assert "has no stage 'labels' (it has: none); name its stage with --reference-stage" \
        in r.stderr and "reference_stage=" not in r.stderr
    r = cli(where, "compare", ids["good"], "--against", ids["poor"], "--stage", "track",
            "--reference-stage", "detect")
    assert r.returncode == 1
    assert "has no stage 'track' (it has: detect); name the tries' stage with --stage" \
        in r.stderr
    r = cli(where, "labels", "export", ids["good"], "out.json", "--format", "coco",
            "--stage", "track")
    assert r.returncode == 1 and not (where / "out.json").exists()
    assert "has no stage 'track' (it has: detect); name the stage to write with --stage" \
        in r.stderr
    r = cli(where, "labels", "export", root, "out.json", "--format", "coco")
    assert r.returncode == 1 and not (where / "out.json").exists()
    assert "has no stage 'labels' (it has: none)" in r.stderr


def test_labels_export_defaults_to_the_stage_the_checkpoint_added(world: Any) -> None:
    """`labels export TRY FILE` wrote nothing and asked for --stage, where the try's
    own boxes (the stage it added) are what a user exporting it means."""
    where, ids = world
    r = cli(where, "labels", "export", ids["good"], "out.json", "--format", "coco")
    assert r.returncode == 0, r.stderr
    r2 = cli(where, "labels", "export", ids["good"], "same.json", "--format", "coco",
             "--stage", "detect")
    assert r2.returncode == 0, r2.stderr
    written = json.loads((where / "out.json").read_text())
    assert written["annotations"] and written == json.loads((where / "same.json").read_text())
    with localckpt.open(where / "store") as s:  # a stage of no boxes: which --stage to name
        track = s.save_stage_output(ids["timeline"], ids["good"], "track", {"tracks": [[0]]})
        short = s.short_id(track)
    r = cli(where, "labels", "export", track, "track.json", "--format", "coco")
    assert r.returncode == 1 and not (where / "track.json").exists()
    assert "is not frame-keyed" in r.stderr and (
        f"--stage defaulted to 'track', the stage {short} added; name the stage to write "
        "with --stage (it has: detect, track)") in r.stderr, r.stderr


def test_compare_names_labels_no_box_has(world: Any) -> None:
    """A label asked that neither side has is a typo more often than not: said, not
    shown as a row of dashes."""
    where, ids = world
    r = cli(where, "compare", ids["good"], "--against", ids["poor"], "--labels", "cra")
    assert r.returncode == 1 and not r.stdout
    assert "--labels 'cra'" in r.stderr and "spelling" in r.stderr
    r = cli(where, "compare", ids["good"], "--against", ids["poor"], "--labels", "car,cra",
            "--json")
    assert r.returncode == 0 and "label 'cra'" in r.stderr
    assert json.loads(r.stdout)["labels"] == ["car", "cra"]
    for empty in ("", ","):  # was a table of dashes, every try "0 boxes", exit status 0
        r = cli(where, "compare", ids["good"], "--against", ids["poor"], "--labels", empty)
        assert r.returncode == 2 and not r.stdout  # wrong by its form: bad usage
        assert "compare: error: --labels" in r.stderr and "names no label" in r.stderr


def test_sql_prints_tables_json_and_csv(world: Any) -> None:
    where, ids = world
    q = "SELECT scenario_label, count(*) AS n FROM checkpoints GROUP BY ALL ORDER BY ALL"
    as_json = json.loads(cli(where, "sql", q, "--json").stdout)
    assert as_json == [{"scenario_label": "", "n": 1}, {"scenario_label": "thr=0.3", "n": 1},
                       {"scenario_label": "thr=0.9", "n": 1}]
    rows = list(csv.reader(io.StringIO(cli(where, "sql", q, "--csv").stdout)))
    assert rows == [["scenario_label", "n"], ["", "1"], ["thr=0.3", "1"], ["thr=0.9", "1"]]
    text = cli(where, "sql", q).stdout
    assert "scenario_label" in text and "(3 rows)" in text
    counted = json.loads(cli(where, "sql", "SELECT count(*) AS n FROM detections d JOIN "
                             "stage_outputs s ON s.hash = d.hash WHERE s.checkpoint_id = $c",
                             "--param", f"c={ids['good']}", "--json").stdout)
    assert counted == [{"n": 10}]
    created = json.loads(cli(where, "sql", "SELECT created_at FROM timelines", "--json").stdout)
    assert created[0]["created_at"][:2] == "20"


def test_sql_refuses_writes(world: Any) -> None:
    where, _ = world
    before = checkpoints(where)
    r = cli(where, "sql", "DELETE FROM checkpoints")
    assert r.returncode == 1 and "localckpt sql is read-only" in r.stderr
    assert "store.sql" not in r.stderr  # the command's name, not the Python method's
    r = cli(where, "sql", "SELECT 1; SELECT 2")
    assert r.returncode == 1 and "localckpt sql runs one SELECT" in r.stderr
    r = cli(where, "sql", "SELECT * FROM read_csv($p)", "--param", "p=/etc/passwd")
    assert r.returncode == 1 and "localckpt sql may read only the store's tables" in r.stderr
    r = cli(where, "sql", "SELECT 1", "--param", "oops")
    assert r.returncode == 2 and "sql: error: --param takes NAME=VALUE" in r.stderr
    r = cli(where, "sql", "SELECT 1 AS one", "--param", "n=1")
    assert r.returncode == 1 and "it has 0 parameters ($NAME) but 1 --param value" in r.stderr
    r = cli(where, "sql", "SELECT $n AS one", "--param", "n=1", "--param", "nn=2")
    assert r.returncode == 1 and "--param nn: the query has no such $NAME" in r.stderr
    r = cli(where, "sql", "SELECT $n AS one, $m AS two")  # said in DuckDB's own words
    assert r.returncode == 1 and "no --param for $m, $n; give --param NAME=VALUE" in r.stderr
    r = cli(where, "sql", "SELECT $n::INTEGER + 1 AS two", "--param", "n=1", "--json")
    assert json.loads(r.stdout) == [{"two": 2}]  # as the help says: cast the text
    r = cli(where, "sql", "SELECT 1 AS one", "--json", "--csv")  # exit 2 (was 1), as
    # argparse's own errors, and before any store is opened
    assert r.returncode == 2 and not r.stdout and r.stderr.startswith("usage: localckpt sql")
    assert "localckpt sql: error: --json and --csv both given: choose one" in r.stderr
    r = cli(where, "--store", str(where / "nowhere"), "sql", "SELECT 1", "--json", "--csv")
    assert r.returncode == 2 and "choose one" in r.stderr  # not "no store at ..."
    assert checkpoints(where) == before


def _blocks(text: str, lang: str) -> list[str]:
    import re

    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_the_deciding_page_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """docs/deciding.md: its Python blocks in order, then its shell commands."""
    text = (ROOT / "docs" / "deciding.md").read_text()
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for block in _blocks(text, "python"):
        exec(compile(block, "docs/deciding.md", "exec"), namespace)
    namespace["store"].close()
    assert "thr=0.3" in capsys.readouterr().out
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT),
           "LOCALCKPT_CONFIG": str(tmp_path / "none.toml")}
    for block in _blocks(text, "bash"):
        for line in block.strip().splitlines():
            r = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, (line, r.stderr)
            assert r.stdout.strip(), line


def test_the_parser_offers_every_metric_evaluate_ranks_by() -> None:
    from localckpt.cli.decide import METRIC_NAMES
    from localckpt.evaluate import METRICS

    assert tuple(METRICS) == METRIC_NAMES


def test_the_pages_write_labels_usage_as_the_parser_takes_it() -> None:
    """docs/command-line.md listed no `labels export`, and docs/deciding.md wrote
    `labels import TIMELINE PATH` where TIMELINE may be left out (the newest)."""
    import re

    from localckpt.cli import build_parser

    sub = next(a for a in build_parser("labels")._actions if a.dest == "command")
    labels = sub.choices["labels"]  # type: ignore[index]
    actions = next(a for a in labels._actions if a.dest == "labels_command")
    for page in ("command-line.md", "deciding.md"):
        text = " ".join((ROOT / "docs" / page).read_text().split())
        for name, parser in actions.choices.items():  # type: ignore[union-attr]
            usage = " ".join(parser.format_usage().split())
            positional = re.search(r"\] ((?:\[?[A-Z]+\]? ?)+)$", usage)
            assert positional, usage
            assert f"labels {name} {positional.group(1).strip()} " in text, (page, name)


def test_a_long_cell_is_clipped_to_the_same_width_with_either_ellipsis() -> None:
    """A table cell past _CELL characters ends in "…", or in "..." where stdout cannot
    encode it (a C locale printed \\u2026); the cut keeps the column's width."""
    from localckpt.cli.decide import _CELL, _clip

    long = "scenario-" + "x" * _CELL
    assert _clip(long, "…") == long[:_CELL - 1] + "…"
    assert _clip(long, "...") == long[:_CELL - 3] + "..."
    assert {len(_clip(long, e)) for e in ("…", "...")} == {_CELL}
    assert _clip("short\nlabel", "...") == "short label"
