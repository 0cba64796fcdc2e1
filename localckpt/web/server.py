"""The HTTP side of the web view: routing, errors, security headers, the server itself.

Built on the standard library (``http.server.ThreadingHTTPServer``): the view is a
handful of read-only GET routes for one user on loopback, which needs no framework, and
a plain install (no ``[web]`` extra) can run it. Every response carries a
Content-Security-Policy that allows only this server's own scripts, styles and images (no
inline script, no other origin), so nothing planted in a stage output could run even if
it escaped escaping. While bound to loopback, requests whose Host header names another
host are refused (a web page elsewhere cannot read the store through DNS rebinding).
Only GET and HEAD are served: the server never writes to the store.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidInputError, LocalckptError, NotFoundError
from . import api, pages, tries
from .images import FrameImages
from .request import Request, match, split_path

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["App", "Response", "is_loopback", "make_server"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
           "icon.svg": "image/svg+xml", "tries.css": "text/css; charset=utf-8",
           "tries.js": "text/javascript; charset=utf-8"}
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


@attrs.frozen
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _html(status: int, text: str) -> Response:
    return Response(status, "text/html; charset=utf-8", text.encode(),
                    (("Cache-Control", "no-store"),))


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
    """Turns (method, request target, Host) into a Response; knows nothing of sockets."""

    def __init__(self, store: Store, *, loopback_only: bool = True) -> None:
        self.store = store
        self.images = FrameImages(store)
        self.loopback_only = loopback_only
        self._static: dict[str, bytes] = {}
        page: list[tuple[str, Callable[..., str]]] = [
            ("/", pages.timelines_page),
            ("/t/{timeline}", pages.timeline_page),
            ("/c/{checkpoint}", pages.checkpoint_page),
            ("/compare", pages.compare_page),
            ("/t/{timeline}/tries", tries.tries_page),
            ("/t/{timeline}/side", tries.side_page),
            ("/t/{timeline}/side/panes", tries.panes_fragment),
        ]
        self.routes: list[tuple[str, str, Callable[..., Any]]] = [
            *(("page", p, f) for p, f in page),
            *(("api", p, f) for p, f in api.ROUTES),
            ("image", "/frames/{timeline}/{seq}", self._frame),
            ("image", "/thumbs/{timeline}/{seq}", self._thumb),
            ("static", "/static/{name}", self._static_file),
            ("static", "/favicon.ico", lambda req: self._static_file(
                Request(req.path, {"name": "icon.svg"}, {}))),
        ]

    def handle(self, method: str, target: str, host: str | None = None) -> Response:
        kind = "api" if target.startswith("/api/") else "page"
        try:
            if method not in ("GET", "HEAD"):
                resp = self._error(kind, 405, "Method not allowed",
                                   f"{method} is not served: this view is read-only "
                                   "(GET and HEAD only)")
                return attrs.evolve(resp, headers=(*resp.headers, ("Allow", "GET, HEAD")))
            if self.loopback_only and host and _host_name(host) not in _LOOPBACK_NAMES:
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
                    return self._run(kind, func, Request(target, params, query))
            return self._error(kind, 404, "Not found",
                               f"there is no page at {target.partition('?')[0]!r}")
        except NotFoundError as exc:
            return self._error(kind, 404, "Not found", str(exc))
        except (InvalidInputError, UnicodeDecodeError) as exc:
            return self._error(kind, 400, "Bad request", _says(exc))
        except LocalckptError as exc:
            return self._error(kind, 500, "Store error", str(exc))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return self._error(kind, 500, "Internal error",
                               "the server failed on this request (details in its log)")

    def _run(self, kind: str, func: Callable[..., Any], req: Request) -> Response:
        if kind == "page":
            return _html(200, func(self.store, req))
        if kind == "api":
            return _json(200, func(self.store, req))
        result: Response = func(req)
        return result

    def _error(self, kind: str, status: int, title: str, message: str) -> Response:
        if kind == "api":
            return _json(status, {"error": title, "status": status, "message": message})
        if kind in ("image", "static"):
            return Response(status, "text/plain; charset=utf-8", message.encode())
        return _html(status, pages.error_page(status, title, message,
                                              self.store.catalog.describe()))

    def _frame(self, req: Request) -> Response:
        return Response(200, "image/jpeg", self.images.jpeg(req.params["timeline"],
                                                            req.params["seq"]),
                        (("Cache-Control", "private, max-age=3600"),))

    def _thumb(self, req: Request) -> Response:
        return Response(200, "image/jpeg", self.images.thumbnail(req.params["timeline"],
                                                                 req.params["seq"]),
                        (("Cache-Control", "private, max-age=3600"),))

    def _static_file(self, req: Request) -> Response:
        name = req.params["name"]
        if name not in _STATIC:  # a fixed list: a request never names a file
            raise NotFoundError(f"no static file {name!r}")
        if name not in self._static:
            self._static[name] = (resources.files(__package__) / "static" / name).read_bytes()
        return Response(200, _STATIC[name], self._static[name],
                        (("Cache-Control", "private, max-age=600"),))


def _says(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "the request path or query is not valid percent-encoded UTF-8"
    return str(exc)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "localckpt"
    protocol_version = "HTTP/1.1"  # keep-alive: a page of 120 thumbnails, one connection
    # requests too malformed to route (bad request line, huge headers) get plain text
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def _respond(self) -> None:
        resp = self.server.app.handle(self.command, self.path, self.headers.get("Host"))
        if self.headers.get("Content-Length", "0") != "0" or self.headers.get(
                "Transfer-Encoding"):
            self.close_connection = True  # a body is never read: never parse it as a request
        self.send_response(resp.status)
        for name, value in (*SECURITY_HEADERS.items(), *resp.headers):
            self.send_header(name, value)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _respond

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: App
    log_requests: bool

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the browser went away (a lazy image scrolled past): nothing to report
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(store: Store, host: str = "127.0.0.1", port: int = 8765, *,
                log_requests: bool = False) -> _Server:
    """A bound, not yet serving, server over store (port 0: any free port).

    Call ``serve_forever()`` on it (and ``shutdown()`` from another thread to stop);
    ``server_address`` tells the port it got.
    """
    cls = _Server6 if ":" in host.strip("[]") else _Server
    server = cls((host.strip("[]"), port), _Handler)
    server.app = App(store, loopback_only=is_loopback(host))
    server.log_requests = log_requests
    return server
