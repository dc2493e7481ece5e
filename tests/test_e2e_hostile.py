"""Hostile receivers: a real post links to a server that stalls, resets, fails, rate-limits,
answers garbage or an entity bomb, streams 200 MB, loops redirects or lies about its charset,
drips its headers, sends 100 Continue forever, serves a page html.parser takes hours over,
redirects to a malformed URL, or answers deeply nested values, a UTF-16 entity bomb, a fault
whose code is a struct or a Retry-After of "²".
One `wpnotify poll` survives all of it in bounded memory, and every notification ends in the
right state with a useful error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import devsite
import pytest
from receivers import HostileServer, serving

pytestmark = pytest.mark.e2e

# path -> (status, error_code) expected after one poll
EXPECTED = {
    "stall": ("pending", "timeout"),
    "reset": ("pending", "connect"),
    "flaky": ("pending", "http-503"),
    # A Retry-After never shortens the back-off schedule (60 s first): retried next run
    "ratelimited": ("pending", "http-429"),
    "garbage": ("pending", "bad-reply"),
    "bomb": ("failed", "bad-reply"),
    "huge": ("skipped", "no-endpoint"),
    "loop": ("failed", "too-many-redirects"),
    "charset": ("sent", None),
    "badcharset": ("sent", None),
    # issue 12: the deadline covers the headers (1); linear parsing (3); receiver quirks
    # classified (10); a DTD found after decoding (15)
    "drip": ("pending", "timeout"),
    "continue": ("pending", "timeout"),
    "quadratic": ("sent", None),
    "badlocation": ("failed", "bad-redirect"),
    "deep": ("failed", "bad-reply"),
    "utf16bomb": ("failed", "bad-reply"),
    "structfault": ("failed", "bad-reply"),
    "superscript": ("pending", "http-503"),
}


def test_one_poll_survives_every_hostile_receiver(sites: dict[str, devsite.Site],
                                                  make_wpnotify: Any) -> None:
    source = sites["source"]
    with serving(HostileServer()) as server:
        assert isinstance(server, HostileServer)
        tool = make_wpnotify([("hostile", source, source.app_password)], timeout="3")
        tool.run("poll")
        links = {name: server.url(f"/p/{name}") for name in EXPECTED}
        trackback = server.url("/rpc/tb-garbage")
        post = source.create_post(post_title="Hostile links", to_ping=trackback,
                                  post_content="".join(f'<a href="{u}">{n}</a> '
                                                       for n, u in links.items()))
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "wpnotify", "--config",
                                 str(tool.config), "poll"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        elapsed = time.monotonic() - started
        rows = json.loads(tool.run("history", "--format", "json", "--post", str(post),
                                   "--limit", "50").stdout)
    by_target = {r["target"]: r for r in rows}
    for name, (status, code) in EXPECTED.items():
        row = by_target[links[name]]
        assert (row["status"], row["error_code"]) == (status, code), (name, row)
        if status != "sent":
            assert row["error"], name  # a useful message, not just a code
    tb = by_target[trackback]
    assert (tb["kind"], tb["status"], tb["error_code"]) == ("trackback", "failed", "unverified")
    assert "may or may not have recorded" in tb["error"]
    assert elapsed < 60, f"one poll took {elapsed:.0f} s"
    assert "Traceback" not in err


def test_memory_stays_bounded_while_a_page_streams_200_mb(make_wpnotify: Any,
                                                          sites: dict[str, devsite.Site]
                                                          ) -> None:
    """Peak RSS of the whole `wpnotify poll` process, read with wait4()."""
    source = sites["source"]
    with serving(HostileServer()) as server:
        assert isinstance(server, HostileServer)
        tool = make_wpnotify([("huge", source, source.app_password)])
        tool.run("poll")
        source.create_post(post_title="A huge page",
                           post_content=f'<a href="{server.url("/p/huge")}">big</a>')
        proc = subprocess.Popen([sys.executable, "-m", "wpnotify", "--config",
                                 str(tool.config), "poll"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    peak_mb = usage.ru_maxrss / 1024
    assert peak_mb < 120, f"peak RSS {peak_mb:.0f} MB"
