"""Whether a site runs the bridge is the bridge's own answer, never a guess from the first post
a poll reads (issue 12, item 5a), against real WordPress, through the real command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import devsite
import pytest
from conftest import Wpnotify
from receivers import LocalServer, QuietHandler, reply, serving

pytestmark = pytest.mark.e2e


class TrackbackReceiver(LocalServer):
    """POST /tb/<name>: a trackback, accepted and counted (not WordPress: no flood check)."""

    def __init__(self) -> None:
        super().__init__(_TrackbackHandler)
        self.received: list[str] = []


class _TrackbackHandler(QuietHandler):
    server: TrackbackReceiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(self.path)
        reply(self, 200, b'<?xml version="1.0" encoding="utf-8"?><response><error>0</error>'
              b"</response>", "text/xml", {})


@pytest.fixture()
def trackbacks() -> Iterator[TrackbackReceiver]:
    with serving(TrackbackReceiver()) as server:
        assert isinstance(server, TrackbackReceiver)
        yield server


@pytest.mark.parametrize("first", ["protected", "draft"])
@pytest.mark.parametrize("api", ["rest", "xmlrpc"])
def test_a_poll_whose_first_post_has_no_lists_still_sees_the_bridge(
        api: str, first: str, sites: dict[str, devsite.Site], make_wpnotify: Any,
        trackbacks: TrackbackReceiver) -> None:
    """The first post of the poll is password-protected (or a draft): its lists are not
    read, yet no "bridge is not installed" warning, the bridge is recorded as present, and
    the trackback queued in the next post ends in WordPress's ``pinged``."""
    source = sites["source"]
    tool: Wpnotify = make_wpnotify([(f"br-{api}-{first}", source, source.app_password)])
    tool.config.write_text(tool.config.read_text() + f'api = "{api}"\n')
    assert "first poll" in tool.run("poll").stdout
    target = trackbacks.url(f"/tb/{api}-{first}")
    fields = ({"post_password": "pw"} if first == "protected" else {"post_status": "draft"})

    def lists_unread() -> int:
        return source.create_post(post_title=f"Unread lists ({api}, {first})", **fields)

    # REST reads changes oldest first, XML-RPC newest first: the post without lists comes
    # first either way.
    if api == "rest":
        lists_unread()
    tracked = source.create_post(post_title=f"Trackback via the bridge ({api}, {first})",
                                 to_ping=target)
    if api == "xmlrpc":
        lists_unread()
    proc = tool.run("poll")
    assert "bridge is not installed" not in proc.stderr, proc.stderr
    assert trackbacks.received == [f"/tb/{api}-{first}"]
    status = json.loads(tool.run("status", "--format", "json").stdout)
    assert [site["bridge"] for site in status] == [True], status
    assert source.pings(tracked) == {"to_ping": [], "pinged": [target]}
