"""Text renderings for the CLI: the checkpoint tree, one checkpoint, counts of things.

Ids are shown as short ids (:mod:`localckpt.refs`) where a mapping of them is given.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .types import Checkpoint, Timeline

__all__ = [
    "describe_timeline",
    "pixel_aspect",
    "plural",
    "render_checkpoint",
    "render_log",
    "render_tree",
    "sampled_duration",
    "sampled_seconds",
    "sampling_fps",
    "source_duration",
]


class Summarised:
    """A report whose ``print()`` is its ``summary()``, the words the command line uses
    (repr() keeps every field)."""

    __slots__ = ()

    def summary(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.summary()


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 checkpoint``, ``2 checkpoints`` (many: the plural when it is not word + s)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def sampling_fps(timeline: Timeline) -> str:
    """The rate frames were sampled at: "2", or "all" when every frame was kept."""
    sampling = timeline.source_info.get("sampling")
    if isinstance(sampling, dict) and "fps" in sampling and sampling["fps"] is None:
        return "all"
    return f"{timeline.fps:g}"


def _rate(timeline: Timeline, at: str) -> str:
    """How its frames were sampled, right after their count: " @ 2 fps" (at: "@" or
    "at"), or ", every frame" (of the video, as `ingest --fps all` keeps), where
    "75 frames @ all fps" read as if "all" were a rate."""
    fps = sampling_fps(timeline)
    return ", every frame" if fps == "all" else f" {at} {fps} fps"


def _number(value: Any) -> float | None:
    """A finite number of source_info, else None: source_info is any JSON object (a
    bundle's or another store's too), so a field may hold text, a list, or an integer
    beyond a float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def source_duration(timeline: Timeline) -> str:
    """The source video's length ("7.6s"), "-" when unknown (frames given as arrays)."""
    seconds = _number(timeline.source_info.get("duration"))
    return "-" if seconds is None else f"{seconds:.1f}s"


def sampled_seconds(timeline: Timeline) -> float | None:
    """How many seconds of source the timeline's frames cover: the ingest window
    (start to end, cut at the video's end; up to ``stopped_at`` when max_frames stopped
    it early), else frame count / fps (frames given as arrays). None when nothing says."""
    info = timeline.source_info
    sampling = info.get("sampling")
    duration = _number(info.get("duration"))
    by_rate = timeline.frame_count / timeline.fps if timeline.fps > 0 else None
    if not isinstance(sampling, dict) or duration is None:
        return by_rate
    start = _number(sampling.get("start")) or 0.0
    end = _number(sampling.get("end"))
    window = max(0.0, (duration if end is None else min(end, duration)) - start)
    limit = sampling.get("max_frames")
    if isinstance(limit, int) and timeline.frame_count >= limit:
        # stopped at max_frames, maybe before the window ended: where it stopped (count /
        # fps falls short where sequences skip: fps above the source's, skip_similar)
        stopped = _number(sampling.get("stopped_at"))
        if stopped is not None:
            return min(window, max(0.0, stopped - start))
        if by_rate is not None:
            return min(window, by_rate)
    return window


def sampled_duration(timeline: Timeline) -> str:
    """sampled_seconds as text ("3.0s"), "-" when unknown."""
    seconds = sampled_seconds(timeline)
    return "-" if seconds is None else f"{seconds:.1f}s"


def describe_timeline(timeline: Timeline) -> str:
    """A few words that tell two timelines apart: source, frames, rate, length."""
    rate = _rate(timeline, "at")
    return (f"{printable(timeline.source_video)}, {plural(timeline.frame_count, 'frame')}"
            f"{rate}{',' * rate.startswith(',')} over {sampled_duration(timeline)}")


def pixel_aspect(t: Timeline) -> float:
    """Width over height of one stored pixel, from the ``sample_aspect_ratio`` that
    ``ingest_video`` records ("8:9" for NTSC DV): frames are stored at the size coded,
    and shown at the shape players show. 1.0 when none is recorded, or what is recorded
    is not "N:D" with N and D integers from 1 to 65535 making 1:10 to 10:1 (a synced
    store's source_info may hold anything)."""
    stated = t.source_info.get("sample_aspect_ratio") if isinstance(t.source_info, Mapping) \
        else None
    if not isinstance(stated, str) or len(stated) > 11:
        return 1.0
    n, sep, d = stated.partition(":")
    if not (sep and n.isascii() and n.isdigit() and d.isascii() and d.isdigit()):
        return 1.0
    num, den = int(n), int(d)
    if not (1 <= num <= 65535 and 1 <= den <= 65535 and den <= 10 * num and num <= 10 * den):
        return 1.0
    return num / den


