"""Small helpers shared by the throwaway servers: free ports and readiness polling."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until_free(port: int, timeout: float = 10.0) -> None:
    """Wait until nothing listens on port, so a restart can bind it again."""
    deadline = time.monotonic() + timeout
    while port_accepts(port) and time.monotonic() < deadline:
        time.sleep(0.05)
