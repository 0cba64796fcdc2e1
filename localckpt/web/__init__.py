"""A read-only web view of a store: timelines, checkpoint trees, frames with detections,
and per-frame comparisons of two tries (``localckpt serve``).

Pages: ``/`` (timelines), ``/t/{timeline}`` (tree and frame strip), ``/c/{checkpoint}``
(lineage, outputs, config, stats, frames with boxes), ``/compare?a=&b=&stage=`` (frame
diff side by side); images ``/frames/{timeline}/{n}.jpg`` and ``/thumbs/...``; the JSON
behind them under ``/api/`` (see :mod:`localckpt.web.api`). Standard library only.
"""

from __future__ import annotations

from .server import App, Response, is_loopback, make_server

__all__ = ["App", "Response", "is_loopback", "make_server"]
