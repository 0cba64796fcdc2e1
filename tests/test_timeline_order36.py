"""Timelines in the order they were made (stop 36): by (created_at, id) wherever the
newest, or a listing order, is meant. Ids are tokens, and one that is not a UUIDv7 (an
old store's, a sync peer's or a bundle's ``zzzz``) sorts after every UUID by its
characters; made earlier, it is neither the newest timeline nor the web index's first
row, and ``ls`` lists it where its time puts it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import numpy as np
import pytest
from sql_records import ENGINES, Opener, make_timeline, opener

import localckpt
from localckpt import Batch, Store
from localckpt.backends.sql import SqlCatalog
from localckpt.catalog import Catalog
from localckpt.types import Timeline, Tombstone

BASE = datetime(2026, 12, 1, tzinfo=UTC)
FRAMES = [np.full((4, 4, 3), i * 80, np.uint8) for i in range(2)]


def _commit_timelines(catalog: Catalog, n: int = 4) -> list[Timeline]:
    """n UUIDv7 timelines an hour apart, 'zzzz' made an hour before them all, and
    '0000-tie' made with the newest (so the id breaks the tie, and the UUID is newer);
    oldest first by (created_at, id)."""
    made = []
    for i in range(n):
        t, root = make_timeline()
        at = BASE + timedelta(hours=i)
        t, root = attrs.evolve(t, created_at=at), attrs.evolve(root, created_at=at)
        catalog.commit(Batch([t], [root]))
        made.append(t)
    for tid, at in (("zzzz", BASE - timedelta(hours=1)), ("0000-tie", made[-1].created_at)):
        t, root = make_timeline()
        root = attrs.evolve(root, timeline_id=tid, created_at=at)
        t = attrs.evolve(t, id=tid, created_at=at, root_checkpoint_id=root.id)
        catalog.commit(Batch([t], [root]))
        made.append(t)
    return sorted(made, key=lambda t: (t.created_at, t.id))


@pytest.fixture(params=ENGINES)
def open_catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    return opener(str(request.param), request, tmp_path)


@pytest.mark.parametrize("default", [False, True], ids=["sql", "default"])
def test_timeline_page_orders_by_created_at_then_id(open_catalog: Opener, default: bool
                                                    ) -> None:
    """Before: ordered by id, so 'zzzz' was the newest page's first row, and '0000-tie'
    the oldest. The SQL catalog's query and the default Catalog.timeline_page agree."""
    catalog = open_catalog()
    order = _commit_timelines(catalog)
    gone = order[2]
    catalog.commit(Batch(tombstones=[Tombstone("gone-" + gone.id, gone.id, "timeline",
                                               gone.id, BASE)]))
    live = [t for t in order if t.id != gone.id]
    assert order[0].id == "zzzz" and order[-2].id == "0000-tie"
    page_of = (lambda *a, **k: Catalog.timeline_page(catalog, *a, **k)) if default \
        else catalog.timeline_page
    page, counts, total = page_of(0, 10)
    assert [t.id for t in page] == [t.id for t in live] and total == len(live) == 5
    assert counts == {t.id: 1 for t in live}
    newest, _, _ = page_of(0, 2, newest_first=True)
    assert [t.id for t in newest] == [t.id for t in live[::-1][:2]]
    assert newest[0].id != "zzzz"
    middle, _, _ = page_of(2, 2, newest_first=True)
    assert [t.id for t in middle] == [t.id for t in live[::-1][2:4]]
    last, _, _ = page_of(4, 2, newest_first=True)
    assert [t.id for t in last] == ["zzzz"]


def test_the_newest_page_is_read_through_the_created_at_index(tmp_path: Path) -> None:
    """SQLite: both orders of the page walk the index on (created_at, id) from one end
    and stop after the page (no sort of every timeline, no scan of the table), and the
    newest page of 300 timelines reads as many rows through the index as that of 30."""
    from localckpt.backends.sql import sqlite_catalog

    steps = {}
    for n in (30, 300):
        catalog = sqlite_catalog(str(tmp_path / f"c{n}.sqlite"))
        try:
            for i in range(n):
                t, root = make_timeline()
                at = BASE + timedelta(seconds=i)
                catalog.commit(Batch([attrs.evolve(t, created_at=at)],
                                     [attrs.evolve(root, created_at=at)]))
            conn = catalog.engine._conn()
            for direction in ("ASC", "DESC"):
                statement = catalog.engine.sql(catalog._q["page"] % ((direction,) * 2))
                plan = [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + statement,
                                                        (10, 0)).fetchall()]
                assert any("timelines_created_at_id" in step for step in plan), plan
                assert not any("TEMP B-TREE" in step for step in plan), plan
            # the virtual machine's steps of the newest page: flat in the store's size
            ran: list[int] = []

            def step(ran: list[int] = ran) -> int:
                ran.append(1)
                return 0

            conn.set_progress_handler(step, 1)
            try:
                page, _, _ = catalog.timeline_page(0, 10, newest_first=True)
            finally:
                conn.set_progress_handler(None, 1)
            assert page[0].created_at == BASE + timedelta(seconds=n - 1)
            steps[n] = len(ran)
        finally:
            catalog.close()
    assert steps[300] < steps[30] * 1.5, steps


