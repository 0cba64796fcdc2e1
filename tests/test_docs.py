"""The documentation runs: every ```python block of README.md and docs/**/*.md (but those
marked ``{.skip}``) is executed, page by page, and the site builds with ``--strict``.

A page's blocks run in order in one namespace (a page reads as one session), in a fresh
empty temporary directory, as a reader's, with nothing of the user's settings: no
``LOCALCKPT_*`` variables, and HOME, the config and the credentials file point into that
directory. There is no store there (``localckpt.open()`` is NotFoundError): a page makes
one (``create=True``), or states that it runs where ``localckpt init`` made one and marks
its first block ``{.after-init}``; the test then runs ``localckpt init`` first.
A failure names the page and its line (each block is compiled at its line of the page).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import localckpt
from localckpt.cli import main as cli_main
from localckpt.testing.ci import unavailable

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")

#: Pages in mkdocs.yml's nav that other branches add; until they are merged mkdocs.yml
#: only reports them (validation.nav.not_found: info). Empty it, and set that back to
#: `warn`, once they are all on main.
PENDING: set[str] = set()


class Block(NamedTuple):
    page: Path
    line: int  # 1-based line of the block's first code line
    info: str  # the fence's info string: "python", "python {.skip}", "sh", ...
    code: str


def fenced_blocks(page: Path) -> Iterator[Block]:
    """Every fenced code block of a Markdown page, with its indentation (a block inside
    a list item) removed."""
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group("indent"), m.group("fence"), m.group("info")
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                break
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        else:
            raise AssertionError(f"{page.name}:{i + 1}: code block never closed")
        yield Block(page, i + 2, info, "\n".join(body) + "\n")
        i = j + 1


def _attrs(block: Block) -> list[str]:
    """The attributes of a block's fence: ``python {.skip}`` -> ``[".skip"]``."""
    words = block.info.split(None, 1)
    return words[1].strip("{} ").split() if len(words) > 1 else []


def runnable(block: Block) -> bool:
    """```python and ```python {...} blocks run, but for those whose attributes say .skip."""
    words = block.info.split(None, 1)
    if not words or words[0] != "python":
        return False
    return ".skip" not in _attrs(block)


def after_init(page: Path) -> bool:
    """Whether a page's blocks run where ``localckpt init`` made a store: its first runnable
    block says ``{.after-init}``, and the page says so to the reader before it."""
    blocks = [b for b in fenced_blocks(page) if runnable(b)]
    if not blocks or ".after-init" not in _attrs(blocks[0]):
        assert not any(".after-init" in _attrs(b) for b in blocks), \
            f"{_name(page)}: only a page's first block can say {{.after-init}}"
        return False
    before = "\n".join(page.read_text().splitlines()[:blocks[0].line - 2])
    assert "`localckpt init`" in before, \
        f"{_name(page)}: a page whose blocks need a store says `localckpt init` before them"
    return True


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


RUNNABLE = [p for p in pages() if any(runnable(b) for b in fenced_blocks(p))]


