"""References: the names people type for checkpoints and timelines, resolved in one place.

Every public :class:`~localckpt.Store` method that takes a checkpoint or a timeline id,
and every command of the CLI, accepts a *reference*. :meth:`Store.resolve
<localckpt.Store.resolve>` turns one into a full id; these are the forms, in the order
they are tried:

1. **A full id** (``0193a4c2-7d1e-7f00-8a3b-5c2e9f01b09b``). A Store method takes a
   well-formed UUID as an id without asking the catalog (the fast path: its own lookup
   says NotFoundError if no such record is live; ``Store.resolve`` itself checks), so
   tag names cannot look like UUIDs. Other ids (records from other systems may use any
   id of 1-128 letters, digits, ``-`` and ``_``) are found by an exact match, which
   wins over a prefix but not over a tag or another record's short id spelled the same:
   that is ambiguous (an imported record cannot take over a name of yours).
2. **TIMELINE:stage** (checkpoints only): the newest checkpoint of that timeline (itself
   any reference to a timeline) that added ``stage``, e.g. ``9c1f07e2:detect``.
3. **A tag** (see :meth:`Store.tag <localckpt.Store.tag>`): the checkpoint it names; for
   a timeline reference, that checkpoint's timeline (``localckpt tree best``).
4. **A short id**: the form ``localckpt ls`` and ``tree`` show, e.g. ``9c1f07e2``. It is
   the start of the id's *tail* (:func:`localckpt.ids.id_tail`: the last 12 characters
   without dashes, which in a UUIDv7 are random), at least :data:`localckpt.ids.SHORT_MIN`
   characters long, and as long as it needs to be to be unique in the store among the
   ids of its kind, as git abbreviates hashes (``core.abbrev``). Ids made in the same
   millisecond share their first 13 characters but not their tails, so their short ids
   differ. Any other start of the tail of :data:`MIN_SHORT` (4) or more characters
   works too, shorter or longer, when one record's tail starts with it (git takes an
   abbreviated hash of 4).
5. **A unique prefix of the full id**, at least :data:`MIN_PREFIX` characters
   (``0193a4c2-7d``).

A tag wins over a short id or prefix spelled the same (names people chose come first,
as git's refs do over hashes), and a short id that matches one live record wins over
reading the same characters as a prefix of full ids (short ids are what the CLI shows,
so they must always work). A reference that matches several records is an
:class:`~localckpt.errors.InvalidInputError` listing the candidates, each with its short
id, so the next attempt can be exact; one that matches nothing is a
:class:`~localckpt.errors.NotFoundError` in one form, ``no KIND matches REF in STORE: why;
see LISTING``: why names a tag of that name that was removed (with its checkpoint, or by
untag: then the checkpoint it named) or a prefix too short to try. Deleted records
never match. Ids, short ids and prefixes match in either case (ids are stored lower-case);
tags are case-sensitive and are tried first as given.

Short ids are shown by :meth:`Store.short_id <localckpt.Store.short_id>` and
:meth:`Store.short_ids <localckpt.Store.short_ids>` (one catalog call per id on a
catalog with an index, one scan for the whole batch otherwise). The mechanism is generic
over the *kind* of record: a new kind (stage runs) is one :func:`register_kind` call and
``Catalog.find_ids`` / ``Catalog.find_short`` support for it.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from . import arguments
from .catalog import Catalog
from .errors import InvalidInputError, LocalckptError, NotFoundError
from .ids import SHORT_MIN, id_tail, is_full_uuid

if TYPE_CHECKING:
    from .store import Store
    from .types import Tag

__all__ = [
    "MIN_PREFIX",
    "MIN_SHORT",
    "Kind",
    "could_spell_short_id",
    "hidden_by_tags",
    "is_full_uuid",
    "listing_here",
    "register_kind",
    "resolve",
    "resolve_checkpoint",
    "resolve_timeline",
    "shadowed_by",
    "short_id",
    "short_ids",
]

#: Shortest prefix of a full id accepted (shorter ones match too much once a store grows).
MIN_PREFIX = 6
#: Fewest characters of a short id tried when typed, as git takes an abbreviated hash
#: of 4 (shown, short ids have SHORT_MIN or more: what is typed may be shorter).
MIN_SHORT = 4
_LISTED = 10
_PROBE = 64  # ids fetched per find_short call while computing a short id
_TAIL = 12


class Kind(NamedTuple):
    """One kind of record that references can name (a NamedTuple: an attrs class cost
    ~1 ms to make at import, on the first read of every CLI command).

    Attributes:
        noun: what messages call it ("checkpoint").
        listing: the command that lists its ids, for messages.
        live: the ids among the given ones whose records exist and are live.
    """

    noun: str
    listing: str
    live: Callable[[Store, list[str]], list[str]]


def _live_timelines(store: Store, ids: list[str]) -> list[str]:
    return [t.id for t in store.visibility.live_timelines(ids)] if ids else []


def _live_checkpoints(store: Store, ids: list[str]) -> list[str]:
    return [c.id for c in store.visibility.live_checkpoints(ids)] if ids else []


def _live_runs(store: Store, ids: list[str]) -> list[str]:
    """Runs have no tombstones: every stored one counts."""
    tables = getattr(store.catalog, "runs", None)
    if tables is None or not tables.available or not ids:
        return []
    return [i for i in ids if tables.get(i) is not None]


_KINDS: dict[str, Kind] = {
    "timeline": Kind("timeline", "`localckpt ls`", _live_timelines),
    "checkpoint": Kind("checkpoint", "`localckpt tree TIMELINE`", _live_checkpoints),
    "run": Kind("run", "`localckpt runs`", _live_runs),
}


def register_kind(name: str, kind: Kind) -> None:
    """Make references to records of kind ``name`` resolvable (``resolve(ref, name)``)
    and give them short ids. The catalog's ``find_ids`` and ``find_short`` must know the
    kind."""
    _KINDS[name] = kind


def _kind(name: str) -> Kind:
    found = _KINDS.get(name) if isinstance(name, str) else None
    if found is None:
        raise InvalidInputError(
            f"kind must be one of {', '.join(repr(k) for k in sorted(_KINDS))}, not "
            f"{arguments.shown(name)}")
    return found


# -- short ids ------------------------------------------------------------------------------


def _common(a: str, b: str) -> int:
    """How many leading characters a and b share (any count under SHORT_MIN gives the
    same short id, so those are not told apart)."""
    if a[:SHORT_MIN] != b[:SHORT_MIN]:
        return 0
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _shortest(record_id: str, tail: str, deepest: int) -> str:
    """The short id of record_id, when another id's tail shares deepest characters."""
    need = max(SHORT_MIN, deepest + 1)
    return tail[:need] if need <= len(tail) and need < len(record_id) else record_id


