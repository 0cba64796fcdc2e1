"""Objects: bytes under keys on any fsspec filesystem (local dir, memory://, s3://).

Keys are built from ids and hashes only (never from user strings). Local writes go to a
temporary file that is renamed into place, so a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import posixpath
import re
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from . import _s3
from .errors import (
    BackendUnavailableError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    NotFoundError,
)
from .safefiles import file_kind, open_without_waiting

if TYPE_CHECKING:
    import fsspec

__all__ = ["Objects", "credentials_source", "make_dirs", "mtime_of", "split_credentials"]

# s3://KEY:SECRET@bucket/prefix (the MinIO client's form): the part before '@'.
_URL_CREDENTIALS = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:]*)"
                              r"(?::(?P<secret>[^/@]*))?@")
_SECRET_OPTIONS = ("secret", "key", "token", "password", "aws_secret_access_key",
                   "aws_access_key_id", "aws_session_token")


#: Where the store being opened takes its S3 credentials from, said when there are none
#: (set by whoever chose its storage options: open, a remote, a run's worker, push and pull)
#: (a callable: worked out only then; opening a store is on every command's path)
Source = str | Callable[[], str]
_CREDENTIALS_SOURCE: ContextVar[Source | None] = ContextVar("localckpt_credentials_source",
                                                            default=None)
#: Where botocore looks when the storage options hold no key (its own chain)
_BOTOCORE_CHAIN = ("the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                   "AWS_PROFILE with ~/.aws/credentials, an instance role")


@contextlib.contextmanager
def credentials_source(text: Source | None) -> Iterator[None]:
    """Objects made inside say text (where their credentials come from, and how to set
    them; never a credential) when S3 finds none: the one who chose the storage options
    knows where they were to come from, the objects do not. An outer one wins (a remote
    opened through localckpt.open)."""
    if _CREDENTIALS_SOURCE.get() is not None:
        yield
        return
    token = _CREDENTIALS_SOURCE.set(text)
    try:
        yield
    finally:
        _CREDENTIALS_SOURCE.reset(token)


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """(url without ``KEY:SECRET@``, {"key": ..., "secret": ...}) for an object store URL.

    fsspec's s3 takes ``KEY:SECRET@bucket`` for a bucket name, so credentials written in
    the URL would reach every request path, repr and error message; they become storage
    options instead. URLs without credentials come back unchanged.
    """
    m = _URL_CREDENTIALS.match(url)
    if m is None or m.group("scheme") == "file://":
        return url, {}
    creds = {"key": m.group("user")}
    if m.group("secret") is not None:
        creds["secret"] = m.group("secret")
    return m.group("scheme") + url[m.end():], {k: v for k, v in creds.items() if v}


def _takes(fs: Any, method: str, keyword: str) -> bool:
    """Whether fs.method accepts keyword (options differ between fsspec backend versions)."""
    try:
        return keyword in inspect.signature(getattr(fs, method)).parameters
    except (AttributeError, TypeError, ValueError):
        return False


class Objects:
    """A key -> bytes store rooted at one fsspec path.

    A local directory's filesystem is made on first use: fsspec costs more to import
    than the rest of a CLI command that never touches objects (ls, tree, show)."""

    def __init__(self, fs: fsspec.AbstractFileSystem | None, root: str,
                 secrets: Iterable[str] = ()) -> None:
        self._fs = fs
        self.root = root.rstrip("/") or "/"
        #: where the credentials come from and how to set them (see credentials_source)
        self.credentials_source = _CREDENTIALS_SOURCE.get()
        # values that must never appear in a message (credentials given as options)
        self._secrets = tuple(sorted({s for s in secrets if s and len(s) >= 3}, key=len,
                                     reverse=True))
        if fs is None:  # a local directory (from_url)
            self.is_local, protocols = True, ("file",)
        else:
            from fsspec.implementations.local import LocalFileSystem

            self.is_local = isinstance(fs, LocalFileSystem)
            protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        # s3fs sends a HEAD before a whole-object GET unless told to read in one request;
        # objects here are read whole only when small (frame indexes), so one GET is right.
        # (s3fs before 2026.3 has no such option, and sends no HEAD.)
        self._get_options: dict[str, Any] = (
            {"max_concurrency": 1} if "s3" in protocols and _takes(fs, "_cat_file",
                                                                   "max_concurrency") else {})

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Objects:
        """Open objects at url ("s3://bucket/prefix", "memory://x", "/local/dir", "file://...").

        Credentials in the URL (``s3://KEY:SECRET@bucket``) become storage options (given
        options win) and never appear in describe(), reprs or errors. An unknown scheme,
        a path that is a file, or a directory that cannot be made is InvalidInputError.
        """
        if isinstance(url, os.PathLike):
            url = os.fspath(url)
        if not isinstance(url, str) or not url:
            raise InvalidInputError(
                f"objects must be a URL or directory string, not {url!r:.40}"
            )
        local = _local_dir(url)
        if local is not None and not storage_options:
            _make_dir(local)
            return cls(None, local)
        url, creds = split_credentials(url)
        options = {**creds, **dict(storage_options or {})}
        secrets = [str(v) for k, v in options.items() if k in _SECRET_OPTIONS and v]
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        s3 = "::" not in url and url.split("://", 1)[0].lower() in _s3.S3_PROTOCOLS
        attempts = 0
        if s3:
            try:
                _s3.check_options(options, _redact(url, secrets))
            except ImportError:  # s3fs not installed: url_to_fs says so below
                pass
        try:
            if s3:  # its session class needs aiobotocore, which s3fs brings
                options, attempts = _s3.with_defaults(options)
            fs, root = fsspec.core.url_to_fs(url, **options)
        except ValueError as exc:  # "Protocol not known: foo"
            raise InvalidInputError(
                f"objects URL {_redact(url, secrets)!r}: {_redact(str(exc), secrets)}; use a "
                "directory, file://, memory:// or s3://bucket/prefix (s3 needs "
                "pip install 'localckpt[s3]')"
            ) from None
        except ImportError as exc:
            raise InvalidInputError(
                f"objects URL {_redact(url, secrets)!r} needs a package that is not installed "
                f"({exc.name.split('.')[0] if exc.name else exc}); for s3:// run pip "
                "install 'localckpt[s3]'"
            ) from None
        if isinstance(fs, LocalFileSystem):
            _make_dir(root)
        if s3:
            _s3.prepare(fs, attempts)
        return cls(fs, root, secrets)

    def redact(self, text: str) -> str:
        """text with every credential of these objects replaced by ***."""
        return _redact(text, self._secrets)

    def describe(self) -> str:
        """Where the objects live, for messages: never holds credentials."""
        if self._fs is None:
            return self.root
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        text = f"{protocol}://{self.root}" if protocol != "file" else self.root
        return self.redact(split_credentials(text)[0])

    def __repr__(self) -> str:
        return f"<localckpt.Objects {self.describe()}>"

    def path(self, key: str) -> str:
        return posixpath.join(self.root, key)

    def local_path(self, key: str) -> str | None:
        """The filesystem path of key when objects are local (lets writers stream to disk)."""
        return self.path(key) if self.is_local else None

    def put(self, key: str, data: bytes) -> None:
        """Store data under key, replacing any previous object atomically."""
        path = self.path(key)
        with _translate(self, key):
            if self.is_local:
                make_dirs(os.path.dirname(path))
                tmp = f"{path}.tmp-{uuid.uuid4().hex}"
                try:
                    with open(tmp, "wb") as fh:
                        fh.write(data)
                    os.replace(tmp, path)
                except BaseException:  # a full disk, SIGTERM: no temp file stays
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            else:
                self.fs.pipe_file(path, data)

    def put_file(self, local_file: str, key: str) -> None:
        """Move (local) or upload (remote) a finished local file to key."""
        path = self.path(key)
        with _translate(self, key):
            if self.is_local:
                make_dirs(os.path.dirname(path))
                os.replace(local_file, path)
            else:
                self.fs.put_file(local_file, path)

    def get(self, key: str) -> bytes:
        if self.is_local:
            return self._read_local(key, None)[0]
        with _translate(self, key):
            return bytes(self.fs.cat_file(self.path(key), **self._get_options))

    def get_capped(self, key: str, max_bytes: int) -> bytes:
        """The whole object at key, of at most max_bytes: a read of objects that anyone
        able to write the store's directory may have replaced (verify reads a store's
        every object so).

        In a local directory (``_read_local``) a FIFO, a device, a directory or a socket
        is refused without waiting, and so is a file larger than max_bytes, told from its
        size before a byte is read: CorruptDataError naming its path and what it is.
        From an object store (no such files there) the read stops past the cap: one
        ranged GET, as a whole object's is, failing as :meth:`get`'s. NotFoundError when
        there is none."""
        if self.is_local:
            return self._read_local(key, None, max_bytes)[0]
        data = self.get_range(key, 0, max_bytes + 1)
        if len(data) > max_bytes:
            raise CorruptDataError(
                f"object {key} in {self.describe()} holds more than {max_bytes} bytes, "
                "more than any localckpt writes; it was not read past that")
        return data

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of key, in one ranged request on remote stores."""
        if self.is_local:
            return self._read_local(key, [(start, end)])[0]
        with _translate(self, key):
            return bytes(self.fs.cat_file(self.path(key), start=start, end=end))

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Several byte ranges of one object (fetched concurrently where the fs can)."""
        if not ranges:
            return []
        if self.is_local:
            return self._read_local(key, ranges)
        path = self.path(key)
        with _translate(self, key):
            parts = self.fs.cat_ranges(
                [path] * len(ranges), [r[0] for r in ranges], [r[1] for r in ranges]
            )
        out = []
        for part in parts:
            if isinstance(part, BaseException):
                raise _map_error(self, key, part)
            out.append(bytes(part))
        return out

    def _read_local(self, key: str, ranges: Sequence[tuple[int, int]] | None,
                    max_bytes: int | None = None) -> list[bytes]:
        """The object at key in a local directory, whole (ranges None; of at most
        max_bytes, told from its size) or byte ranges [start, end) of it (short at its
        end), through one descriptor opened without waiting: a FIFO or a device put in
        an object's place would block a plain open (a frame read, a web request) until
        something wrote to it; it and a directory are CorruptDataError naming the path.
        Other failures are translated as any read's."""
        path = self.path(key)
        with _translate(self, key):
            fd = open_without_waiting(path)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise CorruptDataError(
                        f"the object {path} is {file_kind(st.st_mode)}, not a regular file: "
                        "something other than localckpt put it there; the store is damaged "
                        "(run `localckpt verify`)")
                if max_bytes is not None and st.st_size > max_bytes:
                    raise CorruptDataError(
                        f"the object {path} holds {st.st_size} bytes, more than the "
                        f"{max_bytes} any localckpt writes; it was not read")
                if ranges is None:  # objects are replaced whole, never grown in place
                    return [_pread(fd, 0, st.st_size)]
                return [_pread(fd, start, end) for start, end in ranges]
            finally:
                os.close(fd)

    def exists(self, key: str) -> bool:
        """Whether key holds an object; a missing bucket is an error, not False."""
        with _translate(self, key):
            if self.is_local:
                return bool(self.fs.exists(self.path(key)))
            try:  # fs.exists says False for a missing bucket too
                self.fs.info(self.path(key))
            except FileNotFoundError as exc:
                if _s3.missing_bucket(exc) is not None:
                    raise
                return False
            return True

    def list(self, prefix: str) -> list[str]:
        """Keys under prefix (relative to the root), sorted; [] when there are none."""
        base = self.path(prefix)
        with _translate(self, prefix):
            try:
                found = self.fs.find(base)
            except FileNotFoundError as exc:
                if _s3.missing_bucket(exc) is not None:
                    raise
                return []
        cut = len(self.root) + 1
        return sorted(p[cut:] if p.startswith(self.root) else p for p in found)

    def delete(self, keys: Iterable[str]) -> None:
        """Remove keys; missing keys are ignored."""
        paths = [self.path(k) for k in keys]
        if not paths:
            return
        with _translate(self, paths[0]):
            for path in paths:
                try:
                    self.fs.rm_file(path)
                except FileNotFoundError as exc:
                    if _s3.missing_bucket(exc) is not None:
                        raise

    def stat(self, prefix: str) -> dict[str, tuple[int, float]]:
        """key -> (size in bytes, modification time) of every object under prefix, in one
        listing where the filesystem has one (S3: LIST), for gc and storage reports."""
        base = self.path(prefix)
        with _translate(self, prefix):
            try:
                found = self.fs.find(base, detail=True)
            except FileNotFoundError as exc:
                if _s3.missing_bucket(exc) is not None:
                    raise
                return {}
        cut = len(self.root) + 1
        out = {}
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            key = path[cut:] if path.startswith(self.root) else path
            out[key] = (int(info.get("size") or 0), mtime_of(info))
        return out

    def size(self, prefix: str = "") -> int:
        """Total bytes under prefix (for storage accounting)."""
        total = 0
        for key in self.list(prefix):
            with _translate(self, key):
                total += int(self.fs.size(self.path(key)))
        return total


