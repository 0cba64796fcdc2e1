"""Names for checkpoints and timelines, resolved in one place for every command.

A reference is, in the order tried:

- a full id;
- ``TIMELINE:stage``: the newest checkpoint of that timeline (itself any reference to a
  timeline) that added ``stage``;
- a tag name (see ``Store.tag``);
- a unique prefix of an id, at least :data:`MIN_PREFIX` characters (as git takes hashes).

An ambiguous prefix is an error that lists the candidates; nothing else is guessed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["MIN_PREFIX", "resolve_checkpoint", "resolve_timeline"]

#: Shortest id prefix accepted (shorter ones match too much once a store grows).
MIN_PREFIX = 6
_LISTED = 10
_PREFIX = re.compile(r"[0-9a-f-]+")


def _by_prefix(store: Store, kind: str, ref: str) -> str:
    what = "timeline" if kind == "timeline" else "checkpoint"
    listing = "`localckpt ls`" if kind == "timeline" else "`localckpt tree TIMELINE`"
    if len(ref) < MIN_PREFIX or not _PREFIX.fullmatch(ref):
        raise NotFoundError(
            f"no {what} {ref!r}: give its id, or a prefix of at least {MIN_PREFIX} characters "
            f"(see {listing})"
        )
    matches = store.catalog.find_ids(kind, ref, limit=_LISTED + 1)
    if kind == "timeline":
        matches = [t.id for t in store.live_timelines(matches)]
    else:
        matches = [c.id for c in store.live_checkpoints(matches)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFoundError(f"no {what} matches {ref!r} (see {listing})")
    count = str(len(matches)) if len(matches) <= _LISTED else f"more than {_LISTED}"
    shown = ", ".join(matches[:_LISTED]) + (", ..." if len(matches) > _LISTED else "")
    raise InvalidInputError(
        f"{ref!r} is ambiguous: {count} {what} ids start with it ({shown}); "
        "give more characters"
    )


def resolve_timeline(store: Store, ref: str) -> str:
    """The full id of the timeline ref names (a full id or a unique prefix)."""
    if not isinstance(ref, str) or not ref:
        raise InvalidInputError(f"a timeline reference must be a non-empty string, not {ref!r}")
    if store.live_timelines([ref]):
        return ref
    return _by_prefix(store, "timeline", ref)


def resolve_checkpoint(store: Store, ref: str) -> str:
    """The full id of the checkpoint ref names (see the module docstring for the forms)."""
    if not isinstance(ref, str) or not ref:
        raise InvalidInputError(f"a checkpoint reference must be a non-empty string, not {ref!r}")
    if ":" in ref:
        timeline_ref, _, stage = ref.rpartition(":")
        return _latest_of_stage(store, resolve_timeline(store, timeline_ref), stage)
    if store.live_checkpoints([ref]):
        return ref
    tagged = store.tag_target(ref)
    if tagged is not None:
        return tagged
    return _by_prefix(store, "checkpoint", ref)


def _latest_of_stage(store: Store, timeline_id: str, stage: str) -> str:
    if not stage:
        raise InvalidInputError(
            "TIMELINE:stage needs a stage name after the colon (e.g. 0192ab:detect)"
        )
    found = [c for c in store.checkpoints(timeline_id) if c.stage == stage]
    if not found:
        raise NotFoundError(f"no checkpoint of timeline {timeline_id} added stage {stage!r}")
    return max(found, key=lambda c: (c.created_at, c.id)).id
