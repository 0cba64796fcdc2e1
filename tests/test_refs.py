"""References (localckpt.refs): every Store method that takes a checkpoint or timeline id
accepts a tag, a short id, a prefix; full ids stay the fast path."""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localckpt import InvalidInputError, NotFoundError, Store
from localckpt.sync import CountingCatalog

FRAMES = [np.full((8, 8, 3), i * 40, np.uint8) for i in range(3)]
DETECT = {"frames": [{"sequence": i, "detections": [{"box": [0, 0, 4, 4], "label": "car",
                                                      "score": 0.9}]} for i in range(3)]}

#: Parameters that take a reference to one checkpoint or timeline.
ID_PARAMS = {"timeline_id", "checkpoint_id", "parent_checkpoint_id", "a", "b", "ours",
             "theirs"}
#: Methods with such a parameter that take full ids only, and why.
FULL_IDS_ONLY = {
    "short_id": "it names an id that resolve gave",
}


def _frames(found: list[Any]) -> list[int]:
    return [f.sequence if hasattr(f, "sequence") else f["sequence"] for f in found]


def _import_mot(store: Store, checkpoint: str, timeline: str) -> tuple[str | None, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "gt.txt")
        path.write_text("1,7,0,0,4,4,1\n")
        got = store.get_checkpoint(store.import_labels(timeline, path, "mot", parent=checkpoint))
    return got.parent_id, store.load_stage_output(got.id, "labels")


def _export_mot(store: Store, checkpoint: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "out.txt")
        store.export_labels(checkpoint, "detect", path, "mot")
        return path.read_text()


def _run_place(run: Any) -> tuple[str, str | None, str]:
    status = run.status()
    return status.timeline_id, status.parent_id, status.stage


#: method -> call(store, checkpoint ref, its child's id, timeline ref) -> comparable value
CASES: dict[str, Callable[[Store, str, str, str], Any]] = {
    "get_timeline": lambda s, c, k, t: s.get_timeline(t),
    "checkpoints": lambda s, c, k, t: s.checkpoints(t),
    "frame_index": lambda s, c, k, t: s.frame_index(t),
    "similar_frames": lambda s, c, k, t: s.similar_frames(t, 0, max_distance=64),
    "get_timeline_frames": lambda s, c, k, t: _frames(s.get_timeline_frames(t, 1)),
    "iter_frames": lambda s, c, k, t: _frames(list(s.iter_frames(t))),
    "get_frame": lambda s, c, k, t: s.get_frame(t, 2).sequence,
    "get_timeline_frames_b64": lambda s, c, k, t: _frames(s.get_timeline_frames_b64(t)),
    "save_stage_output": lambda s, c, k, t: s.get_checkpoint(
        s.save_stage_output(t, c, "note", {"x": 1})).parent_id,
    "load_stage_output": lambda s, c, k, t: s.load_stage_output(c, "detect"),
    "get_checkpoint": lambda s, c, k, t: s.get_checkpoint(c),
    "children": lambda s, c, k, t: [x.id for x in s.children(c)][:1],
    "lineage": lambda s, c, k, t: s.lineage(c),
    "diff": lambda s, c, k, t: (s.diff(c, k), s.diff(k, c)),
    "frame_diff": lambda s, c, k, t: (s.frame_diff(c, k, "detect"),
                                      s.frame_diff(k, c, "detect")),
    "merge": lambda s, c, k, t: (s.merge(c, k), s.merge(k, c)),
    "delete_timeline": lambda s, c, k, t: s.delete_timeline(t, dry_run=True),
    "prune": lambda s, c, k, t: s.prune(c, dry_run=True),
    "retain": lambda s, c, k, t: s.retain(t, keep_last=0, dry_run=True),
    "tag": lambda s, c, k, t: s.tag(c, "best").checkpoint_id,
    "tags": lambda s, c, k, t: s.tags(t),
    "verify": lambda s, c, k, t: s.verify(t).checkpoints,
    "import_labels": lambda s, c, k, t: _import_mot(s, c, t),
    "export_labels": lambda s, c, k, t: _export_mot(s, c),
    "begin_run": lambda s, c, k, t: _run_place(s.begin_run(t, c, "classify")),
    "runs": lambda s, c, k, t: [_run_place(r) for r in s.runs(t)],
    "resolve": lambda s, c, k, t: (s.resolve(c), s.resolve(t, "timeline")),
}


def _methods_taking_ids() -> set[str]:
    found = set()
    for name, member in inspect.getmembers(Store, inspect.isfunction):
        if name.startswith("_"):
            continue
        params = set(inspect.signature(member).parameters)
        if params & ID_PARAMS or name == "resolve":
            found.add(name)
    return found


def test_every_method_that_takes_an_id_is_in_the_table() -> None:
    """A new Store method with an id parameter must join CASES (so it is shown to take a
    tag) or FULL_IDS_ONLY (saying why not)."""
    missing = _methods_taking_ids() - CASES.keys() - FULL_IDS_ONLY.keys()
    assert not missing, f"add these Store methods to CASES in {__file__}: {sorted(missing)}"
    assert not CASES.keys() - _methods_taking_ids() - {"resolve"}


