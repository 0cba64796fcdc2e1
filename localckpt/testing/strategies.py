"""Hypothesis strategies for localckpt values: JSON, stage names, small frames, bad input.

Use them in your own pipeline tests too::

    from hypothesis import given
    from localckpt.testing import strategies as lst

    @given(lst.json_objects())
    def test_my_stage_output_round_trips(output): ...

JSON strings cover all of Unicode except lone surrogates (which UTF-8 cannot encode),
including NUL and astral characters; floats are finite and include -0.0, subnormals and
the extremes; integers go beyond 64 bits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..types import Frame

__all__ = [
    "bad_json_values",
    "frame_images",
    "frame_lists",
    "frame_objects",
    "json_objects",
    "json_scalars",
    "json_text",
    "json_values",
    "stage_names",
]

# Everything but surrogates (category Cs): JSON text must be valid Unicode.
json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)

_ints = st.one_of(
    st.integers(-(2**31), 2**31),
    st.integers(-(2**70), 2**70),
)
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 0.1, 1e-300, 5e-324, 1.7976931348623157e308, 2.0**53]),
)


def json_scalars() -> st.SearchStrategy[Any]:
    """None, bools, ints (also beyond 64 bits), finite floats, Unicode strings."""
    return st.one_of(st.none(), st.booleans(), _ints, _floats, json_text)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value: scalars nested in lists and objects (Unicode keys)."""
    return st.recursive(
        json_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(json_text, inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def json_objects(max_leaves: int = 12) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object (what stage outputs, config overrides and stats are)."""
    return st.dictionaries(json_text, json_values(max_leaves), max_size=5)


def stage_names() -> st.SearchStrategy[str]:
    """Non-empty stage names: mostly pipeline-like identifiers, some arbitrary Unicode."""
    ident = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
    return st.one_of(ident, ident, st.text(st.characters(exclude_categories=["Cs"]),
                                           min_size=1, max_size=8))


def frame_images(
    max_side: int = 12, shape: tuple[int, int] | None = None
) -> st.SearchStrategy[np.ndarray]:
    """One HxWx3 uint8 RGB image, 1..max_side pixels per side (or exactly shape)."""
    if shape is not None:
        sides = st.just(shape)
    else:
        sides = st.tuples(st.integers(1, max_side), st.integers(1, max_side))

    @st.composite
    def build(draw: st.DrawFn) -> np.ndarray:
        h, w = draw(sides)
        seed = draw(st.integers(0, 2**32 - 1))
        return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)

    return build()


def frame_lists(
    min_size: int = 1, max_size: int = 4, max_side: int = 12
) -> st.SearchStrategy[list[np.ndarray]]:
    """A list of bare images, the common create_timeline input."""
    return st.lists(frame_images(max_side), min_size=min_size, max_size=max_size)


def frame_objects(
    min_size: int = 1, max_size: int = 4, max_side: int = 12
) -> st.SearchStrategy[list[Frame]]:
    """Frame objects with unique (not necessarily contiguous) sequences and own timestamps."""

    @st.composite
    def build(draw: st.DrawFn) -> list[Frame]:
        seqs = draw(st.lists(st.integers(0, 10_000), min_size=min_size, max_size=max_size,
                             unique=True))
        frames = []
        for seq in seqs:
            ts = draw(st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
            chunk = draw(st.integers(0, 1000))
            frames.append(Frame(seq, ts, chunk, "", draw(frame_images(max_side))))
        return frames

    return build()


def bad_json_values() -> st.SearchStrategy[Any]:
    """Values canonical JSON must reject, each nested somewhere inside an object:
    NaN and infinities, non-string keys, sets, bytes, lone surrogates."""
    bad_leaf = st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.builds(set, st.lists(st.integers(), max_size=2)),
        st.binary(max_size=3),
        st.just("\ud800"),
        st.integers().map(lambda i: {i: "int key"}),
        st.just({None: 1}),
        st.just({(1, 2): 1}),
        st.just({"ok": object()}),
    )

    def bury(leaf: Any, path: list[str | None]) -> Any:
        for key in reversed(path):
            leaf = [leaf] if key is None else {key: leaf}
        return leaf

    return st.builds(
        lambda leaf, path, key: {key: bury(leaf, path)},
        bad_leaf,
        st.lists(st.one_of(st.none(), json_text), max_size=3),
        json_text,
    )
