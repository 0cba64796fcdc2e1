"""The HTTP session of localckpt's S3 client: aiobotocore's, with a write timeout.

aiohttp bounds connecting and reading, never writing: an upload to a server that accepts
the connection and then stops reading waits forever once the body outgrows the socket's
buffers (a shard of a few MB), as the read timeout is armed only after the whole body is
sent. Here the body goes out in chunks, and a request whose body makes no progress for
``write_timeout`` seconds fails with :class:`WriteTimeoutError`, a read timeout to
botocore, so it is retried as one. Like the read timeout it bounds a stall, never a
transfer: a large upload over a slow link still works.

Imported only when an S3 client is made (aiohttp and aiobotocore cost to import).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import ReadTimeoutError

__all__ = ["CHUNK", "WriteTimeoutError", "WriteTimeoutSession"]

#: Bytes handed to aiohttp at a time; progress is seen once per chunk.
CHUNK = 1 << 18


class WriteTimeoutError(ReadTimeoutError):
    """The server took no bytes of a request's body for write_timeout seconds."""

    fmt = 'Write timeout on endpoint URL: "{endpoint_url}"'


class _Progress:
    """A body handed out chunk by chunk, with the time the last chunk was taken."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.last: float | None = None  # None: not started (connecting, or queued)
        self.done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        self.last = time.monotonic()
        if isinstance(self.body, bytes | bytearray | memoryview):
            view = memoryview(self.body).cast("B")
            for start in range(0, len(view), CHUNK):
                yield bytes(view[start:start + CHUNK])
                self.last = time.monotonic()
        elif hasattr(self.body, "__aiter__"):  # botocore's aws-chunked body (a checksum
            async for chunk in self.body:      # trailing)
                yield chunk
                self.last = time.monotonic()
        else:  # a file object: botocore's BytesIO of the bytes s3fs sends
            read = self.body.read
            while chunk := (read(CHUNK) if isinstance(self.body, io.BytesIO)
                            else await asyncio.to_thread(read, CHUNK)):
                yield chunk
                self.last = time.monotonic()
        self.done = True

    def idle(self) -> float:
        """Seconds since the body last moved (0 before it starts or once it is sent)."""
        if self.done or self.last is None:
            return 0.0
        return time.monotonic() - self.last


def _watched(request: Any) -> bool:
    """Whether the body can outgrow the socket's buffers (a small one never waits on
    them; the read timeout then holds)."""
    body = request.body
    if body is None or isinstance(body, str):
        return False
    if hasattr(body, "__aiter__"):
        return True
    try:
        size = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return False
    readable = isinstance(body, bytes | bytearray | memoryview) or hasattr(body, "read")
    return readable and size > CHUNK


class WriteTimeoutSession(AIOHTTPSession):
    """aiobotocore's aiohttp session; ``connector_args["write_timeout"]`` (seconds, None
    for none) bounds how long a body may make no progress. aiobotocore's httpx session
    reads the same key."""

    def __init__(self, *args: Any, connector_args: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        connector_args = dict(connector_args or {})
        self._write_timeout: float | None = connector_args.pop("write_timeout", None)
        super().__init__(*args, connector_args=connector_args or None, **kwargs)

    async def send(self, request: Any) -> Any:
        body = request.body
        limit = self._write_timeout
        if not limit or not _watched(request):
            return await super().send(request)
        progress = _Progress(body)
        request.body = progress.chunks()  # this attempt's; a retry gets the body back
        task = asyncio.ensure_future(super().send(request))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=max(limit - progress.idle(),
                                                                 0.05))
                if done:
                    return task.result()
                if progress.idle() >= limit:
                    raise WriteTimeoutError(endpoint_url=request.url, error=(
                        f"no bytes of the body were taken for {limit} s"))
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
            request.body = body
