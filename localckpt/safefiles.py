"""Reading small control files that anyone able to write a directory may have replaced.

The store marker (``LOCALCKPT.json``), the config file, the credentials file and ingest
leases are small. Each is read here, and only here, under four rules:

- **regular files only**: a FIFO (which would block ``open`` for ever), a device such
  as ``/dev/zero`` (endless), a directory or a socket is refused, also behind a symlink;
  the file is opened without blocking and checked again on the open descriptor, so a
  swap between the check and the open is caught;
- **a size cap**: nothing beyond :data:`MAX_BYTES` (or the caller's cap) is read;
- **a nesting limit**: JSON or TOML nested deeper than :data:`MAX_DEPTH` is refused
  (never a ``RecursionError``);
- **typed errors**: every refusal is the caller's error class (InvalidInputError for
  the user's own files, CorruptDataError for a store's), naming the file and the rule.

:func:`read_marker` adds the store marker's versions: a format or canonical-JSON
version this code does not know is refused (SchemaVersionError when newer).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Any

import orjson

from .canonical import FORMAT as CANONICAL_FORMAT
from .errors import CorruptDataError, InvalidInputError, LocalckptError, SchemaVersionError

__all__ = [
    "MARKER_FORMATS",
    "MAX_BYTES",
    "MAX_DEPTH",
    "check_depth",
    "file_kind",
    "load_json_file",
    "load_toml_file",
    "open_regular",
    "open_without_waiting",
    "parse_json",
    "read_marker",
    "read_regular",
]

#: Bytes read at most from a control file (config files are a few KB).
MAX_BYTES = 1 << 20
#: Containers nested in one another at most (config files nest three or four).
MAX_DEPTH = 32
#: Store formats read_marker accepts by default: 1 and 2, the log-structured engine's
#: (segment logs; compacted runs), and 3, the relational catalog's.
MARKER_FORMATS: tuple[int, ...] = (1, 2, 3)
#: Versions of canonical JSON a store may name (localckpt.canonical.FORMAT and before).
CANONICAL_VERSIONS: tuple[int, ...] = tuple(range(1, CANONICAL_FORMAT + 1))
_MARKER_BYTES = 64 << 10

Error = type[LocalckptError]


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, by its st_mode ("a FIFO", ...)."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_without_waiting(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of path, opened without blocking: a FIFO (or a device)
    put where a regular file was checked to be would block a plain open until something
    wrote to it. Callers fstat the descriptor to see what they opened. OSError as os.open."""
    return os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                   | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))


def open_regular(path: str | os.PathLike[str], what: str, *, error: Error = InvalidInputError,
                 private: bool = False) -> int | None:
    """A read-only descriptor of the regular file at path (None when there is none):
    a FIFO, a device, a directory or a socket, also behind a symlink, is refused
    without blocking. private: the file must belong to this user and be unreadable by
    others (as ssh insists for keys). Refusals raise error naming what and path."""
    path = os.fspath(path)
    try:
        before = os.stat(path)  # follows a symlink: its target must be a regular file
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise error(f"cannot read the {what} {path!r}: {exc}") from None
    if not stat.S_ISREG(before.st_mode):
        raise error(f"the {what} {path} is {file_kind(before.st_mode)}, not a regular file; "
                    "replace it with a regular file")
    try:
        fd = open_without_waiting(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev,
                                                                        before.st_ino):
            raise error(f"the {what} {path} changed while it was opened; refusing to read it")
        if private:
            _check_private(path, what, st, error)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_BYTES,
                 error: Error = InvalidInputError, private: bool = False) -> bytes | None:
    """The bytes of the regular file at path (None when there is none), at most
    max_bytes; see open_regular for what is refused."""
    fd = open_regular(path, what, error=error, private=private)
    if fd is None:
        return None
    path = os.fspath(path)
    try:
        st = os.fstat(fd)
        if st.st_size > max_bytes:
            raise error(f"the {what} {path} holds {st.st_size} bytes, more than the "
                        f"{max_bytes} such a file may have; it is not one localckpt wrote")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 16, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise error(f"the {what} {path} holds more than {max_bytes} bytes; it is not "
                        "one localckpt wrote")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc}") from None
    finally:
        os.close(fd)


def _check_private(path: str, what: str, st: os.stat_result, error: Error) -> None:
    if os.name != "posix":
        return
    if st.st_uid != os.geteuid():
        raise error(f"the {what} {path} belongs to user id {st.st_uid}, not to you "
                    f"({os.geteuid()}); a secret file must be your own: copy it to a file "
                    "you own, with `chmod 600`")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(f"the {what} {path} can be read by other users (mode "
                    f"{stat.S_IMODE(st.st_mode):o}); make it private with `chmod 600 {path}`")


