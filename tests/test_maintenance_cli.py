"""The maintenance commands: rm, prune, retain, tag, untag, tags, gc (verify: test_verify)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import localckpt
from localckpt.cli import main
from localckpt.cli.common import parse_age
from localckpt.errors import NotFoundError

FRAMES = [np.full((6, 6, 3), i * 60, np.uint8) for i in range(2)]


@pytest.fixture
def tree(tmp_path: Path) -> tuple[str, str, list[str]]:
    path = str(tmp_path / "s")
    with localckpt.open(path, create=True) as store:
        tl = store.create_timeline("v", "p", FRAMES, codec="png")
        a = store.save_stage_output(tl.id, None, "detect", {"n": 1})
        b = store.save_stage_output(tl.id, a, "track", {"t": 1})
        c = store.save_stage_output(tl.id, a, "track", {"t": 2}, is_scenario=True,
                                    scenario_label="keep-me")
    return path, tl.id, [tl.root_checkpoint_id, a, b, c]


def _live(path: str, tid: str) -> set[str]:
    with localckpt.open(path) as store:
        return {c.id for c in store.checkpoints(tid)}


def _short(path: str, *ids: str) -> list[str]:
    with localckpt.open(path) as store:
        shorts = store.short_ids(ids)
    return [shorts[i] for i in ids]


def test_tag_untag_tags_and_tree(tree: tuple[str, str, list[str]],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path, tid, (_, _, b, c) = tree
    (sb,) = _short(path, b)
    assert main(["--store", path, "tag", b, "best"]) == 0
    assert f"tagged {sb} as best" in capsys.readouterr().out
    assert main(["--store", path, "tag", c, "best"]) == 1
    err = capsys.readouterr().err
    assert f"the tag best exists (on checkpoint {sb}); move it with `localckpt --store " \
        f"{path} tag --force CKPT best`" in err
    assert "untag(" not in err and "force=True" not in err  # CLI words, not Python
    assert main(["--store", path, "tags", "--json"]) == 0
    tags = json.loads(capsys.readouterr().out)
    assert [(t["name"], t["checkpoint_id"], t["checkpoint_short_id"]) for t in tags] == [
        ("best", b, sb)]
    assert main(["--store", path, "tree", tid]) == 0
    assert f"{sb}  track  [tag best]" in capsys.readouterr().out
    assert main(["--store", path, "show", "best", "--stage", "track"]) == 0  # a ref
    assert json.loads(capsys.readouterr().out) == {"t": 1}
    assert main(["--store", path, "untag", "best"]) == 0
    assert main(["--store", path, "tags"]) == 0
    assert "no tags" in capsys.readouterr().out
    assert main(["--store", path, "untag", "best"]) == 1


def test_prune_dry_run_then_prune(tree: tuple[str, str, list[str]],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path, tid, (root, a, b, c) = tree
    assert main(["--store", path, "prune", b, "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoints"] == [b] and report["dry_run"] and report["outputs"] == 1
    assert _live(path, tid) == {root, a, b, c}
    assert main(["--store", path, "prune", b]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 checkpoint;" in out and "(s)" not in out
    assert _live(path, tid) == {root, a, c}
    assert main(["--store", path, "prune", root]) == 1
    assert f"localckpt --store {path} rm" in capsys.readouterr().err  # the CLI wording


def test_prune_several_checks_them_all_first(tree: tuple[str, str, list[str]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path, tid, (root, a, b, c) = tree
    assert main(["--store", path, "prune", b, root]) == 1  # the root is refused...
    assert _live(path, tid) == {root, a, b, c}  # ...before b goes
    assert main(["--store", path, "prune", b, "nosuchid"]) == 1
    assert _live(path, tid) == {root, a, b, c}
    capsys.readouterr()
    # c lies below a: pruned with it, not twice; one report for both
    assert main(["--store", path, "prune", a, c, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoints"] == sorted([a, b, c])
    assert _live(path, tid) == {root}


def test_prune_of_a_root_names_it_and_its_timeline_by_short_id(
        tree: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """It gave both full ids, and `localckpt rm <full id>`, to one who typed the short id
    that tree shows."""
    path, tid, (root, *_) = tree
    (short,) = _short(path, root)
    with localckpt.open(path) as store:
        tshort = store.short_id(tid, "timeline")
    assert main(["--store", path, "prune", short]) == 1
    assert capsys.readouterr().err == (
        f"localckpt: error: checkpoint {short} is the root of timeline {tshort}; a root "
        f"cannot be pruned. Delete the whole timeline with `localckpt --store {path} rm "
        f"{tshort}` "
        "instead.\n")
    assert root in _live(path, tid)


def test_retain(tree: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    path, tid, (root, a, b, c) = tree
    with pytest.raises(SystemExit) as exit_:  # a rule is required: bad usage, exit 2
        main(["--store", path, "retain", tid])
    assert exit_.value.code == 2 and "--keep-last" in capsys.readouterr().err
    assert main(["--store", path, "retain", tid, "--keep-label", "keep-me", "--dry-run"]) == 0
    assert _live(path, tid) == {root, a, b, c}
    assert main(["--store", path, "retain", tid, "--keep-label", "keep-me"]) == 0
    assert _live(path, tid) == {root, a, c}  # b went; c and its ancestors stay
    capsys.readouterr()
    assert main(["--store", path, "retain", tid, "--newer-than", "1d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoints"] == []
    assert _live(path, tid) == {root, a, c}  # everything is newer than a day


def test_rm_and_gc(tree: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str]
                   ) -> None:
    path, tid, _ = tree
    assert main(["--store", path, "rm", tid[:10]]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 timeline, 4 checkpoints" in out and "gc" in out
    assert main(["--store", path, "ls"]) == 0
    assert tid not in capsys.readouterr().out
    assert main(["--store", path, "gc", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted_timelines"] == [tid]
    assert main(["--store", path, "gc"]) == 0
    out = capsys.readouterr().out
    assert "1 deleted" in out and tid in out
    with localckpt.open(path) as store:
        assert store.objects.list("frames") == []
    with pytest.raises(SystemExit) as exit_:  # bad usage: exit 2 (was 1)
        main(["--store", path, "gc", "--older-than", "-5"])
    assert exit_.value.code == 2 and "--older-than" in capsys.readouterr().err


def test_parse_age() -> None:
    from datetime import UTC, datetime, timedelta

    assert parse_age("7d", "--x") == timedelta(days=7)
    assert parse_age("1.5h", "--x") == timedelta(hours=1.5)
    assert parse_age("2026-11-30", "--x") == datetime(2026, 11, 30, tzinfo=UTC)
    with pytest.raises(localckpt.InvalidInputError, match="7d"):
        parse_age("soon", "--x")


def test_tree_defaults_to_the_newest_timeline(tree: tuple[str, str, list[str]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path, tid, _ = tree
    assert main(["--store", path, "tree"]) == 0
    with localckpt.open(path) as store:
        short = store.short_id(tid, "timeline")
    assert capsys.readouterr().out.startswith(f"timeline {short}  v  (p, 1.0s sampled, 2 "
                                              "frames @ 2 fps, 4 checkpoints)")
    with localckpt.open(path) as store:
        newer = store.create_timeline("w", "", FRAMES, codec="png")
        newer_short = store.short_id(newer.id, "timeline")
    assert main(["--store", path, "tree"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"timeline {newer_short}  w")
    assert f"2 timelines in this store; using the newest, {newer_short} (w)" in err
    assert main(["--store", path, "tree", tid]) == 0
    assert capsys.readouterr().out.startswith(f"timeline {short}  v")


def test_tag_force_moves_a_tag_in_one_commit(tree: tuple[str, str, list[str]],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path, tid, (_, a, b, c) = tree
    sb, sc = _short(path, b, c)
    assert main(["--store", path, "tag", b, "best"]) == 0
    capsys.readouterr()
    with localckpt.open(path) as store:
        before = len(store.catalog.tags(None)), len(store.catalog.tombstones(None))
    assert main(["--store", path, "tag", "--force", sc, "best"]) == 0
    assert capsys.readouterr().out == f"tagged {sc} as best (moved from {sb})\n"
    with localckpt.open(path) as store:
        assert store.tag_target("best") == c
        assert [g.name for g in store.tags(tid)] == ["best"]
        # one new tag and one untag tombstone
        assert (len(store.catalog.tags(None)), len(store.catalog.tombstones(None))) == (
            before[0] + 1, before[1] + 1)
        with pytest.raises(localckpt.ConflictError, match=r"force=True"):
            store.tag(a, "best")  # the API's words
        assert store.tag(a, "best", force=True).checkpoint_id == a
    assert main(["--store", path, "tag", "--force", a, "best", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint_id"] == a  # already there


def test_tags_in_tree_json_and_show(tree: tuple[str, str, list[str]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path, _, (root, a, b, _) = tree
    assert main(["--store", path, "tag", b, "best"]) == 0
    assert main(["--store", path, "tag", b, "v2"]) == 0
    capsys.readouterr()
    assert main(["--store", path, "tree", "--json"]) == 0
    tags = {c["id"]: c["tags"] for c in json.loads(capsys.readouterr().out)}
    assert tags[b] == ["best", "v2"] and tags[a] == [] and tags[root] == []
    assert main(["--store", path, "show", "best", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == b and shown["tags"] == ["best", "v2"]
    assert main(["--store", path, "show", "v2"]) == 0
    assert "tags       best, v2" in capsys.readouterr().out
    assert main(["--store", path, "show", a]) == 0
    assert "tags       -" in capsys.readouterr().out
    assert main(["--store", path, "tree", "best"]) == 0  # a tag names its timeline too
    assert "[tag best] [tag v2]" in capsys.readouterr().out


def test_tag_in_gits_order_says_the_checkpoint_comes_first(
        tree: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """`git tag NAME COMMIT` habits: `localckpt tag v1 CKPT` said only that no checkpoint
    matches 'v1'; it now says which order works. Nothing written."""
    store_path, _, ids = tree
    with localckpt.open(store_path) as s:
        short = s.short_id(ids[-1])
        before = s.tags()
    assert main(["--store", store_path, "tag", "v1", short]) == 1
    err = capsys.readouterr().err
    assert "no checkpoint matches 'v1'" in err
    assert err.rstrip().endswith(
        f"; the checkpoint comes first, the name second: `localckpt tag {short} v1`")
    assert main(["--store", store_path, "tag", "v1", "nope"]) == 1
    assert "comes first" not in capsys.readouterr().err  # nothing named either way
    with localckpt.open(store_path) as s:
        assert s.tags() == before
        with pytest.raises(NotFoundError, match=r"the checkpoint comes first, the name "
                           rf"second: tag\('{short}', 'v1'\)"):  # the API says it too
            s.tag("v1", short)
        assert s.tags() == before


def test_rm_refuses_a_tag_and_says_what_deletes_what(
        tree: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """`localckpt rm best` deleted best's whole timeline (a tag names its checkpoint's
    timeline where a timeline is asked for): a user after the tag or that one try lost
    every try. rm takes the timeline's id; a tag is refused, naming prune, untag and the
    rm that would delete the timeline. Nothing deleted."""
    store_path, tid, ids = tree
    with localckpt.open(store_path) as s:
        s.tag(ids[2], "best")
        short, tshort = s.short_id(ids[2]), s.short_id(tid, "timeline")
    for argv in (["rm", "best"], ["rm", "best", "--dry-run"]):
        assert main(["--store", store_path, *argv]) == 1
        assert capsys.readouterr().err == (
            f"localckpt: error: 'best' is a tag (of checkpoint {short}, on timeline "
            f"{tshort}); rm deletes a whole timeline and takes the timeline's id, not a tag: "
            f"nothing was deleted. Delete that checkpoint and what derives from it with "
            f"`localckpt --store {store_path} prune best`, remove the tag with `localckpt "
            f"--store {store_path} untag best`, or the whole timeline with `localckpt "
            f"--store {store_path} rm {tshort}`\n")
    assert _live(store_path, tid) == set(ids)
    assert main(["--store", store_path, "rm", tshort]) == 0  # as it said
    with localckpt.open(store_path) as s:
        assert s.list_timelines() == []


def test_tag_alone_lists_the_tags_as_git_tag_does(
        tree: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """`localckpt tag` was a usage error (CKPT and NAME required) where `git tag` lists
    the tags: it lists them now, as `localckpt tags` does; CKPT without NAME is still
    bad usage, saying both forms."""
    store_path, _, ids = tree
    assert main(["--store", store_path, "tag", ids[1], "best"]) == 0
    capsys.readouterr()
    for argv in (["tag"], ["tags"], ["tag", "--json"], ["tags", "--json"]):
        assert main(["--store", store_path, *argv]) == 0
        listed = capsys.readouterr().out
        assert "best" in listed
        if argv[0] == "tag":
            first = listed
        else:
            assert listed == first
    with pytest.raises(SystemExit) as exit_:
        main(["--store", store_path, "tag", ids[2]])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(
        "tag needs CKPT and NAME: the checkpoint, then the tag's name (`localckpt tag` alone "
        "lists the tags)\n")


def test_tag_delete_as_git_spells_it_names_untag(
        tree: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    store_path, _, ids = tree
    assert main(["--store", store_path, "tag", ids[1], "best"]) == 0
    for flag in ("-d", "--delete"):
        with pytest.raises(SystemExit) as exit_:
            main(["--store", store_path, "tag", flag, "best"])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.endswith(
            f"unrecognized arguments: {flag} (`localckpt untag NAME` removes a tag, as `git "
            "tag -d NAME` does)\n")
    with localckpt.open(store_path) as s:
        assert [g.name for g in s.tags()] == ["best"]


def test_ls_counts_live_checkpoints_without_reading_trees(
        tree: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ls` said nothing of where the work is: how many checkpoints each timeline has (the
    web index shows it). It reads the sums kept with each write, and a tree only where a
    prune's tombstones are (as the web index does)."""
    from localckpt.backends.sql.catalog import SqlCatalog

    store_path, _, ids = tree

    def counted() -> int:
        assert main(["--store", store_path, "ls", "--json"]) == 0
        (record,) = json.loads(capsys.readouterr().out)
        assert main(["--store", store_path, "ls"]) == 0
        header, line = capsys.readouterr().out.splitlines()
        assert line.split()[header.split().index("CHECKPOINTS")] == str(record["checkpoints"])
        return int(record["checkpoints"])

    with monkeypatch.context() as m:
        m.setattr(SqlCatalog, "tree", lambda *a, **k: pytest.fail("ls read a tree"))
        assert counted() == 4
    assert main(["--store", store_path, "prune", ids[2]]) == 0
    capsys.readouterr()
    assert counted() == 3  # pruned, not yet purged
    assert main(["--store", store_path, "gc", "--older-than", "0"]) == 0
    capsys.readouterr()
    assert counted() == 3  # purged: the sums went down with the rows
