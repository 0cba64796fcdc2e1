"""localckpt.open: URL schemes, environment and config settings, clear refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt import InvalidInputError, NotFoundError, Store
from localckpt.backends.sql import SqlCatalog, memory_catalog
from localckpt.catalog import Catalog
from localckpt.errors import SchemaVersionError
from localckpt.objects import Objects
from localckpt.registry import _REGISTRY, registered_schemes


def _roundtrip(store: Store) -> str:
    tl = store.create_timeline("v.mp4", "p", [np.zeros((2, 2, 3), np.uint8)], codec="png")
    return store.save_stage_output(tl.id, None, "detect", {"ok": True})


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(InvalidInputError) as info:
        localckpt.open("nosuch://somewhere")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'nosuch'" in message
    for scheme in ("duckdb", "memory", "postgresql"):
        assert scheme in message
    assert set(registered_schemes()) >= {"duckdb", "file", "memory", "postgres", "postgresql"}


def test_empty_url_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        localckpt.open("")


def test_plain_directory_is_embedded(tmp_path: Path) -> None:
    with localckpt.open(tmp_path / "store", create=True) as store:
        assert isinstance(store.catalog, SqlCatalog) and store.catalog.dialect.name == "sqlite"
        assert store.catalog.engine.path == str(tmp_path / "store" / "catalog.sqlite")
        assert store.objects.root == str(tmp_path / "store" / "objects")
        cid = _roundtrip(store)
    assert (tmp_path / "store" / "LOCALCKPT.json").exists()
    with localckpt.open(str(tmp_path / "store"), create=True) as again:
        assert again.load_stage_output(cid, "detect") == {"ok": True}


def test_a_missing_store_is_not_found_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "typo-dir"
    with pytest.raises(NotFoundError) as info:
        localckpt.open(missing)
    assert str(missing) in str(info.value) and "localckpt init" in str(info.value)
    assert "create=True" in str(info.value) and "--store" in info.value.for_cli()
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError):
        localckpt.open(empty)
    assert list(empty.iterdir()) == []
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(NotFoundError):
        localckpt.open(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFoundError, match=r"\.localckpt"):
        localckpt.open()
    assert not (tmp_path / ".localckpt").exists()
    with localckpt.open(missing, create=True) as store:
        _roundtrip(store)
    with localckpt.open(missing) as again:  # now it is a store
        assert len(again.list_timelines()) == 1


def test_sqlite_and_duckdb_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = tmp_path / "abs"
    with localckpt.open(f"sqlite://{absolute}", create=True) as store:  # sqlite:///abs/dir
        assert store.catalog.engine.path == str(absolute / "catalog.sqlite")
        cid = _roundtrip(store)
    with localckpt.open(str(absolute), create=True) as same:
        assert same.load_stage_output(cid, "detect") == {"ok": True}
    monkeypatch.chdir(tmp_path)
    with localckpt.open("sqlite://rel/dir", create=True) as rel:
        assert rel.catalog.engine.path == str(tmp_path / "rel" / "dir" / "catalog.sqlite")
    with localckpt.open("duckdb://rel/cat.duckdb", create=True) as duck:  # a DuckDB file
        assert duck.catalog.engine.path == str(tmp_path / "rel" / "cat.duckdb")
        assert duck.catalog.dialect.name == "duckdb"
        _roundtrip(duck)
    for url in ("sqlite://", "duckdb://"):
        with pytest.raises(InvalidInputError, match="names no directory"):
            localckpt.open(url, create=True)


def test_memory_store_is_fresh_each_time() -> None:
    a = localckpt.open("memory://")
    b = localckpt.open("memory://")
    assert a.catalog.describe() == "memory catalog"
    _roundtrip(a)
    assert len(a.list_timelines()) == 1
    assert b.list_timelines() == []
    assert b.objects.list("") == []
    assert a.objects.root != b.objects.root
    with pytest.raises(InvalidInputError, match="no options"):
        localckpt.open("memory://", fsync=False)


def test_localckpt_url_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALCKPT_URL", str(tmp_path / "from-env"))
    with localckpt.open(create=True) as store:
        assert store.url == str(tmp_path / "from-env")
        assert store.catalog.engine.path == str(tmp_path / "from-env" / "catalog.sqlite")
    monkeypatch.setenv("LOCALCKPT_URL", "memory://")
    with localckpt.open(create=True) as store:
        assert store.catalog.describe() == "memory catalog"
    # an explicit URL wins over the environment
    with localckpt.open(tmp_path / "explicit", create=True) as store:
        assert store.catalog.engine.path == str(tmp_path / "explicit" / "catalog.sqlite")


def test_default_is_dot_localckpt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with localckpt.open(create=True) as store:
        assert store.catalog.engine.path == str(tmp_path / ".localckpt" / "catalog.sqlite")


def test_objects_and_options_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALCKPT_OBJECTS", str(tmp_path / "elsewhere"))
    with localckpt.open(tmp_path / "store", create=True) as store:
        assert store.objects.root == str(tmp_path / "elsewhere")
        _roundtrip(store)
    assert any((tmp_path / "elsewhere").rglob("index.parquet"))
    assert not (tmp_path / "store" / "objects").exists()
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", "{not json")
    with pytest.raises(InvalidInputError, match="LOCALCKPT_STORAGE_OPTIONS"):
        localckpt.open(tmp_path / "store", create=True)
    monkeypatch.setenv("LOCALCKPT_STORAGE_OPTIONS", "[1, 2]")
    with pytest.raises(InvalidInputError, match="storage_options"):
        localckpt.open(tmp_path / "store", create=True)


def test_objects_set_beside_another_stores_url_stay_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$LOCALCKPT_OBJECTS (or [store] objects) set beside $LOCALCKPT_URL ([store] url)
    for the team's store became the objects of `--store ./scratch` too: its timelines'
    frames went to the team's bucket, where the team store's gc takes them for a failed
    ingest's. They apply only to the store named beside them, or to any when none is."""
    team, team_objects = tmp_path / "team", tmp_path / "team-objects"
    monkeypatch.setenv("LOCALCKPT_URL", str(team))
    monkeypatch.setenv("LOCALCKPT_OBJECTS", str(team_objects))
    with localckpt.open(create=True) as store:
        assert store.objects.root == str(team_objects)
    monkeypatch.chdir(tmp_path)
    for same in ("team", f"sqlite://{team}", f"{team}/"):  # the same store, spelled so
        with localckpt.open(same) as store:
            assert store.objects.root == str(team_objects), same
    with localckpt.open(tmp_path / "scratch", create=True) as store:
        assert store.objects.root == str(tmp_path / "scratch" / "objects")
        _roundtrip(store)
    assert not team_objects.exists() or not any(team_objects.rglob("index.parquet"))
    config = tmp_path / "config.toml"  # the same pairing in the config file
    config.write_text(f'[store]\nurl = "{team}"\nobjects = "{team_objects}"\n')
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(config))
    monkeypatch.delenv("LOCALCKPT_URL")
    monkeypatch.delenv("LOCALCKPT_OBJECTS")
    with localckpt.open() as store:
        assert store.objects.root == str(team_objects)
    with localckpt.open(tmp_path / "scratch") as store:
        assert store.objects.root == str(tmp_path / "scratch" / "objects")


