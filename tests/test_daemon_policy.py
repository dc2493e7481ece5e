"""The daemon's back-off for a site that cannot be read, as a table: the poll interval,
doubled per failure after the first, capped at an hour (never below the interval itself)."""

from __future__ import annotations

import pytest

from wpnotify.daemon import MAX_BACKOFF, site_backoff


@pytest.mark.parametrize(("failures", "interval", "wait"), [
    (0, 300, 300),         # not failing: the plain interval
    (1, 300, 300),         # the first failure: asked again at the next interval
    (2, 300, 600),
    (3, 300, 1200),
    (4, 300, 2400),
    (5, 300, MAX_BACKOFF),  # capped
    (10_000, 300, MAX_BACKOFF),  # a site down for months: no overflow, still hourly
    (1, 7200, 7200),       # an interval longer than the cap is kept, never shortened
    (3, 7200, 7200),
])
def test_a_failing_site_is_asked_less_often_up_to_an_hour(failures: int, interval: float,
                                                          wait: float) -> None:
    assert site_backoff(failures, interval) == wait
