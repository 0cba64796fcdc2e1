"""The frame viewer: one frame large, stepped with the arrow keys or a slider.

The timeline page shows the plain frame; a checkpoint page draws its boxes of one stage
on every frame it steps to. The viewer is rendered here, on the server, both inside its
page and alone (the ``/view/{timeline}`` fragment), so app.js only swaps one rendering
for the next: the boxes, colours and text chips are drawn by the same code everywhere.
Its links work without script (they reload the page at the next frame).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError
from ..framediff import frames_of
from ..types import Checkpoint, FrameMeta
from .boxes import Shape, count_boxes, frame_figure, label_counts, plain_boxes
from .data import pixel_aspect
from .html import attr, esc, url

if TYPE_CHECKING:
    from ..store import Store
    from .request import Request

__all__ = ["detection_frames", "detection_stages", "fragment", "secs", "stage_labels",
           "viewer"]

_PREV, _NEXT = "\u2039 previous", "next \u203a"


def secs(s: float) -> str:
    if s != s or s in (float("inf"), float("-inf")):
        return "—"
    m, sec = divmod(s, 60)
    return f"{int(m)}:{sec:05.2f}" if m else f"{sec:.2f} s"


def detection_frames(store: Store, req: Request, c: Checkpoint, stage: str) -> dict[int, Any]:
    """sequence -> frame value of c's stage output (decoded once per output, cached);
    InvalidInputError when the output is not frame-keyed."""
    h = c.stage_hashes.get(stage)
    if h is None:
        raise NotFoundError(f"checkpoint {c.id} has no stage {stage!r} (it has: "
                            f"{', '.join(sorted(c.stage_hashes)) or 'none'})")

    def load() -> dict[int, Any] | InvalidInputError:
        try:
            return frames_of(store.load_stage_output(c.id, stage), f"stage {stage!r}")
        except InvalidInputError as exc:
            return exc

    found = req.outputs.get("frames:" + h, load)
    if isinstance(found, InvalidInputError):
        raise found
    return found


def detection_stages(store: Store, req: Request, c: Checkpoint) -> list[str]:
    """Stages whose output is frame-keyed with at least one frame holding detections."""
    found = []
    for stage in sorted(c.stage_hashes):
        try:
            frames = detection_frames(store, req, c, stage)
        except InvalidInputError:
            continue
        if any(plain_boxes(v) for v in frames.values()):
            found.append(stage)
    return found


def _first_detection_stage(store: Store, req: Request, c: Checkpoint) -> str:
    """The stage a checkpoint page shows first, for a viewer asked without one."""
    stages = detection_stages(store, req, c)
    if not stages:
        raise NotFoundError(f"checkpoint {c.id} has no stage with detections to draw (it "
                            f"has: {', '.join(sorted(c.stage_hashes)) or 'none'})")
    return stages[0]


def stage_labels(req: Request, c: Checkpoint, stage: str, frames: dict[int, Any]
                 ) -> tuple[dict[str | None, int], set[str | None]]:
    """(box count per label, labels whose boxes all have a track id) of one output."""
    def count() -> tuple[dict[str | None, int], set[str | None]]:
        tracked: dict[str | None, bool] = {}
        for v in frames.values():
            for s in plain_boxes(v):
                tracked[s.box.label] = tracked.get(s.box.label, True) and s.track is not None
        return label_counts(frames.values()), {k for k, t in tracked.items() if t}

    result: tuple[dict[str | None, int], set[str | None]] = req.outputs.get(
        "labels:" + c.stage_hashes[stage], count)
    return result


def viewer(timeline_id: str, index: list[FrameMeta], pos: int, link: Callable[[int], str],
           src: str, frames: dict[int, Any] | None = None, aspect: float = 1.0) -> str:
    """The viewer at index position pos (clamped). link(pos): the page URL showing that
    position (for use without script); src: the fragment URL (without ``i``) that app.js
    asks for the next position; frames: a checkpoint's frame values, whose boxes are
    drawn (None on a timeline page); aspect: see data.pixel_aspect."""
    if not index:
        return '<div class="viewer" id="viewer"><p class="muted">no frames</p></div>'
    pos = max(0, min(pos, len(index) - 1))
    meta = index[pos]
    shapes: list[Shape] = []
    drawn = ""
    if frames is not None:
        value = frames.get(meta.sequence)
        shapes = plain_boxes(value) if value is not None else []
        drawn = (f" · {count_boxes(len(shapes))}" if value is not None else " · not in this output")
    caption = (f"frame #{meta.sequence} · {esc(secs(meta.timestamp))} · {pos + 1:,} of "
               f"{len(index):,}{drawn}")
    figure = frame_figure(timeline_id, meta.sequence, meta, shapes, caption, cls="frame big",
                          lazy=False, size="big", aspect=aspect)
    last = len(index) - 1

    def step(to: int, text: str, cls: str) -> str:
        if to < 0 or to > last or to == pos:
            return f'<span class={attr(cls + " off")}>{esc(text)}</span>'
        return (f'<a class={attr(cls)} href={attr(link(to) + "#viewer")} '
                f'data-pos="{to}">{esc(text)}</a>')

    nav = (f'<div class="vnav">{step(0, "« first", "first")}'
           f'{step(pos - 1, _PREV, "prev")}'
           f'<input type="range" id="scrub" min="0" max="{last}" value="{pos}" '
           f'aria-label="frame position">{step(pos + 1, _NEXT, "next")}'
           f'{step(last, "last »", "last")}'
           '<span class="hint">keys: ← → step, Home, End</span></div>')
    return (f'<div class="viewer" id="viewer" data-src={attr(src)} data-pos="{pos}" '
            f'data-seq="{meta.sequence}" data-count="{len(index)}">{nav}{figure}</div>')


def fragment(store: Store, req: Request) -> str:
    """/view/{timeline}?i=&c=&stage=: the viewer alone (what app.js swaps in); without
    stage, a checkpoint's first stage with detections (as its page shows first)."""
    tid = req.timeline()
    index = store.frame_index(tid)
    pos = req.int("i", 0)
    frames = None
    c_ref = req.text("c")
    if c_ref:
        c = store.get_checkpoint(req.checkpoint("c"))
        if c.timeline_id != tid:
            raise InvalidInputError(f"checkpoint {c.id} is not of timeline {tid}")
        stage = req.text("stage") or _first_detection_stage(store, req, c)
        frames = detection_frames(store, req, c, stage)
        src = url(f"/view/{tid}", c=c.id, stage=stage)

        def link(p: int) -> str:
            return url(f"/c/{c.id}", stage=stage, i=p)
    else:
        src = url(f"/view/{tid}")

        def link(p: int) -> str:
            return url(f"/t/{tid}", i=p)
    return viewer(tid, index, pos, link, src, frames,
                  aspect=pixel_aspect(store.get_timeline(tid)))