def _source(timeline: Timeline) -> str:
    """", from 7.6s of video at 25 fps 320x240 h264" (empty for frames given as arrays;
    "720x480 (8:9 pixels)" where pixels are not square)."""
    info = timeline.source_info
    if not info:
        return ""
    parts = [f"{source_duration(timeline)} of video"]
    fps = _number(info.get("fps"))
    if fps:
        parts.append(f"at {fps:g} fps")
    if info.get("width") and info.get("height"):
        parts.append(printable(f"{info['width']}x{info['height']}"))
        if pixel_aspect(timeline) != 1.0:
            parts.append(f"({info['sample_aspect_ratio']} pixels)")
    if info.get("codec"):
        parts.append(printable(str(info["codec"])))
    return ", from " + " ".join(parts)


def printable(text: str) -> str:
    """Stored text (a stage name, a version, a tag: any str, from another store too) for
    a line of text output: control characters (a newline, a tab, an escape sequence that
    colours a terminal) and lone surrogates escaped as Python writes them, so it prints
    as itself, on its line, in its column, whether on a terminal or piped to grep or cut."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _fmt(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(c: Checkpoint, parent: Checkpoint | None, names: Sequence[str] = (),
              shorts: Mapping[str, str] | None = None, *, dated: bool = False) -> str:
    """A checkpoint's line: id, what made it, tags, and the config and stats it changed
    (dated: its creation time, UTC to the second, after the id)."""
    short = (shorts or {}).get
    if c.parent_id is None:
        label = "root"
    elif c.merged_from:
        label = f"merge of {short(c.merged_from, c.merged_from)}"
    else:
        label = printable(c.stage) if c.stage else "?"
    when = f"  {c.created_at.isoformat(' ', 'seconds')[:19]}" if dated else ""
    parts = [f"{short(c.id, c.id)}{when}  {label}"]
    if names:
        parts.append(" ".join(f"[tag {printable(n)}]" for n in names))
    if c.is_scenario:
        parts.append(f"[scenario {printable(c.scenario_label)}]" if c.scenario_label
                     else "[scenario]")
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


def _children(checkpoints: Sequence[Checkpoint]) -> defaultdict[str | None, list[Checkpoint]]:
    """parent id -> children, in the given order; a checkpoint whose parent is not among
    them (the root) under None."""
    ids = {c.id for c in checkpoints}
    kids: defaultdict[str | None, list[Checkpoint]] = defaultdict(list)
    for c in checkpoints:
        kids[c.parent_id if c.parent_id in ids else None].append(c)
    return kids


def tree_levels(checkpoints: Sequence[Checkpoint]) -> dict[str, int]:
    """Checkpoint id -> its level in the tree, the root's 1 (as `tree -L` counts)."""
    kids = _children(checkpoints)
    levels: dict[str, int] = {}
    stack = [(c, 1) for c in kids[None]]
    while stack:  # iterative: trees may be thousands deep
        node, level = stack.pop()
        levels[node.id] = level
        stack.extend((c, level + 1) for c in kids.get(node.id, ()))
    return levels


def render_tree(timeline: Timeline, checkpoints: list[Checkpoint],
                tags: Mapping[str, Sequence[str]] | None = None,
                shorts: Mapping[str, str] | None = None,
                pending: Mapping[str, Sequence[str]] | None = None, *,
                ascii_only: bool = False, depth: int | None = None) -> str:
    """The tree as indented lines (children oldest first), like `tree` or `git log --graph`;
    tags: checkpoint id -> tag names shown on its line; shorts: id -> short id shown in
    its place (timeline and checkpoints; full ids where missing); pending: checkpoint id ->
    lines of what is under way there (open stage runs), drawn as its last children.
    ascii_only: branches drawn as `tree --charset=ascii` draws them (for an output
    that cannot encode box-drawing characters). depth: the levels drawn (`tree -L`); a
    checkpoint on the last with more below says how many."""
    last_branch, branch_, down = ("`-- ", "|-- ", "|   ") if ascii_only else (
        "└── ", "├── ", "│   ")
    by_id = {c.id: c for c in checkpoints}
    kids = _children(checkpoints)
    below = _below(kids, pending or {}) if depth is not None else {}
    profile = f"{printable(timeline.profile_name)}, " if timeline.profile_name else ""
    name = (shorts or {}).get(timeline.id, timeline.id)
    lines = [
        f"timeline {name}  {printable(timeline.source_video)}  "
        f"({profile}{sampled_duration(timeline)} sampled, "
        f"{plural(timeline.frame_count, 'frame')}{_rate(timeline, '@')}"
        f"{_source(timeline)}, {plural(len(checkpoints), 'checkpoint')})"
    ]
    roots: list[Checkpoint | str] = list(kids[None])
    stack = [(c, "", i == len(roots) - 1, 1) for i, c in enumerate(roots)][::-1]
    while stack:  # iterative: trees may be thousands deep
        node, prefix, last, level = stack.pop()
        branch = prefix + (last_branch if last else branch_)
        if isinstance(node, str):  # a pending node (an open stage run)
            lines.append(branch + node)
            continue
        parent = by_id.get(node.parent_id) if node.parent_id else None
        lines.append(branch + _describe(node, parent, (tags or {}).get(node.id, ()), shorts))
        child_prefix = prefix + ("    " if last else down)
        if depth is not None and level >= depth:
            if any(below[node.id]):
                lines.append(f"{child_prefix}{last_branch}... {_more(below[node.id])} below")
            continue
        children: list[Checkpoint | str] = [*kids.get(node.id, []),
                                            *(pending or {}).get(node.id, ())]
        for i in range(len(children) - 1, -1, -1):
            stack.append((children[i], child_prefix, i == len(children) - 1, level + 1))
    return "\n".join(lines)


