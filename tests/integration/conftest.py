from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .system import System


@pytest.fixture
async def system(pg_port: int, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[System]:
    s = System(pg_port, kafka_bootstrap, tmp_path)
    try:
        yield await s.start()
    finally:
        await s.stop()
