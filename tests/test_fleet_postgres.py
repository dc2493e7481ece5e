"""The fleet's tests (test_fleet.py) on PostgreSQL, where a fleet's workers share a database:
each test gets a database of its own (conftest's fresh_database)."""

from __future__ import annotations

import pytest
from test_fleet import *  # noqa: F403 (the fleet's tests run here, on PostgreSQL)


@pytest.fixture()
def where(fresh_database: str) -> str:
    """The fleet's state: a PostgreSQL database."""
    return fresh_database


def test_a_worker_whose_clock_runs_ahead_leaves_a_live_lease_alone(where: str) -> None:
    """Its machine's clock 25 s ahead (more than a lease's 20 s): by that clock the lease
    of a live worker would have passed and it would take the site (and the notifications in
    flight) over. By the state's clock, which it reads the time from, the lease holds."""
    from datetime import UTC, datetime, timedelta

    from test_fleet import open_store

    from wpnotify.state.clock import StateClock

    store = open_store(where)
    now = datetime.now(UTC)
    assert store.take_site("blog", "live:1:1", now, now + timedelta(seconds=20))

    def ahead() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=25)

    rival = open_store(where)
    clock = StateClock(rival, local=ahead)
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=1)
    assert not rival.take_site("blog", "fast:2:2", clock(), clock() + timedelta(seconds=20))
    assert rival.take_site("blog", "fast:2:2", ahead(), ahead() + timedelta(seconds=20))
