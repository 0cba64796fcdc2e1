"""Every route of the web view, in one place.

A route is (pattern, handler): ``{timeline}`` and ``{checkpoint}`` match any reference
(id, short id, prefix, tag), ``{name}`` any text (see :func:`localckpt.web.request.match`).
Handlers take ``(store, request)``: pages and fragments return HTML text, API handlers a
JSON-ready value. Images are served by the App itself, static files from the fixed list
:data:`STATIC` (a request never names a file). To add a page, write its handler in a
module of its own and add one line here (and its script, if any, to STATIC).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import api, compare, pages, tries, viewer

__all__ = ["API", "FRAGMENTS", "PAGES", "STATIC"]

Handler = Callable[..., Any]

#: HTML pages.
PAGES: list[tuple[str, Handler]] = [
    ("/", pages.timelines_page),
    ("/t/{timeline}", pages.timeline_page),
    ("/c/{checkpoint}", pages.checkpoint_page),
    ("/compare", compare.compare_page),
    ("/t/{timeline}/tries", tries.tries_page),
    ("/t/{timeline}/side", tries.side_page),
]

#: Parts of pages that app.js swaps in (HTML without the page around it).
FRAGMENTS: list[tuple[str, Handler]] = [
    ("/view/{timeline}", viewer.fragment),
    ("/t/{timeline}/side/panes", tries.panes_fragment),
]

#: JSON endpoints (localckpt.web.api).
API: list[tuple[str, Handler]] = api.ROUTES

#: Files of localckpt/web/static that are served, with their content types.
STATIC: dict[str, str] = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
    "tries.css": "text/css; charset=utf-8",
    "tries.js": "text/javascript; charset=utf-8",
}
