"""The web view as a function: (method, request target, Host) -> Response.

Knows nothing of sockets (:mod:`localckpt.web.server` does), so every route, error and
header rule is tested without a network. The routes themselves are listed in one place,
:mod:`localckpt.web.routes`.

Every response carries a Content-Security-Policy that allows only this server's own
scripts, styles and images (no inline script, no other origin), so nothing planted in a
stage output could run even if it escaped escaping. While bound to loopback, requests
whose Host names another host are refused (a web page elsewhere cannot read the store
through DNS rebinding). Only GET and HEAD are served: the server never writes to the
store.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import traceback
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidInputError, LocalckptError, NotFoundError
from . import routes
from .images import FrameImages
from .names import Names, missing
from .request import OutputCache, Refused, Request, match, split_path

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["SECURITY_HEADERS", "App", "OutputCache", "Response", "is_loopback"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_HTML = "text/html; charset=utf-8"


@attrs.frozen
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _html(status: int, text: str) -> Response:
    return Response(status, _HTML, text.encode(), (("Cache-Control", "no-store"),))


def _json(status: int, value: Any) -> Response:
    return Response(status, "application/json",
                    json.dumps(value, ensure_ascii=False, default=str).encode(),
                    (("Cache-Control", "no-store"),))


def is_loopback(host: str) -> bool:
    """Whether binding to host keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class App:
    """Turns (method, request target, Host) into a Response."""

    def __init__(self, store: Store, *, loopback_only: bool = True) -> None:
        self.store = store
        self.images = FrameImages(store)
        self.outputs = OutputCache()
        self.loopback_only = loopback_only
        self._static: dict[str, bytes] = {}
        self.routes: list[tuple[str, str, Callable[..., Any]]] = [
            *(("page", p, f) for p, f in routes.PAGES),
            *(("fragment", p, f) for p, f in routes.FRAGMENTS),
            *(("api", p, f) for p, f in routes.API),
            ("image", "/frames/{tid}/{seq}", self._frame),
            ("image", "/thumbs/{tid}/{seq}", self._thumb),
            ("static", "/static/{name}", self._static_file),
            ("static", "/favicon.ico", lambda req: self._static_file(
                attrs.evolve(req, params={"name": "icon.svg"}))),
        ]

    def handle(self, method: str, target: str, host: str | None = None) -> Response:
        """host: the Host header's name part (the server has checked its form; None
        only for calls from code, which name no host)."""
        kind = "api" if target.startswith("/api/") else "page"
        try:
            if method not in ("GET", "HEAD"):
                resp = self._error(kind, 405, "Method not allowed",
                                   f"{method} is not served: this view is read-only "
                                   "(GET and HEAD only)")
                return attrs.evolve(resp, headers=(*resp.headers, ("Allow", "GET, HEAD")))
            if self.loopback_only and host is not None and host.lower() not in _LOOPBACK_NAMES:
                return self._error(kind, 403, "Forbidden",
                                   f"this server answers requests for localhost only, not "
                                   f"for {host!r}")
            if not target.startswith("/"):
                raise InvalidInputError("the request target must be a path")
            segments, query = split_path(target)
            for route_kind, pattern, func in self.routes:
                params = match(pattern, segments)
                if params is not None:
                    kind = route_kind
                    req = Request(target, params, query, Names(self.store), self.outputs)
                    return self._run(kind, func, req)
            return self._error(kind, 404, "Not found",
                               f"there is no page at {target.partition('?')[0]!r}")
        except Refused as exc:
            return self._error(kind, exc.status, exc.title, str(exc), exc.links)
        except NotFoundError as exc:  # a Gone one says where to go instead
            return self._error(kind, 404, "Not found", missing(self.store, str(exc)),
                               getattr(exc, "links", None))
        except (InvalidInputError, UnicodeDecodeError) as exc:
            return self._error(kind, 400, "Bad request", _says(exc))
        except LocalckptError as exc:
            return self._error(kind, 500, "Store error", str(exc))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return self._error(kind, 500, "Internal error",
                               "the server failed on this request (details in its log)")

    def _run(self, kind: str, func: Callable[..., Any], req: Request) -> Response:
        if kind in ("page", "fragment"):
            return _html(200, func(self.store, req))
        if kind == "api":
            return _json(200, func(self.store, req))
        result: Response = func(req)
        return result

    def _error(self, kind: str, status: int, title: str, message: str,
               links: list[tuple[str, str]] | None = None) -> Response:
        if kind == "api":
            value: dict[str, Any] = {"error": title, "status": status, "message": message}
            if links:
                value["links"] = [{"href": h, "text": t} for h, t in links]
            return _json(status, value)
        if kind in ("image", "static"):
            return Response(status, "text/plain; charset=utf-8", message.encode())
        from .pages import error_page

        return _html(status, error_page(status, title, message,
                                        self.store.catalog.describe(), links or []))

    def _frame(self, req: Request) -> Response:
        return Response(200, "image/jpeg", self.images.jpeg(req.params["tid"],
                                                            req.params["seq"]),
                        (("Cache-Control", "private, max-age=3600"),))

    def _thumb(self, req: Request) -> Response:
        return Response(200, "image/jpeg", self.images.thumbnail(req.params["tid"],
                                                                 req.params["seq"]),
                        (("Cache-Control", "private, max-age=3600"),))

    def _static_file(self, req: Request) -> Response:
        name = req.params["name"]
        if name not in routes.STATIC:  # a fixed list: a request never names a file
            raise NotFoundError(f"no static file {name!r}")
        if name not in self._static:
            self._static[name] = (resources.files(__package__) / "static" / name).read_bytes()
        return Response(200, routes.STATIC[name], self._static[name],
                        (("Cache-Control", "private, max-age=600"),))


def _says(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "the request path or query is not valid percent-encoded UTF-8"
    return str(exc)
