"""Ids people can type in web URLs: short ids, prefixes and tags; and values the pages
must draw without failing (numbers past float range, an fps of 5e-324)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from websample import build

import localckpt
from localckpt.catalog import Batch
from localckpt.ids import SHORT_MIN, id_tail, new_id
from localckpt.records import utcnow
from localckpt.types import Checkpoint
from localckpt.web import App
from localckpt.web.names import Names


@pytest.fixture(scope="module", params=["memory", "embedded"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[App, Any, Any, list[str]]]:
    url = "memory://" if request.param == "memory" else str(tmp_path_factory.mktemp("n"))
    store = localckpt.open(url, create=True)
    sample = build(store)
    twins = _same_millisecond(store, sample.timeline, sample.root)
    yield App(store), store, sample, twins
    store.close()


def _same_millisecond(store: Any, tid: str, root: str) -> list[str]:
    """Two checkpoints whose ids were made in the same millisecond (they share their
    first 13 characters), written as rows."""
    while True:
        a, b = new_id(), new_id()
        if a[:13] == b[:13]:
            break
    parent = store.get_checkpoint(root)
    made = [Checkpoint(i, tid, root, dict(parent.stage_hashes), {}, {}, True, f"twin {n}",
                       utcnow()) for n, i in enumerate((a, b))]
    store.catalog.commit(Batch(checkpoints=made))
    return [a, b]


def get(app: App, target: str) -> tuple[int, str]:
    resp = app.handle("GET", target, "localhost")
    return resp.status, resp.body.decode()


def test_short_ids_are_unique_tails_of_at_least_eight_characters(site: Any) -> None:
    _app, store, s, twins = site
    names = Names(store)
    shorts = {cid: names.short(cid) for cid in [*s.checkpoints, *twins]}
    assert len(set(shorts.values())) == len(shorts)
    for cid, short in shorts.items():
        assert len(short) >= SHORT_MIN and id_tail(cid).startswith(short)
        assert store.catalog.find_short("checkpoint", short) == [cid]
    assert shorts[twins[0]] != shorts[twins[1]]  # the random end tells them apart


def test_checkpoints_made_in_one_millisecond_open_by_their_short_ids(site: Any) -> None:
    app, store, _s, twins = site
    names = Names(store)
    for cid in twins:
        status, page = get(app, f"/c/{names.short(cid)}")
        assert status == 200 and cid in page
        found = json.loads(app.handle("GET", f"/api/checkpoints/{names.short(cid)}",
                                      "localhost").body)
        assert found["id"] == cid and found["short_id"] == names.short(cid)
    # their common prefix names both: the answer lists them
    status, page = get(app, f"/c/{twins[0][:13]}")
    assert status == 400 and twins[0] in page and twins[1] in page and "ambiguous" in page


def test_a_tag_works_in_page_and_api_urls(site: Any) -> None:
    app, _store, s, _ = site
    status, page = get(app, "/c/best")
    assert status == 200 and s.try2 in page and "⚑ best" in page
    status, page = get(app, f"/compare?a={s.try1}&b=best")
    assert status == 200 and "frame 2" in page
    status, page = get(app, f"/t/{s.timeline}")
    assert 'data-tags="best"' in page  # on the tree's node
    assert get(app, "/c/no-such-tag")[0] == 404


def test_timelines_open_by_short_id_and_prefix(site: Any) -> None:
    app, store, s, _ = site
    short = Names(store).short(s.timeline, "timeline")
    assert get(app, f"/t/{short}")[0] == 200
    assert get(app, f"/t/{s.timeline[:18]}")[0] == 200
    status, page = get(app, f"/api/timelines/{short}")
    assert status == 200 and json.loads(page)["timeline"]["id"] == s.timeline


def test_pages_show_short_ids_not_cut_full_ids(site: Any) -> None:
    app, store, s, _ = site
    names = Names(store)
    _, page = get(app, f"/c/{s.try2}")
    assert names.short(s.try2) in page and names.short(s.root) in page
    assert "…" + s.try2[-4:] not in page  # the old 01a24695…b09b form
    _, index = get(app, "/")
    assert f">{names.short(s.timeline, 'timeline')}<" in index


def test_error_pages_name_records_by_short_id(site: Any) -> None:
    """An error page said "checkpoint 01a2502c-60bb-72ee-9f34-420f8e802707 has no stage
    'nope'" where every page names records by short id; the API's message keeps the full
    id, as its records do."""
    app, store, s, _ = site
    names = Names(store)
    short = names.short(s.try1)
    for target, status, said in (
            (f"/compare?a={s.try1}&b={s.try2}&stage=nope", 404, f"checkpoint {short} "),
            (f"/c/{s.try1}?stage=nope", 400, f"checkpoint {short} "),
            (f"/compare?a={s.root}&b={s.try1}", 400,
             f"checkpoints {names.short(s.root)} and {short} have no stage in common")):
        got, page = get(app, target)
        error = re.search(r'<p class="error">(.*?)</p>', page)
        assert got == status and error is not None, page
        assert said in error.group(1) and s.try1 not in error.group(1), error.group(1)
    got, body = get(app, f"/api/checkpoints/{s.try1}/outputs/nope")
    assert got == 404 and f"checkpoint {s.try1} " in json.loads(body)["message"]


# -- values the pages must draw -----------------------------------------------------------


def test_numbers_past_float_range_are_drawn_not_failed(tmp_path: Any) -> None:
    store = localckpt.open(str(tmp_path / "big"), create=True)
    tl = store.create_timeline("v.mp4", "p", np.zeros((2, 32, 32, 3), np.uint8), fps=2.0)
    huge = 10**400
    a = store.save_stage_output(tl.id, None, "detect", {"frames": [{"sequence": 0, "detections": [
        {"box": [0, 0, huge, huge], "label": "x", "score": huge},
        {"box": [-huge, 2.5, 3, 4], "score": -huge, "track_id": huge}]}]})
    b = store.save_stage_output(tl.id, None, "detect", {"frames": [{"sequence": 0, "detections": [
        {"box": [0.5, 0, huge, huge], "label": "x", "score": 0.5}]}]})
    app = App(store)
    for target in (f"/c/{a}", f"/compare?a={a}&b={b}", f"/api/compare?a={a}&b={b}",
                   f"/view/{tl.id}?c={a}&stage=detect", f"/t/{tl.id}"):
        status, page = get(app, target)
        assert status == 200, (target, page[:300])
    _, page = get(app, f"/c/{a}")
    # the box is clipped to the 32 x 32 frame; no coordinate is drawn outside it
    coords = [float(v) for v in re.findall(r' (?:x|y|width|height)="(-?[0-9.e+]+)"', page)]
    assert coords and all(-1 <= v <= 32 for v in coords)
    store.close()


def test_an_fps_of_5e_324_does_not_break_the_index(tmp_path: Any) -> None:
    """create_timeline refuses such an fps now; a record from elsewhere may still hold one."""
    import attrs

    from localckpt.testing import raw

    store = localckpt.open(str(tmp_path / "fps"), create=True)
    made = store.create_timeline("slow.mp4", "p", np.zeros((1, 8, 8, 3), np.uint8))
    root = store.get_checkpoint(made.root_checkpoint_id)
    tl = attrs.evolve(made, id=new_id(), fps=5e-324, root_checkpoint_id=new_id())
    for key in store.objects.list(f"frames/{made.id}"):  # the same frames, under its id
        store.objects.put(key.replace(made.id, tl.id), store.objects.get(key))
    raw.insert(store.catalog, tl)
    raw.insert(store.catalog, attrs.evolve(root, id=tl.root_checkpoint_id, timeline_id=tl.id))
    store.delete_timeline(made.id)
    app = App(store)
    for target in ("/", "/api/timelines", f"/t/{tl.id}", f"/api/timelines/{tl.id}"):
        status, page = get(app, target)
        assert status == 200, (target, page[:300])
        assert "Infinity" not in page and "NaN" not in page
    rows = json.loads(get(app, "/api/timelines")[1])["timelines"]
    assert rows[0]["duration"] is None
    store.close()


def test_short_ids_grow_past_a_shared_tail_whichever_way_the_catalog_finds_them() -> None:
    from localckpt.backends.sql import SqlCatalog, memory_catalog
    from localckpt.catalog import Catalog
    from localckpt.objects import Objects
    from localckpt.store import Store
    from localckpt.types import Timeline

    class Scanning(SqlCatalog):  # find_short as the base class does it: a scan of every id
        def find_short(self, kind: str, short: str, limit: int = 10) -> list[str]:
            return Catalog.find_short(self, kind, short, limit)

    tid, root = "0" * 8 + "-0000-7000-8000-" + "f" * 12, "1" * 8 + "-0000-7000-8000-" + "e" * 12
    tails = ["abcdef123456", "abcdef123499", "abcdef199999", "abcdee000000", "9" * 12]
    ids = [f"01a24695-c3{i}0-7000-8000-{t}" for i, t in enumerate(tails)]
    want = {ids[0]: "abcdef12345", ids[1]: "abcdef12349", ids[2]: "abcdef19",
            ids[3]: "abcdee00", ids[4]: "99999999"}
    for catalog in (Scanning(memory_catalog().engine), memory_catalog()):
        catalog.commit(Batch(
            timelines=[Timeline(tid, "v", "p", 2.0, None, root, 1, utcnow())],
            checkpoints=[Checkpoint(root, tid, None, {}, {}, {}, False, "", utcnow())] + [
                Checkpoint(i, tid, root, {}, {}, {}, False, "", utcnow()) for i in ids]))
        store = Store(catalog, Objects.from_url(f"memory://names-{new_id()}"))
        names = Names(store)
        assert {i: names.short(i) for i in ids} == want, type(catalog).__name__
        app = App(store)
        for i, short in want.items():
            assert json.loads(app.handle("GET", f"/api/checkpoints/{short}",
                                         "localhost").body)["id"] == i
        status = app.handle("GET", "/c/abcdef12", "localhost").status
        assert status == 400  # three ids end in it
