"""Import cost: a CLI command imports only what it uses (issue 9). Measured as which
modules a fresh interpreter loaded, not as time (timings belong in benchmarks/cli_start)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "PIL", "psycopg", "s3fs", "fsspec", "pyarrow", "importlib.metadata")
#: parts of localckpt the everyday commands (ls, tree, show) do without: stage runs, the
#: label readers, and the thread pools of transfers (concurrent.futures and logging)
LATER = ("localckpt.runs", "localckpt.labels", "concurrent.futures", "logging",
         # the other commands' parsers: only the named command's group is built
         "localckpt.cli.decide", "localckpt.cli.transfer", "localckpt.cli.runs")


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


def test_ls_imports_neither_runs_labels_nor_thread_pools(tmp_path: object) -> None:
    loaded = _loaded("import numpy, localckpt\n"
                     f"s = localckpt.open({str(tmp_path)!r} + '/s', create=True)\n"
                     "s.create_timeline('v.mp4', 'p', [numpy.zeros((4, 4, 3), numpy.uint8)])\n"
                     "s.close()\n"
                     "import sys\n"
                     "for m in [m for m in sys.modules if m.startswith(('localckpt', 'logging', "
                     "'concurrent'))]: del sys.modules[m]\n"
                     "from localckpt.cli.main import main\n"
                     f"main(['--store', {str(tmp_path)!r} + '/s', 'ls'])")
    assert sorted(m for m in LATER if m in loaded) == []


@pytest.mark.parametrize("first", ["localckpt.runs", "localckpt.backends.sql.runs",
                                   "localckpt.labels", "localckpt.cli.main"])
def test_any_module_imported_first_then_a_new_store_and_a_run(first: str,
                                                             tmp_path: object) -> None:
    """Stage runs load on first use: no import order may meet a half-made module."""
    _loaded(f"import {first}\n"
            "import numpy, localckpt\n"
            f"s = localckpt.open({str(tmp_path)!r}, create=True)\n"
            "tl = s.create_timeline('v.mp4', 'p', [numpy.zeros((4, 4, 3), numpy.uint8)])\n"
            "r = s.begin_run(tl.id, None, 'd')\n"
            "r.put({0: {'a': 1}})\n"
            "assert s.load_stage_output(r.commit(), 'd') == {'frames': {'0': {'a': 1}}}")


def test_the_command_table_is_what_the_groups_register() -> None:
    import argparse
    import importlib

    from localckpt.cli.main import COMMANDS, GROUPS

    registered = {}
    for group in GROUPS:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"localckpt.cli.{group}").register(sub)
        registered.update(dict.fromkeys(sub.choices, group))
    assert registered == COMMANDS


@pytest.mark.parametrize(("argv", "command"), [
    (["ls"], "ls"), (["--store", "ls", "tree"], "tree"), (["--store=x", "show", "a"], "show"),
    (["--sto", "push", "ls"], "ls"), (["--storage-options", "{}", "gc"], "gc"),
    (["-h"], None), ([], None), (["--", "tree"], "tree")])
def test_the_command_is_found_past_the_options_and_their_values(argv: list[str],
                                                                command: str | None) -> None:
    from localckpt.cli.main import _command_in

    assert _command_in(argv) == command


def test_opening_a_store_without_a_config_file_loads_no_toml_and_no_writer(
        tmp_path: object) -> None:
    """Every process opens a store: the TOML parser loads only for a config file that
    exists, the config writer (tempfile, shutil) and decimal (PostgreSQL values) never,
    nor the queue of the writers' waiter thread (only a contended write starts it)."""
    store = f"{tmp_path}/s"
    _loaded(f"import localckpt; localckpt.open({store!r}, create=True).close()")
    loaded = _loaded("import os\n"
                     f"os.environ['LOCALCKPT_CONFIG'] = {str(tmp_path)!r} + '/none.toml'\n"
                     "import localckpt\n"
                     f"localckpt.open({store!r}).list_timelines()")
    assert sorted(m for m in ("tomllib", "tomli_w", "tempfile", "decimal", "queue")
                  if m in loaded) == []
    with_config = _loaded("import os\n"
                          f"open({str(tmp_path)!r} + '/c.toml', 'w').write('[store]\\n')\n"
                          f"os.environ['LOCALCKPT_CONFIG'] = {str(tmp_path)!r} + '/c.toml'\n"
                          "import localckpt\n"
                          f"localckpt.open({store!r}).list_timelines()")
    assert "tomllib" in with_config