def _indexed(catalog: Catalog) -> bool:
    """Whether the catalog answers find_short from an index (else it scans every id)."""
    return type(catalog).find_short is not Catalog.find_short


def short_id(store: Store, record_id: str, kind: str = "checkpoint") -> str:
    """The short id of one record (see the module docstring): the shortest start of its
    tail, at least SHORT_MIN characters, that no other id of its kind in the store shares
    (deleted records not yet collected by gc included, so a short id never changes
    meaning when gc runs). An id whose whole tail is shared is its own short id."""
    _kind(kind)
    if not _indexed(store.catalog):
        return short_ids(store, [record_id], kind)[record_id]
    tail = id_tail(record_id)
    n = min(SHORT_MIN, len(tail))
    while True:
        found = store.catalog.find_short(kind, tail[:n], limit=_PROBE)
        if len(found) < _PROBE or n >= len(tail):
            break
        n += 1  # many share this start (or a huge store): look closer
    deepest = max((_common(tail, id_tail(f)) for f in found if f != record_id), default=0)
    return _shortest(record_id, tail, deepest)


def short_ids(store: Store, ids: Iterable[str], kind: str = "checkpoint", *,
              held_only: bool = False) -> dict[str, str]:
    """Short ids of many records: full id -> short id. On a catalog with an index, one
    query for their neighbours in tail order (Catalog.short_neighbours; else one
    find_short call per id); otherwise one listing of every id of the kind, for all.
    held_only: the ids the store holds no record of (live, or deleted until gc purges
    it) are left out, told by that same read (no find_short per id then)."""
    wanted = list(dict.fromkeys(ids))
    _kind(kind)
    if not wanted:
        return {}
    indexed = _indexed(store.catalog)
    near = store.catalog.short_neighbours(kind, wanted) if indexed else None
    if near is not None or (indexed and not held_only):
        near = near or {}
        out = {}
        for rid in wanted:
            if rid not in near:  # not stored (or no neighbours query): one lookup
                if not held_only:
                    out[rid] = short_id(store, rid, kind)
                continue
            tail = id_tail(rid)
            deepest = max((_common(tail, t) for t in near[rid] if t is not None), default=0)
            out[rid] = _shortest(rid, tail, deepest)
        return out
    every = store.catalog.find_short(kind, "", limit=1 << 62)
    held = set(every)
    if held_only:
        wanted = [i for i in wanted if i in held]
    tails = sorted((id_tail(i), i) for i in held | set(wanted))
    keys = [t for t, _ in tails]
    out = {}
    for rid in wanted:
        tail = id_tail(rid)
        at = bisect.bisect_left(tails, (tail, rid))
        deepest = 0
        for j in (at - 1, at + 1):  # the nearest tails in sort order share the most
            if 0 <= j < len(keys):
                deepest = max(deepest, _common(tail, keys[j]))
        out[rid] = _shortest(rid, tail, deepest)
    return out


