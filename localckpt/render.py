"""Text renderings for the CLI: the checkpoint tree and one checkpoint."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .types import Checkpoint, Timeline

__all__ = ["render_checkpoint", "render_tree", "sampling_fps", "source_duration"]


def sampling_fps(timeline: Timeline) -> str:
    """The rate frames were sampled at: "2", or "all" when every frame was kept."""
    sampling = timeline.source_info.get("sampling")
    if isinstance(sampling, dict) and "fps" in sampling and sampling["fps"] is None:
        return "all"
    return f"{timeline.fps:g}"


def source_duration(timeline: Timeline) -> str:
    """The source video's length ("7.6s"), "-" when unknown (frames given as arrays)."""
    seconds = timeline.source_info.get("duration")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return f"{seconds:.1f}s"
    return "-"


def _source(timeline: Timeline) -> str:
    info = timeline.source_info
    if not info:
        return ""
    parts = [f"{source_duration(timeline)} of video"]
    if info.get("fps"):
        parts.append(f"at {info['fps']:g} fps")
    if info.get("width") and info.get("height"):
        parts.append(f"{info['width']}x{info['height']}")
    if info.get("codec"):
        parts.append(str(info["codec"]))
    return ", from " + " ".join(parts)


def _fmt(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(c: Checkpoint, parent: Checkpoint | None, names: Sequence[str] = ()) -> str:
    if c.parent_id is None:
        label = "root"
    elif c.merged_from:
        label = f"merge of {c.merged_from}"
    else:
        label = c.stage or "?"
    parts = [f"{c.id}  {label}"]
    if names:
        parts.append(" ".join(f"[tag {n}]" for n in names))
    if c.is_scenario:
        parts.append(f"[scenario {c.scenario_label}]" if c.scenario_label else "[scenario]")
    # Show only what this checkpoint changed; the rest is inherited from its parent.
    base_cfg = parent.config_overrides if parent else {}
    base_stats = parent.stats if parent else {}
    cfg = {k: v for k, v in c.config_overrides.items() if base_cfg.get(k, object()) != v}
    stats = {k: v for k, v in c.stats.items() if base_stats.get(k, object()) != v}
    if cfg:
        parts.append("config " + " ".join(f"{k}={_fmt(v)}" for k, v in sorted(cfg.items())))
    if stats:
        parts.append("stats " + " ".join(f"{k}={_fmt(v)}" for k, v in sorted(stats.items())))
    return "  ".join(parts)


def render_tree(timeline: Timeline, checkpoints: list[Checkpoint],
                tags: Mapping[str, Sequence[str]] | None = None,
                pending: Mapping[str, Sequence[str]] | None = None) -> str:
    """The tree as indented lines (children oldest first), like `tree` or `git log --graph`;
    tags: checkpoint id -> tag names shown on its line; pending: checkpoint id -> lines
    of what is under way there (open stage runs), drawn as its last children."""
    by_id = {c.id: c for c in checkpoints}
    kids: defaultdict[str | None, list[Checkpoint]] = defaultdict(list)
    for c in checkpoints:
        kids[c.parent_id if c.parent_id in by_id else None].append(c)
    profile = f"{timeline.profile_name}, " if timeline.profile_name else ""
    lines = [
        f"timeline {timeline.id}  {timeline.source_video}  ({profile}"
        f"{timeline.frame_count} frames @ {sampling_fps(timeline)} fps{_source(timeline)}, "
        f"{len(checkpoints)} checkpoints)"
    ]
    roots: list[Checkpoint | str] = list(kids[None])
    stack = [(c, "", i == len(roots) - 1) for i, c in enumerate(roots)][::-1]
    while stack:  # iterative: trees may be thousands deep
        node, prefix, last = stack.pop()
        branch = prefix + ("└── " if last else "├── ")
        if isinstance(node, str):  # a pending node (an open stage run)
            lines.append(branch + node)
            continue
        parent = by_id.get(node.parent_id) if node.parent_id else None
        lines.append(branch + _describe(node, parent, (tags or {}).get(node.id, ())))
        child_prefix = prefix + ("    " if last else "│   ")
        children: list[Checkpoint | str] = [*kids.get(node.id, []),
                                            *(pending or {}).get(node.id, ())]
        for i in range(len(children) - 1, -1, -1):
            stack.append((children[i], child_prefix, i == len(children) - 1))
    return "\n".join(lines)


def render_checkpoint(c: Checkpoint, outputs: dict[str, Any]) -> str:
    lines = [
        f"checkpoint {c.id}",
        f"timeline   {c.timeline_id}",
        f"parent     {c.parent_id or '-'}",
        f"stage      {c.stage or '-'}",
        f"created    {c.created_at.isoformat()}",
    ]
    if c.is_scenario:
        lines.append(f"scenario   {c.scenario_label or '(unlabelled)'}")
    if c.merged_from:
        lines.append(f"merged     {c.merged_from}")
    lines.append("config     " + json.dumps(dict(c.config_overrides), sort_keys=True))
    lines.append("stats      " + json.dumps(dict(c.stats), sort_keys=True))
    lines.append("outputs")
    for stage, value in outputs.items():
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        if len(text) > 200:
            text = text[:197] + "..."
        lines.append(f"  {stage} ({c.stage_hashes[stage][:12]}): {text}")
    if not outputs:
        lines.append("  (none)")
    return "\n".join(lines)
