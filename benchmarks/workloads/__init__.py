"""Every workload, in the order the report shows them."""

from __future__ import annotations

import importlib.util

from ..model import Workload
from .catalog_scale import CATALOG_SCALE, CATALOG_SCALE_RSS, CATALOG_SCALE_SIZE
from .concurrent import SAVE_PROCS
from .decide import EVALUATE, SQL_FIRST, SQL_LATER
from .diagnostics import FSYNC_PATTERN, PG_SAVE_PARTS
from .frames import GET_FRAME, INGEST, LOAD, LOAD_ENCODED
from .gc_load import GC_UNDER_LOAD
from .ingest_video import INGEST_VIDEO, PERCEPTUAL_HASH
from .large import LOAD_LARGE, SAVE_LARGE
from .pg_writers import PG_WRITERS
from .reads import LINEAGE, LOAD_DEEP, TREE
from .results import FRAME_DIFF
from .saves import SAVE_BUSHY, SAVE_CHAIN
from .stage_runs import STAGE_RUNS
from .startup import CLI_START, PG_UNAVAILABLE
from .storage import STORAGE
from .stream import STREAM
from .threads import SAVE_THREADS
from .web_verify import VERIFY_ONE, WEB_INDEX

__all__ = ["WORKLOADS", "pending_notes"]

_HAS_SYNC = importlib.util.find_spec("localckpt.sync") is not None

WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    INGEST, INGEST_VIDEO, PERCEPTUAL_HASH, LOAD, LOAD_ENCODED, GET_FRAME, STREAM,
    SAVE_CHAIN, SAVE_PROCS, SAVE_BUSHY, SAVE_THREADS, PG_WRITERS, SAVE_LARGE, LOAD_LARGE,
    LOAD_DEEP, LINEAGE, TREE, STORAGE, FSYNC_PATTERN, PG_SAVE_PARTS, CLI_START,
    PG_UNAVAILABLE, FRAME_DIFF, EVALUATE, SQL_FIRST, SQL_LATER,
    CATALOG_SCALE, CATALOG_SCALE_RSS, CATALOG_SCALE_SIZE, GC_UNDER_LOAD, WEB_INDEX, VERIFY_ONE,
    STAGE_RUNS,
)}

if _HAS_SYNC:
    from .sync import SYNC_FIRST, SYNC_PUSH, SYNC_SECOND

    WORKLOADS.update({w.name: w for w in (SYNC_FIRST, SYNC_SECOND, SYNC_PUSH)})


def pending_notes() -> list[str]:
    """Workloads left out because the code they measure has not landed."""
    if not _HAS_SYNC:
        return ["sync workloads (sync_first, sync_second, sync_push) left out: "
                "localckpt.sync has not landed yet."]
    return []
