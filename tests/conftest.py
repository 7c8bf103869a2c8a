"""Shared fixtures: the shipped knowledge base, loaded and compiled once per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivig_cds import Evaluator, KnowledgeBase, load_knowledge_base
from tests.postgres_support import REQUIRE_ENV, PrivatePostgres, find_bin

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="run long tests at full size")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="long-running; run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test writes into the real per-user data folder (the service's key and store)."""
    monkeypatch.setenv("IVIG_CDS_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return load_knowledge_base(REPO / "rules", REPO / "evidence")


@pytest.fixture(scope="session")
def evaluator(kb: KnowledgeBase) -> Evaluator:
    return Evaluator(kb)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster for this test session (see tests/postgres_support.py)."""
    bindir = find_bin()
    if bindir is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail("PostgreSQL is required here (IVIG_CDS_REQUIRE_POSTGRES=1) but no initdb")
        pytest.skip("no PostgreSQL installed (no initdb): the PostgreSQL store tests need one")
    server = PrivatePostgres(bindir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind (a fresh PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    server: PrivatePostgres = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server.url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    yield server.url.rsplit("/", 1)[0] + f"/{name}"
    admin.dispose()
