"""The registry of notification kinds: what it lists, that every payload is stored exactly as
before the registry (existing state files read back), and that a new kind is one spec plus
one registry line: a toy kind registered here is listed by the CLI and sent, paced, by the
sender to a local receiver."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from receivers import LocalServer, QuietHandler, reply, serving
from test_plan import HOME, nothing_known, post, site
from test_sender import START as NOW
from test_sender import make_world

from wpnotify import kinds, pingback, trackback, weblogupdates, webmention
from wpnotify.attempt import Discoveries, attempt
from wpnotify.cli import cli
from wpnotify.http import Http
from wpnotify.kind import Kind, Letter, Pacing
from wpnotify.linkpayload import LinkPayload
from wpnotify.plan import plan
from wpnotify.state.sqlite import SqliteState as Store

PING = {"url": f"{HOME}/p/", "title": "Tïtle", "excerpt": "Some text&#8230;",
        "blog_name": "B"}
UPDATE = {"name": "B", "home": f"{HOME}/", "feed": f"{HOME}/?feed=rss2"}


def test_the_registry_lists_every_kind_in_discovery_order() -> None:
    """Webmention is looked for first, then Pingback, then TrackBack RDF; the names are the
    ones the state file has always stored."""
    assert kinds.names() == ("webmention", "pingback", "trackback", "update-service")
    assert kinds.ALL == (webmention.SPEC, pingback.SPEC, trackback.SPEC, weblogupdates.SPEC)
    assert [spec.label for spec in kinds.ALL] == [
        "Webmention", "Pingback", "TrackBack", "update service"]
    assert kinds.get("pingback") is pingback.SPEC
    assert kinds.find("carrier-pigeon") is None
    with pytest.raises(KeyError):
        kinds.get("carrier-pigeon")


def test_fallbacks_and_pacing_are_as_before() -> None:
    """A Webmention may go out as a pingback or a trackback, a pingback as a trackback;
    nothing goes out as a Webmention; trackbacks and update pings go as what they are. Only
    update services are paced by URL, five minutes apart, one settling the others."""
    link = LinkPayload(fallback=True, ping=trackback.Ping(**PING))
    assert webmention.SPEC.fallback is None
    assert pingback.SPEC.fallback is not None and pingback.SPEC.fallback(link) is link
    assert pingback.SPEC.fallback(replace(link, fallback=False)) is None
    assert trackback.SPEC.fallback is not None and trackback.SPEC.fallback(link) == link.ping
    assert [kinds.sent_as_is(name) for name in kinds.names()] == [False, False, True, True]
    assert kinds.pacing("update-service") == Pacing(
        one_at_a_time=True, by_url=True, spacing=300.0, settles_target=True, pinged=False)
    assert kinds.pacing("pingback") == kinds.pacing("trackback") == Pacing(flood_checked=True)
    assert kinds.pacing("webmention") == kinds.pacing("no-such-kind") == Pacing()


@pytest.mark.parametrize("stored", [
    {"fallback": True},
    {"fallback": False},
    {"fallback": True, "ping": PING},
    {"fallback": False, "ping": PING},
    {"fallback": True, "gone": True, "resend": "the link was removed from the post"},
    {"fallback": True, "ping": PING, "gone": False, "resend": "the link is back in the post"},
])
def test_a_link_payload_reads_back_to_the_same_json(stored: dict[str, Any]) -> None:
    assert json.dumps(LinkPayload.from_dict(stored).to_dict()) == json.dumps(stored)


def test_trackback_and_update_payloads_read_back_to_the_same_json() -> None:
    assert json.dumps(trackback.Ping.from_dict(PING).to_dict()) == json.dumps(PING)
    assert json.dumps(weblogupdates.Update.from_dict(UPDATE).to_dict()) == json.dumps(UPDATE)
    for spec, stored in ((trackback.SPEC, PING), (weblogupdates.SPEC, UPDATE),
                         (webmention.SPEC, {"fallback": True}),
                         (pingback.SPEC, {"fallback": False})):
        assert spec.read(stored).to_dict() == stored


def test_the_planner_stores_what_it_always_stored(tmp_path: Path) -> None:
    """The payload column's text for each kind, as the dict literals of the code before the
    registry wrote it (``json.dumps`` of the same keys, in the same order)."""
    one = post(["https://a.example/1"], to_ping=["https://tb.example/ping"])
    items = plan(one, site(trackback_discovery=True, update_services=("https://rpc.example/",)),
                 home=HOME, blog_name="B", known=nothing_known, announce=True)
    ping = {"url": f"{HOME}/p/", "title": "T", "excerpt": "x", "blog_name": "B"}
    assert [(item.kind, item.payload_dict()) for item in items] == [
        ("webmention", {"fallback": True, "ping": ping}),
        ("trackback", ping),
        ("update-service", UPDATE)]
    store = Store.open(tmp_path / "state.sqlite3")
    for item in items:
        store.add("s", 1, item.kind, item.target, one.link, NOW, payload=item.payload_dict())
    store.close()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        stored = [row[0] for row in db.execute("SELECT payload FROM notifications ORDER BY id")]
    assert stored == [json.dumps({"fallback": True, "ping": ping}), json.dumps(ping),
                      json.dumps(UPDATE)]


# A toy kind, as a new protocol module would define it: one payload, one send, one SPEC.

@dataclass(frozen=True)
class Chirp:
    word: str

    def to_dict(self) -> dict[str, Any]:
        return {"word": self.word}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chirp:
        return cls(word=str(data["word"]))

    @property
    def resend(self) -> None:
        return None


def send_chirp(http: Http, endpoint: str, letter: Letter[Chirp]) -> str:
    resp = http.post(endpoint, data={"source": letter.source, "word": letter.payload.word},
                     max_bytes=1024)
    return f"chirped ({resp.status})"


CHIRP: Kind[Chirp] = Kind(name="chirp", label="Chirp", read=Chirp.from_dict, send=send_chirp,
                          at_target=True,
                          pacing=Pacing(one_at_a_time=True, by_url=True, spacing=30.0,
                                        pinged=False))


@pytest.fixture()
def chirp_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one registry line a new kind adds."""
    monkeypatch.setattr(kinds, "ALL", (*kinds.ALL, CHIRP))


