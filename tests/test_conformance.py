"""The shipped conformance suite, run once per store kind (see conftest.py for the kinds).

Each class is what a third-party backend would write: a ``store`` fixture returning a
fresh empty store and, where the data outlives a close, a ``reopen`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import CONFORMANCE_KINDS, StoreFactory

from localckpt import Store
from localckpt.testing.conformance import StoreConformance


def _selected(kind: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        kind not in CONFORMANCE_KINDS,
        reason=f"{kind}: left out by LOCALCKPT_TEST_KINDS, or its backend is not written yet",
    )


@_selected("memory")
class TestMemory(StoreConformance):
    @pytest.fixture
    def store(self, new_store: StoreFactory) -> Store:
        return new_store("memory")


@_selected("embedded")
class TestEmbedded(StoreConformance):
    @pytest.fixture
    def store(self, new_store: StoreFactory) -> Store:
        return new_store("embedded")

    @pytest.fixture
    def reopen(self, new_store: StoreFactory) -> Callable[[Store], Store]:
        return new_store.reopen


@_selected("embedded-memobjects")
class TestEmbeddedMemoryObjects(StoreConformance):
    @pytest.fixture
    def store(self, new_store: StoreFactory) -> Store:
        return new_store("embedded-memobjects")

    @pytest.fixture
    def reopen(self, new_store: StoreFactory) -> Callable[[Store], Store]:
        return new_store.reopen


@_selected("embedded-s3")
class TestEmbeddedS3(StoreConformance):
    @pytest.fixture
    def store(self, new_store: StoreFactory) -> Store:
        return new_store("embedded-s3")

    @pytest.fixture
    def reopen(self, new_store: StoreFactory) -> Callable[[Store], Store]:
        return new_store.reopen


@_selected("postgres-s3")
class TestPostgresS3(StoreConformance):
    @pytest.fixture
    def store(self, new_store: StoreFactory) -> Store:
        return new_store("postgres-s3")

    @pytest.fixture
    def reopen(self, new_store: StoreFactory) -> Callable[[Store], Store]:
        return new_store.reopen


@_selected("postgres-local")
class TestPostgresLocal(StoreConformance):
    @pytest.fixture
    def store(self, new_store: StoreFactory) -> Store:
        return new_store("postgres-local")

    @pytest.fixture
    def reopen(self, new_store: StoreFactory) -> Callable[[Store], Store]:
        return new_store.reopen


@_selected("duckdb")
class TestDuckdb(StoreConformance):
    @pytest.fixture
    def store(self, new_store: StoreFactory) -> Store:
        return new_store("duckdb")

    @pytest.fixture
    def reopen(self, new_store: StoreFactory) -> Callable[[Store], Store]:
        return new_store.reopen
