"""The web server's limits: strict request heads, slow clients, bounded threads, the CLI.

The wire rules are tested on bytes (localckpt.web.wire); the limits on a real server on
loopback with raw sockets, so nothing is normalised by a client library.
"""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt.errors import InvalidInputError
from localckpt.web import check_listen_address, make_server
from localckpt.web.server import WORKERS
from localckpt.web.wire import BadRequest, parse_head, parse_host

# -- request heads, on bytes --------------------------------------------------------------


def head(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("latin-1") + b"\r\n"


@pytest.mark.parametrize("value, name", [
    ("localhost", "localhost"), ("localhost:8765", "localhost"), ("127.0.0.1:1", "127.0.0.1"),
    ("[::1]", "::1"), ("[::1]:8765", "::1"), ("Example.COM.", "example.com"),
])
def test_good_host_headers(value: str, name: str) -> None:
    assert parse_host(value) == name


@pytest.mark.parametrize("value", [
    "", " ", "[::1]evil.com", "[::1]:80evil", "[::1", "::1", "[evil.com]", "localhost:",
    "localhost:99999", "localhost:80:80", "a b", "evil.com@localhost", "localhost/x",
    "local host", "-bad.com", "[::1%eth0]", "x:-1", "\u00e9.com",
])
def test_bad_host_headers_are_refused(value: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_host(value)
    assert err.value.status == 400


@pytest.mark.parametrize("raw, status, says", [
    ("GET / HTTP/1.1\n", 400, "no Host header"),
    ("GET / HTTP/1.1\nHost:\n", 400, "Host header is empty"),
    ("GET / HTTP/1.1\nHost: localhost\nHost: localhost\n", 400, "exactly one Host"),
    ("GET / HTTP/1.1\nHost: [::1]evil.com\n", 400, "malformed Host"),
    ("GET /\n", 400, "HTTP/0.9"),
    ("GET / HTTP/2.0\nHost: localhost\n", 505, "not served"),
    ("GET / HTTP/1.1 x\nHost: localhost\n", 400, "malformed request line"),
    ("GET / HTTP/1.1\nHost : localhost\n", 400, "malformed header line"),
    ("GET / HTTP/1.1\nHost: localhost\n folded\n", 400, "folded"),
    ("GET / HTTP/1.1\nHost: localhost\nX: a\x00b\n", 400, "control character"),
    ("GET / HTTP/1.1\nHost: localhost\nContent-Length: 1x\n", 400, "Content-Length"),
    ("GET / HTTP/1.1\nHost: localhost\nContent-Length: 1\nContent-Length: 2\n", 400,
     "Content-Length"),
    ("GET /\x7f HTTP/1.1\nHost: localhost\n", 400, "request target"),
])
def test_bad_request_heads_are_refused(raw: str, status: int, says: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_head(head(raw))
    assert err.value.status == status and says in err.value.message


def test_a_good_head_and_its_connection_rules() -> None:
    h = parse_head(head("GET /t/x?q=1 HTTP/1.1\nHost: localhost:80\nConnection: close\n"))
    assert (h.method, h.target, h.host, h.keep_alive, h.has_body) == (
        "GET", "/t/x?q=1", "localhost", False, False)
    assert parse_head(head("GET / HTTP/1.0\nHost: [::1]\n")).keep_alive is False
    assert parse_head(head("GET / HTTP/1.1\nHost: a\nContent-Length: 3\n")).has_body


# -- a real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    s = localckpt.open(str(tmp_path_factory.mktemp("srv")), create=True)
    s.create_timeline("v.mp4", "p", np.zeros((2, 8, 8, 3), np.uint8), fps=2.0)
    yield s
    s.close()


def _start(store: Any, **limits: Any) -> tuple[Any, threading.Thread, int]:
    server = make_server(store, "127.0.0.1", 0, **limits)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return server, thread, int(server.server_address[1])


def _stop(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(10)


def _exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_protocol_errors_carry_the_security_headers(store: Any) -> None:
    server, thread, port = _start(store)
    try:
        for raw in (b"GET /\r\n", b"GET / HTTP/1.1\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: [::1]evil.com\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"):
            reply = _exchange(port, raw)
            top, _, rest = reply.partition(b"\r\n")
            assert top == b"HTTP/1.1 400 Bad Request", (raw, reply[:200])
            headers = rest.split(b"\r\n\r\n", 1)[0].lower()
            assert b"content-security-policy: default-src 'none'" in headers, raw
            assert b"x-content-type-options: nosniff" in headers, raw
        # a good request on the same server still works, and says why it is refused when not
        ok = _exchange(port, b"GET /api/timelines HTTP/1.1\r\nHost: localhost\r\n"
                             b"Connection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK") and b'"total": 1' in ok
        evil = _exchange(port, b"GET / HTTP/1.1\r\nHost: evil.example\r\n"
                               b"Connection: close\r\n\r\n")
        assert evil.startswith(b"HTTP/1.1 403")
    finally:
        _stop(server, thread)


def test_keep_alive_and_pipelined_requests_are_answered_in_order(store: Any) -> None:
    server, thread, port = _start(store)
    try:
        one = b"GET /api/timelines HTTP/1.1\r\nHost: localhost\r\n\r\n"
        last = b"GET /nothing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        reply = _exchange(port, one + one + last)
        assert reply.count(b"HTTP/1.1 200 OK") == 2 and reply.count(b"HTTP/1.1 404") == 1
        assert reply.index(b"HTTP/1.1 404") > reply.rindex(b"HTTP/1.1 200")
    finally:
        _stop(server, thread)


def test_a_head_larger_than_the_limit_is_refused(store: Any) -> None:
    server, thread, port = _start(store)
    try:
        reply = _exchange(port, b"GET / HTTP/1.1\r\nHost: localhost\r\nX: " + b"a" * 70_000)
        assert reply.startswith(b"HTTP/1.1 431")
    finally:
        _stop(server, thread)


def test_slow_clients_cannot_stop_a_normal_one_and_are_closed_in_time(store: Any) -> None:
    """300 clients send half a request and trickle a byte now and then. A normal client
    is still served within 1 s, the server's threads stay bounded, and every slow
    connection is closed by the server within its read timeout (plus a sweep)."""
    timeout = 2.0
    threads_before = threading.active_count()
    server, thread, port = _start(store, read_timeout=timeout)
    slow: list[socket.socket] = []
    opened: dict[int, float] = {}
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/timelines HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            s.setblocking(False)
            opened[s.fileno()] = time.monotonic()
            slow.append(s)
        for s in slow[::3]:  # a trickle does not extend the deadline
            s.send(b"a")
        start = time.monotonic()
        reply = _exchange(port, b"GET /api/timelines HTTP/1.1\r\nHost: localhost\r\n"
                                b"Connection: close\r\n\r\n", timeout=5)
        served_in = time.monotonic() - start
        assert reply.startswith(b"HTTP/1.1 200 OK"), reply[:200]
        assert served_in < 1.0, served_in
        assert threading.active_count() <= threads_before + 1 + WORKERS
        closed_after: dict[int, float] = {}
        sel = selectors.DefaultSelector()
        for s in slow:
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout + 5
        while len(closed_after) < len(slow) and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed_after[sock.fileno()] = time.monotonic() - opened[sock.fileno()]
                    sel.unregister(sock)
                else:
                    assert data.startswith(b"HTTP/1.1 408"), data[:100]  # why, then EOF
        sel.close()
        assert len(closed_after) == len(slow)
        assert max(closed_after.values()) < timeout + 1.5, max(closed_after.values())
        assert min(closed_after.values()) >= timeout - 0.1
        assert server.connections == 0
    finally:
        for s in slow:
            s.close()
        _stop(server, thread)


def test_past_the_connection_limit_the_longest_waiting_is_closed(store: Any) -> None:
    server, thread, port = _start(store, max_connections=20, read_timeout=30)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    try:
        reply = _exchange(port, b"GET /api/timelines HTTP/1.1\r\nHost: localhost\r\n"
                                b"Connection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 OK")
        assert server.connections <= 20
        idle[0].settimeout(5)
        assert idle[0].recv(10) == b""  # the oldest was closed to admit the others
    finally:
        for s in idle:
            s.close()
        _stop(server, thread)


# -- listening addresses and the CLI -----------------------------------------------------


@pytest.mark.parametrize("host, port", [
    ("127.0.0.1", -1), ("127.0.0.1", 65536), ("127.0.0.1", True), ("127.0.0.1", "80"),
    ("\udcff", 0), ("", 0), ("a b", 0), ("evil.com/x", 0), (None, 0), ("[::1]evil", 0),
])
def test_bad_listen_addresses_are_typed_errors(host: Any, port: Any) -> None:
    with pytest.raises(InvalidInputError):
        check_listen_address(host, port)


def test_good_listen_addresses() -> None:
    assert check_listen_address("localhost", 0) == ("localhost", 0)
    assert check_listen_address("[::1]", 8765) == ("::1", 8765)
    assert check_listen_address("0.0.0.0", 65535) == ("0.0.0.0", 65535)


@pytest.mark.parametrize("args, says", [
    (["--port", "-1"], "is not a port"),
    (["--port", "70000"], "is not a port"),
    (["--port", "x"], "is not a port"),
    (["--host", "\udcff"], "is not an IP address or a host name"),
    (["--host", "[::1]evil"], "is not an IP address or a host name"),
])
def test_serve_with_a_bad_port_or_host_is_a_usage_error(tmp_path: Any, args: list[str],
                                                        says: str) -> None:
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "localckpt.cli", "--store", str(tmp_path / "s"), "serve", *args],
        capture_output=True, timeout=60, env=env,
        text=True, errors="surrogateescape")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert says in proc.stderr and "Traceback" not in proc.stderr
