"""localckpt: a local-first store for video-pipeline state.

Frames sampled from a video form a timeline; each pipeline stage's JSON output is saved
as a checkpoint; checkpoints form a tree per timeline. The same API runs embedded
(an SQLite catalog and local files in one directory) and on PostgreSQL + S3::

    import localckpt
    store = localckpt.open()                 # $LOCALCKPT_URL, else ./.localckpt
    tl = store.create_timeline("match.mp4", "broadcast", frames, fps=2.0)
    a = store.save_stage_output(tl.id, None, "detect", {"boxes": []})
"""

from typing import TYPE_CHECKING, Any

from . import errors
from .catalog import Batch, Catalog
from .diff import Diff
from .errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    MergeConflict,
    NotFoundError,
)
from .maintenance import Problem, PruneReport, VerifyReport
from .registry import open, register_backend
from .store import Store
from .sync import SyncReport, sync
from .types import Checkpoint, Frame, FrameMeta, Tag, Timeline, Tombstone

if TYPE_CHECKING:
    from .runs import StageRun, code_version

__version__ = "0.1.0"

#: imported on first use (stage runs are a third of the package's import time, and the
#: command line's everyday commands do not need them)
_LAZY = {"StageRun": ".runs", "code_version": ".runs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BackendUnavailableError",
    "Batch",
    "Catalog",
    "Checkpoint",
    "ConflictError",
    "CorruptDataError",
    "Diff",
    "Frame",
    "FrameMeta",
    "InvalidInputError",
    "LocalckptError",
    "MergeConflict",
    "NotFoundError",
    "Problem",
    "PruneReport",
    "StageRun",
    "Store",
    "SyncReport",
    "Tag",
    "Timeline",
    "Tombstone",
    "VerifyReport",
    "__version__",
    "code_version",
    "errors",
    "open",
    "register_backend",
    "sync",
]
