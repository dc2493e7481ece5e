"""Webmention: endpoint discovery, case by case as data (each case is served for real by a
local server: headers, HTML, redirects), and the classification of replies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import DATA
from pytest_httpserver import HTTPServer
from werkzeug import Request
from werkzeug import Response as WResponse

from wpnotify.errors import SendError
from wpnotify.http import Http
from wpnotify.settings import HttpSettings
from wpnotify.webmention import discover, parse_reply, send, wants_body

CASES = json.loads((DATA / "webmention-discovery.json").read_text())


def http() -> Http:
    return Http(HttpSettings(allowed_networks=("127.0.0.1/32",)))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_endpoint_discovery(case: dict[str, Any], httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")

    def page(request: Request) -> WResponse:
        response = WResponse(case["html"], content_type=case.get("content_type", "text/html"))
        for name, value in case["headers"]:
            response.headers.add(name, value.replace("{base}", base))
        return response

    path = f"/case/{case['name']}"
    if case.get("redirect"):
        httpserver.expect_request(path).respond_with_data(
            "", status=302, headers={"Location": case["redirect"]})
        httpserver.expect_request(case["redirect"]).respond_with_handler(page)
    else:
        httpserver.expect_request(path).respond_with_handler(page)
    if case["expected"] is None:
        with pytest.raises(SendError) as caught:
            discover(http(), base + path)
        assert caught.value.code == "no-endpoint" and caught.value.skip
    else:
        assert discover(http(), base + path) == base + case["expected"]


def test_a_gone_target_is_skipped(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_data("", status=410)
    with pytest.raises(SendError) as caught:
        discover(http(), httpserver.url_for("/gone"))
    assert caught.value.code == "target-gone" and caught.value.skip


def test_the_post_carries_exactly_source_and_target_and_keeps_the_query(
        httpserver: HTTPServer) -> None:
    seen: list[tuple[dict[str, str], dict[str, str]]] = []

    def receive(request: Request) -> WResponse:
        seen.append((dict(request.args), dict(request.form)))
        return WResponse("", status=201, headers={"Location": "/status/7"})

    httpserver.expect_request("/wm", method="POST").respond_with_handler(receive)
    reply = send(http(), httpserver.url_for("/wm") + "?token=abc", "https://s.example/p",
                 "https://t.example/a?b=1")
    assert reply == "created: /status/7"
    assert seen == [({"token": "abc"}, {"source": "https://s.example/p",
                                        "target": "https://t.example/a?b=1"})]


def test_a_307_is_posted_again_once(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old", method="POST").respond_with_data(
        "", status=307, headers={"Location": "/new"})
    httpserver.expect_request("/new", method="POST").respond_with_data("", status=202)
    assert send(http(), httpserver.url_for("/old"), "https://s/", "https://t/") == \
        "accepted, to be verified"


@pytest.mark.parametrize("status,permanent,code", [
    (400, True, "http-400"), (404, True, "http-404"), (410, True, "http-410"),
    (408, False, "http-408"), (429, False, "http-429"), (500, False, "http-500"),
    (503, False, "http-503"), (302, True, "redirect"), (301, True, "redirect")])
def test_replies_are_classified(status: int, permanent: bool, code: str) -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(status, None, b"Source does not link to target")
    assert (caught.value.permanent, caught.value.code) == (permanent, code)
    if status == 400:
        assert "Source does not link to target" in caught.value.message


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_success(status: int) -> None:
    assert parse_reply(status, None, b"")


@pytest.mark.parametrize("content_type,wanted", [
    ("text/html; charset=utf-8", True), ("application/xhtml+xml", True), (None, True),
    ("image/png", False), ("video/mp4", False), ("audio/ogg", False),
    ("model/gltf+json", False), ("application/pdf", False)])
def test_only_html_bodies_are_downloaded_for_discovery(content_type: str | None,
                                                       wanted: bool) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    assert wants_body(200, headers) is wanted
