"""S3 (s3fs) specifics of Objects: bounded waits, option checks, a missing bucket.

s3fs waits long by default: its 5 s to connect and 15 s to read are tried by botocore up
to 5 times inside s3fs's own 5 attempts, so a stalled endpoint held a command for about
7 minutes (now ~50 s). And a PUT sends ``Expect: 100-continue`` and waits for the
server's go-ahead, a wait that aiohttp bounds with no timeout at all, as it bounds no
write (an upload to a server that stops reading). Here the timeouts are stated (per
connection, read and write, never per transfer: a large upload over a slow link still
works; the write timeout is localckpt._s3session's), the retries are few and in one
place (botocore), and there is no 100-continue; options the user gives win over every
default.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import InvalidInputError

__all__ = ["CONNECT_TIMEOUT", "READ_TIMEOUT", "S3_PROTOCOLS", "WRITE_TIMEOUT", "check_options",
           "endpoint_of", "missing_bucket", "prepare", "s3_errors", "with_defaults"]

S3_PROTOCOLS = ("s3", "s3a")
CONNECT_TIMEOUT = 5  # s: a TCP (and TLS) connection; a refused one fails at once
READ_TIMEOUT = 15  # s: from the request sent (body included) to the next bytes of the
# answer (s3fs's own default; botocore's is 60)
WRITE_TIMEOUT = 15  # s: a request body that moves no bytes (aiohttp has no such bound: ours,
# localckpt._s3session; config_kwargs.connector_args.write_timeout, as aiobotocore's httpx
# session spells it)
# botocore's retries (standard mode: timeouts, refused connections, 5xx, SlowDown), after the
# first attempt; s3fs then tries once (its loop would multiply botocore's attempts, and
# nests a second time around whole-object reads). Stalled: 3 x 15 s + backoff, ~50 s.
BOTOCORE_RETRIES = {"mode": "standard", "max_attempts": 2}
S3FS_RETRIES = 1

# localckpt's own option: the attempts of s3fs's retry loop (an S3FileSystem attribute
# that its constructor does not take)
_RETRIES = "retries"


def with_defaults(options: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """(s3fs options with localckpt's timeouts and retries, s3fs's attempts).

    The user's options win, key by key, down into config_kwargs and its retries."""
    options = dict(options)
    own_attempts = _RETRIES in options
    attempts = int(options.pop(_RETRIES, S3FS_RETRIES))
    given = options.get("config_kwargs") or {}
    config: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT,
                              "read_timeout": READ_TIMEOUT, **given}
    config["retries"] = {**BOTOCORE_RETRIES, **(given.get("retries") or {})}
    if "http_session_cls" not in given:  # the user's own session class has its own bounds
        from ._s3session import WriteTimeoutSession

        config["http_session_cls"] = WriteTimeoutSession
        config["connector_args"] = {"write_timeout": WRITE_TIMEOUT,
                                    **(given.get("connector_args") or {})}
    options["config_kwargs"] = config
    if own_attempts:
        # an S3FileSystem is shared by every store opened with the same options (fsspec's
        # cache); one with its own attempts must not change the others'
        options["skip_instance_cache"] = True
    return options, attempts


def check_options(options: Mapping[str, Any], url: str) -> None:
    """InvalidInputError for an option s3fs or botocore would refuse only on first use
    (a TypeError deep in a command, after the catalog was written): a misspelt name, an
    endpoint that is not an http(s) URL, a retries count that is not a count."""
    _check_names(options, _fs_options(), "s3fs", url, "storage option")
    for name in ("config_kwargs", "client_kwargs"):
        value = options.get(name)
        if value is not None and not isinstance(value, Mapping):
            raise InvalidInputError(
                f"storage option {name} for {url} must be a JSON object (a dict), not "
                f"{type(value).__name__}")
    config = options.get("config_kwargs") or {}
    _check_names(config, _config_options(), "botocore's Config", url, "config_kwargs key")
    client = options.get("client_kwargs") or {}
    _check_names(client, _client_options(), "botocore's create_client", url,
                 "client_kwargs key")
    for where, value in (("endpoint_url", options.get("endpoint_url")),
                         ("client_kwargs.endpoint_url", client.get("endpoint_url"))):
        if value is not None and not (isinstance(value, str)
                                      and value.lower().startswith(("http://", "https://"))
                                      and len(value.split("://", 1)[1]) > 0):
            raise InvalidInputError(  # the value is not shown: it may hold a user:password
                f"storage option {where} for {url} must be the S3 server's URL, "
                f"http://host:port or https://host, not a {type(value).__name__} of another "
                "form")
    retries = config.get("retries")
    if retries is not None and not isinstance(retries, Mapping):
        raise InvalidInputError(
            f"config_kwargs.retries for {url} must be a JSON object such as "
            '{"max_attempts": 2, "mode": "standard"}, not ' + type(retries).__name__)
    connector = config.get("connector_args")
    if connector is not None and not isinstance(connector, Mapping):
        raise InvalidInputError(
            f"config_kwargs.connector_args for {url} must be a JSON object such as "
            '{"write_timeout": 60}, not ' + type(connector).__name__)
    write = (connector or {}).get("write_timeout")
    if write is not None and (isinstance(write, bool) or not isinstance(write, int | float)
                              or write < 0):
        raise InvalidInputError(
            f"config_kwargs.connector_args.write_timeout for {url} is how many seconds an "
            f"upload may stop moving: a number of at least 0, not {write!r:.40}")
    attempts = options.get(_RETRIES)
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int)
                                 or attempts < 1):
        raise InvalidInputError(
            f"storage option retries for {url} is how often s3fs tries a request: a whole "
            f"number of at least 1, not {attempts!r:.40}")


