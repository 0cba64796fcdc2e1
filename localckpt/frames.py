"""Frame codec: validation, perceptual hash, JPEG/PNG encode and decode (pure functions).

Everything here is stateless so it can run on any thread; the shard writer and reader
(``shards.py``) call ``encode_into``/``decode`` from worker threads. What a pipeline may
hand in as pixels (arrays, BGR arrays, PIL images, video frames) is ``pixels.py``'s job.
"""

from __future__ import annotations

import functools
import io
import math
import numbers
from collections.abc import Iterable, Iterator
from typing import IO, Any

import numpy as np
from PIL import Image

from .arguments import shown
from .errors import CorruptDataError, InvalidInputError
from .pixels import as_rgb, check_color, check_image
from .types import Frame

__all__ = [
    "CODECS",
    "check_codec",
    "check_header",
    "check_image",
    "check_size",
    "coerce_frames",
    "decode",
    "encode",
    "encode_into",
    "lossless_quality",
    "perceptual_hash",
    "to_pil",
    "validate_frames",
]

CODECS = ("jpeg", "png")
_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG"}
_JPEG_MAX_SIDE = 65500  # libjpeg's hard limit
# PNG level 1: still lossless, ~1.8x faster than the default 6 for ~13% more bytes.
_PNG_LEVEL = 1
# dHash grid: 8 rows x 9 columns of cells, each averaged from _CELL x _CELL sampled pixels.
_CELL = 4
#: the bytes of a frame check_header reads first (then all, if its header lies beyond)
_HEADER_BYTES = 64 << 10
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _check_int(value: object, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{where}: {name} must be an int, got {shown(value)}")
    number = int(value)
    if not -(2**63) <= number < 2**63:  # the index stores int64
        raise InvalidInputError(f"{where}: {name} {number} does not fit in 64 bits")
    return number


def coerce_frames(
    frames: Iterable[Any], fps: float, color: str = "rgb"
) -> Iterator[Frame]:
    """Validate frames lazily (streaming input stays streaming) and yield Frame objects.

    Items may be Frame objects or bare images: numpy HxWx3 uint8 arrays, PIL images (any
    mode, converted to RGB) or av.VideoFrame objects. A bare image i becomes
    Frame(sequence=i, timestamp=i / fps, chunk_id=0): its timestamp is what fps says,
    not when it was shot (``ingest_video`` records real times). color "bgr" reverses the
    channels of numpy arrays (bare or in a Frame), as OpenCV delivers them. A missing
    perceptual hash ("") is computed. fps and color are checked now, the items as they
    are pulled.
    """
    if (
        isinstance(fps, bool)
        or not isinstance(fps, numbers.Real)
        or not math.isfinite(fps)
        or fps <= 0
    ):
        raise InvalidInputError(f"fps must be a finite number > 0, got {shown(fps)}")
    return _coerce(frames, float(fps), check_color(color))


def validate_frames(frames: Iterable[Frame]) -> Iterator[Frame]:
    """Like coerce_frames but for Frame objects only (the shard writer's own guard)."""
    return _coerce(frames, None, "rgb")


def _coerce(frames: Iterable[Any], fps: float | None, color: str) -> Iterator[Frame]:
    try:
        items = iter(frames)
    except TypeError:
        raise InvalidInputError(
            f"frames must be an iterable of frames, got {type(frames).__name__}"
        ) from None
    return _coerce_items(items, fps, color)


def _coerce_items(frames: Iterator[Any], fps: float | None, color: str) -> Iterator[Frame]:
    seen: set[int] = set()
    for i, item in enumerate(frames):
        where = f"frame {i}"
        if isinstance(item, Frame):
            frame = _check_frame(item, where, color)
        elif fps is not None and (image := as_rgb(item, where, color)) is not None:
            frame = Frame(i, i / fps, 0, perceptual_hash(image), image)
        else:
            wanted = ("a numpy array, a PIL image, an av.VideoFrame or a Frame"
                      if fps is not None else "a Frame")
            raise InvalidInputError(f"{where}: expected {wanted}, got {type(item).__name__}")
        if frame.sequence in seen:
            raise InvalidInputError(
                f"{where}: duplicate sequence number {frame.sequence}; sequences must be unique"
            )
        seen.add(frame.sequence)
        yield frame


def _check_hash(phash: object, where: str) -> str:
    if not isinstance(phash, str):
        raise InvalidInputError(f"{where}: perceptual_hash must be a str, got {shown(phash)}")
    if not phash.isascii():
        from .schema import check_text  # the one check of text that records will hold

        check_text(phash, f"{where}: perceptual_hash")
    return phash


def _check_frame(frame: Frame, where: str, color: str = "rgb") -> Frame:
    image = as_rgb(frame.image, where, color)
    if image is None:
        image = check_image(frame.image, where)  # raises: says what an image must be
    sequence = _check_int(frame.sequence, "sequence", where)
    if sequence < 0:  # get_frame, outputs and runs know frames from 0 up
        raise InvalidInputError(f"{where}: sequence must be >= 0 (frames are numbered from 0), "
                                f"got {sequence}")
    chunk_id = _check_int(frame.chunk_id, "chunk_id", where)
    ts = frame.timestamp
    if isinstance(ts, bool) or not isinstance(ts, numbers.Real) or not math.isfinite(ts):
        raise InvalidInputError(f"{where}: timestamp must be a finite number, got {shown(ts)}")
    phash = _check_hash(frame.perceptual_hash, where) or perceptual_hash(image)
    if (
        type(frame.sequence) is int
        and type(frame.chunk_id) is int
        and type(ts) is float
        and phash is frame.perceptual_hash
        and image is frame.image
    ):
        return frame  # already normalised: no copy
    return Frame(sequence, float(ts), chunk_id, phash, image)


@functools.lru_cache(maxsize=64)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates for one image size: (2-d row/col index pair, flat pixel index)."""
    rows = ((np.arange(8 * _CELL) + 0.5) * (h / (8 * _CELL))).astype(np.intp)[:, None]
    cols = ((np.arange(9 * _CELL) + 0.5) * (w / (9 * _CELL))).astype(np.intp)[None, :]
    return np.stack(np.broadcast_arrays(rows, cols)), (rows * w + cols).ravel()


def perceptual_hash(image: np.ndarray) -> str:
    """64-bit difference hash (dHash) as 16 hex chars; near-duplicate frames differ in few bits.

    Samples a 32x36 grid of pixels by fancy indexing (never touching the full image),
    sums it into 8x9 gray cells and sets one bit per horizontally adjacent pair that
    brightens. ~25 us at 1280x720.
    """
    h, w = image.shape[:2]
    rc, flat = _grid(h, w)
    if image.flags.c_contiguous:
        small = image.reshape(h * w, 3)[flat]
    else:
        small = image[rc[0], rc[1]].reshape(-1, 3)
    cells = (small @ _GRAY).reshape(8, _CELL, 9, _CELL).sum(axis=(1, 3))
    return np.packbits(cells[:, 1:] > cells[:, :-1]).tobytes().hex()


def check_codec(codec: str, quality: int) -> None:
    """Reject unknown codecs and out-of-range JPEG quality before anything is written."""
    if not isinstance(codec, str) or codec not in _PIL_FORMAT:
        raise InvalidInputError(f"unknown codec {shown(codec)}; use one of {', '.join(CODECS)}")
    if codec == "jpeg" and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 95
    ):
        raise InvalidInputError(f"JPEG quality must be an int in 1..95, got {shown(quality)}")


def lossless_quality(codec: str, quality: object) -> None:
    """A quality= with a lossless codec (create_timeline, ingest_video): InvalidInputError
    (PNG stores the pixels as they are, so a quality would change nothing and only look
    as if it did)."""
    if quality is not None and codec != "jpeg":
        raise InvalidInputError(
            f"quality={shown(quality)} is for codec='jpeg': {codec} is lossless (it keeps "
            "every pixel as decoded), so it takes no quality; leave quality out")


def check_size(image: np.ndarray, codec: str, where: str) -> None:
    """Reject images the codec cannot hold (libjpeg: at most 65500 pixels per side)."""
    if codec == "jpeg" and max(image.shape[0], image.shape[1]) > _JPEG_MAX_SIDE:
        raise InvalidInputError(
            f"{where}: image {image.shape[1]}x{image.shape[0]} is larger than JPEG allows "
            f"({_JPEG_MAX_SIDE} per side); use codec='png'"
        )


def to_pil(image: np.ndarray) -> Image.Image:
    """Wrap pixels for Pillow: RGB is 4 bytes per pixel inside Pillow, so an HxWx3 array
    is copied (~1.4 ms at 720p), unless it is the RGB view of a contiguous HxWx4 array
    (``rgbx[:, :, :3]``, as ingest_video converts frames), which Pillow reads in place
    as RGBX. Either way a JPEG or PNG of it has the same bytes."""
    base = image.base
    if (isinstance(base, np.ndarray) and base.dtype == np.uint8 and base.ndim == 3
            and base.shape == (*image.shape[:2], 4) and base.flags.c_contiguous
            and image.strides == base.strides
            and image.__array_interface__["data"][0] == base.__array_interface__["data"][0]):
        h, w = image.shape[:2]
        return Image.frombuffer("RGBX", (w, h), base, "raw", "RGBX", 0, 1)
    return Image.fromarray(image, "RGB")


def encode_into(fh: IO[bytes], im: Image.Image, codec: str, quality: int = 90) -> None:
    """Encode into fh. A real file (with fileno) lets Pillow encode without the GIL."""
    if codec == "jpeg":
        im.save(fh, "JPEG", quality=quality)
    else:  # PNG has no RGBX: the image in place (see to_pil) is copied to RGB first
        rgb = im.convert("RGB") if im.mode == "RGBX" else im
        rgb.save(fh, "PNG", compress_level=_PNG_LEVEL)


def encode(image: np.ndarray, codec: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an HxWx3 uint8 RGB array as JPEG (lossy, quality 1..95) or PNG (lossless)."""
    check_codec(codec, quality)
    check_image(image, "encode")
    check_size(image, codec, "encode")
    buf = io.BytesIO()
    encode_into(buf, to_pil(image), codec, quality)
    return buf.getvalue()


def decode(data: bytes | memoryview, codec: str, size: tuple[int, int] | None = None,
           ) -> np.ndarray:
    """Decode stored bytes to an HxWx3 uint8 RGB array; CorruptDataError if they are not one,
    or (size: the index's width and height) not one of that size, told from the image's
    header before its pixels are decoded: a frame of a bundle or another store whose
    index says 4x4 cannot make a reader decode 13,000x13,000 pixels (about 0.5 GB)."""
    fmt = _PIL_FORMAT.get(codec)
    if fmt is None:
        raise InvalidInputError(f"unknown codec {shown(codec)}; use one of {', '.join(CODECS)}")
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            if size is not None and im.size != size:
                raise CorruptDataError(
                    f"stored {codec} frame is {im.size[0]}x{im.size[1]} where its frame index "
                    f"says {size[0]}x{size[1]}; the store is damaged (restore it from a copy "
                    "or re-sync it)")
            im.load()
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            return np.array(rgb)  # writable: callers may edit pixels in place
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptDataError(
            f"stored {codec} frame ({len(data)} bytes) cannot be decoded: {exc}; "
            "the store is damaged (restore it from a copy or re-sync it)"
        ) from exc


def check_header(data: bytes | memoryview, codec: str, size: tuple[int, int]) -> None:
    """CorruptDataError unless data opens as a codec image (the index's codec) whose
    header says size (the index's width and height) and that decode would decode (no
    more pixels than Pillow's decompression-bomb limit). Reads the header only, not the
    pixels: what a transfer checks of every frame it copies, so a frame of a bundle or
    another store is refused on import rather than on every read, and the sizes its
    index gives (labels, exports and pages use them without decoding) are the image's."""
    fmt = _PIL_FORMAT.get(codec)
    if fmt is None:
        raise CorruptDataError(f"unknown codec {shown(codec)}")
    found = None
    for part in (data[:_HEADER_BYTES], data) if len(data) > _HEADER_BYTES else (data,):
        try:  # the header is near the start: no copy of a whole frame for most
            with Image.open(io.BytesIO(part), formats=[fmt]) as im:
                found = im.size  # open refuses twice Pillow's MAX_IMAGE_PIXELS, as decode
            break
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            if part is data:
                raise CorruptDataError(f"its {len(data)} bytes are not a {codec} image "
                                       f"decode accepts ({exc})") from None
    assert found is not None
    if found != size:
        raise CorruptDataError(f"the {codec} image is {found[0]}x{found[1]} where its "
                               f"frame index says {size[0]}x{size[1]}")
