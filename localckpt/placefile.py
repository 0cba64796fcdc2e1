"""Moving a finished temporary file to its name, replacing what is there or never.

Exports write aside and rename, so that a reader never sees half a file. The rename
replaces whatever the name held, so :func:`regular_target` first refuses a name that holds
a device, a pipe or a socket (an export ``--force``d to ``/dev/stdout``, run as root,
replaced that link with a file of boxes) and follows a symlink to the file it names, as
``cp`` writes through a link. Without
``overwrite`` the move must not replace a file that appeared meanwhile (another export,
the user's own): a check and then ``os.replace`` leaves a window between the two, while
a hard link fails on an existing name in the same system call.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import InvalidInputError

__all__ = ["place", "regular_target"]

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


def regular_target(path: str, what: str) -> str:
    """The path an export writing aside and renaming should use for path: path itself
    when it is missing, a directory (the caller's to refuse) or a regular file; the file
    a symlink names; InvalidInputError for a device, a pipe or a socket. what: the
    export, as the message names it."""
    try:
        st = os.stat(path)  # follows a symlink; a dangling one is no file yet
    except (OSError, ValueError):  # missing, dangling, a NUL in the name: the caller says
        return path
    if stat.S_ISDIR(st.st_mode):
        return path
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError(
            f"{path} is not a regular file (a device, a pipe or a socket): {what} writes "
            "its file aside and renames it into place, which would replace it; name a file")
    return os.path.realpath(path) if os.path.islink(path) else path
