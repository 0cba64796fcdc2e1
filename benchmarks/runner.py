"""Running workloads: round-robin repetitions across subjects, then summaries and goals."""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from .model import Context, Goal, Sample, Workload
from .stats import growth_exponent, median, spread

__all__ = ["close_cached", "evaluate_goals", "run_workload"]

Log = Callable[[str], None]


def run_workload(w: Workload, ctx: Context, reps: int | None, log: Log) -> dict[str, Any]:
    """Measure w at each size; return its JSON-ready summary."""
    sizes = w.quick_sizes if ctx.quick else w.sizes
    reps = reps or (w.quick_reps if ctx.quick else w.reps)
    raw: dict[str, dict[str, Any]] = {}
    notes: list[str] = list(w.notes)
    load_before = os.getloadavg()[0]
    for size in sizes:
        t0 = time.perf_counter()
        try:
            subjects = w.build(ctx, size)
        except Exception as exc:
            notes.append(f"size {size}: setup failed: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            continue
        log(f"  {w.name} n={size}: {len(subjects)} subjects set up in "
            f"{time.perf_counter() - t0:.1f} s, {reps} round(s)")
        failed: set[str] = set()
        try:
            for r in range(reps):
                k = r % len(subjects) if subjects else 0
                for s in subjects[k:] + subjects[:k]:  # rotate: no subject always goes first
                    if s.label in failed:
                        continue
                    gc.collect()
                    try:
                        sample = s.run()
                    except Exception as exc:
                        failed.add(s.label)
                        notes.append(f"{s.label} at size {size} failed: "
                                     f"{type(exc).__name__}: {str(exc)[:300]}")
                        traceback.print_exc(file=sys.stderr)
                        continue
                    row = raw.setdefault(s.label, {"role": s.role, "config": s.config,
                                                   "samples": {}})
                    row["samples"].setdefault(size, []).append(sample)
        finally:
            for s in subjects:
                try:
                    s.close()
                except Exception:
                    pass
    summary = _summarise(w, list(sizes), raw, notes)
    summary["load_average"] = [load_before, os.getloadavg()[0]]
    return summary


def _aggregate(key: str, values: list[float]) -> float:
    """A detail over repetitions: the worst for errors and "max ..." figures (one bad
    repetition must show), else the median."""
    if key == "errors" or key.startswith("max "):
        return max(values)
    return median(values)


def _cost(w: Workload, s: Sample) -> float:
    if w.metric == "time":
        return s.seconds / s.ops
    return float(s.value if s.value is not None else 0.0)


def _summarise(w: Workload, sizes: list[int], raw: dict[str, dict[str, Any]],
               notes: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, row in raw.items():
        per_size: dict[str, Any] = {}
        for size, samples in row["samples"].items():
            costs = [_cost(w, s) for s in samples]
            kind, lo, hi = spread(costs)
            # units per second of the median repetition, not the median of per-repetition
            # rates: with an even count (--quick's 2) those average the two middle rates,
            # which for 5 ms and 40 ms reads 1,125/s beside a median of 22.5 ms (444/s)
            timed = [s for s in samples if s.seconds > 0]
            rate = (median([s.units for s in timed]) / median([s.seconds for s in timed])
                    if timed else None)
            extra_keys = sorted({k for s in samples for k in s.extra})
            per_size[str(size)] = {
                "median": median(costs),
                "spread": {"kind": kind, "low": lo, "high": hi},
                "rate": rate,
                "samples": costs,
                "seconds": [s.seconds for s in samples],
                "extra": {k: _aggregate(k, [s.extra[k] for s in samples if k in s.extra])
                          for k in extra_keys},
            }
        done = [int(s) for s in per_size]
        results[label] = {
            "role": row["role"], "config": row["config"], "sizes": per_size,
            "exponent": growth_exponent(done, [per_size[str(s)]["median"] for s in done]),
        }
    evaluate_goals(w, results)
    return {
        "title": w.title, "unit": w.unit, "size_name": w.size_name, "metric": w.metric,
        "cost_label": w.cost_label if w.metric == "time" else "bytes",
        "baseline": w.baseline, "sizes": sizes, "notes": notes,
        "goals": [g.text for g in w.goals], "results": results,
    }


def evaluate_goals(w: Workload, results: dict[str, Any]) -> None:
    """Baselines, ratios and goal verdicts of every cell (also run again by --regoal on a
    stored report: they depend on the summaries only)."""
    for label, res in results.items():
        for size, cell in res["sizes"].items():
            base = w.baseline_of(label)
            cell["baseline"] = base
            cell["ratio"] = _ratio(w, results, label, base, size)
            cell["goals"] = [_verdict(w, g, results, label, size)
                             for g in w.goals if g.applies(label)]


def _exponent_of(res: dict[str, Any], key: str) -> float | None:
    """The growth exponent of a row's figure `key` (a detail) over its sizes."""
    sizes = [s for s in res["sizes"] if key in res["sizes"][s]["extra"]]
    return growth_exponent([int(s) for s in sizes],
                           [res["sizes"][s]["extra"][key] for s in sizes])


def _ratio(w: Workload, results: dict[str, Any], label: str, other: str | None,
           size: str) -> float | None:
    """rate / other's rate for time; value / other's value for bytes and RSS."""
    if other is None or other == label or other not in results:
        return None
    mine, theirs = results[label]["sizes"].get(size), results[other]["sizes"].get(size)
    if mine is None or theirs is None:
        return None
    if w.metric == "time":
        if not mine["rate"] or not theirs["rate"]:
            return None
        return float(mine["rate"] / theirs["rate"])
    if not theirs["median"]:
        return None
    return float(mine["median"] / theirs["median"])


def _verdict(w: Workload, g: Goal, results: dict[str, Any], label: str,
             size: str) -> dict[str, Any]:
    verdict = _judged(w, g, results, label, size)
    if g.at_size and int(size) < g.at_size:  # the figure, unjudged: see Goal.at_size
        verdict.update(met=None, at_size=g.at_size)
    return verdict


def _judged(w: Workload, g: Goal, results: dict[str, Any], label: str,
            size: str) -> dict[str, Any]:
    if g.kind == "flat":
        exp = (_exponent_of(results[label], g.key) if g.key
               else results[label]["exponent"])
        return {"goal": g.text, "kind": g.kind, "figure": exp,
                "met": None if exp is None else exp <= g.threshold}
    if g.kind == "max":
        fig = results[label]["sizes"][size]["extra"].get(g.key)
        return {"goal": g.text, "kind": g.kind, "figure": fig,
                "met": None if fig is None else fig <= g.threshold}
    against = g.against(label) if g.against else w.baseline_of(label)
    ratio = _ratio(w, results, label, against, size)
    if ratio is not None and g.kind == "cost":
        # the goal's own terms: this row's cost over the other's (the rate ratio inverted)
        ratio = 1.0 / ratio if ratio > 0 else None
    if ratio is None:
        return {"goal": g.text, "kind": g.kind, "figure": None, "met": None,
                "against": against}
    met = ratio >= g.threshold if g.kind == "rate" else ratio <= g.threshold
    return {"goal": g.text, "kind": g.kind, "figure": ratio, "met": met, "against": against}


def close_cached(ctx: Context) -> None:
    """Close every store, peer and seed database that workloads cached for reuse."""
    for value in ctx.cache.values():
        target = value[0] if isinstance(value, tuple) and value else value
        close = getattr(target, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass
