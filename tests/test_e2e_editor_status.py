"""Issue 14 end to end, wpnotify's side against the real bridge: after a poll, the post's
status route shows the rows `wpnotify history --post` lists (same kinds, targets, statuses,
attempts and codes), WordPress's pingback refusal without a reason is said so, and a Send
again made in WordPress is taken by the next poll, sent, and shown sent. Real WordPress
(sites["source"], with the bridge), local receivers, the real command."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import devsite
import pytest
from conftest import Wpnotify
from receivers import LocalServer, QuietHandler, reply, serving

pytestmark = pytest.mark.e2e
NO_REASON = "refused; the receiver gives no reason"


class Receiver(LocalServer):
    """GET /t/<name>: a page advertising /rpc, whose pingback.ping registers a ping, except
    for a target with "refuse" in it: fault 0 and no message, as a stock WordPress refuses.
    POST /tb/<name>: a trackback, refused (error 1) until ``accept`` is set."""

    def __init__(self) -> None:
        super().__init__(_Handler)
        self.accept = False
        self.trackbacks: list[str] = []
        self.pingbacks: list[str] = []


class _Handler(QuietHandler):
    server: Receiver

    def do_GET(self) -> None:
        reply(self, 200, b"<html><head><title>t</title></head><body>page</body></html>",
              "text/html", {"X-Pingback": self.server.url("/rpc")})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/tb/"):
            self.server.trackbacks.append(self.path)
            answer = (b"<response><error>0</error></response>" if self.server.accept else
                      b"<response><error>1</error><message>Not today</message></response>")
            reply(self, 200, b'<?xml version="1.0" encoding="utf-8"?>' + answer, "text/xml", {})
            return
        (_source, target), _ = xmlrpc.client.loads(body)
        self.server.pingbacks.append(target)
        out = (xmlrpc.client.dumps(xmlrpc.client.Fault(0, ""), methodresponse=True)
               if "refuse" in target else
               xmlrpc.client.dumps(("Pingback registered.",), methodresponse=True))
        reply(self, 200, out.encode(), "text/xml", {})


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as server:
        assert isinstance(server, Receiver)
        yield server


def rest(site: devsite.Site, route: str, body: dict[str, Any] | None = None) -> Any:
    """The bridge's REST route as the admin (Application Password), decoded."""
    request = urllib.request.Request(
        f"{site.url}/?rest_route={route}", method="POST" if body is not None else "GET",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(
            f"admin:{site.app_password}".encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{route}: {exc.code} {exc.read()[:500]!r}") from None


def agree(tool: Wpnotify, site: devsite.Site, post: int) -> dict[str, Any]:
    """The status route and `history --post` list the same rows (kind and target), with the
    same statuses, attempts and codes; returns the route's rows by target."""
    status = rest(site, f"/wpnotify/v1/posts/{post}/status")
    history = json.loads(tool.run("history", "--post", str(post), "--format", "json").stdout)
    shown = {(row["kind"], row["target"]): row for row in status["rows"]}
    known = {(row["kind"], row["target"]): row for row in history}
    assert set(shown) == set(known), (status, history)
    for key, row in known.items():
        assert (shown[key]["status"], shown[key]["attempts"], shown[key]["code"]) == (
            row["status"], row["attempts"], row["error_code"]), (shown[key], row)
    counts = {name: sum(row["status"] in words for row in history) for name, words in (
        ("sent", {"sent"}), ("failed", {"failed"}), ("waiting", {"pending", "sending"}))}
    assert status["summary"] == counts, status
    return {target: row for (_, target), row in shown.items()}


def test_the_editor_shows_what_history_shows_and_send_again_works(
        sites: dict[str, devsite.Site], make_wpnotify: Any, receiver: Receiver) -> None:
    source = sites["source"]
    tool: Wpnotify = make_wpnotify([("editor-status", source, source.app_password)],
                                   "[retry]\ndelays = [600, 1800, 7200]")
    tool.run("poll")  # the first poll: watching from now on
    ok, refused, trackback = (receiver.url("/t/ok"), receiver.url("/t/refuse"),
                              receiver.url("/tb/one"))
    post = source.create_post(
        post_title="Statuses in the editor",
        post_content=f'<p><a href="{ok}">ok</a> and <a href="{refused}">refused</a></p>',
        to_ping=trackback)
    tool.run("poll")
    shown = agree(tool, source, post)
    assert (shown[ok]["kind"], shown[ok]["status"]) == ("pingback", "sent")
    # A Webmention row that fell back to Pingback, refused: tried again later.
    assert (shown[refused]["status"], shown[refused]["code"]) == ("pending", "fault-0")
    assert shown[refused]["answer"] == NO_REASON and shown[refused]["next_at"]
    assert (shown[trackback]["status"], shown[trackback]["answer"]) == ("failed", "Not today")

    queued = rest(source, f"/wpnotify/v1/posts/{post}/resend",
                  {"kind": "trackback", "target": trackback})
    assert queued["status"] == "queued"
    receiver.accept = True
    tool.run("poll")
    assert receiver.trackbacks == ["/tb/one", "/tb/one"]
    shown = agree(tool, source, post)
    assert (shown[trackback]["status"], shown[trackback]["attempts"]) == ("sent", 1)
    assert shown[trackback]["answer"] == "accepted"
    assert receiver.pingbacks.count(ok) == 1  # nothing else was sent again
