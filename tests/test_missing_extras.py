"""A store or command that needs an extra which is not installed says which one.

`pip install localckpt` brings the embedded store only: psycopg (PostgreSQL), s3fs (with
aiobotocore) and PyAV are extras. Each case runs the CLI in a fresh interpreter where
those modules cannot be imported (``sys.modules[name] = None`` makes ``import name``
raise ImportError, as a missing package does). Before, PostgreSQL and S3 printed a
traceback of ModuleNotFoundError, and `init` with s3:// objects left the store's
directory made.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_BLOCKED = ("psycopg", "psycopg_binary", "s3fs", "aiobotocore", "av")
_RUN = ("import sys\n"
        f"for name in {_BLOCKED!r}:\n"
        "    sys.modules[name] = None\n"
        "from localckpt.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n")


def _cli(tmp_path: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN, *words], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize(("words", "extra"), [
    (("--store", "postgresql://ckpt@127.0.0.1:9/db", "--objects", "s3://bucket/x", "ls"),
     "localckpt[postgres]"),
    (("--store", "postgresql://ckpt@127.0.0.1:9/db", "ls"), "localckpt[postgres]"),
    (("--store", "team", "--objects", "s3://bucket/x", "init"), "localckpt[s3]"),
    (("--store", "duckdb://team.duckdb", "--objects", "s3://bucket/x", "init"),
     "localckpt[s3]"),
    (("ingest", "match.mp4"), "localckpt[video]"),
], ids=["postgres", "postgres-no-objects", "s3-objects", "duckdb-s3-objects", "ingest"])
def test_a_missing_extra_is_named_without_a_traceback(tmp_path: Path, words: tuple[str, ...],
                                                      extra: str) -> None:
    (tmp_path / "match.mp4").write_bytes(b"\0" * 64)
    done = _cli(tmp_path, *words)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("localckpt: error: ") and extra in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["match.mp4"]  # nothing made


def test_the_python_api_raises_the_typed_error(tmp_path: Path) -> None:
    code = ("import sys\n"
            "sys.modules['psycopg'] = None\n"
            "import localckpt\n"
            "try:\n"
            "    localckpt.open('postgresql://ckpt@127.0.0.1:9/db', objects=sys.argv[1])\n"
            "except localckpt.errors.InvalidInputError as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "objects")], text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("InvalidInputError a PostgreSQL store needs psycopg"), \
        done.stdout
