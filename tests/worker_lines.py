"""What the crash workers (crash_worker.py, runs_crash_worker.py) tell their test: one
line per event, written whole."""

from __future__ import annotations

import os

__all__ = ["say"]


def say(*words: str) -> None:
    """One line in one write(2): a kill cannot leave half of it (with PYTHONUNBUFFERED,
    print writes each word on its own, and a line cut there ran into the next one)."""
    os.write(1, (" ".join(words) + "\n").encode())
