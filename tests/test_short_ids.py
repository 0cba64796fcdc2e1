"""Short ids: at least 8 characters of an id's random tail, unique in the store, shown
by the CLI and accepted wherever a full id is (localckpt.refs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import localckpt
from localckpt import InvalidInputError, NotFoundError, Store
from localckpt.cli import main
from localckpt.ids import SHORT_MIN, id_tail
from localckpt.refs import short_id

FRAMES = [np.full((6, 6, 3), i * 60, np.uint8) for i in range(2)]


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every id is made in the same millisecond (ids then share their first 13+
    characters, as a script's saves do)."""
    import localckpt.ids as ids

    now = ids.time.time_ns()
    monkeypatch.setattr(ids.time, "time_ns", lambda: now)


def _same_ms_pair(store: Store) -> tuple[str, str, str]:
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
    b = store.save_stage_output(tl.id, None, "detect", {"n": 2})
    assert a[:13] == b[:13]  # the clock is frozen: only the tails tell them apart
    return tl.id, a, b


def test_same_millisecond_ids_resolve_by_short_id_in_the_api(
        store_kind: str, new_store: Any, frozen_clock: None) -> None:
    store = new_store(store_kind)
    _, a, b = _same_ms_pair(store)
    sa, sb = store.short_id(a), store.short_id(b)
    assert sa != sb and len(sa) >= SHORT_MIN and len(sb) >= SHORT_MIN
    assert id_tail(a).startswith(sa) and id_tail(b).startswith(sb)
    assert store.short_ids([a, b]) == {a: sa, b: sb}
    assert store.resolve(sa) == a and store.resolve(sb) == b
    assert store.get_checkpoint(sb).id == b
    assert store.load_stage_output(sa, "detect") == {"n": 1}
    with pytest.raises(InvalidInputError) as info:
        store.resolve(a[:13])  # the shared start: both match
    assert sa in str(info.value) and sb in str(info.value)
    assert a in str(info.value) and b in str(info.value)


