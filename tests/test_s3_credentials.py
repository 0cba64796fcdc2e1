"""S3 objects with no credentials anywhere: the error says which settings were looked at
and how to give them, for a store, a remote, push and pull, and a run's worker process;
never a credential. Real servers only (moto, PostgreSQL where a remote needs one)."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt import config
from localckpt.cli.main import main
from localckpt.errors import BackendUnavailableError

FRAMES = [np.zeros((4, 4, 3), np.uint8)]
#: botocore's own places, emptied so that only the store's settings could hold credentials
_AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE",
                  "AWS_ROLE_ARN")


def _no_aws(nowhere: str) -> None:
    """This process's environment without any of botocore's credentials (also a worker's
    initializer)."""
    for name in _AWS_VARIABLES:
        os.environ.pop(name, None)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = nowhere
    os.environ["AWS_CONFIG_FILE"] = nowhere
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         s3_base: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(objects URL, storage options without key and secret, the full ones), with no
    AWS credentials in the environment and a config file of this test's own."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    nowhere = str(tmp_path / "no-aws")
    for name, value in (("AWS_SHARED_CREDENTIALS_FILE", nowhere), ("AWS_CONFIG_FILE", nowhere),
                        ("AWS_EC2_METADATA_DISABLED", "true"),
                        ("LOCALCKPT_CONFIG", str(tmp_path / "config.toml")),
                        ("LOCALCKPT_CREDENTIALS", str(tmp_path / "credentials.toml"))):
        monkeypatch.setenv(name, value)
    base, options = s3_base
    public = {k: v for k, v in options.items() if k not in ("key", "secret")}
    return f"{base}/{os.urandom(6).hex()}", public, options


def _no_secret(text: str, options: dict[str, Any]) -> None:
    for name in ("key", "secret"):
        assert str(options[name]) not in text, text


def _fails(store: localckpt.Store) -> str:
    with pytest.raises(BackendUnavailableError) as info:
        store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    return str(info.value)


def test_a_store_that_names_no_credentials(bare: Any, tmp_path: Path) -> None:
    objects, public, _options = bare
    with localckpt.open(str(tmp_path / "s"), objects=objects, storage_options=public,
                        create=True) as store:
        text = _fails(store)
    assert text.startswith(f"no S3 credentials for {objects} ({public['endpoint_url']})"), text
    assert "the storage options hold no key and secret" in text, text
    assert "AWS_ACCESS_KEY_ID" in text and "--storage-options" in text, text
    assert "NoCredentialsError" not in text, text


def test_a_store_whose_environment_gives_no_key(bare: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    objects, public, _options = bare
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", json.dumps(public))
    monkeypatch.setenv("LOCALCKPT_OBJECTS", objects)
    with localckpt.open(str(tmp_path / "s"), create=True) as store:
        text = _fails(store)
    assert "the environment variable LOCALCKPT_STORAGE_OPTIONS: add key and secret" in text


def test_a_store_whose_config_names_a_table_without_them(bare: Any, tmp_path: Path) -> None:
    objects, public, _options = bare
    (tmp_path / "config.toml").write_text(
        f'[store]\nobjects = "{objects}"\nstorage_options_from = "LAB_S3"\n'
        f'[storage_options]\nendpoint_url = "{public["endpoint_url"]}"\n')
    credentials = tmp_path / "credentials.toml"
    credentials.write_text('[LAB_S3]\nuse_ssl = false\n')  # a table, no key
    credentials.chmod(0o600)
    with localckpt.open(str(tmp_path / "s"), create=True) as store:
        text = _fails(store)
    assert "storage_options_from = 'LAB_S3' of [store]" in text, text
    assert f"the table [LAB_S3] of {tmp_path / 'credentials.toml'}" in text, text


def test_only_part_of_the_credentials(bare: Any, tmp_path: Path) -> None:
    objects, public, options = bare
    with localckpt.open(str(tmp_path / "s"), objects=objects, create=True,
                        storage_options={**public, "key": options["key"]}) as store:
        text = _fails(store)
    assert "the storage options lack secret (only part is given)" in text, text
    _no_secret(text, options)


def test_a_remote_without_storage_options_from(bare: Any, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Opened by its name (`--store team`): the message says how to name where the
    key is, with the remote's own url and objects."""
    objects, public, _options = bare
    config.add_remote("team", str(tmp_path / "team"), objects=objects, storage_options=public)
    with localckpt.open(str(tmp_path / "team"), create=True):
        pass
    assert main(["--store", "team", "verify"]) == 1
    err = capsys.readouterr().out  # verify reports what it could not read
    assert "no S3 credentials" in err and "the remote 'team'" in err, err
    assert "which names no storage_options_from" in err, err
    assert (f"`localckpt remote add team {tmp_path / 'team'} --objects {objects} "
            "--storage-options-from NAME`") in err, err


