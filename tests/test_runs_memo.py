"""The per-frame memo: hits, misses, what the key is made of, stats and clearing."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from conftest import KINDS

import localckpt
from localckpt.canonical import canonical_bytes, content_hash
from localckpt.errors import InvalidInputError
from localckpt.runs import code_version
from localckpt.runs.memo import FrameKeys, MemoKey

MEMO_KINDS = [k for k in ("memory", "embedded", "postgres-local") if k in KINDS]


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


def value(seq: int, salt: str = "") -> dict[str, Any]:
    return {"label": f"f{seq}{salt}", "score": seq / 3}


def full(run: Any, salt: str = "") -> str:
    run.put({s: value(s, salt) for s in run.todo()})
    return str(run.commit())


@pytest.fixture(params=MEMO_KINDS)
def store(request: pytest.FixtureRequest, new_store: Any) -> localckpt.Store:
    return new_store(request.param)


def test_a_second_timeline_of_the_same_frames_costs_nothing(store: localckpt.Store) -> None:
    a = store.create_timeline("a.mp4", "p", frames(20), codec="png")
    first = store.begin_run(a.id, None, "detect", params={"t": 1}, version="v1")
    cid = full(first)
    b = store.create_timeline("copy-of-a.mp4", "p", frames(20), codec="png")
    second = store.begin_run(b.id, None, "detect", params={"t": 1}, version="v1")
    assert second.todo() == [] and (second.memo_hits, second.done) == (20, 0)
    again = second.commit()
    assert store.get_checkpoint(again).stage_hashes == store.get_checkpoint(cid).stage_hashes
    run = store.get_run(second.id)
    assert (run.done, run.memo_hits) == (0, 20)
    # other pixels: a miss for exactly the frames that differ
    changed = frames(20)
    changed[4] = changed[4] ^ 1
    c = store.create_timeline("c.mp4", "p", changed, codec="png")
    assert store.begin_run(c.id, None, "detect", params={"t": 1}, version="v1").todo() == [4]
    # the same pixels encoded otherwise: other bytes, so a miss (the key is the bytes' hash)
    d = store.create_timeline("d.mp4", "p", frames(20), codec="jpeg")
    assert len(store.begin_run(d.id, None, "detect", params={"t": 1}, version="v1").todo()) == 20


def test_version_params_and_stage_name_are_part_of_the_key(store: localckpt.Store) -> None:
    tl = store.create_timeline("a.mp4", "p", frames(10), codec="png")
    full(store.begin_run(tl.id, None, "detect", params={"t": 1}, version="v1"))
    same = store.begin_run(tl.id, None, "detect", params={"t": 1}, version="v1")
    assert same.todo() == []
    for other in (dict(stage_name="detect", params={"t": 1}, version="v2"),
                  dict(stage_name="detect", params={"t": 1.5}, version="v1"),
                  dict(stage_name="detect", params={}, version="v1"),
                  dict(stage_name="classify", params={"t": 1}, version="v1"),
                  dict(stage_name="Detect", params={"t": 1}, version="v1")):
        run = store.begin_run(tl.id, None, other.pop("stage_name"), **other)
        assert run.todo() == list(range(10)) and run.memo_hits == 0, other


def test_an_input_stages_value_for_the_frame_is_part_of_the_key(store: localckpt.Store) -> None:
    tl = store.create_timeline("a.mp4", "p", frames(10), codec="png")
    boxes = {"frames": [{"sequence": s, "boxes": [[s, s, 5, 5]]} for s in range(10)]}
    a = store.save_stage_output(tl.id, None, "detect", boxes)
    moved = {"frames": [dict(f, boxes=[[9, 9, 9, 9]]) if f["sequence"] == 3 else f
                        for f in boxes["frames"]]}
    b = store.save_stage_output(tl.id, None, "detect", moved)
    dropped = {"frames": [f for f in boxes["frames"] if f["sequence"] != 6]}
    c = store.save_stage_output(tl.id, None, "detect", dropped)
    full(store.begin_run(tl.id, a, "classify", inputs=("detect",), version="v"))
    assert store.begin_run(tl.id, a, "classify", inputs=("detect",), version="v").todo() == []
    assert store.begin_run(tl.id, b, "classify", inputs=("detect",), version="v").todo() == [3]
    assert store.begin_run(tl.id, c, "classify", inputs=("detect",), version="v").todo() == [6]
    # the same stage reading nothing is another key
    assert len(store.begin_run(tl.id, a, "classify", version="v").todo()) == 10


def test_hits_outlive_the_run_that_made_them(store: localckpt.Store) -> None:
    from localckpt.gc import collect_garbage

    tl = store.create_timeline("a.mp4", "p", frames(10), codec="png")
    first = store.begin_run(tl.id, None, "detect", version="v1")
    cid = full(first)
    store.prune(cid)
    for _ in range(2):
        collect_garbage(store, older_than=0, grace=0)
    run = store.begin_run(tl.id, None, "detect", version="v1")
    assert run.todo() == []
    assert store.load_stage_output(run.commit(), "detect") == {
        "frames": {str(s): value(s) for s in range(10)}}


def test_an_open_runs_values_answer_and_a_put_wins_over_the_memo(
        store: localckpt.Store) -> None:
    tl = store.create_timeline("a.mp4", "p", frames(6), codec="png")
    open_run = store.begin_run(tl.id, None, "detect", version="v1")
    open_run.put({s: value(s) for s in range(3)})  # never committed
    later = store.begin_run(tl.id, None, "detect", version="v1")
    assert later.todo() == [3, 4, 5] and later.memo_hits == 3
    later.put({0: value(0, "recomputed")})  # its own value for a frame the memo answers
    later.put({s: value(s) for s in (3, 4, 5)})
    out = store.load_stage_output(later.commit(), "detect")
    assert out["frames"]["0"] == value(0, "recomputed") and out["frames"]["1"] == value(1)
    assert (later.done, later.memo_hits) == (4, 2)


def test_a_commit_inserts_its_entries_without_reading_the_memos_keys(
        new_store: Any) -> None:
    """Cost: a commit's memo entries are inserted as they are, with no query of which
    keys the memo holds first (the insert skips a key held already: the first value
    written under a key keeps answering it), and when every row was inserted (SQLite
    counts them), none read back; a run none of whose entries landed holds no reference
    to its output."""
    store = new_store("embedded")
    tl = store.create_timeline("a.mp4", "p", frames(6), codec="png")
    first = store.begin_run(tl.id, None, "detect", version="v1")
    first.put({s: value(s) for s in range(3)})
    run = store.begin_run(tl.id, None, "detect", version="v1")
    run.put({0: value(0, "again"), **{s: value(s) for s in range(3, 6)}})
    conn = store.catalog.engine._conn()  # this thread's connection
    said: list[str] = []
    conn.set_trace_callback(said.append)
    try:
        first.commit(partial=True)
        assert [s for s in said if s.startswith("INSERT INTO memo_frames")]
        assert not [s for s in said if s.startswith("SELECT key FROM memo_frames")]
        said.clear()
        run.commit()  # frame 0's key is held: the keys it took are read back
    finally:
        conn.set_trace_callback(None)
    reads = [s for s in said if s.startswith("SELECT key FROM memo_frames")]
    assert len(reads) == 1 and "memo_run" in reads[0], said
    keys = {s: run.memo_key(s).digest for s in range(6)}
    entries = store._run_tables().lookup(keys.values())
    assert [entries[keys[s]].run_id for s in range(6)] == [first.id] * 3 + [run.id] * 3
    late = store.begin_run(tl.id, None, "detect", version="v1")
    assert late.todo() == []
    assert store.load_stage_output(late.commit(), "detect")["frames"]["0"] == value(0)
    held = store.begin_run(tl.id, None, "detect", version="v1")
    held.put({1: value(1, "again")})
    held.commit(partial=True)
    assert store.catalog.engine.query("SELECT count(*) FROM {s}output_refs WHERE owner = ?",
                                      (held.id,)) == [(0,)]
    assert store._run_tables().lookup([keys[1]])[keys[1]].run_id == first.id


def test_memo_off_neither_reads_nor_writes(new_store: Any) -> None:
    store = new_store("memory")
    tl = store.create_timeline("a.mp4", "p", frames(5), codec="png")
    full(store.begin_run(tl.id, None, "track", memo=False))
    assert store.memo_stats().entries == 0
    full(store.begin_run(tl.id, None, "track"))
    assert store.begin_run(tl.id, None, "track", memo=False).todo() == list(range(5))
    with pytest.raises(InvalidInputError, match="memo off"):
        store.begin_run(tl.id, None, "track", memo=False).memo_key(0)


def test_stats_and_clearing(new_store: Any) -> None:
    store = new_store("memory")
    tl = store.create_timeline("a.mp4", "p", frames(5), codec="png")
    full(store.begin_run(tl.id, None, "detect", version="v1"))
    full(store.begin_run(tl.id, None, "detect", version="v2"), "2")
    full(store.begin_run(tl.id, None, "ocr", version="v1"))  # the same values as detect v1
    stats = store.memo_stats()
    assert (stats.entries, stats.values) == (15, 10)
    assert stats.bytes == sum(len(canonical_bytes(value(s, x))) for s in range(5)
                              for x in ("", "2"))
    assert [(s.stage, s.version, s.entries) for s in stats.stages] == [
        ("detect", "v1", 5), ("detect", "v2", 5), ("ocr", "v1", 5)]
    assert stats.to_dict()["stages"][0]["oldest"] <= stats.to_dict()["stages"][0]["newest"]
    assert store.clear_memo(older_than=timedelta(hours=1)) == 0
    assert store.clear_memo(stage="ocr") == 5
    assert store.clear_memo(stage="ocr") == 0
    assert store.clear_memo(older_than=0) == 10
    assert store.memo_stats().entries == 0
    for bad in (timedelta(seconds=-1), "yesterday", float("nan")):
        with pytest.raises(InvalidInputError):
            store.clear_memo(older_than=bad)


def test_the_key_reads_part_by_part_and_the_fast_digest_agrees() -> None:
    inputs = {"detect": {0: {"boxes": [1.5, 2]}, 2: [1e16, "é\u2028"]}}
    keys = FrameKeys("stage \"q\"", "v\u00e9", {"t": 0.1}, {0: "a" * 64, 1: "b" * 64,
                                                           2: "c" * 64}, inputs)
    bare = FrameKeys("stage \"q\"", "v\u00e9", {"t": 0.1}, {0: "a" * 64}, {})  # no inputs
    for made, seq in [(keys, 0), (keys, 1), (keys, 2), (bare, 0)]:
        key = made.key(seq)
        assert made.digest(seq) == key.digest == content_hash(canonical_bytes(key.parts()))
    key = keys.key(1)
    assert key.parts() == {"stage": "stage \"q\"", "version": "v\u00e9",
                           "params": content_hash(canonical_bytes({"t": 0.1})),
                           "frame": "b" * 64, "inputs": {"detect": None}}
    assert "frame=bbbbbbbbbbbb" in str(key)
    assert MemoKey("s", "v", "p", "f").digest != MemoKey("t", "v", "p", "f").digest


def test_run_memo_key_names_the_frames_content_hash(new_store: Any) -> None:
    store = new_store("memory")
    tl = store.create_timeline("a.mp4", "p", frames(3), codec="png")
    run = store.begin_run(tl.id, None, "detect", params={"t": 1}, version="v1")
    key = run.memo_key(2)
    assert key.frame == store.frame_index(tl.id)[2].content_hash
    assert (key.stage, key.version, key.inputs) == ("detect", "v1", ())


_SOURCES = {
    "plain": "def stage(frames):\n    return {f.sequence: 1 for f in frames}\n",
    "commented": (
        "def stage(frames):\n"
        "    \"\"\"Detect things.\"\"\"\n"
        "    # one per frame\n"
        "    return {f.sequence: 1\n"
        "            for f in frames}  # done\n"),
    "changed": "def stage(frames):\n    return {f.sequence: 2 for f in frames}\n",
}


def test_code_version_ignores_comments_docstrings_and_layout(tmp_path: Any) -> None:
    import functools
    import importlib.util

    versions = {}
    for name, source in _SOURCES.items():
        path = tmp_path / f"stage_{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"stage_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        versions[name] = code_version(module.stage)
        assert code_version(functools.partial(module.stage)) == versions[name]
    assert versions["plain"] == versions["commented"] != versions["changed"]
    assert len(versions["plain"]) == 64
    with pytest.raises(InvalidInputError, match="version="):
        code_version(len)
    # without a readable source (exec): the compiled code, docstring and lines aside
    made = {}
    for name, source in _SOURCES.items():
        namespace: dict[str, Any] = {}
        exec(compile("\n" * len(name) + source, "<typed>", "exec"), namespace)
        made[name] = code_version(namespace["stage"])
    assert made["plain"] == made["commented"] != made["changed"]
    assert made["plain"].startswith("bytecode:")


def test_a_partials_code_version_includes_what_it_binds(tmp_path: Any) -> None:
    """partial(f, thr=0.5) and partial(f, thr=0.7) compute different values: their
    versions differ (they were f's, both), equal bindings give equal versions, a partial
    binding nothing is f's, and a binding that is not JSON is refused, saying what to do."""
    import functools
    import importlib.util

    path = tmp_path / "stage_bound.py"
    path.write_text("def stage(frames, thr=0.5, *, mode='a'):\n    return {}\n")
    spec = importlib.util.spec_from_file_location("stage_bound", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    f, partial = module.stage, functools.partial
    versions = [code_version(p) for p in (
        partial(f, thr=0.5), partial(f, thr=0.7), partial(f, 0.5), partial(f, thr=0.5, mode="b"),
        partial(partial(f, thr=0.5), mode="b"))]
    assert len(set(versions[:4])) == 4 and versions[4] == versions[3]
    assert code_version(partial(f, mode="b", thr=0.5)) == versions[3]  # keyword order aside
    assert code_version(partial(f, thr=0.5)) == versions[0] != code_version(f)
    assert code_version(partial(f)) == code_version(f) and len(versions[0]) == 64
    with pytest.raises(InvalidInputError, match=r"partial of stage: bound keywords\['model'\] "
                       r".*ndarray.*version="):
        code_version(partial(f, model=np.zeros(3)))
    namespace: dict[str, Any] = {}  # no source: the compiled code's version, bound too
    exec(compile(_SOURCES["plain"], "<typed>", "exec"), namespace)
    typed = code_version(partial(namespace["stage"], thr=1))
    assert typed.startswith("bytecode:") and typed != code_version(namespace["stage"])


def test_a_code_version_without_source_is_the_same_in_every_process() -> None:
    """exec'd code (no source to read) is versioned by its compiled code, whose
    constants include a frozenset for ``x in {"a", "b", ...}``: its repr orders strings
    by hash, which each process seeds anew. The version must not depend on it, or a
    memo made in one process misses in the next."""
    import subprocess
    import sys

    script = (
        "from localckpt import code_version\n"
        "ns = {}\n"
        "exec('def stage(frames):\\n"
        "    return {f.sequence: f.label in {\"ball\", \"player\", \"referee\", \"goal\", "
        "\"line\"} for f in frames}\\n', ns)\n"
        "print(code_version(ns['stage']))\n")
    versions = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        assert out.startswith("bytecode:")
        versions.add(out)
    assert len(versions) == 1, versions


def test_two_lambdas_on_one_line_have_their_own_versions(tmp_path: Any,
                                                          new_store: Any) -> None:
    """A lambda's source is its whole line: two stages written as lambdas there (or one
    nested in another) got one version, so the second ran on the first's memo and
    committed its values."""
    import importlib.util

    path = tmp_path / "two_stages.py"
    path.write_text(
        "ONE, TWO = (lambda fr: {f.sequence: 1 for f in fr}), "
        "(lambda fr: {f.sequence: 2 for f in fr})\n"
        "def make():\n"
        "    return [lambda fr: (lambda f: f.sequence), lambda fr: fr]\n"
        "ALONE = lambda fr: {f.sequence: 3 for f in fr}\n")
    spec = importlib.util.spec_from_file_location("two_stages", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outer, other = module.make()
    versions = [code_version(module.ONE), code_version(module.TWO), code_version(outer),
                code_version(outer(None)), code_version(other), code_version(module.ALONE)]
    assert len(set(versions)) == len(versions)
    assert code_version(module.ONE) == versions[0]  # the same one each time
    store = new_store("memory")
    tl = store.create_timeline("v.mp4", "p", frames(4), codec="png")
    for fn in (module.ONE, module.TWO):
        run = store.begin_run(tl.id, None, "detect", version=code_version(fn))
        assert run.todo() == [0, 1, 2, 3]  # the second lambda is not the first's memo
        run.map(fn)
        run.commit()


@pytest.mark.parametrize("kind", ["embedded", "duckdb"])
def test_memo_entries_of_any_stage_name_and_inputs_read_back_checked(new_store: Any,
                                                                     kind: str) -> None:
    """A commit writes each entry's digest from text it puts together (the run's id
    encoded once): entries of a stage and version that JSON escapes, with inputs, read
    back with their run's fields, their digests checked, on every engine."""
    store = new_store(kind)
    tl = store.create_timeline("a.mp4", "p", frames(6), codec="png")
    base = store.save_stage_output(tl.id, None, "raw", {"frames": {
        str(s): {"n": s} for s in range(5)}})  # frame 5 has no input value
    stage, version = 'dé"tect\\\n\u2028', 'v"1\\'
    first = store.begin_run(tl.id, base, stage, version=version, inputs=("raw",),
                            params={"q": "\"x\""})
    full(first)
    again = store.begin_run(tl.id, base, stage, version=version, inputs=("raw",),
                            params={"q": "\"x\""})
    assert again.todo() == [] and again.memo_hits == 6
    keys = {s: again.memo_key(s) for s in range(6)}
    found = store._run_tables().lookup(k.digest for k in keys.values())
    made = store.get_run(first.id).record.closed_at
    for s, key in keys.items():
        entry = found[key.digest]
        assert (entry.stage, entry.version, entry.params_hash, entry.run_id) == (
            stage, version, key.params, first.id)
        assert entry.value_hash == content_hash(canonical_bytes(value(s)))
        assert made is not None and entry.created_at >= made
    assert store.load_stage_output(again.commit(), stage) == {
        "frames": {str(s): value(s) for s in range(6)}}


def test_the_fast_frame_digests_are_the_plain_ones() -> None:
    """memo_frames digests put together from hex text equal _digest_of of each row; a
    hash that is not hex (it would need no escaping here, but the check is for any)
    makes the batch take _digest_of itself."""
    from localckpt.backends.sql.runs import _digest_of, frame_digests

    run = "0190a000-0000-7000-8000-00000000000a"
    hexed = [("a" * 64, "b" * 64, 0, 5), ("c" * 64, "d" * 64, 12, 2 ** 40)]
    odd = [("a" * 64, 'x"\\é', 3, 4), *hexed]
    for entries, memo_run in ((hexed, run), (odd, run), (hexed, 'r"/\\1')):
        assert frame_digests(memo_run, entries) == [
            _digest_of([key, memo_run, h, at, size]) for key, h, at, size in entries]


def test_a_put_row_with_a_key_that_is_not_a_sha256_is_refused_at_commit(
        new_store: Any) -> None:
    """A put row written behind the API (its digest made to match) whose memo key is not
    a SHA-256 cannot be listed among its run's keys: the commit refuses it, naming
    run_puts, and writes no memo entry."""
    from localckpt.backends.sql.runs import put_row
    from localckpt.errors import CorruptDataError

    store = new_store("embedded")
    tl = store.create_timeline("a.mp4", "p", frames(2), codec="png")
    run = store.begin_run(tl.id, None, "detect")
    datas = [canonical_bytes(value(s)) for s in range(2)]
    row = put_row(run.id, [(s, content_hash(d), d, k) for s, (d, k) in enumerate(
        zip(datas, [run.memo_key(0).digest, "not, a key"], strict=True))])
    e = store.catalog.engine
    with e.transaction() as tx:
        tx.execute("INSERT INTO run_puts (run_id, lo, hi, n, sequences, value_hashes, keys, "
                   "sizes, data, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    other = new_store.reopen(store)  # no bytes of this process remembered
    with pytest.raises(CorruptDataError, match="run_puts"):
        other.get_run(run.id).commit()
    assert other.memo_stats().entries == 0
    assert other.catalog.engine.query("SELECT count(*) FROM memo_frames") == [(0,)]
