"""Names people use in the web view: short ids to show, references to accept.

Short ids and references are :mod:`localckpt.refs`'s, as everywhere else (the CLI, the
Python API): :class:`Names` remembers the short ids of one request, and :func:`resolve`
turns what a URL carries into a full id (a full id, a tag, a short id, a unique prefix
of an id, or ``TIMELINE:stage``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import refs
from ..errors import NotFoundError
from ..schema import check_id

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Gone", "Names", "check_ref", "missing", "no_frame", "resolve"]

_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class Gone(NotFoundError):
    """A reference to something deleted, with where to go instead: links [(href, text)]
    that the error page (and the JSON error) offers."""

    def __init__(self, message: str, links: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.links = links


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


class Names:
    """Short ids for one request, each computed once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: dict[tuple[str, str], str] = {}

    def short(self, ident: str, kind: str = "checkpoint") -> str:
        """The short id of ident (an existing timeline or checkpoint id)."""
        return self.shorts([ident], kind)[ident]

    def shorts(self, idents: Iterable[str], kind: str = "checkpoint") -> dict[str, str]:
        wanted = list(dict.fromkeys(idents))
        missing = [i for i in wanted if (kind, i) not in self._known]
        if missing:
            for ident, short in refs.short_ids(self.store, missing, kind).items():
                self._known[(kind, ident)] = short
        return {i: self._known[(kind, i)] for i in wanted}


def resolve(store: Store, ref: str, kind: str = "checkpoint") -> str:
    """The full id ref names (see :func:`localckpt.refs.resolve`). NotFoundError when
    nothing matches; InvalidInputError listing the candidates when several do."""
    try:
        return refs.resolve(store, ref, kind)
    except NotFoundError as exc:
        gone = _deleted(store, ref, kind)
        if isinstance(gone, Gone):
            raise gone from None
        raise NotFoundError(gone or missing(store, str(exc))) from None


#: the end of localckpt.refs' message for a reference that names nothing: the command
#: that lists the ids there are
_LISTING = re.compile(r"; see `localckpt [^`]*`$")


def missing(store: Store, message: str) -> str:
    """localckpt.refs' one form for a reference that names nothing, ``no KIND matches REF
    in STORE: why; see LISTING``, as a page says it: the why is the command line's (a tag
    of that name removed, a prefix too short to try), where the web view said "no
    checkpoint 'nope': give its id, short id, a unique prefix or a tag" of its own; the
    store and the command that lists ids left out (the page's header names the store,
    and it links to the timelines). Any other message is returned as it is: the App
    says every NotFoundError through this, whatever path raised it (a frame's image
    resolves its timeline through the Store)."""
    where = store.url or store.catalog.describe()
    return _LISTING.sub("", message.replace(f" in {where}: ", ": ", 1))


def _deleted(store: Store, ref: str, kind: str) -> str | Gone | None:
    """What to say of a full id whose record the catalog still holds but no longer
    shows (pruned, or its timeline deleted, and not yet purged by gc): a link to a
    pruned try otherwise read as a mistyped id, with a link to the tree it was pruned
    from. None when it is not such an id."""
    if kind == "checkpoint":
        found = store.catalog.checkpoints([ref])
        if not found:
            return None
        c = found[0]
        what = f"checkpoint {ref} ({c.stage or 'root'}" + (
            f", {c.scenario_label})" if c.scenario_label else ")")
        try:
            store.get_timeline(c.timeline_id)
        except NotFoundError:
            return f"{what} was deleted with its timeline {c.timeline_id}"
        short = refs.short_id(store, c.timeline_id, "timeline")
        return Gone(f"{what} was deleted: pruned from timeline {short}",
                    [(f"/t/{c.timeline_id}", f"the tree of timeline {short}, without it")])
    if kind == "timeline" and store.catalog.timelines([ref]):
        return f"timeline {ref} was deleted (localckpt rm)"
    return None


def no_frame(timeline: str, sequence: int, sequences: Iterable[int]) -> str:
    """A frame number the timeline lacks, said as `localckpt run show --frame` and
    `similar` say it: "timeline T has no frame 99 (it has 24, sequences 0 to 23)", where
    the view said only "has no frame 99"."""
    have = list(sequences)
    return (f"{timeline} has no frame {sequence} (it has {len(have):,}, sequences "
            f"{min(have, default=0)} to {max(have, default=-1)})")
