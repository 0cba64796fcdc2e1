"""Hostile control files: whoever can write a store directory or a config directory.

The store marker, the config file, the credentials file and ingest leases are read as
control files (localckpt.safefiles): a FIFO, a device or a symlink to one, an oversized
file, JSON or TOML nested 100,000 deep, and unknown versions are refused with typed
errors, quickly, and never hang or exhaust memory.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from fuzzing import time_limit

import localckpt
from localckpt import config as cfg
from localckpt.cli import main
from localckpt.errors import (
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    NotFoundError,
    SchemaVersionError,
)
from localckpt.safefiles import load_toml_file, read_marker, read_regular

# -- the store marker ----------------------------------------------------------------------


def _marker(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "LOCALCKPT.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def test_a_good_marker_reads(tmp_path: Path) -> None:
    d = read_marker(_marker(tmp_path, {"format": 2, "kind": "x", "canonical_json": 2}))
    assert d["format"] == 2
    assert read_marker(_marker(tmp_path, {"format": 1}))["format"] == 1  # older stores
    assert read_marker(_marker(tmp_path, {"format": 3, "canonical_json": 2}))["format"] == 3
    with pytest.raises(SchemaVersionError):
        read_marker(_marker(tmp_path, {"format": 3}), formats=(1, 2))


@pytest.mark.parametrize("body,error,words", [
    ({"format": 0}, CorruptDataError, "unknown format 0"),
    ({}, CorruptDataError, "names no format"),
    ({"format": 99}, SchemaVersionError, "upgrade"),
    ({"format": "x"}, CorruptDataError, "not a version number"),
    ({"format": True}, CorruptDataError, "not a version number"),
    ({"format": 2, "canonical_json": 99}, SchemaVersionError, "upgrade"),
    ({"format": 2, "canonical_json": "x"}, CorruptDataError, "not a version number"),
    ({"format": 2, "canonical_json": 0}, CorruptDataError, "unknown canonical_json 0"),
    ([2], CorruptDataError, "not a JSON object"),
    ("{" * 60_000, CorruptDataError, "not valid JSON"),  # within the 64 KB cap
    ('{"format": 2, "x": ' + "[" * 30_000 + "]" * 30_000 + "}", CorruptDataError, "JSON"),
    ("[" * 100_000, CorruptDataError, "more than"),
    ('{"format": 2, "x": [[[[[[[]]]]]]]}', CorruptDataError, "nested"),
    ("not json", CorruptDataError, "not valid JSON"),
    ('{"format": 2, "pad": "' + "x" * 70_000 + '"}', CorruptDataError, "more than"),
])
def test_a_bad_marker_is_a_typed_error(tmp_path: Path, body: object,
                                       error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        read_marker(_marker(tmp_path, body))


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _link_to(target: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        path.symlink_to(target)
        return path
    return make


SPECIAL: dict[str, Callable[[Path], Path]] = {
    "fifo": _fifo,
    "symlink-to-dev-zero": _link_to("/dev/zero"),
    "symlink-to-dev-null": _link_to("/dev/null"),
    "directory": lambda p: (p.mkdir(), p)[1],
}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_a_marker_that_is_no_regular_file_is_refused_at_once(tmp_path: Path,
                                                              kind: str) -> None:
    path = SPECIAL[kind](tmp_path / "LOCALCKPT.json")
    with time_limit(5), pytest.raises(CorruptDataError, match="not a regular file"):
        read_marker(path)


def test_a_symlink_to_a_regular_marker_is_fine(tmp_path: Path) -> None:
    real = _marker(tmp_path, {"format": 2})
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert read_marker(link)["format"] == 2


def test_read_regular_never_reads_past_its_cap(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(InvalidInputError, match="more than"):
        read_regular(big, "test file", max_bytes=4096)
    assert read_regular(tmp_path / "missing", "test file") is None
    assert read_regular(big, "test file", max_bytes=5000) == b"x" * 5000
    with pytest.raises(InvalidInputError, match=r"NUL|embedded null"):
        read_regular(str(tmp_path / "a\x00b"), "test file")


# -- the config file -------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(path))
    monkeypatch.setenv("LOCALCKPT_CREDENTIALS", str(tmp_path / "conf" / "credentials.toml"))
    monkeypatch.chdir(tmp_path)
    return path


CONFIGS: dict[str, Callable[[Path], object]] = {
    "5000-deep array": lambda p: p.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n"),
    "40-deep table": lambda p: p.write_text("a = " + "{b = " * 40 + "1" + "}" * 40 + "\n"),
    "fifo": _fifo,
    "symlink to /dev/zero": _link_to("/dev/zero"),
    "2 MB": lambda p: p.write_text("# " + "x" * (2 << 20) + "\n"),
    "not UTF-8": lambda p: p.write_bytes(b'a = "\xff"\n'),
    "not TOML": lambda p: p.write_text("[[[\n"),
}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("argv", [["ls"], ["remote", "list"], ["--store", "x", "init"],
                                  ["tree"], ["verify", "--json"]])
def test_any_command_with_a_hostile_config_exits_1_with_a_message(
        kind: str, argv: list[str], config_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    CONFIGS[kind](config_file)
    with time_limit(10):
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert "localckpt: error:" in err and str(config_file) in err and "Traceback" not in err
    assert not (config_file.parent.parent / "x").exists()  # init created nothing


def test_open_with_a_hostile_config_is_a_typed_error(config_file: Path) -> None:
    config_file.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InvalidInputError, match="nested"):
        localckpt.open()
    with pytest.raises(InvalidInputError):
        load_toml_file(config_file, "config file")


# -- the credentials file ----------------------------------------------------------------------


def test_credentials_of_another_user_are_refused(config_file: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can make a file owned by another user here")
    creds = config_file.parent / "credentials.toml"
    creds.write_text('[s3]\nkey = "K"\nsecret = "S"\n')
    creds.chmod(0o600)
    assert cfg.storage_options_from("s3") == {"key": "K", "secret": "S"}  # own: fine
    os.chown(creds, 65534, 65534)
    with pytest.raises(InvalidInputError, match="belongs to user id 65534"):
        cfg.storage_options_from("s3")


def test_credentials_readable_by_others_are_refused(config_file: Path) -> None:
    creds = config_file.parent / "credentials.toml"
    creds.write_text('[s3]\nkey = "K"\n')
    creds.chmod(0o640)
    with pytest.raises(InvalidInputError, match="chmod 600"):
        cfg.storage_options_from("s3")


def test_credentials_as_a_fifo_do_not_hang(config_file: Path) -> None:
    _fifo(config_file.parent / "credentials.toml")
    with time_limit(5), pytest.raises(InvalidInputError, match="not a regular file"):
        cfg.storage_options_from("s3")


def test_deep_json_in_the_environment_is_refused(config_file: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEP_S3", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidInputError):
        cfg.storage_options_from("DEEP_S3")


# -- secrets and names in the config -----------------------------------------------------------


SECRET = "Secr3tValue"


def test_credentials_inside_an_option_url_are_never_written(
        config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = json.dumps({"endpoint_url": f"http://AKIA:{SECRET}@minio:9000"})
    assert main(["remote", "add", "prod", "memory://", "--storage-options", options]) == 1
    err = capsys.readouterr().err
    assert "endpoint_url" in err and SECRET not in err
    assert not config_file.exists() or SECRET not in config_file.read_text()
    with pytest.raises(InvalidInputError):
        cfg.add_remote("prod", "memory://", storage_options={"nested": {
            "url": f"https://user:{SECRET}@host"}})


def test_a_hand_written_secret_url_never_shows(config_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config_file.write_text(f'[remotes.prod]\nurl = "memory://"\n'
                           f'storage_options = {{ endpoint_url = "http://AKIA:{SECRET}@m" }}\n')
    for argv in (["remote", "list", "--json"], ["remote", "list"]):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert SECRET not in out + err and "endpoint_url" in err


def test_options_toml_cannot_hold_are_refused_before_writing(config_file: Path) -> None:
    for bad in ({"a": None}, {"a": "\ud800"}, {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]
                                                       ]]]]]]]]]]]]]]]]]]]]]}):
        with pytest.raises(InvalidInputError):
            cfg.add_remote("prod", "memory://", storage_options=bad)
    for url in ("memory://\nx", "a\x00b", "\ud800"):
        with pytest.raises(InvalidInputError):
            cfg.add_remote("prod", url)
    assert not config_file.exists()
    assert [p.name for p in config_file.parent.iterdir()] == []  # no temp file left


@pytest.mark.parametrize("name", ["a\nb", "evil\x1b[2J", "tab\there", "ok\u2028x"])
def test_remote_names_print_escaped(name: str, config_file: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidInputError):
        cfg.add_remote(name, "memory://")
    quoted = json.dumps(name)
    config_file.write_text(f'[remotes.{quoted}]\nurl = "memory://"\n')
    assert main(["remote", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\t" not in out.split("\t", 1)[0]
    assert main(["remote", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == name


# -- leases -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "symlink-to-dev-zero", "oversized", "deep"])
def test_a_hostile_lease_is_not_ours_and_never_hangs(kind: str, tmp_path: Path) -> None:
    from localckpt.lease import IngestLease, lease_key, read_lease
    from localckpt.objects import Objects

    objects = Objects.from_url(str(tmp_path / "objects"))
    lease = IngestLease(objects, "t1").acquire()
    lease.release()
    path = Path(objects.path(lease_key("t1")))
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        _fifo(path)
    elif kind == "symlink-to-dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "oversized":
        path.write_bytes(b'{"token": "' + b"x" * 100_000 + b'"}')
    else:
        path.write_text("[" * 100_000 + "]" * 100_000)
    with time_limit(5):
        assert lease._holds() is False
        with pytest.raises(LocalckptError):
            read_lease(objects, lease_key("t1"))
    with pytest.raises(NotFoundError):
        read_lease(objects, lease_key("t2"))
    assert stat.S_ISDIR(os.stat(path.parent).st_mode)
