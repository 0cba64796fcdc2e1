"""create_timeline takes what pipelines hand it: RGB arrays, BGR arrays (OpenCV), PIL
images of any mode, av.VideoFrame; float arrays get a hint that fits their range."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from localckpt.errors import InvalidInputError
from localckpt.frames import coerce_frames, perceptual_hash
from localckpt.types import Frame


def picture(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth colour content (JPEG-friendly) with distinct channels (a swap shows)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(4, 12, 2)
    img = np.stack([255 * xx / w, 255 * yy / h, 128 + 100 * np.sin(xx / a + yy / b)], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def close(a: np.ndarray, b: np.ndarray, tol: float = 3.0) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(int) - b.astype(int)).mean()) < tol


@pytest.fixture
def store(new_store: Any) -> Any:
    return new_store("memory")


def stored(store: Any, frames: Any, **kwargs: Any) -> list[Frame]:
    tl = store.create_timeline("v.mp4", "p", frames, codec="png", **kwargs)
    return store.get_timeline_frames(tl.id)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "I;16", "F", "1",
                                  "YCbCr", "La"])
def test_pil_images_of_any_mode_become_rgb(store: Any, mode: str) -> None:
    src = Image.fromarray(picture())
    im = src.convert(mode) if mode not in ("I;16", "F", "La") else (
        Image.fromarray(np.asarray(src.convert("L")).astype(np.uint16) * 3)
        if mode == "I;16" else src.convert("L").convert("F") if mode == "F"
        else src.convert("LA").convert("La"))
    assert im.mode == mode
    want = np.asarray(im.convert("RGB") if mode != "La" else im.convert("LA").convert("RGB"))
    (frame,) = stored(store, [im])
    assert frame.image.shape == (48, 64, 3)
    assert np.array_equal(frame.image, want)  # PNG: exact
    assert frame.perceptual_hash == perceptual_hash(want)


def test_pil_and_arrays_and_frames_mix(store: Any) -> None:
    a, b = picture(seed=1), picture(seed=2)
    frames = stored(store, [a, Image.fromarray(b), Frame(7, 3.5, 2, "", Image.fromarray(a))])
    assert [(f.sequence, f.timestamp, f.chunk_id) for f in frames] == [
        (0, 0.0, 0), (1, 0.5, 0), (7, 3.5, 2)]
    assert np.array_equal(frames[0].image, a) and np.array_equal(frames[1].image, b)
    assert np.array_equal(frames[2].image, a)


def test_bgr_arrays_are_reversed(store: Any) -> None:
    rgb = picture(seed=3)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    (plain,) = stored(store, [rgb])
    (swapped,) = stored(store, [bgr], color="bgr")
    assert np.array_equal(swapped.image, rgb) and np.array_equal(plain.image, rgb)
    assert swapped.perceptual_hash == perceptual_hash(rgb)
    (wrong,) = stored(store, [bgr])  # without color="bgr" the channels stay as given
    assert np.array_equal(wrong.image, bgr)
    (framed,) = stored(store, [Frame(0, 0.0, 0, "", bgr)], color="bgr")
    assert np.array_equal(framed.image, rgb)
    with pytest.raises(InvalidInputError, match="color"):
        stored(store, [rgb], color="BGR")
    assert len(store.list_timelines()) == 4


def test_video_frames_are_converted(store: Any) -> None:
    import av  # the [video] extra is part of [test]: never skipped

    rgb = picture(seed=4)
    exact = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    yuv = exact.reformat(format="yuv420p")
    frames = stored(store, [exact, yuv])
    assert np.array_equal(frames[0].image, rgb)
    assert close(frames[1].image, rgb, 4.0)  # 4:2:0 chroma subsampling, then back


@pytest.mark.parametrize("scale, likely", [(1.0, "0..1"), (255.0, "0..255")])
def test_float_arrays_get_a_hint_for_both_ranges(store: Any, scale: float, likely: str) -> None:
    img = picture().astype(np.float32) / 255 * scale
    with pytest.raises(InvalidInputError) as info:
        stored(store, [img])
    text = str(info.value)
    assert f"looks like {likely}" in text
    assert "(np.clip(a, 0, 1) * 255).round().astype(np.uint8)" in text
    assert "np.clip(a, 0, 255).round().astype(np.uint8)" in text
    # both recipes do what they say
    fixed = (np.clip(img, 0, 1) * 255).round().astype(np.uint8) if likely == "0..1" else \
        np.clip(img, 0, 255).round().astype(np.uint8)
    assert close(fixed, picture(), 1.0)
    assert store.list_timelines() == []


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 4), np.uint8), "grayscale"),
    (np.zeros((4, 4, 4), np.uint8), "4 channels"),
    (np.zeros((4, 4, 3), np.uint16), "16-bit"),
    ("not an image", "PIL image"),
])
def test_other_input_is_refused(store: Any, bad: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        stored(store, [picture(), bad])
    assert store.list_timelines() == [] and store.objects.list("") == []


def test_a_lone_surrogate_in_perceptual_hash_is_invalid_input(new_store: Any,
                                                              store_kind: str) -> None:
    """Was a foreign UnicodeEncodeError (issue 10, defect 12)."""
    store = new_store()
    with pytest.raises(InvalidInputError, match="surrogate"):
        store.create_timeline("v.mp4", "p", [Frame(0, 0.0, 0, "ab\ud800", picture())])
    assert store.list_timelines() == [] and store.objects.list("") == []
    with pytest.raises(InvalidInputError, match="surrogate"):
        list(coerce_frames([Frame(0, 0.0, 0, "\udfff", picture())], 1.0))
