"""The config file: the default store's settings and named remotes; secrets kept apart.

``$LOCALCKPT_CONFIG`` (default ``$XDG_CONFIG_HOME/localckpt/config.toml``, and
``~/.config/localckpt/config.toml`` where XDG_CONFIG_HOME is unset)::

    [store]                          # the store used when neither --store nor
    url = "/home/me/work/.localckpt" # $LOCALCKPT_URL names one
    objects = "s3://frames/laptop"
    storage_options_from = "laptop-s3"

    [storage_options]                # non-secret fsspec options of [store]
    endpoint_url = "http://127.0.0.1:9000"

    [remotes.prod]                   # `localckpt remote add prod URL --objects ...`
    url = "postgresql://ckpt@db.internal/pipelines"
    objects = "s3://frames/ckpt"
    storage_options_from = "PROD_S3"
    storage_options = { endpoint_url = "https://minio.internal" }

Secrets never go into this file: a URL with a password, an objects URL with credentials
(``s3://KEY:SECRET@bucket``), a storage option named like a secret (``key``, ``secret``,
``token``, ``password``, ``credential``, ``Authorization``, ``Cookie``, ... in any case,
nested tables such as ``headers`` included), or one whose value is a URL with credentials
(``http://KEY:SECRET@host``) or an HTTP credential (``Bearer ...``, ``Basic ...``), is
refused when a remote is added and when the file is read (naming the key, never the
value). Both files are read as control files (``localckpt.safefiles``): regular files of
at most 1 MB, nested at most 32 levels.

``storage_options_from = NAME`` names where the secrets are instead, looked up when the
store is opened:

1. the environment variable ``NAME``, holding a JSON object of fsspec options; else
2. the table ``[NAME]`` of the credentials file ``$LOCALCKPT_CREDENTIALS`` (default
   ``~/.config/localckpt/credentials.toml``), which must be readable by its owner only
   (``chmod 600``) and owned by the user reading it, as ssh insists for its keys.

Those options are merged over the non-secret ones. A PostgreSQL password comes from
libpq's own places (``~/.pgpass``, ``PGPASSFILE``), which are per host and database.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from .arguments import text
from .errors import InvalidInputError, NotFoundError
from .registry import has_password
from .safefiles import check_depth, load_toml_file, parse_json

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "Remote",
    "add_remote",
    "check_remote_name",
    "check_storage_options_from",
    "config_path",
    "credentials_path",
    "load",
    "remote",
    "remotes",
    "remove_remote",
    "secret_keys",
    "storage_options_from",
    "store_credentials_source",
    "store_settings",
    "store_storage_options",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: Option names that hold secrets (matched case-insensitively, also as parts of a name).
_SECRET_WORDS = ("secret", "password", "passwd", "token", "credential", "private",
                 "authorization", "cookie", "apikey", "api_key", "api-key")
_SECRET_NAMES = frozenset({"key", "access_key", "access_key_id", "aws_access_key_id",
                           "account_key", "connection_string", "anon_key"})
#: Values that are HTTP credentials whatever their option's name (an Authorization header's)
_HTTP_CREDENTIAL = re.compile(r"\s*(bearer|basic|digest|negotiate|aws4-hmac-sha256)\s+\S",
                              re.IGNORECASE)


def _config_dir() -> str:
    """$XDG_CONFIG_HOME/localckpt, or ~/.config/localckpt where it is unset (the XDG
    Base Directory rule: a relative value is ignored too)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.expanduser("~/.config")
    return os.path.join(base, "localckpt")


def config_path() -> str:
    return os.environ.get("LOCALCKPT_CONFIG") or os.path.join(_config_dir(), "config.toml")


def credentials_path() -> str:
    return os.environ.get("LOCALCKPT_CREDENTIALS") or os.path.join(_config_dir(),
                                                                   "credentials.toml")


def _read_toml(path: str, what: str, *, private: bool = False) -> dict[str, Any]:
    """A TOML file read as a control file (localckpt.safefiles: a regular file, size and
    nesting capped); {} when there is none."""
    return load_toml_file(path, f"localckpt {what}", private=private)