# -- resolving ------------------------------------------------------------------------------


def _how_to_pass(ref: object) -> str:
    """What to pass instead of a record (its .id) or a UUID (its text)."""
    import uuid

    if isinstance(ref, uuid.UUID):
        return f": pass str() of it ({str(ref)!r})"
    try:
        rid = getattr(ref, "id", None)
    except Exception:  # an attribute of its own that fails
        return ""
    return f": pass its .id ({rid!r})" if isinstance(rid, str) and len(rid) <= 100 else ""


def _check_ref(ref: object, kind: str, what: str | None) -> str:
    if not isinstance(ref, str):
        name = what or f"a {kind} reference"
        raise InvalidInputError(
            f"{name} must be a {kind} id, short id, prefix or tag (a string), not "
            f"{arguments.with_article(type(ref).__name__)}{_how_to_pass(ref)}")
    if not ref:
        raise NotFoundError(f"no {kind} '' (an empty reference names nothing)")
    if not ref.isascii():  # ids and short ids are; a tag name is valid Unicode
        try:
            ref.encode("utf-8")
        except UnicodeEncodeError:  # bytes of an argument that are not UTF-8, or so
            raise InvalidInputError(
                f"the {kind} reference {ref!r} is not text (bytes that are not UTF-8?), so "
                "it names nothing: ids, short ids and tag names are text") from None
    return ref


def _label(store: Store, kind: str, ids: list[str]) -> str:
    shorts = short_ids(store, ids, kind)
    return ", ".join(f"{shorts[i]} ({i})" for i in ids)


def _ambiguous(store: Store, kind: str, ref: str, matches: list[str], how: str) -> None:
    k = _kind(kind)
    shown = matches[:_LISTED]
    count = str(len(matches)) if len(matches) <= _LISTED else f"more than {_LISTED}"
    more = ", ..." if len(matches) > _LISTED else ""
    raise InvalidInputError(
        f"{ref!r} is ambiguous: {count} {k.noun}s {how} it: {_label(store, kind, shown)}"
        f"{more}; give one of these short ids, or more characters"
    )


def resolve(store: Store, ref: str, kind: str = "checkpoint", *, what: str | None = None,
            check: bool = True) -> str:
    """The full id of the live record of this kind that ref names (the module docstring
    lists the forms). NotFoundError when nothing matches, InvalidInputError when several
    do (listing them) or ref is not a non-empty string.

    what: the parameter's name, for the message about a non-string. check False: a
    well-formed UUID comes back as it is, without a catalog call (the Store's methods
    look the record up anyway, and say NotFoundError themselves).
    """
    _kind(kind)  # first: the messages about ref name the kind
    ref = _check_ref(ref, kind, what)
    try:
        return _resolve(store, ref, kind, check)
    except NotFoundError:
        if ref == ref.lower() or not _HEXISH.fullmatch(ref):
            raise
    # ids are stored lower-case; a short id or prefix typed (or copied) in upper case
    # names the same record, as git takes an abbreviated hash in either case
    return _resolve(store, ref.lower(), kind, check)


_HEXISH = re.compile(r"[0-9A-Fa-f-]+")
_HEX = re.compile(r"[0-9a-f]+")