class ChirpHandler(QuietHandler):
    server: ChirpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.heard.append(parse_qs(body.decode()))
        reply(self, 200, b"ok", "text/plain", {})


class ChirpReceiver(LocalServer):
    def __init__(self) -> None:
        super().__init__(ChirpHandler)
        self.heard: list[dict[str, list[str]]] = []


@pytest.fixture()
def receiver() -> Iterator[ChirpReceiver]:
    with serving(ChirpReceiver()) as server:
        assert isinstance(server, ChirpReceiver)
        yield server


@pytest.mark.usefixtures("chirp_registered")
def test_a_new_kind_is_sent_and_paced_by_the_sender(tmp_path: Path,
                                                    receiver: ChirpReceiver) -> None:
    """Two chirps to one URL: the first goes at once, the second after the kind's own 30 s
    spacing (held on its URL), and each is recorded as sent, as its kind."""
    world = make_world(tmp_path)
    store: Store = world["store"]
    url = receiver.url("/chirp")
    for post_id, word in ((1, "hello"), (2, "again")):
        store.add("s", post_id, "chirp", url, f"https://s.example/{post_id}/", world["clock"](),
                  payload=Chirp(word).to_dict())
    tally = world["sender"].deliver(["s"])
    assert tally.sent == 2
    assert [h["word"] for h in receiver.heard] == [["hello"], ["again"]]
    assert world["clock"].slept == [pytest.approx(30.0)]
    rows = store.history(kind="chirp")
    assert {(r.status, r.response, r.endpoint) for r in rows} == {("sent", "chirped (200)", url)}
    assert store.pinged_waiting("s", 10) == {}  # pinged=False: nothing for WordPress
    held = store.hosts({url})
    assert held[url].not_before is not None  # the URL, not its host, is held for the next chirp
    assert world["clock"].now - NOW == timedelta(seconds=30)


@pytest.mark.usefixtures("chirp_registered", "in_process_cli")
def test_a_new_kind_is_a_history_choice(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('state_file = "' + str(tmp_path / "state.sqlite3") + '"\n'
                      '[[sites]]\nname = "blog"\nurl = "https://blog.example"\n'
                      'username = "u"\npassword = "pw"\n')
    store = Store.open(tmp_path / "state.sqlite3")
    store.add("blog", 7, "chirp", "https://c.example/", "https://blog.example/p", NOW,
              payload={"word": "hi"})
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "history", "--kind", "chirp",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [row["kind"] for row in json.loads(result.output)] == ["chirp"]
    help_text = CliRunner().invoke(cli, ["history", "--help"]).output
    assert "chirp" in help_text


def test_errors_are_tagged_with_their_endpoint_as_before(tmp_path: Path,
                                                         httpserver: HTTPServer) -> None:
    """An unreachable pingback server is named in the history; an unreachable Webmention
    endpoint was not (its host is then taken for the target's, whose queue waits)."""
    closed = "http://127.0.0.1:9/"  # discard port: nothing listens
    httpserver.expect_request("/wm").respond_with_data(
        "<p>hi</p>", content_type="text/html", headers={"Link": f'<{closed}>; rel="webmention"'})
    httpserver.expect_request("/pb").respond_with_data(
        "<p>hi</p>", content_type="text/html", headers={"X-Pingback": closed})
    world = make_world(tmp_path)
    http: Http = world["sender"].http
    results = {}
    for kind, path in (("webmention", "/wm"), ("pingback", "/pb")):
        world["store"].add("s", 1, kind, httpserver.url_for(path), "https://s.example/1/", NOW,
                           payload={"fallback": False})
        (n,) = world["store"].history(kind=kind)
        results[kind] = attempt(http, Discoveries(http), n)
    assert all(r.error is not None and r.error.unreachable for r in results.values())
    assert (results["webmention"].endpoint, results["pingback"].endpoint) == (None, closed)