def _url_credentials(value: Any, header: bool = False) -> bool:
    """Whether value is a URL that carries a user or a password (``http://K:S@host``), or,
    for a header's value (header), an HTTP credential (``Bearer ...``: elsewhere a value
    may well start with "Basic ")."""
    if not isinstance(value, str):
        return False
    if header and _HTTP_CREDENTIAL.match(value):
        return True
    if "://" not in value:
        return False
    if has_password(value):
        return True
    try:
        return urlsplit(value).username is not None
    except ValueError:  # a malformed netloc: assume the worst
        return True


def secret_keys(options: Any, prefix: str = "", header: bool = False) -> list[str]:
    """The (dotted) names of options that look like secrets, nested mappings included:
    by their name (key, secret, token, Authorization, ... in any case) or by their value
    (a URL with credentials; ``Bearer ...`` in a table of headers); names only, so
    messages never show a value."""
    found: list[str] = []
    if isinstance(options, Mapping):
        for k, v in options.items():
            name = str(k).lower()
            inner = header or "header" in name
            if name in _SECRET_NAMES or any(w in name for w in _SECRET_WORDS) or \
                    _url_credentials(v, inner):
                found.append(f"{prefix}{k}")
            found.extend(secret_keys(v, f"{prefix}{k}.", inner))
    elif isinstance(options, list | tuple):
        for i, v in enumerate(options):
            if _url_credentials(v, header):
                found.append(f"{prefix}{i}")
            found.extend(secret_keys(v, f"{prefix}{i}.", header))
    return found


def _objects_credentials(url: Any) -> bool:
    """Whether an objects URL carries credentials: a password, or for S3 any user (the
    user is the access key). Other filesystems' URLs name an account or a login there
    (``abfs://container@account...``, ``sftp://deploy@host``), which is no secret."""
    if not isinstance(url, str) or "://" not in url:
        return False
    if has_password(url):
        return True
    scheme = url.split("://", 1)[0].lower()
    return scheme in ("s3", "s3a", "gs", "gcs") and _url_credentials(url)


def _check_no_secrets(section: str, table: Mapping[str, Any], path: str,
                      options_section: str | None = None) -> None:
    url = table.get("url")
    if isinstance(url, str) and has_password(url):
        raise InvalidInputError(
            f"{path} holds a password in the url of [{section}]; secrets never go into the "
            "config file: remove it and keep the password in ~/.pgpass (libpq reads it)"
        )
    if _objects_credentials(table.get("objects")):
        raise InvalidInputError(
            f"{path} holds credentials in the objects URL of [{section}]; secrets never go "
            "into the config file: remove them from the URL (the KEY:SECRET@ before the "
            "bucket) and keep the key and secret in a table of the credentials file "
            f"({credentials_path()}) or an environment variable, named with "
            "storage_options_from"
        )
    leaked = secret_keys(table.get("storage_options", {}))
    if leaked:
        raise InvalidInputError(
            f"{path} holds secret storage option(s) {leaked} in "
            f"[{options_section or section}]; secrets never go "
            "into the config file: move them to a table of the credentials file "
            f"({credentials_path()}) or an environment variable, and name it with "
            "storage_options_from"
        )


def load() -> dict[str, Any]:
    """The config file as a dict ({} when there is none), checked to hold no secrets."""
    path = config_path()
    data = _read_toml(path, "config file")
    for section in ("store", "storage_options", "remotes"):
        if not isinstance(data.get(section, {}), dict):
            raise InvalidInputError(f"{path}: {section} must be a table ([{section}])")
    _check_no_secrets("store", data.get("store", {}), path)
    _check_no_secrets("store", {"storage_options": data.get("storage_options", {})}, path,
                      "storage_options")
    for name, table in data.get("remotes", {}).items():
        if isinstance(table, Mapping):
            _check_no_secrets(f"remotes.{name}", table, path)
    return data


