"""Bare Pillow JPEG codec on one thread: what ingest and load cannot beat by much."""

from __future__ import annotations

from collections.abc import Iterable
from io import BytesIO

import numpy as np
from PIL import Image

__all__ = ["decode", "decode_all", "decode_threads", "encode", "encode_all", "encode_files"]


def encode(a: np.ndarray, quality: int = 90) -> bytes:
    buf = BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode(b: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(b)).convert("RGB"))


def encode_all(frames: Iterable[np.ndarray], quality: int = 90) -> list[bytes]:
    return [encode(a, quality) for a in frames]


def decode_all(blobs: Iterable[bytes]) -> list[np.ndarray]:
    return [decode(b) for b in blobs]


def encode_files(frames: list[np.ndarray], threads: int = 2, quality: int = 90) -> None:
    """Encode on `threads` threads, each into its own temp file (Pillow releases the GIL
    there, not with BytesIO): the machine's limit for a multi-threaded ingest."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    def run(part: list[np.ndarray]) -> None:
        with tempfile.TemporaryFile() as fh:
            for a in part:
                Image.fromarray(a).save(fh, "JPEG", quality=quality)

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(run, [frames[i::threads] for i in range(threads)]))


def decode_threads(blobs: list[bytes], threads: int = 2) -> list[np.ndarray]:
    """Decode on `threads` threads (the decoder releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(decode, blobs))
