"""`wpnotify run`, the daemon, as a real process against real WordPress."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any

import devsite
import pytest

pytestmark = pytest.mark.e2e


def test_daemon_delivers_stops_cleanly_and_runs_alone(sites: dict[str, devsite.Site],
                                                      make_wpnotify: Any) -> None:
    source, target = sites["source"], sites["target"]
    # A retry waits at least the schedule's first step: 10 s here, so that a flood hold of
    # the target (15 s, when another test pinged it moments ago) fits in the deadline.
    tool = make_wpnotify([("daemon", source, source.app_password)],
                         top="poll_interval = 5\n[retry]\ndelays = [10, 300]")
    tool.run("poll")  # start watching from now
    daemon = subprocess.Popen(
        [sys.executable, "-m", "wpnotify", "--config", str(tool.config), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        second = tool.run("run", check=False)
        assert second.returncode == 1
        assert "another wpnotify daemon" in second.stderr and "already running" in second.stderr

        goal = target.create_post(post_title="Found by the daemon")
        post = source.create_post(post_title="Published while the daemon runs",
                                  post_content=f'<a href="{target.permalink(goal)}">x</a>')
        deadline = time.monotonic() + 60  # one 5 s poll, plus a possible 15 s flood hold
        while not [c for c in target.comments(goal) if c["type"] == "pingback"]:
            assert daemon.poll() is None, daemon.communicate()
            assert time.monotonic() < deadline, "the daemon did not deliver in time"
            time.sleep(1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "daemon.started" in events and events[-1] == "daemon.stopped"
    with sqlite3.connect(tool.state) as db:
        assert db.execute("SELECT COUNT(*) FROM notifications WHERE status = 'sending'"
                          ).fetchone()[0] == 0
        assert db.execute("SELECT status FROM notifications WHERE post_id = ?",
                          (post,)).fetchall() == [("sent",)]
    assert len(target.comments(goal)) == 1


def test_check_reports_each_real_problem_with_its_fix(sites: dict[str, devsite.Site],
                                                      make_wpnotify: Any) -> None:
    source, plain = sites["source"], sites["plain"]
    good = make_wpnotify([("good", source, source.app_password)])
    proc = good.run("check")
    assert "ok: site good:" in proc.stdout and "bridge 1.2 installed" in proc.stdout
    assert "state file" in proc.stdout and proc.stderr.count("problem:") == 0

    bad = make_wpnotify([("nobridge", plain, plain.app_password),
                         ("badpass", source, "not the password 99"),
                         ("down", devsite.Site("127.0.0.19"), "x")])
    proc = bad.run("check", check=False)
    assert proc.returncode == 1
    problems = [line for line in proc.stderr.splitlines() if line.startswith("problem:")]
    assert len(problems) == 3, proc.stderr
    assert "nobridge: the wpnotify bridge is not installed" in problems[0]
    assert "mu-plugins" in problems[0]
    assert "badpass:" in problems[1] and "refused the credentials" in problems[1]
    assert "down:" in problems[2] and "cannot reach" in problems[2]
    assert "not the password 99" not in proc.stdout + proc.stderr


def test_status_shows_polls_counts_and_bridge(sites: dict[str, devsite.Site],
                                              make_wpnotify: Any) -> None:
    source = sites["source"]
    tool = make_wpnotify([("st", source, source.app_password)])
    before = json.loads(tool.run("status", "--format", "json").stdout)
    assert before[0]["last_poll_at"] is None and before[0]["notifications"]["sent"] == 0
    tool.run("poll")
    source.create_post(post_title="For status", post_content="<a href='http://127.0.0.19:8080/x'>x</a>")
    tool.run("poll")
    (site,) = json.loads(tool.run("status", "--format", "json").stdout)
    assert site["site"] == "st" and site["bridge"] is True and site["cursor"]
    assert site["last_ok_at"] == site["last_poll_at"]
    assert site["notifications"]["pending"] == 1  # the unreachable target waits to retry
    assert site["next_retry_at"] is not None
    table = tool.run("status").stdout
    assert "bridge: installed" in table and "1 pending" in table


def test_daemon_rides_out_a_source_outage_and_a_removed_bridge(
        sites: dict[str, devsite.Site], make_wpnotify: Any) -> None:
    """WordPress down for a while, then back: the daemon backs off, logs it, never dies, and
    sends the post published meanwhile. Then the bridge is removed: pingbacks still go."""
    from receivers import PingbackReceiver, serving

    source = sites["source"]
    with serving(PingbackReceiver()) as receiver:
        assert isinstance(receiver, PingbackReceiver)
        tool = make_wpnotify([("outage", source, source.app_password)],
                             top="poll_interval = 5")
        tool.run("poll")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "wpnotify", "--config", str(tool.config), "run"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2)
            source.stop()
            during = receiver.url("/t/during-outage")
            source.create_post(post_title="Published while the site was down",
                               post_content=f'<a href="{during}">x</a>')
            time.sleep(14)
            assert daemon.poll() is None
            source.start()
            wait_for(lambda: during in receiver.calls, daemon, 60)

            source.set_bridge(False)
            after = receiver.url("/t/after-bridge-removed")
            source.create_post(post_title="No bridge any more",
                               post_content=f'<a href="{after}">y</a>')
            wait_for(lambda: after in receiver.calls, daemon, 30)
        finally:
            source.set_bridge(True)
            source.start()
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    for expected in ("site.unreadable", "site.backing_off", "site.recovered",
                     "site.no_bridge", "daemon.stopped"):
        assert expected in names, expected
    unreadable = next(e for e in events if e["event"] == "site.unreadable")
    assert "cannot reach" in unreadable["error"]
    assert names.count("site.no_bridge") == 1
    assert source.app_password not in err


def wait_for(condition: Any, daemon: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert daemon.poll() is None, daemon.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
