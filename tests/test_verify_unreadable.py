"""verify over objects that cannot all be read: it goes on past objects the server
refuses one by one (a 403 on a key) and lists them (the first LISTED_FAILURES, the rest
counted); it stops early when the store is out of reach (refused, stalled, the key or the
bucket refused) or after FAILURES_IN_A_ROW failed reads.

Real servers: a moto S3 server of this module's own with IAM on (a policy that denies
GetObject on some keys is a real 403 from the server), and a port nobody listens on.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # the test extra's (via s3fs and moto): missing, the tests fail, never skip
import numpy as np
import pytest

import localckpt
from localckpt.cli.main import main
from localckpt.maintenance.verify import FAILURES_IN_A_ROW, LISTED_FAILURES
from localckpt.testing.ci import unavailable

FRAMES = [np.zeros((4, 4, 3), np.uint8)]
BUCKET = "verify-iam"


class IamS3:
    """moto with authorization on; one user allowed everything, whose key the store uses,
    and deny(pattern) adds a policy refusing GetObject on keys of that pattern."""

    def __init__(self) -> None:
        from backends.s3 import LocalS3

        # moto lets the first N requests through unsigned (making the user), then checks
        # every request against IAM; it reads this when it starts
        before = os.environ.get("INITIAL_NO_AUTH_ACTION_COUNT")
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        try:
            self.server = LocalS3().start()
        finally:
            if before is None:
                os.environ.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
            else:
                os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = before
        iam = self._client("iam", "setup", "setup")
        iam.create_user(UserName="verifier")
        key = iam.create_access_key(UserName="verifier")["AccessKey"]
        self.key, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        iam.put_user_policy(UserName="verifier", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]}))
        self._client("s3").create_bucket(Bucket=BUCKET)

    def _client(self, service: str, key: str | None = None, secret: str | None = None) -> Any:
        return boto3.client(service, endpoint_url=self.server.endpoint_url,
                            region_name="us-east-1", aws_access_key_id=key or self.key,
                            aws_secret_access_key=secret or self.secret)

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"key": self.key, "secret": self.secret,
                "endpoint_url": self.server.endpoint_url,
                "config_kwargs": {"s3": {"addressing_style": "path"}}, **extra}

    def deny(self, prefix: str, pattern: str) -> None:
        """Refuse GetObject on s3://BUCKET/prefix/pattern (IAM wildcards) from now on."""
        self._client("iam").put_user_policy(
            UserName="verifier", PolicyName=f"deny-{uuid.uuid4().hex[:8]}",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{BUCKET}/{prefix}/{pattern}"}]}))


@pytest.fixture(scope="module")
def iam_s3() -> Iterator[IamS3]:
    try:
        server = IamS3()
    except Exception as exc:  # moto missing or not starting: as conftest's s3_base does
        unavailable(f"cannot start moto with IAM: {type(exc).__name__}: {exc}")
        raise
    try:
        yield server
    finally:
        server.server.stop()


def _store(iam_s3: IamS3, tmp_path: Path, timelines: int) -> tuple[str, str]:
    """(the store's directory, its objects URL): timelines of one frame each."""
    prefix = uuid.uuid4().hex[:10]
    objects = f"s3://{BUCKET}/{prefix}"
    with localckpt.open(str(tmp_path / "s"), objects=objects, storage_options=iam_s3.options(),
                        create=True) as store:
        for i in range(timelines):
            store.create_timeline(f"v{i}.mp4", "p", FRAMES, codec="png", workers=1)
    return str(tmp_path / "s"), objects


def _unreadable(report: Any) -> list[str]:
    return [p.message for p in report.problems if p.kind == "unreadable"]


def test_verify_goes_on_past_objects_the_server_refuses(
        iam_s3: IamS3, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every shard refused (a 403 each), every index read: each timeline's failure is
    one problem, the first LISTED_FAILURES listed and the rest counted; nothing stops."""
    n = LISTED_FAILURES + 5
    path, objects = _store(iam_s3, tmp_path, n)
    iam_s3.deny(objects.split("/", 3)[3], "frames/*/shard-*")
    with localckpt.open(path, objects=objects, storage_options=iam_s3.options()) as store:
        report = store.verify()
    assert not report.ok and report.stopped_reading is None
    assert report.unread_objects == n and report.objects == n  # the indexes
    listed = _unreadable(report)
    per_object = [m for m in listed if "shard-" in m]
    assert len(per_object) == LISTED_FAILURES, listed
    assert all("Access Denied" in m and "no other object" not in m for m in per_object)
    assert "5 more frame object(s) could not be read" in listed[-1], listed
    assert {p.kind for p in report.problems} == {"unreadable"}  # no leftovers, no missing
    assert "25 frame objects could not be read" in report.summary()
    assert iam_s3.secret not in " ".join(listed)

    storage = json.dumps(iam_s3.options())
    argv = ["--store", path, "--objects", objects, "--storage-options", storage, "verify"]
    assert main([*argv, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["unread_objects"] == n
    assert data["stopped_reading"] is None
    assert len(data["problems"]) == LISTED_FAILURES + 1
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "25 frame objects could not be read" in out.splitlines()[0], out
    assert out.count("PROBLEM  unreadable") == LISTED_FAILURES + 1, out


def test_verify_stops_after_failures_in_a_row(iam_s3: IamS3, tmp_path: Path) -> None:
    """Every read refused: FAILURES_IN_A_ROW are tried, the rest are counted, not read."""
    n = FAILURES_IN_A_ROW + 5
    path, objects = _store(iam_s3, tmp_path, n)
    iam_s3.deny(objects.split("/", 3)[3], "*")
    with localckpt.open(path, objects=objects, storage_options=iam_s3.options()) as store:
        reads: list[str] = []
        real_get = store.objects.get_capped  # how verify reads an object

        def get(key: str, max_bytes: int) -> bytes:
            reads.append(key)
            return real_get(key, max_bytes)

        store.objects.get_capped = get  # type: ignore[method-assign]
        report = store.verify()
    assert len(reads) == FAILURES_IN_A_ROW, reads
    assert report.unread_objects == n and report.objects == 0
    assert report.stopped_reading is not None and "Access Denied" in report.stopped_reading
    listed = _unreadable(report)
    assert f"{FAILURES_IN_A_ROW} reads failed in a row: the object store looks down" in \
        listed[FAILURES_IN_A_ROW - 1], listed
    assert "5 more frame object(s) not read" in listed[-1], listed
    assert "the reads stopped early" in report.summary()


def test_verify_stops_at_once_when_the_key_is_refused(iam_s3: IamS3, tmp_path: Path) -> None:
    """A key the server does not know (a 403 too) refuses every object: one read."""
    path, objects = _store(iam_s3, tmp_path, 3)
    options = iam_s3.options(key="AKIANOSUCHKEY0000000")
    with localckpt.open(path, objects=objects, storage_options=options) as store:
        report = store.verify()
    assert report.unread_objects == 3 and report.stopped_reading is not None
    listed = _unreadable(report)
    assert "no other object is tried (the object store is out of reach)" in listed[0], listed
    assert "2 more frame object(s) not read" in listed[-1], listed


def test_verify_stops_at_once_when_the_endpoint_refuses_connections(
        iam_s3: IamS3, tmp_path: Path) -> None:
    path, objects = _store(iam_s3, tmp_path, 3)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = iam_s3.options(endpoint_url=f"http://127.0.0.1:{port}")
    with localckpt.open(path, objects=objects, storage_options=options) as store:
        report = store.verify()
    assert report.unread_objects == 3 and report.objects == 0
    assert report.stopped_reading is not None and f"127.0.0.1:{port}" in report.stopped_reading
    listed = _unreadable(report)
    assert "the object store is out of reach" in listed[0], listed
