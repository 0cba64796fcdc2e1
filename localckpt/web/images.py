"""Frame images for the web view: stored JPEG bytes as they are, thumbnails made once.

A frame stored as JPEG is sent as stored (no decode, no re-encode); a PNG frame is
re-encoded by the store. Thumbnails are decoded at reduced size (libjpeg's DCT scaling
through Pillow's ``draft``), encoded once per process and kept in a cache bounded by
bytes; concurrent requests for the same thumbnail wait for the first instead of making
it again.
"""

from __future__ import annotations

import binascii
import threading
from collections import OrderedDict
from collections.abc import Callable
from io import BytesIO
from typing import TYPE_CHECKING

from ..errors import CorruptDataError, NotFoundError

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["THUMB_WIDTH", "FrameImages", "OnceCache"]

THUMB_WIDTH = 192
_THUMB_QUALITY = 80


class OnceCache:
    """key -> bytes, each made at most once while cached; least recently used goes first.

    max_bytes bounds the total size of the values kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._values: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._pending: dict[tuple[str, int], threading.Event] = {}
        self._size = 0
        self._lock = threading.Lock()
        self.made = 0  # how many values make() produced (tests and stats)

    def get(self, key: tuple[str, int], make: Callable[[], bytes]) -> bytes:
        while True:
            with self._lock:
                found = self._values.get(key)
                if found is not None:
                    self._values.move_to_end(key)
                    return found
                waiting = self._pending.get(key)
                if waiting is None:
                    done = self._pending[key] = threading.Event()
                    break
            waiting.wait()  # another thread is making it; then look again
        try:
            value = make()
        except BaseException:
            with self._lock:
                del self._pending[key]
            done.set()
            raise
        with self._lock:
            del self._pending[key]
            self.made += 1
            self._values[key] = value
            self._size += len(value)
            while self._size > self.max_bytes and len(self._values) > 1:
                _, old = self._values.popitem(last=False)
                self._size -= len(old)
        done.set()
        return value


class FrameImages:
    """JPEG bytes of a store's frames, full size or as thumbnails."""

    def __init__(self, store: Store, *, thumb_cache_bytes: int = 128 << 20) -> None:
        self.store = store
        self.thumbs = OnceCache(thumb_cache_bytes)

    def jpeg(self, timeline_id: str, sequence: int) -> bytes:
        """The frame as JPEG (NotFoundError for an unknown timeline or sequence)."""
        rows = self.store.get_timeline_frames_b64(timeline_id, sequence, sequence + 1)
        if not rows or rows[0]["sequence"] != sequence:
            from .names import no_frame

            raise NotFoundError(no_frame(f"timeline {timeline_id}", sequence, (
                m.sequence for m in self.store.frame_index(timeline_id))))
        return binascii.a2b_base64(rows[0]["jpeg_b64"])

    def thumbnail(self, timeline_id: str, sequence: int) -> bytes:
        """A THUMB_WIDTH-wide JPEG of the frame as shown (non-square pixels made square:
        see data.pixel_aspect), made once per process."""
        def make() -> bytes:
            from .data import pixel_aspect

            aspect = pixel_aspect(self.store.get_timeline(timeline_id))
            return _thumbnail(self.jpeg(timeline_id, sequence),
                              f"frame {sequence} of timeline {timeline_id}", aspect)

        return self.thumbs.get((timeline_id, sequence), make)


def _thumbnail(jpeg: bytes, what: str, aspect: float = 1.0) -> bytes:
    """A thumbnail of JPEG bytes; CorruptDataError naming what when they are not a JPEG
    image (a frame's bytes are checked against its hash, but a bundle or another store
    chose both)."""
    from PIL import Image

    try:
        with Image.open(BytesIO(jpeg), formats=["JPEG"]) as im:
            w, h = im.size
            size = (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / max(w * aspect, 1))))
            im.draft("RGB", size)  # decode at 1/2, 1/4 or 1/8 scale when that is enough
            small = im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptDataError(f"{what} cannot be decoded as a JPEG image ({exc}); the "
                               "store is damaged (restore it from a copy or re-sync it)"
                               ) from None
    if aspect == 1.0:
        small.thumbnail(size)
    else:  # stretched to the shape shown
        small = small.resize(size)
    out = BytesIO()
    small.save(out, "JPEG", quality=_THUMB_QUALITY)
    return out.getvalue()
