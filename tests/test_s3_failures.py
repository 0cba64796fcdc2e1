"""S3 that is down, stalled, misnamed or misconfigured: typed errors, in bounded time.

Real servers only: moto (the s3_base fixture) and, for a stalled endpoint, a loopback
listener that accepts connections and never answers.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt import _s3
from localckpt.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from localckpt.objects import Objects

FRAMES = [np.zeros((4, 4, 3), np.uint8)]
SANITY = 120.0  # s: generous; the defaults give up in about 50 s
SECRET = "stall-test-secret-value"
BIG = 48 << 20  # bytes: more than the kernel's socket buffers hold on loopback


class Stalled:
    """A TCP listener that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.1)  # accept() wakes up to see close()
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def stalled() -> Iterator[Stalled]:
    server = Stalled()
    try:
        yield server
    finally:
        server.close()


def _stalled_options(server: Stalled, **extra: Any) -> dict[str, Any]:
    return {"key": "stall-test-key", "secret": SECRET, "endpoint_url": server.url,
            "config_kwargs": {"s3": {"addressing_style": "path"}}, **extra}


# -- 1. a stalled endpoint fails in bounded time --------------------------------------------


@pytest.mark.slow  # 50-95 s: the defaults' timeouts times their retries
def test_a_stalled_endpoint_fails_a_write_in_bounded_time(stalled: Stalled,
                                                          tmp_path: Path) -> None:
    """With the defaults (the default run has the same with shorter timeouts, below)."""
    _stalled_write(stalled, tmp_path, _stalled_options(stalled))


def test_a_stalled_endpoint_fails_a_write_with_short_timeouts(stalled: Stalled,
                                                              tmp_path: Path) -> None:
    """The whole save path against a listener that never answers, as above, with a user's
    shorter read timeout and one retry: a typed error naming the endpoint, in time."""
    options = _stalled_options(stalled)
    options["config_kwargs"].update(read_timeout=2, retries={"max_attempts": 1})
    _stalled_write(stalled, tmp_path, options)


def _stalled_write(stalled: Stalled, tmp_path: Path, options: dict[str, Any]) -> None:
    with localckpt.open(str(tmp_path / "s"), objects="s3://stalled-bucket/ckpt",
                        storage_options=options, create=True) as store:
        start = time.monotonic()
        with pytest.raises(BackendUnavailableError) as info:
            store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
        elapsed = time.monotonic() - start
    text = str(info.value)
    assert elapsed < SANITY, elapsed
    assert stalled.url in text and "s3://stalled-bucket/ckpt" in text, text
    assert "did not answer" in text and SECRET not in text, text
    assert stalled.accepted  # it did reach the listener (not refused somewhere else)


def test_a_stalled_endpoint_fails_a_read_in_bounded_time(stalled: Stalled) -> None:
    """With the user's shorter read timeout (the write above takes the defaults')."""
    options = _stalled_options(stalled)
    options["config_kwargs"]["read_timeout"] = 2
    objects = Objects.from_url("s3://stalled-bucket/ckpt", options)
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        objects.get("frames/x/index.parquet")
    assert time.monotonic() - start < SANITY
    assert stalled.url in str(info.value) and SECRET not in str(info.value)


def test_the_users_timeouts_and_retries_win(stalled: Stalled) -> None:
    """config_kwargs given by the user are merged over the defaults, key by key."""
    options = _stalled_options(stalled)
    options["config_kwargs"].update(read_timeout=1, retries={"max_attempts": 0})
    objects = Objects.from_url("s3://stalled-bucket/ckpt", options)
    config = objects.fs.config_kwargs
    assert config["s3"] == {"addressing_style": "path"}  # the user's, kept
    assert config["connect_timeout"] == _s3.CONNECT_TIMEOUT  # a default, added
    assert config["read_timeout"] == 1
    assert config["retries"] == {"mode": "standard", "max_attempts": 0}
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        objects.put("frames/x/ingest.lease", b"lease")
    assert time.monotonic() - start < 30  # one attempt of 1 s, far from the default's


