"""PNG plots: cost against size on log-log axes, one line per configuration or peer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_workload"]


def plot_workload(path: Path, name: str, w: dict[str, Any]) -> bool:
    """Write path; False (no file) when matplotlib is missing or nothing was measured."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    ax.set_prop_cycle(color=list(plt.get_cmap("tab20").colors))
    drawn = 0
    all_sizes: set[int] = set()
    for label, res in w["results"].items():
        sizes = sorted(int(s) for s in res["sizes"])
        costs = [res["sizes"][str(s)]["median"] for s in sizes]
        pts = [(s, c) for s, c in zip(sizes, costs, strict=True) if c > 0]
        if not pts:
            continue
        all_sizes.update(p[0] for p in pts)
        exp = res["exponent"]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                linestyle="--" if res["role"] != "store" else "-",
                label=f"{label} (k={exp:.2f})" if exp is not None else label)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted(all_sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(w["size_name"])
    ax.set_ylabel(w["cost_label"] if w["metric"] == "time" else
                  ("peak RSS growth, bytes" if w["metric"] == "rss" else "bytes"))
    ax.set_title(f"{name}: {w['title']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
