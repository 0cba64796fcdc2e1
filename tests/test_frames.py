"""Frame codec (localckpt.frames) and shards (localckpt.shards): round trips, validation,
all-or-nothing writes, the Parquet index as other tools see it, ranged reads, corruption."""

from __future__ import annotations

import base64
import io
import itertools
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import localckpt
from localckpt.errors import (
    BackendUnavailableError,
    CorruptDataError,
    InvalidInputError,
    NotFoundError,
)
from localckpt.frames import coerce_frames, decode, encode, perceptual_hash
from localckpt.objects import Objects
from localckpt.shards import (
    _SCHEMA,
    FrameReader,
    delete_frames,
    frame_keys,
    index_key,
    shard_key,
    write_frames,
)
from localckpt.types import Frame, FrameMeta

# -- helpers --------------------------------------------------------------------------------


def smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth image (gradients and a low-frequency wave): what JPEG handles well."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    k = 1 + seed % 7
    img = np.stack([
        255 * xx / max(w - 1, 1),
        255 * yy / max(h - 1, 1),
        128 + 100 * np.sin((xx + yy) / (8 * k) + seed),
    ], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def pattern(h: int, w: int, seed: int) -> np.ndarray:
    """Random low-frequency content (a few sinusoids per channel), like distinct scenes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.full((h, w, 3), 128.0, np.float32)
    for _ in range(4):
        fx, fy = rng.uniform(0.5, 4, 2) * 2 * np.pi
        img += rng.uniform(-40, 40, 3) * np.sin(fx * xx / w + fy * yy / h + rng.uniform(0, 6))[
            ..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def noise(n: int, h: int = 12, w: int = 16, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.fixture
def mem() -> Objects:
    return Objects.from_url(f"memory://frames-test-{uuid.uuid4().hex}")


@pytest.fixture
def local(tmp_path: Path) -> Objects:
    return Objects.from_url(str(tmp_path / "objects"))


@pytest.fixture(params=["memory", "local"])
def objs(request: pytest.FixtureRequest, tmp_path: Path) -> Objects:
    if request.param == "memory":
        return Objects.from_url(f"memory://frames-test-{uuid.uuid4().hex}")
    return Objects.from_url(str(tmp_path / "objects"))


def all_files(objs: Objects) -> list[str]:
    """Every file under the store root, temp files included (local stores)."""
    if objs.is_local:
        return sorted(str(p) for p in Path(objs.root).rglob("*") if p.is_file())
    return objs.list("")


class CountingObjects(Objects):
    """Objects that count read requests and can fail the n-th put_file."""

    def __init__(self, inner: Objects, fail_put_file_at: int | None = None) -> None:
        super().__init__(inner.fs, inner.root)
        self.calls: list[str] = []
        self.fail_at = fail_put_file_at
        self.puts = 0

    def get(self, key: str) -> bytes:
        self.calls.append("get")
        return super().get(key)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        self.calls.append("get_range")
        return super().get_range(key, start, end)

    def get_ranges(self, key: str, ranges: Any) -> list[bytes]:
        self.calls.extend(["get_ranges"] * len(ranges))
        return super().get_ranges(key, ranges)

    def put_file(self, local_file: str, key: str) -> None:
        self.puts += 1
        if self.puts == self.fail_at:
            raise BackendUnavailableError("simulated upload failure")
        super().put_file(local_file, key)


# -- codec ----------------------------------------------------------------------------------


@given(h=st.integers(1, 24), w=st.integers(1, 24), seed=st.integers(0, 2**32 - 1))
def test_png_round_trip_is_exact(h: int, w: int, seed: int) -> None:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = decode(encode(img, "png"), "png")
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)
    assert np.array_equal(out, img)


@given(h=st.integers(16, 64), w=st.integers(16, 64), seed=st.integers(0, 1000))
def test_jpeg_round_trip_is_close_on_smooth_images(h: int, w: int, seed: int) -> None:
    """JPEG q90 on smooth images: mean absolute error < 3 (of 255), max channel error < 40."""
    img = smooth(h, w, seed)
    out = decode(encode(img, "jpeg", 90), "jpeg")
    assert out.shape == img.shape and out.dtype == np.uint8
    err = np.abs(out.astype(np.int16) - img.astype(np.int16))
    assert err.mean() < 3
    assert err.max() < 40


def test_codec_arguments_are_validated() -> None:
    img = smooth(8, 8)
    for codec in ("webp", "JPEG", ""):
        with pytest.raises(InvalidInputError, match="unknown codec"):
            encode(img, codec)
        with pytest.raises(InvalidInputError, match="unknown codec"):
            decode(b"x", codec)
    for quality in (0, 96, 50.0, True):
        with pytest.raises(InvalidInputError, match="quality"):
            encode(img, "jpeg", quality)  # type: ignore[arg-type]
    assert encode(img, "jpeg", 1)[:2] == b"\xff\xd8"
    with pytest.raises(InvalidInputError, match="dtype"):
        encode(img.astype(np.float32))


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff" + b"\0" * 50])
def test_decoding_garbage_is_corrupt_data(data: bytes) -> None:
    for codec in ("jpeg", "png"):
        with pytest.raises(CorruptDataError):
            decode(data, codec)


def test_decode_checks_the_format_and_truncation() -> None:
    img = smooth(16, 16)
    with pytest.raises(CorruptDataError):
        decode(encode(img, "png"), "jpeg")  # PNG bytes are not a JPEG frame
    with pytest.raises(CorruptDataError):
        decode(encode(img, "jpeg")[:-40], "jpeg")


def test_decoded_images_are_writable_rgb() -> None:
    gray = io.BytesIO()
    Image.fromarray(np.full((5, 7), 77, np.uint8)).save(gray, "JPEG")
    out = decode(gray.getvalue(), "jpeg")
    assert out.shape == (5, 7, 3) and out.flags.writeable
    out[0, 0] = 0


# -- perceptual hash ------------------------------------------------------------------------


def test_perceptual_hash_is_stable_and_discriminates() -> None:
    images = [pattern(72, 128, seed) for seed in range(12)]
    images += [np.ascontiguousarray(images[0][:, ::-1]), np.ascontiguousarray(images[0][::-1])]
    hashes = [perceptual_hash(img) for img in images]
    assert all(re.fullmatch("[0-9a-f]{16}", h) for h in hashes), hashes
    assert len(set(hashes)) == len(hashes)
    assert hashes == [perceptual_hash(img.copy()) for img in images]
    # near-duplicates (a JPEG round trip, a little noise) stay near
    for img, h in zip(images, hashes, strict=True):
        assert hamming(h, perceptual_hash(decode(encode(img, "jpeg", 75), "jpeg"))) <= 6
    # a horizontal mirror flips most brightening pairs
    assert hamming(hashes[0], hashes[12]) > 20
    assert min(hamming(a, b) for a, b in itertools.combinations(hashes, 2)) >= 4


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 500, 3), (500, 1, 3), (7, 9, 3)])
def test_perceptual_hash_handles_tiny_and_thin_images(shape: tuple[int, int, int]) -> None:
    assert len(perceptual_hash(np.zeros(shape, np.uint8))) == 16


def reference_dhash(image: np.ndarray) -> str:
    """dHash by its definition, written independently: the gray image averaged over an
    8 x 9 grid of equal blocks; bit (r, c) is set when block (r, c + 1) is brighter than
    block (r, c); bits row-major, most significant first, as 16 hex digits."""
    gray = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    h, w = gray.shape
    cells = np.array([[gray[r * h // 8:(r + 1) * h // 8, c * w // 9:(c + 1) * w // 9].mean()
                       for c in range(9)] for r in range(8)])
    bits = (cells[:, 1:] > cells[:, :-1]).ravel()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def blocky(seed: int, a: int, b: int) -> np.ndarray:
    """8 x 9 blocks of random colours (each a x b pixels), neighbours' grays >= 2 apart."""
    rng = np.random.default_rng(seed)
    while True:
        cells = rng.integers(0, 256, (8, 9, 3))
        gray = cells @ np.array([0.299, 0.587, 0.114])
        if np.abs(np.diff(gray, axis=1)).min() >= 2:
            return np.repeat(np.repeat(cells, a, axis=0), b, axis=1).astype(np.uint8)


@given(seed=st.integers(0, 2**32 - 1), a=st.integers(1, 40), b=st.integers(1, 40))
def test_perceptual_hash_is_dhash_on_block_images(seed: int, a: int, b: int) -> None:
    """Where blocks are uniform, every sampling of a block sees its colour: the hash must
    be exactly the definition's. (A hash that sampled only part of the image, say its top
    eight ninths, puts other blocks in its cells and fails here.)"""
    img = blocky(seed, a, b)
    assert perceptual_hash(img) == reference_dhash(img)
    assert perceptual_hash(np.asfortranarray(img)) == reference_dhash(img)  # strided path


@pytest.mark.parametrize("seed", range(6))
def test_perceptual_hash_is_near_dhash_on_photos(seed: int) -> None:
    """On smooth content the sampled cells are close to the block means: few bits differ."""
    for h, w in ((72, 128), (240, 320), (181, 97)):
        img = pattern(h, w, seed)
        assert hamming(perceptual_hash(img), reference_dhash(img)) <= 6


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("eighth", range(8))
def test_a_change_in_any_eighth_changes_the_hash(axis: int, eighth: int) -> None:
    """A new picture confined to one eighth of the rows (or of the columns) must show."""
    for seed in range(5):
        h, w = 240, 320
        img = pattern(h, w, seed)
        other = pattern(h, w, seed + 100)
        changed = img.copy()
        n = (h if axis == 0 else w) // 8
        band = slice(eighth * n, (eighth + 1) * n)
        if axis == 0:
            changed[band] = other[band]
        else:
            changed[:, band] = other[:, band]
        assert perceptual_hash(changed) != perceptual_hash(img), (axis, eighth, seed)
        assert perceptual_hash(changed) == reference_dhash(changed) or \
            hamming(perceptual_hash(changed), reference_dhash(changed)) <= 8


# -- coerce_frames --------------------------------------------------------------------------


def test_coerce_bare_arrays_and_frames() -> None:
    imgs = noise(3)
    got = list(coerce_frames(imgs, fps=4.0))
    assert [(f.sequence, f.timestamp, f.chunk_id) for f in got] == [(0, 0.0, 0), (1, 0.25, 0),
                                                                    (2, 0.5, 0)]
    assert [f.perceptual_hash for f in got] == [perceptual_hash(i) for i in imgs]
    assert all(f.image is i for f, i in zip(got, imgs, strict=True))  # no copy
    given_frame = Frame(7, 1.5, 3, "00ff00ff00ff00ff", imgs[0])
    f = next(coerce_frames([Frame(np.int64(9), 2, np.int32(1), "", imgs[1]), given_frame], 1.0))
    assert (f.sequence, f.timestamp, f.chunk_id) == (9, 2.0, 1)
    assert type(f.sequence) is int and type(f.timestamp) is float
    assert f.perceptual_hash == perceptual_hash(imgs[1])
    assert next(coerce_frames([given_frame], 1.0)) is given_frame


def test_coerce_is_lazy() -> None:
    def endless() -> Iterator[np.ndarray]:
        img = noise(1)[0]
        while True:
            yield img

    frames = coerce_frames(endless(), 1.0)
    assert [f.sequence for f in itertools.islice(frames, 3)] == [0, 1, 2]


def test_non_iterables_are_rejected_at_once() -> None:
    for bad in (None, 5, Frame):
        with pytest.raises(InvalidInputError, match="iterable"):
            coerce_frames(bad, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("fps", [0, -1.0, float("nan"), float("inf"), "2", None, True])
def test_bad_fps_is_rejected_at_once(fps: Any) -> None:
    with pytest.raises(InvalidInputError, match="fps"):
        coerce_frames(iter([]), fps)


_OK = np.zeros((6, 8, 3), np.uint8)
BAD_ITEMS: list[tuple[str, Any, str]] = [
    ("float dtype", _OK.astype(np.float32), "dtype"),
    ("uint16 dtype", _OK.astype(np.uint16), "dtype"),
    ("2-d", _OK[:, :, 0], "dimensions"),
    ("4-d", _OK[None], "dimensions"),
    ("rgba", np.zeros((6, 8, 4), np.uint8), "channels"),
    ("zero height", np.zeros((0, 8, 3), np.uint8), "zero height"),
    ("zero width", np.zeros((6, 0, 3), np.uint8), "zero height or width"),
    ("a string", "frame.jpg", "got str"),
    ("a list", _OK.tolist(), "got list"),
    ("None", None, "got NoneType"),
    ("duplicate", Frame(0, 0.0, 0, "", _OK), "duplicate sequence"),
    ("frame with bad image", Frame(9, 0.0, 0, "", _OK[:, :, 0]), "dimensions"),
    ("float sequence", Frame(1.5, 0.0, 0, "", _OK), "sequence"),  # type: ignore[arg-type]
    ("huge sequence", Frame(2**63, 0.0, 0, "", _OK), "64 bits"),
    ("negative sequence", Frame(-1, 0.0, 0, "", _OK), "sequence must be >= 0"),
    ("nan timestamp", Frame(9, float("nan"), 0, "", _OK), "timestamp"),
    ("bad chunk_id", Frame(9, 0.0, "a", "", _OK), "chunk_id"),  # type: ignore[arg-type]
    ("bad hash", Frame(9, 0.0, 0, None, _OK), "perceptual_hash"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("bad", "why"), [(b, w) for _, b, w in BAD_ITEMS],
                         ids=[n for n, _, _ in BAD_ITEMS])
def test_invalid_frame_midway_raises_and_leaves_nothing(
    objs: Objects, bad: Any, why: str, workers: int
) -> None:
    good = noise(5, 6, 8)
    frames = coerce_frames([*good, bad, *good], fps=2.0)
    with pytest.raises(InvalidInputError, match=f"frame 5: .*{why}"):
        write_frames(objs, "t1", frames, workers=workers, shard_frames=1, codec="png")
    assert all_files(objs) == []
    if objs.is_local:
        assert not Path(objs.root, "frames", "t1").exists()


def test_write_frames_takes_frames_only_and_rejects_empty_input(objs: Objects) -> None:
    with pytest.raises(InvalidInputError, match="frame 0: expected a Frame"):
        write_frames(objs, "t1", noise(2))  # type: ignore[arg-type]
    for empty in ([], iter(()), coerce_frames([], 1.0)):
        with pytest.raises(InvalidInputError, match="no frames"):
            write_frames(objs, "t1", empty)
    with pytest.raises(InvalidInputError, match="unknown codec"):
        write_frames(objs, "t1", coerce_frames(noise(1), 1.0), codec="gif")
    for bad_id in ("../x", "a/b", "", "é", "x" * 200):
        with pytest.raises(InvalidInputError, match="timeline id"):
            write_frames(objs, bad_id, coerce_frames(noise(1), 1.0))
    assert all_files(objs) == []


@pytest.mark.parametrize("fail_at", [1, 3])
@pytest.mark.parametrize("workers", [1, 2])
def test_io_failure_midway_leaves_nothing(
    objs: Objects, fail_at: int, workers: int
) -> None:
    flaky = CountingObjects(objs, fail_put_file_at=fail_at)
    with pytest.raises(BackendUnavailableError, match="simulated"):
        write_frames(flaky, "t1", coerce_frames(noise(12), 1.0), workers=workers,
                     shard_frames=2, codec="png")
    assert all_files(objs) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_source_failure_midway_leaves_nothing(objs: Objects, workers: int) -> None:
    """A failing source (say a video decoder) aborts the write; its own error propagates."""
    def frames() -> Iterator[np.ndarray]:
        yield from noise(9)
        raise RuntimeError("decoder lost the stream")

    with pytest.raises(RuntimeError, match="lost the stream"):
        write_frames(objs, "t1", coerce_frames(frames(), 1.0), workers=workers, shard_frames=2)
    assert all_files(objs) == []


def test_index_write_failure_leaves_nothing(objs: Objects) -> None:
    class NoIndex(CountingObjects):
        def put(self, key: str, data: bytes) -> None:
            raise BackendUnavailableError("index upload failed")

    with pytest.raises(BackendUnavailableError):
        write_frames(NoIndex(objs), "t1", coerce_frames(noise(5), 1.0), shard_frames=2)
    assert all_files(objs) == []


# -- writing and reading --------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("codec", ["png", "jpeg"])
def test_get_frames_iter_and_b64_agree(objs: Objects, codec: str, workers: int) -> None:
    imgs = [smooth(24, 40, s) for s in range(10)]
    metas = write_frames(objs, "t1", coerce_frames(imgs, 5.0), codec=codec, workers=workers,
                         shard_frames=3)
    assert [m.sequence for m in metas] == list(range(10))
    reader = FrameReader(objs, "t1")
    assert reader.index() == metas
    frames = reader.frames()
    assert frames == reader.frames(workers=1)
    assert frames == list(reader.iter_frames(batch=4))
    assert frames == [reader.get(i) for i in range(10)]
    for f, img in zip(frames, imgs, strict=True):
        assert (f.timestamp, f.chunk_id, f.perceptual_hash) == (f.sequence / 5.0, 0,
                                                                perceptual_hash(img))
        if codec == "png":
            assert np.array_equal(f.image, img)
        else:
            assert np.abs(f.image.astype(int) - img).mean() < 3
    rows = reader.b64()
    encoded = reader.encoded()
    for row, f, (m, data) in zip(rows, frames, encoded, strict=True):
        assert m.sequence == f.sequence
        assert set(row) == {"sequence", "chunk_id", "timestamp", "perceptual_hash", "width",
                            "height", "jpeg_b64"}
        assert (row["sequence"], row["chunk_id"], row["timestamp"], row["perceptual_hash"],
                row["width"], row["height"]) == (f.sequence, f.chunk_id, f.timestamp,
                                                 f.perceptual_hash, 40, 24)
        jpeg = base64.b64decode(row["jpeg_b64"])
        assert jpeg[:2] == b"\xff\xd8"
        if codec == "jpeg":
            assert jpeg == data  # stored bytes, not re-encoded
            assert np.array_equal(decode(jpeg, "jpeg"), f.image)
        else:
            assert np.abs(decode(jpeg, "jpeg").astype(int) - f.image).mean() < 3


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 3, 4, 25])
def test_iter_frames_streams_in_order_and_stops_its_threads(
    objs: Objects, workers: int, batch: int,
) -> None:
    write_frames(objs, "t1", coerce_frames(noise(11), 5.0), workers=2, shard_frames=3)
    reader = FrameReader(objs, "t1")
    frames = reader.frames()
    assert list(reader.iter_frames(batch=batch, workers=workers)) == frames
    assert list(reader.iter_frames(2, 9, batch=batch, workers=workers)) == frames[2:9]
    stream = reader.iter_frames(batch=batch, workers=workers)
    assert [next(stream) for _ in range(5)] == frames[:5]
    stream.close()  # an abandoned stream joins its fetch and decode threads
    assert not [t.name for t in threading.enumerate() if t.name.startswith("localckpt-")]


def test_frame_fields_and_sequence_order_survive(objs: Objects) -> None:
    """Frames given out of order (and parallel workers) still index in sequence order."""
    rng = np.random.default_rng(1)
    seqs = [int(s) for s in rng.permutation(np.arange(0, 60, 3))]
    imgs = {s: noise(1, 8, 8, seed=s)[0] for s in seqs}
    given = [Frame(s, s * 0.5, s // 9, "" if s % 2 else f"{s:016x}", imgs[s]) for s in seqs]
    metas = write_frames(objs, "t1", given, codec="png", workers=2, shard_frames=4)
    assert [m.sequence for m in metas] == sorted(seqs)
    got = FrameReader(objs, "t1").frames()
    assert [f.sequence for f in got] == sorted(seqs)
    for f in got:
        assert (f.timestamp, f.chunk_id) == (f.sequence * 0.5, f.sequence // 9)
        want = perceptual_hash(imgs[f.sequence]) if f.sequence % 2 else f"{f.sequence:016x}"
        assert f.perceptual_hash == want
        assert np.array_equal(f.image, imgs[f.sequence])


@pytest.mark.parametrize(("start", "stop"), [(None, None), (0, 60), (3, 4), (4, 9), (-5, 7),
                                             (58, None), (None, 1), (10, 10), (30, 20),
                                             (61, 99), (1, 2)])
def test_ranges(objs: Objects, start: int | None, stop: int | None) -> None:
    seqs = list(range(0, 60, 3))
    given = [Frame(s, float(s), 0, "", img) for s, img in zip(seqs, noise(20, 8, 8), strict=True)]
    write_frames(objs, "t1", given, codec="png", shard_frames=4)
    reader = FrameReader(objs, "t1")
    want = [s for s in seqs if (start is None or s >= start) and (stop is None or s < stop)]
    assert [f.sequence for f in reader.frames(start, stop)] == want
    assert [f.sequence for f in reader.iter_frames(start, stop, batch=3)] == want
    assert [m.sequence for m, _ in reader.encoded(start, stop)] == want
    assert [r["sequence"] for r in reader.b64(start, stop)] == want


@pytest.mark.parametrize("workers", [1, 2])
def test_multi_shard_layout_and_coalesced_reads(objs: Objects, workers: int) -> None:
    metas = write_frames(objs, "t1", coerce_frames(noise(10, 8, 8), 1.0), codec="png",
                         workers=workers, shard_frames=3)
    shards = sorted({m.shard for m in metas})
    assert len(shards) >= 4
    for s in shards:  # a shard's frames lie back to back from offset 0
        rows = sorted((m for m in metas if m.shard == s), key=lambda m: m.offset)
        assert 1 <= len(rows) <= 3 and rows[0].offset == 0
        assert all(a.offset + a.length == b.offset for a, b in itertools.pairwise(rows))
    keys = frame_keys(objs, "t1")
    assert keys == [shard_key("t1", s) for s in shards] + [index_key("t1")]
    assert objs.list("frames") == sorted(keys)

    counting = CountingObjects(objs)
    reader = FrameReader(counting, "t1")
    reader.index()
    assert counting.calls == ["get"]
    counting.calls.clear()
    assert reader.get(4).sequence == 4
    assert counting.calls == ["get_range"]
    counting.calls.clear()
    reader.frames()  # every shard wanted whole: one request per shard
    assert len(counting.calls) == len(shards)
    counting.calls.clear()
    for start, stop in [(2, 7), (0, 10), (5, 6)]:  # one request per shard touched
        reader.encoded(start, stop)
        assert len(counting.calls) == len({m.shard for m in metas[start:stop]})
        counting.calls.clear()


def test_large_frames_and_default_settings(local: Objects) -> None:
    """Default JPEG q90 on 1280x720: many frames per shard; a shard closes at shard_bytes."""
    imgs = [smooth(720, 1280, s) for s in range(4)]
    metas = write_frames(local, "t1", coerce_frames(imgs, 1.0))
    assert {m.shard for m in metas} == {0} or len({m.shard for m in metas}) == 2  # 2 workers
    assert all((m.width, m.height, m.codec) == (1280, 720, "jpeg") for m in metas)
    small = write_frames(local, "t2", coerce_frames(imgs, 1.0), workers=1, shard_bytes=1)
    assert [m.shard for m in small] == [0, 1, 2, 3]


def test_streaming_input_is_written_while_it_arrives(objs: Objects) -> None:
    """The writer never materialises the input: shards are published while it is read."""
    seen_published = []

    def frames() -> Iterator[np.ndarray]:
        for i, img in enumerate(noise(40, 8, 8)):
            if i == 30:
                seen_published.append(len(objs.list("frames/t1")))
            yield img

    write_frames(objs, "t1", coerce_frames(frames(), 1.0), codec="png", shard_frames=2)
    # published before the input ended; how many depends on how the threads were
    # scheduled (5 of 15 possible here on a quiet machine, 4 under CI's load)
    assert seen_published[0] >= 1


def test_jpeg_size_limit_is_checked_before_writing(objs: Objects) -> None:
    wide = np.zeros((1, 65501, 3), np.uint8)
    with pytest.raises(InvalidInputError, match=r"frame 1: .*larger than JPEG allows"):
        write_frames(objs, "t1", coerce_frames([*noise(1, 1, 8), wide], 1.0), shard_frames=1)
    with pytest.raises(InvalidInputError, match="larger than JPEG allows"):
        encode(wide)
    assert all_files(objs) == []
    write_frames(objs, "t1", coerce_frames([wide], 1.0), codec="png")
    assert np.array_equal(FrameReader(objs, "t1").get(0).image, wide)


# -- the index as other tools see it --------------------------------------------------------


def test_index_is_plain_parquet_for_duckdb_and_pyarrow(local: Objects) -> None:
    metas = write_frames(local, "t1", coerce_frames(noise(7), 2.0), shard_frames=3)
    path = local.local_path(index_key("t1"))
    assert path is not None and os.path.exists(path)
    fields = [f.name for f in attrs.fields(FrameMeta)]
    assert _SCHEMA.names == fields
    table = pq.read_table(path)
    assert table.schema.names == fields
    assert [FrameMeta(**row) for row in table.to_pylist()] == metas
    n, lo, hi, shards = duckdb.sql(
        f"select count(*), min(sequence), max(sequence), count(distinct shard) "
        f"from read_parquet('{path}')").fetchall()[0]
    assert (n, lo, hi) == (7, 0, 6) and shards >= 3
    got = duckdb.sql(f"select sequence from read_parquet('{path}')").fetchall()
    assert [r[0] for r in got] == list(range(7))  # stored sorted by sequence
    assert all(len(m.content_hash) == 64 for m in metas)


# -- missing and corrupt data ---------------------------------------------------------------


def test_missing_timeline_and_sequence(objs: Objects) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        FrameReader(objs, "nope").index()
    with pytest.raises(NotFoundError):
        frame_keys(objs, "nope")
    write_frames(objs, "t1", coerce_frames(noise(3), 1.0))
    reader = FrameReader(objs, "t1")
    for seq in (3, -1, "0", None, True):
        with pytest.raises(NotFoundError, match=f"timeline t1 .*sequence {seq!r}"):
            reader.get(seq)  # type: ignore[arg-type]
    assert reader.frames(5, 9) == []
    assert [f.sequence for f in reader.frames(np.int64(1), np.int32(2))] == [1]
    for bad in ("1", 1.5, True):
        with pytest.raises(InvalidInputError, match="start"):
            reader.frames(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="stop"):
            reader.b64(0, bad)  # type: ignore[arg-type]


def test_corrupt_shard_bytes_are_detected(local: Objects) -> None:
    metas = write_frames(local, "t1", coerce_frames(noise(6), 1.0), codec="png",
                         shard_frames=3, workers=1)  # one worker: shards hold 0-2 and 3-5
    victim = metas[4]
    path = local.local_path(shard_key("t1", victim.shard))
    assert path is not None
    raw = bytearray(Path(path).read_bytes())
    raw[victim.offset + victim.length // 2] ^= 0xFF
    Path(path).write_bytes(bytes(raw))
    reader = FrameReader(local, "t1")
    assert [f.sequence for f in reader.frames(0, 3)] == [0, 1, 2]
    assert reader.get(3).sequence == 3
    calls = [lambda: reader.get(victim.sequence), reader.frames, reader.b64, reader.encoded,
             lambda: list(reader.iter_frames(batch=2))]
    for call in calls:
        with pytest.raises(CorruptDataError, match=f"frame {victim.sequence} of timeline t1"):
            call()


def test_long_reads_verify_on_two_threads_in_order(local: Objects) -> None:
    imgs = noise(40, 8, 8)
    metas = write_frames(local, "t1", coerce_frames(imgs, 1.0), workers=1)
    reader = FrameReader(local, "t1")
    encoded = reader.encoded()
    assert [m for m, _ in encoded] == metas
    rows = reader.b64()
    assert [r["sequence"] for r in rows] == list(range(40))
    assert [base64.b64decode(r["jpeg_b64"]) for r in rows] == [data for _, data in encoded]
    victim = metas[35]  # in the half verified on the helper thread
    path = local.local_path(shard_key("t1", victim.shard))
    assert path is not None
    raw = bytearray(Path(path).read_bytes())
    raw[victim.offset + 7] ^= 0x01
    Path(path).write_bytes(bytes(raw))
    for call in (reader.b64, reader.encoded, reader.frames):
        with pytest.raises(CorruptDataError, match="frame 35 "):
            call()


def test_corrupt_or_truncated_index(objs: Objects) -> None:
    write_frames(objs, "t1", coerce_frames(noise(3), 1.0))
    data = objs.get(index_key("t1"))
    objs.put(index_key("t1"), data[: len(data) // 2])
    with pytest.raises(CorruptDataError, match="frame index"):
        FrameReader(objs, "t1").index()


def test_delete_frames(objs: Objects) -> None:
    write_frames(objs, "t1", coerce_frames(noise(5), 1.0), shard_frames=2)
    write_frames(objs, "t2", coerce_frames(noise(2), 1.0))
    delete_frames(objs, "t1")
    assert all(k.startswith("frames/t2/") for k in objs.list("frames"))
    with pytest.raises(NotFoundError):
        FrameReader(objs, "t1").frames()
    assert len(FrameReader(objs, "t2").frames()) == 2
    delete_frames(objs, "t1")  # idempotent


def test_processes_that_read_an_index_exit_cleanly(tmp_path: Path) -> None:
    """pq.read_table's threads aborted the interpreter at exit now and then ("terminate
    called without an active exception", exit -6: 8 of 200 processes here); the index
    reader keeps to the calling thread. 40 processes, 4 at a time."""
    import subprocess
    import sys

    with localckpt.open(tmp_path / "s", create=True) as store:
        tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)] * 3, codec="png")
    script = ("import sys, localckpt\n"
              "with localckpt.open(sys.argv[1]) as s:\n"
              "    assert len(s.frame_index(sys.argv[2])) == 3\n")
    codes = []
    for _ in range(10):
        procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "s"), tl.id],
                                  stderr=subprocess.PIPE) for _ in range(4)]
        codes += [(p.wait(timeout=60), p.stderr.read().decode() if p.stderr else "")
                  for p in procs]
    assert [c for c in codes if c[0] != 0] == []


def test_a_frame_of_another_size_than_its_index_says_is_not_decoded() -> None:
    """The size is read from the image's header first: a stored frame (from a bundle or
    another store) much larger than its index row says is CorruptDataError before its
    pixels are decoded."""
    from localckpt.errors import CorruptDataError
    from localckpt.frames import decode, encode

    big = np.zeros((3000, 4000, 3), np.uint8)
    for codec in ("png", "jpeg"):
        data = encode(big, codec, 90)
        assert decode(data, codec, (4000, 3000)).shape == (3000, 4000, 3)
        with pytest.raises(CorruptDataError, match="is 4000x3000 where its frame index says "
                                                    "4x4"):
            decode(data, codec, (4, 4))
