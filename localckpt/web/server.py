"""The web view's HTTP server: one I/O thread, a bounded pool of workers.

A thread per connection lets a few hundred clients that send half a request hold a
few hundred threads for as long as they like. Here one thread owns every socket
(``selectors``): it accepts, reads request heads, writes responses, and enforces the
deadlines; only a complete request head goes to one of :data:`WORKERS` worker threads,
which runs :class:`~localckpt.web.app.App` and hands the response bytes back. So:

- a slow client costs a socket and a buffer, never a worker; a normal request is served
  while hundreds of slow ones wait;
- a request head must arrive within ``read_timeout`` seconds of the server starting to
  wait for it (a trickle of bytes does not extend it), else a 408 and the connection is
  closed; an idle keep-alive connection is closed after the same time; a response not
  taken within ``write_timeout`` is dropped with its connection;
- at most ``max_connections`` are open: past that, the connection that has waited
  longest for its request head is closed to admit the new one;
- the listen backlog is :data:`BACKLOG`; request bodies are never read (only GET and
  HEAD are served), and a request that has one closes its connection after the reply.

Every response carries :data:`SECURITY_HEADERS`, errors of the protocol included.
"""

from __future__ import annotations

import ipaddress
import queue
import selectors
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..arguments import shown
from ..errors import InvalidInputError
from .app import SECURITY_HEADERS, App, is_loopback
from .wire import (
    MAX_HEAD,
    BadRequest,
    first_line_problem,
    head_end,
    parse_head,
    parse_host,
    response_bytes,
)

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["BACKLOG", "WORKERS", "Server", "check_listen_address", "make_server"]

WORKERS = 8
BACKLOG = 512
_READ, _BUSY, _WRITE = "read", "busy", "write"
_SWEEP = 0.05  # seconds between deadline sweeps


class _Conn:
    __slots__ = ("addr", "buf", "close_after", "deadline", "events", "out", "sock", "state")

    def __init__(self, sock: socket.socket, addr: Any, deadline: float) -> None:
        self.sock = sock
        self.addr = addr
        self.buf = bytearray()
        self.out = b""
        self.state = _READ
        self.deadline = deadline
        self.close_after = False
        self.events = 0  # what the selector watches for


