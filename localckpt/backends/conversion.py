"""Converting an embedded store of format 1 or 2 (our own log files under ``catalog/``)
to format 3 (the SQLite catalog), all or nothing.

Under an exclusive lock on ``DIR/.convert.lock`` (processes opening the store at the
same moment convert it once):

1. every record and output is read by ``legacy.read_legacy``, checked as it reads;
2. they are written into ``catalog.sqlite.tmp-<id>`` in one transaction, fsynced;
3. that file is renamed to ``catalog.sqlite``, then the marker says format 3;
4. the old ``catalog/`` directory goes.

A crash before 3 leaves the old store as it was (the next open converts again, and
removes the temporary file); a crash between the rename and the marker converts again,
over the same file (nobody writes it while the marker says 2); a crash after the marker
leaves old files that the next open removes. Ids, output bytes (so hashes), tombstones
and tags are kept exactly.

A process that may not write the directory reads the old store as it is, through an
in-memory catalog filled from the same reader.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import uuid
from collections.abc import Iterator

from ..catalog import Batch
from ..errors import BackendUnavailableError, InvalidInputError
from ..types import Checkpoint
from .sql import SqlCatalog, memory_catalog, sqlite_catalog

__all__ = ["convert", "read_only_catalog"]

_LOCK = ".convert.lock"


@contextlib.contextmanager
def _exclusive(root: str) -> Iterator[None]:
    path = os.path.join(root, _LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise BackendUnavailableError(f"cannot lock {path} to convert the store: {exc}"
                                      ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fill(catalog: SqlCatalog, root: str, allow_live: bool = False) -> None:
    from .legacy import read_legacy

    contents = read_legacy(os.path.join(root, "catalog"), allow_live_writers=allow_live)
    try:
        batch = Batch(timelines=contents.timelines, checkpoints=_rooted(contents.checkpoints),
                      outputs=contents.outputs, tombstones=contents.tombstones,
                      tags=contents.tags)
    except InvalidInputError as exc:
        from ..errors import CorruptDataError

        raise CorruptDataError(f"the old catalog of {root} holds a record this version "
                               f"refuses ({exc}); nothing was converted") from None
    catalog.commit(batch)


def _rooted(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """The checkpoints whose parent chain is whole. The old engine could purge a pruned
    checkpoint while keeping descendants saved under it meanwhile (pruned data coming
    back): they were deleted, and stay so."""
    by_id = {c.id: c for c in checkpoints}
    whole: dict[str, bool] = {}

    def rooted(cid: str) -> bool:
        chain = []
        while cid not in whole:
            chain.append(cid)
            parent = by_id[cid].parent_id
            if parent is None or parent not in by_id:
                whole[cid] = parent is None
                chain.pop()
                break
            cid = parent
        verdict = whole[cid]
        for c in chain:
            whole[c] = verdict
        return verdict

    return [c for c in checkpoints if rooted(c.id)]


def convert(root: str) -> None:
    """Convert the store at root to format 3 (see the module docstring); always durable,
    whatever the store's fsync option: it replaces the only copy."""
    from .factories import CATALOG_FILE, LEGACY_FORMATS, MARKER, read_marker, write_marker

    marker = os.path.join(root, MARKER)
    with _exclusive(root):
        fmt = read_marker(marker) if os.path.lexists(marker) else 0
        if fmt not in LEGACY_FORMATS:
            _remove_old(root)
            return
        for stale in glob.glob(os.path.join(root, f"{CATALOG_FILE}.tmp-*")):
            with contextlib.suppress(OSError):
                os.remove(stale)
        tmp = os.path.join(root, f"{CATALOG_FILE}.tmp-{uuid.uuid4().hex}")
        try:
            catalog = sqlite_catalog(tmp, create=True, fsync=True)
            try:
                _fill(catalog, root)
                catalog.engine.query("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                catalog.close()
            for suffix in ("-wal", "-shm", "-writers"):
                with contextlib.suppress(OSError):
                    os.remove(tmp + suffix)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, os.path.join(root, CATALOG_FILE))
            _fsync_dir(root)
        except BaseException:
            for path in (tmp, tmp + "-wal", tmp + "-shm", tmp + "-writers"):
                with contextlib.suppress(OSError):
                    os.remove(path)
            raise
        write_marker(marker)
        _remove_old(root)


def _remove_old(root: str) -> None:
    old = os.path.join(root, "catalog")
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_only_catalog(root: str) -> SqlCatalog:
    """The old store's records in an in-memory catalog that refuses writes."""
    catalog = memory_catalog()
    _fill(catalog, root, allow_live=True)
    catalog.read_only = (
        f"the store at {root} is in an old format (a catalog of log files) and this process "
        "may not write its directory to convert it; open it once as a user who may "
        "(any localckpt command converts it), then retry")
    return catalog