def check_remote_name(name: object) -> str:
    """name, if it is of a remote name's form (letters, digits, '_', '.' or '-', starting
    with a letter or digit, at most 64); else InvalidInputError. What add_remote checks
    first, for a caller (the CLI) to tell a name wrong by its form before anything is
    read or written."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"a remote name is letters, digits, '_', '.' or '-' (starting with a letter or "
            f"digit, at most 64), not {name!r}"
        )
    return name


def check_storage_options_from(name: object) -> str:
    """name, if it is of the form of a storage_options_from name (an environment
    variable's or a credentials table's: as a remote name); else InvalidInputError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"storage_options_from must name an environment variable or a credentials "
            f"table (letters, digits, '_', '.', '-'), not {name!r}"
        )
    return name


def storage_options_from(name: str) -> dict[str, Any]:
    """The fsspec options named ``name``: the environment variable ``name`` (a JSON
    object), else the table ``[name]`` of the credentials file (owner-only)."""
    check_storage_options_from(name)
    text = os.environ.get(name)
    if text is not None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(f"the environment variable {name} (named by "
                                    "storage_options_from) is not valid text") from None
        value = parse_json(data, f"environment variable {name} (named by "
                           "storage_options_from)")
        if not isinstance(value, dict):
            raise InvalidInputError(f"the environment variable {name} must hold a JSON object "
                                    "of fsspec options")
        return value
    path = credentials_path()
    # owner-only, as ssh insists for keys: this user's own file, unreadable by others
    table = _read_toml(path, "credentials file", private=True).get(name)
    if not isinstance(table, dict):
        raise NotFoundError(
            f"no storage options named {name!r}: set the environment variable {name} to a "
            f"JSON object of fsspec options, or add a table [{name}] to {path}"
        )
    return table


_KEY_SECRET = '{"key": "...", "secret": "..."}'
_AWS_VARIABLES = "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its environment"


def _where(name: str) -> str:
    """Where ``storage_options_from = name`` is read in this process, for messages."""
    if name in os.environ:
        return f"the environment variable {name} (set here)"
    return (f"the table [{name}] of {credentials_path()} (the environment variable {name} "
            "is not set here)")


def store_credentials_source(given: bool) -> str:
    """Where the S3 credentials of a store opened with its environment come from
    (``localckpt.open``'s rule) and how to set them, for the message when there are
    none. given: the storage options were passed (storage_options=, --storage-options)."""
    if given:
        return ("Its storage options were given (storage_options=, --storage-options): add "
                f"key and secret to them, {_AWS_VARIABLES}")
    if os.environ.get("LOCALCKPT_STORAGE_OPTIONS"):
        return ("It takes its storage options from the environment variable "
                "LOCALCKPT_STORAGE_OPTIONS: add key and secret to that JSON object, "
                + _AWS_VARIABLES)
    source = load().get("store", {}).get("storage_options_from")
    if isinstance(source, str):
        return (f"It takes its credentials from storage_options_from = {source!r} of [store] "
                f"in {config_path()}, which is {_where(source)}: add key and secret there "
                f"({_KEY_SECRET}), {_AWS_VARIABLES}")
    return ("It names no credentials: set LOCALCKPT_STORAGE_OPTIONS to "
            f"{_KEY_SECRET} (with its endpoint_url), or keep them in an environment "
            f"variable or a table of {credentials_path()} named by storage_options_from in "
            f"the [store] table of {config_path()}, {_AWS_VARIABLES}")


def store_settings() -> dict[str, Any]:
    """url and objects of ``[store]`` (the keys that are set)."""
    store = load().get("store", {})
    return {k: store[k] for k in ("url", "objects") if k in store}


def store_storage_options() -> dict[str, Any]:
    """``[storage_options]`` with the options ``[store] storage_options_from`` names."""
    data = load()
    options = dict(data.get("storage_options", {}))
    source = data.get("store", {}).get("storage_options_from")
    if source is not None:
        options.update(storage_options_from(source))
    return options


