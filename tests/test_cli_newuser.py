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
    for ref, why in (("nope", form), ("a b", form), ("0123456789" * 4, form),
                     ("", "an empty reference names nothing")):
        assert main(["--store", path, "run", action, ref]) == 1
        assert capsys.readouterr().err == \
            f"localckpt: error: no run matches {ref!r} in {path}: {why}; {listing}"
    with localckpt.open(path) as s:
        assert [r.state for r in s.runs()] == ["open"]
