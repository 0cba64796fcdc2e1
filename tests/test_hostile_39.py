"""Hostile input the other hostile tests do not reach: numbers at the ends of int64 and
of a double in stored outputs (a bundle's, a sync peer's, an import's), as evaluate and
the derived tables read them; a video file whose header was cut."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt

FRAMES = [np.full((4, 4, 3), i * 60, np.uint8) for i in range(2)]
BOX = [1.0, 1.0, 3.0, 3.0]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with localckpt.open(str(tmp_path / "store"), create=True) as s:
        yield s


def _frames(boxes: dict[int, list[tuple[str, list[float]]]]) -> dict[str, Any]:
    return {"frames": [{"sequence": seq, "detections": [{"box": box, "label": label}
                                                        for label, box in dets]}
                       for seq, dets in sorted(boxes.items())]}


def test_a_frame_number_at_the_end_of_int64_is_evaluated(store: Any) -> None:
    """match keyed boxes by label * (largest frame + 1) + frame: with frame 2**63 - 1
    numpy raised OverflowError out of evaluate."""
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    last = 2**63 - 1
    ref = store.save_stage_output(tl.id, None, "detect",
                                  _frames({last: [("a", BOX), ("b", BOX)]}))
    result = store.evaluate([ref], ref, "detect")
    scores = result.tries[0].scores
    assert (scores.tp, scores.fp, scores.fn) == (2, 0, 0)


def test_frame_numbers_near_the_end_of_int64_never_match_another_label(store: Any) -> None:
    """Below the OverflowError, the int64 keys wrapped around silently: with four labels
    and a frame 2**62 listed, a box of label d at frame 2**62 - 3 had the key of label
    a at frame 0 and was matched with its box, a true positive it is not."""
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    far = 2**62
    ref = store.save_stage_output(tl.id, None, "detect", _frames(
        {0: [("a", BOX)], far - 3: [], far: [("b", BOX), ("c", BOX)]}))
    tried = store.save_stage_output(tl.id, None, "detect", _frames({far - 3: [("d", BOX)]}))
    result = store.evaluate([tried], ref, "detect")
    d = result.tries[0].by_label["d"]
    assert (d.tp, d.fp) == (0, 1)
    scores = result.tries[0].scores
    assert (scores.tp, scores.fp, scores.fn) == (0, 1, 3)


@pytest.mark.parametrize("bare", [False, True], ids=["detections", "bare-boxes"])
@pytest.mark.parametrize("big", [10**400, -(10**400)], ids=["positive", "negative"])
def test_an_integer_beyond_a_double_in_a_box_reads_as_infinity(store: Any, big: int,
                                                               bare: bool) -> None:
    """A stored output may hold any JSON integer: derived tables read one beyond a double
    as infinity, but where the output is flattened in Python (bare boxes, shapes Arrow's
    reader does not take) math.copysign converted the integer too, and detections,
    evaluate and the tries page raised OverflowError."""
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    box = [0, 0, 2, big] if big > 0 else [big, 0, 2, 2]
    frame = {"sequence": 0, "boxes": [box]} if bare else {
        "sequence": 0, "detections": [{"box": box, "label": "a"}]}
    cid = store.save_stage_output(tl.id, None, "detect", {"frames": [frame]})
    row = store.detections([cid], "detect").to_pylist()[0]
    assert (row["y2"], row["x1"]) == ((float("inf"), 0.0) if big > 0 else (2.0, float("-inf")))
    ref = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": 0, "detections": [{"box": [0, 0, 2, 2], "label": "a"}]}]})
    assert store.evaluate([cid], ref, "detect").tries[0].scores.tp == 0


@pytest.mark.parametrize("box", [[0, 0, 2, 10**400], [-(10**400), 0, 2, 2],
                                 [-1.7e308, -1.7e308, 1.7e308, 1.7e308], [0, 0, 1e308, 1e308]],
                         ids=["infinite", "minus-infinite", "wider-than-a-double", "huge-area"])
def test_boxes_at_the_ends_of_a_double_are_judged_without_warnings(store: Any,
                                                                  box: list[Any]) -> None:
    """Their width, area or IoU overflows or is NaN: no overlap, and no RuntimeWarning
    on the user's stderr for numbers a stored output may hold."""
    import warnings

    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    tried = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": 0, "boxes": [box, [0, 0, 2, 2]]}]})
    ref = store.save_stage_output(tl.id, None, "detect", {"frames": [
        {"sequence": 0, "boxes": [[0, 0, 2, 2], box]}]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = store.evaluate([tried], ref, "detect").tries[0].scores
        assert scores.tp >= 1
        store.evaluate([ref], tried, "detect")


def test_a_video_whose_stream_has_no_codec_is_a_typed_error(store: Any,
                                                            tmp_path: Path) -> None:
    """An MP4 cut inside its header, before the sample description: PyAV opens it with a
    video stream whose codec_context is None, and ingest_video raised AttributeError."""
    av = pytest.importorskip("av")
    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:data.index(b"stsd") - 4])
    with av.open(str(cut)) as probe:
        assert probe.streams.video[0].codec_context is None  # what the test is about
    with pytest.raises(localckpt.InvalidInputError, match="names no codec FFmpeg can decode"):
        store.ingest_video(str(cut))
    assert store.list_timelines() == []