class Remote(NamedTuple):
    """A named store kept in the config file (``[remotes.NAME]``), as git keeps remotes.

    storage_options are the non-secret ones; storage_options_from names where the
    secret ones are (see the module docstring). A NamedTuple: an attrs class cost ~1 ms
    to make when this module is imported, which every open of a store does.
    """

    name: str
    url: str
    objects: str | None = None
    storage_options: Mapping[str, Any] = MappingProxyType({})
    storage_options_from: str | None = None

    def resolved_options(self) -> dict[str, Any]:
        """storage_options with the named secret ones merged over them."""
        options = dict(self.storage_options)
        if self.storage_options_from:
            options.update(storage_options_from(self.storage_options_from))
        return options

    def open(self, *, create: bool = False, **options: Any) -> Store:
        """The remote store, opened with its own settings only (never ``$LOCALCKPT_*``)."""
        from .objects import credentials_source
        from .registry import open as open_store

        with credentials_source(self.credentials_source):
            return open_store(self.url, objects=self.objects,
                              storage_options=self.resolved_options(), create=create,
                              environ=False, **options)

    def credentials_source(self, *, worker: bool = False) -> str:
        """Where this remote's S3 credentials come from and how to set them, for the
        message when there are none (worker: said in a run's worker process)."""
        whose = f"the remote {self.name!r} of {config_path()}"
        taker = f"This worker takes them from {whose}" if worker else f"They come from {whose}"
        if self.storage_options_from:
            return (f"{taker}, whose storage_options_from = {self.storage_options_from!r} "
                    f"is {_where(self.storage_options_from)}: add key and secret there "
                    f"({_KEY_SECRET}), {_AWS_VARIABLES}")
        objects = f" --objects {self.objects}" if self.objects else ""
        return (f"{taker}, which names no storage_options_from: keep {_KEY_SECRET} in an "
                f"environment variable NAME or a table [NAME] of {credentials_path()} and "
                f"name it (`localckpt remote remove {self.name}`, then `localckpt remote add "
                f"{self.name} {self.url}{objects} --storage-options-from NAME`), "
                + _AWS_VARIABLES)

    def to_table(self) -> dict[str, Any]:
        table: dict[str, Any] = {"url": self.url}
        if self.objects is not None:
            table["objects"] = self.objects
        if self.storage_options_from is not None:
            table["storage_options_from"] = self.storage_options_from
        if self.storage_options:
            table["storage_options"] = dict(self.storage_options)
        return table


def _remote_of(name: str, table: Any) -> Remote:
    if not isinstance(table, Mapping) or not isinstance(table.get("url"), str):
        raise InvalidInputError(f"[remotes.{name}] of {config_path()} needs a url string")
    options = table.get("storage_options", {})
    objects = table.get("objects")
    source = table.get("storage_options_from")
    if not isinstance(options, Mapping) or not isinstance(objects, str | None) or not \
            isinstance(source, str | None):
        raise InvalidInputError(
            f"[remotes.{name}] of {config_path()}: objects and storage_options_from must be "
            "strings, storage_options a table"
        )
    return Remote(name, table["url"], objects, dict(options), source)


def remotes() -> list[Remote]:
    """Every remote of the config file, by name."""
    table = load().get("remotes", {})
    return [_remote_of(name, table[name]) for name in sorted(table)]


def remote(name: str) -> Remote | None:
    """The remote called name, or None."""
    table = load().get("remotes", {})
    return _remote_of(name, table[name]) if name in table else None


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Serialise read-modify-write of the config file between processes (an flock on its
    directory, so no lock file is left behind)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the rename is still atomic
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _plain_text(value: Any, what: str) -> None:
    """A URL or path for the config file: text without control characters (which would
    print as other text) and without lone surrogates (which no file can hold)."""
    text(value, what, empty=False)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidInputError(f"{what} {value!r} holds a control character")


def _absolute(location: str) -> str:
    """Paths become absolute: a remote is used from any directory."""
    from .registry import scheme_of

    if scheme_of(location) == "" and "=" not in location:
        return os.path.abspath(os.path.expanduser(location))
    return location


