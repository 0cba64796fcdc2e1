"""Shared fixtures: hypothesis profiles, store kinds, fresh stores, throwaway servers.

Store kinds (``store_kind`` is parametrised over the available ones):

    memory               SQLite in memory + memory:// objects (the reference backend)
    embedded             embedded catalog (SQLite) and objects in a temporary directory
    embedded-memobjects  embedded catalog in a temporary directory, objects on memory://
    embedded-s3          embedded catalog in a temporary directory, objects on S3
    postgres-s3          PostgreSQL catalog (own schema per store), objects on S3
    postgres-local       PostgreSQL catalog (own schema per store), objects in a directory
    duckdb               DuckDB catalog file, objects beside it (one process: the
                         conformance suite only, not in store_kind)

Servers start once per session (``backends.postgres.ThrowawayPostgres``,
``backends.s3.LocalS3``) unless the environment names running ones::

    LOCALCKPT_TEST_PG_DSN        postgresql://user@host/db
    LOCALCKPT_TEST_S3_URL        s3://bucket[/prefix]
    LOCALCKPT_TEST_S3_OPTIONS    JSON object of s3fs options (endpoint_url, key, secret)

With CI set (``localckpt.testing.ci.in_ci``: 1, true, yes) a server that cannot start fails
the tests that need it; elsewhere they skip, saying why. LOCALCKPT_TEST_KINDS=memory,embedded
limits the kinds (a quick run). HYPOTHESIS_PROFILE picks default / ci / nightly (in CI: ci
unless it is set).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import localckpt
from localckpt import Store
from localckpt.testing.ci import in_ci, unavailable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the top-level `backends` package (servers) is not installed
    sys.path.insert(0, str(ROOT))

IN_CI = in_ci()  # the one rule, shared with test files and the pytest plugin

# Tests fork worker processes from a pytest process that earlier tests left garbage in
# (pyarrow buffers, sqlite3 connections, ...). Collected in a child, such an object is
# finalized with C state other threads held at the fork: a child segfaulted so in a
# stress test's garbage collection. Frozen at each fork, the parent's objects are never
# collected in the child (the parent unfreezes its own at once).
gc.collect()
os.register_at_fork(before=gc.freeze, after_in_parent=gc.unfreeze)

# -- hypothesis profiles --------------------------------------------------------------------

settings.register_profile(
    "default", max_examples=25, deadline=None, stateful_step_count=20,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci", max_examples=15, deadline=None, derandomize=True, print_blob=True,
    stateful_step_count=15,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly", max_examples=500, deadline=None, stateful_step_count=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "default"))

# -- store kinds ----------------------------------------------------------------------------

LOCAL_KINDS = ("memory", "embedded", "embedded-memobjects")
S3_KINDS = ("embedded-s3", "postgres-s3")
PG_KINDS = ("postgres-s3", "postgres-local")
ALL_KINDS = (*LOCAL_KINDS, "embedded-s3", *PG_KINDS)
#: kinds only the conformance suite runs (a single-process engine)
EXTRA_KINDS = ("duckdb",)
REOPENABLE = frozenset((*ALL_KINDS, *EXTRA_KINDS)) - {"memory"}


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def available_kinds() -> list[str]:
    """Kinds whose code exists here. Server kinds are listed whether or not their server
    can start: a server that cannot start fails (CI) or skips, it is never left out."""
    wanted = os.environ.get("LOCALCKPT_TEST_KINDS")
    kinds = [k.strip() for k in wanted.split(",") if k.strip()] if wanted else list(ALL_KINDS)
    unknown = set(kinds) - set(ALL_KINDS) - set(EXTRA_KINDS)
    if unknown:
        raise pytest.UsageError(f"LOCALCKPT_TEST_KINDS names unknown kinds {sorted(unknown)}; "
                                f"known: {', '.join(ALL_KINDS)}")
    return kinds


_SELECTED = available_kinds()
KINDS = [k for k in _SELECTED if k in ALL_KINDS]
#: the kinds of the conformance suite: KINDS and the single-process ones
CONFORMANCE_KINDS = (_SELECTED if os.environ.get("LOCALCKPT_TEST_KINDS")
                     else [*ALL_KINDS, *EXTRA_KINDS])


_unavailable = unavailable


# -- servers, once per session --------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server: $LOCALCKPT_TEST_PG_DSN or a throwaway cluster."""
    if dsn := os.environ.get("LOCALCKPT_TEST_PG_DSN"):
        yield dsn
        return
    try:
        from backends.postgres import ThrowawayPostgres

        server = ThrowawayPostgres().start()
    except Exception as exc:
        _unavailable(f"cannot start a throwaway PostgreSQL: {type(exc).__name__}: {exc}")
        raise  # unreachable: _unavailable raises
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_base() -> Iterator[tuple[str, dict[str, Any]]]:
    """(s3://bucket[/prefix], storage_options): $LOCALCKPT_TEST_S3_URL or a local moto."""
    if url := os.environ.get("LOCALCKPT_TEST_S3_URL"):
        try:
            opts = json.loads(os.environ.get("LOCALCKPT_TEST_S3_OPTIONS") or "{}")
        except ValueError as exc:
            raise pytest.UsageError(f"LOCALCKPT_TEST_S3_OPTIONS is not JSON: {exc}") from exc
        yield url.rstrip("/"), opts
        return
    try:
        from backends.s3 import LocalS3

        server = LocalS3().start()
        bucket = server.make_bucket(f"localckpt-tests-{uuid.uuid4().hex[:12]}")
    except Exception as exc:
        _unavailable(f"cannot start a local S3 server (moto): {type(exc).__name__}: {exc}")
        raise
    try:
        yield bucket, server.storage_options
    finally:
        server.stop()


