"""Names people use in the web view: short ids to show, references to accept.

A *short id* is the shortest prefix of an id's tail (:func:`localckpt.ids.id_tail`, the
random end of a UUIDv7), at least :data:`~localckpt.ids.SHORT_MIN` characters, that no
other id of its kind in the store shares (as git abbreviates hashes). Ids made in the
same millisecond share their start, not their tail, so short ids of config tries differ.

:class:`Names` computes them for one request. Where the catalog answers
``find_short`` from an index, each id costs one lookup (two when its first 8 characters
are shared); where ``find_short`` is the base class's scan of every record, one scan
per request serves every id the page shows.

:func:`resolve` turns what a URL carries into a full id: a full id, a tag, a short id, a
unique prefix of an id, or ``TIMELINE:stage`` (:mod:`localckpt.refs`).

(The "everyday" work adds short ids to ``localckpt.refs`` and ``Store.resolve``; this
module keeps the web's needs in one place until they meet.)
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..catalog import Catalog
from ..errors import InvalidInputError, NotFoundError
from ..ids import SHORT_MIN, id_tail
from ..refs import resolve_checkpoint, resolve_timeline
from ..schema import check_id

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Names", "check_ref", "resolve"]

_TAIL = 12
_SHORT = re.compile(rf"[0-9a-f]{{{SHORT_MIN},{_TAIL}}}")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_LISTED = 10


def check_ref(value: str, what: str) -> str:
    """value if it can name a checkpoint or timeline (id, tag, short id, prefix,
    TIMELINE:stage), else InvalidInputError (a 400: it is never used as a path)."""
    if _TAG.fullmatch(value):
        return value
    base, colon, stage = value.partition(":")
    if colon and stage and len(stage) <= 200 and stage.isprintable():
        check_id(base, what)
        return value
    return check_id(value, what)


def _scans(catalog: Catalog) -> bool:
    """Whether the catalog's find_short is the base class's scan of every record."""
    return type(catalog).find_short is Catalog.find_short


class Names:
    """Short ids for one request (see the module docstring for what each costs)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: dict[str, str] = {}
        self._sorted: dict[str, list[str]] = {}  # kind -> every tail, sorted (scan mode)

    def short(self, ident: str, kind: str = "checkpoint") -> str:
        """The short id of ident (an existing timeline or checkpoint id)."""
        found = self._known.get(ident)
        if found is None:
            found = self._known[ident] = self._compute(ident, kind)
        return found

    def shorts(self, idents: Iterable[str], kind: str = "checkpoint") -> dict[str, str]:
        return {i: self.short(i, kind) for i in idents}

    def _compute(self, ident: str, kind: str) -> str:
        tail = id_tail(ident)
        if len(tail) <= SHORT_MIN:
            return tail
        catalog = self.store.catalog
        if _scans(catalog):
            tails = self._sorted.get(kind)
            if tails is None:
                tails = self._sorted[kind] = sorted(
                    id_tail(i) for i in catalog.find_short(kind, "", limit=1 << 62))
            lo, hi = bisect.bisect_left(tails, tail), bisect.bisect_right(tails, tail)
            if hi - lo > 1:  # another id with this very tail: nothing shorter tells them apart
                return tail
            shared = max([_common(tails[j], tail) for j in (lo - 1, hi)
                          if 0 <= j < len(tails)], default=0)
            return tail[:max(SHORT_MIN, shared + 1)]
        n = SHORT_MIN
        while n < len(tail) and len(catalog.find_short(kind, tail[:n], limit=2)) > 1:
            n += 1
        return tail[:n]


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def resolve(store: Store, ref: str, kind: str = "checkpoint") -> str:
    """The full id ref names: a full id, a tag (checkpoints), a short id, a unique
    prefix, or TIMELINE:stage (checkpoints). NotFoundError when nothing matches;
    InvalidInputError listing the candidates when a short id is ambiguous."""
    if kind == "checkpoint":
        if store.live_checkpoints([ref]):
            return ref
        tagged = store.tag_target(ref) if _TAG.fullmatch(ref) else None
        if tagged is not None:
            return tagged
    elif store.live_timelines([ref]):
        return ref
    if _SHORT.fullmatch(ref):
        found = store.catalog.find_short(kind, ref, limit=_LISTED + 1)
        live = ([c.id for c in store.live_checkpoints(found)] if kind == "checkpoint" else
                [t.id for t in store.live_timelines(found)])
        if len(live) == 1:
            return live[0]
        if len(live) > 1:
            shown = ", ".join(live[:_LISTED]) + (", ..." if len(live) > _LISTED else "")
            raise InvalidInputError(f"{ref!r} is ambiguous: {kind} ids {shown} all end in "
                                    "it; give more characters")
    try:
        if kind == "checkpoint":
            return resolve_checkpoint(store, ref)
        return resolve_timeline(store, ref)
    except NotFoundError:
        raise NotFoundError(f"no {kind} {ref!r}: give its id, short id, a unique prefix"
                            + (" or a tag" if kind == "checkpoint" else "")) from None
