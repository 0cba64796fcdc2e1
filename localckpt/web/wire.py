"""HTTP/1.x on the wire: a strict parser of request heads and the bytes of a response.

The server (:mod:`localckpt.web.server`) reads a request head into memory, then this
module decides what it says. It is strict where leniency has been abused:

- the request line is ``METHOD SP TARGET SP HTTP/1.0|1.1``; a line without a version
  (HTTP/0.9) is answered with a 400 that, like every response here, is HTTP/1.1 with
  headers (so it carries the Content-Security-Policy);
- exactly one ``Host`` header, non-empty, of the form ``name[:port]``, ``IPv4[:port]``
  or ``[IPv6][:port]``; anything else (``[::1]evil.com``, two Hosts, none) is a 400;
- header lines are ``name: value`` with a token name, no space before the colon, no
  folded continuation lines and no control characters;
- a head is at most :data:`MAX_HEAD` bytes and :data:`MAX_HEADERS` lines (431).

Nothing here touches a socket, so every rule is tested on bytes.
"""

from __future__ import annotations

import email.utils
import ipaddress
import re
from http import HTTPStatus

import attrs

__all__ = ["MAX_HEAD", "MAX_HEADERS", "BadRequest", "Head", "first_line_problem",
           "head_end", "parse_head", "parse_host", "response_bytes"]

#: Most bytes of a request head (request line and headers).
MAX_HEAD = 64 * 1024
#: Most header lines of a request.
MAX_HEADERS = 100
MAX_TARGET = 8 * 1024

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET = re.compile(r"[\x21-\x7e]+")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_REG_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")


class BadRequest(Exception):
    """A request this server will not serve: status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@attrs.frozen
class Head:
    """A parsed request head. headers: (lower-case name, value) in order."""

    method: str
    target: str
    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]
    host: str  # the Host header's name part, lower-case, IPv6 without brackets

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for v in self.values("connection") for t in v.split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def has_body(self) -> bool:
        """Whether a body follows (never read: the connection closes after the reply)."""
        if self.values("transfer-encoding"):
            return True
        return any(int(v) > 0 for v in self.values("content-length"))


def head_end(buf: bytes | bytearray) -> int:
    """Where the head in buf ends (just past its blank line), or -1 if not yet."""
    crlf, lf = buf.find(b"\r\n\r\n"), buf.find(b"\n\n")
    ends = [i + n for i, n in ((crlf, 4), (lf, 2)) if i >= 0]
    return min(ends) if ends else -1


def first_line_problem(buf: bytes | bytearray) -> bool:
    """Whether buf's first complete line can never start a request this server serves
    (an HTTP/0.9 request, garbage): answer at once instead of waiting for a blank line."""
    text = bytes(buf).lstrip(b"\r\n")
    end = text.find(b"\n")
    if end < 0:
        return False
    line = text[:end].rstrip(b"\r")
    parts = line.split(b" ")
    return len(parts) != 3 or not parts[2].startswith(b"HTTP/")


def parse_host(value: str) -> str:
    """The name part of a Host header value (lower-case; IPv6 without brackets), or
    BadRequest when it is not exactly ``host[:port]``."""
    value = value.strip()
    if not value:
        raise BadRequest(400, "the Host header is empty")
    if value.startswith("["):
        close = value.find("]")
        name, rest = value[1:close], value[close + 1:]
        if close < 0 or "%" in name:  # no zone ids: a URI cannot carry one bare
            raise BadRequest(400, f"malformed Host header {value!r}")
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            raise BadRequest(400, f"malformed Host header {value!r}") from None
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
        if not _REG_NAME.fullmatch(name):
            raise BadRequest(400, f"malformed Host header {value!r}")
    if rest:
        port = rest[1:]
        if not rest.startswith(":") or not _PORT.fullmatch(port) or int(port) > 65535:
            raise BadRequest(400, f"malformed Host header {value!r}")
    return name.lower().rstrip(".")


def parse_head(raw: bytes | bytearray) -> Head:
    """The request head in raw (which ends with its blank line), or BadRequest."""
    if len(raw) > MAX_HEAD:
        raise BadRequest(431, "the request head is too large")
    text = bytes(raw).decode("latin-1").lstrip("\r\n")
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.endswith("\r"):
            lines[i] = line[:-1]
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise BadRequest(400, "empty request")
    if any("\r" in line for line in lines):
        raise BadRequest(400, "a bare CR in the request head")
    method, target, version = _request_line(lines[0])
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(431, f"more than {MAX_HEADERS} header lines")
    headers = tuple(_header(line) for line in lines[1:])
    hosts = [v for k, v in headers if k == "host"]
    if len(hosts) != 1:
        raise BadRequest(400, "a request needs exactly one Host header" if hosts else
                         "the request has no Host header")
    lengths = [v.strip() for k, v in headers if k == "content-length"]
    if any(not v.isascii() or not v.isdigit() or len(v) > 18 for v in lengths) or \
            len(set(lengths)) > 1:
        raise BadRequest(400, "malformed Content-Length")
    return Head(method, target, version, headers, parse_host(hosts[0]))


def _request_line(line: str) -> tuple[str, str, tuple[int, int]]:
    parts = line.split(" ")
    if len(parts) == 2 and _TOKEN.fullmatch(parts[0]) and parts[1].startswith("/"):
        raise BadRequest(400, "HTTP/0.9 requests are not served; send HTTP/1.0 or 1.1")
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise BadRequest(400, "malformed request method")
    if len(target) > MAX_TARGET:
        raise BadRequest(414, "the request target is too long")
    if not _TARGET.fullmatch(target):
        raise BadRequest(400, "malformed request target")
    found = _VERSION.fullmatch(version)
    if found is None:
        raise BadRequest(400, "malformed HTTP version")
    ver = (int(found.group(1)), int(found.group(2)))
    if ver not in ((1, 0), (1, 1)):
        raise BadRequest(505, f"{version} is not served; send HTTP/1.0 or 1.1")
    return method, target, ver


def _header(line: str) -> tuple[str, str]:
    if line[:1] in (" ", "\t"):
        raise BadRequest(400, "folded header lines are not accepted")
    name, colon, value = line.partition(":")
    if not colon or not _TOKEN.fullmatch(name):
        raise BadRequest(400, "malformed header line")
    value = value.strip(" \t")
    if _BAD_VALUE.search(value):
        raise BadRequest(400, f"a control character in the {name} header")
    return name.lower(), value


def response_bytes(status: int, headers: list[tuple[str, str]], body: bytes, *,
                   head_only: bool = False, close: bool = False) -> bytes:
    """An HTTP/1.1 response: status line, headers (Date, Content-Length, Connection
    added here), and the body unless head_only (a HEAD request)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    lines = [f"HTTP/1.1 {status} {reason}", "Server: localckpt",
             f"Date: {email.utils.formatdate(usegmt=True)}",
             *(f"{k}: {v}" for k, v in headers),
             f"Content-Length: {len(body)}"]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body