def _resolve(store: Store, ref: str, kind: str, check: bool) -> str:
    k = _KINDS[kind]  # resolve checked it
    if len(ref) == 36 and is_full_uuid(ref.lower()):
        ref = ref.lower()  # UUIDs are case-insensitive (RFC 9562); ids are stored lower-case
    if is_full_uuid(ref):
        if not check or k.live(store, [ref]):
            return ref
        raise NotFoundError(_missing(store, kind, ref))
    if kind == "checkpoint" and ":" in ref:
        timeline_ref, _, stage = ref.rpartition(":")
        return _latest_of_stage(store, resolve(store, timeline_ref, "timeline"), stage)
    by_prefix = k.live(store, store.catalog.find_ids(kind, ref, limit=_LISTED + 1))
    # an id that is not a UUID, given whole: exact, unless it is also a tag's name or
    # another record's short id (a record imported with the id "best", or with the short
    # id of one of yours, must not take over what that name meant: ambiguous)
    exact = ref in by_prefix
    if kind in ("checkpoint", "timeline"):
        tagged = store.tag_target(ref) if _could_be_tag(ref) else None
        if tagged is not None:
            named = tagged if kind == "checkpoint" else \
                store.visibility.checkpoint(tagged).timeline_id
            if exact and named != ref:
                _ambiguous(store, kind, ref, sorted({ref, named}),
                           "are named by the id or the tag")
            return named
    if MIN_SHORT <= len(ref) <= _TAIL and "-" not in ref:
        by_tail = k.live(store, store.catalog.find_short(kind, ref, limit=_LISTED + 1))
        if exact and set(by_tail) - {ref}:
            _ambiguous(store, kind, ref, sorted(set(by_tail) | {ref}),
                       "have the id or short ids that start with")
        if len(by_tail) == 1:
            return by_tail[0]
        if by_tail:
            _ambiguous(store, kind, ref, sorted(set(by_tail) | set(by_prefix)),
                       "have ids or short ids that start with")
    if exact:
        return ref
    if len(ref) < MIN_PREFIX:
        raise NotFoundError(_missing(store, kind, ref))
    if len(by_prefix) == 1:
        return by_prefix[0]
    if by_prefix:
        _ambiguous(store, kind, ref, by_prefix, "have ids that start with")
    raise NotFoundError(_missing(store, kind, ref))


def _missing(store: Store, kind: str, ref: str) -> str:
    """What a reference that names nothing is told, in one form: ``no KIND matches REF in
    STORE: why; see LISTING`` (why: the tag of that name was removed, with its checkpoint
    or by untag; a prefix too short to be tried; or no form matched)."""
    k = _kind(kind)
    tags = kind != "run"  # a timeline reference takes a tag too (its checkpoint's timeline)
    why = _removed_tag(store, ref) if tags and _could_be_tag(ref) else None
    if why is None:
        no_tag = f"no live tag is named {ref!r}, and " if tags else ""
        live = "live " * tags
        if len(ref) < MIN_SHORT:
            why = (f"{no_tag}a short id needs {MIN_SHORT}+ characters, an id prefix "
                   f"{MIN_PREFIX}+")
        elif len(ref) < MIN_PREFIX:
            why = (f"{no_tag}no {live}{k.noun} has a short id that starts with it (an id "
                   f"prefix needs {MIN_PREFIX}+ characters)")
        else:
            why = (f"no {live}{k.noun} has that id, short id or id prefix"
                   + (", and no live tag that name" if tags else ""))
    return names_nothing(store, k, ref, why)


def names_nothing(store: Store, k: Kind, ref: str, why: str) -> str:
    """The one form of a reference that names nothing, ``no KIND matches REF in STORE:
    why; see LISTING``, for every kind a message names (the web view strips the store
    and the listing: localckpt.web.names.missing)."""
    where = store.url or store.catalog.describe()
    return f"no {k.noun} matches {ref!r} in {where}: {why}; see {_listing_here(store, k)}"


def _removed_tag(store: Store, ref: str) -> str | None:
    """Why a tag of this name names nothing now, if one did (the catalog keeps a removed
    tag's record until gc purges it): it went with its checkpoint, or untag removed it
    (then which checkpoint it named, still there). None when no tag had this name."""
    records = store.catalog.tags_named(ref)
    if not records:
        return None
    last = max(records, key=lambda g: (g.created_at, g.id))  # what it named most lately
    if not _live_checkpoints(store, [last.checkpoint_id]):
        return (f"the tag {ref} went with the checkpoint it named (pruned, or its timeline "
                "deleted)")
    short = short_id(store, last.checkpoint_id, "checkpoint")
    return (f"the tag {ref} was removed (untag); it named {short}, which is still there "
            f"({listing_here(store, f'`localckpt tag {short} {ref}`')} tags it again)")


