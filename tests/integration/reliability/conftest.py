"""The reliability suite runs on a stack of its own (so it may stop the broker and the
database) at one of two sizes: small in `make test`, full in `make soak`
(GANSHOU_SCALE=soak). Each scenario adds its numbers to the report, which `make soak`
writes to docs/reliability.md."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ..system import System
from .report import Report
from .stack import PrivateStack

SOAK = os.environ.get("GANSHOU_SCALE") == "soak"


@pytest.fixture(scope="session")
def soak() -> bool:
    return SOAK


@pytest.fixture(scope="session")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    stack = PrivateStack.create(tmp_path_factory.mktemp("stack"))
    try:
        stack.up()
        yield stack
    finally:
        stack.destroy()


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    r = Report(soak=SOAK)
    yield r
    r.write()


@pytest.fixture
async def rsystem(private_stack: PrivateStack, tmp_path: Path) -> AsyncIterator[System]:
    s = System(private_stack.pg_port, private_stack.kafka, tmp_path)
    try:
        yield await s.start()
    finally:
        await s.stop()
