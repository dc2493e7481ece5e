"""The fleet's tests (test_fleet.py) on PostgreSQL, where a fleet's workers share a database:
each test gets a database of its own (conftest's fresh_database)."""

from __future__ import annotations

import pytest
from test_fleet import *  # noqa: F403 (the fleet's tests run here, on PostgreSQL)


@pytest.fixture()
def where(fresh_database: str) -> str:
    """The fleet's state: a PostgreSQL database."""
    return fresh_database
