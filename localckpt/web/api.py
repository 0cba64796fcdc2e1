"""The JSON endpoints (``/api/...``): what the pages show, for other front ends.

=========================================  ================================================
``/api/timelines``                         every timeline, with checkpoint count, duration
``/api/timelines/{id}``                    one timeline and its whole checkpoint tree
``/api/timelines/{id}/frames``             frame index rows, paged: ``?start=0&limit=100``
``/api/checkpoints/{id}``                  one checkpoint, its lineage ids and children
``/api/checkpoints/{id}/outputs/{stage}``  one stage's output as stored
``/api/compare?a=&b=&stage=&match_iou=``   Store.frame_diff as JSON (stage: default as the
                                           compare page chooses it)
=========================================  ================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from . import data

if TYPE_CHECKING:
    from ..store import Store
    from .request import Request

__all__ = ["ROUTES"]


def timelines(store: Store, req: Request) -> Any:
    return data.timeline_rows(store)


def timeline(store: Store, req: Request) -> Any:
    return data.timeline_view(store, req.params["timeline"])


def frames(store: Store, req: Request) -> Any:
    return data.frames_page(store, req.params["timeline"], req.int("start", 0),
                            req.int("limit", 100, lo=1, hi=data.MAX_PAGE))


def checkpoint(store: Store, req: Request) -> Any:
    return data.checkpoint_view(store, req.params["checkpoint"])


def output(store: Store, req: Request) -> Any:
    cid, stage = req.params["checkpoint"], req.params["name"]
    c = store.get_checkpoint(cid)
    if stage not in c.stage_hashes:
        raise NotFoundError(f"checkpoint {cid} has no stage {stage!r} (it has: "
                            f"{', '.join(sorted(c.stage_hashes)) or 'none'})")
    return store.load_stage_output(cid, stage)


def compare(store: Store, req: Request) -> Any:
    a = store.get_checkpoint(req.id("a"))
    b = store.get_checkpoint(req.id("b"))
    stage = data.choose_stage(a, b, req.text("stage"))
    return store.frame_diff(a.id, b.id, stage, match_iou=req.float("match_iou", 0.5)).to_dict()


ROUTES = [
    ("/api/timelines", timelines),
    ("/api/timelines/{timeline}", timeline),
    ("/api/timelines/{timeline}/frames", frames),
    ("/api/checkpoints/{checkpoint}", checkpoint),
    ("/api/checkpoints/{checkpoint}/outputs/{name}", output),
    ("/api/compare", compare),
]