def _peer_with_object(tmp_path: Path, which: str) -> tuple[Any, Path]:
    peer = localckpt.open(str(tmp_path / "peer"), create=True)
    tl = peer.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    path = Path(peer.objects.local_path(f"frames/{tl.id}/{which}"))
    path.unlink()
    return peer, path


@pytest.mark.parametrize("which", ["index.parquet", "shard-000000.bin"])
def test_a_peer_whose_frame_object_is_a_fifo_is_refused_without_waiting(
        tmp_path: Path, which: str) -> None:
    """A sync peer is a directory anyone may have written: a FIFO in place of its frame
    index or a shard made sync wait for ever (the open blocks until a writer comes)."""
    import os
    import threading

    peer, path = _peer_with_object(tmp_path, which)
    os.mkfifo(path)
    dst = localckpt.open("memory://")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            localckpt.sync(peer, dst)
        except BaseException as exc:  # the test looks at what it was
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # let the blocked open go, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail("sync waited on a FIFO put in place of a peer's frame object")
    assert len(outcome) == 1 and isinstance(outcome[0], localckpt.CorruptDataError)
    assert "is a FIFO, not a regular file" in str(outcome[0])
    assert dst.list_timelines() == []
    peer.close()


def test_a_peer_frame_object_larger_than_any_is_refused_before_it_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse file of terabytes takes no disk and was read into memory whole; the cap
    is the bundles' (MAX_OBJECT, made small here), told from its size before a read."""
    import os

    from localckpt import bundle_limits

    monkeypatch.setattr(bundle_limits, "MAX_OBJECT", 1 << 20)
    peer, path = _peer_with_object(tmp_path, "shard-000000.bin")
    with open(path, "wb") as fh:
        fh.truncate((1 << 20) + 1)
    assert os.stat(path).st_blocks * 512 < (1 << 20)  # sparse: nothing to read on disk
    dst = localckpt.open("memory://")
    with pytest.raises(localckpt.CorruptDataError, match="more than the 1048576"):
        localckpt.sync(peer, dst)
    assert dst.list_timelines() == []
    peer.close()


def test_a_remote_peer_frame_object_larger_than_any_is_refused_reading_no_more(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """From an object store the object is read whole (Objects.get has no cap): a peer
    serving a shard of 100 GB would be read into memory. Reads stop past the cap."""
    from localckpt import bundle_limits

    monkeypatch.setattr(bundle_limits, "MAX_OBJECT", 1 << 20)
    peer = localckpt.open("memory://")
    tl = peer.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
    peer.objects.put(f"frames/{tl.id}/shard-000000.bin", bytes((1 << 20) + 2))
    dst = localckpt.open("memory://")
    with pytest.raises(localckpt.CorruptDataError, match="holds more than 1048576 bytes"):
        localckpt.sync(peer, dst)
    assert dst.list_timelines() == []


@pytest.mark.parametrize("ref", [None, 7, "nope"])
def test_a_kind_too_large_to_print_is_a_typed_error_whatever_the_ref(store: Any,
                                                                      ref: Any) -> None:
    """resolve's message about a ref that is not a string named the kind as given: an
    integer of more digits than Python prints raised ValueError (found by the slow
    profile of test_fuzz_api). The kind is checked first now."""
    with pytest.raises(localckpt.InvalidInputError, match="an integer too large to print"):
        store.resolve(ref, kind=10**5000)