def _below(kids: Mapping[str | None, Sequence[Checkpoint]],
           pending: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, int]]:
    """Checkpoint id -> (checkpoints, pending runs) below it, for all at once."""
    order: list[Checkpoint] = []
    stack = list(kids.get(None, ()))
    while stack:  # parents before children; counted in reverse, children first
        node = stack.pop()
        order.append(node)
        stack.extend(kids.get(node.id, ()))
    below: dict[str, tuple[int, int]] = {}
    for node in reversed(order):
        n, runs = 0, len(pending.get(node.id, ()))
        for c in kids.get(node.id, ()):
            cn, cr = below[c.id]
            n, runs = n + 1 + cn, runs + cr
        below[node.id] = (n, runs)
    return below


def _more(counts: tuple[int, int]) -> str:
    n, runs = counts
    parts = ([plural(n, "checkpoint")] if n else []) + ([plural(runs, "open run")] if runs
                                                        else [])
    return " and ".join(parts)


def render_log(lineage: Sequence[Checkpoint], tags: Mapping[str, Sequence[str]] | None = None,
               shorts: Mapping[str, str] | None = None, limit: int | None = None) -> str:
    """A lineage (root first) as `git log --oneline` prints history: newest first, a line
    each, with its time and only what it changed beside its parent; limit: the newest
    that many."""
    lines = []
    last = 0 if limit is None else max(len(lineage) - limit, 0)
    for i in range(len(lineage) - 1, last - 1, -1):
        c = lineage[i]
        lines.append(_describe(c, lineage[i - 1] if i else None, (tags or {}).get(c.id, ()),
                               shorts, dated=True))
    return "\n".join(lines)


def render_checkpoint(c: Checkpoint, outputs: dict[str, Any], tags: Sequence[str] = (),
                      shorts: Mapping[str, str] | None = None) -> str:
    """One checkpoint: ids (short id, then the full id), tags, config, stats, outputs."""
    short = (shorts or {}).get

    def both(record_id: str | None) -> str:
        if record_id is None:
            return "-"
        s = short(record_id)
        return f"{s}  ({record_id})" if s and s != record_id else record_id

    lines = [
        f"checkpoint {both(c.id)}",
        f"timeline   {both(c.timeline_id)}",
        f"parent     {both(c.parent_id)}",
        f"stage      {printable(c.stage) if c.stage else '-'}",
        f"tags       {', '.join(map(printable, tags)) if tags else '-'}",
        f"created    {c.created_at.isoformat()}",
    ]
    if c.is_scenario:
        lines.append(f"scenario   {printable(c.scenario_label) or '(unlabelled)'}")
    if c.merged_from:
        lines.append(f"merged     {both(c.merged_from)}")
    lines.append("config     " + json.dumps(dict(c.config_overrides), sort_keys=True))
    lines.append("stats      " + json.dumps(dict(c.stats), sort_keys=True))
    lines.append("outputs")
    for stage, value in outputs.items():
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        if len(text) > 200:
            text = text[:197] + "..."
        lines.append(f"  {printable(stage)} ({c.stage_hashes[stage][:12]}): {text}")
    if not outputs:
        lines.append("  (none)")
    return "\n".join(lines)
