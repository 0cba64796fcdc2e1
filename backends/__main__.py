"""``python -m backends up`` / ``down``: a throwaway PostgreSQL and a local S3 (moto).

``up`` prints ``export`` lines on stdout: first the variables ``localckpt`` itself reads
(LOCALCKPT_URL, LOCALCKPT_OBJECTS, LOCALCKPT_STORAGE_OPTIONS), then, labelled apart, the
ones localckpt's own test suite reads (LOCALCKPT_TEST_*). Without ``--detach`` it blocks
until Ctrl-C; with it the servers run in the background (``eval "$(python -m backends up
--detach)"`` works) until ``python -m backends down`` stops both and deletes their data.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from . import LocalS3, ThrowawayPostgres
from .session import (
    default_state_file,
    environment,
    exports,
    pid_alive,
    read_state,
    stop,
    write_private,
    write_state,
)


def _serve(args: argparse.Namespace) -> int:
    """Run both servers until SIGTERM / SIGINT; with a state file, announce them in it."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    state_file = Path(args.state_file)
    with (
        ThrowawayPostgres(port=args.pg_port, durable=args.durable) as pg,
        LocalS3(port=args.s3_port) as s3,
    ):
        bucket_url = s3.make_bucket(args.bucket)
        env = environment(pg.dsn, bucket_url, s3.storage_options)
        text = exports(env)
        if args.env_file:
            write_private(Path(args.env_file), text + "\n")
        try:
            write_state(state_file, {
                "pid": os.getpid(), "env": env, "env_file": args.env_file,
                "pg_directory": str(pg.directory), "pg_bindir": str(pg.bindir),
                "moto_pid": s3.pid,
            })
            if not args.detached:
                print(text, flush=True)
                print(f"# PostgreSQL data in {pg.directory}; moto at {s3.endpoint_url}. "
                      "Ctrl-C (or `python -m backends down`) stops both and deletes their "
                      "data.", file=sys.stderr, flush=True)
            stopping.wait()
        finally:
            state = read_state(state_file)
            if state is not None and state.get("pid") == os.getpid():
                state_file.unlink()
    if not args.detached:
        print("# stopped", file=sys.stderr)
    return 0


def _refuse_if_running(state_file: Path) -> None:
    state = read_state(state_file)
    if state is not None and pid_alive(int(state["pid"])):
        raise SystemExit(f"backends already running (pid {state['pid']}, state file "
                         f"{state_file}); stop them with `{_down_command(state_file)}`")


def _down_command(state_file: Path) -> str:
    """What stops the servers of state_file: `down` reads the default state file unless
    told another, so a message naming only `down` would stop nothing."""
    if state_file == Path(default_state_file()):
        return "python -m backends down"
    return f"python -m backends down --state-file {shlex.quote(str(state_file))}"


def _detach(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Start _serve in a new session and return once its state file says it is up."""
    state_file = Path(args.state_file)
    log = state_file.with_suffix(".log")
    with open(log, "wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "backends", *argv, "--detached"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            cwd=str(Path(__file__).resolve().parents[1]),
        )
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        state = read_state(state_file)
        if state is not None and state.get("pid") == child.pid:
            print(exports(state["env"]), flush=True)
            print(f"# running in the background (pid {child.pid}); stop both and delete their "
                  f"data with: {_down_command(state_file)}", file=sys.stderr)
            return 0
        if child.poll() is not None:
            print(f"backends failed to start (exit {child.returncode}):\n"
                  f"{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            return 1
        time.sleep(0.1)
    child.terminate()
    print(f"backends did not come up within {args.timeout} s; see {log}", file=sys.stderr)
    return 1


def _up(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _refuse_if_running(Path(args.state_file))
    if args.detach and not args.detached:
        return _detach(args, [a for a in argv if a != "--detach"])
    return _serve(args)


def _down(args: argparse.Namespace) -> int:
    print(stop(Path(args.state_file), timeout=args.timeout))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m backends",
                                     description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL and S3 on loopback")
    up.add_argument("--pg-port", type=int, default=None, help="default: a free port")
    up.add_argument("--s3-port", type=int, default=None, help="default: a free port")
    up.add_argument("--bucket", default="localckpt-test", help="bucket to create")
    up.add_argument("--durable", action="store_true", help="keep fsync on (for benchmarks)")
    up.add_argument("--env-file", help="also write the export lines to this file (mode 0600)")
    up.add_argument("--detach", action="store_true",
                    help="run in the background until `python -m backends down`")
    up.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    up.add_argument("--timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    down = sub.add_parser("down", help="stop what `up --detach` started and delete its data")
    down.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    for p in (up, down):
        p.add_argument("--state-file", default=str(default_state_file()),
                       help="where up --detach records what runs (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "down":
        return _down(args)
    return _up(args, argv)


if __name__ == "__main__":
    sys.exit(main())
