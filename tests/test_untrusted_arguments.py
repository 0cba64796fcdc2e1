"""Bad arguments give localckpt errors that say what to do, and secrets stay secret."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import StoreFactory

import localckpt
from localckpt.errors import InvalidInputError, NotFoundError
from localckpt.objects import Objects, split_credentials


def test_load_stage_output_with_a_non_string_stage(new_store: StoreFactory) -> None:
    store = new_store("memory")
    tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
    for bad in (["x"], None, 3):
        with pytest.raises(InvalidInputError, match="stage_name"):
            store.load_stage_output(tl.root_checkpoint_id, bad)  # type: ignore[arg-type]


class _Named(str):
    """A str subclass with its own __str__, as some libraries' name types are."""

    def __str__(self) -> str:
        return "not the text"


def test_names_of_a_str_subclass_are_stored_as_their_text(new_store: StoreFactory,
                                                          store_kind: str) -> None:
    """numpy's str_ (a name read from an array or a DataFrame) passed the API's check,
    and the record's check then refused it: "timeline '01a2...': source_video must be a
    str, not str_". Records hold plain str; ids, tags and runs read back equal."""
    store = new_store(store_kind)
    tl = store.create_timeline(np.str_("v.mp4"), _Named("p"),
                               [np.zeros((4, 4, 3), np.uint8)], codec="png")
    c = store.save_stage_output(tl.id, None, np.str_("detect"), {"n": 1},
                                is_scenario=True, scenario_label=_Named("thr"))
    store.tag(c, np.str_("best"))
    run = store.begin_run(tl.id, None, _Named("classify"), version=np.str_("v1"))
    run.put({0: {"k": 1}})
    done = store.get_checkpoint(run.commit())
    got = store.get_timeline(tl.id), store.get_checkpoint(c)
    assert (got[0].source_video, got[0].profile_name) == ("v.mp4", "p")
    assert (got[1].stage, got[1].scenario_label) == ("detect", "thr")
    assert [(t.name, t.checkpoint_id) for t in store.tags()] == [("best", c)]
    assert done.stage == "classify" and store.get_run(run.id).version == "v1"
    values = [got[0].source_video, got[0].profile_name, got[1].stage, got[1].scenario_label,
              store.tags()[0].name, done.stage]
    assert {type(v) for v in values} == {str}
    assert store.verify().ok


def test_numpy_integers_are_taken_as_ints(new_store: StoreFactory) -> None:
    """A sequence from np.arange, a count from an array: run.put took np.int64 keys, but
    get_frame said "sequence must be an int >= 0, not a int64", and so did iter_frames'
    bounds and batch, similar_frames, retain's keep_last and run.map's chunk_size."""
    store = new_store("embedded")
    tl = store.create_timeline("v", "p", [np.full((4, 4, 3), i, np.uint8) for i in range(5)],
                               codec="png")
    i64, i32 = np.int64, np.int32
    assert store.get_frame(tl.id, i64(2)).sequence == 2
    assert [f.sequence for f in store.iter_frames(tl.id, i64(1), i32(4), batch=np.uint8(2))
            ] == [1, 2, 3]
    assert [f.sequence for f in store.get_timeline_frames(tl.id, i64(3))] == [3, 4]
    assert [f["sequence"] for f in store.get_timeline_frames_b64(tl.id, None, i64(2))
            ] == [0, 1]
    assert len(store.similar_frames(tl.id, i64(1), i64(64), limit=i64(2))) == 2
    run = store.begin_run(tl.id, None, "detect")
    assert run.map(lambda frames: {f.sequence: f.sequence for f in frames},
                   chunk_size=i64(2)) == 5
    kept = store.save_stage_output(tl.id, run.commit(), "track", {})
    assert store.retain(tl.id, keep_last=i64(1), dry_run=True).checkpoints == ()
    assert store.get_checkpoint(kept).stage == "track"
    for bad, said in ((np.float64(2.0), repr(np.float64(2.0))), (i64(-1), repr(i64(-1))),
                      (object(), "an object"), (True, "True")):
        with pytest.raises(InvalidInputError, match=rf"sequence must be an int >= 0, not "
                           rf"{re.escape(said)}$"):
            store.get_frame(tl.id, bad)


