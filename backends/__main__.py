"""``python -m backends up``: run a throwaway PostgreSQL and a local S3 until Ctrl-C.

Prints ``export`` lines on stdout (``eval "$(python -m backends up)"`` does not work because
the command blocks; copy them into another shell, or redirect to a file and ``source`` it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from collections.abc import Sequence

from . import PG_DSN_ENV, S3_OPTIONS_ENV, S3_URL_ENV, LocalS3, ThrowawayPostgres


def _exports(pg: ThrowawayPostgres, s3: LocalS3, bucket_url: str) -> str:
    env = {
        PG_DSN_ENV: pg.dsn,
        S3_URL_ENV: bucket_url,
        S3_OPTIONS_ENV: json.dumps(s3.storage_options, sort_keys=True),
        **s3.env,
    }
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with (
        ThrowawayPostgres(port=args.pg_port, durable=args.durable) as pg,
        LocalS3(port=args.s3_port) as s3,
    ):
        bucket_url = s3.make_bucket(args.bucket)
        print(_exports(pg, s3, bucket_url), flush=True)
        if args.env_file:
            with open(args.env_file, "w") as fh:
                fh.write(_exports(pg, s3, bucket_url) + "\n")
        print(f"# PostgreSQL data in {pg.directory}; moto at {s3.endpoint_url}. "
              "Ctrl-C stops both and deletes their data.", file=sys.stderr, flush=True)
        stop.wait()
    print("# stopped", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL and S3 on loopback until Ctrl-C")
    up.add_argument("--pg-port", type=int, default=None, help="default: a free port")
    up.add_argument("--s3-port", type=int, default=None, help="default: a free port")
    up.add_argument("--bucket", default="localckpt-test", help="bucket to create")
    up.add_argument("--durable", action="store_true", help="keep fsync on (for benchmarks)")
    up.add_argument("--env-file", help="also write the export lines to this file")
    args = parser.parse_args(argv)
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
