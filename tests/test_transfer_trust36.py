"""Transfers trusting nothing (stop 36): outputs a sync peer names by hash alone, frame
headers, timelines dated by their id, tags whose names an import moves."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
from conftest import StoreFactory
from forged import timeline_with_id

import localckpt
from localckpt import Batch, Store
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.errors import CorruptDataError
from localckpt.ids import new_id
from localckpt.records import utcnow
from localckpt.sync import StoreSource
from localckpt.transfer import transfer

FRAMES = [np.full((4, 4, 3), i * 80, np.uint8) for i in range(2)]


def _everything(store: Store) -> tuple[object, ...]:
    cat = store.catalog
    tls = sorted(cat.timelines(None), key=lambda t: t.id)
    trees = [sorted(cat.tree(t.id), key=lambda c: c.id) for t in tls]
    hashes = sorted({h for tree in trees for c in tree for h in c.stage_hashes.values()})
    objects = {k: store.objects.get(k) for k in store.objects.list("frames")}
    return (tls, trees, sorted(cat.tombstones(None), key=lambda x: x.id),
            sorted(cat.tags(None), key=lambda g: g.id), sorted(cat.outputs(hashes)), objects)


# -- 1. outputs a sync peer names by hash alone --------------------------------------------


class Outputs:
    """dst holds victim V, whose detect output is the secret; src holds timeline A."""

    def __init__(self, new_store: StoreFactory, kind: str = "memory") -> None:
        # the peer: a store whose catalog lets a checkpoint name an output it lacks
        # (PostgreSQL's does not); the destination: each kind
        self.src, self.dst = new_store("memory"), new_store(kind)
        v = self.dst.create_timeline("victim.mp4", "p", FRAMES, codec="png", workers=1)
        self.v1 = self.dst.save_stage_output(v.id, None, "detect", {"v": 1})
        self.v = v
        self.secret = content_hash(canonical_bytes({"v": 1}))
        a = self.src.create_timeline("a.mp4", "p", FRAMES, codec="png", workers=1)
        self.a1 = self.src.save_stage_output(a.id, None, "detect", {"a": 1})
        self.a = a

    def stealer(self, h: str) -> str:
        """A checkpoint of A, written into the source's catalog, that names output h by
        its hash alone (the catalog does not ask for outputs: the peer is hostile)."""
        base = self.src.get_checkpoint(self.a1)
        c = attrs.evolve(base, id=new_id(), parent_id=self.a1, created_at=utcnow(),
                         stage="steal", stage_hashes={**base.stage_hashes, "steal": h})
        self.src.catalog.commit(Batch(checkpoints=[c]))
        return c.id


def test_a_sync_peer_cannot_name_an_output_of_another_timeline_by_hash(
        new_store: StoreFactory, store_kind: str) -> None:
    """Before: the stealing checkpoint was admitted, and pulling A back handed the
    secret output of V (a timeline the peer never carried) to the peer."""
    s = Outputs(new_store, store_kind)
    cid = s.stealer(s.secret)
    before = _everything(s.dst)
    with pytest.raises(CorruptDataError, match=(
            f"lacks stage output {s.secret} that its checkpoints refer to: checkpoint "
            f"{cid} of timeline {s.a.id} names stage output {s.secret} \\(stage 'steal'\\)"
            ".*none of its checkpoints that this transfer names uses it")):
        localckpt.sync(s.src, s.dst)
    assert _everything(s.dst) == before
    assert s.dst.catalog.timelines([s.a.id]) == []  # nothing to pull back


def test_a_sync_peer_cannot_name_an_output_of_its_own_timeline_it_lacks(
        new_store: StoreFactory) -> None:
    """Also in a timeline both hold: V's output, named in A after dst holds A."""
    s = Outputs(new_store)
    localckpt.sync(s.src, s.dst)
    s.stealer(s.secret)
    before = _everything(s.dst)
    with pytest.raises(CorruptDataError, match=f"lacks stage output {s.secret}"):
        localckpt.sync(s.src, s.dst)
    assert _everything(s.dst) == before


