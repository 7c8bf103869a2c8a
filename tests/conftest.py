"""Shared fixtures: the shipped knowledge base, loaded and compiled once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivig_cds import Evaluator, KnowledgeBase, load_knowledge_base

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


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return load_knowledge_base(REPO / "rules", REPO / "evidence")


@pytest.fixture(scope="session")
def evaluator(kb: KnowledgeBase) -> Evaluator:
    return Evaluator(kb)
