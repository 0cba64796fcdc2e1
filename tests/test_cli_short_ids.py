"""Errors made below the command line (localckpt.similar, labels, evaluate, runs) name
records on the command line by the short ids that ls, tree and runs show, as the rest of
the command line does; the Python API's messages keep the full ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt.cli import main
from localckpt.errors import LocalckptError

DETECT = {"frames": [{"sequence": 0, "detections": [
    {"box": [1, 2, 3, 4], "label": "ball", "score": 0.9}]}]}


@pytest.fixture
def made(tmp_path: Path) -> dict[str, Any]:
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as s:
        frames = [np.full((4, 4, 3), i, np.uint8) for i in range(3)]
        tl = s.create_timeline("clip.mp4", "p", frames, codec="png")  # no source fps
        cid = s.save_stage_output(tl.id, None, "detect", DETECT)
        run = s.begin_run(tl.id, None, "track", version="v1")
        run.abort()
        return {"path": path, "tid": tl.id, "cid": cid, "run": run.id,
                "t": s.short_id(tl.id, "timeline"), "c": s.short_id(cid),
                "r": s.short_id(run.id, "run")}


def _error(capsys: pytest.CaptureFixture[str], made: dict[str, Any], *argv: str) -> str:
    assert main(["--store", made["path"], *argv]) == 1
    err = capsys.readouterr().err
    for full in ("tid", "cid", "run"):  # no full id, whichever record the message names
        assert made[full] not in err, err
    return err


def test_similar_names_the_timeline_by_short_id(made: dict[str, Any],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, made, "similar", made["t"], "99")
    assert f"timeline {made['t']} has no frame with sequence 99 (it has 3, sequences 0 to " \
        "2)" in err
    err = _error(capsys, made, "similar", made["t"], "abcd")  # a hash of the wrong width
    assert f"the frames of timeline {made['t']} have hashes of 16" in err
    with localckpt.open(made["path"]) as s, pytest.raises(LocalckptError) as exc:
        s.similar_frames(made["tid"], 99)
    assert made["tid"] in str(exc.value)  # the API's message keeps the full id


def test_labels_export_names_checkpoint_and_timeline_by_short_id(
        made: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out.json")
    err = _error(capsys, made, "labels", "export", made["c"], out, "--format", "coco",
                 "--stage", "nope")
    assert f"checkpoint {made['c']} has no stage 'nope' (it has: detect); name the stage " \
        "to write with --stage" in err
    err = _error(capsys, made, "labels", "export", made["c"], out, "--format", "coco",
                 "--stage", "detect", "--frames", "source")
    assert f"timeline {made['t']} records no source frame rate; use --frames sequence" in err
    assert not Path(out).exists()


def test_labels_import_names_the_timeline_by_short_id(
        made: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("51,1,1,1,2,2,1,-1,-1,-1\n")  # MOT counts from 1: sequence 50 of 3
    err = _error(capsys, made, "labels", "import", made["t"], str(gt), "--format", "mot")
    assert f"frame 50 is not a frame of timeline {made['t']}, whose last sequence is 2" in err


def test_compare_names_the_try_by_short_id(made: dict[str, Any],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, made, "compare", made["c"], "--against", made["c"], "--stage",
                 "track", "--reference-stage", "detect")  # the try lacks the stage
    assert f"checkpoint {made['c']} has no stage 'track' (it has: detect); name the " \
        "tries' stage with --stage" in err


def test_run_commit_names_the_run_by_short_id(made: dict[str, Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, made, "run", "commit", made["r"])
    assert f"run {made['r']} was aborted" in err


def test_prune_refused_for_a_kept_merge_names_both_by_short_id(
        made: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with localckpt.open(made["path"]) as s:
        ours = s.save_stage_output(made["tid"], made["cid"], "track", {"t": 1})
        theirs = s.save_stage_output(made["tid"], made["cid"], "ocr", {"o": 1})
        merge = s.merge(ours, theirs)
        short = s.short_ids([theirs, merge])
    assert main(["--store", made["path"], "prune", theirs]) == 1
    err = capsys.readouterr().err
    assert f"cannot prune {short[theirs]}: 1 kept merge names a checkpoint of its subtree " \
        f"as merged_from: {short[merge]} (merged from {short[theirs]})" in err
    assert theirs not in err and merge not in err


def test_labels_import_with_a_parent_on_another_timeline_says_so_by_short_id(
        made: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with localckpt.open(made["path"]) as s:
        other = s.create_timeline("b.mp4", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
        before = len(s.checkpoints(other.id))
        t2 = s.short_id(other.id, "timeline")
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,1,1,2,2,1,-1,-1,-1\n")
    err = _error(capsys, made, "labels", "import", t2, str(gt), "--format", "mot",
                 "--parent", made["c"])
    assert f"--parent {made['c']} ({made['c']}) is on timeline {made['t']}, not on {t2}" \
        in err and other.id not in err
    with localckpt.open(made["path"]) as s:
        assert len(s.checkpoints(other.id)) == before


def test_ids_in_text_are_shortened_in_one_read_per_kind(new_store: Any,
                                                        store_kind: str) -> None:
    """short_ids_in_text (verify's problems, a transfer's warnings) asked the catalog one
    find_ids per id and kind (three for an id no store holds) before one short_ids per
    kind: a verify naming hundreds of records made as many round trips to PostgreSQL.
    Now one read per kind and store says which ids are held and their short ids."""
    from engine_reads import counting

    from localckpt.cli.common import short_ids_in_text

    store = new_store()
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(3)]
    tl = store.create_timeline("clip.mp4", "p", frames, codec="png")
    cids = [store.save_stage_output(tl.id, None, "detect", {"n": i}) for i in range(40)]
    run = store.begin_run(tl.id, None, "track", version="v1")
    missing = "01234567-89ab-7def-8123-456789abcdef"
    texts = [f"checkpoint {c} of timeline {tl.id}" for c in cids] + [
        f"run {run.id} has parent {missing}", f"frames/{tl.id}/index.parquet is missing"]
    with counting(store.catalog.engine) as reads:
        got = short_ids_in_text(texts, store)
    assert len(reads.statements) <= 3, reads.statements  # a timeline, checkpoint, run read
    t = store.short_id(tl.id, "timeline")
    assert got == [f"checkpoint {store.short_id(c)} of timeline {t}" for c in cids] + [
        f"run {store.short_id(run.id, 'run')} has parent {missing}",
        f"frames/{tl.id}/index.parquet is missing"]