class Server:
    """A bound server over an App; ``serve_forever()`` runs it until ``shutdown()``."""

    def __init__(self, app: App, host: str, port: int, *, workers: int = WORKERS,
                 read_timeout: float = 10.0, write_timeout: float = 60.0,
                 max_connections: int = 1024, backlog: int = BACKLOG,
                 log_requests: bool = False) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.log_requests = log_requests
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(backlog)
            self.socket.setblocking(False)
        except BaseException:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lc-web")
        self._done: queue.SimpleQueue[tuple[_Conn, bytes, bool]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._conns: dict[int, _Conn] = {}
        self._sel = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    # -- running ------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        self._stop.clear()
        self._sel.register(self.socket, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        next_sweep = 0.0
        try:
            while not self._stop.is_set():
                for key, events in self._sel.select(timeout=min(poll_interval, _SWEEP)):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        conn = self._conns.get(key.fd)
                        if conn is None:
                            continue
                        if events & selectors.EVENT_READ and conn.state == _READ:
                            self._read(conn)
                        elif events & selectors.EVENT_WRITE and conn.state == _WRITE:
                            self._write(conn)
                self._finish_done()
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + _SWEEP
        finally:
            for fileobj in (self.socket, self._wake_r):
                try:
                    self._sel.unregister(fileobj)
                except (KeyError, ValueError):
                    pass
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever (from another thread) and wait until it has returned."""
        self._stop.set()
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket, every connection and the worker pool."""
        self._stop.set()
        for conn in list(self._conns.values()):
            self._close(conn)
        self.socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def connections(self) -> int:
        """Connections open now (tests and diagnostics)."""
        return len(self._conns)

    # -- the I/O thread -------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors (a reset): free one, try on the next wake
                self._evict()
                return
            if len(self._conns) >= self.max_connections and not self._evict():
                sock.close()  # every connection is being served: refuse this one
                continue
            sock.setblocking(False)
            conn = _Conn(sock, addr, time.monotonic() + self.read_timeout)
            self._conns[sock.fileno()] = conn
            self._watch(conn, selectors.EVENT_READ)

    def _evict(self) -> bool:
        """Close the connection that has waited longest for its request, if any."""
        waiting = [c for c in self._conns.values() if c.state == _READ]
        if not waiting:
            return False
        self._close(min(waiting, key=lambda c: c.deadline))
        return True

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.buf += data
        self._try_request(conn)

    def _try_request(self, conn: _Conn) -> None:
        """Hand a complete head in conn's buffer to a worker, or answer a bad one."""
        end = head_end(conn.buf)
        if end < 0:
            if len(conn.buf) > MAX_HEAD:
                self._reply_error(conn, BadRequest(431, "the request head is too large"))
            elif first_line_problem(conn.buf):
                self._submit(conn, bytes(conn.buf))  # parse_head says what is wrong
                conn.buf.clear()
            return
        head, rest = bytes(conn.buf[:end]), conn.buf[end:]
        conn.buf = bytearray(rest)
        self._submit(conn, head)

    def _submit(self, conn: _Conn, head: bytes) -> None:
        conn.state = _BUSY
        self._watch(conn, 0)  # nothing to read or write until the worker is done
        self._pool.submit(self._work, conn, head)

    def _reply_error(self, conn: _Conn, exc: BadRequest) -> None:
        conn.state = _BUSY
        self._send(conn, _error_bytes(exc), close=True)

    def _send(self, conn: _Conn, data: bytes, close: bool) -> None:
        conn.out = data
        conn.close_after = close
        conn.state = _WRITE
        conn.deadline = time.monotonic() + self.write_timeout
        self._write(conn)
        if conn.state == _WRITE and self._conns.get(_fileno(conn.sock)) is conn:
            self._watch(conn, selectors.EVENT_WRITE)

    def _write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            return
        if conn.close_after:
            self._close(conn)
            return
        conn.state = _READ
        conn.deadline = time.monotonic() + self.read_timeout
        self._watch(conn, selectors.EVENT_READ)
        if conn.buf:
            self._try_request(conn)  # a pipelined request already read

    def _finish_done(self) -> None:
        while True:
            try:
                conn, data, close = self._done.get_nowait()
            except queue.Empty:
                return
            if self._conns.get(_fileno(conn.sock)) is conn:
                self._send(conn, data, close)

    def _sweep(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.state != _BUSY and
                     c.deadline <= now]:
            if conn.state == _READ and conn.buf.strip():
                conn.state = _BUSY
                try:  # best effort: say why, then close
                    conn.sock.send(_error_bytes(BadRequest(
                        408, f"the request did not arrive within {self.read_timeout:g} s")))
                except OSError:
                    pass
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        fd = _fileno(conn.sock)
        if self._conns.get(fd) is conn:
            del self._conns[fd]
            self._watch(conn, 0)
        conn.sock.close()

    def _watch(self, conn: _Conn, events: int) -> None:
        if events == conn.events:
            return
        if not events:
            self._sel.unregister(conn.sock)
        elif not conn.events:
            self._sel.register(conn.sock, events, "conn")
        else:
            self._sel.modify(conn.sock, events, "conn")
        conn.events = events

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already awake (buffer full) or closed

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError, OSError):
            pass

    # -- worker threads -------------------------------------------------------------------

    def _work(self, conn: _Conn, raw: bytes) -> None:
        try:
            data, close = self._respond(conn, raw)
        except BaseException:  # never leave a connection busy for ever
            data, close = _error_bytes(BadRequest(500, "internal error")), True
        self._done.put((conn, data, close))
        self._wake()

    def _respond(self, conn: _Conn, raw: bytes) -> tuple[bytes, bool]:
        try:
            head = parse_head(raw)
        except BadRequest as exc:
            self._log(conn, raw.split(b"\r\n", 1)[0].decode("latin-1")[:200], exc.status)
            return _error_bytes(exc), True
        resp = self.app.handle(head.method, head.target, head.host)
        close = not head.keep_alive or head.has_body or resp.status >= 500
        headers = [*SECURITY_HEADERS.items(), *resp.headers,
                   ("Content-Type", resp.content_type)]
        self._log(conn, f"{head.method} {head.target}", resp.status)
        return response_bytes(resp.status, headers, resp.body,
                              head_only=head.method == "HEAD", close=close), close

    def _log(self, conn: _Conn, what: str, status: int) -> None:
        if self.log_requests:
            host = conn.addr[0] if isinstance(conn.addr, tuple) else conn.addr
            sys.stderr.write(f"{host} {what!r} {status}\n")


def _fileno(sock: socket.socket) -> int:
    try:
        return sock.fileno()
    except OSError:
        return -1


def _error_bytes(exc: BadRequest) -> bytes:
    body = f"{exc.status} {exc.message}\n".encode()
    headers = [*SECURITY_HEADERS.items(), ("Content-Type", "text/plain; charset=utf-8")]
    return response_bytes(exc.status, headers, body, close=True)


def check_listen_address(host: Any, port: Any) -> tuple[str, int]:
    """(host, port) as the server binds them, or InvalidInputError saying what is wrong:
    a port is a whole number 0-65535 (0: any free port); a host is an IP address or a
    host name in ASCII letters, digits, '-' and '.'."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be a whole number from 0 to 65535 (0: any free "
                                f"port), not {shown(port)}")
    if not isinstance(host, str) or not host:
        raise InvalidInputError(f"host must be an IP address or a host name, not {shown(host)}")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare)), port
    except ValueError:
        pass
    try:
        if not bare.isascii() or ":" in bare:
            raise BadRequest(400, "not a host name")
        parse_host(bare)
    except BadRequest:
        raise InvalidInputError(
            f"host {host!r} is not an IP address or a host name (ASCII letters, digits, '-' "
            "and '.'); e.g. 127.0.0.1, ::1 or localhost") from None
    return bare, port


def make_server(store: Store, host: str = "127.0.0.1", port: int = 8765, *,
                log_requests: bool = False, **limits: Any) -> Server:
    """A bound, not yet serving, server over store (port 0: any free port).

    Call ``serve_forever()`` on it (and ``shutdown()`` from another thread to stop, then
    ``server_close()``); ``server_address`` tells the port it got. limits: the keyword
    arguments of :class:`Server` (workers, read_timeout, write_timeout, max_connections,
    backlog). A bad host or port is InvalidInputError; an address that cannot be bound
    (in use, not this machine's) is OSError.
    """
    host, port = check_listen_address(host, port)
    try:
        return Server(App(store, loopback_only=is_loopback(host)), host, port,
                      log_requests=log_requests, **limits)
    except (UnicodeError, OverflowError) as exc:
        raise InvalidInputError(f"cannot listen on {host!r} port {port}: {exc}") from None