def test_the_created_at_index_on_every_engine(open_catalog: Opener) -> None:
    catalog = open_catalog()
    from localckpt.backends.sql.schema import LATEST_VERSION, version_of

    assert version_of(catalog.engine) == LATEST_VERSION >= 14
    d = catalog.engine.dialect.name
    if d == "sqlite":
        statement = ("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                     "name = 'timelines_created_at_id'")
    elif d == "postgresql":
        statement = (f"SELECT indexname FROM pg_indexes WHERE schemaname = "
                     f"'{catalog.engine.schema}' AND indexname = 'timelines_created_at_id'")
    else:
        statement = ("SELECT index_name FROM duckdb_indexes() WHERE "
                     "index_name = 'timelines_created_at_id'")
    assert catalog.engine.query(statement) == [("timelines_created_at_id",)]
    if d == "postgresql":  # the planner can serve either order from the index alone
        _commit_timelines(catalog)
        for direction in ("ASC", "DESC"):
            page = catalog.engine.sql(catalog._q["page"] % (direction, direction))
            with catalog.engine.transaction() as tx:
                tx.execute("SET LOCAL enable_seqscan = off")
                tx.execute("SET LOCAL enable_sort = off")
                plan = "\n".join(r[0] for r in tx.query("EXPLAIN " + page, (10, 0)))
            assert "timelines_created_at_id" in plan and "Sort" not in plan, plan


def test_a_catalog_of_before_migration_14(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """A catalog at version 13 opened read-only has no index on created_at: it answers in
    the same order (SQLite sorts what it reads); opened for writing it is migrated."""
    from localckpt.backends.sql import schema, sqlite_catalog

    path = str(tmp_path / "c.sqlite")
    with monkeypatch.context() as m:  # the code of before: migrations up to 13
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:7])
        m.setattr(schema, "LATEST_VERSION", 13)
        old = sqlite_catalog(path)
        order = _commit_timelines(old)
        old.close()
    ro = sqlite_catalog(path, read_only=True)
    try:
        assert schema.version_of(ro.engine) == 13
        assert [t.id for t in ro.timeline_page(0, 3, newest_first=True)[0]] == [
            t.id for t in order[::-1][:3]]
        assert [t.id for t in ro.timeline_page(0, 10)[0]] == [t.id for t in order]
    finally:
        ro.close()
    new = sqlite_catalog(path)
    try:
        assert schema.version_of(new.engine) == schema.LATEST_VERSION >= 14
        assert [t.id for t in new.timeline_page(0, 10)[0]] == [t.id for t in order]
    finally:
        new.close()


# -- the store: the web index, ls, tree ------------------------------------------------------


def _store_with_an_old_zzzz(path: Path) -> tuple[str, str]:
    """A store of two timelines made now ('a.mp4', then 'b.mp4') and 'zzzz'
    ('peer.mp4'), committed as a peer's record made an hour ago: (b's id, a's id)."""
    with localckpt.open(str(path), create=True) as store:
        a = store.create_timeline("a.mp4", "p", FRAMES, codec="png", workers=1)
        b = store.create_timeline("b.mp4", "p", FRAMES, codec="png", workers=1)
        _old_zzzz(store, a)
    return b.id, a.id


def _old_zzzz(store: Store, like: Timeline) -> None:
    at = like.created_at - timedelta(hours=1)
    root = attrs.evolve(store.get_checkpoint(like.root_checkpoint_id), id="zzzz-root",
                        timeline_id="zzzz", created_at=at)
    store.catalog.commit(Batch([attrs.evolve(like, id="zzzz", source_video="peer.mp4",
                                             root_checkpoint_id=root.id, created_at=at)],
                               [root]))


def test_the_web_index_lists_the_newest_first(tmp_path: Path) -> None:
    """Before: 'zzzz' (made an hour before the others) was the index's first row."""
    from localckpt.web import App

    b, a = _store_with_an_old_zzzz(tmp_path / "s")
    with localckpt.open(str(tmp_path / "s")) as store:
        app = App(store)
        page = json.loads(app.handle("GET", "/api/timelines", "localhost").body)
        assert [r["id"] for r in page["timelines"]] == [b, a, "zzzz"]
        html = app.handle("GET", "/", "localhost").body.decode()
        assert html.index("b.mp4") < html.index("a.mp4") < html.index("peer.mp4")


def test_ls_lists_by_creation_and_tree_takes_the_newest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `ls` listed by id ('zzzz' last, as if the newest). `tree` without
    TIMELINE takes the newest by created_at from one page: it reads no list of every
    timeline."""
    from localckpt.cli.main import main

    b, a = _store_with_an_old_zzzz(tmp_path / "s")
    store = ["--store", str(tmp_path / "s")]
    assert main([*store, "ls", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["zzzz", a, b]
    assert main([*store, "ls"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[-1] for line in lines] == ["peer.mp4", "a.mp4", "b.mp4"]
    every: list[object] = []
    real = SqlCatalog.timelines

    def timelines(self: SqlCatalog, ids: object) -> object:
        if ids is None:
            every.append(ids)
        return real(self, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlCatalog, "timelines", timelines)
    assert main([*store, "tree"]) == 0
    out, err = capsys.readouterr()
    assert "b.mp4" in err and "3 timelines" in err
    assert out.startswith(f"timeline {b[-12:-4]}  b.mp4")
    assert every == []


def test_list_timelines_is_oldest_first_by_creation(tmp_path: Path) -> None:
    """Store.list_timelines says oldest first: it was by id ('zzzz' last, as if the
    newest)."""
    b, a = _store_with_an_old_zzzz(tmp_path / "s")
    with localckpt.open(str(tmp_path / "s")) as store:
        assert [t.id for t in store.list_timelines()] == ["zzzz", a, b]
