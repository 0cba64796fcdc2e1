"""Timeline ids that differ only in letter case. A timeline's frames lie under
frames/<id>/, and a case-insensitive filesystem (macOS, Windows: a laptop's store)
holds one directory for 'peer-a' and 'PEER-A': a peer's timeline of the other case
overwrote the shards of one already there. Ids are tokens of either case, so a sync or
an import refuses a timeline whose id another has but for case, and copies nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import StoreFactory
from forged import timeline_with_id

import localckpt
from localckpt import Store
from localckpt.bundle import export_bundle, import_bundle
from localckpt.errors import ConflictError
from localckpt.records import utcnow


def _state(store: Store) -> tuple[object, ...]:
    cat = store.catalog
    return (sorted(t.id for t in cat.timelines(None)),
            {k: store.objects.get(k) for k in store.objects.list("frames")})


def test_a_timeline_of_another_case_than_one_held_is_refused(
        new_store: StoreFactory, store_kind: str, tmp_path: Path) -> None:
    first, second = new_store("memory"), new_store("memory")
    timeline_with_id(first, "peer-a", utcnow())
    timeline_with_id(second, "PEER-A", utcnow())
    dst = new_store(store_kind)
    localckpt.sync(first, dst, "peer-a")
    before = _state(dst)
    with pytest.raises(ConflictError, match=r"timeline PEER-A and timeline peer-a .*letter "
                       r"case.*Nothing was copied") as refused:
        localckpt.sync(second, dst, "PEER-A")
    said = str(refused.value)  # what to run names the destination's timeline and store
    assert "delete timeline peer-a from" in said and "rm peer-a`" in said, said
    if dst.url and not dst.url.startswith("memory://"):
        assert f"`localckpt --store {dst.url} rm peer-a`" in said, said
    assert _state(dst) == before
    path = tmp_path / "upper.lckpt"
    export_bundle(second, "PEER-A", path)
    with pytest.raises(ConflictError, match=r"PEER-A .* peer-a .*letter case"):
        import_bundle(dst, path)
    assert _state(dst) == before
    localckpt.sync(first, dst, "peer-a")  # the same timeline again is no clash


def test_a_source_carrying_both_cases_is_refused(new_store: StoreFactory,
                                                  store_kind: str) -> None:
    src, dst = new_store("memory"), new_store(store_kind)
    timeline_with_id(src, "Twin", utcnow())
    timeline_with_id(src, "twin", utcnow())
    before = _state(dst)
    with pytest.raises(ConflictError, match=r"Twin and timeline twin .*letter case.*copy "
                       r"one of the two alone"):
        localckpt.sync(src, dst)
    assert _state(dst) == before
    localckpt.sync(src, dst, "twin")  # one of them alone goes
    assert "twin" in _state(dst)[0] and "Twin" not in _state(dst)[0]


def test_the_default_lookup_agrees_with_the_sql_one(new_store: StoreFactory) -> None:
    """Catalog.timelines_folding_to (a backend without its own query reads every
    timeline) and the SQL catalog's one query give the same ids."""
    from localckpt.catalog import Catalog

    store = new_store("embedded")
    for tid in ("Twin", "other"):
        timeline_with_id(store, tid, utcnow())
    cat = store.catalog
    for ids in (["twin"], ["TWIN", "other"], ["Twin"], ["OTHER", "none"], []):
        assert cat.timelines_folding_to(ids) == Catalog.timelines_folding_to(cat, ids)
    assert cat.timelines_folding_to(["twin", "OTHER"]) == ["Twin", "other"]
    assert cat.timelines_folding_to(["Twin", "other"]) == []
