"""Where a store is, as a value another process can open: what a StageRun pickles to.

A location holds the store's URL (an embedded store's absolute directory; a PostgreSQL
URL without its password), its objects URL, the storage options that are not secrets,
and the catalog options the store was opened with (embedded: fsync, timeout; PostgreSQL:
schema, max_size, timeout, prepare_threshold, which a transaction-mode pooler needs at
None), and whether the process that opened the store read its environment. Secrets never
travel: the process that opens a location takes them from its own settings, by the rule
the opening process followed:

- a store opened with ``environ=False`` (a remote's, ``localckpt.config.remote(NAME).open()``,
  ``--store NAME``): the config file's remote whose url and objects are this store's (its
  ``storage_options_from`` names an environment variable or a credentials table), never
  ``$LOCALCKPT_*`` nor ``[store]``, which are another store's settings;
- any other: ``localckpt.open``'s rule (``localckpt.registry.resolve_storage_options``):
  ``$LOCALCKPT_STORAGE_OPTIONS`` (a JSON object of fsspec options), else the config
  file's ``[store]`` storage options.

The location's own options win over what this process supplies, so a worker's environment
never redirects a store (another ``endpoint_url``). A PostgreSQL password comes from libpq's
own places (``PGPASSWORD``, ``~/.pgpass``). A store that only its own process can open (in
memory, a DuckDB file, objects in ``memory://``) has no location: InvalidInputError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["StoreLocation"]

_CONNINFO_PASSWORD = re.compile(r"\s*\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


#: fsspec options about this process's caches, not about the store: left behind
_PROCESS_LOCAL = frozenset({"skip_instance_cache", "use_listings_cache", "listings_expiry_time"})


def _same(a: str, b: str) -> bool:
    """Whether two URLs name one place as a remote's entry and a store may spell it:
    s3a:// is s3://, a trailing slash and sqlite:/// before a directory say nothing."""
    def norm(url: str) -> str:
        url = url.rstrip("/") or url
        for alias, scheme in (("s3a://", "s3://"), ("sqlite:///", "/")):
            if url.startswith(alias):
                url = scheme + url[len(alias):]
        return url

    return norm(a) == norm(b)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """over's options on base's, key by key into nested tables: the location's
    client_kwargs (its endpoint, without secrets) must not drop the credentials this
    process keeps in its own client_kwargs."""
    out = dict(base)
    for key, value in over.items():
        mine = out.get(key)
        out[key] = (_merged(mine, value) if isinstance(mine, Mapping)
                    and isinstance(value, Mapping) else value)
    return out


def _public(options: Mapping[str, Any]) -> dict[str, Any]:
    """options without the ones that look like secrets by name or value (nested tables
    included)."""
    from ..config import secret_keys

    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in _PROCESS_LOCAL or secret_keys(
                {key: None if isinstance(value, Mapping) else value}):
            continue
        out[key] = _public(value) if isinstance(value, Mapping) else value
    return out


def _without_password(url: str) -> str:
    """A PostgreSQL URL or conninfo without its password (libpq finds it elsewhere)."""
    if "://" not in url:  # libpq key=value pairs
        return _CONNINFO_PASSWORD.sub("", url).strip()
    parts = urlsplit(url)
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.split(':', 1)[0]}@{host}")
    if "password=" in parts.query:
        query = "&".join(p for p in parts.query.split("&") if not p.startswith("password="))
        parts = parts._replace(query=query)
    return parts.geturl()


@attrs.frozen
class StoreLocation:
    """A store's settings without secrets (see the module docstring)."""

    url: str
    objects: str
    storage_options: Mapping[str, Any] = attrs.field(factory=dict)
    options: Mapping[str, Any] = attrs.field(factory=dict)
    #: whether the opening process read $LOCALCKPT_* and [store] (False: a remote's store)
    environ: bool = True

    @classmethod
    def of(cls, store: Store) -> StoreLocation:
        """The location of an open store; InvalidInputError when only this process can
        open it."""
        engine = getattr(store.catalog, "engine", None)
        kind = type(engine).__name__
        objects = store.objects
        protocols = () if objects.is_local else (
            (objects.fs.protocol,) if isinstance(objects.fs.protocol, str)
            else tuple(objects.fs.protocol))
        if kind == "SqliteEngine" and not engine.memory:  # type: ignore[union-attr]
            url = os.path.dirname(os.path.abspath(engine.path))  # type: ignore[union-attr]
            options: dict[str, Any] = {"fsync": engine.fsync,  # type: ignore[union-attr]
                                       "timeout": engine.timeout}  # type: ignore[union-attr]
        elif kind == "PostgresEngine":
            url = _without_password(store.url)
            options = {name: getattr(engine, name) for name in  # a pooler's prepare_threshold
                       ("schema", "max_size", "timeout", "prepare_threshold")}
        else:
            raise InvalidInputError(
                f"the store {store.url or store.catalog.describe()} can be used by this "
                "process only (in memory, or a DuckDB file), so its runs cannot go to other "
                "processes: use an embedded store (a directory) or PostgreSQL for workers, "
                "or run.map(fn) without an executor")
        if "memory" in protocols:
            raise InvalidInputError(
                f"the objects of {store.url} are in this process's memory "
                f"({objects.describe()}); other processes cannot read its frames: use a "
                "directory or s3:// for objects when runs go to workers")
        public = _public(objects.fs.storage_options) if not objects.is_local else {}
        return cls(url, objects.describe(), public, options, store.reads_environ)

    def secret_options(self) -> dict[str, Any]:
        """The storage options this process supplies, by the rule the opening process
        followed (see the module docstring)."""
        if self.environ:
            from ..registry import resolve_storage_options

            return dict(resolve_storage_options(None, environ=True))
        from ..config import remotes

        for remote in remotes():
            if _same(remote.url, self.url) and (remote.objects is None
                                                or _same(remote.objects, self.objects)):
                return remote.resolved_options()
        return {}  # none here: the filesystem's own chain (AWS env, instance role) applies

    def credentials_source(self) -> str:
        """Where this process takes the store's S3 credentials from, by the rule of
        secret_options, and how to set them: said when S3 finds none."""
        from ..config import config_path, remotes, store_credentials_source

        if self.environ:
            return "This worker follows localckpt.open's rule. " + store_credentials_source(
                False)
        near = []
        for remote in remotes():
            if _same(remote.url, self.url) and (remote.objects is None
                                                or _same(remote.objects, self.objects)):
                return remote.credentials_source(worker=True)
            if _same(remote.url, self.url):
                near.append(f"{remote.name!r} has this url but objects {remote.objects}")
        other = f" ({'; '.join(near)}: a store opened with other --objects than its " \
                "remote's needs a remote of its own)" if near else ""
        return (f"This worker takes a remote's store's credentials from the remote whose url "
                f"and objects are the store's ({self.url}, {self.objects}), and "
                f"{config_path()} holds none here{other}: add one (`localckpt remote add "
                f"NAME {self.url} --objects {self.objects} --storage-options-from VAR`) with "
                'VAR set to {"key": "...", "secret": "..."} in the worker\'s environment, '
                "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY there")

    def open(self) -> Store:
        """Open the store here, with this process's secrets under the location's options."""
        from ..objects import credentials_source
        from ..registry import open as open_store

        options = _merged(self.secret_options(), self.storage_options)
        with credentials_source(self.credentials_source):
            return open_store(self.url, objects=self.objects, storage_options=options,
                              environ=False, **dict(self.options))
