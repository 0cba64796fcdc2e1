"""Import cost: a CLI command imports only what it uses (issue 9). Measured as which
modules a fresh interpreter loaded, not as time (timings belong in benchmarks/cli_start)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "PIL", "psycopg", "s3fs", "fsspec", "pyarrow", "importlib.metadata")


def _loaded(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("code", [
    "import localckpt",
    "from localckpt.cli.main import build_parser; build_parser()",
])
def test_importing_localckpt_and_the_cli_loads_no_heavy_package(code: str) -> None:
    loaded = _loaded(code)
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_a_local_objects_directory_does_not_import_fsspec(tmp_path: object) -> None:
    loaded = _loaded("from localckpt.objects import Objects\n"
                     f"o = Objects.from_url({str(tmp_path)!r})\n"
                     "assert o.is_local and o.describe()")
    assert "fsspec" not in loaded
