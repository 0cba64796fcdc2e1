"""Hostile command lines: every localckpt command, with hostile values in every slot.

The commands and their arguments are read from the parser itself (so new commands and
flags are fuzzed too); hypothesis fills positionals and options with references that
name real things or with hostile text (empty, 300 characters, a lone surrogate as a
non-UTF-8 argv gives, newlines, huge or non-finite numbers, JSON nested 5,000 deep,
paths to the root or a device). Output goes to a strict UTF-8 stream, as on a terminal.
Every run must exit 0, 1 (a localckpt error, said on stderr) or 2 (argparse), never
with a traceback; answer within its time limit; and leave the store as it was when it
fails. ``serve`` is left out: it serves until stopped (its cases are the web tests').
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import Hang, short, snapshot, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import localckpt
from localckpt.cli.main import build_parser, main

LIMIT = 30.0
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SKIP = {"serve"}

HOSTILE_TEXT = [
    "", " ", "-", "--", "-x", "/", ".", "..", "../../etc", "x" * 300, "\udcff", "\ud800",
    "a\nb", "\x1b[31mred", "-1", "0", "1e309", "nan", "inf", "-inf", "9" * 5000, "1" * 30,
    "1000000000", "65536",
    "{", '{"a": 1}', "[" * 5000 + "]" * 5000, '{"a": ' * 5000 + "1" + "}" * 5000,
    '{"endpoint_url": "http://AKIA:Secr3t@minio"}', "/dev/zero", "memory://",
    "s3://bucket/x", "nosuch://x", "postgresql://u:pw@h/db", "best", "detect", "x:y",
]


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))
            return
    yield prefix, parser


COMMANDS = {" ".join(name): p for name, p in _commands(build_parser())
            if name[0] not in SKIP}


class CliWorld:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.path = str(tmp / "store")
        with localckpt.open(self.path, create=True) as store:
            frames = [np.full((8, 8, 3), i * 40, np.uint8) for i in range(3)]
            tl = store.create_timeline("v.mp4", "p", frames, codec="png", workers=1)
            c1 = store.save_stage_output(tl.id, None, "detect", {"frames": {"0": {}}})
            c2 = store.save_stage_output(tl.id, c1, "track", {"t": 1})
            store.tag(c2, "best")
            from localckpt.bundle import export_bundle

            self.bundle = str(tmp / "good.zip")
            export_bundle(store, tl.id, self.bundle)
        self.refs = [tl.id, tl.id[:10], c1, c2[:12], "best", f"{tl.id}:detect"]

    def text(self) -> st.SearchStrategy[str]:
        return st.one_of(
            st.sampled_from(self.refs), st.sampled_from(HOSTILE_TEXT),
            st.sampled_from([self.bundle, str(self.tmp / "out.zip"), str(self.tmp),
                             str(self.tmp / "missing" / "x.zip")]),
            st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8),
        )

    def argv(self, data: st.DataObject, command: str, parser: argparse.ArgumentParser
             ) -> list[str]:
        argv = ["--store", data.draw(st.just(self.path) | self.text(), label="--store")]
        for flag in ("--objects", "--storage-options"):
            if data.draw(st.integers(0, 9), label=f"use {flag}") == 0:
                argv += [flag, data.draw(self.text(), label=flag)]
        argv += command.split()
        for action in parser._actions:
            if action.dest in ("help",):
                continue
            if not action.option_strings:  # a positional
                n = 1 if action.nargs in (None, "?") else data.draw(st.integers(1, 2))
                if action.nargs == "?" and data.draw(st.booleans(), label=f"skip {action.dest}"):
                    continue
                argv += [data.draw(self.text(), label=action.dest) for _ in range(n)]
            elif data.draw(st.booleans(), label=f"use {action.option_strings[0]}"):
                argv.append(action.option_strings[0])
                if action.nargs != 0:
                    argv.append(data.draw(self.text(), label=action.option_strings[0]))
        return argv


def _store_state(path: str) -> Any:
    if not os.path.exists(os.path.join(path, "LOCALCKPT.json")):
        return None
    with localckpt.open(path) as store:
        return snapshot(store)


def _run(world: CliWorld, argv: list[str]) -> None:
    before = _store_state(world.path)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    shown = " ".join(short(a) for a in argv)
    try:
        with time_limit(LIMIT), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            code = main(argv)
    except Hang:
        pytest.fail(f"localckpt {shown} did not finish within {LIMIT} s")
    except SystemExit as exc:  # argparse: usage errors exit 2 (never --help here)
        code = exc.code if isinstance(exc.code, int) else 1
        assert code == 2, f"localckpt {shown} exited {exc.code!r}"
    except Exception as exc:
        _found(f"localckpt {shown} raised {type(exc).__name__}: {short(str(exc))}", exc)
        return
    if code not in (0, 1, 2):
        _found(f"localckpt {shown} exited {code}", None)
    if code != 0 and _store_state(world.path) != before:
        _found(f"localckpt {shown} failed (exit {code}) but changed the store", None)


_COLLECT = os.environ.get("FUZZ_COLLECT")


def _found(message: str, exc: BaseException | None) -> None:
    if _COLLECT is None:
        pytest.fail(message)
    import traceback

    if exc is not None:
        frames = traceback.extract_tb(exc.__traceback__)
        inside = [f for f in frames if "/localckpt/" in f.filename] or frames
        where = f"{inside[-1].filename.split('/wt-trust/')[-1]}:{inside[-1].lineno}"
        message = f"{type(exc).__name__} at {where}: {message}"
    with open(_COLLECT, "a", encoding="utf-8") as fh:
        fh.write(message.replace("\n", " ")[:600] + "\n")


@pytest.fixture
def cli_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliWorld:
    monkeypatch.chdir(tmp_path)  # a relative --store is made here, nowhere else
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LOCALCKPT_CREDENTIALS", str(tmp_path / "credentials.toml"))
    return CliWorld(tmp_path)


#: Commands whose every run does much work (a whole demo store): fewer examples.
SLOW_COMMANDS = {"demo": 3}


def _fuzz(world: CliWorld, command: str, examples: int) -> None:
    parser = COMMANDS[command]
    examples = min(examples, SLOW_COMMANDS.get(command, examples))

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _run(world, world.argv(data, command, parser))

    run()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_hostile_command_lines(command: str, cli_world: CliWorld) -> None:
    _fuzz(cli_world, command, EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_hostile_command_lines_at_length(command: str, cli_world: CliWorld) -> None:
    _fuzz(cli_world, command, 200)


def test_every_command_is_fuzzed() -> None:
    assert {"ls", "import", "export", "remote add", "verify", "init"} <= set(COMMANDS)
