"""Peak resident memory of this process, with a reset (Linux): for bounded-memory tests.

Writing 5 to /proc/self/clear_refs sets the kernel's peak mark (VmHWM) to the current RSS,
so ``peak() - reset_peak()`` around a block is the most memory the block added at once.
Run it in a fresh process: what earlier tests allocated would blur the figure.
"""

from __future__ import annotations

__all__ = ["peak", "reset_peak", "rss"]


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"/proc/self/status has no {field}")


def rss() -> int:
    """Resident memory now, in bytes."""
    return _status("VmRSS")


def peak() -> int:
    """The highest resident memory since start or since reset_peak(), in bytes."""
    return _status("VmHWM")


def reset_peak() -> int:
    """Make the peak the current RSS; return it."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return rss()
