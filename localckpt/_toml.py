"""Writing localckpt's config file, atomically.

The standard library reads TOML (``tomllib``) but does not write it; :func:`dumps` is
``tomli_w.dumps`` (so ``tomllib.loads(dumps(d)) == d``; comments and layout of a file
that is rewritten are not kept). :func:`write_atomic` replaces a file so that a reader
sees the old or the new content, never a torn one (temp file in the same directory,
fsync, rename).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import tomli_w

__all__ = ["dumps", "write_atomic"]


def dumps(data: Mapping[str, Any]) -> str:
    """TOML text for data (tomli-w): nested mappings become ``[a.b]`` tables. TypeError
    for what TOML cannot hold (None, non-string keys, other types)."""
    return tomli_w.dumps(data)


def write_atomic(path: str, text: str) -> None:
    """Replace path with text: a concurrent reader sees the old or the new file whole.

    Keeps the mode of an existing file; a new one is private to its owner (0600).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".toml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
