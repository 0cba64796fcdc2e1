"""docs/cli.md: its sh blocks run, in order, in an empty directory, and do what the page
says they do."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cli.md"


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", PAGE.read_text(), re.S)


def test_the_cli_page_runs(tmp_path: Path) -> None:
    pytest.importorskip("av")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
        "PYTHONPATH": str(ROOT),  # this checkout's localckpt, in the console script too
        "HOME": str(tmp_path / "home"),
        "LOCALCKPT_CONFIG": str(tmp_path / "config.toml"),
    }
    script = "\n".join(["set -euo pipefail", *sh_blocks()])
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "tagged " in out and "tags       best" in out  # tag "$T:track", show best
    assert re.search(r"^[0-9a-f]{8,12} [0-9a-f]{8}-[0-9a-f-]{27}$", out, re.M)  # short, full
    # both ingests of the same 3 s say so in ls; the diff of their tries needs --align
    lengths = [line.split()[3] for line in out.splitlines() if "match.mp4" in line
               and re.match(r"^[0-9a-f]{8,12} ", line)]
    assert lengths == ["3.0s", "3.0s"], out
    assert "refused: two timelines" in out and "different timelines" in done.stderr
    assert "--align time" in done.stderr
    assert re.search(r"^aligned by time: 6 frame pairs within", out, re.M)
    assert "refused: final names another checkpoint" in out
    assert (tmp_path / "team-store").is_dir() and (tmp_path / "demo.lckpt").is_file()
    dry = re.search(r"^would remove (.*?):", out, re.M)
    real = re.search(r"^removed (.*?):", out, re.M)
    assert dry and real
    assert dry.group(1) == real.group(1)  # gc frees what it said


def test_every_command_is_on_the_page() -> None:
    from localckpt.cli import build_parser

    text = PAGE.read_text()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = [name for name in sub.choices if f"`{name}" not in text]  # type: ignore[union-attr]
    assert not missing, f"docs/cli.md does not describe: {missing}"


def test_the_command_summary_lists_every_option_of_every_command() -> None:
    """docs/command-line.md's block of commands lacked `export --checkpoint` and push and
    pull's `--remote-*` flags, which `--help` offers: each command's entry (its lines and
    their continuation lines) names every option of that command."""
    from localckpt.cli import build_parser

    text = (ROOT / "docs" / "command-line.md").read_text()
    block = re.search(r"```text\n(.*?)```", text, re.S)
    assert block
    entries: dict[str, str] = {}
    current = ""
    for line in block.group(1).splitlines():
        words = line.split("#", 1)[0].split()
        if line.startswith("localckpt "):
            names = [w for w in words[1:] if re.fullmatch(r"[a-z]+", w)][:1]
            command = names[0] if names else ""
            rest = words[words.index(command) + 1:] if command else []
            if command in {"remote", "run", "memo", "labels"} and rest:
                command = f"{command} {rest[0].split('|')[0]}"
            current = command
            for part in line.split(";")[1:]:  # `tag ...; localckpt untag NAME; ...`
                other = part.split()[1:2]
                if other:
                    entries[other[0]] = entries.get(other[0], "") + part
        entries[current] = entries.get(current, "") + " " + line.split("#", 1)[0]
    root = build_parser()
    commands = next(a for a in root._actions if a.dest == "command").choices
    missing: list[str] = []
    for name, parser in commands.items():  # type: ignore[union-attr]
        groups = [a for a in parser._actions
                  if a.dest.endswith("_command") or a.dest == "action"]  # remote add, ...
        subparsers = (
            {f"{name} {sub}": p for sub, p in groups[0].choices.items()} if groups
            else {name: parser}
        )
        for full, sub_parser in subparsers.items():
            entry = entries.get(full, "") + entries.get(full.split()[0], "")
            for action in sub_parser._actions:
                if action.help == argparse.SUPPRESS:  # an old spelling kept working
                    continue
                missing += [f"{full} {flag}" for flag in action.option_strings
                            if flag.startswith("--") and flag not in ("--help", "--json")
                            and not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", entry)]
    assert not missing, missing


def test_the_summary_spells_each_option_value_as_help_does() -> None:
    """`compare --help` said `--stage STAGE` and `labels import --help` `--stage STAGE`
    while the summary and the other commands say `--stage NAME`: where the summary gives a
    capitalised value word after an option, that command's `--help` shows the same word."""
    from localckpt.cli import build_parser

    text = (ROOT / "docs" / "command-line.md").read_text()
    block = re.search(r"```text\n(.*?)```", text, re.S)
    assert block
    root = build_parser()
    commands = next(a for a in root._actions if a.dest == "command").choices
    wrong: list[str] = []
    for line in block.group(1).splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or words[0] != "localckpt" or words[1] not in commands:  # type: ignore[operator]
            continue
        parser = commands[words[1]]  # type: ignore[index]
        groups = [a for a in parser._actions if a.dest.endswith("_command") or a.dest == "action"]
        if groups and len(words) > 2:
            parser = groups[0].choices.get(words[2].split("|")[0], parser)  # type: ignore[union-attr]
        shown = {flag: (a.metavar or a.dest.upper()) for a in parser._actions
                 for flag in a.option_strings if a.nargs != 0 and not a.choices}
        for flag, value in re.findall(r"(--[a-z-]+) ([A-Z][A-Z_,=]*)\b", line):
            if flag in shown and shown[flag] != value:
                wrong.append(f"{' '.join(words[1:3])} {flag}: summary {value}, help {shown[flag]}")
    assert not wrong, wrong