def add_remote(
    name: str, url: str, *, objects: str | None = None,
    storage_options: Mapping[str, Any] | None = None, storage_options_from: str | None = None,
) -> Remote:
    """Save a remote in the config file (atomically); nothing is opened or checked online.

    Refused, with the file unchanged: a name in use or not a token, a URL with a
    password, an objects URL with credentials, secret storage options (by name or
    value), a PostgreSQL URL without objects.
    """
    from .registry import known_scheme, scheme_of

    check_remote_name(name)
    if not isinstance(url, str) or not url:
        raise InvalidInputError("a remote needs a store URL or directory")
    _plain_text(url, "the remote URL")
    if objects is not None:
        _plain_text(objects, "the remote's objects URL")
    known_scheme(url)
    if has_password(url):
        raise InvalidInputError(
            "the remote URL holds a password; secrets never go into the config file: give "
            "the URL without it and keep the password in ~/.pgpass (libpq reads it)"
        )
    if objects is not None and _objects_credentials(objects):
        where = ('put them ({"key": ..., "secret": ...}) in an environment variable holding '
                 f"that JSON object or in a table of {credentials_path()}")
        raise InvalidInputError(
            "the remote's objects URL holds credentials (KEY:SECRET@ before the bucket), "
            "which never go into the config file: give the URL without them, "
            f"{where}, and name it with storage_options_from",
            cli="the remote's objects URL holds credentials (KEY:SECRET@ before the bucket), "
            "which never go into the config file: give --objects without them, "
            f"{where}, and name it with --storage-options-from NAME",
        )
    leaked = secret_keys(storage_options or {})
    if leaked:
        raise InvalidInputError(
            f"storage option(s) {leaked} look like secrets, which never go into the config "
            f"file: put them in an environment variable or a table of {credentials_path()} "
            "and name it with storage_options_from",
            cli=f"storage option(s) {leaked} look like secrets, which never go into the config "
            f"file: put them in an environment variable or a table of {credentials_path()} "
            "and name it with --storage-options-from",
        )
    if storage_options_from is not None:
        check_storage_options_from(storage_options_from)
    if scheme_of(url) in ("postgresql", "postgres") and not objects:
        raise InvalidInputError(
            "a postgresql remote needs an objects URL for frame shards: pass objects="
            "'s3://bucket/prefix'",
            cli="a postgresql remote needs an objects URL for frame shards: add --objects "
            "s3://bucket/prefix",
        )
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise InvalidInputError("storage_options must be a mapping of fsspec options")
    check_depth(dict(storage_options or {}), "storage options")
    new = Remote(name, _absolute(url), None if objects is None else _absolute(objects),
                 dict(storage_options or {}), storage_options_from)
    from ._toml import dumps, write_atomic  # the writer (tempfile, shutil): only here

    try:
        dumps(new.to_table()).encode("utf-8")  # what TOML cannot hold: refused before writing
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"the remote's settings cannot be written to the config file ({exc}); storage "
            "options hold strings, numbers, booleans, dates, lists and tables (no null)"
        ) from None
    path = config_path()
    with _locked(path):
        data = load()
        table = data.setdefault("remotes", {})
        if name in table:
            raise InvalidInputError(
                f"a remote named {name!r} already exists ({table[name].get('url')}); remove it "
                "first with remove_remote",
                cli=f"a remote named {name!r} already exists ({table[name].get('url')}); remove "
                f"it first with `localckpt remote remove {name}`",
            )
        table[name] = new.to_table()
        write_atomic(path, dumps(data))
    return new


def remove_remote(name: str) -> Remote:
    """Delete a remote from the config file; NotFoundError when there is none."""
    from ._toml import dumps, write_atomic

    path = config_path()
    if not os.path.exists(path):  # nothing to remove: no directory made for a lock
        raise NotFoundError(f"no remote named {name!r} in {path} (remotes: none yet; see "
                            "`localckpt remote list`)")
    with _locked(path):
        data = load()
        table = data.get("remotes", {})
        if name not in table:  # the nearest named, as push and pull name it
            import difflib

            from .render import printable

            names = sorted(table)
            near = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise NotFoundError(
                f"no remote named {name!r} in {path} ({hint}remotes: "
                f"{', '.join(map(printable, names)) or 'none yet'}; see `localckpt remote "
                "list`)")
        gone = _remote_of(name, table.pop(name))
        if not table:
            data.pop("remotes")
        write_atomic(path, dumps(data))
    return gone
