"""The command line through subprocesses, for every command, from one table.

Each row of COMMANDS is one command line (a template whose ``{names}`` come from the
populated store below) and what it does; every test runs over every row:

- a missing store: exit 1 naming it, nothing created (commands that create: exit 0 and a
  store; commands that open no store: exit 0 and nothing created);
- ``--json``: exit 0 and output that parses, checked by the row;
- references (rows with ``ref``): a unique prefix works as the full id, an ambiguous one
  is exit 1 listing the candidates, an unknown one exit 1; nothing written either way;
- bad usage: exit 2.

Adding a command is adding a row.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import localckpt
from localckpt.bundle import export_bundle, import_bundle
from localckpt.errors import InvalidInputError
from localckpt.testing.videos import write_video

Check = Callable[[Any, dict[str, str]], bool]
ROOT = Path(__file__).resolve().parents[1]
DETECT = {"frames": [{"sequence": 0, "detections": [
    {"box": [1, 2, 3, 4], "label": "ball", "score": 0.9}]}]}


@attrs.frozen
class Row:
    """One command. argv: a template ({timeline}, {leaf}, {ours}, {theirs}, {tmp},
    {other_store}, {bundle}, {video}); ref: the placeholder holding the id a prefix may replace;
    creates: a missing store is created; store: False for commands that open none."""

    argv: str
    check: Check
    ref: str | None = None
    creates: bool = False
    store: bool = True

    @property
    def id(self) -> str:
        return " ".join(w for w in self.argv.split() if not w.startswith("{"))


COMMANDS = [
    Row("ls", lambda j, c: [t["id"] for t in j] == [c["timeline"], c["timeline2"]]),
    Row("tree {timeline}", lambda j, c: c["leaf"] in {x["id"] for x in j}, ref="timeline"),
    Row("log {ours}", lambda j, c: [x["id"] for x in j] == [c["ours"], c["leaf"],
                                                           c["root_checkpoint"]],
        ref="ours"),
    Row("show {leaf}", lambda j, c: j["id"] == c["leaf"] and "detect" in j["stage_outputs"],
        ref="leaf"),
    Row("show {leaf} --stage detect", lambda j, c: j == DETECT, ref="leaf"),
    Row("show {leaf} --stage detect --frame 0", lambda j, c: j == DETECT["frames"][0],
        ref="leaf"),
    Row("diff {ours} {theirs}", lambda j, c: j["stages_added"] == ["ocr"], ref="ours"),
    Row("diff {ours} {theirs} --frames --stage detect", lambda j, c: "summary" in j, ref="ours"),
    Row("ingest {video} --fps 5", lambda j, c: j["frames"] == 5, creates=True),
    Row("similar {timeline} 0", lambda j, c: isinstance(j, list) and j, ref="timeline"),
    Row("merge {ours} {theirs} --strategy theirs",
        lambda j, c: j["outcome"] == "merged" and j["ours"] == c["ours"], ref="ours"),
    Row("push {other_store} {timeline}", lambda j, c: j["timelines"] == 1, ref="timeline"),
    Row("pull {other_store}", lambda j, c: j["timelines"] == 1, creates=True),
    Row("export {timeline} {tmp}/out.lckpt", lambda j, c: j["timelines"] == 1, ref="timeline"),
    Row("import {bundle}", lambda j, c: j["timelines"] == 1, creates=True),
    Row("init", lambda j, c: j["store"].endswith("store"), creates=True),
    Row("gc --dry-run", lambda j, c: "orphan_timelines" in j),
    Row("verify", lambda j, c: j["ok"] is True and j["timelines"] == 2),
    Row("verify {timeline}", lambda j, c: j["ok"] is True and j["timelines"] == 1,
        ref="timeline"),
    Row("tag {ours} best", lambda j, c: (j["name"], j["checkpoint_id"]) == ("best", c["ours"]),
        ref="ours"),
    Row("untag first", lambda j, c: j["checkpoint_id"] == c["leaf"]),
    Row("tags", lambda j, c: [(t["name"], t["checkpoint_id"]) for t in j] == [
        ("first", c["leaf"])]),
    Row("prune {theirs} --dry-run", lambda j, c: j["checkpoints"] == [c["theirs"]]
        and j["dry_run"], ref="theirs"),
    Row("prune {theirs}", lambda j, c: j["checkpoints"] == [c["theirs"]], ref="theirs"),
    Row("retain {timeline} --keep-last 1", lambda j, c: j["checkpoints"] == [c["ours"]],
        ref="timeline"),
    Row("rm {timeline2}", lambda j, c: j["timelines"] == [c["timeline2"]], ref="timeline2"),
    Row("demo --frames 3", lambda j, c: j["frames"] == 3, creates=True),
    Row("remote add r2 {tmp}/r2", lambda j, c: j["name"] == "r2", store=False),
    Row("remote list", lambda j, c: [r["name"] for r in j] == ["prod"], store=False),
    Row("remote remove prod", lambda j, c: j["name"] == "prod", store=False),
]
IDS = [r.id for r in COMMANDS]


def run(*argv: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localckpt.cli", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _frames() -> list[np.ndarray]:
    return [np.full((4, 4, 3), i, np.uint8) for i in range(3)]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A store with two timelines, ours/theirs forked from leaf; another store with a
    third timeline (for pull) and a bundle of it (for import)."""
    root = tmp_path_factory.mktemp("cli-template")
    ctx: dict[str, str] = {}
    with localckpt.open(root / "store", create=True) as s:
        tl = s.create_timeline("clip.mp4", "p", _frames(), codec="png")
        tl2 = s.create_timeline("other.mp4", "p", _frames(), codec="png")
        leaf = s.save_stage_output(tl.id, None, "detect", DETECT, {"thr": 0.5})
        ours = s.save_stage_output(tl.id, leaf, "track", {"t": 1}, {"thr": 0.6})
        theirs = s.save_stage_output(tl.id, leaf, "ocr", {"o": 1}, {"thr": 0.7})
        s.tag(leaf, "first")
        ctx.update(timeline=tl.id, timeline2=tl2.id, leaf=leaf, ours=ours, theirs=theirs,
                   root_checkpoint=tl.root_checkpoint_id)
    with localckpt.open(root / "other", create=True) as other:
        tl3 = other.create_timeline("third.mp4", "p", _frames(), codec="png")
        export_bundle(other, tl3.id, root / "tl3.lckpt")
        ctx["timeline3"] = tl3.id
    write_video(root / "clip.mp4", frames=10, fps=10.0, size=(64, 48))
    return root, ctx


@pytest.fixture
def world(template: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[dict[str, str], dict]:
    """A fresh copy of the template, a config file with one remote, and a clean env."""
    root, ids = template
    for name in ("store", "other"):
        shutil.copytree(root / name, tmp_path / name)
    shutil.copy(root / "tl3.lckpt", tmp_path / "tl3.lckpt")
    shutil.copy(root / "clip.mp4", tmp_path / "clip.mp4")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"),
           "LOCALCKPT_CONFIG": str(tmp_path / "config.toml"),
           "PYTHONPATH": str(ROOT)}  # this checkout's localckpt, not an installed one
    (tmp_path / "config.toml").write_text(f'[remotes.prod]\nurl = "{tmp_path / "other"}"\n')
    ctx = {**ids, "tmp": str(tmp_path), "store": str(tmp_path / "store"),
           "other_store": str(tmp_path / "other"), "bundle": str(tmp_path / "tl3.lckpt"),
           "video": str(tmp_path / "clip.mp4")}
    return ctx, env


def _argv(row: Row, ctx: dict[str, str], **override: str) -> list[str]:
    return shlex.split(row.argv.format(**{**ctx, **override}))


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize("row", COMMANDS, ids=IDS)
def test_json_output_parses(row: Row, world: tuple[dict[str, str], dict]) -> None:
    ctx, env = world
    result = run("--store", ctx["store"], *_argv(row, ctx), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert row.check(json.loads(result.stdout), ctx), result.stdout


@pytest.mark.parametrize("row", COMMANDS, ids=IDS)
def test_a_missing_store(row: Row, world: tuple[dict[str, str], dict], tmp_path: Path) -> None:
    ctx, env = world
    missing = tmp_path / "typo-dir"
    result = run("--store", str(missing), *_argv(row, ctx), env=env, cwd=tmp_path)
    if row.creates:
        assert result.returncode == 0, result.stderr
        assert (missing / "LOCALCKPT.json").exists()
        return
    if not row.store:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1, result.stderr
        assert f"no localckpt store at {missing}" in result.stderr
        assert "init" in result.stderr and "Traceback" not in result.stderr
    assert not missing.exists()
    assert not (tmp_path / ".localckpt").exists()


#: Creating commands that read an input first (a source store, a file).
INPUTS = ("{other_store}", "{bundle}", "{video}")
WITH_INPUT = [r for r in COMMANDS if r.creates and any(i in r.argv for i in INPUTS)]


@pytest.mark.parametrize("row", WITH_INPUT, ids=[r.id for r in WITH_INPUT])
def test_a_creating_command_whose_input_is_missing_creates_nothing(
    row: Row, world: tuple[dict[str, str], dict], tmp_path: Path
) -> None:
    ctx, env = world
    missing = tmp_path / "new-store"
    bad = {"other_store": str(tmp_path / "no-such-source"),
           "bundle": str(tmp_path / "no-such.lckpt"), "video": str(tmp_path / "no-such.mp4")}
    result = run("--store", str(missing), *_argv(row, ctx, **bad), env=env)
    assert result.returncode == 1
    assert not missing.exists() and not Path(bad["other_store"]).exists()


def test_a_missing_pull_source_is_named_as_pulls_remote(
        world: tuple[dict[str, str], dict], tmp_path: Path) -> None:
    """`pull ./typo` said to create the store with `--store ./typo init` or to "check the
    --store path": --store names the store pulled into, not the source."""
    ctx, env = world
    result = run("--store", ctx["store"], "pull", str(tmp_path / "typo"), env=env)
    assert result.returncode == 1
    assert f"nothing to pull: no localckpt store at {tmp_path / 'typo'}" in result.stderr
    assert "pull's REMOTE" in result.stderr and "--store" not in result.stderr
    assert not (tmp_path / "typo").exists()


def test_a_mistyped_remote_of_pull_is_named_whole(
        world: tuple[dict[str, str], dict], tmp_path: Path) -> None:
    """`pull prdo` cut its own message at the ";" inside "(remotes: prod; see ...)",
    leaving a parenthesis open and the remote list half said; push and pull now also
    name the remote it most likely meant."""
    ctx, env = world
    for command in ("pull", "push"):
        result = run("--store", ctx["store"], command, "prdo", env=env, cwd=tmp_path)
        assert result.returncode == 1 and not result.stdout
        err = result.stderr.strip()
        assert "no remote named 'prdo' (did you mean 'prod'? remotes: prod; see " \
               "`localckpt remote list`), and no directory 'prdo' here" in err
        assert err.count("(") == err.count(")")
        assert err.startswith("localckpt: error: nothing to pull: ") == (command == "pull")
        assert ("./prdo" in err) == (command == "push")  # pull makes no store of it
        assert not (tmp_path / "prdo").exists()


def test_an_id_of_the_other_kind_is_said_to_be_one(
        world: tuple[dict[str, str], dict]) -> None:
    """`ls` shows timeline ids first; `show <that id>` said only "no checkpoint matches",
    as if the id were mistyped. It now says what the id is and where to go from it."""
    ctx, env = world
    store = ["--store", ctx["store"]]
    with localckpt.open(ctx["store"]) as s:
        tl_short = s.short_id(ctx["timeline"], "timeline")
        root_short = s.short_id(ctx["root_checkpoint"])
        leaf_short = s.short_id(ctx["leaf"])
    for ref in (tl_short, ctx["timeline"]):
        r = run(*store, "show", ref, env=env)
        assert r.returncode == 1 and not r.stdout
        # the store named: a bare `localckpt tree` would list the default store's
        assert f"'{ref}' is a timeline ({tl_short}), not a checkpoint; `localckpt --store " \
               f"{ctx['store']} tree {tl_short}` lists its checkpoints (its root is " \
               f"{root_short}" in r.stderr
    r = run(*store, "tree", leaf_short, env=env)
    assert r.returncode == 1 and not r.stdout
    assert f"'{leaf_short}' is a checkpoint ({leaf_short}, of timeline {tl_short}), not a " \
           f"timeline; `localckpt --store {ctx['store']} ls` lists the timelines" in r.stderr
    r = run(*store, "show", "nosuchref", env=env)  # neither: as before
    assert r.returncode == 1 and "no checkpoint matches 'nosuchref'" in r.stderr


def test_the_tree_is_drawn_in_ascii_where_the_output_cannot_encode_boxes(
        world: tuple[dict[str, str], dict]) -> None:
    """In a C or Latin-1 terminal (PYTHONIOENCODING=ascii here) the tree's box-drawing
    characters came out as \\u2514\\u2500\\u2500 escapes; they are drawn as
    `tree --charset=ascii` draws them there."""
    ctx, env = world
    store = ("--store", ctx["store"])
    drawn = {code: run(*store, "tree", ctx["timeline"], env={**env, "PYTHONIOENCODING": code})
             for code in ("ascii", "utf-8")}
    assert all(r.returncode == 0 for r in drawn.values())
    plain, boxes = drawn["ascii"].stdout, drawn["utf-8"].stdout
    assert "`-- " in plain and "\\u" not in plain and plain.isascii()
    assert "└── " in boxes
    trans = str.maketrans({"└": "`", "├": "|", "│": "|", "─": "-"})
    assert boxes.translate(trans) == plain  # the same tree, line for line


@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_reader_gone_leaves_the_exit_status_the_commands_own(
        unbuffered: bool, world: tuple[dict[str, str], dict]) -> None:
    """`localckpt verify | head -1` of a damaged store exited 0 when the write met the
    closed pipe (the BrokenPipeError was taken for success), and exited 120 printing
    "Exception ignored ... BrokenPipeError" when the write was left to the flush at exit:
    now the output goes nowhere and the command ends as it would have."""
    ctx, env = world
    env = {**env, **({"PYTHONUNBUFFERED": "1"} if unbuffered else {})}
    shard = next(Path(ctx["store"]).rglob("shard-*.bin"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2:len(data) // 2 + 8] = b"\xff" * 8
    shard.write_bytes(bytes(data))
    for argv, status in ((["verify"], 1), (["verify", "--json"], 1),
                         (["tree", ctx["timeline"]], 0),
                         (["--help"], 0), (["show", "nope-no-such"], 1)):
        proc = subprocess.Popen([sys.executable, "-m", "localckpt.cli", "--store",
                                 ctx["store"], *argv], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before anything is written
        err = proc.stderr.read()
        assert proc.wait(120) == status, (argv, err)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert bool(err) == (argv[0] == "show"), err  # the error still said, on stderr


def test_gc_says_what_the_timelines_it_lists_are(world: tuple[dict[str, str], dict]) -> None:
    """gc's text output listed the timelines whose frames it freed as bare full ids
    under its summary, saying neither what they were nor their short ids."""
    ctx, env = world
    store = ["--store", ctx["store"]]
    with localckpt.open(ctx["store"]) as s:
        short = s.short_id(ctx["timeline2"], "timeline")
    assert run(*store, "rm", ctx["timeline2"], env=env).returncode == 0
    for dry in (["--dry-run"], []):
        result = run(*store, "gc", "--older-than", "0", *dry, env=env)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[1:] == [f"  frames of deleted timeline {short}  ({ctx['timeline2']})"]


def _shortest_unique(ident: str, others: list[str]) -> str:
    for n in range(6, len(ident) + 1):
        if not any(o != ident and o.startswith(ident[:n]) for o in others):
            return ident[:n]
    raise AssertionError(f"no unique prefix for {ident}")


def _common(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _ambiguous(ident: str, others: list[str]) -> tuple[str, str]:
    """The longest prefix (6+) that ident shares with another id, and that id."""
    best = max((o for o in others if o != ident), key=lambda o: len(_common(ident, o)))
    prefix = _common(ident, best)
    assert len(prefix) >= 6, "ids of one run share their time prefix"
    return prefix, best


def _ids_of_kind(store: Path, ref: str, ctx: dict[str, str]) -> list[str]:
    with localckpt.open(store) as s:
        if ref == "timeline":
            return [t.id for t in s.list_timelines()]
        return [c.id for t in s.list_timelines() for c in s.checkpoints(t.id)]


REF_ROWS = [r for r in COMMANDS if r.ref]


@pytest.mark.parametrize("row", REF_ROWS, ids=[r.id for r in REF_ROWS])
def test_references_by_prefix(row: Row, world: tuple[dict[str, str], dict]) -> None:
    ctx, env = world
    assert row.ref is not None
    store = Path(ctx["store"])
    ident = ctx[row.ref]
    others = _ids_of_kind(store, "timeline" if row.ref.startswith("timeline") else "x", ctx)
    before = _tree(store)

    prefix, other = _ambiguous(ident, others)
    result = run("--store", str(store), *_argv(row, ctx, **{row.ref: prefix}), env=env)
    assert result.returncode == 1
    assert "ambiguous" in result.stderr and ident in result.stderr and other in result.stderr
    result = run("--store", str(store), *_argv(row, ctx, **{row.ref: "ffffffffff"}), env=env)
    assert result.returncode == 1 and "matches 'ffffffffff'" in result.stderr
    assert _tree(store) == before  # neither wrote anything

    unique = _shortest_unique(ident, others)
    by_prefix = run("--store", str(store), *_argv(row, ctx, **{row.ref: unique}), "--json",
                    env=env)
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert row.check(json.loads(by_prefix.stdout), ctx)


@pytest.mark.parametrize("row", COMMANDS, ids=IDS)
def test_bad_usage_is_exit_2(row: Row, world: tuple[dict[str, str], dict]) -> None:
    ctx, env = world
    result = run("--store", ctx["store"], *_argv(row, ctx), "--no-such-option", env=env)
    assert result.returncode == 2
    # said with the command's usage (it was the top level's, which names no argument of it)
    words = row.argv.split()
    command = " ".join(words[:2] if words[0] in ("remote", "labels", "run", "memo") else
                       words[:1])
    assert result.stderr.startswith(f"usage: localckpt {command} [-h]"), result.stderr
    assert f"localckpt {command}: error: unrecognized arguments: --no-such-option" \
        in result.stderr
    top = run("--no-such-option", *_argv(row, ctx), env=env)  # before the command: the top's
    assert top.returncode == 2 and top.stderr.startswith("usage: localckpt [-h]")
    assert "localckpt: error: unrecognized arguments: --no-such-option" in top.stderr


def test_a_global_option_after_the_command_says_where_it_goes(
        world: tuple[dict[str, str], dict]) -> None:
    """`localckpt tree --store team` (as `git log -C dir` is written by habit) said only
    "unrecognized arguments: --store"."""
    ctx, env = world
    for argv in (["tree", ctx["timeline"], "--store", ctx["store"]],
                 ["ls", f"--objects={ctx['tmp']}"]):
        result = run(*argv, env=env)
        flag = argv[-1].split("=")[0] if argv[0] == "ls" else "--store"
        assert result.returncode == 2 and not result.stdout
        assert f"({flag} goes before the command: localckpt {flag} ... {argv[0]} ...)" \
            in result.stderr


def test_json_before_the_command_says_where_it_goes(
        world: tuple[dict[str, str], dict]) -> None:
    """`localckpt --json ls` said only "unrecognized arguments: --json", under the top
    level's usage, which shows no --json: every command takes it, after its name."""
    ctx, env = world
    for argv, command in ((["--json", "ls"], "ls"),
                          (["--store", ctx["store"], "--json", "tree"], "tree"),
                          (["--json", "remote", "list"], "remote")):
        result = run(*argv, env=env)
        assert result.returncode == 2 and not result.stdout
        assert "localckpt: error: unrecognized arguments: --json (--json goes after the " \
            f"command: localckpt {command} ... --json)" in result.stderr


def test_import_of_a_store_directory_points_to_pull(
        world: tuple[dict[str, str], dict]) -> None:
    """`localckpt import ./other` (a store, where a bundle was meant) said "the bundle file
    other is a directory, not a regular file; replace it with a regular file": pull copies
    from a store; nothing is created."""
    ctx, env = world
    tmp = Path(ctx["tmp"])
    result = run("--store", str(tmp / "new"), "import", "other", env=env, cwd=tmp)
    assert result.returncode == 1 and not result.stdout
    assert result.stderr == ("localckpt: error: other is a directory, not a bundle file (the "
                             "one file `localckpt export` writes); to copy from a store in a "
                             "directory, pull from it: `localckpt --store "
                             f"{tmp / 'new'} pull ./other`\n")
    assert not (tmp / "new").exists()
    bare = run("import", "other", env=env, cwd=tmp)  # into the default store: no --store
    assert bare.returncode == 1 and bare.stderr.endswith("pull from it: `localckpt pull "
                                                         "./other`\n"), bare.stderr
    with localckpt.open(ctx["store"]) as store, \
            pytest.raises(InvalidInputError, match=r"sync from it: localckpt.sync"):
        import_bundle(store, ctx["other_store"])


@pytest.mark.parametrize("command", ["verify", "tags", "runs"])
def test_an_empty_timeline_is_refused_not_taken_for_every_timeline(
        command: str, world: tuple[dict[str, str], dict]) -> None:
    """`localckpt verify "$T"` with T unset checked (and `tags`, `runs` listed) every
    timeline, exit 0, where tree, push, rm and the rest refuse an empty reference."""
    ctx, env = world
    result = run("--store", ctx["store"], command, "", env=env)
    assert result.returncode == 1 and not result.stdout
    assert "no timeline '' (an empty reference names nothing)" in result.stderr


@pytest.mark.parametrize("command", ["show", "tree"])
def test_a_reference_of_bytes_that_are_not_utf8_names_nothing(
        command: str, world: tuple[dict[str, str], dict]) -> None:
    """An argument of bytes that are not UTF-8 reached the catalog, which said "a value
    given to the SQLite catalog is not valid Unicode ... pass proper text": no word of
    which argument, nor that nothing has such a name."""
    ctx, env = world
    result = run("--store", ctx["store"], command, os.fsdecode(b"\xff\xfe"), env=env)
    kind = "checkpoint" if command == "show" else "timeline"
    assert result.returncode == 1 and not result.stdout
    assert f"the {kind} reference '\\udcff\\udcfe' is not text (bytes that are not " \
        "UTF-8?), so it names nothing" in result.stderr
    assert "SQLite" not in result.stderr


def test_an_unknown_id_says_how_to_list_the_store_it_was_looked_for_in(
        world: tuple[dict[str, str], dict], tmp_path: Path) -> None:
    """`localckpt --store team tree T` with T mistyped said "see `localckpt ls`", which
    lists another store (the default one): the listing names the store that was read."""
    ctx, env = world
    for argv, listing in ((["tree", "nosuchxx"], "ls"), (["show", "nosuchxx"],
                                                         "tree TIMELINE")):
        result = run("--store", ctx["store"], *argv, env=env)
        assert result.returncode == 1 and not result.stdout
        assert result.stderr.endswith(f"; see `localckpt --store {ctx['store']} {listing}`\n")
    shutil.copytree(ctx["store"], tmp_path / ".localckpt")  # the default store: as it was
    result = run("show", "nosuchxx", env=env, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.endswith("; see `localckpt tree "
                                                              "TIMELINE`\n")


def test_merge_again_says_the_earlier_merge_was_returned(
        world: tuple[dict[str, str], dict]) -> None:
    """The second `merge OURS THEIRS` of the same result returns the first merge and
    writes nothing, but said "merged ... : X" as the first did."""
    ctx, env = world
    argv = ("--store", ctx["store"], "merge", ctx["ours"], ctx["theirs"], "--strategy", "ours")
    first = run(*argv, env=env)
    assert first.returncode == 0 and first.stdout.startswith("merged "), first.stderr
    with localckpt.open(ctx["store"]) as s:
        before = len(s.checkpoints(s.get_checkpoint(ctx["ours"]).timeline_id))
        shorts = s.short_ids([ctx["ours"], ctx["theirs"]])
    again = run(*argv, env=env)
    assert again.returncode == 0  # as git's "Already up to date." (it said "already merged")
    assert again.stdout.startswith(f"already up to date: {shorts[ctx['theirs']]} was merged "
                                   f"into {shorts[ctx['ours']]} before, as ")
    assert again.stdout.rstrip().endswith("with the same result; nothing written")
    assert first.stdout.split(": ", 1)[1].split()[0] in again.stdout  # the same checkpoint
    with localckpt.open(ctx["store"]) as s:
        assert len(s.checkpoints(s.get_checkpoint(ctx["ours"]).timeline_id)) == before


def test_export_of_a_checkpoint_of_another_timeline_says_which_it_is_on(
        world: tuple[dict[str, str], dict]) -> None:
    """`export T2 FILE --checkpoint first` (a tag on T) said "no checkpoint '<full id>' in
    timeline <full id> of SQLite catalog <path>"; nothing is written."""
    ctx, env = world
    out = Path(ctx["tmp"]) / "sub.lckpt"
    result = run("--store", ctx["store"], "export", ctx["timeline2"], str(out),
                 "--checkpoint", "first", env=env)
    with localckpt.open(ctx["store"]) as s:
        t, t2 = s.short_id(ctx["timeline"], "timeline"), s.short_id(ctx["timeline2"], "timeline")
        leaf = s.short_id(ctx["leaf"])
    assert result.returncode == 1 and not result.stdout and not out.exists()
    assert result.stderr == (f"localckpt: error: --checkpoint first ({leaf}) is on timeline "
                             f"{t}, not on {t2}; export {t} with it, or name a checkpoint of "
                             f"{t2}\n")


def test_merge_across_timelines_names_both_by_short_id(
        world: tuple[dict[str, str], dict]) -> None:
    """It gave four full ids for two short ids typed."""
    ctx, env = world
    with localckpt.open(ctx["store"]) as s:
        root2 = s.get_timeline(ctx["timeline2"]).root_checkpoint_id
        c = s.short_ids([ctx["leaf"], root2])
        t = s.short_ids([ctx["timeline"], ctx["timeline2"]], "timeline")
    result = run("--store", ctx["store"], "merge", c[ctx["leaf"]], c[root2], env=env)
    assert result.returncode == 1 and not result.stdout
    assert result.stderr == (f"localckpt: error: cannot merge checkpoint {c[root2]} (timeline "
                             f"{t[ctx['timeline2']]}) into {c[ctx['leaf']]} (timeline "
                             f"{t[ctx['timeline']]}): merges stay inside one timeline's "
                             "tree\n")


@pytest.mark.parametrize("argv", [[], ["nosuch"], ["show"], ["merge", "a"],
                                  ["merge", "a", "b", "--strategy", "nope"], ["remote"]])
def test_usage_errors(argv: list[str], world: tuple[dict[str, str], dict]) -> None:
    _, env = world
    assert run(*argv, env=env).returncode == 2


def test_version_prints_the_installed_version(world: tuple[dict[str, str], dict]) -> None:
    """`localckpt --version` as other tools answer it: the version the package metadata
    holds, exit 0, no store needed or created."""
    from importlib.metadata import version

    _, env = world
    result = run("--version", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"localckpt {version('localckpt')}"
    assert localckpt.__version__ == version("localckpt")


def test_python_dash_m_localckpt_is_the_command(world: tuple[dict[str, str], dict]) -> None:
    """`python -m localckpt` (as `python -m pip`) runs the command line; it was "No module
    named localckpt.__main__", exit 1."""
    ctx, env = world
    for argv in (["--version"], ["--store", ctx["store"], "ls", "--json"]):
        via_m = subprocess.run([sys.executable, "-m", "localckpt", *argv], env=env,
                               capture_output=True, text=True, timeout=120)
        assert via_m.returncode == 0, via_m.stderr
        assert via_m.stdout == run(*argv, env=env).stdout
    usage = subprocess.run([sys.executable, "-m", "localckpt"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: localckpt ")


def test_a_missing_catalog_is_told_in_the_command_lines_terms(
        world: tuple[dict[str, str], dict], tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """`--store duckdb:///x ls` and `--store postgresql://.../?schema=new ls` said "open it
    with create=True", a Python keyword, to a shell user; they name `init` and --store."""
    _, env = world
    duck = tmp_path / "no.duckdb"
    result = run("--store", f"duckdb://{duck}", "ls", env=env)
    assert result.returncode == 1 and "create=True" not in result.stderr
    assert f"`localckpt --store duckdb://{duck} init`" in result.stderr
    assert not duck.exists()
    pg_dsn = request.getfixturevalue("pg_dsn")
    result = run("--store", f"{pg_dsn}?schema=t_{os.getpid()}_missing", "--objects",
                 str(tmp_path / "objects"), "ls", env=env)
    assert result.returncode == 1 and "create=True" not in result.stderr
    assert "no localckpt catalog at PostgreSQL" in result.stderr
    assert "`localckpt --store URL init`" in result.stderr


def test_errors_speak_cli_flags(world: tuple[dict[str, str], dict]) -> None:
    ctx, env = world
    store = ["--store", ctx["store"]]
    conflict = run(*store, "merge", ctx["ours"], ctx["theirs"], env=env)  # both changed thr
    assert conflict.returncode == 1
    assert "--strategy ours" in conflict.stderr and "strategy=" not in conflict.stderr
    with localckpt.open(ctx["store"]) as s:  # by the short ids tree shows (were full ids)
        shorts = s.short_ids([ctx["ours"], ctx["theirs"]])
    assert conflict.stderr.startswith(f"localckpt: error: merging {shorts[ctx['theirs']]} "
                                      f"into {shorts[ctx['ours']]}: ")
    bad_options = run(*store, "--storage-options", "{nope", "ls", env=env)
    # bad usage (exit 2, was 1), said once, not "is not a JSON object: the ... value is
    # not valid JSON"
    assert bad_options.returncode == 2
    assert "localckpt: error: argument --storage-options: the value is not valid JSON: " \
        in bad_options.stderr
    assert bad_options.stderr.count("JSON") == 2  # the usage's [--storage-options JSON]
    listed = run(*store, "--storage-options", "[1]", "ls", env=env)  # said only "must be"
    assert listed.returncode == 2 and "argument --storage-options: must be a JSON object " \
        """of fsspec options (such as '{"endpoint_url": "http://127.0.0.1:9000"}'), not an """ \
        "array" in listed.stderr
    pg = run(*store, "push", "postgresql://u@127.0.0.1:1/db", env=env)
    assert pg.returncode == 1
    assert "--remote-objects" in pg.stderr and "objects=" not in pg.stderr
    secret = run("remote", "add", "x", "/d", "--storage-options", '{"secret": "s"}', env=env)
    assert secret.returncode == 1 and "--storage-options-from" in secret.stderr


def test_show_frame_prints_one_frames_value(world: tuple[dict[str, str], dict]) -> None:
    """What did the detector say on frame 42? `show --stage detect` printed every frame."""
    ctx, env = world
    store = ["--store", ctx["store"]]
    one = run(*store, "show", ctx["leaf"], "--stage", "detect", "--frame", "0", env=env)
    assert one.returncode == 0 and json.loads(one.stdout) == DETECT["frames"][0]
    absent = run(*store, "show", ctx["leaf"], "--stage", "detect", "--frame", "7", env=env)
    assert absent.returncode == 1 and not absent.stdout
    assert "has no value for frame 7 (it has frames 0-0, 1 in all)" in absent.stderr
    root = run(*store, "show", ctx["root_checkpoint"], "--frame", "0", env=env)
    assert root.returncode == 1 and "added no stage; name the stage" in root.stderr
    bad = run(*store, "show", ctx["leaf"], "--frame", "-1", env=env)
    assert bad.returncode == 2 and "must be a whole number >= 0" in bad.stderr


def test_export_replaces_an_existing_file_only_with_force(
        world: tuple[dict[str, str], dict]) -> None:
    """A user's gt.json was silently replaced by a zip."""
    import zipfile

    ctx, env = world
    target = Path(ctx["tmp"]) / "gt.json"
    target.write_text("mine")
    argv = ["--store", ctx["store"], "export", ctx["timeline"], str(target)]
    refused = run(*argv, env=env)
    assert refused.returncode == 1
    assert f"{target}: it already exists" in refused.stderr
    assert "pass --force to replace it" in refused.stderr
    assert "overwrite=" not in refused.stderr and "Traceback" not in refused.stderr
    assert target.read_text() == "mine"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tmp-bundle-")]
    forced = run(*argv, "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert zipfile.is_zipfile(target)


@pytest.mark.parametrize("command", ["export", "labels export"])
def test_force_never_puts_a_file_in_place_of_a_pipe_or_a_link(
        command: str, world: tuple[dict[str, str], dict]) -> None:
    """`labels export CKPT /dev/stdout --force`, run as root, replaced the /dev/stdout
    link with a regular file of boxes (the write goes aside, then renames over the
    path): a pipe, a device or a socket is refused, nothing written; a symlink to a file
    is written through, the link stays (as cp does)."""
    ctx, env = world
    tmp = Path(ctx["tmp"])
    if command == "export":
        argv = ["--store", ctx["store"], "export", ctx["timeline"]]
        written: Callable[[Path], bool] = _is_zip
    else:
        argv = ["--store", ctx["store"], "labels", "export", ctx["leaf"]]
        written = _holds_coco
    fmt = [] if command == "export" else ["--format", "coco", "--stage", "detect"]
    pipe = tmp / "pipe"
    os.mkfifo(pipe)
    refused = run(*argv, str(pipe), *fmt, "--force", env=env)
    assert refused.returncode == 1 and not refused.stdout
    assert f"{pipe} is not a regular file" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert pipe.is_fifo()
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []
    target, link = tmp / "target.out", tmp / "link.out"
    target.write_text("mine")
    link.symlink_to(target.name)
    forced = run(*argv, str(link), *fmt, "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert link.is_symlink() and os.readlink(link) == target.name
    assert written(target)


@pytest.mark.parametrize("command", ["export", "labels export"])
def test_the_file_written_may_be_given_as_dash_o(
        command: str, world: tuple[dict[str, str], dict]) -> None:
    """`export T -o FILE`, as pg_dump and docker save take it, was "unrecognized
    arguments: -o": FILE after the other arguments or as -o/--output, one of the two,
    and wherever it stands among the options."""
    ctx, env = world
    tmp = Path(ctx["tmp"])
    if command == "export":
        argv = ["--store", ctx["store"], "export", ctx["timeline"], "--force"]
        written: Callable[[Path], bool] = _is_zip
    else:
        argv = ["--store", ctx["store"], "labels", "export", ctx["leaf"], "--format", "coco",
                "--stage", "detect", "--force"]
        written = _holds_coco
    after = argv.index("export") + 1
    forms = {"-o first": [*argv[:after], "-o", "{out}", *argv[after:]],
             "--output= last": [*argv, "--output={out}"],
             "argument last": [*argv, "{out}"],  # after options: as before -o existed
             "argument first": [*argv[:after + 1], "{out}", *argv[after + 1:]]}
    for i, (form, words) in enumerate(forms.items()):
        out = str(tmp / f"dash-o-{i}.out")
        done = run(*[w.replace("{out}", out) for w in words], env=env)
        assert done.returncode == 0, (form, done.stderr)
        assert written(Path(out)) and out in done.stdout, form
    both = run(*argv, str(tmp / "a.out"), "-o", str(tmp / "b.out"), env=env)
    assert both.returncode == 2 and "is given twice" in both.stderr
    neither = run(*argv, env=env)
    assert neither.returncode == 2 and "is missing" in neither.stderr
    assert "as an argument or as -o" in neither.stderr
    assert not (tmp / "a.out").exists() and not (tmp / "b.out").exists()


def _is_zip(path: Path) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def _holds_coco(path: Path) -> bool:
    return "annotations" in json.loads(path.read_text())


def test_merge_twice_makes_one_merge_checkpoint(world: tuple[dict[str, str], dict]) -> None:
    ctx, env = world
    argv = ["--store", ctx["store"], "merge", ctx["ours"], ctx["theirs"], "--strategy",
            "theirs", "--json"]
    first, second = (json.loads(run(*argv, env=env).stdout) for _ in range(2))
    assert first["outcome"] == "merged" and second["result"] == first["result"]
    assert first["written"] is True
    # the second wrote nothing: it said outcome "merged" as the first did
    assert (second["outcome"], second["written"]) == ("up-to-date", False)
    back = json.loads(run("--store", ctx["store"], "merge", first["result"], ctx["theirs"],
                          "--json", env=env).stdout)  # THEIRS is part of OURS
    assert (back["outcome"], back["result"], back["written"]) == ("up-to-date",
                                                                  first["result"], False)
    ahead = json.loads(run("--store", ctx["store"], "merge", ctx["ours"], first["result"],
                           "--json", env=env).stdout)
    assert (ahead["outcome"], ahead["result"], ahead["written"]) == ("fast-forward",
                                                                   first["result"], False)
    tree = json.loads(run("--store", ctx["store"], "tree", ctx["timeline"], "--json",
                          env=env).stdout)
    assert [c["id"] for c in tree if c["merged_from"] == ctx["theirs"]] == [first["result"]]


# -- short ids, tags, and what ingest leaves behind (issue 19) ------------------------------

#: Fields that hold record ids and so carry a short id beside them (common.ID_FIELDS).
ID_KEYS = {"id", "timeline_id", "root_checkpoint_id", "checkpoint_id", "parent_id",
           "merged_from", "a", "b", "ours", "theirs", "result"}


def _without_short_ids(value: Any, top: dict[str, Any], where: str = "") -> list[str]:
    """Where a JSON output holds a record id with no short id beside it (or, for a list of
    ids, in the output's top-level short_ids)."""
    from localckpt.refs import is_full_uuid

    missing = []
    if isinstance(value, dict):
        is_tag = "name" in value and "checkpoint_id" in value  # a tag record's own id
        for key, v in value.items():
            here = f"{where}.{key}"
            if isinstance(v, str) and is_full_uuid(v) and key in ID_KEYS and not (
                    is_tag and key == "id"):
                short = "short_id" if key == "id" else (
                    key[:-3] + "_short_id" if key.endswith("_id") else key + "_short_id")
                if not isinstance(value.get(short), str) or (not v.replace("-", "").endswith(
                        value[short]) and value[short] not in v.replace("-", "")):
                    missing.append(here)
            elif isinstance(v, list) and v and all(isinstance(x, str) and is_full_uuid(x)
                                                   for x in v):
                missing += [f"{here}[{x}]" for x in v if x not in top.get("short_ids", {})]
            elif key not in ("short_ids", "source_info", "stage_outputs", "pairs"):
                missing += _without_short_ids(v, top, here)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            missing += _without_short_ids(v, top, f"{where}[{i}]")
    return missing


@pytest.mark.parametrize("row", COMMANDS, ids=IDS)
def test_json_output_carries_a_short_id_beside_every_id(
        row: Row, world: tuple[dict[str, str], dict]) -> None:
    ctx, env = world
    result = run("--store", ctx["store"], *_argv(row, ctx), "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert _without_short_ids(data, data if isinstance(data, dict) else {}) == []


@pytest.mark.parametrize("form", ["short id", "tag"])
@pytest.mark.parametrize("row", REF_ROWS, ids=[r.id for r in REF_ROWS])
def test_references_by_short_id_and_by_tag(row: Row, form: str,
                                           world: tuple[dict[str, str], dict]) -> None:
    """Every command that takes a reference takes the short id `ls` and `tree` show, and
    a tag (for a timeline: a tag on one of its checkpoints), but for rm, which deletes a
    whole timeline and refuses a tag (tests/test_maintenance_cli.py says why)."""
    ctx, env = world
    assert row.ref is not None
    ident = ctx[row.ref]
    is_timeline = row.ref.startswith("timeline")
    with localckpt.open(ctx["store"]) as store:
        ref = store.short_id(ident, "timeline" if is_timeline else "checkpoint")
        if form == "tag":
            ref = "pick"
            store.tag(store.get_timeline(ident).root_checkpoint_id if is_timeline else ident,
                      ref)
    result = run("--store", ctx["store"], *_argv(row, ctx, **{row.ref: ref}), "--json",
                 env=env)
    if row.id == "rm" and form == "tag":
        assert result.returncode == 1 and "'pick' is a tag" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert row.check(json.loads(result.stdout), ctx), (ref, result.stdout)


def _main(*argv: str) -> int:
    from localckpt.cli import main

    return main(list(argv))


def _usage(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """stderr of a command line that is bad usage: exit status 2, as argparse's own
    errors, with the command's usage and ``localckpt COMMAND: error: ...``."""
    with pytest.raises(SystemExit) as exit_:
        _main(*argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: localckpt") and "error: " in err, err
    return err


def test_ls_and_tree_show_the_sampled_length(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    video, store = tmp_path / "clip.mp4", str(tmp_path / "s")
    write_video(video, 190, fps=25.0, size=(64, 48))  # 7.6 s
    assert _main("--store", store, "ingest", str(video), "--start", "1", "--end", "4") == 0
    out = capsys.readouterr().out
    assert "ingested 6 frames" in out and "7.6 s)" in out  # the source's length
    assert _main("--store", store, "ls") == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[1:4] == ["6", "2", "3.0s"]  # frames, fps, the sampled length
    assert _main("--store", store, "tree") == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "(3.0s sampled, 6 frames @ 2 fps, from 7.6s of video at 25 fps" in header
    assert header.endswith(", 1 checkpoint)")  # one, not "1 checkpoints"


@pytest.mark.parametrize(("argv", "said"), [
    (["--fps", "0"], "argument --fps: must be a finite number of frames per second above 0"),
    (["--fps", "-2"], "argument --fps: must be"), (["--fps", "inf"], "argument --fps: must"),
    (["--end", "1", "--start", "2"], "ingest: error: --end 1 must be after --start (2)"),
    (["--start", "-1"], "argument --start: must be a number >= 0, not '-1'"),
    (["--max-frames", "0"], "argument --max-frames: must be a whole number >= 1, not '0'"),
    (["--skip-similar", "65"], "argument --skip-similar: must be a whole number in 0..64"),
    (["--chunk-seconds", "0"], "argument --chunk-seconds: must be a number above 0"),
    (["--quality", "0"], "argument --quality: must be a whole number in 1..95, not '0'"),
    (["--workers", "65"], "argument --workers: must be a whole number in 1..64, not '65'"),
    (["--source-storage-options", "[]"], "argument --source-storage-options: must be a "
                                         "JSON object")])
def test_ingest_options_wrong_by_their_form_are_usage_errors(
        tmp_path: Path, argv: list[str], said: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 as argparse's own errors, the message naming the flag (they were exit 1,
    'localckpt: error: --fps must be ...'); nothing is created."""
    video, store = tmp_path / "clip.mp4", tmp_path / "s"
    write_video(video, 10, fps=10.0, size=(64, 48))
    assert said in _usage(capsys, "--store", str(store), "ingest", str(video), *argv)
    assert not store.exists()


def test_a_failed_ingest_creates_no_store(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A start past the video's end is a well-formed value the file does not reach: an
    error (exit 1), found before the store is created."""
    video, store = tmp_path / "clip.mp4", tmp_path / "s"
    write_video(video, 10, fps=10.0, size=(64, 48))
    assert _main("--store", str(store), "ingest", str(video), "--start", "5") == 1
    err = capsys.readouterr().err
    assert "--start 5 is past the end of" in err and str(video) in err
    assert not store.exists()


@pytest.mark.parametrize(("argv", "flag"), [
    (["retain", "T", "--keep-last", "-1"], "--keep-last"),
    (["similar", "T", "0", "--max-distance", "65"], "--max-distance"),
    (["similar", "T", "0", "--limit", "0"], "--limit"),
    (["diff", "A", "B", "--match-iou", "0"], "--match-iou"),
    (["diff", "A", "B", "--match-iou", "x"], "--match-iou")])
def test_numbers_out_of_range_are_usage_errors_naming_the_flag(
        tmp_path: Path, argv: list[str], flag: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Checked by the parser: the message names the flag, never the API's keyword."""
    with pytest.raises(SystemExit) as exit_:
        _main("--store", str(tmp_path / "s"), *argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be" in err and "_" not in err.split("error:")[1]


@pytest.mark.parametrize(("argv", "said"), [
    (["show", "C", "--stage", ""], "show: error: argument --stage: must name a stage, not ''"),
    (["memo", "clear", "--stage", ""], "argument --stage: must name a stage"),  # removed 0
    (["labels", "import", "T", "gt.json", "--format", "coco", "--stage", ""],
     "labels import: error: argument --stage: must name a stage"),
    (["compare", "--against", "C", "--reference-stage", ""], "argument --reference-stage: "),
    (["retain", "T"], "retain: error: retain needs a rule: --keep-last N, --keep-label "
                      "LABEL or --newer-than AGE"),  # it was exit 1 once the store was open
    (["retain", "T", "--newer-than", "7x"],
     "retain: error: argument --newer-than: '7x' is neither an age (7d"),
    (["gc", "--older-than", "soon"], "gc: error: argument --older-than: 'soon' is neither"),
    (["memo", "clear", "--older-than", "-1d"], "memo clear: error: argument --older-than: "),
    (["similar", "T", "zz"], "similar: error: argument SEQ_OR_HASH: 'zz' is neither"),
    (["run", "show", "R", "--frame", "-1"], "run show: error: argument --frame: must be a "
                                            "whole number >= 0"),
    (["compare", "A", "--against", "B", "--iou", "0"], "argument --iou: must be a number in"),
    (["compare", "A", "--against", "B", "--labels", ","], "compare: error: --labels ','"),
    (["sql", "SELECT 1", "--json", "--csv"], "sql: error: --json and --csv both given"),
    (["sql", "SELECT 1", "--param", "x"], "sql: error: --param takes NAME=VALUE"),
    (["diff", "A", "B", "--align", "time"], "diff: error: --align pairs frames: it goes with "
                                            "--frames"),
    (["--storage-options", "{x", "ls"], "localckpt: error: argument --storage-options: the "
                                        "value is not valid JSON"),
    (["push", "R", "--remote-storage-options", "1"], "push: error: argument "
     "--remote-storage-options: must be a JSON object of fsspec options"),
    (["remote", "add", "r", "/d", "--storage-options", "[]"], "remote add: error: argument "
     "--storage-options: must be a JSON object"),
    (["demo", "--frames", "0"], "demo: error: argument --frames: must be a whole number"),
    (["tag", "A", "a b"], "tag: error: argument NAME: tag name 'a b' is not valid: use "),
    (["untag", "-x"], "untag: error: "),  # argparse's own: an option, not a tag
    (["untag", "x/y"], "untag: error: argument NAME: tag name 'x/y' is not valid"),
    (["labels", "import", "T", "gt.json", "--format", "coco", "--tag", "a b"],
     "labels import: error: argument --tag: tag name 'a b' is not valid"),
])
def test_a_value_wrong_by_its_form_is_bad_usage_before_any_store_opens(
        tmp_path: Path, argv: list[str], said: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 with the command's usage and ``localckpt COMMAND: error: ...``, as argparse
    says its own (these were exit 1, 'localckpt: error: ...', some only once a store was
    open): the store named need not exist, and none is created."""
    store = tmp_path / "missing"
    assert said in _usage(capsys, "--store", str(store), *argv)
    assert not store.exists()


@pytest.mark.parametrize(("argv", "said"), [
    (["tre"], "localckpt: error: argument COMMAND: invalid choice: 'tre', maybe you meant "
              "'tree'? (choose from "),
    (["labels", "imprt", "x"], "labels: error: argument ACTION: invalid choice: 'imprt', "
                               "maybe you meant 'import'? (choose from "),
    (["memo", "clr"], "invalid choice: 'clr', maybe you meant 'clear'?"),
    (["compare", "--against", "x", "--metric", "AP"], "invalid choice: 'AP', maybe you meant "
                                                      "'ap'?"),
    (["stauts"], "invalid choice: 'stauts' (choose from"),  # nothing near: no guess
])
def test_a_mistyped_command_or_choice_names_the_nearest(
        tmp_path: Path, argv: list[str], said: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """As git's "did you mean": the choices alone left the user to spot the typo."""
    with pytest.raises(SystemExit) as exit_:
        _main("--store", str(tmp_path / "s"), *argv)
    assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_a_well_formed_value_naming_nothing_stays_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What the store does not hold is exit 1, not bad usage."""
    store = str(tmp_path / "s")
    with localckpt.open(store, create=True) as s:
        tid = s.create_timeline("clip.mp4", "p", _frames(), codec="png").id
    for argv, said in ((["retain", "nope-tl", "--newer-than", "7d"], "nope-tl"),
                       (["similar", tid, "99"], "99"),
                       (["compare", "--against", "nope-ck"], "nope-ck"),
                       (["memo", "clear", "--older-than", "1d", "--stage", "nope"], None)):
        code = _main("--store", store, *argv)
        err = capsys.readouterr().err
        assert code == (0 if said is None else 1), (argv, err)
        assert said is None or (said in err and "usage:" not in err)


def test_quality_is_checked_as_a_flag_and_only_for_jpeg(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video, store = tmp_path / "clip.mp4", tmp_path / "s"
    write_video(video, 10, fps=10.0, size=(64, 48))
    assert "argument --quality: must be a whole number in 1..95, not '96'" in _usage(
        capsys, "--store", str(store), "ingest", str(video), "--quality", "96")
    assert "ingest: error: --quality is for --codec jpeg; png is lossless" in _usage(
        capsys, "--store", str(store), "ingest", str(video), "--codec", "png",
        "--quality", "50")
    assert not store.exists()
    assert _main("--store", str(store), "ingest", str(video), "--codec", "png") == 0


@pytest.mark.parametrize("frames", ["0", "10001"])
def test_a_failed_demo_creates_no_store(tmp_path: Path, frames: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s"
    err = _usage(capsys, "--store", str(store), "demo", "--frames", frames)
    # in the flag's terms, as ingest's (was "an int"); bad usage, exit 2 (was 1)
    assert f"demo: error: argument --frames: must be a whole number in 1..10000, not " \
        f"'{frames}'" in err
    assert not store.exists()


def test_ingest_of_what_is_not_a_video_creates_no_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, store = tmp_path / "notes.mp4", tmp_path / "s"
    text.write_text("not a video\n" * 100)
    assert _main("--store", str(store), "ingest", str(text)) == 1
    assert str(text) in capsys.readouterr().err
    assert not store.exists()


def test_ingest_of_an_audio_file_speaks_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ingest audio.wav` said "ingest_video needs a video": the Python method's name."""
    import wave

    audio, store = tmp_path / "audio.wav", tmp_path / "s"
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    assert _main("--store", str(store), "ingest", str(audio)) == 1
    err = capsys.readouterr().err
    assert "has no video stream" in err and "`localckpt ingest` needs a video" in err
    assert "ingest_video" not in err
    assert not store.exists()


def test_ingest_of_a_still_image_speaks_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ingest still.png` said "create_timeline takes images": a Python name, and no way
    the command line has. Python keeps its wording."""
    from PIL import Image

    still, store = tmp_path / "still.png", tmp_path / "s"
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(still)
    assert _main("--store", str(store), "ingest", str(still)) == 1
    err = capsys.readouterr().err
    assert "is a still image (png), not a video; `localckpt ingest` needs a video" in err
    assert "create_timeline takes images" not in err
    assert not store.exists()
    with localckpt.open(str(tmp_path / "py"), create=True) as s, \
            pytest.raises(InvalidInputError, match="not a video; create_timeline takes images"):
        s.ingest_video(still)


def test_ingest_of_a_url_without_credentials_names_the_flag_for_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """It ended "check its storage options and credentials" without naming the flag that
    gives a video URL's options (they are not the store's --storage-options)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role looked for
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    store = tmp_path / "s"
    assert _main("--store", str(store), "ingest", "s3://bucket/v.mp4") == 1
    err = capsys.readouterr().err
    assert "cannot open s3://bucket/v.mp4" in err and "--source-storage-options" in err
    assert not store.exists()


def _actions(parser: Any, path: tuple[str, ...] = ("localckpt",)) -> Any:
    """(command path, action) for every argument of every command and subcommand."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # a command's line in its parent's help
                yield (*path, choice.dest), choice
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        else:
            yield path, action


def test_help_shows_every_numeric_default(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --help` showed `--frames FRAMES` without its default (24)."""
    from localckpt.cli.main import build_parser

    hidden = [f"{' '.join(path)} {'/'.join(a.option_strings)}"
              for path, a in _actions(build_parser())
              if isinstance(a.default, int | float) and not isinstance(a.default, bool)
              and "default" not in (a.help or "")]
    assert not hidden, hidden
    with pytest.raises(SystemExit):
        _main("demo", "--help")
    assert "--frames N  frames in the synthetic video (default 24)" in capsys.readouterr().out


def test_help_command_gives_a_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`localckpt help tree`, as git, pip and docker take it, is `tree --help`; it was an
    invalid choice. An unknown command is the usage error it is without help."""
    for words in (["tree"], ["run", "show"], []):
        with pytest.raises(SystemExit) as done:
            _main(*words, "--help")
        assert done.value.code == 0
        want = capsys.readouterr().out
        with pytest.raises(SystemExit) as done:
            _main("help", *words)
        assert done.value.code == 0 and capsys.readouterr().out == want, words
    with pytest.raises(SystemExit) as done:
        _main("help", "nope")
    assert done.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_memo_clear_help_says_iso_dates_work(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--older-than takes an ISO date as retain --newer-than does (docs/cli.md); its help
    listed ages only."""
    with pytest.raises(SystemExit):
        _main("memo", "clear", "--help")
    assert "ISO date" in " ".join(capsys.readouterr().out.split())
    store = str(tmp_path / "s")
    assert _main("--store", store, "init") == 0
    assert _main("--store", store, "memo", "clear", "--older-than", "2026-11-30") == 0
    assert "removed 0 memo entries" in capsys.readouterr().out


def test_every_argument_and_command_has_a_help_line() -> None:
    """`untag --help` listed NAME with no line saying what it is. Options kept only as
    old spellings are hidden (help=SUPPRESS) on purpose."""
    from localckpt.cli.main import build_parser

    bare = [f"{' '.join(path)} {'/'.join(a.option_strings) or a.metavar or a.dest}"
            for path, a in _actions(build_parser()) if not a.help]
    assert not bare, bare


def test_every_reference_argument_says_which_forms_it_takes() -> None:
    """`compare --help` said REF is an "id, prefix, tag" and TRY nothing at all, and
    `labels import --help` gave TIMELINE and --parent shorter lists than every other
    command: each takes what `localckpt.refs` resolves, short ids and TIMELINE:stage too."""
    from localckpt.cli.common import CHECKPOINT_HELP, TIMELINE_HELP, TIMELINE_ID_HELP
    from localckpt.cli.main import build_parser

    takes = {"CHECKPOINT": CHECKPOINT_HELP, "CKPT": CHECKPOINT_HELP, "TRY": CHECKPOINT_HELP,
             "REF": CHECKPOINT_HELP, "OURS": CHECKPOINT_HELP, "THEIRS": CHECKPOINT_HELP,
             "A": CHECKPOINT_HELP, "B": CHECKPOINT_HELP, "TIMELINE": TIMELINE_HELP}
    but = {("localckpt rm", "TIMELINE"): TIMELINE_ID_HELP}  # refuses a tag (test_maintenance_cli)
    short = [f"{' '.join(path)} {a.metavar}" for path, a in _actions(build_parser())
             if a.metavar in takes and not str(a.help).startswith(
                 but.get((" ".join(path), a.metavar), takes[a.metavar]))]
    assert not short, short


@pytest.mark.parametrize("damage", ["not-a-database", "pages"])
def test_a_catalog_that_does_not_open_is_no_reason_to_run_verify(
        tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every command, verify included, said "run `localckpt verify`" of a catalog file
    that no command (verify neither) can open: circular advice."""
    store = tmp_path / "s"
    assert _main("--store", str(store), "demo", "--frames", "3") == 0
    catalog = store / "catalog.sqlite"
    if damage == "not-a-database":
        catalog.write_text("a text file that took the catalog's place\n" * 200)
    else:  # every page but the first (the schema's): what opening reads is gone
        data = bytearray(catalog.read_bytes())
        size = int.from_bytes(data[16:18], "big")
        for start in range(size, len(data), size):
            data[start:start + 8] = b"\xff" * 8
        catalog.write_bytes(bytes(data))
    capsys.readouterr()
    for command in ("ls", "verify"):
        assert _main("--store", str(store), command) == 1
        err = capsys.readouterr().err
        assert str(catalog) in err and "Restore the store directory from a copy" in err
        assert "run `localckpt verify`" not in err
        if damage == "not-a-database":
            assert "is not an SQLite database" in err and "not a localckpt catalog" in err


@pytest.mark.parametrize("origin", ["config", "environment", "default"])
def test_a_missing_default_store_says_where_its_url_came_from(
        tmp_path: Path, origin: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A store named by the config file's [store] url (or $LOCALCKPT_URL, or the default)
    that is missing said "check the --store path", though no --store was given."""
    missing = tmp_path / "gone"
    config = tmp_path / "config.toml"
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    if origin == "config":
        config.write_text(f'[store]\nurl = "{missing}"\n')
        said = f"[store] url in {config}"
    elif origin == "environment":
        monkeypatch.setenv("LOCALCKPT_URL", str(missing))
        said = "$LOCALCKPT_URL"
    else:
        missing, said = tmp_path / ".localckpt", "the default store"
    assert _main("ls") == 1
    err = capsys.readouterr().err
    assert f"no localckpt store at {missing}" in err and said in err
    assert "--store path" not in err and "`localckpt init`" in err
    assert not missing.exists()


def test_sql_refuses_a_parameter_given_twice(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`--param p=1 --param p=2` kept the last value silently: a usage error now, naming
    the parameter, before any store is opened."""
    store = tmp_path / "s"
    with pytest.raises(SystemExit) as exit_:
        _main("--store", str(store), "sql", "SELECT $p::INTEGER AS p", "--param", "p=1",
              "--param", "q=3", "--param", "p=2")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --param: $p given twice" in err and "usage: localckpt sql" in err
    assert not store.exists()
    assert _main("--store", str(store), "init") == 0
    capsys.readouterr()
    assert _main("--store", str(store), "sql", "SELECT $p::INTEGER + $q::INTEGER AS n",
                 "--param", "p=1", "--param", "q=3", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 4}]