def test_a_postgresql_store_without_its_own_objects_says_whose_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL store needs an objects URL; one set beside another store's URL is not
    taken, and the message says so (the backend's would say to set what is set)."""
    monkeypatch.setenv("LOCALCKPT_URL", "postgresql://ckpt:pw@127.0.0.1:1/team")
    monkeypatch.setenv("LOCALCKPT_OBJECTS", str(tmp_path / "team-objects"))
    with pytest.raises(InvalidInputError) as err:
        localckpt.open("postgresql://ckpt@127.0.0.1:1/other")
    assert str(err.value) == (
        "$LOCALCKPT_OBJECTS goes with $LOCALCKPT_URL, which names another store "
        "(postgresql://ckpt:***@127.0.0.1:1/team), so it is not the objects URL of "
        "postgresql://ckpt@127.0.0.1:1/other: pass objects= (--objects) for this store, or "
        "name it by the same URL")
    assert not (tmp_path / "team-objects").exists()


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nurl = "{tmp_path / "cfg-store"}"\n'
                      f'objects = "{tmp_path / "cfg-objects"}"\n')
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(config))
    with localckpt.open(create=True) as store:
        assert store.catalog.engine.path == str(tmp_path / "cfg-store" / "catalog.sqlite")
        assert store.objects.root == str(tmp_path / "cfg-objects")
    monkeypatch.setenv("LOCALCKPT_URL", "memory://")  # the environment wins over the file
    with localckpt.open(create=True) as store:
        assert store.catalog.describe() == "memory catalog"
    config.write_text("[store\nbroken")
    with pytest.raises(InvalidInputError, match="config"):
        localckpt.open(create=True)


