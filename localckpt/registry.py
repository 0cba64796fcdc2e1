"""Choosing a backend by URL scheme, and ``localckpt.open``.

Each scheme maps to a lazily imported factory ``(url, objects, storage_options, options)
-> (Catalog, Objects)`` plus an install hint (options always holds ``create``: whether the
factory may make a store that does not exist yet), so importing localckpt never imports psycopg
or s3fs. Third-party backends register under the entry-point group ``localckpt.backends``.

Settings come from arguments, then the environment, then the config file (only for the
store being opened: ``environ=False`` reads neither, for a push or pull's other store,
whose settings come from its remote entry, see :mod:`localckpt.config`)::

    LOCALCKPT_URL               store URL (default ./.localckpt, the embedded store)
    LOCALCKPT_OBJECTS           objects URL (default: inside the embedded directory), of
                                the store LOCALCKPT_URL names when it is set
    LOCALCKPT_STORAGE_OPTIONS   JSON object of fsspec options (endpoint_url, key, secret, ...)
    LOCALCKPT_CONFIG            TOML file with [store] url / objects / storage_options_from,
                                [storage_options] and [remotes.NAME]
                                (default ~/.config/localckpt/config.toml)
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .arguments import shown
from .catalog import Catalog
from .errors import InvalidInputError
from .objects import Objects, credentials_source
from .store import Store

__all__ = [
    "DEFAULT_URL",
    "default_url",
    "has_password",
    "known_scheme",
    "open",
    "redact",
    "register_backend",
    "registered_schemes",
    "resolve_storage_options",
    "scheme_of",
]

DEFAULT_URL = "./.localckpt"

Factory = Callable[[str, str | None, dict[str, Any], dict[str, Any]], tuple[Catalog, Objects]]

_REGISTRY: dict[str, tuple[str, str]] = {
    "": ("localckpt.backends.factories:embedded", "pip install localckpt"),
    "file": ("localckpt.backends.factories:embedded", "pip install localckpt"),
    "sqlite": ("localckpt.backends.factories:embedded", "pip install localckpt"),
    "duckdb": ("localckpt.backends.factories:duckdb", "pip install localckpt"),
    "memory": ("localckpt.backends.factories:memory", "pip install localckpt"),
    "postgresql": ("localckpt.backends.factories:postgres", "pip install 'localckpt[postgres,s3]'"),
    "postgres": ("localckpt.backends.factories:postgres", "pip install 'localckpt[postgres,s3]'"),
}


def register_backend(scheme: str, target: str, install_hint: str = "") -> None:
    """Map a URL scheme to "module:factory" (a dotted path, imported on first use)."""
    _REGISTRY[scheme.lower()] = (target, install_hint)


def entry_points(group: str) -> Any:
    """Installed entry points of a group (importlib.metadata is imported only when a
    scheme is not built in: it costs more than the rest of `import localckpt`)."""
    from importlib.metadata import entry_points as found

    return found(group=group)


def registered_schemes() -> list[str]:
    found = set(_REGISTRY) - {""}
    found.update(ep.name for ep in entry_points(group="localckpt.backends"))
    return sorted(found)


def known_scheme(url: str) -> str:
    """The scheme of url if a backend is registered for it, else InvalidInputError."""
    scheme = scheme_of(url)
    if scheme not in _REGISTRY and not any(
        ep.name == scheme for ep in entry_points(group="localckpt.backends")
    ):
        objects = (f"; an object store URL ({scheme}://...) goes in objects= (--objects), "
                   "beside a catalog: a directory, or postgresql://..."
                   if scheme in _OBJECT_SCHEMES else "")
        raise InvalidInputError(
            f"unknown store URL scheme {scheme!r}; known schemes: "
            f"{', '.join(registered_schemes())} (or a plain directory path){objects}"
        )
    return scheme


#: schemes of object stores (fsspec's), which name where frames go, not a catalog
_OBJECT_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs"})


def _load_factory(scheme: str) -> Factory:
    if scheme not in _REGISTRY:
        for ep in entry_points(group="localckpt.backends"):
            if ep.name == scheme:
                return ep.load()
        known_scheme(f"{scheme}://")  # raises, naming the known schemes
    target, hint = _REGISTRY[scheme]
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"the {scheme!r} backend needs a package that is not installed ({exc.name}); "
            f"install it with: {hint}"
        ) from exc
    return getattr(module, attr)


#: libpq connection keywords (https://www.postgresql.org/docs/current/libpq-connect.html):
#: a string of ``keyword=value`` pairs that starts with one of them is a PostgreSQL store.
_LIBPQ_KEYWORDS = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "service",
    "options", "application_name", "connect_timeout", "sslmode", "sslcert", "sslkey",
    "sslrootcert", "target_session_attrs", "client_encoding", "gssencmode", "krbsrvname",
})
_CONNINFO = re.compile(r"\s*([a-z_]+)\s*=")
_CONNINFO_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def _is_conninfo(url: str) -> bool:
    m = _CONNINFO.match(url)
    return m is not None and m.group(1) in _LIBPQ_KEYWORDS


def scheme_of(url: str) -> str:
    """The backend scheme of a store URL; "" for a plain path, "postgresql" for a libpq
    ``key=value`` connection string (``"host=db dbname=pipelines"``)."""
    if _is_conninfo(url):
        return "postgresql"
    if "://" not in url:
        return ""
    return urlsplit(url).scheme.lower()


def open(
    url: str | os.PathLike[str] | None = None,
    *,
    objects: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    create: bool = False,
    environ: bool = True,
    **options: Any,
) -> Store:
    """Open the store at url.

    url: a directory or ``sqlite:///dir`` (embedded: an SQLite catalog + Parquet + files,
    nothing to start), ``memory://`` (in-process, for tests), ``postgresql://user@host/db``
    (PostgreSQL catalog; needs objects=), ``duckdb:///file.duckdb`` (the catalog in a
    DuckDB file, one process at a time). Default: ``$LOCALCKPT_URL``, else ``./.localckpt``.
    objects: where frame shards go (``s3://bucket/prefix``, a directory, ``memory://x``).
    storage_options: fsspec options for objects (``endpoint_url``, ``key``, ``secret``).
    create: make the store when there is none (an embedded directory that is missing or
        empty, a PostgreSQL schema that does not exist). Without it a missing store is
        NotFoundError naming the place, and nothing is created.
    environ: read ``$LOCALCKPT_*`` and the config file for what is not given. False for
        a second store (the remote of a push or pull), which must not pick up this
        store's settings.
    options: backend options (embedded: ``fsync=True``, ``timeout=10`` seconds to wait for
        another writer; postgresql: ``schema="localckpt"``, ``max_size=8`` connections,
        ``timeout``, ``prepare_threshold``).
    """
    if not isinstance(create, bool) or not isinstance(environ, bool):
        raise InvalidInputError("create and environ must be True or False")
    if environ:
        from .config import store_settings

        store_cfg = store_settings()
    else:
        store_cfg = {}
    if url is None:
        url = default_url(store_cfg)[0] if environ else DEFAULT_URL
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url:
        raise InvalidInputError(
            f"store URL must be a non-empty string or path, not {shown(url)}"
        )
    if objects is None and environ:
        objects = paired_objects(url, store_cfg)
        if objects is None and scheme_of(url) in ("postgresql", "postgres"):
            _refuse_unpaired(url, store_cfg)
    if objects is not None and not isinstance(objects, str | os.PathLike):
        raise InvalidInputError(
            f"objects must be a URL or directory string, not {type(objects).__name__}"
        )
    if isinstance(objects, os.PathLike):
        objects = os.fspath(objects)
    _check_location(url, "store URL")
    if objects is not None:
        _check_location(objects, "objects URL")
    given = storage_options is not None
    storage_options = resolve_storage_options(storage_options, environ=environ)
    factory = _load_factory(scheme_of(url))
    source = None
    if environ:
        from .config import store_credentials_source

        source = functools.partial(store_credentials_source, given)
    with credentials_source(source):
        catalog, objs = factory(url, objects, dict(storage_options),
                                {**options, "create": create})
    return Store(catalog, objs, url=redact(url), reads_environ=environ)


def paired_objects(url: str, settings: Mapping[str, Any]) -> str | None:
    """The objects URL the environment or the config file's ``[store]`` (settings) gives
    the store at url: ``$LOCALCKPT_OBJECTS``, else ``[store] objects``, each only where
    the URL set beside it (``$LOCALCKPT_URL``, ``[store] url``) is unset or names this
    store. A team's bucket set beside the team's URL must not become the objects of
    ``--store ./scratch``: the frames of its timelines would go to the team's bucket,
    where the team store's gc takes them for a failed ingest's and deletes them."""
    for objects, named, _ in _objects_beside_urls(settings):
        if objects and (not named or _place(named) == _place(url)):
            return str(objects)
    return None


def _objects_beside_urls(settings: Mapping[str, Any]) -> list[tuple[Any, Any, str]]:
    """(objects URL, the store URL set beside it, how to say so), in the order they
    apply: the environment's, then the config file's [store] (settings)."""
    return [(os.environ.get("LOCALCKPT_OBJECTS"), os.environ.get("LOCALCKPT_URL"),
             "$LOCALCKPT_OBJECTS goes with $LOCALCKPT_URL"),
            (settings.get("objects"), settings.get("url"),
             "[store] objects goes with [store] url in the config file")]


def _refuse_unpaired(url: str, settings: Mapping[str, Any]) -> None:
    """A store that needs an objects URL, where one is set beside another store's URL:
    say why it is not taken (the backend's own message would say to set it)."""
    for objects, named, where in _objects_beside_urls(settings):
        if objects and named:
            raise InvalidInputError(
                f"{where}, which names another store ({redact(str(named))}), so it is not "
                f"the objects URL of {redact(url)}: pass objects= (--objects) for this "
                "store, or name it by the same URL")


def _place(url: str) -> str:
    """What a store URL names, for telling two apart: an embedded store's directory (a
    path, ``sqlite://``, ``file://``), else the URL itself."""
    if scheme_of(url) in ("", "sqlite", "file"):
        from .backends.factories import directory_of

        try:
            return "dir:" + os.path.realpath(directory_of(url))
        except (InvalidInputError, OSError, ValueError):
            return url
    return url


def default_url(settings: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """The store URL :func:`open` takes when given none (reading the environment), and
    where it comes from: ``$LOCALCKPT_URL``, ``[store] url in FILE`` or ``the default``
    (``./.localckpt``), for a message that must say where to correct it. settings: the
    config file's ``[store]`` settings, when they were read already."""
    if url := os.environ.get("LOCALCKPT_URL"):
        return url, "$LOCALCKPT_URL"
    from .config import config_path, store_settings

    if url := (store_settings() if settings is None else settings).get("url"):
        return url, f"[store] url in {config_path()}"
    return DEFAULT_URL, "the default"


def resolve_storage_options(storage_options: Mapping[str, Any] | None, *,
                            environ: bool) -> Mapping[str, Any]:
    """The fsspec options a store is opened with: the given ones, else (environ)
    ``$LOCALCKPT_STORAGE_OPTIONS``, else the config file's ``[store]`` options; {} for
    a store opened without the environment. One rule for ``open`` and for the workers
    of a run (localckpt.runs.location), so both resolve a store's options alike."""
    if storage_options is None and not environ:
        storage_options = {}
    if storage_options is None:
        env_opts = os.environ.get("LOCALCKPT_STORAGE_OPTIONS")
        if env_opts:
            from .safefiles import parse_json

            try:
                data = env_opts.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInputError("LOCALCKPT_STORAGE_OPTIONS is not valid text") from None
            storage_options = parse_json(data, "environment variable LOCALCKPT_STORAGE_OPTIONS")
            if not isinstance(storage_options, dict):
                raise InvalidInputError(
                    "LOCALCKPT_STORAGE_OPTIONS must be a JSON object of fsspec options "
                    "(storage_options), e.g. {\"endpoint_url\": \"http://127.0.0.1:9000\"}")
        else:
            from .config import store_storage_options

            storage_options = store_storage_options()
    if not isinstance(storage_options, Mapping):
        raise InvalidInputError("storage_options must be a mapping of fsspec options")
    return storage_options



def _check_location(location: str, what: str) -> None:
    """A URL or path that the file system (or a URL parser) can take: no NUL, text the
    file system can encode, no path component longer than 255 bytes."""
    if "\x00" in location:
        raise InvalidInputError(f"the {what} {location!r} holds a NUL character")
    try:
        encoded = os.fsencode(location)
    except UnicodeEncodeError:
        raise InvalidInputError(f"the {what} {location!r} holds text the file system cannot "
                                "encode (a lone surrogate)") from None
    if scheme_of(location) in ("", "file", "duckdb") and any(
            len(part) > 255 for part in encoded.split(b"/")):
        raise InvalidInputError(f"the {what} has a name longer than 255 bytes, more than a "
                                "file system allows; choose a shorter one")


def has_password(url: str) -> bool:
    """Whether url carries a password (``user:pw@``, ``?password=``, ``password=...``)."""
    if _is_conninfo(url):
        return _CONNINFO_PASSWORD.search(url) is not None
    if "://" not in url:
        return False
    try:
        parts = urlsplit(url)
        return parts.password is not None or "password=" in parts.query
    except ValueError:  # a malformed netloc: assume the worst
        return True


def redact(url: str) -> str:
    """The URL without its password (``user:***@``, ``password=***``), for output."""
    if not has_password(url):
        return url
    if _is_conninfo(url):
        return _CONNINFO_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed netloc (bad port): show no part of it
        return url.split("://", 1)[0] + "://***"
    if password is not None:
        user, _, host = parts.netloc.rpartition("@")
        name = user.split(":", 1)[0]
        parts = parts._replace(netloc=f"{name}:***@{host}")
    if "password=" in parts.query:
        parts = parts._replace(query=re.sub(r"(password=)[^&]*", r"\1***", parts.query))
    return parts.geturl()
