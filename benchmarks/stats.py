"""Summaries of repeated measurements: median, spread, growth exponent."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["growth_exponent", "median", "spread"]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> tuple[str, float, float]:
    """("IQR", q1, q3) with 5 or more values, else ("range", min, max)."""
    if len(values) >= 5:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return "IQR", float(q1), float(q3)
    return "range", float(min(values)), float(max(values))


def growth_exponent(sizes: Sequence[float], costs: Sequence[float]) -> float | None:
    """Least-squares slope of log(cost) against log(size): 1 is linear, 0 is flat.

    None when fewer than two distinct positive points exist.
    """
    pts = [(math.log(s), math.log(c)) for s, c in zip(sizes, costs, strict=True)
           if s > 0 and c > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    return sxy / sxx
