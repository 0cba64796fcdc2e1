"""Chores in one place: ``nox -s tests``, ``tests-versions``, ``tests-minversions``,
``slow``, ``lint``, ``typecheck``, ``docs``, ``bench``, ``demo``, ``build``.

``tests`` runs the suite once, on the Python that runs nox (the README's command: one
run, under 12 minutes). ``tests-versions`` runs it on every supported Python (3.11, 3.12,
3.13) that this machine has (on PATH or in a version manager such as pyenv); nox skips
the ones it lacks and never downloads one. ``tests-minversions`` installs the lowest
version of each dependency that pyproject.toml declares, so a ``>=`` there is a tested
claim.

The test sessions install the ``docs`` extra too: ``tests/test_docs.py`` builds the
documentation site with ``--strict`` (about 10 s) beside running its code blocks.

Benchmark-only packages (LangGraph's savers, matplotlib) are installed in the bench
session alone, so the test environment stays lean (langsmith's pytest plugin slows pytest).
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False  # nox's default is True when CI is set
nox.options.download_python = "never"  # a version the machine lacks is skipped, not fetched

PYTHONS = ["3.11", "3.12", "3.13"]


def _find_installed_pythons() -> None:
    """Put interpreters that pyenv installed on PATH, ahead of its shims (which fail
    unless that version is selected), for the versions PATH lacks a real one of."""
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for version in PYTHONS:
        on_path = shutil.which(f"python{version}")
        if on_path and "shims" not in Path(on_path).parts:
            continue
        found += [str(p / "bin") for p in sorted(versions.glob(f"{version}.*"), reverse=True)
                  if (p / "bin" / f"python{version}").is_file()][:1]
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_find_installed_pythons()
#: The extras whose lowest versions tests-minversions installs (with the core ones).
MIN_EXTRAS = ("postgres", "s3")
BENCH_PEERS = [
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "matplotlib",
]


def _pytest_args(session: nox.Session, default: list[str]) -> list[str]:
    return session.posargs or default


def _suite(session: nox.Session) -> None:
    session.install("-e", ".[test,docs]")
    session.run("pytest", *_pytest_args(session, ["-q", "-n", "2"]))


@nox.session
def tests(session: nox.Session) -> None:
    """The default test suite (not the slow trials); starts its own PostgreSQL and S3."""
    _suite(session)


@nox.session(name="tests-versions", python=PYTHONS)
def tests_versions(session: nox.Session) -> None:
    """The default suite on each supported Python the machine has."""
    _suite(session)


def minimum_pins(pyproject: Path = Path("pyproject.toml")) -> list[str]:
    """``name==version`` for every ``name>=version`` of the core dependencies and of
    MIN_EXTRAS (extras markers such as ``psycopg[binary]`` kept)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in MIN_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for req in requirements:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*>=\s*([0-9][^,;\s]*)\s*", req)
        if m:
            pins.append(f"{m.group(1)}=={m.group(2)}")
    return pins


@nox.session(name="tests-minversions", python=PYTHONS[0])
def tests_minversions(session: nox.Session) -> None:
    """The default suite against the lowest versions pyproject declares."""
    pins = minimum_pins()
    session.install(*pins)
    session.install("-e", ".[test,docs]", *pins)
    session.run("python", "-m", "pip", "freeze")
    session.run("pytest", *_pytest_args(session, ["-q", "-n", "2"]))


@nox.session(python=PYTHONS[0])
def slow(session: nox.Session) -> None:
    """The long trials (@pytest.mark.slow): properties with many examples, concurrency."""
    session.install("-e", ".[test]")
    session.run("pytest", *_pytest_args(session, ["-q", "-n", "2", "-m", "slow"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built into site/ with --strict (a broken link, anchor or
    API reference fails); ``nox -s docs -- serve`` previews it instead."""
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's end-of-life banner, not a warning
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: every store configuration and the peers in one run; writes a report."""
    session.install("-e", ".[test]", *BENCH_PEERS)
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The README's first command, inside nox."""
    session.install(".")
    session.run("localckpt", "demo", *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    session.install("build")
    session.run("python", "-m", "build")