@pytest.fixture
def docs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh empty directory, as a reader's, and no trace of the user's settings (the
    blocks open stores as users would)."""
    for name in list(os.environ):
        if name.startswith("LOCALCKPT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOCALCKPT_CONFIG", str(tmp_path / "home" / "config.toml"))
    monkeypatch.setenv("LOCALCKPT_CREDENTIALS", str(tmp_path / "home" / "credentials.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _close_stores(namespace: dict[str, Any]) -> None:
    for value in namespace.values():
        if isinstance(value, localckpt.Store):
            value.close()


@pytest.mark.parametrize("page", RUNNABLE, ids=_name)
def test_the_code_blocks_of_a_page_run(page: Path, docs_dir: Path) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs:{_name(page)}"}
    if after_init(page):  # the precondition the page states: `localckpt init` ran here
        assert cli_main(["init"]) == 0
    try:
        for block in fenced_blocks(page):
            if runnable(block):
                # padded so that a traceback shows the line of the page
                source = "\n" * (block.line - 1) + block.code
                exec(compile(source, _name(page), "exec"), namespace)
    finally:
        _close_stores(namespace)


def test_the_docs_have_runnable_blocks_and_the_parser_sees_them() -> None:
    # a parser that found nothing would make the test above vacuous
    names = {_name(p) for p in RUNNABLE}
    assert {"README.md", "docs/getting-started.md", "docs/python-api.md",
            "docs/moving-work.md"} <= names
    blocks = list(fenced_blocks(DOCS / "getting-started.md"))
    assert any(runnable(b) for b in blocks)
    assert any(b.info == "sh" for b in blocks)
    assert not runnable(Block(DOCS, 1, "python {.skip}", ""))
    assert runnable(Block(DOCS, 1, "python {title='x'}", ""))
    assert runnable(Block(DOCS, 1, "python {.after-init}", ""))
    assert after_init(DOCS / "stores.md") and not after_init(DOCS / "python-api.md")


def _walkthrough(page: Path, heading: str) -> str:
    text = page.read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(heading):], re.S)
    assert block, f"{_name(page)} must hold the whole path's sh block under {heading!r}"
    return block.group(1)


def test_getting_started_shows_the_walkthrough_the_readme_tests() -> None:
    # tests/test_walkthrough.py runs the README's block; the page must not drift from it
    assert _walkthrough(DOCS / "getting-started.md", "## The whole path") == _walkthrough(
        ROOT / "README.md", "## The whole path")


def _mkdocs_nav() -> list[str]:
    """The pages mkdocs.yml's nav names (read without a YAML parser: the nav is a plain
    list of ``- Title: page.md`` entries, nested by sections)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:\n"):]
    return re.findall(r"^\s+- (?:[^:\n]+: )?([\w./-]+\.md)\s*$", nav, re.M)


def test_every_page_is_in_the_nav_and_only_pending_pages_are_missing() -> None:
    nav = _mkdocs_nav()
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert on_disk - set(nav) == set(), "pages missing from mkdocs.yml's nav"
    missing = set(nav) - on_disk
    assert missing <= PENDING, f"nav entries with no page: {sorted(missing - PENDING)}"


def test_the_readme_is_a_door() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / target).is_file(), f"README links to a missing {target}"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    # about 10 s of wall time on 2 busy cores: in the default suite (nox installs [docs])
    if importlib.util.find_spec("mkdocs") is None:
        unavailable("mkdocs is not installed: pip install '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # no end-of-life banner on stderr
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "reference" / "localckpt" / "index.html").is_file()


def _docstring_format() -> Any:
    """The Griffe extension of docs/_ext, imported from its file (it needs the [docs]
    extra's griffe)."""
    if importlib.util.find_spec("griffe") is None:
        unavailable("griffe is not installed: pip install '.[docs]'")
    spec = importlib.util.spec_from_file_location(
        "docstring_format", DOCS / "_ext" / "docstring_format.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_reads_compact_docstrings_as_written() -> None:
    rewrite = _docstring_format().rewrite
    text = (
        "One row, see :class:`localckpt.Frame`::\n\n"
        "    x = 1\n\n"
        "Attributes:\n"
        "    width, height: pixel size,\n"
        "        in pixels.\n"
        "    codec: \"jpeg\" or \"png\".\n\n"
        "Not a section: a, b: left alone.\n"
    )
    assert rewrite(text) == (
        "One row, see `localckpt.Frame`:\n\n"
        "    x = 1\n\n"
        "Attributes:\n"
        "    width: pixel size,\n"
        "        in pixels.\n"
        "    height: pixel size,\n"
        "        in pixels.\n"
        "    codec: \"jpeg\" or \"png\".\n\n"
        "Not a section: a, b: left alone."
    )


def test_getting_started_lists_every_extra() -> None:
    """The extras table of docs/getting-started.md lacked `dask` (which the README's runs
    block installs) and `dev`: every extra of pyproject.toml has a row, but `progress`,
    kept only so that old install lines still work."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    table = (DOCS / "getting-started.md").read_text()
    missing = [name for name in extras
               if name != "progress" and f"\n| `{name}` |" not in table]
    assert not missing, missing
