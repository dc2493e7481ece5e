"""End to end: a post with malformed links next to a good one (issue 12, item 4). The good
link is notified, each bad one is recorded as skipped with bad-url, by `poll` and by
`backfill` alike, with no traceback and exit status 0."""

from __future__ import annotations

import json
from typing import Any

import devsite
import pytest

pytestmark = pytest.mark.e2e

BAD = ["http://example.com:8O80/", "http://[your link here]"]


def content(good: str) -> str:
    return "".join(f'<a href="{url}">bad</a> ' for url in BAD) + f'<a href="{good}">good</a>'


def check(rows: list[dict[str, Any]], good: str) -> None:
    by_target = {row["target"]: row for row in rows}
    assert set(by_target) == {*BAD, good}, rows
    assert (by_target[good]["status"], by_target[good]["kind"]) == ("sent", "pingback")
    for url in BAD:
        row = by_target[url]
        assert (row["status"], row["error_code"]) == ("skipped", "bad-url"), row
        assert url in row["error"] and "fix the link" in row["error"], row


def test_a_malformed_link_costs_only_itself(sites: dict[str, devsite.Site],
                                            make_wpnotify: Any) -> None:
    source, target = sites["source"], sites["target"]
    tool = make_wpnotify([("bad", source, source.app_password)])
    tool.run("poll")

    fresh_goal = target.create_post(post_title="Linked next to bad links")
    fresh = source.create_post(post_title="Bad links",
                               post_content=content(target.permalink(fresh_goal)))
    polled = tool.run("poll", check=False)
    assert polled.returncode == 0, polled.stdout + polled.stderr
    assert "Traceback" not in polled.stderr
    assert "1 new notification(s)" in polled.stdout, polled.stdout  # and 2 skipped
    check(json.loads(tool.run("history", "--format", "json", "--post", str(fresh)).stdout),
          target.permalink(fresh_goal))
    assert [c["type"] for c in target.comments(fresh_goal)] == ["pingback"]

    old_goal = target.create_post(post_title="Linked from an old post with bad links")
    old = source.create_post(post_title="Old bad links", post_date_gmt="2021-03-01 10:00:00",
                             post_content=content(target.permalink(old_goal)))
    filled = tool.run("backfill", "--site", "bad", "--since", "2021-01-01", "--until",
                      "2022-01-01", check=False)
    assert filled.returncode == 0, filled.stdout + filled.stderr
    assert "Traceback" not in filled.stderr
    assert "sent 1," in filled.stdout and "failed 0" in filled.stdout, filled.stdout
    check(json.loads(tool.run("history", "--format", "json", "--post", str(old)).stdout),
          target.permalink(old_goal))
    assert [c["type"] for c in target.comments(old_goal)] == ["pingback"]
