"""What deleting and verifying found: small frozen reports with a one-line summary."""

from __future__ import annotations

import attrs

from ..render import Summarised

__all__ = ["COLLECTABLE", "Problem", "PruneReport", "VerifyReport", "freed_text", "human_bytes"]

#: Problem kinds that are not damage: leftovers gc removes (verify stays ok).
COLLECTABLE = frozenset({"unreferenced-object", "temporary-file"})


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@attrs.frozen
class PruneReport(Summarised):
    """What a deletion (delete_timeline, prune, retain) removed, or would remove.

    Attributes:
        timelines: ids of deleted timelines.
        checkpoints: ids of deleted checkpoints (whole subtrees), sorted.
        tags: names of the tags that went with them.
        outputs: stage outputs that no live checkpoint refers to any more.
        objects: frame objects (shards, indexes) no live timeline refers to any more.
        bytes: output_bytes + object_bytes: what ``gc`` frees because of this deletion.
        tombstones: tombstone records written (0 for a dry run).
        dry_run: nothing was written.
        records: catalog records gc purges because of this deletion (timelines,
            checkpoints, tags, outputs; see localckpt.maintenance.freed for the measure).
        output_bytes: bytes of those outputs' canonical JSON.
        object_bytes: bytes of those frame objects.
        closed_runs: ids of the open stage runs the deletion closed (aborted), because
            their timeline or parent checkpoint went; with dry_run, those it would close.
    """

    timelines: tuple[str, ...] = ()
    checkpoints: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    outputs: int = 0
    objects: int = 0
    bytes: int = 0
    tombstones: int = 0
    dry_run: bool = False
    records: int = 0
    output_bytes: int = 0
    object_bytes: int = 0
    closed_runs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.timelines or self.checkpoints)

    def summary(self) -> str:
        from ..render import plural

        verb = "would delete" if self.dry_run else "deleted"
        parts = []
        if self.timelines:
            parts.append(plural(len(self.timelines), "timeline"))
        parts.append(plural(len(self.checkpoints), "checkpoint"))
        if self.tags:
            parts.append(f"{plural(len(self.tags), 'tag')} ({', '.join(self.tags)})")
        closed = ""
        if self.closed_runs:
            closes = "would close" if self.dry_run else "closed"
            closed = (f" and {closes} {plural(len(self.closed_runs), 'open stage run')} "
                      "that depended on them")
        when = "then frees" if not self.dry_run else "would then free"
        return (f"{verb} {', '.join(parts)}{closed}; gc {when} "
                + freed_text(self.objects, self.object_bytes, self.records, self.outputs,
                             self.output_bytes))


def freed_text(objects: int, object_bytes: int, records: int, outputs: int,
               output_bytes: int) -> str:
    """"2 frame objects (1.2 MB) and 5 catalog records (2 outputs, 66.1 KB of JSON)":
    the words prune, retain, rm and gc use for the same measure."""
    from ..render import plural

    return (f"{plural(objects, 'frame object')} ({human_bytes(object_bytes)}) and "
            f"{plural(records, 'catalog record')} ({plural(outputs, 'output')}, "
            f"{human_bytes(output_bytes)} of JSON)")


@attrs.frozen
class Problem:
    """One thing verify found.

    Attributes:
        kind: what is wrong, e.g. "catalog-storage", "output-hash", "output-json",
            "missing-output", "parent", "merged-from", "root", "missing-object",
            "index-hash", "index", "frame-hash", "trailing-bytes" (bytes after a
            shard's last frame), "bad-object" (an object that is no regular file, or
            larger than any localckpt writes: not read), "frame-count", "tombstone" (one
            whose target is of another kind or timeline, which transfers refuse),
            "future" (a record dated
            more than a day after this machine's clock, which transfers refuse),
            "unreadable" (a part of the store that could not be read, so it was not
            checked); or a leftover gc
            removes ("unreferenced-object", "temporary-file": see :data:`COLLECTABLE`).
        record: the id of the record concerned (timeline, checkpoint), or None.
        object: the object key, output hash or catalog file concerned, or None.
        message: what is wrong and what to do, for people.
    """

    kind: str
    record: str | None
    object: str | None
    message: str

    @property
    def collectable(self) -> bool:
        """A leftover that gc removes, not damage."""
        return self.kind in COLLECTABLE


@attrs.frozen
class VerifyReport(Summarised):
    """What verify checked and found.

    ``ok`` is True when nothing is damaged: problems may still list leftovers that gc
    collects (``Problem.collectable``). Counts say how much was checked (frames: those
    the checked indexes hold, damaged ones included). storage_checked: whether the
    catalog's own storage was read through (whole-store runs, or ``--all``).
    unread_objects: frame objects that could not be read (the server refused or failed
    them, or they were not tried once it was out of reach), so were not checked; the
    first ones are problems of kind "unreadable". stopped_reading: why the object reads
    stopped early (the store out of reach, or too many failures in a row), else None.
    """

    problems: tuple[Problem, ...] = ()
    timelines: int = 0
    checkpoints: int = 0
    outputs: int = 0
    objects: int = 0
    frames: int = 0
    bytes: int = 0
    storage_checked: bool = True
    unread_objects: int = 0
    stopped_reading: str | None = None

    @property
    def ok(self) -> bool:
        return not self.damage

    @property
    def damage(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.collectable)

    @property
    def collectable(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.collectable)

    def summary(self) -> str:
        from ..render import plural

        checked = (f"checked {plural(self.timelines, 'timeline')}, "
                   f"{plural(self.checkpoints, 'checkpoint')}, {plural(self.outputs, 'output')}, "
                   f"{plural(self.objects, 'frame object')} ({plural(self.frames, 'frame')}, "
                   f"{human_bytes(self.bytes)})")
        if not self.storage_checked:
            checked += " (not the catalog's own storage: use --all)"
        if self.unread_objects:
            checked += (f"; {plural(self.unread_objects, 'frame object')} could not be read"
                        + (" (the reads stopped early: the object store is out of reach)"
                           if self.stopped_reading else ""))
        damage, leftovers = len(self.damage), len(self.collectable)
        verdict = "no damage" if not damage else plural(damage, "problem")
        if leftovers:
            verdict += f"; {plural(leftovers, 'leftover')} that gc removes"
        return f"{checked}: {verdict}"