def check_depth(value: Any, what: str, *, max_depth: int = MAX_DEPTH,
                error: Error = InvalidInputError) -> Any:
    """value itself, if no container in it is nested deeper than max_depth."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list | tuple):
            if depth > max_depth:
                raise error(f"the {what} is nested more than {max_depth} levels deep; it is "
                            "not one localckpt wrote")
            children = item.values() if isinstance(item, dict) else item
            todo.extend((c, depth + 1) for c in children)
    return value


def parse_json(data: bytes, what: str, *, max_bytes: int = MAX_BYTES,
               max_depth: int = MAX_DEPTH, error: Error = InvalidInputError) -> Any:
    """Decode JSON bytes of a control file (strict: no NaN, valid UTF-8) within the caps."""
    if len(data) > max_bytes:
        raise error(f"the {what} holds {len(data)} bytes, more than the {max_bytes} such a "
                    "file may have")
    try:
        value = orjson.loads(data)  # its own depth limit raises, never recursing deeply
    except orjson.JSONDecodeError as exc:
        raise error(f"the {what} is not valid JSON: {exc}") from None
    return check_depth(value, what, max_depth=max_depth, error=error)


def load_json_file(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_BYTES,
                   max_depth: int = MAX_DEPTH, error: Error = InvalidInputError) -> Any:
    """A JSON control file, or None when there is none (see the module docstring)."""
    data = read_regular(path, what, max_bytes=max_bytes, error=error)
    if data is None:
        return None
    return parse_json(data, f"{what} {os.fspath(path)}", max_bytes=max_bytes,
                      max_depth=max_depth, error=error)


def load_toml_file(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_BYTES,
                   max_depth: int = MAX_DEPTH, error: Error = InvalidInputError,
                   private: bool = False) -> dict[str, Any]:
    """A TOML control file as a dict ({} when there is none)."""
    data = read_regular(path, what, max_bytes=max_bytes, error=error, private=private)
    if data is None:
        return {}
    import tomllib  # here: opening a store without a config file never parses TOML

    where = f"{what} {os.fspath(path)}"
    try:
        value = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"the {where} is not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"cannot read the {where}: {exc}") from None
    except RecursionError:
        raise error(f"the {where} is nested too deeply to read (more than {max_depth} "
                    "levels are refused)") from None
    return dict(check_depth(value, where, max_depth=max_depth, error=error))


def _version(d: dict[str, Any], key: str, known: Sequence[int], path: str,
             default: int | None) -> int:
    value = d.get(key, default)
    if value is None:
        raise CorruptDataError(f"the store marker {path} names no {key}; it should hold JSON "
                               f'like {{"{key}": {max(known)}}}. Restore it')
    if isinstance(value, bool) or not isinstance(value, int):
        raise CorruptDataError(f"the store marker {path} names {key} {value!r}, which is not "
                               f"a version number (this localckpt knows {list(known)})")
    if value not in known:
        if value > max(known):
            raise SchemaVersionError(
                f"the store at {os.path.dirname(path)} has {key} {value}; this localckpt "
                f"reads up to {max(known)} (upgrade localckpt)")
        raise CorruptDataError(f"the store marker {path} names unknown {key} {value} (this "
                               f"localckpt knows {list(known)}); restore it")
    return value


def read_marker(path: str | os.PathLike[str],
                formats: Sequence[int] = MARKER_FORMATS) -> dict[str, Any]:
    """The store marker at path as a dict, checked: a regular file of at most 64 KB
    holding one flat JSON object whose ``format`` is in formats and whose
    ``canonical_json`` (absent in stores made before it was recorded: 1) is a version of
    canonical JSON this code reads. CorruptDataError for a missing, unreadable or unknown
    marker; SchemaVersionError for a newer format or canonical_json."""
    path = os.fspath(path)
    data = read_regular(path, "store marker", max_bytes=_MARKER_BYTES, error=CorruptDataError)
    if data is None:
        raise CorruptDataError(f"the store marker {path} is missing")
    d = parse_json(data, f"store marker {path}", max_bytes=_MARKER_BYTES, max_depth=4,
                   error=CorruptDataError)
    if not isinstance(d, dict):
        raise CorruptDataError(f"the store marker {path} holds a {type(d).__name__}, not a "
                               "JSON object; restore it")
    _version(d, "format", formats, path, None)
    _version(d, "canonical_json", CANONICAL_VERSIONS, path, 1)
    return d
