"""Pixels as pipelines hand them over, made into what a frame stores: HxWx3 uint8 RGB.

Accepted: numpy arrays (RGB, or BGR as OpenCV gives them with ``color="bgr"``), PIL images
of any mode (converted to RGB) and PyAV ``av.VideoFrame`` objects (converted with
FFmpeg's swscale). Everything else is an InvalidInputError whose message says how to
convert it; a float array gets the recipe for both of its usual ranges (0..1 and 0..255).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .errors import InvalidInputError

__all__ = ["COLORS", "as_rgb", "check_color", "check_image"]

#: Channel orders an array may come in; PIL images and video frames know their own.
COLORS = ("rgb", "bgr")


def check_color(color: object) -> str:
    """color if it names a channel order, else InvalidInputError."""
    if color not in COLORS:
        raise InvalidInputError(
            f"color must be one of {', '.join(map(repr, COLORS))} (the channel order of numpy "
            f"arrays; 'bgr' for OpenCV images), got {color!r}"
        )
    return str(color)


def _dtype_hint(image: np.ndarray) -> str:
    if image.dtype == np.uint16:
        return "for 16-bit pixels use (a >> 8).astype(np.uint8)"
    if image.dtype.kind != "f" or image.size == 0:
        return "convert with np.clip(a, 0, 255).astype(np.uint8)"
    lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
    looks = "0..1" if hi <= 1.0 else "0..255"
    return (
        f"its values span {lo:g}..{hi:g}, which looks like {looks}: for floats in 0..1 "
        "use (np.clip(a, 0, 1) * 255).round().astype(np.uint8), for floats in 0..255 "
        "use np.clip(a, 0, 255).round().astype(np.uint8)"
    )


def check_image(image: object, where: str) -> np.ndarray:
    """Return image if it is an HxWx3 uint8 array, else raise InvalidInputError naming where."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(
            f"{where}: expected a numpy array (HxWx3 uint8 RGB), a PIL image or an "
            f"av.VideoFrame, got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise InvalidInputError(
            f"{where}: image dtype is {image.dtype}, must be uint8; {_dtype_hint(image)}"
        )
    if image.ndim != 3:
        raise InvalidInputError(
            f"{where}: image has {image.ndim} dimensions (shape {image.shape}), must be 3 "
            "(HxWx3); for grayscale use np.repeat(a[..., None], 3, axis=2)"
        )
    if image.shape[2] != 3:
        raise InvalidInputError(
            f"{where}: image has {image.shape[2]} channels (shape {image.shape}), must be 3 (RGB)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInputError(f"{where}: image has zero height or width (shape {image.shape})")
    return image


def _from_pil(im: Any, where: str) -> np.ndarray:
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except ValueError:
            try:  # premultiplied modes (La) convert through their straight-alpha twin
                im = im.convert(im.mode.upper()).convert("RGB")
            except ValueError as exc:
                raise InvalidInputError(
                    f"{where}: a PIL image of mode {im.mode} cannot be converted to RGB "
                    f"({exc}); convert it yourself first"
                ) from None
    return check_image(np.asarray(im), where)


def as_rgb(item: object, where: str, color: str = "rgb") -> np.ndarray | None:
    """item's pixels as HxWx3 uint8 RGB, or None when item is not an image at all.

    A numpy array is checked and, for color "bgr", reversed as a view (no copy here: the
    encoder thread copies it into Pillow anyway). PIL images and video frames are
    converted, whatever their mode or pixel format.
    """
    if isinstance(item, np.ndarray):
        image = check_image(item, where)
        return image[:, :, ::-1] if color == "bgr" else image
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(item, pil.Image):
        return _from_pil(item, where)
    av = sys.modules.get("av")  # a caller holding a VideoFrame has imported av already
    if av is not None and isinstance(item, av.VideoFrame):
        try:
            return check_image(item.to_ndarray(format="rgb24"), where)
        except av.FFmpegError as exc:
            raise InvalidInputError(f"{where}: the video frame cannot be converted to RGB: "
                                    f"{exc}") from None
    return None
