"""A local S3 server (moto) on a free loopback port, for tests and benchmarks.

moto runs as a subprocess (``python -m moto.server``) so that a test can kill it and
start it again on the same port, as a real outage would look to a client. moto keeps
everything in memory: buckets and objects do not survive stop()/kill().
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from types import TracebackType
from typing import Any

from ._util import free_port, port_accepts, wait_until_free

__all__ = ["LocalS3"]


class LocalS3:
    """moto's S3 server on 127.0.0.1, with credentials and s3fs options to reach it.

    Use as a context manager, or start() / stop(). stop() and kill() keep the port, so
    start() again serves on the same endpoint (empty: moto state is in memory).
    """

    key = "localckpt-test-key"
    secret = "localckpt-test-secret"

    def __init__(self, *, port: int | None = None, ready_timeout: float = 30.0) -> None:
        self.port: int = port or free_port()
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        # moto logs every request: a file, not a pipe nobody drains (a full pipe blocks it)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as self

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for s3fs.S3FileSystem / fsspec (no region: see FACTS.md)."""
        return {
            "key": self.key,
            "secret": self.secret,
            "endpoint_url": self.endpoint_url,
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        }

    @property
    def env(self) -> dict[str, str]:
        """AWS-style environment variables that make botocore/s3fs clients use this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The moto server's process id while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self) -> LocalS3:
        """Start the server (if not running) and wait until it answers HTTP."""
        if self.running:
            return self
        wait_until_free(self.port)
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not moto directly
        )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"moto server exited on port {self.port}: {self.log_tail()}")
            if port_accepts(self.port) and self._answers():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"moto server did not answer on {self.endpoint_url} within "
                           f"{self.ready_timeout} s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s). The port is kept for start()."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), like a crash."""
        self._end(signal.SIGKILL)

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset API); faster than a restart."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def make_bucket(self, name: str) -> str:
        """Create a bucket (3+ characters) and return its URL, ``s3://name``."""
        import s3fs  # imported late: only this helper needs the client

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)
        fs.mkdir(name)
        return f"s3://{name}"

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LocalS3 {self.endpoint_url} {'running' if self.running else 'stopped'}>"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    def _end(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        wait_until_free(self.port)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of moto's log, for error messages."""
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - chars))
        return self._log.read().decode(errors="replace").strip()
