"""The cyclic garbage collector paused around work that allocates many acyclic objects.

Building or comparing a large output, decoding a big JSON text, or a stage run's put and
commit each make an object or more per box or frame; every generation-2 collection
those trigger rescans every object the process holds (the caller's values too), which
doubled the cost of a 50,000-box output and made a third of a 10,000-frame commit.
Nothing they make holds a cycle. A GC the caller disabled stays disabled."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Automatic collection off inside the block, back on after it if it was on."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
