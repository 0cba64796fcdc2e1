"""What a transfer reads of the destination costs what it carries (issue 21: reads cost
what they return), counted in statements, never in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_reads import traced

import localckpt
import localckpt.transfer as transfer
from localckpt.errors import InvalidInputError

FRAME = np.zeros((2, 2, 3), np.uint8)


def _busy(store: localckpt.Store, n: int) -> None:
    """n timelines, each with a tag and a pruned try (a tombstone)."""
    for i in range(n):
        tl = store.create_timeline(f"other{i}.mp4", "p", [FRAME])
        kept = store.save_stage_output(tl.id, None, "a", {"i": i})
        gone = store.save_stage_output(tl.id, None, "a", {"i": -i})
        store.tag(kept, f"other-{i}")
        store.prune(gone)


def test_a_chunked_transfer_reads_the_destination_records_of_its_ids_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the first of several output commits, a transfer checks that no tombstone
    or tag it brings has the id of another timeline's record in the destination. It read
    every tombstone and tag of the destination for that; now it reads those ids."""
    monkeypatch.setattr(transfer, "OUTPUT_CHUNK_BYTES", 1000)  # several commits
    with localckpt.open(tmp_path / "src", create=True, fsync=False) as src, \
            localckpt.open(tmp_path / "dst", create=True, fsync=False) as dst:
        _busy(dst, 4)
        tl = src.create_timeline("v.mp4", "p", [FRAME])
        tries = [src.save_stage_output(tl.id, None, "a", {"i": i, "pad": "x" * 200})
                 for i in range(12)]
        src.tag(tries[0], "best")
        src.prune(tries[-1])
        with traced(dst) as said:
            report = localckpt.sync(src, dst)
        assert (report.tombstones, report.tags, report.outputs) == (1, 1, 11)
        assert dst.tag_target("best") == tries[0]
        assert dst.tag_target("other-3") is not None
        reads = [s for s in said if s.lstrip().upper().startswith("SELECT")]
        whole = [s for s in reads if ("FROM tombstones" in s or "FROM tags" in s)
                 and "WHERE" not in s]
        assert not whole, whole
        assert any("FROM tombstones WHERE id" in s for s in reads), reads
        assert any("FROM tags WHERE id" in s for s in reads), reads


def test_with_ids_reads_tombstones_and_tags_of_any_timeline(tmp_path: Path) -> None:
    """Catalog.with_ids answers as the default (filter every record) does."""
    from localckpt.catalog import Catalog

    with localckpt.open(tmp_path / "s", create=True, fsync=False) as store:
        _busy(store, 3)
        catalog = store.catalog
        for kind, every in (("tombstone", catalog.tombstones(None)),
                            ("tag", catalog.tags(None))):
            ids = [r.id for r in every[:2]] + ["01234567-89ab-7def-8123-456789abcdef"]
            got = catalog.with_ids(kind, ids)
            assert got == every[:2]
            assert got == Catalog.with_ids(catalog, kind, ids)
            assert catalog.with_ids(kind, []) == []
        with pytest.raises(InvalidInputError, match="tombstones or tags"):
            catalog.with_ids("checkpoint", [])
