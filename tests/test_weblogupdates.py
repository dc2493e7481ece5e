"""Update-service pings: the calls WordPress makes, the replies, and one ping per burst."""

from __future__ import annotations

import xmlrpc.client
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from receivers import UpdateService

from wpnotify.errors import SendError
from wpnotify.http import Http
from wpnotify.sender import Sender
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.state.sqlite import SqliteState
from wpnotify.weblogupdates import Update, build_update, parse_reply, send

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
UPDATE = Update(name="Blog &amp; Co", home="https://blog.example/",
                feed="https://blog.example/?feed=rss2")


def reply(value: object) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True).encode()


def test_the_update_names_the_blog_with_a_trailing_slash_and_its_feed() -> None:
    assert build_update(name="B", home="https://b.example/blog") == Update(
        "B", "https://b.example/blog/", "https://b.example/blog/?feed=rss2")


def test_flerror_false_is_success_and_true_is_failure() -> None:
    assert parse_reply(200, reply({"flerror": False, "message": "Thanks"})) == "Thanks"
    with pytest.raises(SendError) as caught:
        parse_reply(200, reply({"flerror": True, "message": "Blog not found"}))
    assert caught.value.permanent and caught.value.message == "Blog not found"


def test_pinging_too_fast_waits_five_minutes() -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(200, reply({"flerror": True, "message":
                                "Pinging too fast. Slow down cowboy."}))
    assert not caught.value.permanent and caught.value.retry_after == 300


@pytest.mark.parametrize("status,permanent", [(500, False), (429, False), (404, True)])
def test_http_errors(status: int, permanent: bool) -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(status, b"")
    assert caught.value.permanent is permanent


def http() -> Http:
    return Http(HttpSettings(allowed_networks=("127.0.0.1/32",)))


def test_extended_ping_carries_what_wordpress_sends() -> None:
    with UpdateService() as service:
        assert send(http(), service.url, UPDATE) == "Thanks for the ping."
    assert service.calls == [("weblogUpdates.extendedPing",
                              ("Blog &amp; Co", "https://blog.example/",
                               "https://blog.example/?feed=rss2"))]


def test_a_server_without_extended_ping_gets_a_plain_ping() -> None:
    with UpdateService(extended=False) as service:
        assert send(http(), service.url, UPDATE) == "Thanks for the ping."
    assert service.calls == [("weblogUpdates.ping", ("Blog &amp; Co", "https://blog.example/"))]


def test_a_refusal_is_not_retried_with_a_plain_ping() -> None:
    with UpdateService(refuse="Blog not found") as service, \
            pytest.raises(SendError, match="Blog not found"):
        send(http(), service.url, UPDATE)
    assert [c[0] for c in service.calls] == ["weblogUpdates.extendedPing"]


def test_a_burst_of_publishes_is_one_ping_and_the_next_waits_five_minutes(
        tmp_path: Path) -> None:
    now = [START]
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),),
                        http=HttpSettings(allowed_networks=("127.0.0.1/32",)))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    sender = Sender(settings, store, Http(settings.http), {}, lambda: now[0],
                    lambda s: None)
    with UpdateService() as service:
        for post in (1, 2, 3):
            store.add("s", post, "update-service", service.url, f"https://s/{post}", START,
                      payload=UPDATE.__dict__)
        tally = sender.deliver(["s"])
        assert (tally.sent, tally.retrying) == (3, 0)
        assert len(service.calls) == 1
        store.add("s", 4, "update-service", service.url, "https://s/4", START,
                  payload=UPDATE.__dict__)
        assert sender.deliver(["s"]).retrying == 1  # within five minutes of the last ping
        now[0] = START + timedelta(minutes=5, seconds=1)
        assert sender.deliver(["s"]).sent == 1
        assert len(service.calls) == 2
    responses = sorted(r.response or "" for r in store.history())
    assert sum("covered by the ping sent for post" in r for r in responses) == 2
