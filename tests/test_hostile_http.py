"""Hostile receivers against the HTTP seam, each on a raw local socket (loopback only): the
total deadline covers everything before the body too, and a receiver's quirks end as
classified errors, never as "internal" ones."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from receivers import Script, raw_server

from wpnotify.errors import SendError
from wpnotify.http import Http
from wpnotify.settings import HttpSettings


def drip(data: bytes, every: float = 0.05) -> Script:
    """Sends ``data`` one byte at a time, so no single read ever times out."""
    def script(conn: socket.socket, stop: threading.Event) -> None:
        for byte in data:
            if stop.wait(every):
                return
            conn.sendall(bytes([byte]))
    return script


def endless_continue(conn: socket.socket, stop: threading.Event) -> None:
    """Answers 100 Continue, again and again, for as long as the client listens."""
    while not stop.wait(0.05):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")


def local(**overrides: Any) -> Http:
    return Http(HttpSettings(allowed_networks=("127.0.0.1/32",), **overrides))


DRIPPED_HEADERS = (b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n"
                   b"Content-Length: 2\r\n\r\nok")


@pytest.mark.parametrize("script", [drip(DRIPPED_HEADERS), endless_continue],
                         ids=["headers-byte-by-byte", "endless-100-continue"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_total_deadline_covers_status_line_and_headers(script: Script,
                                                           method: str) -> None:
    """A receiver that drips its status line and headers (or sends 100 Continue forever) is
    cut off at the total deadline, not kept alive by the per-read timeout (issue 12, 1)."""
    with raw_server(script) as url:
        http = local(timeout=1.0)
        started = time.monotonic()
        with pytest.raises(SendError) as caught:
            if method == "GET":
                http.get(url)
            else:
                http.post(url, data=b"<methodCall/>")
        elapsed = time.monotonic() - started
    assert caught.value.code == "timeout" and not caught.value.permanent
    assert "longer than 1 s" in caught.value.message
    assert elapsed < 3.0, f"took {elapsed:.1f} s with a 1 s deadline"


def test_a_redirect_chain_shares_one_deadline() -> None:
    """Each hop answers just in time; the whole chain still ends at the deadline."""
    def slow_redirect(conn: socket.socket, stop: threading.Event) -> None:
        if not stop.wait(0.4):
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")

    with raw_server(slow_redirect) as url:
        started = time.monotonic()
        with pytest.raises(SendError) as caught:
            local(timeout=1.0, max_redirects=10).get(url)
        elapsed = time.monotonic() - started
    assert caught.value.code == "timeout"
    assert elapsed < 3.0


def test_a_connection_cut_by_the_deadline_is_never_pooled() -> None:
    """After a deadline the connection is closed, and the next request gets a fresh one
    that works."""
    calls: list[int] = []

    def first_slow(conn: socket.socket, stop: threading.Event) -> None:
        calls.append(1)
        if len(calls) == 1:
            drip(DRIPPED_HEADERS)(conn, stop)
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_server(first_slow) as url:
        http = local(timeout=1.0)
        with pytest.raises(SendError):
            http.get(url)
        assert http.get(url).body == b"ok"
    assert len(calls) == 2


SECRET_URL = "http://user:pw@127.0.0.1:1/x"


def no_secret(text: str | None) -> bool:
    return text is None or ("pw" not in text and "user:" not in text)


def test_a_link_with_user_info_never_puts_the_password_in_a_message() -> None:
    """Refused before any connection, named without its user info (issue 12, item 12)."""
    with pytest.raises(SendError) as caught:
        local().get(SECRET_URL)
    assert caught.value.code == "bad-url" and caught.value.skip
    assert no_secret(caught.value.message) and "127.0.0.1:1" in caught.value.message


def test_a_redirect_to_a_url_with_user_info_never_puts_the_password_in_a_message() -> None:
    def redirect(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {SECRET_URL}\r\n"
                     "Content-Length: 0\r\n\r\n".encode())

    with raw_server(redirect) as url, pytest.raises(SendError) as caught:
        local().get(url)
    assert caught.value.code == "bad-redirect"
    assert no_secret(caught.value.message) and "127.0.0.1:1/x" in caught.value.message


def test_a_201_status_url_with_user_info_is_kept_without_it() -> None:
    from wpnotify.webmention import parse_reply

    message = parse_reply(201, "https://u:pw@h.example/status/1", b"")
    assert message == "created: https://h.example/status/1"


def test_planned_links_with_user_info_are_skipped_without_the_password() -> None:
    from wpnotify.plan import plan
    from wpnotify.settings import SiteSettings
    from wpnotify.sources import Post
    from wpnotify.times import wp_time

    post = Post(id=1, type="post", status="publish", link="https://blog.example/p/",
                title_html="T", content_html=f'<a href="{SECRET_URL}">x</a>', excerpt_html="",
                protected=False, modified_gmt=wp_time("2026-11-26T12:00:00"),
                date_gmt=wp_time("2026-11-26T12:00:00"), to_ping=(SECRET_URL + "/tb",), pinged=())
    site = SiteSettings(name="s", url="https://blog.example", username="u", password="p")
    items = plan(post, site, home="https://blog.example", blog_name="B",
                 known=lambda kind: set())
    assert [(i.status, i.error_code) for i in items] == [("skipped", "bad-url")] * 2
    assert all(no_secret(i.error) for i in items)


@pytest.mark.parametrize("url,shown", [
    ("http://admin:s3cret@host/x", "http://host/x"),
    ("https://user:p@ss@host:81/?next=https://a:b@c/", "https://host:81/?next=https://c/"),
    ("http://u:pw@[broken", "http://[broken"),
    ("//u:pw@host/x", "//host/x"),
    ("http://host/path@not-user-info", "http://host/path@not-user-info"),
])
def test_redact_strips_user_info_even_from_urls_that_do_not_parse(url: str,
                                                                  shown: str) -> None:
    from wpnotify.urls import redact

    assert redact(url) == shown