@pytest.mark.parametrize("url", ["postgresql://u@127.0.0.1:1/db", "postgres://u@127.0.0.1:1/db"])
def test_postgresql_without_objects_is_refused(url: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        localckpt.open(url, create=True)
    assert "objects" in str(info.value)
    assert "LOCALCKPT_OBJECTS" in str(info.value)


def test_embedded_refusals(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        localckpt.open(afile, create=True)
    with pytest.raises(InvalidInputError, match="unknown option"):
        localckpt.open(tmp_path / "s", colour="blue", create=True)
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "LOCALCKPT.json").write_text(json.dumps({"format": 999}))
    with pytest.raises(SchemaVersionError, match="upgrade"):
        localckpt.open(newer, create=True)
    assert not (newer / "catalog.sqlite").exists(), "a refused store must not be touched"


FAKE_CALLS: list[tuple[Any, ...]] = []


def _fake_factory(
    url: str, objects: str | None, storage_options: dict[str, Any], options: dict[str, Any]
) -> tuple[Catalog, Objects]:
    FAKE_CALLS.append((url, objects, storage_options, options))
    return memory_catalog(), Objects.from_url("memory://lc-fake-backend")


def test_registered_backend_is_used_and_password_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(_REGISTRY, "fakepg", (f"{__name__}:_fake_factory", "pip install fake"))
    FAKE_CALLS.clear()
    store = localckpt.open("FakePG://alice:s3cret@db.example/x", objects="memory://o",
                           storage_options={"key": "k"}, schema="s1")
    assert FAKE_CALLS == [
        ("FakePG://alice:s3cret@db.example/x", "memory://o", {"key": "k"},
         {"schema": "s1", "create": False})]  # factories are told whether they may create
    assert "s3cret" not in store.url and "alice:***@" in store.url
    assert "s3cret" not in repr(store)
    assert "fakepg" in registered_schemes()


def test_missing_backend_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_REGISTRY, "ghost", ("localckpt_no_such_module:factory",
                                             "pip install localckpt-ghost"))
    with pytest.raises(InvalidInputError, match="pip install localckpt-ghost"):
        localckpt.open("ghost://x", create=True)


def test_env_does_not_leak_between_tests() -> None:
    # conftest's autouse fixture isolates every test from the developer's settings
    assert "LOCALCKPT_URL" not in os.environ
    assert not Path(os.environ["LOCALCKPT_CONFIG"]).exists()


@pytest.mark.parametrize("url", ["s3://bucket/store", "gs://bucket/store"])
def test_an_object_store_url_given_as_the_store_says_where_it_goes(url: str) -> None:
    """`--store s3://b/x` said only "unknown store URL scheme 's3'": an S3 bucket holds a
    store's objects, beside a catalog (a directory or PostgreSQL)."""
    with pytest.raises(InvalidInputError, match=r"unknown store URL scheme .*; an object "
                       r"store URL \(\w+://\.\.\.\) goes in objects= \(--objects\), beside a "
                       "catalog"):
        localckpt.open(url)


def test_an_unknown_scheme_gets_no_object_store_hint() -> None:
    with pytest.raises(InvalidInputError) as err:
        localckpt.open("nosuch://x")
    assert "objects=" not in str(err.value)