def _within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What call raised, run in a thread; fails the test when it is still running after
    seconds (a hang, on code without a write timeout, ends with the listener's close)."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            raised.append(None)
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert raised, f"still waiting after {seconds} s"
    return raised[0]


def test_a_large_upload_to_a_stalled_endpoint_fails_in_bounded_time(stalled: Stalled) -> None:
    """The listener never reads: the body outgrows the socket's buffers and the write
    waits; aiohttp bounds only connecting and reading (this waited forever)."""
    options = _stalled_options(stalled)
    options["config_kwargs"].update(read_timeout=1, retries={"max_attempts": 0},
                                    connector_args={"write_timeout": 1})
    objects = Objects.from_url("s3://stalled-bucket/ckpt", options)
    big = bytes(BIG)
    raised = _within(SANITY, lambda: objects.put("frames/t/0.shard", big))
    assert isinstance(raised, BackendUnavailableError), raised
    text = str(raised)
    assert "WriteTimeoutError" in text and "1 s for an upload that stops moving" in text, text
    assert stalled.url in text and SECRET not in text, text


def test_a_remotes_config_sets_the_write_timeout(stalled: Stalled, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The waits are storage options of the remote's entry in the config file (its
    credentials in an environment variable, never in the file)."""
    from localckpt import config

    monkeypatch.setenv("LOCALCKPT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("STALL_S3", json.dumps({"key": "stall-test-key", "secret": SECRET}))
    config.add_remote("stalled", str(tmp_path / "team"), objects="s3://stalled-bucket/ckpt",
                      storage_options_from="STALL_S3", storage_options={
                          "endpoint_url": stalled.url,
                          "config_kwargs": {"read_timeout": 1, "retries": {"max_attempts": 0},
                                            "connector_args": {"write_timeout": 1}}})
    assert "write_timeout = 1" in (tmp_path / "config.toml").read_text()
    remote = config.remote("stalled")
    assert remote is not None
    with remote.open(create=True) as store:
        raised = _within(SANITY, lambda: store.objects.put("frames/t/0.shard", bytes(BIG)))
    assert isinstance(raised, BackendUnavailableError), raised
    assert "upload that stops moving" in str(raised) and SECRET not in str(raised)


def test_a_large_upload_arrives_whole(s3_base: tuple[str, dict[str, Any]],
                                      tmp_path: Path) -> None:
    """Guard: the body sent in chunks (for the write timeout) is the body, byte for byte,
    from bytes and from a file."""
    base, opts = s3_base
    objects = Objects.from_url(f"{base}/big-{uuid.uuid4().hex[:8]}", opts)
    data = np.random.default_rng(7).integers(0, 256, BIG, dtype=np.uint8).tobytes()
    objects.put("frames/t/a", data)
    assert objects.get("frames/t/a") == data
    path = tmp_path / "shard"
    path.write_bytes(data[::-1])
    objects.put_file(str(path), "frames/t/b")
    assert objects.get("frames/t/b") == data[::-1]
    assert objects.get_range("frames/t/b", 5, 9) == data[::-1][5:9]


def test_the_users_s3fs_retries_win(stalled: Stalled) -> None:
    objects = Objects.from_url("s3://stalled-bucket/ckpt", _stalled_options(stalled, retries=3))
    assert objects.fs.retries == 3
    default = Objects.from_url("s3://stalled-bucket/ckpt", _stalled_options(stalled))
    assert default.fs.retries == _s3.S3FS_RETRIES  # not the shared instance of the other


def test_a_refused_endpoint_is_backend_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    objects = Objects.from_url("s3://refused-bucket/ckpt", {
        "key": "k", "secret": SECRET, "endpoint_url": f"http://127.0.0.1:{port}"})
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        objects.put("a", b"x")
    assert time.monotonic() - start < SANITY
    assert f"127.0.0.1:{port}" in str(info.value) and SECRET not in str(info.value)


# -- 2. a missing bucket is not a missing object --------------------------------------------


def _missing(s3_base: tuple[str, dict[str, Any]]) -> tuple[Objects, str]:
    _, opts = s3_base
    bucket = f"nosuchbucket-{uuid.uuid4().hex[:10]}"
    return Objects.from_url(f"s3://{bucket}/ckpt", opts), bucket


def test_a_missing_bucket_is_named_on_every_operation(
        s3_base: tuple[str, dict[str, Any]]) -> None:
    objects, bucket = _missing(s3_base)
    operations = {
        "put": lambda: objects.put("frames/t/ingest.lease", b"x"),
        "get": lambda: objects.get("frames/t/index.parquet"),
        "get_range": lambda: objects.get_range("frames/t/s.bin", 0, 2),
        "get_ranges": lambda: objects.get_ranges("frames/t/s.bin", [(0, 2)]),
        "exists": lambda: objects.exists("frames/t/index.parquet"),
        "list": lambda: objects.list("frames"),
        "stat": lambda: objects.stat("frames"),
        "delete": lambda: objects.delete(["frames/t/index.parquet"]),
    }
    for name, call in operations.items():
        with pytest.raises(BackendUnavailableError) as info:
            call()
        text = str(info.value)
        assert f"bucket {bucket!r}" in text and "does not exist" in text, (name, text)
        assert "create it" in text and "is missing from" not in text, (name, text)


def test_a_missing_object_is_still_a_missing_object(
        s3_base: tuple[str, dict[str, Any]]) -> None:
    base, opts = s3_base
    objects = Objects.from_url(f"{base}/missing-{uuid.uuid4().hex[:8]}", opts)
    with pytest.raises(NotFoundError, match="is missing from"):
        objects.get("frames/t/index.parquet")
    with pytest.raises(NotFoundError, match="is missing from"):
        objects.get_range("frames/t/s.bin", 0, 2)
    assert objects.exists("frames/t/index.parquet") is False
    assert objects.list("frames") == [] and objects.stat("frames") == {}
    objects.delete(["frames/t/index.parquet"])  # missing keys are ignored
    objects.put("frames/t/a", b"abc")
    assert objects.exists("frames/t/a") and objects.list("frames") == ["frames/t/a"]


def test_pushing_to_a_missing_bucket_names_the_bucket(
        s3_base: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    _, opts = s3_base
    bucket = f"nosuchbucket-{uuid.uuid4().hex[:10]}"
    with localckpt.open(str(tmp_path / "s"), objects=f"s3://{bucket}/ckpt",
                        storage_options=opts, create=True) as store, \
            pytest.raises(BackendUnavailableError, match=f"bucket '{bucket}'"):
        store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)


def test_a_first_push_to_a_missing_bucket_makes_no_tables(
        s3_base: tuple[str, dict[str, Any]], pg_dsn: str, tmp_path: Path) -> None:
    """The team store's catalog is made by the first push: not when its bucket is
    missing (it left an empty catalog behind, and the push failed later anyway)."""
    import psycopg

    _, opts = s3_base
    schema = f"t_{uuid.uuid4().hex[:12]}"
    bucket = f"nosuchbucket-{uuid.uuid4().hex[:10]}"
    with localckpt.open(str(tmp_path / "laptop"), create=True) as laptop:
        laptop.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
        with pytest.raises(BackendUnavailableError, match=f"bucket '{bucket}'"):
            localckpt.open(f"{pg_dsn}?schema={schema}", objects=f"s3://{bucket}/ckpt",
                           storage_options=opts, create=True)
    with psycopg.connect(pg_dsn) as conn:
        found = conn.execute("SELECT count(*) FROM information_schema.tables "
                             "WHERE table_schema = %s", (schema,)).fetchone()
    assert found == (0,)


def test_verify_against_a_wrong_bucket_reports_no_missing_objects(
        s3_base: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, opts = s3_base
    with localckpt.open(str(tmp_path / "s"), objects=f"{base}/v-{uuid.uuid4().hex[:8]}",
                        storage_options=opts, create=True) as store:
        for _ in range(3):
            store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    bucket = f"nosuchbucket-{uuid.uuid4().hex[:10]}"
    with localckpt.open(str(tmp_path / "s"), objects=f"s3://{bucket}/ckpt",
                        storage_options=opts) as wrong:
        reads: list[str] = []
        real_get = wrong.objects.get_capped  # how verify reads an object

        def get(key: str, max_bytes: int) -> bytes:
            reads.append(key)
            return real_get(key, max_bytes)

        wrong.objects.get_capped = get  # type: ignore[method-assign]
        report = wrong.verify()
    kinds = {p.kind for p in report.problems}
    assert "missing-object" not in kinds, report.problems
    assert any(bucket in p.message and "does not exist" in p.message
               for p in report.problems), report.problems
    # the first failure stops the object reads (a stalled endpoint waits once, not per
    # object), and the rest are counted
    assert len(reads) == 1, reads
    assert any("2 more frame object(s) not read" in p.message for p in report.problems)


# -- 3. a misspelt option is bad input, found when the objects are opened ---------------------


@pytest.mark.parametrize(("options", "named", "hint"), [
    ({"endpoint": "http://127.0.0.1:9"}, "'endpoint'", "'endpoint_url'"),
    ({"endpoint_url": 9000}, "endpoint_url", "http://"),
    ({"endpoint_url": "127.0.0.1:9000"}, "endpoint_url", "http://"),
    ({"client_kwargs": {"endpoint_url": ["x"]}}, "client_kwargs.endpoint_url", "http://"),
    ({"config_kwargs": {"connection_timeout": 3}}, "'connection_timeout'", "'connect_timeout'"),
    ({"client_kwargs": {"region": "eu-west-1"}}, "'region'", "'region_name'"),
    ({"config_kwargs": "fast"}, "config_kwargs", "JSON object"),
    ({"config_kwargs": {"retries": 3}}, "retries", "max_attempts"),
    ({"retries": 0}, "retries", "at least 1"),
    ({"config_kwargs": {"connector_args": {"write_timeout": "1s"}}}, "write_timeout", "seconds"),
    ({"config_kwargs": {"connector_args": [1]}}, "connector_args", "JSON object"),
    ({"secret": SECRET, "no_such_option_at_all": 1}, "'no_such_option_at_all'", "spelling"),
])
def test_a_bad_option_is_invalid_input_at_open(options: dict[str, Any], named: str, hint: str,
                                               tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        Objects.from_url("s3://some-bucket/ckpt", options)
    text = str(info.value)
    assert named in text and hint in text and SECRET not in text, text
    with pytest.raises(InvalidInputError):
        localckpt.open(str(tmp_path / "s"), objects="s3://some-bucket/ckpt",
                       storage_options=options, create=True)


def test_valid_options_of_every_layer_are_accepted() -> None:
    """Names s3fs takes itself, through fsspec, and through the aiobotocore session."""
    Objects.from_url("s3://some-bucket/ckpt", {
        "anon": True, "use_listings_cache": False, "profile": None,
        "client_kwargs": {"region_name": "eu-west-1"},
        "config_kwargs": {"connect_timeout": 2, "max_pool_connections": 4,
                          "retries": {"total_max_attempts": 2}},
    })
