"""What the web view's pages read: counted through a catalog that counts (never timed).

The timelines index must cost what one page shows (issue 21): one ``timeline_page``
query for the page (and one to learn the total), one ``tombstones`` query for the
page's timelines, and a tree only for a timeline of the page that still stores rows a
prune hides (until gc purges them).
The same page of a store of 1,000 timelines reads as many rows as of 100: catalog calls
are counted through a catalog that counts, and the rows the database returns at its
engine (a short id of a timeline once read every timeline's tail, for each row shown).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import pytest
from engine_reads import Reads, counting

from localckpt.backends.sql import memory_catalog
from localckpt.catalog import Batch, Catalog
from localckpt.ids import new_id
from localckpt.objects import Objects
from localckpt.records import utcnow
from localckpt.store import Store
from localckpt.types import Checkpoint, Tag, Timeline, Tombstone
from localckpt.web import App
from localckpt.web.data import TIMELINE_PAGE


def _rows(value: Any) -> int:
    if isinstance(value, tuple):  # timeline_page: (page, counts, total)
        return sum(_rows(v) for v in value)
    if isinstance(value, (list, dict, set, frozenset)):
        return len(value)
    return 1


class Counting(Catalog):
    """Delegates to another catalog, counting calls and the rows each returns."""

    def __init__(self, inner: Catalog) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.rows: dict[str, int] = {}

    def reset(self) -> None:
        self.calls.clear()
        self.rows.clear()

    def _do(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.inner, name)(*args, **kwargs)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.rows[name] = self.rows.get(name, 0) + _rows(result)
        return result

    def commit(self, batch: Batch) -> None:
        self._do("commit", batch)

    def timelines(self, ids: Iterable[str] | None = None) -> list[Timeline]:
        return self._do("timelines", ids)  # type: ignore[no-any-return]

    def checkpoints(self, ids: Iterable[str]) -> list[Checkpoint]:
        return self._do("checkpoints", ids)  # type: ignore[no-any-return]

    def children(self, checkpoint_id: str) -> list[Checkpoint]:
        return self._do("children", checkpoint_id)  # type: ignore[no-any-return]

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        return self._do("lineage", checkpoint_id)  # type: ignore[no-any-return]

    def tree(self, timeline_id: str) -> list[Checkpoint]:
        return self._do("tree", timeline_id)  # type: ignore[no-any-return]

    def outputs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        return self._do("outputs", hashes)  # type: ignore[no-any-return]

    def tombstones(self, timeline_ids: Iterable[str] | None = None) -> list[Tombstone]:
        return self._do("tombstones", timeline_ids)  # type: ignore[no-any-return]

    def tags(self, timeline_ids: Iterable[str] | None = None) -> list[Tag]:
        return self._do("tags", timeline_ids)  # type: ignore[no-any-return]

    def deleted(self, target_ids: Iterable[str], kind: str | None = None) -> set[str]:
        return self._do("deleted", target_ids, kind)  # type: ignore[no-any-return]

    def find_ids(self, kind: str, prefix: str, limit: int = 10) -> list[str]:
        return self._do("find_ids", kind, prefix, limit)  # type: ignore[no-any-return]

    def find_short(self, kind: str, short: str, limit: int = 10) -> list[str]:
        return self._do("find_short", kind, short, limit)  # type: ignore[no-any-return]

    def timeline_page(self, offset: int, limit: int, newest_first: bool = False) -> Any:
        return self._do("timeline_page", offset, limit, newest_first)

    def holding_hidden(self, marked: Mapping[str, Collection[str]]) -> set[str]:
        return self._do("holding_hidden", marked)  # type: ignore[no-any-return]


def _store(timelines: int) -> tuple[Store, Counting, list[Timeline]]:
    """A store of that many timelines, each a root and two checkpoints, written as rows
    (the index never reads frames)."""
    inner = memory_catalog()
    made, cps = [], []
    for i in range(timelines):
        tid, root = new_id(), new_id()
        made.append(Timeline(tid, f"video-{i}.mp4", "p", 2.0, None, root, 10, utcnow()))
        cps.append(Checkpoint(root, tid, None, {}, {}, {"frames_extracted": 10}, False, "",
                              utcnow()))
        for _ in range(2):
            cps.append(Checkpoint(new_id(), tid, root, {}, {}, {}, True, "try", utcnow(),
                                  stage="detect"))
    inner.commit(Batch(timelines=made, checkpoints=cps))
    counting = Counting(inner)
    return Store(counting, Objects.from_url(f"memory://web-cost-{new_id()}")), counting, made


def _index_cost(timelines: int) -> tuple[dict[str, int], dict[str, int], Any]:
    store, counting, _ = _store(timelines)
    app = App(store)
    counting.reset()
    resp = app.handle("GET", "/api/timelines", "localhost")
    assert resp.status == 200
    return dict(counting.calls), dict(counting.rows), resp


def test_the_index_reads_one_page_of_rows_whatever_the_store_size() -> None:
    import json

    small_calls, small_rows, _ = _index_cost(100)
    calls, rows, resp = _index_cost(1000)
    page = json.loads(resp.body)
    assert page["total"] == 1000 and len(page["timelines"]) == TIMELINE_PAGE
    assert [r["source_video"] for r in page["timelines"][:2]] == ["video-999.mp4",
                                                                  "video-998.mp4"]
    assert all(r["checkpoints"] == 3 for r in page["timelines"])
    # no listing of every timeline, no tree: one page query, newest first (its total
    # beside it), one tombstones query for the page, one short-id lookup per timeline
    assert "timelines" not in calls and "tree" not in calls, calls
    assert calls["timeline_page"] == 1 and calls["tombstones"] == 1, calls
    assert calls.get("find_short", 0) <= 2 * TIMELINE_PAGE, calls
    assert sum(rows.values()) <= 5 * TIMELINE_PAGE + 10, rows
    # the same page of a store ten times smaller costs the same
    assert calls == small_calls and rows == small_rows


def test_the_html_index_costs_the_same_as_the_json() -> None:
    store, counting, _ = _store(300)
    app = App(store)
    counting.reset()
    assert app.handle("GET", "/?start=100", "localhost").status == 200
    assert "timelines" not in counting.calls and "tree" not in counting.calls
    assert sum(counting.rows.values()) <= 5 * TIMELINE_PAGE + 10, counting.rows


def test_a_pruned_timeline_is_counted_from_its_own_tree_only_until_gc() -> None:
    import json

    store, counting, made = _store(200)
    newest = made[-1]
    kids = store.children(newest.root_checkpoint_id)
    store.prune(kids[0].id)
    app = App(store)
    counting.reset()
    page = json.loads(app.handle("GET", "/api/timelines", "localhost").body)
    counts = {r["id"]: r["checkpoints"] for r in page["timelines"]}
    assert counts[newest.id] == 2 and counts[made[-2].id] == 3
    assert counting.calls.get("tree") == 1  # only the pruned timeline's tree
    assert counting.calls["holding_hidden"] == 1  # one query says which trees to read
    # once gc has purged what the prune hid, its count is the stored one, as any other's
    counting.inner.purge_deleted()
    counting.reset()
    page = json.loads(app.handle("GET", "/api/timelines", "localhost").body)
    assert {r["id"]: r["checkpoints"] for r in page["timelines"]} == counts
    assert "tree" not in counting.calls, counting.calls


@pytest.mark.parametrize("start, first", [(0, 199), (50, 149), (190, 9), (199, 0)])
def test_index_pages_go_from_newest_to_oldest(start: int, first: int) -> None:
    import json

    store, _, _ = _store(200)
    page = json.loads(App(store).handle("GET", f"/api/timelines?start={start}",
                                        "localhost").body)
    assert page["timelines"][0]["source_video"] == f"video-{first}.mp4"
    assert len(page["timelines"]) == min(TIMELINE_PAGE, 200 - start)


@pytest.mark.parametrize("path", ["/api/timelines", "/", "/api/timelines/{timeline}"])
def test_pages_read_as_many_database_rows_at_1000_timelines_as_at_100(path: str) -> None:
    """At the engine, under the short ids the pages show: a timeline's short id is two
    index seeks, and the index asks for its page's in one statement."""
    reads: dict[int, Reads] = {}
    for n in (100, 1000):
        store, counted, made = _store(n)
        bare = Store(counted.inner, store.objects)  # as served: short_neighbours too
        url = path.format(timeline=made[n // 2].id)
        with counting(bare.catalog.engine) as reads[n]:
            assert App(bare).handle("GET", url, "localhost").status == 200
        bare.close()
    small, large = reads[100], reads[1000]
    assert len(large.statements) == len(small.statements), (small, large)
    assert large.rows <= small.rows + 8, (small, large)