def test_four_characters_of_a_short_id_name_a_record_as_git_takes_a_hash(
        store_kind: str, new_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Typed, a short id may be shorter than shown, from 4 characters (git takes an
    abbreviated hash of 4): the first 6 of `630d2362` said "no checkpoint matches". A
    start that several tails share is ambiguous, naming them; 3 characters are too few."""
    store = new_store(store_kind)
    # every checkpoint's tail crafted, the root's too: a random one starts with a given 4
    # characters once in 65,536
    crafted = _crafted(["0000aaaabbbb", "1111aaaabbbb", "c0de11112222", "c0de33334444",
                        "beef55556666"])
    import localckpt.store as store_module

    monkeypatch.setattr(store_module, "new_id", lambda: next(crafted))
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    a, b, c = (store.save_stage_output(tl.id, None, "detect", {"n": i}) for i in range(3))
    assert store.resolve("beef") == c and store.resolve("BEEF55") == c
    assert store.get_checkpoint("c0de1").id == a and store.resolve("c0de3333") == b
    with pytest.raises(InvalidInputError, match="ambiguous") as info:
        store.resolve("c0de")
    assert store.short_id(a) in str(info.value) and store.short_id(b) in str(info.value)
    with pytest.raises(NotFoundError, match=r"a short id needs 4\+ characters"):
        store.resolve("bee")
    with pytest.raises(NotFoundError, match="no live checkpoint has a short id that starts"):
        store.resolve("dead")


def test_same_millisecond_ids_resolve_by_short_id_in_the_cli(
        tmp_path: Path, frozen_clock: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as store:
        _, a, b = _same_ms_pair(store)
        sa, sb = store.short_id(a), store.short_id(b)
    for short, full in ((sa, a), (sb, b)):
        assert main(["--store", path, "show", short, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["id"] == full and shown["short_id"] == short
    assert main(["--store", path, "show", a[:13]]) == 1
    err = capsys.readouterr().err
    assert "ambiguous" in err and sa in err and sb in err
    assert main(["--store", path, "tree"]) == 0
    out = capsys.readouterr().out
    assert f"{sa}  detect" in out and f"{sb}  detect" in out and a not in out


def _crafted(tails: list[str]) -> Iterator[str]:
    """UUID-shaped ids with these tails, all of one millisecond."""
    for i, tail in enumerate(tails):
        yield f"01a24695-c3{i:02x}-7000-8{tail[:3]}-{tail}"


def test_a_shared_tail_start_makes_short_ids_longer(
        store_kind: str, new_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tails sharing their first 8 characters: each short id takes one more, the 8
    shared ones are ambiguous and list both, and the batch agrees with one by one."""
    store = new_store(store_kind)
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    crafted = _crafted(["aaaaaaaa1111", "aaaaaaaa2222", "bbbbbbbbbbbb"])
    import localckpt.store as store_module

    monkeypatch.setattr(store_module, "new_id", lambda: next(crafted))
    ids = [store.save_stage_output(tl.id, None, "detect", {"n": i}) for i in range(3)]
    shorts = store.short_ids(ids)
    assert [shorts[i] for i in ids] == ["aaaaaaaa1", "aaaaaaaa2", "bbbbbbbb"]
    assert {i: store.short_id(i) for i in ids} == shorts
    assert [store.resolve(shorts[i]) for i in ids] == ids
    assert store.resolve("aaaaaaaa11") == ids[0]  # any longer start of the tail
    with pytest.raises(InvalidInputError, match=r"aaaaaaaa1.*aaaaaaaa2"):
        store.resolve("aaaaaaaa")
    # a deleted record keeps its short id unique (until gc purges it), and no longer
    # resolves: the short id of the live one still does
    store.prune(ids[1])
    assert store.resolve("aaaaaaaa1") == ids[0]
    with pytest.raises(NotFoundError):
        store.resolve("aaaaaaaa2")
    assert store.resolve("aaaaaaaa") == ids[0]  # only one live record matches now


def test_the_batch_agrees_with_one_by_one(new_store: Any, frozen_clock: None) -> None:
    """Many short ids come from one query of each id's neighbours in tail order; without
    it, one find_short call per id: the answers are those of short_id one by one."""
    store = new_store("memory")
    tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
    ids = [store.save_stage_output(tl.id, None, "detect", {"n": i}) for i in range(20)]
    one_by_one = {i: short_id(store, i) for i in ids}
    calls: list[str] = []
    base = type(store.catalog)

    class Counted(base):  # type: ignore[valid-type, misc]
        def find_short(self, kind: str, short: str, limit: int = 10) -> list[str]:
            calls.append(short)
            return super().find_short(kind, short, limit)

    class WithoutNeighbours(Counted):
        def short_neighbours(self, kind: str, ids: Any) -> None:
            return None

    store.catalog.__class__ = Counted
    assert store.short_ids(ids) == one_by_one and calls == []
    store.catalog.__class__ = WithoutNeighbours
    assert store.short_ids(ids) == one_by_one and len(calls) == len(ids)
    assert short_id(store, tl.id, "timeline") == store.short_ids([tl.id], "timeline")[tl.id]


def test_short_ids_of_timelines(store_kind: str, new_store: Any, frozen_clock: None) -> None:
    store = new_store(store_kind)
    t1 = store.create_timeline("a.mp4", "p", FRAMES, codec="png")
    t2 = store.create_timeline("b.mp4", "p", FRAMES, codec="png")
    s1, s2 = store.short_id(t1.id, "timeline"), store.short_id(t2.id, "timeline")
    assert s1 != s2
    assert store.short_ids([t2.id, t1.id], "timeline") == {t1.id: s1, t2.id: s2}
    assert store.resolve(s2, "timeline") == t2.id
    assert [c.id for c in store.checkpoints(s1)] == [t1.root_checkpoint_id]
    with pytest.raises(NotFoundError):
        store.resolve(s1)  # a timeline's short id names no checkpoint
    with pytest.raises(InvalidInputError, match="kind"):
        store.short_id(t1.id, "frame")


def test_json_outputs_carry_short_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      ) -> None:
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as store:
        tl = store.create_timeline("v.mp4", "p", FRAMES, codec="png")
        a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
        b = store.save_stage_output(tl.id, a, "track", {"t": 1})
        short = store.short_ids([tl.root_checkpoint_id, a, b])
        tshort = store.short_id(tl.id, "timeline")
    assert main(["--store", path, "ls", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["short_id"] == tshort and listed["root_checkpoint_short_id"] == short[
        tl.root_checkpoint_id]
    assert main(["--store", path, "ls"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith(tshort + " ") and tl.id not in out
    assert main(["--store", path, "tree", tshort, "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert [(c["id"], c["short_id"]) for c in tree] == [(i, short[i]) for i in short]
    assert tree[2]["parent_short_id"] == short[a] and tree[2]["timeline_short_id"] == tshort
    assert main(["--store", path, "show", short[b]]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint {short[b]}  ({b})" in out and f"parent     {short[a]}  ({a})" in out
    assert main(["--store", path, "diff", short[a], short[b], "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["a_short_id"], d["b_short_id"]) == (short[a], short[b])
    assert main(["--store", path, "prune", short[b], "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["short_ids"] == {b: short[b]}
