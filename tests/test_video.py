"""Store.ingest_video: PTS-exact sampling of real (generated) video files.

Every video here is written by the test with PyAV (localckpt.testing.videos): frame i
shows the number i as a row of blocks, so a stored frame tells which source frame it
is. Expectations come from a brute-force reading of the rule, independent of the
incremental sampler: frame i of the timeline is the first source frame whose time is at
least start + i / fps (times within 1 ms count as equal).
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av  # the [video] extra is part of [test]: a missing PyAV fails here
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import localckpt
from localckpt.errors import InvalidInputError, NotFoundError
from localckpt.frames import perceptual_hash
from localckpt.sampling import Needless, Sampler
from localckpt.testing.videos import (
    CODECS,
    frame_image,
    iter_decoded,
    read_number,
    write_audio,
    write_video,
)

TOL = 1e-3
# Irregular frame times (seconds from the first frame): gaps shorter and longer than
# every sampling interval used below, none within 1 ms of a sampling instant.
VFR_TIMES = [0.0, 0.013, 0.051, 0.09, 0.24, 0.245, 0.31, 0.5, 0.52, 0.64, 0.812, 0.9,
             1.11, 1.17, 1.173, 1.42, 1.43, 1.6, 1.77, 2.006, 2.05, 2.33, 2.5, 2.71]


# -- reference --------------------------------------------------------------------------------


def expected(times: list[float], fps: float | None, start: float = 0.0,
             end: float | None = None) -> dict[int, int]:
    """sequence -> index of the source frame stored under it, by the rule, brute force."""
    window = [j for j, t in enumerate(times)
              if t >= start - TOL and (end is None or t < end - TOL)]
    if fps is None:
        return dict(enumerate(window))
    picked: dict[int, int] = {}
    used: set[int] = set()
    i = 0
    while True:
        target = start + i / fps
        j = next((k for k in window if times[k] >= target - TOL), None)
        if j is None:
            return picked
        if j not in used:
            picked[i] = j
            used.add(j)
        i += 1


def decoded(path: Path) -> list[np.ndarray]:
    return [img for _, img in iter_decoded(path)]


def check_timeline(store: Any, tl: Any, times: list[float], reference: list[np.ndarray],
                   want: dict[int, int]) -> None:
    """Counts, sequences, timestamps, which source frames, and pixels within JPEG error."""
    frames = store.get_timeline_frames(tl.id)
    assert tl.frame_count == len(frames) == len(want)
    assert [f.sequence for f in frames] == sorted(want)
    for f in frames:
        j = want[f.sequence]
        assert f.timestamp == pytest.approx(times[j], abs=1e-6), f.sequence
        assert read_number(f.image) == j, f"sequence {f.sequence} stored the wrong frame"
        err = np.abs(f.image.astype(np.int16) - reference[j].astype(np.int16))
        assert err.mean() < 3.0 and np.percentile(err, 99) < 40, (f.sequence, err.mean())
        assert f.perceptual_hash == perceptual_hash(reference[j])  # of the decoded pixels


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[float]]]:
    """Each codec in its container, at a constant 25 fps and with variable frame times
    whose first PTS is 0.7 s; the MKV one also has an audio track."""
    root = tmp_path_factory.mktemp("videos")
    made = {}
    for codec, (ext, _) in CODECS.items():
        path = root / f"cfr-{codec}.{ext}"
        made[f"cfr-{codec}"] = (path, write_video(path, 60, codec=codec,
                                                  audio=codec == "mpeg4"))
        path = root / f"vfr-{codec}.{ext}"
        made[f"vfr-{codec}"] = (path, write_video(path, times=VFR_TIMES, codec=codec,
                                                  first_pts=0.7))
    return made


@pytest.fixture
def store(new_store: Any) -> Any:
    return new_store("embedded")


def listing(store: Any) -> tuple[list[str], list[str]]:
    """Timeline ids and every object key (temp files and timelines' directories included
    on a local store: a failed write left its directory, empty)."""
    ids = [t.id for t in store.list_timelines()]
    if store.objects.is_local:
        root = Path(store.objects.root)
        return ids, sorted(str(p) for p in root.rglob("*") if p != root / "frames")
    return ids, sorted(store.objects.list(""))


# -- sampling -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("fps", [2.0, 7.5, 25, 60, None])
def test_frames_are_sampled_by_presentation_time(
    videos: dict[str, tuple[Path, list[float]]], store: Any, kind: str, codec: str,
    fps: float | None,
) -> None:
    path, times = videos[f"{kind}-{codec}"]
    tl = store.ingest_video(str(path), "p", fps=fps)
    want = expected(times, fps)
    check_timeline(store, tl, times, decoded(path), want)
    stats = store.get_checkpoint(tl.root_checkpoint_id).stats
    assert stats == {"frames_extracted": len(want), "frames_decoded": len(times),
                     "frames_kept": len(want), "frames_skipped": 0, "frames_undecodable": 0}
    assert tl.source_video == str(path) and tl.profile_name == "p"
    if fps is not None:
        assert tl.fps == fps and tl.source_info["sampling"]["fps"] == fps
    else:  # every frame: the timeline's rate is the source's (its average, for VFR)
        assert tl.fps == tl.source_info["fps"] and tl.source_info["sampling"]["fps"] is None
        if kind == "cfr":
            assert tl.fps == 25.0


@pytest.mark.parametrize("fps", [30000 / 1001, Fraction(30000, 1001)])
def test_millisecond_timestamps_answer_their_instants(tmp_path: Path, store: Any,
                                                      fps: float) -> None:
    """Matroska keeps milliseconds: 29.97 fps frame k sits at round(k * 33.367) ms, up to
    0.5 ms before its instant. Sampling at the native rate must still keep every frame."""
    path = tmp_path / "ntsc.mkv"
    times = write_video(path, times=[k * 1001 / 30000 for k in range(90)], codec="mpeg4",
                        fps=30)
    assert any(t < k * 1001 / 30000 - 1e-4 for k, t in enumerate(times))  # some are early
    tl = store.ingest_video(path, fps=fps)
    index = store.frame_index(tl.id)
    assert [m.sequence for m in index] == list(range(90))
    assert [m.timestamp for m in index] == pytest.approx(times, abs=1e-9)


def test_source_info_describes_the_video(videos: dict[str, tuple[Path, list[float]]],
                                         store: Any) -> None:
    path, times = videos["vfr-libx264"]
    tl = store.ingest_video(path, fps=5, chunk_seconds=1.0)
    info = dict(tl.source_info)
    assert info["codec"] == "h264" and info["container"].startswith("mov,mp4")
    assert (info["width"], info["height"], info["rotation"]) == (320, 240, 0)
    assert info["start_time"] == pytest.approx(0.7)  # first PTS; timestamps count from it
    assert info["duration"] == pytest.approx(times[-1] + 0.04, abs=0.06)
    assert info["sampling"] == {"fps": 5.0, "start": 0.0, "end": None, "max_frames": None,
                                "chunk_seconds": 1.0, "skip_similar": None}
    path, _ = videos["cfr-libvpx-vp9"]
    info = dict(store.ingest_video(path, fps=None).source_info)
    assert info["fps"] == 25.0 and info["codec"] == "vp9" and "webm" in info["container"]
    assert info["duration"] == pytest.approx(2.4, abs=0.05)
    # the record reads back the same after reopening
    assert store.get_timeline(tl.id).source_info == tl.source_info


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
@pytest.mark.parametrize("window", [(0.5, 1.7), (2.0, None), (3.3, 5.0), (0.0, 0.3)])
def test_start_and_end_bound_the_window(tmp_path: Path, store: Any, codec: str,
                                        window: tuple[float, float | None]) -> None:
    """start past 1 s seeks (key frames every 10 frames): the result is the same."""
    path = tmp_path / f"long.{CODECS[codec][0]}"
    times = write_video(path, 120, codec=codec, gop=10, first_pts=0.25)
    start, end = window
    tl = store.ingest_video(path, fps=4, start=start, end=end)
    want = expected(times, 4, start, end)
    check_timeline(store, tl, times, decoded(path), want)
    in_window = sum(1 for t in times if t >= start - TOL and (end is None or t < end - TOL))
    assert store.get_checkpoint(tl.root_checkpoint_id).stats["frames_decoded"] == in_window
    assert tl.source_info["sampling"]["start"] == start


def test_max_frames_stops_early(videos: dict[str, tuple[Path, list[float]]], store: Any) -> None:
    path, times = videos["vfr-libvpx-vp9"]
    want = expected(times, 10)
    tl = store.ingest_video(path, fps=10, max_frames=5)
    check_timeline(store, tl, times, decoded(path), dict(sorted(want.items())[:5]))
    tl = store.ingest_video(path, fps=None, start=1.0, max_frames=3)
    first3 = dict(list(expected(times, None, 1.0).items())[:3])
    check_timeline(store, tl, times, decoded(path), first3)


def test_the_seconds_sampled_when_max_frames_stops_where_sequences_skip(
        videos: dict[str, tuple[Path, list[float]]], store: Any) -> None:
    """Sampled above the source's 25 fps, frames skip sequence numbers: 10 frames at 60
    fps cover the source up to the first instant after the last frame's time, not 10 /
    60 s (ls and tree said 0.2s for 0.4s)."""
    from localckpt.render import sampled_duration, sampled_seconds

    path, _ = videos["cfr-libx264"]
    for start in (0.0, 0.5):
        tl = store.ingest_video(path, fps=60, start=start or None, max_frames=10)
        last = store.frame_index(tl.id)[-1]
        assert last.sequence > 10  # the case: sequences skip
        covered = (math.floor((last.timestamp - start) * 60 + 1e-6) + 1) / 60
        assert sampled_seconds(tl) == pytest.approx(covered, abs=1e-6)
        assert tl.source_info["sampling"]["stopped_at"] == pytest.approx(start + covered)
        if not start:
            assert sampled_duration(tl) == "0.4s"
    whole = store.ingest_video(path, fps=60)  # not stopped early: the window, no stopped_at
    assert "stopped_at" not in whole.source_info["sampling"]
    assert sampled_seconds(whole) == pytest.approx(whole.source_info["duration"])


def test_chunk_ids_are_windows_of_source_time(videos: dict[str, tuple[Path, list[float]]],
                                              store: Any) -> None:
    path, times = videos["cfr-libx264"]
    whole = store.frame_index(store.ingest_video(path, fps=None, chunk_seconds=0.5).id)
    assert [m.chunk_id for m in whole] == [math.floor(t / 0.5 + 1e-9) for t in times]
    assert {m.chunk_id for m in whole} == {0, 1, 2, 3, 4}
    # the same instant has the same chunk whatever the start
    later = store.frame_index(store.ingest_video(path, fps=None, start=1.3,
                                                 chunk_seconds=0.5).id)
    by_time = {round(m.timestamp, 6): m.chunk_id for m in whole}
    assert later and all(by_time[round(m.timestamp, 6)] == m.chunk_id for m in later)
    assert {m.chunk_id for m in store.frame_index(store.ingest_video(path).id)} == {0}


def test_skip_similar_drops_a_static_stretch(tmp_path: Path, store: Any) -> None:
    """Frames 10..29 show one picture: with skip_similar only the first of them stays."""
    pictures = [*range(10), *[10] * 20, *range(30, 45)]
    path = tmp_path / "static.mp4"
    times = write_video(path, len(pictures), pictures=pictures)
    reference = decoded(path)
    tl = store.ingest_video(path, fps=None, skip_similar=6)
    frames = store.get_timeline_frames(tl.id)
    kept = [f.sequence for f in frames]
    assert kept == [*range(11), *range(30, 45)]
    assert [read_number(f.image) for f in frames] == [pictures[s] for s in kept]
    assert [f.timestamp for f in frames] == pytest.approx([times[s] for s in kept])
    stats = store.get_checkpoint(tl.root_checkpoint_id).stats
    assert stats == {"frames_extracted": 26, "frames_decoded": 45, "frames_kept": 26,
                     "frames_skipped": 19, "frames_undecodable": 0}
    # the rule, by brute force over PyAV's own frames: drop what is near the last kept
    last, want = None, []
    for j, img in enumerate(reference):
        h = int(perceptual_hash(img), 16)
        if last is None or (h ^ last).bit_count() > 6:
            want.append(j)
            last = h
    assert kept == want
    # sampling first, then skipping: at 5 fps the stretch (0.4 s .. 1.2 s) keeps one frame
    sampled = store.frame_index(store.ingest_video(path, fps=5, skip_similar=6).id)
    assert [m.sequence for m in sampled] == [0, 1, 2, *range(6, 9)]


# -- inputs: URLs, file objects, PIL -----------------------------------------------------------


def test_fsspec_urls_and_open_files(videos: dict[str, tuple[Path, list[float]]],
                                    store: Any) -> None:
    import fsspec

    path, times = videos["vfr-libx264"]
    want, reference = expected(times, 5), decoded(path)
    url = f"memory://videos-{os.getpid()}/clip.mp4"
    with fsspec.open(url, "wb") as fh:
        fh.write(path.read_bytes())
    tl = store.ingest_video(url, fps=5)
    assert tl.source_video == url
    check_timeline(store, tl, times, reference, want)
    with open(path, "rb") as fh:
        tl = store.ingest_video(fh, fps=5)
        assert not fh.closed  # the caller's file stays the caller's
    assert tl.source_video == str(path)
    check_timeline(store, tl, times, reference, want)
    tl = store.ingest_video(io.BytesIO(path.read_bytes()), fps=5)
    assert tl.source_video == "<BytesIO>"
    check_timeline(store, tl, times, reference, want)
    tl = store.ingest_video(f"file://{path}", fps=5)
    check_timeline(store, tl, times, reference, want)


def test_s3_url(videos: dict[str, tuple[Path, list[float]]], new_store: Any,
                s3_base: tuple[str, dict[str, Any]]) -> None:
    import fsspec

    base, options = s3_base
    path, times = videos["cfr-libvpx-vp9"]
    url = f"{base}/videos/{os.getpid()}.webm"
    with fsspec.open(url, "wb", **options) as fh:
        fh.write(path.read_bytes())
    store = new_store("memory")
    tl = store.ingest_video(url, fps=4, storage_options=options)
    check_timeline(store, tl, times, decoded(path), expected(times, 4))
    with pytest.raises(NotFoundError, match=r"missing\.webm"):
        store.ingest_video(f"{base}/videos/missing.webm", storage_options=options)


def test_without_pyav_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                videos: Any, store: Any) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    with pytest.raises(InvalidInputError, match=r"pip install 'localckpt\[video\]'"):
        store.ingest_video(videos["cfr-libx264"][0])
    assert store.list_timelines() == []


# -- bad input ------------------------------------------------------------------------------


def _truncated(src: Path, dst: Path, share: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


def _audio_with_cover(path: Path) -> None:
    """An MP3 with album art: FFmpeg lists the picture as a one-frame video stream."""
    from PIL import Image

    from localckpt.testing.videos import _silence

    cover = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 0, 0)).save(cover, "JPEG")
    with av.open(str(path), "w") as out:
        sound: Any = out.add_stream("mp3", rate=16000)
        picture: Any = out.add_stream("mjpeg")
        picture.width = picture.height = 64
        picture.pix_fmt = "yuvj420p"
        picture.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(cover.getvalue())
        packet.stream, packet.pts, packet.dts = picture, 0, 0
        out.mux(packet)
        _silence(out, sound, 1.0)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    (root / "notes.txt").write_text("not a video\n" * 200)
    (root / "notes.mp4").write_text("not a video either\n" * 200)
    (root / "empty.mp4").write_bytes(b"")
    (root / "noise.mkv").write_bytes(np.random.default_rng(0).bytes(50_000))
    from PIL import Image

    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(root / "frame.png")
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(root / "frame.jpg")
    write_audio(root / "speech.m4a", 2.0)
    _audio_with_cover(root / "song.mp3")
    long_mkv, long_webm, long_mp4 = root / "long.mkv", root / "long.webm", root / "long.mp4"
    write_video(long_mkv, 200, codec="mpeg4", size=(640, 360))
    write_video(long_webm, 100, codec="libvpx-vp9")
    write_video(long_mp4, 100)
    return {
        "text": root / "notes.txt", "text-as-mp4": root / "notes.mp4",
        "empty": root / "empty.mp4", "noise": root / "noise.mkv",
        "png": root / "frame.png", "jpeg": root / "frame.jpg",
        "audio-only": root / "speech.m4a", "audio-with-cover": root / "song.mp3",
        "truncated-mkv": _truncated(long_mkv, root / "cut.mkv", 0.6),
        "truncated-webm": _truncated(long_webm, root / "cut.webm", 0.5),
        "truncated-mp4": _truncated(long_mp4, root / "cut.mp4", 0.8),
        "directory": root, "long-mp4": long_mp4,
        "missing": root / "missing.mp4",
    }


@pytest.mark.parametrize("kind", ["embedded", "memory"])
@pytest.mark.parametrize("bad", ["text", "text-as-mp4", "empty", "noise", "png", "jpeg",
                                 "audio-only", "audio-with-cover",
                                 "truncated-mkv", "truncated-webm", "truncated-mp4",
                                 "directory", "missing"])
def test_bad_files_are_typed_errors_and_write_nothing(
    bad_files: dict[str, Path], videos: Any, new_store: Any, kind: str, bad: str,
) -> None:
    store = new_store(kind)
    store.ingest_video(videos["cfr-libx264"][0])  # something to keep
    before = listing(store)
    path = bad_files[bad]
    error = NotFoundError if bad == "missing" else InvalidInputError
    with pytest.raises(error) as info:
        store.ingest_video(path, fps=None)
    assert str(path) in str(info.value)
    assert listing(store) == before
    # the shards a truncated file got to are gone, and the store still works
    assert len(store.list_timelines()) == 1


def test_a_video_stream_without_frames_is_said_to_have_none(tmp_path: Path,
                                                            store: Any) -> None:
    """A Matroska file whose video track holds no frames (beside audio) was 'no frames of
    F in [0 s, end) ...; choose a start and end inside the video', though none was given."""
    from localckpt.testing.videos import _add_audio, _silence

    path = tmp_path / "empty-track.mkv"
    with av.open(str(path), "w") as out:
        video: Any = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        _silence(out, _add_audio(out), 1.0)
        out.mux(video.encode(None))
    before = listing(store)
    with pytest.raises(InvalidInputError, match="has a video stream with no frames") as info:
        store.ingest_video(path)
    assert str(path) in str(info.value) and "start" not in str(info.value)
    assert listing(store) == before


