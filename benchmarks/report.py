"""The report: a Markdown table per workload, the raw figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["TABLE_HEADER", "fmt_cost", "fmt_figure", "write_json", "write_markdown"]

TABLE_HEADER = ("| config | size | median | spread | rate | x baseline | goal | met | details |\n"
                "|---|---:|---:|---|---:|---:|---|---|---|")


def fmt_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_bytes(b: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(b) >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def fmt_cost(metric: str, value: float) -> str:
    return fmt_seconds(value) if metric == "time" else fmt_bytes(value)


def _fmt_rate(rate: float | None, unit: str) -> str:
    if not rate:
        return "-"
    return f"{rate:,.0f} {unit}/s" if rate >= 100 else f"{rate:.3g} {unit}/s"


def _kind(v: dict[str, Any]) -> str:
    return str(v.get("kind") or ("flat" if "flat" in v["goal"] else "rate"))


def fmt_figure(v: dict[str, Any]) -> str:
    """A verdict's figure: k=0.05 (growth exponent), 1.23x (ratio), 4.5 (a raw figure)."""
    fig, kind = v["figure"], _kind(v)
    if fig is None:
        return "n/a"
    if kind == "flat":
        return f"k={fig:.2f}"
    if kind == "max":
        return f"{fig:.3g}"
    if kind == "cost":
        return f"{fig:.3g}x"  # a cost ratio: may be small (a memo's 2%) or large
    return f"{fig:.2f}x"


def unjudged(v: dict[str, Any]) -> str:
    """Why a goal has no verdict, in a few words: it is set at a larger size than this
    one, the row it compares with is missing (a peer not installed, --no-peers, a
    configuration left out), a growth exponent needs two sizes, or the figure it reads
    was not measured."""
    kind = _kind(v)
    if v.get("at_size"):
        return f"set at {v['at_size']:,}"
    if kind == "flat":
        return "needs two sizes"
    if kind == "max":
        return "not measured"
    if v.get("against"):
        return f"no {v['against']} row"
    return "no baseline"


def _fmt_goal(verdicts: list[dict[str, Any]]) -> tuple[str, str]:
    if not verdicts:
        return "", ""
    texts, marks = [], []
    for v in verdicts:
        texts.append(v["goal"])
        if v["met"] is None:
            marks.append(f"— {unjudged(v)}" if v["figure"] is None
                         else f"— {fmt_figure(v)} ({unjudged(v)})")
            continue
        marks.append(f"{'✅' if v['met'] else '❌'} {fmt_figure(v)}")
    return "<br>".join(texts), "<br>".join(marks)


def _table(w: dict[str, Any]) -> list[str]:
    lines = [TABLE_HEADER]
    metric, unit = w["metric"], w["unit"]
    for label, res in w["results"].items():
        for size in sorted(res["sizes"], key=int):
            c = res["sizes"][size]
            sp = c["spread"]
            spread = (f"{sp['kind']} {fmt_cost(metric, sp['low'])} to "
                      f"{fmt_cost(metric, sp['high'])}")
            ratio = "baseline" if c["baseline"] == label else (
                "-" if c["ratio"] is None else f"{c['ratio']:.2f}x")
            goal, met = _fmt_goal(c["goals"])
            extra = ", ".join(f"{k} {v:.3g}" for k, v in c["extra"].items())
            lines.append(f"| {label} | {size} | {fmt_cost(metric, c['median'])} | {spread} | "
                         f"{_fmt_rate(c['rate'], unit)} | {ratio} | {goal} | {met} | {extra} |")
    return lines


def _exponents(w: dict[str, Any]) -> str:
    parts = [f"{label} **{res['exponent']:.2f}**" for label, res in w["results"].items()
             if res["exponent"] is not None]
    if not parts:
        return ("Growth exponent (slope of log cost vs log size): none, it needs two sizes "
                "or more of a row.")
    return "Growth exponent (slope of log cost vs log size): " + "; ".join(parts) + "."


def goal_summary(data: dict[str, Any]) -> list[str]:
    lines = ["| workload | config | goal | figure per size | met at largest size |",
             "|---|---|---|---|---|"]
    for name, w in data["workloads"].items():
        for label, res in w["results"].items():
            by_goal: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            for size in sorted(res["sizes"], key=int):
                for v in res["sizes"][size]["goals"]:
                    by_goal.setdefault(v["goal"], []).append((size, v))
            for goal, per in by_goal.items():
                if _kind(per[-1][1]) == "flat":
                    figs = fmt_figure(per[-1][1])
                else:
                    figs = ", ".join(f"{s}: {fmt_figure(v)}" for s, v in per)
                last = per[-1][1]
                met = {True: "✅ met", False: "❌ missed", None: f"— {unjudged(last)}"}[
                    last["met"]]
                lines.append(f"| {name} | {label} | {goal} | {figs} | {met} |")
    return lines


def write_markdown(path: Path, data: dict[str, Any], plots: dict[str, str]) -> None:
    meta = data["meta"]
    out = [f"# localckpt benchmarks — {meta['date']} on {meta['host']}", ""]
    out += [f"- mode: {'quick (tiny sizes, not for conclusions)' if meta['quick'] else 'full'};"
            f" {meta['total_seconds']:.0f} s wall; repetitions interleaved round-robin "
            "across configurations and peers",
            f"- machine: {meta['platform']}, {meta['cpus']} CPUs, Python {meta['python']}",
            f"- commit: {meta['commit']}",
            f"- configurations run: {', '.join(meta['configs']) or 'none'}",
            "- peers: " + ("run where installed (see the notes)" if meta.get("peers", True)
                           else "not run (--no-peers): goals against them are not judged"),
            "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
            ""]
    out += ["## Durability", ""] + [f"- {d}" for d in meta["durability"]] + [""]
    if data["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    out += ["## Goals", "", *goal_summary(data), ""]
    out += ["Median cost is per repetition unless the workload says per call/frame; rate is "
            "work units per second of the median repetition (median units over median "
            "seconds); x baseline is rate / baseline rate for times (higher is faster) and "
            "value / baseline value for bytes and RSS (lower is smaller).", ""]
    for name, w in data["workloads"].items():
        out += [f"## {name}: {w['title']}", ""]
        cost = w["cost_label"]
        la = w.get("load_average")
        load = f" Machine load average (1 min) {la[0]:.1f} at start, {la[1]:.1f} at end." \
            if la else ""
        out += [f"Size: {w['size_name']}. Cost: {cost}. Baseline: {w['baseline'] or 'per row'}."
                f"{load}", ""]
        if not w["results"]:
            out += ["No rows: nothing of this workload ran on this run's configurations "
                    f"({', '.join(meta['configs']) or 'none'}); the notes say why.", ""]
        else:
            out += [*_table(w), ""]
            out += [_exponents(w), ""]
        if name in plots:
            out += [f"![{name}]({plots[name]})", ""]
        out += [f"- {n}" for n in w["notes"]] + [""]
    path.write_text("\n".join(out), encoding="utf-8")


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
