"""push and pull with named remotes, through subprocesses: $LOCALCKPT_* describe the
local store (--store) only and never leak into the remote, as issue 13 asked."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import localckpt

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The CLI in the directory env["HOME"] (created), never in the repository."""
    Path(env["HOME"]).mkdir(exist_ok=True)
    env = {**env, "PYTHONPATH": str(ROOT)}  # this checkout's localckpt, not an installed one
    return subprocess.run([sys.executable, "-m", "localckpt.cli", *argv], env=env,
                          cwd=env["HOME"], capture_output=True, text=True, timeout=180)


def _files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.fixture
def local_env(tmp_path: Path) -> dict[str, str]:
    """A shell whose LOCALCKPT_* name a local store with its objects elsewhere, and options
    that would break any S3 client they reached."""
    return {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"),
        "LOCALCKPT_CONFIG": str(tmp_path / "config.toml"),
        "LOCALCKPT_URL": str(tmp_path / "laptop"),
        "LOCALCKPT_OBJECTS": str(tmp_path / "laptop-objects"),
        "LOCALCKPT_STORAGE_OPTIONS": json.dumps({"endpoint_url": "http://127.0.0.1:1"}),
    }


def _demo(env: dict[str, str]) -> str:
    assert run("init", env=env).returncode == 0
    result = run("demo", "--frames", "3", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["timeline_id"]


def test_remote_list_says_when_there_is_none(local_env: dict[str, str]) -> None:
    """It printed nothing, where ls, tags and runs say there is none; the config file it
    read is the one to look at."""
    listed = run("remote", "list", env=local_env)
    assert listed.returncode == 0
    assert listed.stdout == (f"no remotes in {local_env['LOCALCKPT_CONFIG']} (add one with "
                             "`localckpt remote add NAME URL`)\n")
    assert json.loads(run("remote", "list", "--json", env=local_env).stdout) == []


def test_the_config_file_follows_xdg_config_home(tmp_path: Path) -> None:
    """Without $LOCALCKPT_CONFIG, remotes go to $XDG_CONFIG_HOME/localckpt/config.toml as
    other tools' settings do (it was always ~/.config); a relative value is ignored, as
    the XDG rule says."""
    home = tmp_path / "home"
    env = {"PATH": os.environ["PATH"], "HOME": str(home),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert run("remote", "add", "shared", str(tmp_path / "shared"), env=env).returncode == 0
    assert (tmp_path / "xdg" / "localckpt" / "config.toml").is_file()
    assert not (home / ".config").exists()
    env["XDG_CONFIG_HOME"] = "relative"
    assert run("remote", "add", "other", str(tmp_path / "other"), env=env).returncode == 0
    assert (home / ".config" / "localckpt" / "config.toml").is_file()
    assert not (home / "relative").exists()


def test_named_directory_remote(local_env: dict[str, str], tmp_path: Path) -> None:
    env = local_env
    remote = tmp_path / "shared"
    tid = _demo(env)
    local_objects = _files(tmp_path / "laptop-objects")
    assert any("index.parquet" in f for f in local_objects)
    added = run("remote", "add", "shared", str(remote), "--json", env=env)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["url"] == str(remote)
    listing = json.loads(run("remote", "list", "--json", env=env).stdout)
    assert [(r["name"], r["url"]) for r in listing] == [("shared", str(remote))]
    assert run("remote", "list", env=env).stdout.startswith(f"shared\t{remote}")

    pushed = run("push", "shared", "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["timelines"] == 1
    # the remote's frames are in its own directory, not in $LOCALCKPT_OBJECTS
    assert any(f"frames/{tid}/index.parquet" in f for f in _files(remote / "objects"))
    assert _files(tmp_path / "laptop-objects") == local_objects
    with localckpt.open(remote) as store:
        assert [t.id for t in store.list_timelines()] == [tid]

    # another laptop pulls it by name
    env2 = {**env, "LOCALCKPT_URL": str(tmp_path / "laptop2"),
            "LOCALCKPT_OBJECTS": str(tmp_path / "laptop2-objects")}
    remote_files = _files(remote)
    pulled = run("pull", "shared", "--json", env=env2)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["timelines"] == 1
    assert any(f"frames/{tid}/" in f for f in _files(tmp_path / "laptop2-objects"))
    assert not (tmp_path / "laptop2" / "objects").exists()
    assert _files(remote) == remote_files

    # --store with a mistyped remote's name: the error names the remotes
    typo = run("--store", "sharde", "tree", env=env)
    assert typo.returncode == 1 and "no localckpt store at" in typo.stderr
    assert "did you mean remote 'shared'? remotes: shared" in typo.stderr

    # a name that is no remote (removed, or mistyped) is refused, not created here
    assert run("remote", "remove", "shared", env=env).returncode == 0
    typo = run("push", "shared", env=env)
    assert typo.returncode == 1 and "no remote named 'shared'" in typo.stderr
    assert "./shared" in typo.stderr and not (Path(env["HOME"]) / "shared").exists()
    assert run("push", "./shared", env=env).returncode == 0  # a directory, said so
    assert (Path(env["HOME"]) / "shared" / "LOCALCKPT.json").exists()
    assert _files(remote) == remote_files


def test_named_postgres_s3_remote_with_secrets_from_the_environment(
    local_env: dict[str, str], tmp_path: Path, pg_dsn: str, s3_base: tuple[str, dict[str, Any]],
) -> None:
    """The issue's own case: `localckpt --store laptop push prod` to PostgreSQL + S3."""
    bucket, options = s3_base
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{pg_dsn}?schema={schema}"
    objects = f"{bucket}/{schema}"
    secret = {k: options[k] for k in ("key", "secret")}
    public = {k: v for k, v in options.items() if k not in secret}
    env = {**local_env, "PROD_S3": json.dumps(secret)}
    tid = _demo(env)
    added = run("remote", "add", "prod", url, "--objects", objects, "--storage-options",
                json.dumps(public), "--storage-options-from", "PROD_S3", env=env)
    assert added.returncode == 0, added.stderr
    config = Path(env["LOCALCKPT_CONFIG"]).read_text()
    assert options["secret"] not in config and "PROD_S3" in config

    pushed = run("push", "prod", "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["timelines"] == 1
    assert json.loads(pushed.stdout)["remote"].startswith("prod (postgresql://")
    with localckpt.open(url, objects=objects, storage_options=options) as prod:
        assert [t.id for t in prod.list_timelines()] == [tid]
        assert len(prod.get_timeline_frames(tid)) == 3  # frames reached S3
    # --store NAME looks at the remote with its own settings ($LOCALCKPT_* name the laptop)
    listed = run("--store", "prod", "ls", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [t["id"] for t in json.loads(listed.stdout)] == [tid]

    env2 = {**env, "LOCALCKPT_URL": str(tmp_path / "laptop2"),
            "LOCALCKPT_OBJECTS": str(tmp_path / "laptop2-objects")}
    pulled = run("pull", "prod", tid[:13], "--json", env=env2)
    assert pulled.returncode == 0, pulled.stderr
    with localckpt.open(tmp_path / "laptop2", objects=str(tmp_path / "laptop2-objects")) as s:
        assert len(s.get_timeline_frames(tid)) == 3

    # without the secrets the remote cannot be used, and the error names where they go
    no_secret = run("push", "prod", env={k: v for k, v in env.items() if k != "PROD_S3"})
    assert no_secret.returncode == 1
    assert "PROD_S3" in no_secret.stderr and options["secret"] not in no_secret.stderr


@pytest.mark.parametrize(("flags", "names"), [
    (["--objects", "s3://AKIAXX:ObjPW@frames/ckpt"], ["objects URL", "--storage-options-from"]),
    (["--storage-options", '{"headers": {"Authorization": "Bearer HdrPW"}}'],
     ["headers.Authorization", "--storage-options-from"]),
    (["--storage-options", '{"client_kwargs": {"X-AMZ-SECURITY-TOKEN": "HdrPW"}}'],
     ["client_kwargs.X-AMZ-SECURITY-TOKEN", "--storage-options-from"]),
])
def test_remote_add_refuses_credentials_outside_option_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        flags: list[str], names: list[str]) -> None:
    """`remote add` refuses credentials in the objects URL and in headers, with the file
    untouched; the message says where they go and never shows them."""
    from localckpt.cli import main

    config = tmp_path / "config.toml"
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(config))
    assert main(["remote", "add", "x4", str(tmp_path / "s"), *flags]) != 0
    err = capsys.readouterr().err
    assert all(name in err for name in names), err
    assert "ObjPW" not in err and "HdrPW" not in err and "AKIAXX" not in err
    assert not config.exists()
    assert main(["remote", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_remote_list_refuses_a_file_holding_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A config file that already holds them (written before these checks) is refused by
    `remote list --json`, which would otherwise print them, naming remote and key."""
    from localckpt.cli import main

    config = tmp_path / "config.toml"
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(config))
    config.write_text('[remotes.x4]\nurl = "/data/s"\nobjects = "s3://AKIAXX:ObjPW@frames/c"\n'
                      '[remotes.x4.storage_options.headers]\nAuthorization = "Bearer HdrPW"\n')
    assert main(["remote", "list", "--json"]) != 0
    captured = capsys.readouterr()
    assert captured.out == "" and "remotes.x4" in captured.err and "objects" in captured.err
    assert "ObjPW" not in captured.err and "AKIAXX" not in captured.err
    config.write_text('[remotes.x5]\nurl = "/data/s"\n'
                      '[remotes.x5.storage_options.headers]\nAuthorization = "Bearer HdrPW"\n')
    assert main(["remote", "list", "--json"]) != 0
    captured = capsys.readouterr()
    assert captured.out == "" and "headers.Authorization" in captured.err
    assert "remotes.x5" in captured.err and "HdrPW" not in captured.err


def test_a_miss_in_a_remote_names_it_as_typed(local_env: dict[str, str],
                                              tmp_path: Path) -> None:
    """`localckpt pull shared nope` said "no timeline matches 'nope' in /abs/shared: ...;
    see `localckpt --store /abs/shared ls`", where push and pull name the remote ("pull
    from shared (/abs/shared)"): the remote is named as typed, its URL beside it, and so
    is it by `--store shared`. A reference of the wrong kind pointed to `localckpt ls`,
    which lists the default store, not the one it was looked for in."""
    env = local_env
    remote = tmp_path / "shared"
    _demo(env)
    assert run("remote", "add", "shared", str(remote), env=env).returncode == 0
    assert run("push", "shared", env=env).returncode == 0
    tree = json.loads(run("--store", "shared", "tree", "--json", env=env).stdout)
    timeline, checkpoint = tree[0]["timeline_short_id"], tree[-1]["short_id"]
    before = _files(tmp_path / "laptop")
    why = ("no live tag is named 'nope', and no live {} has a short id that starts "
           "with it (an id prefix needs 6+ characters)")
    why_t, why_c = why.format("timeline"), why.format("checkpoint")
    for argv, miss in (
            (["pull", "shared", "nope"],
             f"no timeline matches 'nope' in shared ({remote}): {why_t}; see `localckpt "
             "--store shared ls`"),
            (["--store", "shared", "tree", "nope"],
             f"no timeline matches 'nope' in shared ({remote}): {why_t}; see `localckpt "
             "--store shared ls`"),
            (["--store", "shared", "show", "nope"],
             f"no checkpoint matches 'nope' in shared ({remote}): {why_c}; see `localckpt "
             "--store shared tree TIMELINE`"),
            (["pull", "shared", checkpoint],
             f"'{checkpoint}' is a checkpoint ({checkpoint}, of timeline {timeline}), not a "
             "timeline; `localckpt --store shared ls` lists the timelines"),
            (["--store", "shared", "show", timeline],
             f"'{timeline}' is a timeline ({timeline}), not a checkpoint; `localckpt --store "
             f"shared tree {timeline}` lists its checkpoints"),
            (["--store", str(remote), "show", timeline],  # a directory: said by its path
             f"'{timeline}' is a timeline ({timeline}), not a checkpoint; `localckpt --store "
             f"{remote} tree {timeline}` lists its checkpoints"),
            (["pull", str(remote), "nope"],
             f"no timeline matches 'nope' in {remote}: {why_t}; see `localckpt --store "
             f"{remote} ls`")):
        result = run(*argv, env=env)
        assert (result.returncode, result.stdout) == (1, ""), (argv, result.stderr)
        assert result.stderr.startswith(f"localckpt: error: {miss}"), (argv, result.stderr)
    assert _files(tmp_path / "laptop") == before
    # the newest timeline taken, and a store with none: the commands said run there
    assert run("demo", "--frames", "3", env=env).returncode == 0
    assert run("push", "shared", env=env).returncode == 0
    result = run("--store", "shared", "tree", env=env)
    assert result.returncode == 0 and result.stderr.endswith(
        "name another as TIMELINE (`localckpt --store shared ls` lists them)\n")
    empty = tmp_path / "empty"
    assert run("--store", str(empty), "init", env=env).returncode == 0
    assert run("remote", "add", "bare", str(empty), env=env).returncode == 0
    for store, said in (("bare", f"bare ({empty})"), (str(empty), str(empty))):
        result = run("--store", store, "tree", env=env)
        assert (result.returncode, result.stderr) == (1, (
            f"localckpt: error: no timelines in {said}; add one with `localckpt --store "
            f"{store} ingest FILE`\n"))
    # a directory of the remote's name here: --store opens it, so the URL is said
    (Path(env["HOME"]) / "shared").mkdir()
    result = run("pull", "shared", "nope", env=env)
    assert result.returncode == 1
    assert result.stderr.endswith(f"; see `localckpt --store {remote} ls`\n")
    # and --store shared opens that directory, no store: said so, with the remote's URL
    result = run("--store", "shared", "ls", env=env)
    assert result.returncode == 1 and result.stderr.endswith(
        " (./shared is here, so --store shared opened it, not the remote 'shared'; name the "
        f"remote by its URL: --store {remote})\n")
    assert not any((Path(env["HOME"]) / "shared").iterdir())


def test_commands_a_message_suggests_run_on_the_store_it_is_about(
        local_env: dict[str, str], tmp_path: Path) -> None:
    """`localckpt --store shared prune ROOT` said "Delete the whole timeline with
    `localckpt rm T`": run as said, that deletes T from the default store (which a pull
    made a copy of shared's, most likely). Every command a message suggests names the
    store the command ran on, when it is not the default one; on the default, as before."""
    env = local_env
    remote = tmp_path / "shared"
    _demo(env)
    assert run("remote", "add", "shared", str(remote), env=env).returncode == 0
    assert run("push", "shared", env=env).returncode == 0
    root = json.loads(run("tree", "--json", env=env).stdout)[0]
    t, r = root["timeline_short_id"], root["short_id"]
    for store, said in (("shared", "--store shared "), (str(remote), f"--store {remote} "),
                        (env["LOCALCKPT_URL"], "")):
        result = run("--store", store, "prune", r, env=env)
        assert result.returncode == 1
        assert f"Delete the whole timeline with `localckpt {said}rm {t}` instead" \
            in result.stderr, result.stderr
        result = run("--store", store, "runs", "--state", "open", env=env)
        assert result.stdout == f"no open runs; `localckpt {said}runs` lists every run\n"
    leftover = remote / "objects" / "frames" / str(uuid.uuid4()) / "shard-000000.bin"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x")
    result = run("--store", "shared", "verify", env=env)  # (a directory's objects would be
    assert result.returncode == 0                          # $LOCALCKPT_OBJECTS' here)
    assert result.stdout.endswith("run `localckpt --store shared gc` to remove the leftovers\n")
    assert leftover.exists() and json.loads(run("ls", "--json", env=env).stdout)
    # a damaged catalog (a row unlike its digest) is told with the verify of its store
    with contextlib.closing(sqlite3.connect(remote / "catalog.sqlite")) as db, db:
        db.execute("UPDATE checkpoints SET stage_hashes = '{\"s0\": 3}' WHERE id = "
                   "(SELECT id FROM checkpoints WHERE parent_id IS NOT NULL LIMIT 1)")
    for store, said in (("shared", "--store shared "), (str(remote), f"--store {remote} ")):
        result = run("--store", store, "tree", t, env=env)
        assert result.returncode == 1 and "is damaged" in result.stderr, result.stderr
        assert f"run `localckpt {said}verify`" in result.stderr, result.stderr