def _listing_here(store: Store, k: Kind) -> str:
    return listing_here(store, k.listing)


def listing_here(store: Store, listing: str) -> str:
    """The command listing (```localckpt ls```) for this store: with ``--store URL`` when
    the store is not the one a bare command opens (`localckpt ls` after `localckpt --store
    team tree T` mistyped would list another store's)."""
    from .registry import default_url, redact

    url = store.url
    if not url or url.startswith("memory://") or not listing.startswith("`localckpt "):
        return listing
    try:  # said without its password, as the store's url is (registry.open)
        default = redact(default_url()[0])
    except LocalckptError:  # a config file that does not read: say the plain command
        return listing
    if os.path.abspath(url) == os.path.abspath(default) if "://" not in url + default \
            else url == default:
        return listing
    import shlex

    return f"`localckpt --store {shlex.quote(redact(url))} {listing[len('`localckpt '):]}"


def could_spell_short_id(name: str) -> bool:
    """Whether name could be (the start of) a short id: hex, 4 characters or more."""
    return MIN_SHORT <= len(name) <= _TAIL and bool(_HEX.fullmatch(name.lower()))


def shadowed_by(store: Store, name: str) -> list[tuple[str, str]]:
    """(kind, id) of the live checkpoints and timelines a tag called name would hide:
    those whose short id starts with it (a tag wins over a short id spelled the same)."""
    short = name.lower()
    if not could_spell_short_id(name):
        return []
    return [(kind, rid) for kind in ("checkpoint", "timeline")
            for rid in _KINDS[kind].live(store, store.catalog.find_short(kind, short, 2))]


#: Tag names looked up as short ids per call of hidden_by_tags, at most.
HIDDEN_CHECKS = 100


def hidden_by_tags(store: Store, tags: Iterable[Tag]) -> list[tuple[str, str, str]]:
    """(name, kind, id) for each of these tags (the live ones their names resolve to)
    whose name hides the short id of a live checkpoint or timeline other than its own
    (its checkpoint and that one's timeline): Store.tag refuses such a name, but a
    transfer or an older store may hold one. Only names that can spell a short id are
    looked up (two index seeks each), at most HIDDEN_CHECKS of them."""
    out = []
    spelled = sorted((g for g in tags if could_spell_short_id(g.name)), key=lambda g: g.name)
    for g in spelled[:HIDDEN_CHECKS]:
        own = {g.checkpoint_id, g.timeline_id}
        out += [(g.name, kind, rid) for kind, rid in shadowed_by(store, g.name)
                if rid not in own]
    return out


def _could_be_tag(ref: str) -> bool:
    from .maintenance.tags import is_tag_name

    return is_tag_name(ref)


def resolve_timeline(store: Store, ref: str) -> str:
    """The full id of the timeline ref names (``resolve(store, ref, "timeline")``)."""
    return resolve(store, ref, "timeline")


def reference_list(value: object, what: str) -> list[str]:
    """References given as one string or an iterable of strings, as a list (each is
    checked when resolved); InvalidInputError for anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise InvalidInputError(f"{what} must be a checkpoint reference or a list of them, "
                                f"not {type(value).__name__}")
    refs = list(value)
    for ref in refs:
        _check_ref(ref, "checkpoint", what)
    return refs


def resolve_checkpoint(store: Store, ref: str) -> str:
    """The full id of the checkpoint ref names (``resolve(store, ref, "checkpoint")``)."""
    return resolve(store, ref, "checkpoint")


def _latest_of_stage(store: Store, timeline_id: str, stage: str) -> str:
    if not stage:
        raise InvalidInputError(
            "TIMELINE:stage needs a stage name after the colon (e.g. 9c1f07e2:detect)"
        )
    tree = store.checkpoints(timeline_id)
    found = [c for c in tree if c.stage == stage]
    if not found:  # by the short id the user typed, with the stages there are (a typo?)
        stages = ", ".join(sorted({repr(c.stage) for c in tree if c.stage})) or "none"
        raise NotFoundError(f"no checkpoint of timeline "
                            f"{store.short_id(timeline_id, 'timeline')} added stage "
                            f"{stage!r} (stages there: {stages})")
    return max(found, key=lambda c: (c.created_at, c.id)).id
