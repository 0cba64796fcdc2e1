"""The catalog on a DuckDB file: one process at a time, said at once; the conformance
suite runs it (tests/test_conformance.py); old ``duckdb://`` store URLs still open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[1]

_SECOND = """
import sys, time
sys.path.insert(0, {root!r})
import localckpt
began = time.monotonic()
try:
    localckpt.open({url!r})
except localckpt.errors.BackendUnavailableError as exc:
    print(round(time.monotonic() - began, 3), exc)
"""


def test_a_second_process_is_refused_at_once_naming_the_file(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path}/catalog.duckdb"
    with localckpt.open(url, create=True) as store:
        tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)])
        out = subprocess.run([sys.executable, "-c", _SECOND.format(root=str(ROOT), url=url)],
                             capture_output=True, text=True, timeout=120)
        seconds, _, message = out.stdout.strip().partition(" ")
        assert message, out.stderr
        assert float(seconds) < 5
        assert str(tmp_path / "catalog.duckdb") in message and "one process" in message
        assert f"in another process (pid {os.getpid()})" in message  # which one to close
        assert store.get_timeline(tl.id) == tl  # the first process goes on
    with localckpt.open(url) as store:  # and once it is closed, another one may open it
        assert [t.id for t in store.list_timelines()] == [tl.id]


def test_a_missing_file_is_not_created_without_create(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no DuckDB catalog"):
        localckpt.open(f"duckdb://{tmp_path}/missing.duckdb")
    assert not (tmp_path / "missing.duckdb").exists()


def test_a_duckdb_url_naming_a_store_directory_opens_it_with_a_warning(tmp_path: Path) -> None:
    with localckpt.open(tmp_path / "store", create=True) as store:
        tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)])
    with pytest.warns(DeprecationWarning, match=f"sqlite://{tmp_path / 'store'}"), \
            localckpt.open(f"duckdb://{tmp_path / 'store'}") as store:
        assert store.get_timeline(tl.id) == tl
    assert not list(tmp_path.glob("**/*.duckdb"))

