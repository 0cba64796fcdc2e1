"""``localckpt serve``: the read-only web view of this store (localckpt.web)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import InvalidInputError
from ..store import Store
from .common import add_command

__all__ = ["register"]


def _port(text: str) -> int:
    """argparse type: a port 0-65535 (a bad one is a usage error, exit 2)."""
    from ..web import check_listen_address

    try:
        value = int(text)
        return check_listen_address("127.0.0.1", value)[1]
    except (ValueError, InvalidInputError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: give a whole number from 0 to 65535 (0: any free "
            "port)") from None


def _host(text: str) -> str:
    """argparse type: an IP address or host name (a bad one is a usage error, exit 2)."""
    from ..web import check_listen_address

    try:
        return check_listen_address(text, 0)[0]
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(
            str(exc).encode("ascii", "backslashreplace").decode()) from None


def cmd_serve(store: Store, args: argparse.Namespace) -> int:
    from ..web import is_loopback, make_server

    try:
        server = make_server(store, args.host, args.port, log_requests=args.log)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}; "
            "choose another --port (0 picks a free one) or --host"
        ) from None
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in str(host) else host
    where = f"http://{shown}:{port}/"
    local = is_loopback(args.host)
    if not local:
        print(f"localckpt: warning: --host {args.host} lets anyone who can reach this "
              f"machine on port {port} read every timeline, frame and output in this store; "
              "there is no authentication. Use --host 127.0.0.1 unless you mean it.",
              file=sys.stderr)
    if args.json:
        # one line, so that a program starting the server can read it before the next
        print(json.dumps({"url": where, "host": host, "port": port, "read_only": True,
                          "loopback": local}, sort_keys=True))
    else:
        print(f"serving {store.catalog.describe()} read-only at {where}")
        print("loopback only: other machines cannot connect" if local else
              f"bound to {args.host}: reachable from other machines")
        print("press Ctrl-C to stop")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register(sub: Any) -> None:
    p = add_command(sub, "serve", "browse this store in a web browser (read-only)", cmd_serve)
    p.add_argument("--host", default="127.0.0.1", type=_host,
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8765,
                   help="port (default 8765; 0: any free)")
    p.add_argument("--log", action="store_true", help="log each request on stderr")
