"""placefile.place: a temporary file moved to its name, over an existing one or never."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from localckpt import placefile
from localckpt.placefile import place


def _tmp(tmp_path: Path, text: str) -> Path:
    tmp = tmp_path / ".out.tmp"
    tmp.write_text(text)
    return tmp


def test_without_overwrite_an_existing_name_is_kept_and_tmp_left(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("theirs")
    tmp = _tmp(tmp_path, "ours")
    with pytest.raises(FileExistsError):
        place(tmp, target, overwrite=False)
    assert target.read_text() == "theirs" and tmp.exists()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        place(tmp, tmp_path / "dangling", overwrite=False)
    place(tmp, target, overwrite=True)
    assert target.read_text() == "ours" and not tmp.exists()


def test_a_new_name_gets_the_file_and_no_tmp_is_left(tmp_path: Path) -> None:
    tmp = _tmp(tmp_path, "ours")
    place(tmp, tmp_path / "out", overwrite=False)
    assert (tmp_path / "out").read_text() == "ours" and os.listdir(tmp_path) == ["out"]


def test_a_filesystem_without_hard_links_checks_then_replaces(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(placefile.os, "link", no_links)
    tmp = _tmp(tmp_path, "ours")
    (tmp_path / "taken").write_text("theirs")
    with pytest.raises(FileExistsError):
        place(tmp, tmp_path / "taken", overwrite=False)
    place(tmp, tmp_path / "out", overwrite=False)
    assert (tmp_path / "out").read_text() == "ours" and not tmp.exists()
