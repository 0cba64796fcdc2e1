"""The JSON endpoints (``/api/...``): what the pages show, for other front ends.

Records carry ``short_id`` beside ``id``, and checkpoints their ``tags``. Ids in the path
or query may be any reference (id, short id, unique prefix, tag).

=============================================  ============================================
``/api/timelines?start=0&limit=50``            a page of timelines, newest first, with
                                               checkpoint counts and durations:
                                               ``{"total", "start", "limit", "timelines"}``
``/api/timelines/{id}``                        one timeline, its whole checkpoint tree and
                                               its open stage runs (``runs``)
``/api/timelines/{id}/frames``                 frame index rows, paged: ``?start=0&limit=100``
``/api/checkpoints/{id}``                      one checkpoint, its lineage ids and children
``/api/checkpoints/{id}/outputs/{stage}``      one stage's output as stored
``/api/compare?a=&b=&stage=&match_iou=``       Store.frame_diff as JSON (stage: default as
``&align=time``                                the compare page chooses it); checkpoints of
                                               two timelines need ``align=time`` (else 400,
                                               with a link to the aligned comparison)
=============================================  ============================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from . import data
from .compare import compare_api

if TYPE_CHECKING:
    from ..store import Store
    from .request import Request

__all__ = ["ROUTES"]


def timelines(store: Store, req: Request) -> Any:
    return data.timeline_rows(store, req.names, req.int("start", 0),
                              req.int("limit", data.TIMELINE_PAGE, lo=1, hi=data.MAX_PAGE))


def timeline(store: Store, req: Request) -> Any:
    return data.timeline_view(store, req.timeline(), req.names)


def frames(store: Store, req: Request) -> Any:
    return data.frames_page(store, req.timeline(), req.int("start", 0),
                            req.int("limit", 100, lo=1, hi=data.MAX_PAGE))


def checkpoint(store: Store, req: Request) -> Any:
    return data.checkpoint_view(store, req.checkpoint(), req.names)


def output(store: Store, req: Request) -> Any:
    cid, stage = req.checkpoint(), req.params["name"]
    c = store.get_checkpoint(cid)
    if stage not in c.stage_hashes:
        raise NotFoundError(f"checkpoint {cid} has no stage {stage!r} (it has: "
                            f"{', '.join(sorted(c.stage_hashes)) or 'none'})")
    return store.load_stage_output(cid, stage)


ROUTES = [
    ("/api/timelines", timelines),
    ("/api/timelines/{timeline}", timeline),
    ("/api/timelines/{timeline}/frames", frames),
    ("/api/checkpoints/{checkpoint}", checkpoint),
    ("/api/checkpoints/{checkpoint}/outputs/{name}", output),
    ("/api/compare", compare_api),
]