def _check_names(given: Mapping[str, Any], valid: frozenset[str], owner: str, url: str,
                 what: str) -> None:
    for name in given:
        if name in valid:
            continue
        near = difflib.get_close_matches(str(name), sorted(valid), n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise InvalidInputError(
            f"{what} {str(name)!r:.60} for {url} is not an option of {owner}{hint}; check "
            "its spelling against the s3fs and botocore documentation")


@functools.cache
def _fs_options() -> frozenset[str]:
    """What S3FileSystem takes: its parameters, fsspec's, and (through **kwargs) those of
    the aiobotocore session it makes; anything else fails there with a TypeError."""
    import s3fs
    from aiobotocore.session import AioSession

    return frozenset(
        _parameters(s3fs.S3FileSystem.__init__) | _parameters(AioSession.__init__)
        | {"use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache",
           _RETRIES})


@functools.cache
def _config_options() -> frozenset[str]:
    from aiobotocore.config import AioConfig
    from botocore.config import Config

    return frozenset(set(Config.OPTION_DEFAULTS) | _parameters(AioConfig.__init__))


@functools.cache
def _client_options() -> frozenset[str]:
    from botocore.session import Session

    return frozenset(_parameters(Session.create_client) - {"service_name"})


def _parameters(function: Any) -> set[str]:
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def prepare(fs: Any, attempts: int) -> None:
    """Set s3fs's attempts, and take 100-continue off the client's PUTs.

    aiohttp arms its read timeout only once a body is sent, and with 100-continue it waits,
    unbounded, for the server's go-ahead before sending it: a stalled endpoint held every
    write forever. Without the header the body goes at once and the read timeout holds.
    The session is made here (s3fs makes it on first use) so that the hook is on it."""
    fs.retries = attempts
    if getattr(fs, "session", None) is not None:  # an instance fsspec had cached, or a
        return                                    # session the user gave
    from aiobotocore.session import AioSession

    session = AioSession(**fs.kwargs)
    session.register("before-send.s3", _no_continue, unique_id="localckpt-no-100-continue")
    fs.session = session
    if hasattr(fs, "_session_is_owned"):  # s3fs >= 2026: keep this session on a refresh
        fs._session_is_owned = False


def _no_continue(request: Any, **kwargs: Any) -> None:
    if "Expect" in request.headers:  # not signed (botocore leaves it out of signatures)
        del request.headers["Expect"]


def endpoint_of(fs: Any) -> str:
    """The S3 server a filesystem talks to, for messages (AWS when none is named)."""
    client = getattr(fs, "client_kwargs", None) or {}
    endpoint = getattr(fs, "endpoint_url", None) or client.get("endpoint_url")
    return str(endpoint) if endpoint else "AWS S3 (no endpoint_url)"


def s3_errors(exc: BaseException) -> Iterator[tuple[BaseException, Mapping[str, Any] | None]]:
    """exc and each exception of its chain (causes, then contexts; each once), with the
    error the S3 server answered (botocore's ``response["Error"]``) where it carries one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        error = response.get("Error") if isinstance(response, Mapping) else None
        yield current, error if isinstance(error, Mapping) else None
        current = current.__cause__ or current.__context__


def missing_bucket(exc: BaseException) -> str | None:
    """The bucket named by a NoSuchBucket answer in exc's chain ("" when unnamed), else
    None. s3fs turns NoSuchBucket and NoSuchKey alike into FileNotFoundError; botocore's
    ClientError, kept as the cause, says which."""
    for current, error in s3_errors(exc):
        if error is not None and error.get("Code") == "NoSuchBucket":
            return str(error.get("BucketName") or "")
        if isinstance(current, FileNotFoundError) and (
                "specified bucket does not exist" in str(current)):
            return ""
    return None