@pytest.fixture
def tagged(new_store: Any) -> tuple[Store, str, str, str]:
    """A store with a timeline, a detect checkpoint tagged best and its child."""
    store: Store = new_store()
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    a = store.save_stage_output(tl.id, None, "detect", DETECT)
    b = store.save_stage_output(tl.id, a, "detect", {"frames": DETECT["frames"][:2]})
    store.tag(a, "best")
    return store, tl.id, a, b


@pytest.mark.parametrize("method", sorted(CASES))
def test_a_tag_works_in_every_method_that_takes_an_id(
        store_kind: str, tagged: tuple[Store, str, str, str], method: str) -> None:
    """The tag (for a timeline parameter: the tagged checkpoint's timeline) gives what
    the full ids give."""
    store, tid, a, b = tagged
    call = CASES[method]
    assert call(store, "best", b, "best") == call(store, a, b, tid)


@pytest.mark.parametrize("method", ["get_checkpoint", "load_stage_output", "lineage",
                                    "checkpoints", "frame_index", "prune", "diff"])
def test_short_ids_and_prefixes_work_too(
        store_kind: str, tagged: tuple[Store, str, str, str], method: str) -> None:
    store, tid, a, b = tagged
    call = CASES[method]
    want = call(store, a, b, tid)
    short, tshort = store.short_id(a), store.short_id(tid, "timeline")
    assert call(store, short, b, tshort) == want
    assert call(store, a[:-3], b, tid[:-3]) == want  # a unique prefix of the full id
    # typed or copied in upper case, as git takes an abbreviated hash either way
    assert call(store, short.upper(), b, tshort.upper()) == want
    assert call(store, a[:-3].upper(), b, tid[:-3].upper()) == want


def test_timeline_colon_stage(tagged: tuple[Store, str, str, str], store_kind: str) -> None:
    store, tid, _, b = tagged
    assert store.resolve(f"{tid}:detect") == b  # the newest that added detect
    assert store.resolve(f"{store.short_id(tid, 'timeline')}:detect") == b
    assert store.load_stage_output("best:detect", "detect") == {
        "frames": DETECT["frames"][:2]}  # a tag names a timeline too
    with pytest.raises(NotFoundError, match="no checkpoint of timeline") as err:
        store.resolve(f"{tid}:track")
    # the timeline by the short id tree shows, and the stages there are (a typo?): it gave
    # the full id, and nothing to pick from
    assert str(err.value) == (f"no checkpoint of timeline {store.short_id(tid, 'timeline')} "
                              "added stage 'track' (stages there: 'detect')")


def test_references_that_name_nothing_or_too_much(new_store: Any) -> None:
    store: Store = new_store("memory")
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    with pytest.raises(NotFoundError, match="short id"):
        store.get_checkpoint("abc")  # too short to be a prefix: says what works
    with pytest.raises(NotFoundError, match="localckpt tree"):
        store.get_checkpoint("0123456789")
    with pytest.raises(NotFoundError):
        store.get_checkpoint(tl.id)  # a timeline's id names no checkpoint
    with pytest.raises(NotFoundError):
        store.get_checkpoint("")
    with pytest.raises(InvalidInputError, match="checkpoint_id"):
        store.get_checkpoint(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="kind"):
        store.resolve(tl.id, "frame")
    with pytest.raises(NotFoundError):
        store.resolve("0190a000-0000-7000-8000-000000000000")  # checked when asked


def test_a_tag_cannot_look_like_an_id(new_store: Any) -> None:
    store: Store = new_store("memory")
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    with pytest.raises(InvalidInputError, match="tag name"):
        store.tag(tl.root_checkpoint_id, "0190a000-0000-7000-8000-000000000000")


def test_a_tag_cannot_take_a_live_short_id(store_kind: str, new_store: Any) -> None:
    """A tag wins over a short id spelled the same, so a tag named like a live record's
    short id (or its first 4+ characters) made that reference mean another checkpoint:
    `localckpt tag best 56738d8f`, git's order for moving best, tagged best's checkpoint
    "56738d8f", and a later `prune 56738d8f` pruned best's. Refused, nothing written."""
    store: Store = new_store()
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    a = store.save_stage_output(tl.id, None, "detect", DETECT)
    b = store.save_stage_output(tl.id, None, "detect", {"frames": []})
    for kind, rid in (("checkpoint", b), ("timeline", tl.id)):
        short = store.short_id(rid, kind)
        for name in (short, short[:4], short.upper(), rid[-12:]):
            with pytest.raises(InvalidInputError, match=(
                    f"the tag name '{name}' is the start of {kind} {short}'s short id; a tag "
                    "wins over a short id")):
                store.tag(a, name)
    assert store.tags() == []
    assert store.resolve(store.short_id(b)) == b
    free = next(h for h in ("cafe", "beef", "f00d") if not store.short_id(b).startswith(h)
                and not store.short_id(tl.id, "timeline").startswith(h))
    assert store.tag(a, free).checkpoint_id == a  # hex that starts no short id: a name


