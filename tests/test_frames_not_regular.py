"""A frame object of one's own store that is not a regular file (a FIFO, a directory) is
refused without waiting: a plain open of a FIFO blocks until something writes to it, so
a frame read, and the web view's request thread with it, waited for ever."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websample import serving

import localckpt
from localckpt.shards import FrameReader

FRAMES = [np.full((4, 6, 3), i * 40, np.uint8) for i in range(3)]


def _outcome(call: Callable[[], Any], fifo: Path | None) -> Any:
    """What call returned or raised; a call still waiting after 30 s fails the test
    (after the FIFO is opened for writing once, so that the blocked thread ends)."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # the test looks at what it was
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail("the read waited on an object that is not a regular file")
    return result[0]


def _store_with(tmp_path: Path, which: str, kind: str) -> tuple[Any, Any, Path]:
    store = localckpt.open(str(tmp_path / "s"), create=True)
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    path = Path(store.objects.local_path(f"frames/{tl.id}/{which}"))
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    return store, tl, path


@pytest.mark.parametrize("kind", ["fifo", "directory"])
@pytest.mark.parametrize("which", ["index.parquet", "shard-000000.bin"])
def test_frame_reads_refuse_an_object_that_is_not_a_regular_file(
        tmp_path: Path, which: str, kind: str) -> None:
    store, tl, path = _store_with(tmp_path, which, kind)
    fifo = path if kind == "fifo" else None
    reads = {
        "get_frame": lambda: store.get_frame(tl.id, 1),
        "iter_frames": lambda: list(store.iter_frames(tl.id)),
        "reader": lambda: list(FrameReader(store.objects, tl.id, tl.index_hash).frames()),
    }
    for name, call in reads.items():
        got = _outcome(call, fifo)
        assert isinstance(got, localckpt.CorruptDataError), (name, got)
        what = "a FIFO" if kind == "fifo" else "a directory"
        assert f"frames/{tl.id}/{which}" in str(got) and f"is {what}" in str(got), str(got)
    report = store.verify(tl.id)
    assert not report.ok and any(which in str(p) for p in report.problems)
    store.close()


def test_the_web_view_answers_a_frame_request_when_the_shard_is_a_fifo(
        tmp_path: Path) -> None:
    import http.client

    store, tl, path = _store_with(tmp_path, "shard-000000.bin", "fifo")

    def request() -> tuple[int, bytes]:
        with serving(store) as (base, _):
            conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)
            try:
                conn.request("GET", f"/frames/{tl.id}/1.jpg")
                resp = conn.getresponse()
                return resp.status, resp.read()
            finally:
                conn.close()

    status, body = _outcome(request, path)
    assert status == 500 and b"is a FIFO" in body, (status, body[:300])
    store.close()