def test_push_to_a_remote_whose_variable_holds_no_key(
        bare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    objects, public, _options = bare
    monkeypatch.setenv("TEAM_S3", json.dumps({"use_ssl": False}))
    config.add_remote("team", str(tmp_path / "team"), objects=objects, storage_options=public,
                      storage_options_from="TEAM_S3")
    with localckpt.open(str(tmp_path / "here"), create=True) as here:
        here.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    assert main(["--store", str(tmp_path / "here"), "push", "team"]) == 1
    err = capsys.readouterr().err
    assert "no S3 credentials" in err, err
    assert ("storage_options_from = 'TEAM_S3' is the environment variable TEAM_S3 (set here)"
            in err), err


def test_pull_with_a_named_variable_that_holds_no_key(
        bare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    objects, public, options = bare
    with localckpt.open(str(tmp_path / "there"), objects=objects, storage_options=options,
                        create=True) as there:
        tl = there.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    monkeypatch.setenv("THERE_S3", json.dumps(public))
    assert main(["--store", str(tmp_path / "here"), "pull", str(tmp_path / "there"), tl.id,
                 "--remote-objects", objects, "--remote-storage-options-from", "THERE_S3"]) == 1
    err = capsys.readouterr().err
    assert "They come from --remote-storage-options-from THERE_S3" in err, err


# -- a run's worker process ------------------------------------------------------------------


def _stage(frames: list[Any]) -> dict[int, Any]:
    return {f.sequence: {"n": 1} for f in frames}


def _bare_worker(config_path: str, nowhere: str) -> None:
    """A worker's initializer: no AWS credentials, and a config file of its own."""
    _no_aws(nowhere)
    os.environ["LOCALCKPT_CONFIG"] = config_path


@pytest.mark.parametrize("how", ["no-remote-there", "objects-over-the-remotes"])
def test_a_worker_that_finds_no_credentials_says_where_it_looked(
        how: str, bare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of a remote's store sent to a worker: the worker takes the credentials from
    the remote whose url and objects are the store's. With none in its config file (or
    one whose objects the store's --objects replaced), it says so and how to add one."""
    objects, public, options = bare
    monkeypatch.setenv("TEAM_S3", json.dumps({"key": options["key"],
                                              "secret": options["secret"]}))
    config.add_remote("team", str(tmp_path / "team"), objects=objects, storage_options=public,
                      storage_options_from="TEAM_S3")
    team = config.remote("team")
    assert team is not None
    worker_config = str(tmp_path / "config.toml")
    if how == "no-remote-there":
        worker_config = str(tmp_path / "worker-config.toml")  # none there
    else:
        team = team._replace(objects=f"{objects}-other")  # as `--store team --objects`
    with team.open(create=True) as store:
        tl = store.create_timeline("v.mp4", "p", FRAMES * 3, codec="png", workers=1)
        run = store.begin_run(tl.id, None, "n", memo=False)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_bare_worker,
                                 initargs=(worker_config, str(tmp_path / "no-aws"))) as pool, \
                pytest.raises(BackendUnavailableError) as info:
            run.map(_stage, pool, chunk_size=3)
        assert run.done == 0
    text = str(info.value)
    assert text.startswith("no S3 credentials"), text
    assert "This worker takes a remote's store's credentials from the remote whose url and " \
           f"objects are the store's ({tmp_path / 'team'}, {team.objects})" in text, text
    assert f"`localckpt remote add NAME {tmp_path / 'team'} --objects {team.objects} " \
           "--storage-options-from VAR`" in text, text
    if how == "objects-over-the-remotes":
        assert f"'team' has this url but objects {objects}" in text, text
    _no_secret(text, options)
