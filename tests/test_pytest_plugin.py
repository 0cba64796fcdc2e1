"""The pytest plugin, used as a user would: from a test project outside this repository
(pytester makes one in a temporary directory and runs pytest on it in a subprocess, so
the plugin is found through its ``pytest11`` entry point, as after ``pip install``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
import localckpt
from localckpt.testing.pytest_plugin import TIMELINE_FRAMES, synthetic_frames

CATALOGS = {"memory": "memory catalog", "embedded": "SQLite catalog"}


def my_stage(frames):
    return {"frames": [{"sequence": f.sequence, "mean": float(f.image.mean())}
                       for f in frames]}


def test_pipeline_stage(localckpt_store, localckpt_timeline, localckpt_store_kind):
    store, tl = localckpt_store, localckpt_timeline
    if localckpt_store_kind in CATALOGS:
        assert store.catalog.describe().startswith(CATALOGS[localckpt_store_kind])
    assert [t.id for t in store.list_timelines()] == [tl.id]  # fresh: nothing else
    frames = store.get_timeline_frames(tl.id)
    assert len(frames) == TIMELINE_FRAMES == tl.frame_count
    assert all((f.image == want).all() for f, want in zip(frames, synthetic_frames()))
    cid = store.save_stage_output(tl.id, None, "stats", my_stage(frames))
    assert store.load_stage_output(cid, "stats")["frames"][0]["sequence"] == 0


def test_sync_between_two_fresh_stores(localckpt_store, localckpt_timeline,
                                       localckpt_store_factory):
    other = localckpt_store_factory()
    assert other.list_timelines() == []
    localckpt.sync(localckpt_store, other, localckpt_timeline.id)
    assert [t.id for t in other.list_timelines()] == [localckpt_timeline.id]
'''


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester.runpytest_subprocess("-v", *args)


def test_memory_by_default(pytester: pytest.Pytester) -> None:
    result = _run(pytester)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_pipeline_stage?memory? PASSED*"])


def test_command_line_chooses_stores(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--localckpt-store", "memory", "--localckpt-store", "embedded")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_pipeline_stage?embedded? PASSED*"])


def test_ini_environment_and_marker(pytester: pytest.Pytester,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nlocalckpt_stores = ["embedded"]\n')
    _run(pytester).assert_outcomes(passed=2)
    monkeypatch.setenv("LOCALCKPT_TEST_STORES", "memory,embedded")
    _run(pytester).assert_outcomes(passed=4)  # the environment wins over the ini file
    pytester.makepyfile(test_marked=textwrap.dedent('''
        import pytest

        @pytest.mark.localckpt_stores("embedded")
        def test_only_embedded(localckpt_store, localckpt_store_kind):
            assert localckpt_store_kind == "embedded"
    '''))
    result = pytester.runpytest_subprocess("-v", "test_marked.py")
    result.assert_outcomes(passed=1)


def test_env_spec_without_a_url_skips_or_fails_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LOCALCKPT_TEST_URL", raising=False)
    monkeypatch.setenv("LOCALCKPT_URL", str(tmp_path / "my-real-store"))  # never read
    monkeypatch.delenv("CI", raising=False)
    result = _run(pytester, "--localckpt-store", "env", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*LOCALCKPT_TEST_URL*"])
    monkeypatch.setenv("CI", "1")
    _run(pytester, "--localckpt-store", "env").assert_outcomes(errors=2)  # fixture failed
    assert not (tmp_path / "my-real-store").exists()


def _schemas(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'lct_%'")
        return {r[0] for r in rows}


def test_a_postgresql_url_from_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pg_dsn: str,
    s3_base: tuple[str, dict[str, Any]],
) -> None:
    import fsspec

    bucket, options = s3_base
    objects = f"{bucket}/plugin-test"
    monkeypatch.setenv("LOCALCKPT_TEST_URL", pg_dsn)
    monkeypatch.setenv("LOCALCKPT_TEST_OBJECTS", objects)
    monkeypatch.setenv("LOCALCKPT_TEST_STORAGE_OPTIONS", json.dumps(options))
    before = _schemas(pg_dsn)
    result = _run(pytester, "--localckpt-store", "env", "--localckpt-store", pg_dsn)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_pipeline_stage?postgresql? PASSED*"])
    # every test had its own schema and objects prefix, and both are gone
    assert _schemas(pg_dsn) == before
    fs, root = fsspec.core.url_to_fs(objects, **options)
    fs.invalidate_cache()
    assert not fs.exists(root) or fs.ls(root) == []
