"""pytest fixtures for testing your own pipeline code against localckpt stores.

Installed with localckpt (entry point ``pytest11``, name ``localckpt``): nothing to add
to ``conftest.py``. Fixtures:

``localckpt_store``
    A fresh, empty store for the test, closed afterwards. Tests that use it run once per
    configured store (memory only, by default).
``localckpt_timeline``
    A small synthetic timeline (:data:`TIMELINE_FRAMES` frames of 24x32, fps 2) in
    ``localckpt_store``: a :class:`localckpt.Timeline`.
``localckpt_store_factory``
    A function returning another fresh store of the same kind (to test a sync between
    two stores); every store it made is closed afterwards.
``localckpt_store_kind``
    The spec of the current store (below), e.g. ``"memory"``.

Which stores, first found wins: ``@pytest.mark.localckpt_stores("memory", "embedded")`` on
a test; ``--localckpt-store SPEC`` (repeatable) on the command line;
``$LOCALCKPT_TEST_STORES`` (comma-separated); the ini option ``localckpt_stores``
(``[tool.pytest.ini_options] localckpt_stores = ["memory", "embedded"]``); else memory.
A SPEC is:

- ``memory``: the in-process reference store (``localckpt.open("memory://")``);
- ``embedded``: the embedded store (SQLite + files) in a temporary directory;
- ``env``: the store named by ``$LOCALCKPT_TEST_URL``, with ``$LOCALCKPT_TEST_OBJECTS``
  and ``$LOCALCKPT_TEST_STORAGE_OPTIONS`` (a JSON object). The plugin never reads
  ``$LOCALCKPT_URL``, so a test cannot touch the store you work with. Unset, the test
  skips, or fails in CI (see :mod:`localckpt.testing.ci`);
- a store URL (``env`` too): each test gets its own part of it, removed afterwards: a
  schema for ``postgresql://`` (dropped), a subdirectory of a plain directory, a prefix
  under ``$LOCALCKPT_TEST_OBJECTS`` when set (the objects URL; PostgreSQL needs it),
  opened with the options of ``$LOCALCKPT_TEST_STORAGE_OPTIONS``. Other schemes are
  opened as they are.

The plugin imports localckpt only when a fixture is used, so it costs nothing to test
runs that do not use it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import numpy as np

    from localckpt import Store, Timeline

__all__ = ["TIMELINE_FRAMES", "StoreFactory", "store_specs", "synthetic_frames"]

ENV_STORES = "LOCALCKPT_TEST_STORES"
ENV_URL = "LOCALCKPT_TEST_URL"
ENV_OBJECTS = "LOCALCKPT_TEST_OBJECTS"
ENV_OPTIONS = "LOCALCKPT_TEST_STORAGE_OPTIONS"
#: Frames in the ``localckpt_timeline`` fixture's timeline.
TIMELINE_FRAMES = 6


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("localckpt", "localckpt stores for the localckpt_store fixture")
    group.addoption(
        "--localckpt-store", action="append", dest="localckpt_stores", metavar="SPEC",
        help="run tests using localckpt_store on this store: memory, embedded, env or a URL "
        f"(repeatable; default ${ENV_STORES}, else the ini option, else memory)",
    )
    parser.addini("localckpt_stores", type="args", default=[],
                  help="stores for the localckpt_store fixture (memory, embedded, env, URL)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "localckpt_stores(*specs): run this test on these localckpt stores only")


def store_specs(config: pytest.Config) -> list[str]:
    """The configured specs: command line, then $LOCALCKPT_TEST_STORES, then ini."""
    specs = config.getoption("localckpt_stores") or []
    if not specs and os.environ.get(ENV_STORES):
        specs = [s.strip() for s in os.environ[ENV_STORES].split(",") if s.strip()]
    if not specs:
        specs = list(config.getini("localckpt_stores"))
    return specs or ["memory"]


def _spec_id(spec: str) -> str:
    if spec in ("memory", "embedded", "env"):
        return spec
    from localckpt.registry import redact, scheme_of

    return scheme_of(spec) or f"dir:{redact(spec)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "localckpt_store_kind" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "localckpt_store_kind" in (names.split(",") if isinstance(names, str) else names):
            return  # the test chose its own stores
    marker = metafunc.definition.get_closest_marker("localckpt_stores")
    specs = list(marker.args) if marker is not None else store_specs(metafunc.config)
    metafunc.parametrize("localckpt_store_kind", specs, ids=[_spec_id(s) for s in specs],
                         scope="function")


def _env_url() -> str:
    url = os.environ.get(ENV_URL)
    if not url:
        from .ci import unavailable

        unavailable(f"the localckpt store spec 'env' needs ${ENV_URL} (and ${ENV_OBJECTS}, "
                    f"${ENV_OPTIONS} for PostgreSQL)")
    return url


def _env_objects() -> tuple[str | None, dict[str, Any]]:
    text = os.environ.get(ENV_OPTIONS) or "{}"
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise pytest.UsageError(f"${ENV_OPTIONS} is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise pytest.UsageError(f"${ENV_OPTIONS} must be a JSON object of fsspec options")
    return os.environ.get(ENV_OBJECTS), options


class StoreFactory:
    """Fresh stores of one spec; :meth:`close_all` closes them and removes what they
    left (temporary directories go with pytest's tmp_path, schemas and object prefixes
    here)."""

    def __init__(self, spec: str, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.spec = spec
        self._tmp = tmp_path_factory
        self._stores: list[Store] = []
        self._cleanups: list[Callable[[], None]] = []

    def __call__(self, **options: Any) -> Store:
        import localckpt

        url, kwargs = self._location()
        kwargs.update(options)
        store = localckpt.open(url, create=True, environ=False, **kwargs)
        self._stores.append(store)
        return store

    def _location(self) -> tuple[str, dict[str, Any]]:
        if self.spec == "memory":
            return "memory://", {}
        if self.spec == "embedded":
            return str(self._tmp.mktemp("localckpt-store")), {}
        url = _env_url() if self.spec == "env" else self.spec
        objects, options = _env_objects()
        from localckpt.registry import scheme_of

        name = f"lct_{uuid.uuid4().hex[:20]}"  # this test's own schema / directory / prefix
        kwargs: dict[str, Any] = {"storage_options": options}
        if objects:
            kwargs["objects"] = prefix = f"{objects.rstrip('/')}/{name}"
            self._cleanups.append(lambda: _remove_prefix(prefix, options))
        scheme = scheme_of(url)
        if scheme in ("postgresql", "postgres"):
            if not objects:
                raise pytest.UsageError(
                    f"the localckpt store {_spec_id(url)} needs ${ENV_OBJECTS} (an objects "
                    "URL for frame shards, e.g. s3://bucket/prefix)")
            kwargs["schema"] = name
            self._cleanups.append(lambda: _drop_schema(url, name))
        elif scheme == "":
            url = os.path.join(url, name)
            self._cleanups.append(lambda: shutil.rmtree(url, ignore_errors=True))
        return url, kwargs

    def close_all(self) -> None:
        errors: list[BaseException] = []
        for store in self._stores:
            try:
                store.close()
            except Exception as exc:  # close every store even if one fails
                errors.append(exc)
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _remove_prefix(url: str, options: dict[str, Any]) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **options)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def synthetic_frames(n: int = TIMELINE_FRAMES, height: int = 24, width: int = 32
                     ) -> list[np.ndarray]:
    """n small HxWx3 uint8 frames: a gradient with a bright square moving right, so
    consecutive frames differ and every frame is reproducible."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(n):
        img = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                        np.full_like(x, 60)], axis=-1).astype(np.uint8)
        left = (4 * i) % max(width - 6, 1)
        img[height // 3: height // 3 + 6, left:left + 6] = 255
        frames.append(img)
    return frames


@pytest.fixture
def localckpt_store_kind(request: pytest.FixtureRequest) -> str:
    """The spec of the current localckpt_store (memory unless configured)."""
    return str(getattr(request, "param", "memory"))


@pytest.fixture
def localckpt_store_factory(localckpt_store_kind: str,
                            tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreFactory]:
    """Call it for a fresh store of the current kind; all are closed after the test."""
    factory = StoreFactory(localckpt_store_kind, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def localckpt_store(localckpt_store_factory: StoreFactory) -> Store:
    """A fresh, empty localckpt store (memory unless configured: see the module doc)."""
    return localckpt_store_factory()


@pytest.fixture
def localckpt_timeline(localckpt_store: Store) -> Timeline:
    """A synthetic timeline of TIMELINE_FRAMES frames in localckpt_store (PNG: frames read
    back exactly as :func:`synthetic_frames` made them)."""
    return localckpt_store.create_timeline(
        "synthetic://localckpt-test", "test", synthetic_frames(), fps=2.0, codec="png")