def test_a_non_uuid_id_given_whole_wins(new_store: Any, monkeypatch: pytest.MonkeyPatch,
                                        ) -> None:
    """Records from other systems may have any id: given whole, it is exact, even when
    it is also a prefix of another id."""
    import localckpt.store as store_module

    store: Store = new_store("memory")
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    made = iter(["ckpt-alpha", "ckpt-alpha-2"])
    monkeypatch.setattr(store_module, "new_id", lambda: next(made))
    one = store.save_stage_output(tl.id, None, "detect", {"n": 1})
    two = store.save_stage_output(tl.id, None, "detect", {"n": 2})
    assert store.get_checkpoint("ckpt-alpha").id == one
    assert store.get_checkpoint("ckpt-alpha-").id == two  # a unique prefix
    with pytest.raises(InvalidInputError, match="ambiguous"):
        store.get_checkpoint("ckpt-al")


def test_full_ids_cost_no_extra_catalog_call(new_store: Any, store_kind: str) -> None:
    """A full UUID is used as it is: no prefix, short id or tag lookup on the way."""
    inner: Store = new_store(store_kind)
    tl = inner.create_timeline("v.mp4", "p", FRAMES, codec="png")
    a = inner.save_stage_output(tl.id, None, "detect", DETECT)
    counting = CountingCatalog(inner.catalog)
    store = Store(counting, inner.objects, url=inner.url)
    store.get_checkpoint(a)
    direct = dict(counting.calls)
    counting.calls.clear()
    store.visibility.checkpoint(a)
    assert counting.calls == direct  # get_checkpoint costs what the lookup itself costs
    counting.calls.clear()
    b = store.save_stage_output(tl.id, a, "track", {"t": 1})
    store.load_stage_output(b, "track")
    store.get_timeline(tl.id)
    store.children(a)
    assert not {"find_ids", "tags", "tree"} & counting.calls.keys(), counting.calls
    counting.calls.clear()
    store.get_checkpoint(store.short_id(b))  # a short id does look
    assert counting.calls.keys() - {"checkpoints", "tombstones", "deleted"}


def test_a_suggested_command_names_the_store_it_is_about(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command a message suggests (prune of a root: `localckpt rm T`; a tag that
    exists; a removed tag; a run with frames left) is made naming the store, with
    ``--store PATH`` when that is not the store a bare command opens: a Python caller
    reading for_cli() gets the command that acts on this store, not on the default one
    (the command line rewrote the bare command after the fact)."""
    import localckpt
    from localckpt import ConflictError

    monkeypatch.setenv("LOCALCKPT_URL", str(tmp_path / "default"))
    for path, flag in ((tmp_path / "default", ""),
                       (tmp_path / "other", f"--store {tmp_path / 'other'} ")):
        with localckpt.open(path, create=True) as store:
            tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
            a = store.save_stage_output(tl.id, None, "detect", DETECT)
            store.tag(a, "best")
            t, c = store.short_id(tl.id, "timeline"), store.short_id(a)
            with pytest.raises(InvalidInputError) as root:
                store.prune(tl.root_checkpoint_id)
            assert f"timeline with `localckpt {flag}rm {t}` instead" in root.value.for_cli()
            with pytest.raises(ConflictError) as moved:
                store.tag(tl.root_checkpoint_id, "best")
            assert f"`localckpt {flag}tag --force CKPT best`" in moved.value.for_cli()
            assert f"`localckpt {flag}untag best`" in moved.value.for_cli()
            store.untag("best")
            with pytest.raises(NotFoundError) as removed:
                store.get_checkpoint("best")
            assert f"(`localckpt {flag}tag {c} best` tags it again)" in str(removed.value)
            run = store.begin_run(tl.id, a, "classify")
            with pytest.raises(InvalidInputError) as left:
                run.commit()
            r = store.short_id(run.id, "run")
            assert f"(`localckpt {flag}run show {r}` lists them)" in left.value.for_cli()


def test_the_default_store_with_a_password_in_its_url_gets_the_bare_command(
        new_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store's url is said without its password (localckpt.open redacts it), and the
    default URL was compared as written: the default store, a PostgreSQL URL with a
    password, was told `localckpt --store postgresql://u:***@h/db ls`, a command that
    cannot connect, where `localckpt ls` was right."""
    from localckpt.refs import listing_here

    inner: Store = new_store("memory")
    monkeypatch.setenv("LOCALCKPT_URL", "postgresql://u:secret@db.example/ckpt")
    store = Store(inner.catalog, inner.objects, url="postgresql://u:***@db.example/ckpt")
    assert listing_here(store, "`localckpt ls`") == "`localckpt ls`"
    other = Store(inner.catalog, inner.objects, url="postgresql://u:***@db.example/other")
    assert listing_here(other, "`localckpt ls`") == \
        "`localckpt --store 'postgresql://u:***@db.example/other' ls`"
