"""The bridge's status and Send again routes (1 and 4) and its X-Wpnotify-Resend header, as the
REST source reads them from a site that answers junk: a wrong shape, wrong types, a huge or
deeply nested body, an older bridge. Each is one SourceError of one line naming the site,
never a traceback; a header that is no request number asks for nothing. A local server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from wpnotify.errors import SourceError
from wpnotify.http import Http
from wpnotify.settings import HttpSettings, SiteSettings
from wpnotify.sources.rest import RESEND_CAP, RestSource
from wpnotify.times import wp_time

Answer = Callable[[Request], Response]


def as_json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return lambda request: Response(json.dumps(value), status, headers,
                                    content_type="application/json")


def raw(body: bytes, content_type: str = "application/json") -> Answer:
    return lambda request: Response(body, 200, content_type=content_type)


class Bridge:
    """A site answering each rest_route with what the test set; every request noted."""

    def __init__(self, server: HTTPServer) -> None:
        self.routes: dict[str, Answer] = {}
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        server.expect_request("/").respond_with_handler(self._answer)
        self.source = RestSource(Http(HttpSettings(allow_private_addresses=True)), SiteSettings(
            name="s", url=server.url_for("").rstrip("/"), username="editor",
            password="app pass word 1234"))

    def _answer(self, request: Request) -> Response:
        route = request.args.get("rest_route", "")
        body = request.get_json(silent=True) if request.method == "POST" else None
        self.requests.append((route, dict(request.args), body))
        answer = self.routes.get(route) or as_json(
            {"code": "rest_no_route", "message": "No route was found."}, 404)
        return answer(request)


@pytest.fixture()
def bridge(httpserver: HTTPServer) -> Bridge:
    return Bridge(httpserver)


def one_line_error(bridge: Bridge, call: Callable[[], object], expected: str) -> None:
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(bridge.source.site.url) and expected in message, message
    assert "\n" not in message and "app pass" not in message and len(message) < 400


def request(id: Any = 5, post: Any = 7, kind: Any = "trackback",  # noqa: A002 (the field)
            target: Any = "https://t.example/tb", **more: Any) -> dict[str, Any]:
    item = {"id": id, "post": post, "kind": kind, "target": target,
            "requested_gmt": "2026-11-26 12:39:00", **more}
    return {k: v for k, v in item.items() if v is not ...}


# --- route 1: the status rows -------------------------------------------------------------

def test_a_push_carries_the_rows_and_resend_seen_and_returns_the_refused(bridge: Bridge
                                                                         ) -> None:
    bridge.routes["/wpnotify/v1/statuses"] = as_json({"recorded": 1, "refused": [8]})
    rows = {7: [{"kind": "pingback", "status": "sent"}], 8: []}
    assert bridge.source.record_status_many(rows, 12) == [8]
    [(_, _, body)] = bridge.requests
    assert body == {"posts": {"7": rows[7], "8": []}, "resend_seen": 12}


STATUS_CASES = {
    "a list": (as_json([1]), "an answer to the status rows that is a list instead of an "
                             "object"),
    "no recorded": (as_json({"refused": []}), "without a recorded"),
    "recorded a string": (as_json({"recorded": "1", "refused": []}),
                          "whose recorded is a string instead of a number"),
    "refused a string": (as_json({"recorded": 1, "refused": "7"}),
                         "whose refused is a string instead of a list"),
    "refused text ids": (as_json({"recorded": 1, "refused": ["7"]}),
                         "whose refused holds something else than post IDs"),
    "refused true": (as_json({"recorded": 1, "refused": [True]}),
                     "whose refused holds something else than post IDs"),
    "HTML": (raw(b"<html>Maintenance</html>", "text/html"), "does not look like WordPress"),
    "huge": (raw(b'{"recorded": 1, "refused": [' + b"1," * 1_000_000 + b"1]}"),
             "with more than 1024 KB"),
    "deep": (raw(b"[" * 100_000), "nested too deeply"),
    "server error": (as_json({"code": "boom", "message": "x"}, 500), "answered 500"),
}


@pytest.mark.parametrize("case", STATUS_CASES, ids=list(STATUS_CASES))
def test_a_junk_answer_to_a_push_is_one_clear_source_error(bridge: Bridge, case: str) -> None:
    answer, expected = STATUS_CASES[case]
    bridge.routes["/wpnotify/v1/statuses"] = answer
    one_line_error(bridge, lambda: bridge.source.record_status_many({7: []}, 0), expected)


def test_an_older_bridge_is_named_with_the_fix(bridge: Bridge) -> None:
    one_line_error(bridge, lambda: bridge.source.record_status_many({7: []}, 0),
                   "its wpnotify bridge is older than 1.2")
    one_line_error(bridge, lambda: bridge.source.resend_requests(0),
                   "its wpnotify bridge is older than 1.2")


# --- route 4: the Send again requests ------------------------------------------------------

def test_requests_come_oldest_first_after_since_and_capped(bridge: Bridge) -> None:
    """The cap: a poll takes RESEND_CAP, the next poll the rest."""
    items = [request(id=i, post=i % 5 + 1) for i in range(RESEND_CAP + 200, 0, -1)]
    bridge.routes["/wpnotify/v1/resend"] = lambda r: as_json(
        [i for i in items if i["id"] > int(r.args["since"]) - 3])(r)  # a sloppy filter
    first = bridge.source.resend_requests(0)
    assert [r.id for r in first] == list(range(1, RESEND_CAP + 1))
    assert (first[0].post, first[0].kind, first[0].target) == (2, "trackback",
                                                              "https://t.example/tb")
    rest = bridge.source.resend_requests(first[-1].id)
    assert [r.id for r in rest] == list(range(RESEND_CAP + 1, RESEND_CAP + 201))
    assert [args["since"] for _, args, _ in bridge.requests] == ["0", str(RESEND_CAP)]


RESEND_CASES = {
    "an object": (as_json({"requests": []}),
                  "returned the list of Send again requests as an object instead of a list"),
    "item a list": (as_json([[5, 7]]), "a Send again request that is a list"),
    "no id": (as_json([request(id=...)]), "a Send again request without an id"),
    "id text": (as_json([request(id="5")]), "whose id is a string instead of a number"),
    "id a fraction": (as_json([request(id=5.5)]), "whose id is not a whole number"),
    "id true": (as_json([request(id=True)]), "whose id is true/false instead of a number"),
    "id negative": (as_json([request(id=-1)]), "whose id is negative"),
    "id huge": (as_json([request(id=10**30)]), "whose id is larger than any post ID"),
    "post text": (as_json([request(post="7")]), "whose post is a string instead of a number"),
    "no kind": (as_json([request(kind=...)]), "without a kind"),
    "target a list": (as_json([request(target=["https://t/"])]),
                      "whose target is a list instead of a string"),
    "target too long": (as_json([request(target="https://t.example/" + "x" * 5000)]),
                        "longer than the bridge stores"),
    "huge": (raw(b"[" + b'{"id": 1},' * 500_000 + b"{}]"), "with more than 4096 KB"),
    "deep": (raw(b"[" * 100_000), "nested too deeply"),
    "not JSON": (raw(b"Warning: something in plugin.php"), "does not look like WordPress"),
}


@pytest.mark.parametrize("case", RESEND_CASES, ids=list(RESEND_CASES))
def test_a_junk_list_of_requests_is_one_clear_source_error(bridge: Bridge, case: str) -> None:
    answer, expected = RESEND_CASES[case]
    bridge.routes["/wpnotify/v1/resend"] = answer
    one_line_error(bridge, lambda: bridge.source.resend_requests(0), expected)


# --- the header ---------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "newest"), [
    ("12", 12), (" 40 ", 40), (None, None), ("", None), ("abc", None), ("-3", None),
    ("1.5", None), ("9" * 30, None), ("0x1f", None), ("12, 13", None)])
def test_the_posts_list_names_the_newest_request(bridge: Bridge, header: str | None,
                                                 newest: int | None) -> None:
    """Read from the answers a poll fetches anyway; junk asks for nothing."""
    headers = {"X-Wpnotify-Resend": header} if header is not None else {}
    bridge.routes["/wp/v2/posts"] = as_json([], headers=headers)
    changes = bridge.source.changed(wp_time("2026-11-26T12:00:00"))
    assert list(changes) == [] and changes.newest_resend == newest
    assert [route for route, _, _ in bridge.requests] == ["/wp/v2/posts"]  # one request


def test_the_newest_request_of_all_answers_counts(bridge: Bridge) -> None:
    """The keys step and the posts step each name one: the newest is kept."""
    marks = iter(["3", "5"])

    def posts(request: Request) -> Response:
        if request.args.get("_fields") == "id,modified_gmt":
            return as_json([{"id": 7, "modified_gmt": "2026-11-26T12:39:34"}],
                           headers={"X-Wpnotify-Resend": next(marks)})(request)
        return as_json([], headers={"X-Wpnotify-Resend": next(marks)})(request)

    bridge.routes["/wp/v2/posts"] = posts
    changes = bridge.source.changed(wp_time("2026-11-26T12:00:00"))
    assert list(changes) == [] and changes.newest_resend == 5


def test_many_requests_are_read_without_trouble(bridge: Bridge, tmp_path: Path) -> None:
    """A thousand requests (what the bridge keeps) with long targets fit the cap."""
    items = [request(id=i, target="https://t.example/" + "x" * 1900) for i in range(1, 1001)]
    bridge.routes["/wpnotify/v1/resend"] = as_json(items)
    assert len(bridge.source.resend_requests(0)) == RESEND_CAP
