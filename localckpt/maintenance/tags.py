"""Tags: names for checkpoints, usable wherever an id is (``localckpt.refs``).

A tag is a record (:class:`localckpt.Tag`); untagging writes a tombstone for it, and
tagging the name again makes a new record, so tags travel with sync like everything
else. Names are unique among a store's live tags; if sync brings two live tags of one
name together (each store tagged a different checkpoint), the newest one wins
everywhere (ids are time-ordered), and ``untag`` removes both. Transfers admit only tags
whose id is a UUIDv7 dated at most a day ahead of the local clock
(``localckpt.admit.check_times``), so a forged tag cannot win a name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..catalog import Batch
from ..errors import ConflictError, InvalidInputError, LocalckptError, NotFoundError
from ..ids import is_full_uuid, new_id
from ..records import utcnow
from ..types import Tag, Tombstone

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["check_name", "is_tag_name", "tag", "untag"]

# No ':' (TIMELINE:stage references), no '/' or spaces: a name works on any command line.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def is_tag_name(name: object) -> bool:
    """Whether name is a valid tag name: 1-100 letters, digits, '.', '_' or '-', starting
    with a letter or digit, and not shaped like a full UUID (references take those as
    ids without asking the catalog; see localckpt.refs)."""
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and not is_full_uuid(name)


def check_name(name: object) -> str:
    if not is_tag_name(name):
        raise InvalidInputError(
            f"tag name {name!r} is not valid: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, not shaped like an id (e.g. best-v2)"
        )
    assert isinstance(name, str)
    return name


def swapped(store: Store, exc: NotFoundError, checkpoint: str, name: str) -> NotFoundError:
    """exc (the checkpoint of a tag not found), with a hint when the name given names a
    checkpoint: the arguments in git's order (`git tag NAME COMMIT`), swapped."""
    try:
        store.resolve(name)
    except LocalckptError:
        return exc
    return NotFoundError(
        f"{exc}; the checkpoint comes first, the name second: tag({name!r}, {checkpoint!r})",
        cli=f"{exc.for_cli()}; the checkpoint comes first, the name second: `localckpt tag "
            f"{name} {checkpoint}`")


def tag(store: Store, checkpoint_id: str, name: str, force: bool = False) -> Tag:
    """Tag a live checkpoint. Tagging it again with the same name returns the existing
    tag. A name that already names another checkpoint is ConflictError, unless force:
    then the tag moves (a tombstone for every live record of the name and the new tag,
    in one commit, so no reader sees the name missing or naming both)."""
    check_name(name)
    if not isinstance(force, bool):
        raise InvalidInputError(f"force must be True or False, not {force!r}")
    target = store.get_checkpoint(checkpoint_id)
    _refuse_shadowing(store, name)
    current = store.tag_target(name)
    moved: list[Tombstone] = []
    if current is not None:
        if current == target.id:
            return next(g for g in store.tags(target.timeline_id) if g.name == name)
        if not force:
            from ..refs import listing_here, short_id

            was = short_id(store, current)
            raise ConflictError(
                f"the tag {name} exists (on checkpoint {was}); move it with "
                f"store.tag(checkpoint, {name!r}, force=True), or remove it first with "
                f"store.untag({name!r})",
                cli=f"the tag {name} exists (on checkpoint {was}); move it with "
                f"{listing_here(store, f'`localckpt tag --force CKPT {name}`')}, or remove "
                f"it first with {listing_here(store, f'`localckpt untag {name}`')}",
            )
        now = utcnow()
        moved = [Tombstone(new_id(), g.id, "tag", g.timeline_id, now)
                 for g in _live_records(store, name)]
    record = Tag(new_id(), name, target.id, target.timeline_id, utcnow())
    store.catalog.commit(Batch(tags=[record], tombstones=moved))
    return record


def _live_records(store: Store, name: str) -> list[Tag]:
    return store.visibility.live_tag_records(store.catalog.tags_named(name))


def _no_tag(store: Store, name: str) -> str:
    """The message of untag for a name no live tag has: it said "no tag 'best' in STORE
    (see `localckpt tags`)", and not that `untag best` had already removed it, as `show
    best` says."""
    from .. import refs

    why = refs._removed_tag(store, name)
    if why is None:
        near = sorted({g.name for g in store.tags() if g.name.lower() == name.lower()})
        why = "no live tag has that name" + (
            f" (tag names are case-sensitive: there is {near[0]!r})" if near else "")
    return refs.names_nothing(store, refs.Kind("tag", "`localckpt tags`", lambda s, i: i),
                              name, why)


def _refuse_shadowing(store: Store, name: str) -> None:
    """InvalidInputError for a name that starts a live record's short id: as a tag wins
    over a short id, the name would then mean another record, wherever it is typed (the
    usual way in: `localckpt tag best 56738d8f` for git's `git tag NAME COMMIT`)."""
    from ..refs import shadowed_by, short_ids

    hidden = shadowed_by(store, name)
    if not hidden:
        return
    kind, rid = hidden[0]
    short = short_ids(store, [rid], kind)[rid]
    said = (f"the tag name {name!r} is the start of {kind} {short}'s short id; a tag wins "
            f"over a short id, so {name!r} would stop naming that {kind}: nothing was "
            "written. Choose a name that is not hex digits")
    raise InvalidInputError(
        said + " (the checkpoint comes first, the name second: store.tag(checkpoint, name))",
        cli=said + " (the checkpoint comes first, the name second: `localckpt tag CKPT NAME`)")


def untag(store: Store, name: str) -> Tag:
    """Remove the live tag called name (every live record of it); return the one the
    name resolved to. NotFoundError when no live tag has that name, in the one form of a
    reference that names nothing (localckpt.refs): why (an untag removed it, and what it
    named; a tag differs only in case), and the command that lists tags."""
    check_name(name)
    target = store.tag_target(name)
    if target is None:
        raise NotFoundError(_no_tag(store, name))
    live = _live_records(store, name)
    shown = max((g for g in live if g.checkpoint_id == target), key=lambda g: g.id)
    now = utcnow()
    store.catalog.commit(Batch(tombstones=[
        Tombstone(new_id(), g.id, "tag", g.timeline_id, now) for g in live
    ]))
    return shown