# -- fresh stores ---------------------------------------------------------------------------


class StoreFactory:
    """``new_store(kind)`` opens a fresh, empty store; every store is closed at teardown.

    ``reopen(store)`` closes a store and opens the same data again (not for "memory").
    """

    def __init__(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 default_kind: str | None) -> None:
        self._request = request
        self._tmp = tmp_path_factory
        self.default_kind = default_kind
        self._open: list[Store] = []
        self._how: dict[int, tuple[str, str, dict[str, Any]]] = {}
        self._cleanups: list[Callable[[], None]] = []

    def __call__(self, kind: str | None = None, **options: Any) -> Store:
        kind = kind or self.default_kind
        if kind is None:
            raise TypeError("new_store() needs a kind outside store_kind-parametrised tests")
        url, kwargs = self._location(kind)
        kwargs.update(options)
        return self._open_store(kind, url, kwargs)

    def can_reopen(self, kind: str) -> bool:
        return kind in REOPENABLE

    def reopen(self, store: Store) -> Store:
        """Close store and open its data again through localckpt.open (a fresh view)."""
        kind, url, kwargs = self._how[id(store)]
        if not self.can_reopen(kind):
            raise ValueError(f"a {kind} store cannot be reopened")
        self.close(store)
        return self._open_store(kind, url, kwargs)

    def close(self, store: Store) -> None:
        """Close store now (once); teardown skips it."""
        if store in self._open:
            self._open.remove(store)
            store.close()

    def close_all(self) -> None:
        errors = []
        while self._open:
            try:
                self._open.pop().close()
            except Exception as exc:  # close every store even if one fails
                errors.append(exc)
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        if errors:
            raise errors[0]

    def _open_store(self, kind: str, url: str, kwargs: dict[str, Any]) -> Store:
        store = localckpt.open(url, create=True, **kwargs)
        self._open.append(store)
        self._how[id(store)] = (kind, url, kwargs)
        return store

    def _dir(self) -> str:
        return str(self._tmp.mktemp("store"))

    def _memory_objects(self) -> str:
        url = f"memory://lc-test-{uuid.uuid4().hex}"
        self._cleanups.append(lambda: _rm_memory(url))
        return url

    def _s3_objects(self) -> tuple[str, dict[str, Any]]:
        base, opts = self._request.getfixturevalue("s3_base")
        return f"{base}/{uuid.uuid4().hex}", dict(opts)

    def _location(self, kind: str) -> tuple[str, dict[str, Any]]:
        if kind == "memory":
            return "memory://", {"objects": self._memory_objects()}
        if kind == "embedded":
            return self._dir(), {}
        if kind == "embedded-memobjects":
            return self._dir(), {"objects": self._memory_objects()}
        if kind == "embedded-s3":
            objects, opts = self._s3_objects()
            return self._dir(), {"objects": objects, "storage_options": opts}
        if kind == "duckdb":
            return f"duckdb://{self._dir()}/catalog.duckdb", {}
        if kind in PG_KINDS:
            dsn = self._request.getfixturevalue("pg_dsn")
            schema = f"t_{uuid.uuid4().hex}"
            self._cleanups.append(lambda: _drop_schema(dsn, schema))
            if kind == "postgres-s3":
                objects, opts = self._s3_objects()
                return dsn, {"objects": objects, "storage_options": opts, "schema": schema}
            return dsn, {"objects": self._dir(), "schema": schema}
        raise ValueError(f"unknown store kind {kind!r}; known: {', '.join(ALL_KINDS)}")