#: Times make_dirs makes a directory again when one above it went meanwhile
_MAKE_DIRS_TRIES = 8


def _pread(fd: int, start: int, end: int) -> bytes:
    """Bytes [start, end) of fd, fewer where the file ends first."""
    chunks: list[bytes] = []
    size = max(0, end - start)
    while size > 0 and (chunk := os.pread(fd, size, start)):
        chunks.append(chunk)
        start += len(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def make_dirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, made again when a directory above it went
    between makedirs finding it and making the next one in it: a refused transfer
    removes the ``frames/`` directory its ingest lease made once it is empty again
    (``IngestLease.remove_dirs``), which a writer of another timeline may just have
    found there. OSError as os.makedirs."""
    for _ in range(_MAKE_DIRS_TRIES - 1):
        try:
            os.makedirs(path, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    os.makedirs(path, exist_ok=True)


def _make_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidInputError(
            f"objects path {path} exists and is not a directory; give a directory for "
            "frame objects"
        )
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot create the objects directory {path}: {exc.strerror or exc}; check the "
            "path and its permissions"
        ) from None


def mtime_of(info: Mapping[str, Any]) -> float:
    """Modification time from an fsspec info dict (local: mtime; S3: LastModified;
    memory: created). Unknown: now, so that an object of unknown age counts as recent."""
    import time
    from datetime import datetime

    for name in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(name)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                continue
    return time.time()


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)


def _is_s3(fs: Any) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return any(p in _s3.S3_PROTOCOLS for p in protocols)


def _timed_out(exc: BaseException) -> bool:
    """Whether exc is a connect / read timeout (botocore's, aiohttp's, the socket's)."""
    names = {type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None}
    return isinstance(exc, TimeoutError) or any("Timeout" in n for n in names)


#: S3 error codes that refuse the credentials or the bucket, whatever the object
_STORE_WIDE_CODES = frozenset({
    "AccountProblem", "AllAccessDisabled", "ExpiredToken", "InvalidAccessKeyId",
    "InvalidBucketName", "InvalidToken", "NoSuchBucket", "RequestTimeTooSkewed",
    "SignatureDoesNotMatch", "TokenRefreshRequired"})


def _object_only(exc: BaseException) -> bool:
    """Whether the S3 server answered about this object only (an HTTP error it sent, such
    as AccessDenied on a key), not about the store: see BackendUnavailableError."""
    for _, error in _s3.s3_errors(exc):
        if error is not None and error.get("Code"):
            return str(error["Code"]) not in _STORE_WIDE_CODES
    return False


def _missing_credentials(exc: BaseException) -> str | None:
    """What is missing when botocore found no credentials (or part of them) in exc's
    chain, else None. botocore names variables, never values."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if "botocore" in type(current).__module__ and name in ("NoCredentialsError",
                                                                "PartialCredentialsError"):
            found = getattr(current, "kwargs", None) or {}
            if found.get("cred_var"):
                var = str(found["cred_var"])
                if found.get("provider") == "explicit":  # the storage options
                    option = {"aws_access_key_id": "key",
                              "aws_secret_access_key": "secret"}.get(var, var)
                    return f"the storage options lack {option} (only part is given)"
                return f"botocore's {found.get('provider')} credentials lack {var}"
            return ("the storage options hold no key and secret, and botocore found none of "
                    f"its own ({_BOTOCORE_CHAIN})")
        current = current.__cause__ or current.__context__
    return None


def _local_dir(url: str) -> str | None:
    """The absolute directory of a plain path or file:// URL (None for other schemes)."""
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif "://" in url or "::" in url:
        return None
    return os.path.abspath(os.path.expanduser(url)) if url else None


def _map_error(objects: Objects, key: str, exc: BaseException) -> Exception:
    s3 = not objects.is_local and _is_s3(objects.fs)
    bucket = _s3.missing_bucket(exc) if s3 else None
    if bucket is not None:
        bucket = bucket or objects.root.split("/", 1)[0]
        return BackendUnavailableError(
            f"the bucket {bucket!r} of {objects.describe()} does not exist on "
            f"{objects.redact(_s3.endpoint_of(objects.fs))}: create it (aws s3 mb "
            f"s3://{bucket}, mc mb ALIAS/{bucket}) or fix the objects URL and endpoint_url")
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"object {key!r} is missing from {objects.describe()}")
    if s3 and isinstance(exc, (TypeError, ValueError)) and getattr(objects.fs, "_s3",
                                                                   True) is None:
        # the client was never made: s3fs / botocore refused an option (the open checks
        # names and the endpoint; this is what they could not see, such as a value's type)
        return InvalidInputError(
            f"the storage options of {objects.describe()} were refused by s3fs/botocore: "
            f"{type(exc).__name__}: {objects.redact(str(exc))}; fix the storage options")
    missing = _missing_credentials(exc) if s3 else None
    if missing is not None:
        source = objects.credentials_source
        if callable(source):
            try:
                source = source()
            except Exception:  # a config file broken since the open: say the rest
                source = None
        source = source or (
            "Give this store the storage options key and secret (an S3 access key), or set "
            "the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        return BackendUnavailableError(
            f"no S3 credentials for {objects.describe()} "
            f"({objects.redact(_s3.endpoint_of(objects.fs))}): {missing}. {source}.")
    if s3 and _timed_out(exc):
        config = getattr(objects.fs, "config_kwargs", None) or {}
        write = (config.get("connector_args") or {}).get("write_timeout")
        upload = f", {write} s for an upload that stops moving" if write else ""
        return BackendUnavailableError(
            f"the S3 server {objects.redact(_s3.endpoint_of(objects.fs))} did not answer in "
            f"time for {objects.describe()} on {key!r} ({type(exc).__name__}; each attempt "
            f"waits {config.get('connect_timeout', '?')} s to connect, "
            f"{config.get('read_timeout', '?')} s for an answer{upload}). Check that the "
            "server is running and answering, and that endpoint_url names it; the storage "
            "option config_kwargs sets these waits")
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)) or "botocore" in type(
        exc
    ).__module__ or "aiohttp" in type(exc).__module__:
        where = f" ({objects.redact(_s3.endpoint_of(objects.fs))})" if s3 else ""
        return BackendUnavailableError(
            f"object store {objects.describe()}{where} failed on {key!r}: "
            f"{type(exc).__name__}: {objects.redact(str(exc))}. Check that the server is "
            "running and the endpoint, bucket and credentials are right.",
            object_only=s3 and _object_only(exc))
    return exc if isinstance(exc, Exception) else RuntimeError(objects.redact(str(exc)))


@contextlib.contextmanager
def _translate(objects: Objects, key: str) -> Iterator[None]:
    """Map filesystem / network errors to localckpt errors (the one translation point)."""
    try:
        yield
    except LocalckptError:
        raise
    except Exception as exc:
        mapped = _map_error(objects, key, exc)
        if mapped is exc:
            raise
        raise mapped from exc
