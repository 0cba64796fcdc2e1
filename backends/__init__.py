"""Backend services for development, tests and benchmarks (not part of the installed package).

- ThrowawayPostgres: a private PostgreSQL cluster on a free loopback port.
- LocalS3: moto's S3 server on a free loopback port.
- postgres_dsn() / s3_location(): the server named by the environment when set
  (LOCALCKPT_TEST_PG_DSN; LOCALCKPT_TEST_S3_URL with LOCALCKPT_TEST_S3_OPTIONS or AWS_*),
  else a throwaway one.

``python -m backends up [--detach]`` starts both and prints the environment to use them
(what localckpt reads, then what the test suite reads); ``python -m backends down`` stops
them (see ``backends/session.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .postgres import PostgresNotInstalledError, ThrowawayPostgres, find_bindir
from .s3 import LocalS3

__all__ = [
    "PG_DSN_ENV",
    "S3_OPTIONS_ENV",
    "S3_URL_ENV",
    "LocalS3",
    "PostgresNotInstalledError",
    "ThrowawayPostgres",
    "find_bindir",
    "postgres_dsn",
    "s3_location",
    "s3_options_from_env",
]

PG_DSN_ENV = "LOCALCKPT_TEST_PG_DSN"
S3_URL_ENV = "LOCALCKPT_TEST_S3_URL"
S3_OPTIONS_ENV = "LOCALCKPT_TEST_S3_OPTIONS"  # JSON object of s3fs options


@contextmanager
def postgres_dsn(*, durable: bool = False) -> Iterator[str]:
    """$LOCALCKPT_TEST_PG_DSN when set, else the DSN of a ThrowawayPostgres kept for the block."""
    if dsn := os.environ.get(PG_DSN_ENV):
        yield dsn
        return
    with ThrowawayPostgres(durable=durable) as pg:
        yield pg.dsn


def s3_options_from_env() -> dict[str, Any]:
    """s3fs options: $LOCALCKPT_TEST_S3_OPTIONS (JSON) when set, else the standard AWS
    variables (key, secret, endpoint) with path-style addressing."""
    if text := os.environ.get(S3_OPTIONS_ENV):
        options = json.loads(text)
        if not isinstance(options, dict):
            raise ValueError(f"{S3_OPTIONS_ENV} must be a JSON object of s3fs options")
        return options
    options = {"config_kwargs": {"s3": {"addressing_style": "path"}}}
    for option, names in {
        "key": ("AWS_ACCESS_KEY_ID",),
        "secret": ("AWS_SECRET_ACCESS_KEY",),
        "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    }.items():
        for name in names:
            if value := os.environ.get(name):
                options[option] = value
                break
    return options


@contextmanager
def s3_location(bucket: str = "localckpt-test") -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, storage_options): $LOCALCKPT_TEST_S3_URL with s3_options_from_env() when set,
    else a LocalS3 with a new bucket, kept for the block."""
    if url := os.environ.get(S3_URL_ENV):
        yield url, s3_options_from_env()
        return
    with LocalS3() as s3:
        yield s3.make_bucket(bucket), s3.storage_options
