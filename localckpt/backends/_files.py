"""Descriptors of the catalog's immutable files, opened on demand and few at a time.

A process that lives through many compactions must not keep a descriptor on every file
it ever read (the compactor unlinks them, and the descriptors would pin their space):
reads of runs and blob files go through one small LRU of open descriptors per catalog.
A file that is gone (compacted away since this process read the manifest) raises
:class:`Vanished`; the catalog then reads the new manifest and asks again.
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict

__all__ = ["FileCache", "Vanished", "remove"]


def remove(path: str) -> None:
    """Unlink path if it is there (a temporary file, an input already gone)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Vanished(Exception):
    """A catalog file was removed (compacted away) between the manifest and the read."""


class FileCache:
    """pread by file name, through at most max_open descriptors."""

    def __init__(self, directory: str, max_open: int = 16,
                 stats: Counter[str] | None = None) -> None:
        self.directory = directory
        self.max_open = max_open
        self._fds: OrderedDict[str, int] = OrderedDict()
        self.stats: Counter[str] = Counter() if stats is None else stats

    def fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is not None:
            self._fds.move_to_end(name)
            return fd
        try:
            fd = os.open(os.path.join(self.directory, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Vanished(name) from None
        self._fds[name] = fd
        while len(self._fds) > self.max_open:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def pread(self, name: str, length: int, offset: int) -> bytes:
        self.stats["reads"] += 1
        self.stats["bytes_read"] += length
        return os.pread(self.fd(name), length, offset)

    def size(self, name: str) -> int:
        return os.fstat(self.fd(name)).st_size

    def open_names(self) -> list[str]:
        return list(self._fds)

    def forget(self, names: set[str] | None = None) -> None:
        """Close the descriptors of these files (every file when None)."""
        for name in list(self._fds):
            if names is None or name in names:
                os.close(self._fds.pop(name))

    def close(self) -> None:
        self.forget()
