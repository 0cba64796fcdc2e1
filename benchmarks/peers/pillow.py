"""Bare Pillow JPEG codec on one thread: what ingest and load cannot beat by much."""

from __future__ import annotations

from collections.abc import Iterable
from io import BytesIO

import numpy as np
from PIL import Image

__all__ = ["decode", "decode_all", "encode", "encode_all"]


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