def test_a_truncated_file_says_an_end_that_ingests_what_is_there(
    tmp_path: Path, store: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    """The message advised end= with the data's end in the file's own clock: for a video
    whose first PTS is 5 s, 'data stops at 6.880 s' (end= counts from the first frame,
    so end=6.88 read to the cut and was refused again), and the CLI said end= for --end."""
    import re

    whole = tmp_path / "whole.mkv"
    times = write_video(whole, 100, codec="mpeg4", first_pts=5.0)
    cut = _truncated(whole, tmp_path / "cut.mkv", 0.5)
    with pytest.raises(InvalidInputError, match=r"lasts 4\.000 s") as info:
        store.ingest_video(cut, fps=None)
    found = re.search(r"pass end=([0-9.]+) ", str(info.value))
    assert found, str(info.value)
    end = float(found.group(1))
    assert 1.0 < end < 2.5
    tl = store.ingest_video(cut, fps=None, end=end)
    frames = store.get_timeline_frames(tl.id)
    assert [f.timestamp for f in frames] == pytest.approx([t for t in times if t < end - TOL])
    assert [read_number(f.image) for f in frames] == list(range(len(frames)))
    code, _, err = _cli(capsys, "--store", str(tmp_path / "s"), "ingest", str(cut))
    assert code == 1 and f"pass --end {found.group(1)} " in err


@pytest.mark.parametrize("ext", ["mp4", "mkv", "ts"])
def test_a_file_cut_mid_packet_is_refused_in_every_container(
    tmp_path: Path, store: Any, capsys: pytest.CaptureFixture[str], ext: str,
) -> None:
    """MP4 and Matroska state their length; MPEG-TS does not (FFmpeg reads one from the
    timestamps at the file's end), so a .ts cut in the middle ingested what was there
    silently, its last frame partly made up by the decoder. A cut .ts ends inside a
    transport packet: refused, with an end= that ingests the frames before the last one,
    whole. (mp4 and mkv: a guard, they were refused already.)"""
    whole = tmp_path / f"whole.{ext}"
    times = write_video(whole, 50, codec="mpeg4" if ext == "mkv" else "libx264",
                        size=(160, 120))
    size = whole.stat().st_size
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[:size // 2 + 5])  # not on a 188-byte boundary
    before = listing(store)
    with pytest.raises(InvalidInputError, match="truncated") as info:
        store.ingest_video(cut, fps=None)
    assert str(cut) in str(info.value) and listing(store) == before
    if ext != "ts":
        return
    assert "ends in the middle of an MPEG-TS packet" in str(info.value)
    import re

    found = re.search(r"pass end=([0-9.]+) to ingest", str(info.value))
    assert found, str(info.value)
    tl = store.ingest_video(cut, fps=None, end=float(found.group(1)))
    frames = store.get_timeline_frames(tl.id)
    assert 10 < len(frames) < 40
    assert [read_number(f.image) for f in frames] == list(range(len(frames)))
    for f in frames:  # whole frames, none made up
        err = np.abs(f.image.astype(np.int16) - frame_image(f.sequence, 160, 120))
        assert err.mean() < 3.0, f.sequence
    assert [f.timestamp for f in frames] == pytest.approx(times[:len(frames)])
    code, _, err = _cli(capsys, "--store", str(tmp_path / "s"), "ingest", str(cut))
    assert code == 1 and f"pass --end {found.group(1)} " in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("fps", [None, 5.0])
def test_frames_before_the_first_key_frame_are_counted(
    tmp_path: Path, store: Any, capsys: pytest.CaptureFixture[str], fps: float | None,
) -> None:
    """A stream cut from a longer recording starts between key frames: the decoder drops
    the frames before the first one silently, and nothing said so. The root's stats
    count them (frames_undecodable) and the CLI warns."""
    whole, head = tmp_path / "whole.ts", tmp_path / "head.ts"
    write_video(whole, 60, size=(160, 120), gop=20)
    data = whole.read_bytes()
    head.write_bytes(data[len(data) // 10 // 188 * 188:])  # a packet boundary
    with av.open(str(head)) as container:  # the reference: packets before the first key
        keys = [p.is_keyframe for p in container.demux(video=0) if p.size]
    before, total = keys.index(True), len(keys)
    assert 0 < before < 20
    tl = store.ingest_video(head, fps=fps)
    stats = store.get_checkpoint(tl.root_checkpoint_id).stats
    assert stats["frames_undecodable"] == before
    assert stats["frames_decoded"] == total - before
    frames = store.get_timeline_frames(tl.id)
    assert read_number(frames[0].image) % 20 == 0  # the first stored is a key frame
    code, out, err = _cli(capsys, "--store", str(tmp_path / "s"), "ingest", str(head),
                          "--json")
    assert code == 0 and json.loads(out)["undecodable"] == before
    assert f"warning: ingest: {before} frames of {head} before its first key frame" in err
    whole_tl = store.ingest_video(whole, fps=fps)  # a whole file: none
    assert store.get_checkpoint(whole_tl.root_checkpoint_id).stats["frames_undecodable"] == 0


def _keyless(tmp_path: Path, codec: str = "libx264") -> Path:
    """A .ts cut from the middle of a recording with one key frame, at its start: the
    piece holds no key frame (tested here, so that the premise holds)."""
    whole, piece = tmp_path / f"whole-{codec}.ts", tmp_path / f"piece-{codec}.ts"
    write_video(whole, 40, size=(64, 48), codec=codec, gop=100)
    data = whole.read_bytes()
    piece.write_bytes(data[len(data) // 3 // 188 * 188:])  # a packet boundary
    with av.open(str(piece)) as container:
        keys = [p.is_keyframe for p in container.demux(video=0) if p.size]
    assert keys and not any(keys)
    return piece


@pytest.mark.parametrize("codec", ["libx264", "mpeg2video", "libx265"])
@pytest.mark.parametrize("start", [None, 1.0])
def test_a_stream_with_no_key_frame_is_told_so(
    tmp_path: Path, store: Any, codec: str, start: float | None,
) -> None:
    """Not one packet is a key frame, so nothing decodes: H.264 and MPEG-2 failed with
    "damaged or truncated: decoding failed: Invalid data found when processing input",
    HEVC with "a video stream with no frames in it". Both now say what is missing."""
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV has no {codec} encoder")
    piece = _keyless(tmp_path, codec)
    before = listing(store)
    with pytest.raises(InvalidInputError, match="has no key frame to start decoding from: "
                                                r"none of its \d+ video packets is one"):
        store.ingest_video(piece, fps=None, start=start)
    assert listing(store) == before


def test_a_start_seeks_in_a_stream_that_starts_between_key_frames(
        tmp_path: Path, store: Any) -> None:
    """start >= 1 s seeks; in a .ts cut from a longer recording there is no key frame
    before that time's, FFmpeg's seek went to the end of the file, and the ingest said
    "no frames of F in [1 s, end)" though the video lasts 1.7 s past it."""
    whole, head = tmp_path / "whole.ts", tmp_path / "head.ts"
    write_video(whole, 60, size=(160, 120), gop=20)
    data = whole.read_bytes()
    head.write_bytes(data[len(data) * 3 // 10 // 188 * 188:])
    every = store.get_timeline_frames(store.ingest_video(head, fps=None).id)
    tl = store.ingest_video(head, fps=None, start=1.0)
    frames = store.get_timeline_frames(tl.id)
    want = [read_number(f.image) for f in every if f.timestamp >= 1.0 - TOL]
    assert want and [read_number(f.image) for f in frames] == want


def test_a_ts_cut_on_a_packet_boundary_is_not_told_from_a_short_one(
        tmp_path: Path, store: Any) -> None:
    """Guard of what docs/video.md says: a .ts that ends on a packet boundary reads as a
    shorter file (MPEG-TS states no length): its whole frames are ingested."""
    whole, cut = tmp_path / "whole.ts", tmp_path / "cut.ts"
    write_video(whole, 50, size=(64, 48))
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2 // 188 * 188])
    tl = store.ingest_video(cut, fps=None)
    assert 10 < tl.frame_count < 50


@pytest.mark.parametrize("fps", [5.0, None])
def test_recordings_joined_end_to_end_are_refused_not_cut_short(
    tmp_path: Path, store: Any, fps: float | None,
) -> None:
    """`cat a.ts b.ts` (camera segments) restarts the clock halfway: sampled by time, every
    frame of b was silently dropped (a 4 s file gave 2 s of timeline); with fps=None the
    timestamps went 0 .. 1.96, 0 .. 1.96."""
    import re

    a, b, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "joined.ts"
    times = write_video(a, 50)
    write_video(b, 50)
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    before = listing(store)
    with pytest.raises(InvalidInputError, match=r"go back from 1\.960 s to 0\.000 s") as info:
        store.ingest_video(joined, fps=fps)
    assert str(joined) in str(info.value)
    assert listing(store) == before
    found = re.search(r"end=([0-9.]+) ingests what comes before", str(info.value))
    assert found, str(info.value)
    tl = store.ingest_video(joined, fps=fps, end=float(found.group(1)))
    frames = store.get_timeline_frames(tl.id)
    want = expected(times, fps, 0.0, float(found.group(1)))
    assert [read_number(f.image) for f in frames] == list(want.values())


def test_a_still_image_is_refused_but_an_animated_gif_is_a_video(
    bad_files: dict[str, Path], tmp_path: Path, store: Any,
) -> None:
    """FFmpeg opens a PNG or JPEG as a one-frame video: ingest stored it as a timeline."""
    from PIL import Image

    for still in ("png", "jpeg"):
        with pytest.raises(InvalidInputError, match="still image"):
            store.ingest_video(bad_files[still])
    gif = tmp_path / "anim.gif"
    images = [Image.fromarray(frame_image(i, 64, 48)) for i in range(4)]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=100, loop=0)
    tl = store.ingest_video(gif, fps=None)
    assert tl.frame_count == 4 and tl.source_info["codec"] == "gif"
    assert [f.timestamp for f in store.frame_index(tl.id)] == pytest.approx([0, .1, .2, .3])


@pytest.mark.parametrize("kwargs, match", [
    ({"fps": 0}, "fps"), ({"fps": -2}, "fps"), ({"fps": float("nan")}, "fps"),
    ({"fps": "2"}, "fps"), ({"start": 1.0, "end": 1.0}, "end"), ({"start": 2, "end": 1}, "end"),
    ({"start": -1}, "start"), ({"end": float("inf")}, "end"), ({"max_frames": 0}, "max_frames"),
    ({"max_frames": 2.5}, "max_frames"), ({"skip_similar": 65}, "skip_similar"),
    ({"chunk_seconds": 0}, "chunk_seconds"), ({"codec": "gif"}, "codec"),
    ({"quality": 0}, "quality"), ({"start": 30.0}, "no frames"),
    ({"start": 1.005, "end": 1.03}, "no frames"), ({"workers": 0}, "workers"),
    ({"progress": "yes"}, "progress"), ({"source_asset_id": 5}, "source_asset_id"),
])
def test_bad_arguments_are_typed_errors_and_write_nothing(
    videos: Any, store: Any, kwargs: dict[str, Any], match: str,
) -> None:
    path = videos["cfr-libx264"][0]
    before = listing(store)
    with pytest.raises(InvalidInputError, match=match) as info:
        store.ingest_video(path, **kwargs)
    if match not in ("codec", "quality", "workers", "progress", "source_asset_id"):
        assert str(path) in str(info.value)
    assert listing(store) == before


def test_png_takes_no_quality(videos: Any, store: Any) -> None:
    """ingest_video(codec="png", quality=50) was accepted and meant nothing (PNG is
    lossless); the CLI refused --codec png --quality 50 already."""
    path = videos["cfr-libx264"][0]
    before = listing(store)
    with pytest.raises(InvalidInputError, match=r"quality=50 is for codec='jpeg': png is "
                                                 r"lossless"):
        store.ingest_video(path, codec="png", quality=50)
    assert listing(store) == before
    assert store.ingest_video(path, codec="png", max_frames=1).frame_count == 1
    assert store.ingest_video(path, quality=90, max_frames=1).frame_count == 1  # jpeg's


def test_file_names_with_a_colon_are_local_files(videos: Any, store: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg reads "name:rest" as a protocol: a camera's cam-2024-05-01T10:00:00.mp4 was
    refused ("Protocol not found") and a file named concat:a.mp4 ingested a.mp4."""
    monkeypatch.chdir(tmp_path)
    src = videos["cfr-libx264"][0]
    Path("cam-2024-05-01T10:00:00.mp4").write_bytes(src.read_bytes())
    write_video("a.mp4", 5)
    Path("concat:a.mp4").write_bytes(src.read_bytes())  # 60 frames; a.mp4 has 5
    for name in ("cam-2024-05-01T10:00:00.mp4", "concat:a.mp4"):
        tl = store.ingest_video(name, fps=None)
        assert tl.source_video == name
        assert tl.frame_count == 60, name


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_phone_videos_are_stored_upright(tmp_path: Path, store: Any,
                                                 degrees: int) -> None:
    """A phone held upright records landscape pixels and a display matrix that turns
    them 90 degrees clockwise; players and the ffmpeg command show them turned. Ingest
    stored them as coded: a portrait video's frames lay on their side."""
    path = tmp_path / f"phone-{degrees}.mp4"
    times = write_video(path, 6, size=(64, 48), rotation=degrees)
    tl = store.ingest_video(path, fps=None, codec="png")
    info = tl.source_info
    assert info["rotation"] == degrees
    upright = (48, 64) if degrees == 180 else (64, 48)  # (height, width) as displayed
    assert (info["height"], info["width"]) == upright
    frames = store.get_timeline_frames(tl.id)
    assert [f.timestamp for f in frames] == pytest.approx(times)
    for (_, coded), f in zip(iter_decoded(path), frames, strict=True):
        assert f.image.shape == (*upright, 3)
        assert np.array_equal(f.image, np.rot90(coded, -degrees // 90))  # clockwise
        assert f.perceptual_hash == perceptual_hash(f.image)


@pytest.mark.parametrize("codec, ext", [("libx264", "h264"), ("libx265", "hevc")])
def test_raw_elementary_streams_are_timed_at_their_frame_rate(
    tmp_path: Path, store: Any, codec: str, ext: str,
) -> None:
    """A raw .h264 / .hevc stream (a camera's or a Raspberry Pi's) has no timestamps at
    all: it was refused ("its video frames carry no timestamps"); frame i is at i / rate."""
    path = tmp_path / f"camera.{ext}"
    options = {"x265-params": "log-level=error"} if codec == "libx265" else None
    times = write_video(path, 30, codec=codec, options=options)
    reference = decoded(path)
    every = store.ingest_video(path, fps=None)
    check_timeline(store, every, times, reference, expected(times, None))
    assert every.source_info["duration"] == pytest.approx(1.2)
    window = store.ingest_video(path, fps=5, start=0.5, end=1.0)
    check_timeline(store, window, times, reference, expected(times, 5, 0.5, 1.0))


@pytest.mark.parametrize("kwargs, flag", [
    ({"fps": 1e300}, "--fps"), ({"fps": 1e19}, "--fps"),
    ({"chunk_seconds": 1e-300}, "--chunk-seconds"), ({"chunk_seconds": 5e-324}, "--chunk-seconds"),
])
def test_numbers_past_int64_are_refused_naming_the_file_and_argument(
    videos: Any, store: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    kwargs: dict[str, float], flag: str,
) -> None:
    """fps=1e300 gave 'frame 1: sequence 1000...(300 digits) does not fit in 64 bits',
    naming neither the file nor the argument (and --fps 1e308 an OverflowError)."""
    path, _ = videos["cfr-libx264"]  # 2.4 s: at 1e19 fps only frames after 0.92 s overflow
    before = listing(store)
    (name,) = kwargs
    with pytest.raises(InvalidInputError, match=f"{name}=.*64-bit") as info:
        store.ingest_video(path, **kwargs)
    assert str(path) in str(info.value) and len(str(info.value)) < 300
    assert listing(store) == before
    root = tmp_path / "fresh"
    code, _, err = _cli(capsys, "--store", str(root), "ingest", str(path), flag,
                        repr(kwargs[name]))
    assert code == 1 and flag in err and str(path) in err and "64-bit" in err
    assert not root.exists()  # refused before the store was created
    # a high rate whose numbers fit is fine: every frame is kept, the last as 9.6e16
    tl = store.ingest_video(path, fps=1e17, end=1.0)
    assert tl.frame_count == 25


def test_numbers_past_int64_in_a_stream_of_unknown_length(tmp_path: Path, store: Any) -> None:
    """A raw stream states no length: the frame that overflows is refused as it comes."""
    path = tmp_path / "camera.h264"
    write_video(path, 10)
    before = listing(store)
    # frame 1 (0.04 s) answers instant 1; frame 2 (0.08 s) gets the next unanswered one
    with pytest.raises(InvalidInputError, match=r"fps=3e\+20 gives the frame at 0.080 s"):
        store.ingest_video(path, fps=3e20)
    assert listing(store) == before


def test_a_file_name_that_is_not_utf8_is_ingested(
    videos: Any, store: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A Latin-1 name (b"caf\xe9.mp4") reaches Python as lone surrogates (sys.argv,
    os.listdir): 'localckpt ingest' refused it ("holds a lone surrogate, which is not
    valid Unicode") after creating the store, and so did ingest_video(str)."""
    named = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.mp4")
    Path(named).write_bytes(videos["cfr-libx264"][0].read_bytes())
    tl = store.ingest_video(named, fps=None)
    assert tl.frame_count == 60 and tl.source_video.endswith("caf\ufffd.mp4")
    root = str(tmp_path / "s")
    code, _, err = _cli(capsys, "--store", root, "ingest", named)
    assert code == 0, err
    with localckpt.open(root) as cli_store:
        (made,) = cli_store.list_timelines()
        assert made.frame_count == 5 and made.source_video.endswith("caf\ufffd.mp4")
    with pytest.raises(InvalidInputError, match="surrogate"):  # no file name decodes to it
        store.ingest_video("\ud800.mp4")


def test_a_text_mode_file_or_other_object_is_refused(videos: Any, store: Any) -> None:
    with open(videos["cfr-libx264"][0]) as text, pytest.raises(InvalidInputError, match="'rb'"):
        store.ingest_video(text)
    with pytest.raises(InvalidInputError, match="path"):
        store.ingest_video(42)
    assert store.list_timelines() == []


# -- frames that are never kept are never decoded -------------------------------------------

# Streams with B-frames that no frame references (x264 and x265 B-pyramids, MPEG-2): the
# decoder skips those the sampler can never keep. Picks and counts must not change.
BFRAMES: dict[str, tuple[str, dict[str, str]]] = {
    "libx264": ("mp4", {"x264-params": "bframes=3:b-adapt=0:b-pyramid=normal"}),
    "libx265": ("mp4", {"x265-params": "bframes=4:b-adapt=0:b-pyramid=1:log-level=error"}),
    "mpeg2video": ("ts", {"bf": "2"}),
}


@pytest.fixture(scope="module")
def bframe_videos(tmp_path_factory: pytest.TempPathFactory,
                  ) -> dict[str, tuple[Path, list[float]]]:
    """Each B-frame codec at 25 fps (gop 12, so start 1.3 seeks), and with the variable
    frame times (first PTS 0.7 s) where the codec takes them (MPEG-2 does not)."""
    root = tmp_path_factory.mktemp("bframes")
    made = {}
    for codec, (ext, options) in BFRAMES.items():
        path = root / f"cfr-{codec}.{ext}"
        made[f"cfr-{codec}"] = (path, write_video(path, 60, codec=codec, gop=12,
                                                  options=options))
        if codec != "mpeg2video":
            path = root / f"vfr-{codec}.{ext}"
            made[f"vfr-{codec}"] = (path, write_video(path, times=VFR_TIMES, codec=codec,
                                                      first_pts=0.7, options=options))
    return made


def _undecoded(path: Path, sampler: Sampler) -> tuple[list[float], list[float]]:
    """(times of the frames VideoSource yields, times it skipped) with that sampler."""
    from localckpt.videosource import VideoSource

    with VideoSource(str(path), str(path), None) as source:
        out = [float(t) for t, _ in source.frames(needless=Needless(sampler))]
        return out, [float(t) for t in source.skipped()]


@pytest.mark.parametrize("name", ["cfr-libx264", "vfr-libx264", "cfr-libx265", "vfr-libx265",
                                  "cfr-mpeg2video"])
def test_needless_b_frames_are_not_decoded_and_picks_do_not_change(
    bframe_videos: dict[str, tuple[Path, list[float]]], store: Any, name: str,
) -> None:
    path, times = bframe_videos[name]
    reference = decoded(path)
    assert len(reference) == len(times)
    for fps in (2.0, 7.5, 25, None):
        tl = store.ingest_video(path, fps=fps)
        want = expected(times, fps)
        check_timeline(store, tl, times, reference, want)
        stats = store.get_checkpoint(tl.root_checkpoint_id).stats
        assert stats["frames_decoded"] == len(times) and stats["frames_kept"] == len(want)
    # the decoder did skip frames at 2 fps: a quarter or more of them, none of the kept ones
    out, skipped = _undecoded(path, Sampler(Fraction(2)))
    assert len(skipped) >= len(times) // 4, (len(skipped), len(times))
    assert sorted(out + skipped) == pytest.approx(times, abs=1e-6)
    kept = {round(times[j], 6) for j in expected(times, 2.0).values()}
    assert kept <= {round(t, 6) for t in out}
    # every frame when every frame is kept
    out, skipped = _undecoded(path, Sampler(None))
    assert skipped == [] and out == pytest.approx(times, abs=1e-6)


@pytest.mark.parametrize("window, max_frames", [((1.3, 2.1), None), ((0.3, None), 3),
                                                ((1.0, None), None)])
def test_needless_frames_in_a_window_are_counted_as_before(
    bframe_videos: dict[str, tuple[Path, list[float]]], store: Any,
    window: tuple[float, float | None], max_frames: int | None,
) -> None:
    """start past 1 s seeks; end and max_frames stop early: frames_decoded still counts
    every frame of the window up to the stop, decoded or skipped."""
    path, times = bframe_videos["cfr-libx264"]
    start, end = window
    tl = store.ingest_video(path, fps=2, start=start, end=end, max_frames=max_frames)
    want = expected(times, 2, start, end)
    if max_frames is not None:
        want = dict(sorted(want.items())[:max_frames])
    check_timeline(store, tl, times, decoded(path), want)
    stop = times[max(want.values())] if max_frames is not None else math.inf
    in_window = sum(1 for t in times if t >= start - TOL and (end is None or t < end - TOL)
                    and t <= stop)
    assert store.get_checkpoint(tl.root_checkpoint_id).stats["frames_decoded"] == in_window


def test_other_decoders_decode_every_frame(videos: dict[str, tuple[Path, list[float]]]) -> None:
    """VP9 and MPEG-4 part 2 are not on the list of decoders whose skipping is checked."""
    for name in ("cfr-libvpx-vp9", "cfr-mpeg4"):
        path, times = videos[name]
        out, skipped = _undecoded(path, Sampler(Fraction(2)))
        assert skipped == [] and out == pytest.approx(times, abs=1e-6)


def _sampled(sampler: Sampler, times: list[Fraction], left_out: set[int]) -> dict[int, int]:
    """index -> sequence of the frames sampler keeps, never shown the left-out ones."""
    kept = {}
    for i, t in enumerate(times):
        if sampler.past_end(t):
            break
        if i not in left_out and (seq := sampler.sequence(t)) is not None:
            kept[i] = seq
    return kept


@settings(max_examples=300, deadline=None)
@given(
    fps=st.sampled_from([None, 1, 2, Fraction(15, 2), Fraction(30000, 1001), 25, 60]),
    start=st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(13, 10)]),
    length=st.sampled_from([None, Fraction(1, 3), Fraction(1), Fraction(2)]),
    data=st.data(),
)
def test_needless_never_names_a_frame_the_sampler_keeps(
    fps: Any, start: Fraction, length: Fraction | None, data: st.DataObject,
) -> None:
    """Frame times anywhere on a 0.1 ms grid or within 2 ms of a sampling instant (so
    some fall inside the 1 ms tolerance), fed to Needless in a decode order that moves
    each frame up to 5 places later: no frame it calls needless is one the sampler
    keeps, and a sampler never shown them keeps the same frames under the same sequence
    numbers."""
    rate = None if fps is None else Fraction(fps)
    step = Fraction(1, 25) if rate is None else 1 / rate
    anywhere = st.integers(0, 40_000).map(lambda k: Fraction(k, 10_000))
    near = st.tuples(st.integers(0, 12), st.integers(-20, 20)).map(
        lambda kd: max(Fraction(0), start + kd[0] * step + Fraction(kd[1], 10_000)))
    times = sorted(set(data.draw(st.lists(st.one_of(anywhere, near), min_size=1,
                                          max_size=60))))
    delays = data.draw(st.lists(st.integers(0, 5), min_size=len(times),
                                max_size=len(times)))
    end = None if length is None else start + length
    want = _sampled(Sampler(rate, start, end), times, set())
    order = sorted(range(len(times)), key=lambda i: (i + delays[i], i))
    needless = Needless(Sampler(rate, start, end))
    skipped = {i for i in order if needless(times[i])}
    assert not skipped & want.keys()
    assert _sampled(Sampler(rate, start, end), times, skipped) == want


def test_needless_at_2_fps_of_25_fps_is_all_but_the_first_frame_of_each_interval() -> None:
    times = [Fraction(i, 25) for i in range(50)]
    needless = Needless(Sampler(Fraction(2), end=Fraction(9, 5)))
    assert [i for i, t in enumerate(times) if not needless(t)] == [0, 13, 25, 38]


def test_rgbx_view_encodes_in_place_to_the_same_bytes() -> None:
    """Ingest hands the encoder rgbx[:, :, :3]: Pillow reads it in place, and the JPEG
    and PNG bytes are those of the same pixels as a plain RGB array."""
    from localckpt.frames import encode, to_pil

    rng = np.random.default_rng(3)
    rgbx = rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)
    view = rgbx[:, :, :3]
    plain = np.ascontiguousarray(view)
    assert to_pil(view).mode == "RGBX" and to_pil(plain).mode == "RGB"
    for codec in ("jpeg", "png"):
        assert encode(view, codec) == encode(plain, codec)
    # views that are not the first three bytes of whole 4-byte pixels are copied as RGB
    wider = rng.integers(0, 256, (48, 70, 4), dtype=np.uint8)
    for other in (wider[:, :64, :3], rgbx[:, :, 1:], rgbx[:, :, 2::-1], rgbx[::2, :, :3]):
        assert to_pil(other).mode == "RGB"
        assert encode(other, "jpeg") == encode(np.ascontiguousarray(other), "jpeg")


# -- progress and the command line -------------------------------------------------------------


def test_progress_callback_sees_source_time(videos: Any, store: Any) -> None:
    path, times = videos["cfr-libx264"]
    seen: list[tuple[float, float | None]] = []
    store.ingest_video(path, fps=None, progress=lambda done, total: seen.append((done, total)))
    assert [d for d, _ in seen] == pytest.approx(times)
    assert {round(t, 6) for _, t in seen if t is not None} == {2.4} and seen[-1][1] is not None


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from localckpt.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_ingest_similar_ls_tree(videos: Any, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path, times = videos["vfr-mpeg4"]
    root = str(tmp_path / "cli-store")
    code, out, err = _cli(capsys, "--store", root, "ingest", str(path), "--fps", "4",
                          "--profile", "broadcast", "--chunk-seconds", "1", "--json")
    assert code == 0 and err == ""  # stderr is no terminal here: no progress bar
    report = json.loads(out)
    want = expected(times, 4)
    assert report["frames"] == len(want) and report["decoded"] == len(times)
    assert report["source_info"]["codec"] == "mpeg4"
    tid = report["timeline_id"]
    with localckpt.open(root) as store:
        assert [m.sequence for m in store.frame_index(tid)] == sorted(want)
        assert store.get_timeline(tid).profile_name == "broadcast"
        index = store.frame_index(tid)

    code, out, _ = _cli(capsys, "--store", root, "similar", tid[:8], "3", "--max-distance",
                        "64", "--limit", "4", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4 and rows[0] == {
        "sequence": 3, "distance": 0, "timestamp": index[3].timestamp, "chunk_id": 0,
        "perceptual_hash": index[3].perceptual_hash, "width": 320, "height": 240}
    assert [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)
    code, out, _ = _cli(capsys, "--store", root, "similar", tid, index[5].perceptual_hash)
    assert code == 0 and out.splitlines()[1].split()[0] == "5"

    code, out, _ = _cli(capsys, "--store", root, "ingest", str(path), "--fps", "all")
    assert code == 0 and out.splitlines()[-1].startswith("timeline ")
    assert "every frame" in out and f"{len(times)} decoded" in out
    code, out, _ = _cli(capsys, "--store", root, "ls")
    lines = out.splitlines()
    assert "LENGTH" in lines[0] and "FPS" in lines[0]
    length = f"{report['source_info']['duration']:.1f}s"
    assert length in ("2.7s", "2.8s")  # 0.7 + 2.71 + one frame, less the 0.7 s start
    assert lines[1].split()[2:4] == ["4", length] and lines[2].split()[2:4] == ["all", length]
    code, out, _ = _cli(capsys, "--store", root, "tree", tid)
    header = out.splitlines()[0]
    assert f"@ 4 fps, from {length} of video at " in header and " 320x240 mpeg4" in header

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = _cli(capsys, "--store", root, "ingest", str(path))
    assert code == 0 and "ingest" in err  # the bar, on a terminal

    for argv, said in ((["ingest", str(path), "--fps", "0"], "argument --fps: must be"),
                       (["similar", tid, "zz"], "perceptual hash"),
                       # the Python name: "sequence_or_hash must be ..."
                       (["similar", tid, "-1"], "'-1' is neither a frame's sequence number "
                                                "(0 or more")):
        with pytest.raises(SystemExit) as exit_:  # bad usage: exit 2 (was 1)
            _cli(capsys, "--store", root, *argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and said in err and "sequence_or_hash" not in err
    with localckpt.open(root) as store:
        assert len(store.list_timelines()) == 3


def test_cli_ingest_refuses_before_creating_nothing_on_bad_file(
    bad_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "fresh"
    code, _, err = _cli(capsys, "--store", str(root), "ingest", str(bad_files["audio-only"]))
    assert code == 1 and "no video stream" in err
    code, _, err = _cli(capsys, "--store", str(root), "ingest",
                        str(bad_files["audio-with-cover"]))
    assert code == 1 and "no video stream (its streams: audio, cover picture)" in err
    assert not root.exists()  # the file is checked before the store is created
    # a directory is said to be one (it was 'no video file DIR', as if missing), and
    # --workers past 64 is refused by the flag's check (it named workers=, after the
    # store was created)
    code, _, err = _cli(capsys, "--store", str(root), "ingest", str(bad_files["directory"]))
    assert code == 1 and "is a directory" in err
    with pytest.raises(SystemExit) as exit_:  # bad usage: exit 2 (was 1)
        _cli(capsys, "--store", str(root), "ingest", str(bad_files["long-mp4"]),
             "--workers", "65")
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "argument --workers: must be a whole number in 1..64, not '65'" in err
    assert not root.exists()
    # a pipe is said to be one, and an empty name to be empty: both were "no video file X"
    # (X empty for the one), as if the pipe were missing
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    code, _, err = _cli(capsys, "--store", str(root), "ingest", str(pipe))
    assert code == 1 and f"{pipe} is not a regular file (a pipe, a device or a socket)" in err
    for flag in ("--fps", "--end", "--start"):  # "must be a number above 0, not inf"
        with pytest.raises(SystemExit) as exit_:  # bad usage: exit 2 (was 1)
            _cli(capsys, "--store", str(root), "ingest", str(bad_files["long-mp4"]), flag,
                 "inf")
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and f"argument {flag}: must be a finite number " in err
    code, _, err = _cli(capsys, "--store", str(root), "ingest", "")
    assert code == 1 and "the video file name is empty" in err
    code, _, err = _cli(capsys, "--store", str(root), "ingest", str(tmp_path / "nope.mp4"))
    assert code == 1 and f"no video file {tmp_path / 'nope.mp4'}" in err
    assert not root.exists()



def _empty_track(path: Path) -> Path:
    """A Matroska file whose video track holds no frames (beside a second of audio)."""
    from localckpt.testing.videos import _add_audio, _silence

    with av.open(str(path), "w") as out:
        video: Any = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        _silence(out, _add_audio(out), 1.0)
        out.mux(video.encode(None))
    return path


def _tree(root: Path) -> list[str]:
    """Every path under root but SQLite's own side files (journal, lock)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not p.name.endswith(("-wal", "-shm", "-writers")))


@pytest.mark.parametrize("bad", ["truncated", "no-frames", "no-key-frame"])
def test_cli_ingest_failing_while_decoding_leaves_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str,
) -> None:
    """The file opens (header, video stream), so the store was created; then decoding
    failed (the data stops early, the track has no frame, or the decoder refuses frames
    that have no key frame before them) and the new store stayed: a directory with a
    marker, a catalog and objects/, the directories above it too."""
    if bad == "truncated":
        whole = tmp_path / "whole.mkv"
        write_video(whole, 50, codec="mpeg4", size=(64, 48))
        video, said = _truncated(whole, tmp_path / "cut.mkv", 0.5), "is truncated"
    elif bad == "no-key-frame":
        video, said = _keyless(tmp_path), "has no key frame to start decoding from"
    else:
        video, said = _empty_track(tmp_path / "empty.mkv"), "no frames in it"
    nested = tmp_path / "new" / "dirs" / "store"
    code, _, err = _cli(capsys, "--store", str(nested), "ingest", str(video))
    assert code == 1 and str(video) in err and said in err
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty-dir"  # an empty directory is a new store: it stays, empty
    empty.mkdir()
    code, _, err = _cli(capsys, "--store", str(empty), "ingest", str(video))
    assert code == 1 and said in err and _tree(empty) == []
    # into a store that exists: nothing of the ingest stays, the store stays as it was
    kept = tmp_path / "kept"
    with localckpt.open(str(kept), create=True) as store:
        store.create_timeline("keep.mp4", "", [np.zeros((8, 8, 3), np.uint8)])
        before = listing(store)
    files = _tree(kept)
    code, _, err = _cli(capsys, "--store", str(kept), "ingest", str(video), "--fps", "all")
    assert code == 1 and said in err
    assert _tree(kept) == files
    with localckpt.open(str(kept)) as store:
        assert listing(store) == before


def test_a_new_store_someone_else_wrote_to_is_kept(tmp_path: Path) -> None:
    """Guard: the failed ingest takes back only a store nobody else used meanwhile (a
    file under objects/ is another process's frames or lease)."""
    from localckpt.cli.newstore import StoreIsNew

    root = tmp_path / "a" / "store"
    undo = StoreIsNew(str(root))
    assert undo.made == [str(root), str(tmp_path / "a")]
    with localckpt.open(str(root), create=True) as store:
        store.create_timeline("other.mp4", "", [np.zeros((8, 8, 3), np.uint8)])
    files = _tree(root)
    assert undo(InvalidInputError, None, None) is False  # the error is not swallowed
    assert _tree(root) == files
    undo.keep, frames = True, [p for p in root.rglob("*") if p.is_file()
                               and "objects" in p.parts]
    for p in frames:
        p.unlink()
    undo(InvalidInputError, None, None)  # kept: the command saw a timeline in it
    assert (root / "catalog.sqlite").exists()
    undo.keep = False
    undo(InvalidInputError, None, None)
    assert not (tmp_path / "a").exists()


def test_cli_ingest_failing_leaves_no_duckdb_file_and_no_new_objects_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed ingest took back a store directory it created, but not a DuckDB file it
    created (nor its .wal and FILE.objects/), nor a new local --objects DIR of any store."""
    video, said = _keyless(tmp_path), "has no key frame to start decoding from"
    stores = tmp_path / "stores"
    stores.mkdir()

    def fails(*flags: str) -> None:
        code, _, err = _cli(capsys, *flags, "ingest", str(video))
        assert code == 1 and said in err, err

    fails("--store", f"duckdb://{stores}/x.duckdb")  # its objects: x.duckdb.objects/
    assert _tree(stores) == []
    new = tmp_path / "new"  # --objects in directories that were not there
    fails("--store", f"duckdb://{stores}/x.duckdb", "--objects", str(new / "deep" / "objs"))
    fails("--store", str(stores / "emb"), "--objects", f"file://{new}/objs")
    monkeypatch.setenv("LOCALCKPT_OBJECTS", str(new / "env"))
    fails("--store", str(stores / "emb"))
    monkeypatch.delenv("LOCALCKPT_OBJECTS")
    assert _tree(stores) == [] and not new.exists()
    empty = tmp_path / "empty-objects"  # an empty directory stays, empty
    empty.mkdir()
    fails("--store", f"duckdb://{stores}/x.duckdb", "--objects", str(empty))
    assert _tree(empty) == [] and _tree(stores) == []
    # stores that exist stay as they were; a new objects directory given to one goes
    for url in (str(stores / "kept"), f"duckdb://{stores}/kept.duckdb"):
        with localckpt.open(url, create=True) as store:
            store.create_timeline("keep.mp4", "", [np.zeros((8, 8, 3), np.uint8)])
            before = listing(store)
        files = _tree(stores)
        fails("--store", url)
        fails("--store", url, "--objects", str(new / "objs"))
        assert _tree(stores) == files and not new.exists()
        with localckpt.open(url) as store:
            assert listing(store) == before


def test_cli_ingest_failing_into_a_new_postgresql_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg_dsn: str,
) -> None:
    """A new local --objects DIR of a PostgreSQL store stayed after a failed ingest; it
    goes now. The schema the ingest created stays (docs/cli.md says why), with no
    timeline in it, and the next ingest uses it."""
    import uuid

    from conftest import _drop_schema

    video, said = _keyless(tmp_path), "has no key frame to start decoding from"
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url, objects = f"{pg_dsn}?schema={schema}", tmp_path / "new" / "objects"
    try:
        code, _, err = _cli(capsys, "--store", url, "--objects", str(objects), "ingest",
                            str(video))
        assert code == 1 and said in err, err
        assert not (tmp_path / "new").exists()
        with localckpt.open(url, objects=str(objects)) as store:
            assert store.list_timelines() == []
        good = tmp_path / "good.ts"
        write_video(good, 10, size=(64, 48))
        code, _, err = _cli(capsys, "--store", url, "--objects", str(objects), "ingest",
                            str(good))
        assert code == 0, err
        with localckpt.open(url, objects=str(objects)) as store:
            assert len(store.list_timelines()) == 1
    finally:
        _drop_schema(pg_dsn, schema)


def test_new_objects_with_a_file_keep_the_new_catalog_too(tmp_path: Path) -> None:
    """Guard: a file in the new objects directory (another process's frames or lease)
    keeps it, and the new DuckDB catalog with it, whatever the catalog says; with the
    objects taken back, a catalog with timelines in it stays (keep)."""
    from localckpt.cli.newstore import DuckdbIsNew, NewStore, ObjectsAreNew

    path, objects = tmp_path / "x.duckdb", tmp_path / "o" / "objs"
    undo = NewStore(DuckdbIsNew(str(path)), ObjectsAreNew(str(objects)))
    with localckpt.open(f"duckdb://{path}", objects=str(objects), create=True) as store:
        store.create_timeline("other.mp4", "", [np.zeros((8, 8, 3), np.uint8)])
    files = _tree(tmp_path)
    assert undo(InvalidInputError, None, None) is False  # the error is not swallowed
    assert _tree(tmp_path) == files
    for p in objects.rglob("*"):
        if p.is_file():
            p.unlink()
    undo.keep = True  # the command saw a timeline in it
    undo(InvalidInputError, None, None)
    assert path.exists() and not (tmp_path / "o").exists()
    undo.keep = False
    undo(InvalidInputError, None, None)
    assert _tree(tmp_path) == []


def test_cli_ingest_stopped_by_sigterm_leaves_nothing(tmp_path: Path) -> None:
    """SIGTERM (kill, docker stop, a CI timeout) ended the process where it was: the
    ingest's temporary shards and its lease stayed until gc, which spares a lease for
    its TTL. It now unwinds as Ctrl-C does: exit status 143, nothing left behind."""
    import signal
    import subprocess
    import time

    video = tmp_path / "long.mp4"
    write_video(video, 400, size=(640, 360))
    root = tmp_path / "store"
    with localckpt.open(str(root), create=True) as store:
        store.create_timeline("keep.mp4", "", [np.zeros((8, 8, 3), np.uint8)])
        before = listing(store)
    proc = subprocess.Popen(
        [sys.executable, "-m", "localckpt.cli", "--store", str(root), "ingest", str(video),
         "--fps", "all", "--codec", "png"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list(root.rglob("ingest.lease")):  # writing frames
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with localckpt.open(str(root)) as store:
        assert listing(store) == before  # no timeline, no shard, no temp file, no lease


@pytest.mark.parametrize("degrees, stated", [(0, "8:9"), (90, "9:8")])
def test_non_square_pixels_are_recorded_and_frames_kept_as_coded(
        tmp_path: Path, store: Any, degrees: int, stated: str) -> None:
    """NTSC DV, DVD and broadcast SD video have non-square pixels (a 720x480 frame shown
    4:3): frames are stored at the coded size, as decoders give them to a pipeline, and
    source_info says how wide a pixel is shown (turned with the frames)."""
    path = tmp_path / f"dv-{degrees}.mp4"
    write_video(path, 4, size=(64, 48), rotation=degrees, pixel_aspect=Fraction(8, 9))
    tl = store.ingest_video(path, fps=None, codec="png")
    info = tl.source_info
    assert info["sample_aspect_ratio"] == stated
    from localckpt.render import render_tree

    header = render_tree(tl, store.checkpoints(tl.id)).splitlines()[0]
    assert f"x{info['height']} ({stated} pixels) h264" in header, header
    size = (48, 64) if degrees else (64, 48)
    assert (info["width"], info["height"]) == size
    plain = tmp_path / "square.mp4"
    write_video(plain, 2, size=(64, 48))
    assert store.ingest_video(plain, fps=None).source_info["sample_aspect_ratio"] in (
        None, "1:1")  # what libx264 states for square pixels