def _rm_memory(url: str) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class FactoryHooks:
    """Store hooks of the shipped state machines (localckpt.testing.stateful), from a
    StoreFactory: mix in before the machine and set ``factory`` and ``kind``."""

    factory: StoreFactory
    kind: str

    def make_store(self) -> Store:
        return self.factory(self.kind)

    def can_reopen(self) -> bool:
        return self.factory.can_reopen(self.kind)

    def reopen_store(self, store: Store) -> Store:
        return self.factory.reopen(store)

    def close_store(self, store: Store) -> None:
        self.factory.close(store)


def machine_for(machine: type, factory: StoreFactory, kind: str) -> type:
    """machine with its store from factory, of this kind."""
    return type(f"{machine.__name__}_{kind.replace('-', '_')}", (FactoryHooks, machine),
                {"factory": factory, "kind": kind})


@pytest.fixture(params=KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each available store kind in turn."""
    return str(request.param)


@pytest.fixture
def new_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreFactory]:
    """A StoreFactory; kind defaults to store_kind when the test is parametrised by it."""
    default = request.getfixturevalue("store_kind") if "store_kind" in request.fixturenames \
        else None
    factory = StoreFactory(request, tmp_path_factory, default)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                       ) -> None:
    """Tests never read the developer's LOCALCKPT_* variables or config file."""
    for name in ("LOCALCKPT_URL", "LOCALCKPT_OBJECTS", "LOCALCKPT_STORAGE_OPTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(tmp_path_factory.getbasetemp() / "no-config.toml"))


def chromium_browser() -> Iterator[Any]:
    """Debian's headless Chromium driven over CDP (tests/chromium.py), closed after use;
    missing, it fails the test under CI and skips it elsewhere."""
    try:
        from chromium import Browser, find_chromium
    except ImportError as exc:  # websocket-client missing
        _no_browser(f"cannot drive Chromium: {exc} (pip install websocket-client)")
    exe = find_chromium()
    if exe is None:
        _no_browser("no chromium on PATH (Debian: apt-get install -y chromium)")
    b = Browser(exe)
    try:
        yield b
    finally:
        b.close()


def browser_page(browser: Any, *size: int) -> Iterator[Any]:
    """A new tab of a chromium_browser (size: width, height), closed after use (a page
    fixture's body)."""
    p = browser.new_page(*size)
    yield p
    browser.send("Target.closeTarget", {"targetId": p.target})
    browser.sessions.pop(p.session, None)


def _no_browser(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why} (CI=true: a missing browser is a failure)", pytrace=False)
    pytest.skip(why)
