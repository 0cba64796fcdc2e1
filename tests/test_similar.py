"""Store.similar_frames against a brute-force Hamming scan, from the index alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from localckpt.errors import CorruptDataError, InvalidInputError, NotFoundError
from localckpt.similar import similar_frames
from localckpt.types import Frame, FrameMeta

TINY = np.zeros((2, 2, 3), np.uint8)


def brute(index: list[FrameMeta], query: str, max_distance: int) -> list[tuple[int, int]]:
    """(sequence, distance) within max_distance of query, by popcount of each xor."""
    q = int(query, 16)
    rows = []
    for m in index:
        if len(m.perceptual_hash) != len(query):
            continue
        d = bin(int(m.perceptual_hash, 16) ^ q).count("1")
        if d <= max_distance:
            rows.append((d, m.sequence))
    return [(s, d) for d, s in sorted(rows)]


def meta(sequence: int, phash: str) -> FrameMeta:
    return FrameMeta(sequence, sequence / 2, 0, phash, 2, 2, "png", "0" * 64, 0, 0, 1)


def random_hashes(seed: int, n: int) -> list[str]:
    """Clustered 64-bit hashes: a few bases with a few flipped bits each (near duplicates)."""
    rng = np.random.default_rng(seed)
    bases = [int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2)) for _ in range(4)]
    out = []
    for _ in range(n):
        h = bases[int(rng.integers(0, 4))]
        for bit in rng.choice(64, int(rng.integers(0, 12)), replace=False):
            h ^= 1 << int(bit)
        out.append(f"{h:016x}")
    return out


@given(seed=st.integers(0, 10_000), n=st.integers(1, 80), max_distance=st.integers(0, 64),
       limit=st.one_of(st.none(), st.integers(1, 10)))
def test_matches_a_brute_force_scan(seed: int, n: int, max_distance: int,
                                    limit: int | None) -> None:
    hashes = random_hashes(seed, n)
    index = [meta(s * 3, h) for s, h in enumerate(hashes)]
    index.append(meta(10**6, "abc"))  # another kind of hash: never compared
    index.append(meta(10**6 + 1, "not hex at all!!"))
    rng = np.random.default_rng(seed + 1)
    probe = index[int(rng.integers(0, n))]
    for query in (probe.sequence, probe.perceptual_hash, probe.perceptual_hash.upper(),
                  f"{int(rng.integers(0, 2**63)):016x}"):
        want = brute(index[:n], probe.perceptual_hash if isinstance(query, int) else
                     query.lower(), max_distance)[:limit]
        got = similar_frames(index, query, max_distance, limit)
        assert [(m.sequence, d) for m, d in got] == want
        assert all(isinstance(m, FrameMeta) for m, _ in got)
    assert similar_frames(index, "abd", 1) == [(index[n], 1)]


@pytest.mark.parametrize("kind", ["memory", "embedded"])
def test_store_reads_only_the_index(new_store: Any, kind: str) -> None:
    store = new_store(kind)
    hashes = random_hashes(7, 40)
    frames = [Frame(i, i * 0.5, i // 10, h, np.full((8, 8, 3), i, np.uint8))
              for i, h in enumerate(hashes)]
    tl = store.create_timeline("v.mp4", "p", frames, codec="png")
    index = store.frame_index(tl.id)
    got = store.similar_frames(tl.id, 5, max_distance=10)
    assert [(m.sequence, d) for m, d in got] == brute(index, hashes[5], 10)
    assert (index[5], 0) in got and got[0][1] == 0  # the frame itself, at distance 0
    assert store.similar_frames(tl.id, 5, max_distance=64, limit=3) == \
        store.similar_frames(tl.id, 5, max_distance=64)[:3]
    # no pixels are needed: with every shard gone, similar_frames still answers
    shards = [k for k in store.objects.list(f"frames/{tl.id}") if "shard-" in k]
    assert shards
    store.objects.delete(shards)
    if kind == "embedded":
        store = new_store.reopen(store)
    assert [(m.sequence, d) for m, d in store.similar_frames(tl.id, hashes[9], 12)] == \
        brute(index, hashes[9], 12)
    with pytest.raises((NotFoundError, CorruptDataError)):
        store.get_frame(tl.id, 0)


def test_bad_queries(new_store: Any) -> None:
    store = new_store("memory")
    tl = store.create_timeline("v.mp4", "p", [Frame(0, 0.0, 0, "zz", TINY),
                                              Frame(1, 0.5, 0, "", TINY)])
    with pytest.raises(NotFoundError, match="sequence 9"):
        store.similar_frames(tl.id, 9)
    with pytest.raises(InvalidInputError, match="not hex"):
        store.similar_frames(tl.id, 0)  # frame 0 brought a hash that is not hex
    for query in ("xyz", "", 1.5, None, True):
        with pytest.raises(InvalidInputError):
            store.similar_frames(tl.id, query)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"has 17 hex digits; .* hashes of 16"):
        store.similar_frames(tl.id, "0" * 17)  # one digit too many: would match nothing
    for bad in ({"max_distance": -1}, {"max_distance": 2.0}, {"limit": 0}, {"limit": "3"}):
        with pytest.raises(InvalidInputError):
            store.similar_frames(tl.id, 1, **bad)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        store.similar_frames("01234567-unknown", 1)
    assert [m.sequence for m, _ in store.similar_frames(tl.id, 1, max_distance=0)] == [1]
