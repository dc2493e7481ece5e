"""`wpnotify backfill` over real WordPress: old posts' notifications, once, and a dry run that
changes nothing."""

from __future__ import annotations

import json
from typing import Any

import devsite
import pytest

pytestmark = pytest.mark.e2e
# A retry waits at least the schedule's first step; 10 s here, so that WordPress's flood hold
# (15 s, when another test pinged the target moments ago) is waited out within the run.
QUICK_RETRY = "[retry]\ndelays = [10, 300]"


def test_backfill_sends_old_notifications_once_and_dry_run_changes_nothing(
        sites: dict[str, devsite.Site], make_wpnotify: Any) -> None:
    source, target = sites["source"], sites["target"]
    linked = target.create_post(post_title="Linked from an old post")
    tracked = target.create_post(post_title="Trackbacked from an old post")
    too_old = target.create_post(post_title="Linked from a very old post")
    old = source.create_post(post_title="From 2021", post_date_gmt="2021-03-01 10:00:00",
                             post_content=f'<a href="{target.permalink(linked)}">a</a>',
                             to_ping=target.trackback_url(tracked))
    ancient = source.create_post(post_title="From 2019", post_date_gmt="2019-03-01 10:00:00",
                                 post_content=f'<a href="{target.permalink(too_old)}">b</a>')
    tool = make_wpnotify([("bf", source, source.app_password)], top=QUICK_RETRY)
    tool.run("poll")  # watching from now: the old posts are archive

    dry = tool.run("backfill", "--site", "bf", "--since", "2021-01-01", "--until",
                   "2022-01-01", "--dry-run")
    assert f"post {old}: webmention (or pingback) {target.permalink(linked)}" in dry.stdout
    assert f"post {old}: trackback {target.trackback_url(tracked)}" in dry.stdout
    assert f"post {ancient}:" not in dry.stdout
    assert "2 notification(s) would be sent" in dry.stdout
    assert json.loads(tool.run("history", "--format", "json").stdout) == []
    assert target.comments(linked) == [] and target.comments(tracked) == []

    real = tool.run("backfill", "--site", "bf", "--since", "2021-01-01", "--until",
                    "2022-01-01")
    assert "sent 2, skipped 0, failed 0, waiting to retry 0" in real.stdout, real.stderr
    assert [c["type"] for c in target.comments(linked)] == ["pingback"]
    assert [c["type"] for c in target.comments(tracked)] == ["trackback"]
    assert target.comments(too_old) == []
    assert source.pings(old)["to_ping"] == []

    # The same range again (not up to now: other tests' posts on the shared site are there).
    again = tool.run("backfill", "--site", "bf", "--since", "2021-01-01", "--until",
                     "2022-01-01")
    assert "0 notification(s) queued" in again.stdout and again.returncode == 0
    assert len(target.comments(linked)) == 1 and len(target.comments(tracked)) == 1
    rows = json.loads(tool.run("history", "--format", "json").stdout)
    assert sorted((r["post_id"], r["kind"], r["status"]) for r in rows) == [
        (old, "pingback", "sent"), (old, "trackback", "sent")]

    one = tool.run("backfill", "--site", "bf", "--since", "2000-01-01", "--post",
                   str(ancient), "--dry-run")
    assert f"post {ancient}: webmention (or pingback) {target.permalink(too_old)}" in one.stdout
    assert "1 notification(s) would be sent" in one.stdout


def test_backfill_exit_status_says_when_something_did_not_go_out(
        sites: dict[str, devsite.Site], make_wpnotify: Any) -> None:
    source = sites["source"]
    post = source.create_post(post_title="Links nowhere", post_date_gmt="2018-05-05 10:00:00",
                              post_content="<a href='http://127.0.0.19:8080/gone'>x</a>")
    tool = make_wpnotify([("bf2", source, source.app_password)])
    proc = tool.run("backfill", "--site", "bf2", "--since", "2018-05-05", "--until",
                    "2018-05-06", check=False)
    assert proc.returncode == 1
    assert "waiting to retry 1" in proc.stdout
    (row,) = json.loads(tool.run("history", "--format", "json", "--post", str(post)).stdout)
    assert row["status"] == "pending" and row["error_code"] == "connect"
    bad = tool.run("backfill", "--site", "nope", "--since", "2018-01-01", check=False)
    assert bad.returncode == 2 and "no site named 'nope'" in bad.stderr


def test_backfill_alongside_the_daemon_sends_nothing_twice(
        sites: dict[str, devsite.Site], make_wpnotify: Any) -> None:
    """Both claim each notification in the state file before sending it."""
    import signal
    import subprocess
    import sys
    import time

    from receivers import PingbackReceiver, serving

    source = sites["source"]
    with serving(PingbackReceiver(delay=0.2)) as receiver:
        assert isinstance(receiver, PingbackReceiver)
        targets = [receiver.url(f"/t/shared-{i}") for i in range(12)]
        for i, url in enumerate(targets):
            source.create_post(post_title=f"Old {i}", post_date_gmt="2017-07-07 10:00:00",
                               post_content=f'<a href="{url}">{i}</a>')
        tool = make_wpnotify([("both", source, source.app_password)], top="poll_interval = 5")
        tool.run("poll")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "wpnotify", "--config", str(tool.config), "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1)
            # Two backfills at once, and the daemon's retry job picking up what they queue.
            runs = [subprocess.Popen([sys.executable, "-m", "wpnotify", "--config",
                                      str(tool.config), "backfill", "--site", "both",
                                      "--since", "2017-07-07", "--until", "2017-07-08"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for _ in range(2)]
            for run in runs:
                run.communicate(timeout=120)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=60)
        assert daemon.returncode == 0
        assert all(run.returncode == 0 for run in runs)
    assert set(receiver.calls) == set(targets)
    assert all(count == 1 for count in receiver.calls.values()), receiver.calls
    rows = json.loads(tool.run("history", "--format", "json", "--limit", "100").stdout)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"sent"}


def test_backfill_shows_a_progress_bar_on_a_terminal(sites: dict[str, devsite.Site],
                                                     make_wpnotify: Any) -> None:
    import os
    import pty
    import subprocess
    import sys

    source = sites["source"]
    source.create_post(post_title="Quiet old post", post_date_gmt="2016-06-06 10:00:00")
    tool = make_wpnotify([("tty", source, source.app_password)])
    leader, follower = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(tool.config),
                           "backfill", "--site", "tty", "--since", "2016-06-06", "--until",
                           "2016-06-07"], stdout=subprocess.PIPE, stderr=follower, text=True,
                          timeout=60, check=False)
    os.close(follower)
    shown = os.read(leader, 65536).decode()
    os.close(leader)
    assert proc.returncode == 0, shown
    assert "[##############################] 1/1 posts" in shown
