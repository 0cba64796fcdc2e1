"""Moving a finished temporary file to its name, replacing what is there or never.

Exports write aside and rename, so that a reader never sees half a file. Without
``overwrite`` the move must not replace a file that appeared meanwhile (another export,
the user's own): a check and then ``os.replace`` leaves a window between the two, while
a hard link fails on an existing name in the same system call.
"""

from __future__ import annotations

import errno
import os

__all__ = ["place"]

#: link() refused by the filesystem itself (no hard links there): check, then replace
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                       errno.EMLINK, errno.ENOSYS})


def place(tmp: str | os.PathLike[str], target: str | os.PathLike[str], *,
          overwrite: bool) -> None:
    """Move tmp to target (same directory). FileExistsError, tmp left for the caller to
    remove, when not overwrite and target exists (a dangling symlink included)."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST),
                                  os.fspath(target)) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)
