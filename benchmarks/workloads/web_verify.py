"""Reads that must cost what they return (issue 21): the web view's index and
``verify(timeline)`` on stores of 1,000 and 5,000 timelines.

One store per configuration and size, shared by both workloads (``Store.create_timeline``
with one frame, then a 10-checkpoint chain each, ``_bulk``).
Measured in this process with the store open:

- the web view's index page and its JSON twin, through the web app's own request
  handler (``localckpt.web.server.App.handle("GET", "/")``: routing, the page and its
  reads, no socket), whatever that handler reads on this branch;
- ``Catalog.timeline_page(0, 50)``: one page of timelines with their counts;
- ``Store.verify(timeline)`` of one timeline in the middle of the store.

Goal: growth exponent from 1,000 to 5,000 timelines at most 0.1.
"""

from __future__ import annotations

import time
from typing import Any

from ..configs import StoreConfig, open_from_args
from ..model import Context, Goal, Sample, Subject, Workload
from ._bulk import build_store
from ._common import cached

__all__ = ["VERIFY_ONE", "WEB_INDEX"]

PER = 10  # checkpoints per timeline, root included
PAGE = 50


class _Built:
    """A store of a given number of timelines (shared by both workloads)."""

    def __init__(self, ctx: Context, cfg: StoreConfig, timelines: int) -> None:
        self.args = cfg.open_args(cfg.new_tag(f"web_verify_{timelines}"))
        self.built = build_store(self.args, cfg.catalog, timelines, PER)
        ctx.note(f"web_index/verify_one: {cfg.name} store of {timelines:,} timelines built "
                 f"in {self.built.seconds:.0f} s")


def _grown(ctx: Context, cfg: StoreConfig, timelines: int) -> _Built:
    found: _Built = cached(ctx, f"web_verify:{cfg.name}:{timelines}",
                           lambda: _Built(ctx, cfg, timelines))
    return found


def _stores(ctx: Context) -> list[StoreConfig]:
    return [c for c in ctx.configs if c.objects_kind == "local"]


def _timed(fn: Any) -> Sample:
    t0 = time.perf_counter()
    fn()
    return Sample(time.perf_counter() - t0)


def _get(app: Any, target: str) -> None:
    response = app.handle("GET", target, "localhost")
    if response.status != 200:
        raise RuntimeError(f"GET {target} answered {response.status}: "
                           f"{response.body[:300]!r}")


def _build_web(ctx: Context, timelines: int) -> list[Subject]:
    from localckpt.web.server import App

    subjects = []
    for cfg in _stores(ctx):
        grown = _grown(ctx, cfg, timelines)
        store = open_from_args(grown.args)
        app = App(store)
        subjects += [
            Subject(f"{cfg.name} GET / (web index page)",
                    lambda a=app: _timed(lambda: _get(a, "/")), config=cfg.name,
                    close=store.close),
            Subject(f"{cfg.name} GET /api/timelines",
                    lambda a=app: _timed(lambda: _get(a, "/api/timelines")), config=cfg.name),
            Subject(f"{cfg.name} Catalog.timeline_page(0, {PAGE})",
                    lambda s=store: _timed(lambda: s.catalog.timeline_page(0, PAGE)),
                    config=cfg.name),
            # The newest page, as the index asks for it (offset = total - page): what paging by
            # OFFSET costs when the wanted rows sit at the end of the order.
            Subject(f"{cfg.name} Catalog.timeline_page(total - {PAGE}, {PAGE})",
                    lambda s=store: _timed(lambda: s.catalog.timeline_page(
                        max(0, s.catalog.timeline_page(0, 0)[2] - PAGE), PAGE)),
                    config=cfg.name),
        ]
    return subjects


def _build_verify(ctx: Context, timelines: int) -> list[Subject]:
    subjects = []
    for cfg in _stores(ctx):
        grown = _grown(ctx, cfg, timelines)
        store = open_from_args(grown.args)
        tid = grown.built.timelines[len(grown.built.timelines) // 2]

        def run(s: Any = store, t: str = tid, name: str = cfg.name) -> Sample:
            t0 = time.perf_counter()
            report = s.verify(t)
            seconds = time.perf_counter() - t0
            if not report.ok:
                ctx.note(f"verify_one: {name} verify({t}) found problems: "
                         f"{report.problems[:2]}")
            return Sample(seconds, extra={"checkpoints checked": float(report.checkpoints),
                                          "outputs checked": float(report.outputs)})

        subjects.append(Subject(f"{cfg.name} verify(timeline)", run, config=cfg.name,
                                close=store.close))
    return subjects


_FLAT = (Goal("growth exponent <= 0.1 (1,000 -> 5,000 timelines)", lambda s: "+" in s,
              "flat", 0.1),)

WEB_INDEX = Workload(
    name="web_index", title="The web view's index and one page of timelines",
    unit="requests", size_name="timelines in the store", cost_label="s per request",
    sizes=(1000, 5000), quick_sizes=(20, 100), reps=3, quick_reps=1,
    build=_build_web, goals=_FLAT,
    notes=(f"Timelines of one frame and a {PER}-checkpoint chain each. GET rows go through "
           "the web app's request handler in this process (no socket), as the server "
           "calls it; the page is whatever the index route renders on this branch. "
           f"Catalog.timeline_page(0, {PAGE}) is the catalog's paged read of timelines "
           "with their checkpoint counts.",),
)

VERIFY_ONE = Workload(
    name="verify_one", title="verify(timeline) of one timeline",
    unit="verifications", size_name="timelines in the store", cost_label="s per verify",
    sizes=(1000, 5000), quick_sizes=(20, 100), reps=3, quick_reps=1,
    build=_build_verify, goals=_FLAT,
    notes=(f"The store of web_index (timelines of one frame and a {PER}-checkpoint chain); "
           "verify of the timeline in the middle: its tree, outputs, frame index and "
           "shard, and whatever else verify(timeline) reads on this branch.",),
)
