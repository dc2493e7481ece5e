"""The daemon's shutdown when its grace period runs out with an outcome still to record: the
late write says what happened, and the notification counts as an interrupted attempt."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from wpnotify import daemon as daemon_module
from wpnotify.daemon import Daemon
from wpnotify.http import Http
from wpnotify.settings import Settings, SiteSettings
from wpnotify.state.sqlite import SqliteState

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_an_outcome_recorded_after_the_grace_period_says_what_happened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "GRACE", 0.3)
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    store.add("s", 1, "pingback", "https://t.example/", "https://s.example/1", NOW)
    (row,) = store.due(NOW)
    store.claim(row.id, NOW)
    daemon = Daemon(settings, store, Http(settings.http))
    started, release, ended = threading.Event(), threading.Event(), threading.Event()

    def slow_poll(site: SiteSettings) -> None:
        """A send that outlives the grace period, then records its outcome."""
        started.set()
        release.wait(10)
        try:
            store.finish(row.id, "sent", NOW)
        finally:
            ended.set()

    monkeypatch.setattr(daemon, "poll_site", slow_poll)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stopper = threading.Thread(target=lambda: (started.wait(10), daemon.stop()))
    stopper.start()
    with capture_logs() as events:
        try:
            daemon.serve()  # returns once the grace period is over
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            store.close()  # as the CLI does next
            release.set()
            stopper.join()
        assert ended.wait(10)
    names = [e["event"] for e in events]
    assert "daemon.stopped_with_work_in_flight" in names
    (failed,) = [e for e in events if e["event"] == "daemon.job_failed"]
    assert "closed as wpnotify shut down" in failed["error"]
    assert "tried again after its back-off" in failed["error"]
    assert "backup" not in failed["error"]
    again = SqliteState.open(tmp_path / "state.sqlite3")
    assert again.get(row.id).status == "sending"  # left for the next run to recover
