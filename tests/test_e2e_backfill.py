"""`wpnotify backfill` over real WordPress: old posts' notifications, once, and a dry run that
changes nothing."""

from __future__ import annotations

import json
from typing import Any

import devsite
import pytest

pytestmark = pytest.mark.e2e


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
    tool = make_wpnotify([("bf", source, source.app_password)])
    tool.run("poll")  # watching from now: the old posts are archive

    dry = tool.run("backfill", "--site", "bf", "--since", "2021-01-01", "--until",
                   "2022-01-01", "--dry-run")
    assert f"post {old}: pingback {target.permalink(linked)}" in dry.stdout
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

    again = tool.run("backfill", "--site", "bf", "--since", "2021-01-01")
    assert "0 notification(s) queued" in again.stdout and again.returncode == 0
    assert len(target.comments(linked)) == 1 and len(target.comments(tracked)) == 1
    rows = json.loads(tool.run("history", "--format", "json").stdout)
    assert sorted((r["post_id"], r["kind"], r["status"]) for r in rows) == [
        (old, "pingback", "sent"), (old, "trackback", "sent")]

    one = tool.run("backfill", "--site", "bf", "--since", "2000-01-01", "--post",
                   str(ancient), "--dry-run")
    assert f"post {ancient}: pingback {target.permalink(too_old)}" in one.stdout
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