def test_a_sync_peer_holding_the_bytes_proves_them(new_store: StoreFactory) -> None:
    """A peer that made the same output itself (content-addressed: same bytes, same
    hash) syncs as before; the proof costs one read of the source's outputs, and a
    damaged copy of the source (other bytes) is refused."""
    s = Outputs(new_store)
    honest = new_store("memory")
    localckpt.sync(s.src, honest)
    localckpt.sync(s.src, s.dst)
    c = s.src.save_stage_output(s.a.id, s.a1, "same", {"v": 1})  # the secret's bytes
    with_proof = localckpt.sync(s.src, s.dst)
    assert with_proof.checkpoints == 1 and with_proof.outputs == 0
    assert s.dst.get_checkpoint(c).stage_hashes["same"] == s.secret
    # the same sync into a store that lacks the output copies it, reading it as the
    # proof did: the proof costs what the copy would (one read per 1,000 outputs)
    without = localckpt.sync(s.src, honest)
    assert without.outputs == 1
    assert with_proof.round_trips == without.round_trips


def test_an_incremental_sync_reads_no_output_of_a_shared_timeline(
        new_store: StoreFactory) -> None:
    """Outputs dst's own checkpoints use in the timelines carried need no proof: a
    child inherits its parent's outputs, so every sync would otherwise read them."""
    s = Outputs(new_store)
    localckpt.sync(s.src, s.dst)
    child = s.src.save_stage_output(s.a.id, s.a1, "track", {"t": 1})
    src_reads = StoreSource(s.src)
    report = transfer(src_reads, s.dst)
    assert report.checkpoints == 1
    assert "outputs" not in src_reads.catalog.calls or \
        src_reads.catalog.calls["outputs"] == 1  # the copy of the new output only
    assert s.dst.get_checkpoint(child).stage_hashes["detect"] == \
        s.src.get_checkpoint(s.a1).stage_hashes["detect"]


def test_the_proof_names_a_forged_output(new_store: StoreFactory, store_kind: str) -> None:
    """A peer holding other bytes under the hash (a damaged or forged copy)."""
    s = Outputs(new_store, store_kind)
    s.stealer(s.secret)
    s.src.catalog.commit(Batch(outputs={s.secret: canonical_bytes({"forged": 1})}))
    before = _everything(s.dst)
    with pytest.raises(CorruptDataError, match=f"stage output {s.secret} in .* does not "
                       "match its hash"):
        localckpt.sync(s.src, s.dst)
    assert _everything(s.dst) == before


# -- 2. frame headers ------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says width x height, with one tiny IDAT (never decoded here)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))


def _hostile_timeline(src: Store, frame: bytes, codec: str, size: tuple[int, int]) -> str:
    """A timeline written into src behind the API: one frame of these bytes whose index
    row says codec and size; every hash (content, index) matches."""
    import hashlib

    from localckpt.shards import index_bytes, index_hash, index_key, shard_key
    from localckpt.types import FrameMeta

    good = src.create_timeline("good.mp4", "p", FRAMES[:1], codec="png", workers=1)
    tid = new_id()
    meta = FrameMeta(0, 0.0, 0, "0" * 16, size[0], size[1], codec,
                     hashlib.sha256(frame).hexdigest(), 0, 0, len(frame))
    index = index_bytes([meta])
    src.objects.put(shard_key(tid, 0), frame)
    src.objects.put(index_key(tid), index)
    root = attrs.evolve(src.get_checkpoint(good.root_checkpoint_id), id=new_id(),
                        timeline_id=tid, created_at=utcnow())
    t = attrs.evolve(good, id=tid, root_checkpoint_id=root.id, frame_count=1,
                     index_hash=index_hash(index), created_at=utcnow())
    src.catalog.commit(Batch(timelines=[t], checkpoints=[root]))
    return tid


@pytest.mark.parametrize("case", ["bigger", "bomb", "other-codec", "not-an-image"])
def test_a_frame_whose_header_disagrees_with_its_index_is_refused(
        case: str, new_store: StoreFactory, store_kind: str, tmp_path: Path) -> None:
    """Before: only the frame's content hash was checked, so a frame whose image is
    8x8 (or 100,000 x 100,000: a decompression bomb) where the index says 4x4 was
    imported, and every read of it failed, while labels, exports and pages used the 4x4
    of the index. Also as a bundle."""
    from localckpt.bundle import export_bundle, import_bundle
    from localckpt.frames import encode

    src, dst = new_store("memory"), new_store(store_kind)
    frame, codec, size = {
        "bigger": (encode(np.zeros((8, 8, 3), np.uint8), "png"), "png", (4, 4)),
        "bomb": (_png_header_only(100_000, 100_000), "png", (100_000, 100_000)),
        "other-codec": (encode(np.zeros((4, 4, 3), np.uint8), "jpeg"), "png", (4, 4)),
        "not-an-image": (b"\x89PNG not really", "png", (4, 4)),
    }[case]
    tid = _hostile_timeline(src, frame, codec, size)
    said = {"bigger": "is 8x8 where its frame index says 4x4", "bomb": "decompression bomb",
            "other-codec": "not a png image", "not-an-image": "not a png image"}[case]
    before = _everything(dst)
    with pytest.raises(CorruptDataError, match=f"frame 0 of timeline {tid} \\(shard 0\\): "
                       f".*{said}"):
        localckpt.sync(src, dst, tid)
    assert _everything(dst) == before
    path = tmp_path / "hostile.lckpt"
    export_bundle(src, tid, path)
    with pytest.raises(CorruptDataError, match=f"frame 0 of timeline {tid}.*{said}"):
        import_bundle(dst, path)
    assert _everything(dst) == before


