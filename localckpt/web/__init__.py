"""A read-only web view of a store: timelines, checkpoint trees, frames with detections,
and per-frame comparisons of two tries (``localckpt serve``).

Pages: ``/`` (timelines, paged), ``/t/{timeline}`` (tree, viewer and frame strip),
``/c/{checkpoint}`` (lineage, tags, config, stats, frames with boxes, outputs),
``/compare?a=&b=&stage=`` (frame diff side by side); a checkpoint or timeline in a URL is
any reference: full id, short id, unique prefix or tag. Images ``/frames/{id}/{n}.jpg``
and ``/thumbs/...``; the JSON behind the pages under ``/api/`` (see
:mod:`localckpt.web.api`). Every route is listed in :mod:`localckpt.web.routes`.
Standard library only (Pillow for thumbnails).
"""

from __future__ import annotations

from .app import App, Response, is_loopback
from .server import Server, check_listen_address, make_server

__all__ = ["App", "Response", "Server", "check_listen_address", "is_loopback", "make_server"]
