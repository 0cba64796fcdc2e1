"""Chores in one place: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``, ``demo``, ``build``.

Benchmark-only packages (LangGraph's savers, matplotlib) are installed in the bench
session alone, so the test environment stays lean (langsmith's pytest plugin slows pytest).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

BENCH_PEERS = [
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "matplotlib",
]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite; starts its own PostgreSQL and S3 (moto) servers on loopback."""
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


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
