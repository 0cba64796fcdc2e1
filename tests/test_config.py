"""The config file: named remotes, secrets kept out of it, per-store settings, TOML writing."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import localckpt
from localckpt import InvalidInputError, NotFoundError
from localckpt import config as cfg
from localckpt._toml import dumps, write_atomic
from localckpt.registry import redact, scheme_of


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "config.toml"
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(path))
    monkeypatch.setenv("LOCALCKPT_CREDENTIALS", str(tmp_path / "conf" / "credentials.toml"))
    return path


# -- TOML ---------------------------------------------------------------------------------

_keys = st.text(st.characters(exclude_categories=["Cs"]), max_size=6)
_scalars = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(st.characters(
        exclude_categories=["Cs"])), st.floats(allow_nan=False),
    st.datetimes(timezones=st.just(dt.UTC)), st.dates(),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_keys, inner, max_size=3), max_leaves=8)


@given(st.dictionaries(_keys, _values | st.dictionaries(_keys, _values, max_size=3),
                       max_size=4))
def test_toml_round_trips(data: dict) -> None:
    assert tomllib.loads(dumps(data)) == data


def test_write_atomic_keeps_the_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    write_atomic(str(path), "a = 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # new: private to its owner
    path.chmod(0o644)
    write_atomic(str(path), "a = 2\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert tomllib.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]


# -- remotes ------------------------------------------------------------------------------


def test_add_list_remove(config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                         ) -> None:
    config_file.parent.mkdir()
    config_file.write_text('[store]\nurl = "memory://"\n')
    prod = cfg.add_remote("prod", "postgresql://ckpt@db.internal/pipes", objects="s3://f/c",
                          storage_options={"endpoint_url": "http://minio:9000"},
                          storage_options_from="PROD_S3")
    monkeypatch.chdir(tmp_path)
    lap = cfg.add_remote("lap", "laptop-store")
    assert lap.url == str(tmp_path / "laptop-store")  # paths are kept absolute
    assert [r.name for r in cfg.remotes()] == ["lap", "prod"]
    assert cfg.remote("prod") == prod
    data = tomllib.loads(config_file.read_text())
    assert data["store"] == {"url": "memory://"}  # the rest of the file is kept
    assert data["remotes"]["prod"] == {
        "url": "postgresql://ckpt@db.internal/pipes", "objects": "s3://f/c",
        "storage_options_from": "PROD_S3",
        "storage_options": {"endpoint_url": "http://minio:9000"}}
    assert cfg.remove_remote("lap") == lap
    assert cfg.remote("lap") is None
    with pytest.raises(NotFoundError, match="prod"):
        cfg.remove_remote("lap")
    # the nearest named, as push, pull and the command line name it (the API did not)
    with pytest.raises(NotFoundError, match=r"\(did you mean 'prod'\? remotes: prod; see "
                       r"`localckpt remote list`\)$"):
        cfg.remove_remote("prd")
    cfg.remove_remote("prod")
    assert tomllib.loads(config_file.read_text()) == {"store": {"url": "memory://"}}


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("prod", "postgresql://u:hunter2@db/x"), {"objects": "s3://b"}, "password"),
    (("prod", "host=db dbname=x password=hunter2"), {"objects": "s3://b"}, "password"),
    (("prod", "/data/s"), {"storage_options": {"secret": "hunter2"}}, "secret"),
    (("prod", "/data/s"), {"storage_options": {"client_kwargs": {"aws_secret_access_key": "k"}}},
     "aws_secret_access_key"),
    (("prod", "postgresql://u@db/x"), {}, "objects"),
    (("prod", "/data/s"), {"objects": "s3://AKIAXX:hunter2@frames/ckpt"}, "objects URL"),
    (("prod", "/data/s"), {"objects": "s3://hunter2@frames/ckpt"}, "storage_options_from"),
    (("prod", "/data/s"), {"storage_options": {"headers": {"Authorization": "Bearer hunter2"}}},
     r"headers\.Authorization"),
    (("prod", "/data/s"), {"storage_options": {"HEADERS": {"x-amz-security-token": "hunter2"}}},
     "x-amz-security-token"),
    (("prod", "/data/s"), {"storage_options": {"client_kwargs": {"headers": {
        "Cookie": "sid=hunter2"}}}}, r"client_kwargs\.headers\.Cookie"),
    (("prod", "/data/s"), {"storage_options": {"X-Api-Key": "hunter2"}}, "X-Api-Key"),
    (("prod", "/data/s"), {"storage_options": {"DB_Credential_File": "hunter2"}},
     "DB_Credential_File"),
    (("prod", "/data/s"), {"storage_options": {"headers": {"X-Auth": ["basic aHVudGVyMg=="]}}},
     r"headers\.X-Auth\.0"),
    (("prod", "nosuch://x"), {}, "unknown store URL scheme"),
    (("../up", "/data/s"), {}, "remote name"),
    (("", "/data/s"), {}, "remote name"),
    (("prod", "/data/s"), {"storage_options_from": "no spaces"}, "storage_options_from"),
    (("taken", "/data/other"), {}, "already exists"),
])
def test_refused_remotes_leave_the_file_unchanged(
    config_file: Path, args: tuple, kwargs: dict, match: str
) -> None:
    cfg.add_remote("taken", "/data/s")
    before = config_file.read_bytes()
    with pytest.raises(InvalidInputError, match=match) as info:
        cfg.add_remote(*args, **kwargs)
    assert config_file.read_bytes() == before
    assert b"hunter2" not in before
    assert "hunter2" not in str(info.value) and "hunter2" not in info.value.for_cli()


def test_non_secret_options_are_kept(config_file: Path) -> None:
    """Options named like no secret, with plain values, round-trip (no false alarm on the
    usual s3fs settings)."""
    options = {"endpoint_url": "https://minio.internal", "anon": False,
               "config_kwargs": {"signature_version": "s3v4"},
               "client_kwargs": {"region_name": "eu-1", "verify": True},
               "headers": {"Accept": "application/json", "User-Agent": "basic"},
               "note": "Basic pipeline/1"}  # a "Basic ..." value outside headers is text
    cfg.add_remote("r", "/data/s", objects="s3://frames/ckpt", storage_options=options)
    assert cfg.remote("r") == cfg.Remote("r", "/data/s", "s3://frames/ckpt", options)
    # a user in a URL that is no S3 key: an Azure container, an SSH login
    for i, objects in enumerate(("abfs://frames@account.dfs.core.windows.net/ckpt",
                                 "sftp://deploy@host/srv/ckpt")):
        cfg.add_remote(f"o{i}", "/data/s", objects=objects)
        assert cfg.remote(f"o{i}") == cfg.Remote(f"o{i}", "/data/s", objects, {})


@pytest.mark.parametrize(("text", "names"), [
    ('[remotes.x4]\nurl = "/data/s"\nobjects = "s3://AKIAXX:hunter2@frames/ckpt"\n',
     ["remotes.x4", "objects URL"]),
    ('[remotes.x4]\nurl = "/data/s"\nobjects = "s3://hunter2@frames/ckpt"\n',
     ["remotes.x4", "objects URL"]),
    ('[store]\nobjects = "s3://AKIAXX:hunter2@frames/ckpt"\n', ["[store]", "objects URL"]),
    ('[remotes.x5]\nurl = "/data/s"\n[remotes.x5.storage_options.headers]\n'
     'Authorization = "Bearer hunter2"\n', ["remotes.x5", "headers.Authorization"]),
    ('[remotes.x6]\nurl = "/data/s"\n[remotes.x6.storage_options]\n'
     'headers = { cookie = "sid=hunter2" }\n', ["remotes.x6", "headers.cookie"]),
    ('[storage_options.headers]\nX-Amz-Security-Token = "hunter2"\n',
     ["[storage_options]", "headers.X-Amz-Security-Token"]),
])
def test_a_hand_written_credential_is_refused_on_read(
        config_file: Path, text: str, names: list[str]) -> None:
    """A config file written before these checks (or by hand) is refused when read, by
    every reader: the message names the table and the key, never the value."""
    config_file.parent.mkdir()
    config_file.write_text(text)
    for read in (cfg.remotes, cfg.load, lambda: localckpt.open("memory://")):
        with pytest.raises(InvalidInputError) as info:
            read()
        message = str(info.value)
        assert "hunter2" not in message and "AKIAXX" not in message
        assert all(name in message for name in names), message


def test_concurrent_adds_all_land(config_file: Path) -> None:
    names = [f"r{i}" for i in range(8)]
    threads = [threading.Thread(target=cfg.add_remote, args=(n, f"/data/{n}")) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.name for r in cfg.remotes()] == names


def test_a_hand_written_secret_is_refused_on_read(config_file: Path) -> None:
    config_file.parent.mkdir()
    config_file.write_text('[storage_options]\nkey = "AKIA"\nsecret = "hunter2"\n')
    with pytest.raises(InvalidInputError, match=r"\[storage_options\]") as info:
        localckpt.open("memory://")
    assert "hunter2" not in str(info.value)
    config_file.write_text('[remotes.prod]\nurl = "postgresql://u:hunter2@db/x"\n')
    with pytest.raises(InvalidInputError, match="password") as info:
        cfg.remotes()
    assert "hunter2" not in str(info.value)


# -- where secrets come from ----------------------------------------------------------------


def test_storage_options_from_environment_then_credentials_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = config_file.parent / "credentials.toml"
    creds.parent.mkdir()
    creds.write_text('[prod-s3]\nkey = "AKIA"\nsecret = "hunter2"\n')
    creds.chmod(0o600)
    assert cfg.storage_options_from("prod-s3") == {"key": "AKIA", "secret": "hunter2"}
    monkeypatch.setenv("PROD_S3", '{"key": "K", "secret": "S"}')
    assert cfg.storage_options_from("PROD_S3") == {"key": "K", "secret": "S"}
    monkeypatch.setenv("PROD_S3", "[1]")
    with pytest.raises(InvalidInputError, match="PROD_S3"):
        cfg.storage_options_from("PROD_S3")
    with pytest.raises(NotFoundError) as info:
        cfg.storage_options_from("missing")
    assert "environment variable missing" in str(info.value) and str(creds) in str(info.value)
    creds.chmod(0o644)
    with pytest.raises(InvalidInputError, match="chmod 600"):
        cfg.storage_options_from("prod-s3")


def test_store_section_names_its_secret_options(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config_file.parent.mkdir()
    config_file.write_text(
        f'[store]\nurl = "{tmp_path / "s"}"\nstorage_options_from = "MY_OPTS"\n'
        '[storage_options]\nendpoint_url = "http://e"\nauto_mkdir = false\n')
    monkeypatch.setenv("MY_OPTS", '{"auto_mkdir": true}')
    with localckpt.open(create=True) as store:
        assert store.objects.fs.auto_mkdir is True  # the named options win over the file's
    assert cfg.store_storage_options() == {"endpoint_url": "http://e", "auto_mkdir": True}
    monkeypatch.delenv("MY_OPTS")
    with pytest.raises(NotFoundError, match="MY_OPTS"):
        localckpt.open()
    # options given explicitly need nothing from the file
    with localckpt.open(storage_options={}) as store:
        assert store.objects.fs.auto_mkdir is False


def test_a_remote_never_reads_this_stores_environment(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote_dir = tmp_path / "remote"
    localckpt.open(remote_dir, create=True).close()
    cfg.add_remote("r", str(remote_dir))
    monkeypatch.setenv("LOCALCKPT_URL", "memory://")
    monkeypatch.setenv("LOCALCKPT_OBJECTS", str(tmp_path / "local-objects"))
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", '{"auto_mkdir": true}')
    with localckpt.open() as local:
        assert local.catalog.describe() == "memory catalog"
    remote = cfg.remote("r")
    assert remote is not None
    with remote.open() as store:
        assert store.objects.root == str(remote_dir / "objects")
        tl = store.create_timeline("v", "p", [np.zeros((2, 2, 3), np.uint8)], codec="png")
    assert not list((tmp_path / "local-objects").rglob("*"))
    assert (remote_dir / "objects" / "frames" / tl.id).is_dir()


# -- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "scheme"), [
    ("host=db.internal dbname=pipelines user=ckpt", "postgresql"),
    ("  dbname=x", "postgresql"),
    ("postgresql://u@h/db", "postgresql"),
    ("./dir=with=equals", ""),
    ("colour=blue", ""),
    ("/abs/dir", ""),
    ("duckdb:///abs", "duckdb"),
])
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:hunter2@db:5432/x", "postgresql://u:***@db:5432/x"),
    ("postgresql://u@db/x?password=hunter2&sslmode=require",
     "postgresql://u@db/x?password=***&sslmode=require"),
    ("host=db password=hunter2 dbname=x", "host=db password=*** dbname=x"),
    ("host=db password = 'hunter 2' dbname=x", "host=db password = *** dbname=x"),
    ("s3://AKIA:hunter2@bucket/p", "s3://AKIA:***@bucket/p"),
    ("/plain/dir", "/plain/dir"),
])
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "hunter" not in redact(url)


def test_a_libpq_string_is_postgresql_and_creates_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match="objects"):
        localckpt.open("host=127.0.0.1 port=1 dbname=x", create=True)
    assert list(tmp_path.iterdir()) == []


def test_config_mode_is_private(config_file: Path) -> None:
    cfg.add_remote("r", "/data/s")
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600


def test_removing_a_remote_without_a_config_file_creates_nothing(config_file: Path) -> None:
    """`remote remove tem` on a machine with no config file made ~/.config/localckpt (the
    directory its lock is taken on) and then said there was no such remote."""
    assert not config_file.parent.exists()
    with pytest.raises(NotFoundError, match=r"no remote named 'tem' in .* \(remotes: none "
                       r"yet; see `localckpt remote list`\)"):
        cfg.remove_remote("tem")
    assert not config_file.parent.exists()
