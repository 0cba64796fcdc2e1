"""Colours of labels and tracks: the same label is the same colour on every page.

A colour is computed from the text alone (a hash to a hue), never from what else is on
the page, so "person" has one colour in every checkpoint, frame and comparison, across
restarts of the server. Two different labels share a colour only if their hashes give
the same hue and shade (1 in 720). Track ids that are small integers (the usual) get
hues a golden angle apart, so consecutive tracks are far apart in colour.
"""

from __future__ import annotations

import colorsys
import hashlib
from typing import Any

__all__ = ["NO_LABEL", "label_colour", "label_key", "track_colour", "track_text"]

#: Colour of a box without a label.
NO_LABEL = "#e6e6e6"
_GOLDEN = 137.50776405


def _digest(text: str) -> bytes:
    return hashlib.blake2s(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def _hex(hue: float, light: float, sat: float = 0.85) -> str:
    r, g, b = colorsys.hls_to_rgb((hue % 360) / 360, light, sat)
    return "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in (r, g, b)))


def label_colour(label: str | None) -> str:
    """The label's colour as #rrggbb (bright enough to see on dark video, and drawn
    under a dark text chip, so it never carries text itself)."""
    if not label:
        return NO_LABEL
    d = _digest(label)
    return _hex(int.from_bytes(d[:2], "big") % 360, 0.58 if d[2] & 1 else 0.70)


def label_key(label: str | None) -> str:
    """A token naming the label in markup (data-label), safe in any selector."""
    return "l" + _digest(label or "").hex()[:12]


def track_text(track: Any) -> str | None:
    """A track id as shown ("7", "car-3"), or None when it is not one (a bool, a
    float, a long string or any other value)."""
    if isinstance(track, bool):
        return None
    if isinstance(track, int):
        text = str(track) if -10**12 < track < 10**12 else None
        return text
    if isinstance(track, str) and 0 < len(track) <= 24 and track.isprintable():
        return track
    return None


def track_colour(track: str) -> str:
    """The colour of a track (track as track_text shows it)."""
    if track.isascii() and track.isdigit():
        return _hex(int(track) * _GOLDEN, 0.62)
    d = _digest("track:" + track)
    return _hex(int.from_bytes(d[:2], "big") % 360, 0.62)
