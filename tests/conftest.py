from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aftersales import Ledger


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    """A ledger on the in-memory store: fast domain tests."""
    app = Ledger("memory:")
    yield app
    app.close()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def sqlite_ledger(db_url: str) -> Iterator[Ledger]:
    """A ledger on a real SQLite file."""
    app = Ledger(db_url)
    yield app
    app.close()