# -- 3. timelines whose id is not a UUIDv7 -------------------------------------------------


def test_a_peer_timeline_whose_id_is_not_a_uuid7_is_not_the_newest(
        new_store: StoreFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `tree` took the greatest id as the newest timeline, and `zzzz` sorts
    after every UUID: a peer's timeline made an hour ago became the default for good.
    Now it is the newest by created_at; an old store whose ids are not UUIDv7 still
    syncs, and its timelines order by their times."""
    from datetime import timedelta

    from localckpt.cli.main import main

    peer = new_store("memory")
    timeline_with_id(peer, "zzzz", utcnow() - timedelta(hours=1))
    with localckpt.open(str(tmp_path / "s"), create=True) as dst:
        localckpt.sync(peer, dst, "zzzz")
        mine = dst.create_timeline("mine.mp4", "p", FRAMES, codec="png", workers=1)
    capsys.readouterr()
    assert main(["--store", str(tmp_path / "s"), "tree"]) == 0
    out, err = capsys.readouterr()
    assert "mine.mp4" in err and "peer.mp4" not in err
    assert out.startswith(f"timeline {mine.id[-12:-4]}  mine.mp4")
    # the newest by created_at, whatever its id: the peer's, once it is the newest
    with localckpt.open(str(tmp_path / "s")) as dst:
        timeline_with_id(peer, "aaaa-later", utcnow())
        localckpt.sync(peer, dst, "aaaa-later")
    assert main(["--store", str(tmp_path / "s"), "tree"]) == 0
    assert "peer.mp4" in capsys.readouterr().err


# -- 4. tag names an import moves --------------------------------------------------------------


def test_an_import_says_which_tag_names_it_moved(new_store: StoreFactory, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a bundle's tag of a name in use took the name (the newest wins, by
    design) and the report said nothing, so `best` named another video's checkpoint
    unseen. The rule stands; the report (text and --json) names the move."""
    import json

    from localckpt.bundle import export_bundle, import_bundle
    from localckpt.cli.main import main
    from localckpt.sync import TagMove

    src = new_store("memory")
    old = src.create_timeline("old.mp4", "p", FRAMES, codec="png", workers=1)
    older = src.tag(src.save_stage_output(old.id, None, "detect", {"o": 1}), "kept")
    with localckpt.open(str(tmp_path / "s"), create=True) as dst:
        v = dst.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
        v1 = dst.save_stage_output(v.id, None, "detect", {"v": 1})
        dst.tag(v1, "best")
        dst.tag(v1, "kept")  # newer than the bundle's "kept": stays
    for other in ("t", "u"):
        with localckpt.open(str(tmp_path / other), create=True) as s:
            s.tag(s.save_stage_output(s.create_timeline(
                "w.mp4", "p", FRAMES, codec="png", workers=1).id, None, "detect", {"w": 1}),
                "best")
    a = src.create_timeline("a.mp4", "p", FRAMES, codec="png", workers=1)
    a1 = src.save_stage_output(a.id, None, "detect", {"a": 1})
    src.tag(a1, "best")
    src.tag(a1, "fresh")  # a new name: nothing moved
    export_bundle(src, a.id, tmp_path / "a.lckpt")
    export_bundle(src, old.id, tmp_path / "old.lckpt")
    assert older.name == "kept"
    with localckpt.open(str(tmp_path / "s")) as dst:
        report = import_bundle(dst, tmp_path / "old.lckpt")
        assert report.tags == 1 and report.moved_tags == ()
        assert dst.tag_target("kept") == v1
        report = import_bundle(dst, tmp_path / "a.lckpt")
        assert report.moved_tags == (TagMove("best", v1, a1),)
        assert dst.tag_target("best") == a1  # the rule is unchanged
        assert f"tag 'best' moved from checkpoint {v1} to {a1}" in report.summary()
    # the CLI: text and --json (other stores, whose "best" is older, the same import)
    capsys.readouterr()
    assert main(["--store", str(tmp_path / "t"), "import", str(tmp_path / "a.lckpt"),
                 "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in said["moved_tags"]] == ["best"]
    assert said["moved_tags"][0]["after"] == a1
    assert main(["--store", str(tmp_path / "u"), "import", str(tmp_path / "a.lckpt")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("import from")
    with localckpt.open(str(tmp_path / "u")) as u:  # by short id, as the CLI names them
        assert "tag 'best' moved from checkpoint" in err and f"to {u.short_id(a1)}:" in err


def test_a_tag_copied_that_hides_a_short_id_here_is_said(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        new_store: StoreFactory) -> None:
    """Store.tag refuses a name spelled like a live record's short id (a tag wins over
    it: `prune 1a2b3c4d` would prune the tag's checkpoint). A peer's tag of such a name
    hid one of this store's short ids without a word; the transfer now says so."""
    from localckpt.bundle import export_bundle, import_bundle
    from localckpt.cli.main import main
    from localckpt.sync import TagShadow

    with localckpt.open(str(tmp_path / "s"), create=True) as dst:
        v = dst.create_timeline("v.mp4", "p", FRAMES, codec="png", workers=1)
        mine = dst.save_stage_output(v.id, None, "detect", {"v": 1})
        short = dst.short_id(mine)
    src = new_store("memory")
    a = src.create_timeline("a.mp4", "p", FRAMES, codec="png", workers=1)
    theirs = src.save_stage_output(a.id, None, "detect", {"a": 1})
    src.tag(theirs, short)  # fine there: no record of src has that short id
    src.tag(theirs, "cafe-not-hex")  # not a short id's spelling: never looked up
    export_bundle(src, a.id, tmp_path / "a.lckpt")
    shutil.copytree(tmp_path / "s", tmp_path / "s2")  # for the CLI, below
    with localckpt.open(str(tmp_path / "s")) as dst:
        report = import_bundle(dst, tmp_path / "a.lckpt")
        assert report.shadowed == (TagShadow(short, "checkpoint", mine),)
        assert f"tag {short!r} copied is spelled like the short id of checkpoint {mine}" \
            in report.summary()
        assert dst.resolve(short) == theirs  # what the warning warns of
    capsys.readouterr()  # the CLI says it on stderr, by short ids
    assert main(["--store", str(tmp_path / "s2"), "import", str(tmp_path / "a.lckpt")]) == 0
    assert (f"tag {short!r} copied is spelled like the short id of checkpoint {short}: "
            f"{short!r} names the tag from now on") in capsys.readouterr().err
    assert main(["--store", str(tmp_path / "s2"), "tags"]) == 0  # and says how to name it
    listed = capsys.readouterr()
    assert any(line.startswith(f"{short} ") for line in listed.out.splitlines())
    assert (f"note: tag {short!r} is spelled like the short id of checkpoint {short}, so "
            f"{short!r} names the tag; name the checkpoint by its full id ({mine})") \
        in listed.err
    with localckpt.open(str(tmp_path / "t"), create=True) as t:
        t.create_timeline("w.mp4", "p", FRAMES, codec="png", workers=1)
    assert main(["--store", str(tmp_path / "t"), "import", str(tmp_path / "a.lckpt")]) == 0
    assert "spelled like the short id" not in capsys.readouterr().err  # nothing hidden there


def test_the_names_of_the_tags_copied_cost_one_read(new_store: StoreFactory) -> None:
    """What the moved-tags report costs when dst uses none of the names: one read of dst
    for all the names of the tags copied (Catalog.tags_named_in), however many (it was
    one read per name: thousands of round trips for a first pull of a tagged store)."""
    reports = []
    for names in ([], ["x", "y", "z"], [f"n{i}" for i in range(40)]):
        src = new_store("memory")
        t = src.create_timeline("a.mp4", "p", FRAMES, codec="png", workers=1)
        c = src.save_stage_output(t.id, None, "detect", {"a": 1})
        for name in names:
            src.tag(c, name)
        reports.append(localckpt.sync(src, new_store("memory")))
    without, three, forty = reports
    assert (three.tags, forty.tags) == (3, 40) and three.moved_tags == forty.moved_tags == ()
    assert three.round_trips == forty.round_trips == without.round_trips + 1