def test_a_record_or_a_uuid_where_an_id_goes_says_what_to_pass(
        new_store: StoreFactory) -> None:
    """A Checkpoint where its id goes (from lineage(), say) was refused with "not
    Checkpoint"; the message now says to pass its .id, and a UUID its text."""
    import uuid

    store = new_store("memory")
    tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
    root = store.get_checkpoint(tl.root_checkpoint_id)
    cases = ((lambda: store.save_stage_output(tl.id, root, "d", {}),
              f"not a Checkpoint: pass its .id ('{root.id}')"),
             (lambda: store.checkpoints(tl), f"not a Timeline: pass its .id ('{tl.id}')"),
             (lambda: store.get_checkpoint(uuid.UUID(root.id)),
              f"not a UUID: pass str() of it ('{root.id}')"),
             (lambda: store.get_checkpoint(7), "(a string), not an int"))
    for call, said in cases:
        with pytest.raises(InvalidInputError) as info:
            call()
        assert str(info.value).endswith(said), str(info.value)
    assert len(store.checkpoints(tl.id)) == 1


def test_objects_that_cannot_be_a_directory(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        localckpt.open(str(tmp_path / "s"), objects=str(a_file), create=True)
    with pytest.raises(InvalidInputError, match="not a directory"):
        Objects.from_url(str(a_file))
    with pytest.raises(InvalidInputError, match="cannot create"):
        Objects.from_url(str(a_file / "below"))


def test_an_unknown_objects_scheme(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nosuch") as info:
        localckpt.open(str(tmp_path / "s"), objects="nosuch://bucket/x", create=True)
    assert "s3://" in str(info.value)  # what to use instead
    for bad in (123, None, ""):
        with pytest.raises(InvalidInputError):
            Objects.from_url(bad)  # type: ignore[arg-type]


def test_credentials_in_an_s3_url_never_show(s3_base: tuple[str, dict[str, Any]],
                                             tmp_path: Path) -> None:
    base, opts = s3_base
    bucket_and_prefix = base[len("s3://"):]
    secret = "Sup3rSecretValue42"
    url = f"s3://AKIAKEYINURL:{secret}@{bucket_and_prefix}/creds"
    with localckpt.open(str(tmp_path / "s"), objects=url, storage_options=opts,
                        create=True) as store:
        texts = [repr(store), repr(store.objects), store.objects.describe()]
        tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
        store.objects.delete([f"frames/{tl.id}/index.parquet"])
        with pytest.raises(localckpt.LocalckptError) as info:
            store.get_timeline_frames(tl.id)
        texts.append(str(info.value))
        with pytest.raises(NotFoundError) as missing:
            store.objects.get("frames/nothing/here")
        texts.append(str(missing.value))
    for text in texts:
        assert secret not in text and "AKIAKEYINURL" not in text, text
    assert bucket_and_prefix.split("/")[0] in texts[2]  # still says where


def test_split_credentials() -> None:
    assert split_credentials("s3://k:s@bucket/p") == ("s3://bucket/p", {"key": "k", "secret": "s"})
    assert split_credentials("s3://bucket/p") == ("s3://bucket/p", {})
    assert split_credentials("/local/dir") == ("/local/dir", {})
    assert split_credentials("file:///x@y") == ("file:///x@y", {})


def test_the_secret_of_storage_options_is_redacted_from_object_errors(tmp_path: Path) -> None:
    objects = Objects.from_url(str(tmp_path / "o"))
    redacting = Objects(objects.fs, objects.root, secrets=["hunter22"])
    assert redacting.redact("password hunter22 leaked") == "password *** leaked"


# -- issue 20: values that became foreign exceptions -------------------------------------

FRAME = [np.zeros((4, 4, 3), np.uint8)]


@pytest.fixture
def small(new_store: StoreFactory) -> tuple[localckpt.Store, str, str]:
    store = new_store("memory")
    tl = store.create_timeline("v", "p", FRAME, codec="png", workers=1)
    cid = store.save_stage_output(tl.id, None, "detect", {"frames": {"0": {}}})
    return store, tl.id, cid


def test_the_reported_api_cases_are_typed(small: tuple[localckpt.Store, str, str],
                                          new_store: StoreFactory, tmp_path: Path) -> None:
    store, tid, cid = small
    cases = [
        lambda: store.create_timeline("v", "p", FRAME, codec=[]),  # type: ignore[arg-type]
        lambda: store.create_timeline("v", "p", FRAME, workers=10**6),
        lambda: store.create_timeline("v", "p", FRAME, fps=10**5000),
        lambda: store.create_timeline("v", "p", FRAME, fps=5e-324),
        lambda: store.live_timelines(None),  # type: ignore[arg-type]
        lambda: store.live_checkpoints(0),  # type: ignore[arg-type]
        lambda: store.live_checkpoints("abc"),
        lambda: localckpt.sync(store, 0),  # type: ignore[arg-type]
        lambda: localckpt.open(str(tmp_path / "s"), objects="a\x00b", create=True),
        lambda: localckpt.open(str(tmp_path / ("x" * 300)), create=True),
        lambda: localckpt.open("\ud800", create=True),
        lambda: store.save_stage_output(tid, None, "s", {"a": 10**5000}),
        lambda: store.merge(cid, cid, strategy=[[]] * 3),  # type: ignore[arg-type]
        lambda: store.tag(cid, 10**5000),  # type: ignore[arg-type]
        lambda: store.prune(cid, dry_run=10**5000),  # type: ignore[arg-type]
        lambda: store.verify(storage=10**5000),  # type: ignore[arg-type]
        lambda: store.get_frame(tid, 10**5000),  # its message once failed to print it
    ]
    for case in cases:
        with pytest.raises(localckpt.LocalckptError):
            case()
    assert [t.id for t in store.list_timelines()] == [tid]
    assert list(tmp_path.iterdir()) == []


def test_integers_have_a_stated_limit(small: tuple[localckpt.Store, str, str]) -> None:
    from localckpt.canonical import MAX_INT_DIGITS

    store, tid, _ = small
    fits = 10 ** (MAX_INT_DIGITS - 1)
    cid = store.save_stage_output(tid, None, "s", {"a": fits, "b": -fits})
    assert store.load_stage_output(cid, "s") == {"a": fits, "b": -fits}
    with pytest.raises(InvalidInputError, match=f"more than {MAX_INT_DIGITS} digits"):
        store.save_stage_output(tid, None, "s", {"a": 10**MAX_INT_DIGITS})


def test_frame_diff_of_a_huge_frames_key(small: tuple[localckpt.Store, str, str]) -> None:
    store, tid, cid = small
    other = store.save_stage_output(tid, None, "detect", {"frames": {"9" * 4000: {}}})
    with pytest.raises(InvalidInputError, match="frames key"):
        store.frame_diff(cid, other, "detect")
    big = store.save_stage_output(tid, None, "detect", {"frames": [{"sequence": 10**4000}]})
    with pytest.raises(InvalidInputError, match="sequence"):
        store.frame_diff(cid, big, "detect")


def _tmp_files_in_root() -> set[str]:
    return {n for n in os.listdir("/") if n.startswith(".tmp-bundle-")}


@pytest.mark.parametrize("path", [None, "", "/", "x" * 300, "\ud800", "a\x00b", b"bytes.zip",
                                  "/nonexistent-dir/x.zip", 3])
def test_bundle_paths_are_checked_before_anything_is_written(
        path: Any, small: tuple[localckpt.Store, str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from localckpt.bundle import export_bundle, import_bundle

    store, tid, _ = small
    monkeypatch.chdir(tmp_path)
    before = _tmp_files_in_root()
    with pytest.raises(localckpt.LocalckptError):
        export_bundle(store, tid, path)
    with pytest.raises(localckpt.LocalckptError):
        import_bundle(store, path)
    assert _tmp_files_in_root() == before and list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidInputError):
        export_bundle(store, tid, tmp_path / "b.zip", checkpoint_id=[])  # type: ignore[arg-type]


def test_export_bundle_keeps_an_existing_file_when_told_to(
        small: tuple[localckpt.Store, str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """overwrite=False (the default, and `localckpt export` without --force) refuses an
    existing file before anything is read, and one that appears while the bundle is
    written; overwrite=True replaces it."""
    import zipfile

    from localckpt import bundle
    from localckpt.bundle import export_bundle

    store, tid, _ = small
    target = tmp_path / "gt.json"
    target.write_text("mine")
    with pytest.raises(InvalidInputError, match=r"gt\.json: it already exists; .*overwrite=True"):
        export_bundle(store, tid, target, overwrite=False)
    with pytest.raises(InvalidInputError, match="overwrite must be True or False"):
        export_bundle(store, tid, target, overwrite="no")  # type: ignore[arg-type]
    assert target.read_text() == "mine" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(InvalidInputError, match="it already exists"):
        export_bundle(store, tid, target)  # the default keeps it, as export_labels does
    assert target.read_text() == "mine"
    export_bundle(store, tid, target, overwrite=True)
    assert zipfile.is_zipfile(target)

    late = tmp_path / "late.zip"
    write_outputs = bundle._write_outputs

    def appear(*args: Any, **kwargs: Any) -> Any:
        late.write_text("theirs")
        return write_outputs(*args, **kwargs)

    monkeypatch.setattr(bundle, "_write_outputs", appear)
    with pytest.raises(InvalidInputError, match=r"late\.zip: it already exists"):
        export_bundle(store, tid, late, overwrite=False)
    assert late.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json", "late.zip"]


@pytest.mark.parametrize("argv", [
    ["--store", "x" * 300, "init"], ["export", "T", ""], ["export", "T", "/"],
    ["export", "T", "y" * 300], ["import", "/"], ["import", ""], ["--store", "\udcff", "init"],
    ["--storage-options", "[" * 5000 + "]" * 5000, "ls"],
])
def test_the_reported_cli_cases_exit_1(argv: list[str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from localckpt.cli import main

    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "s")
    with localckpt.open(store, create=True) as s:
        tid = s.create_timeline("v", "p", FRAME, codec="png", workers=1).id
    argv = [tid if a == "T" else a for a in argv]
    if argv[0] != "--store":
        argv = ["--store", store, *argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        assert main(argv) in (0, 1)
    except SystemExit as exit_:  # deep --storage-options JSON: bad usage (exit 2)
        assert exit_.code == 2 and argv[-3] == "--storage-options"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if argv[2] != "init" or len(argv[1]) > 255:
        assert sorted(p.name for p in tmp_path.iterdir()) == before


# -- unclosed stores ------------------------------------------------------------------------


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_unclosed_stores_release_their_descriptors(store_kind: str,
                                                   new_store: StoreFactory) -> None:
    """100 stores opened and dropped without close(): each is closed when collected, with
    a ResourceWarning (as an unclosed file gives), and leaves no descriptor behind."""
    import gc
    import warnings

    first = new_store(store_kind)
    tl = first.create_timeline("v", "p", FRAME, codec="png", workers=1)
    kind, url, kwargs = new_store._how[id(first)]  # reopen the same data, unmanaged
    new_store.close(first)
    if kind == "memory":
        pytest.skip("a memory store holds no descriptors")
    gc.collect()
    before = _descriptors()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for i in range(100):
            store = localckpt.open(url, **kwargs)
            store.save_stage_output(tl.id, None, "x", {"i": i})
            del store
        gc.collect()
    assert _descriptors() - before <= 2, "unclosed stores kept their descriptors"
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)
                and "unclosed localckpt store" in str(w.message)]
    assert len(unclosed) == 100
    with localckpt.open(url, **kwargs) as again:  # the data and its locks are fine
        assert len(again.children(tl.root_checkpoint_id)) == 100


def test_a_closed_store_gives_no_warning(new_store: StoreFactory, tmp_path: Path) -> None:
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with localckpt.open(str(tmp_path / "s"), create=True) as store:
            store.list_timelines()
        del store
        gc.collect()
    assert not [w for w in caught if "unclosed localckpt store" in str(w.message)]


def test_the_python_blocks_of_the_trust_page_run(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    page = Path(__file__).resolve().parents[1] / "docs" / "trust.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(page), "exec"), {})
