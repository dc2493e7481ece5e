"""What real sites answer when something is wrong (issue 12, item 8): an HTML error page or a
PHP warning before the XML, an unknown encoding, no wp.getPosts, JSON nested without end, a
post without an id. Each becomes one SourceError naming the site and what to check, never a
traceback; the service records it and the daemon backs off. Stand-in sites on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from receivers import LocalServer, QuietHandler, reply, serving
from structlog.testing import capture_logs

from wpnotify.daemon import Daemon
from wpnotify.errors import SourceError
from wpnotify.http import Http
from wpnotify.service import Service, make_sources
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.sources import Source, make_source
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time

# status, content type, body (and more headers)
Answer = tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]
Route = Answer | Callable[[dict[str, str]], Answer]
WP_METHODS = ["wp.getPosts", "wp.getPost", "wp.getOptions"]
SINCE = wp_time("2026-11-26T12:00:00")


def as_json(value: Any, status: int = 200) -> Answer:
    return status, "application/json", json.dumps(value).encode()


def as_xmlrpc(value: Any) -> Answer:
    return 200, "text/xml", xmlrpc.client.dumps((value,), methodresponse=True).encode()


def fault(code: int, text: str) -> Answer:
    return 200, "text/xml", xmlrpc.client.dumps(xmlrpc.client.Fault(code, text),
                                                methodresponse=True).encode()


class StandIn(LocalServer):
    """A stand-in WordPress: ``rest`` answers by rest_route, ``rpc`` by XML-RPC method; what
    is not set answers as WordPress would (a route or method it does not have)."""

    def __init__(self) -> None:
        super().__init__(_StandInHandler)
        self.rest: dict[str, Route] = {}
        self.rpc: dict[str, Answer] = {"mt.supportedMethods": as_xmlrpc(WP_METHODS),
                                       "wp.getPosts": as_xmlrpc([])}
        self.asked: list[str] = []  # rest_route or XML-RPC method of each request

    @property
    def base(self) -> str:
        return self.url("")


class _StandInHandler(QuietHandler):
    server: StandIn

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        self.server.asked.append(query.get("rest_route", ""))
        route = self.server.rest.get(query.get("rest_route", ""))
        answer = (route(query) if callable(route) else route) or as_json(
            {"code": "rest_no_route", "message": "No route was found."}, 404)
        status, content_type, body, *more = answer
        reply(self, status, body, content_type,
              {"Date": "Thu, 26 Nov 2026 12:39:35 GMT", **(more[0] if more else {})})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _params, method = xmlrpc.client.loads(body)
        self.server.asked.append(method or "")
        answer = self.server.rpc.get(method or "") or fault(
            -32601, f"server error. requested method {method} does not exist.")
        reply(self, answer[0], answer[2], answer[1], {})


@pytest.fixture()
def site() -> Iterator[StandIn]:
    with serving(StandIn(), poll=0.02) as server:
        assert isinstance(server, StandIn)
        yield server


def settings_for(tmp_path: Path, *sites: tuple[str, str, str]) -> Settings:
    return Settings(
        state_file=tmp_path / "state.sqlite3", http=HttpSettings(allow_private_addresses=True),
        sites=tuple(SiteSettings(name=name, url=url, username="editor",
                                 password="app pass word 1234", api=api)  # type: ignore[arg-type]
                    for name, url, api in sites))


def source_for(site: StandIn, api: str, tmp_path: Path, **overrides: Any) -> Source:
    settings = settings_for(tmp_path, ("s", site.base, api))
    return make_source(Http(settings.http),
                       dataclasses.replace(settings.sites[0], **overrides))


def post_item(**fields: Any) -> dict[str, Any]:
    """A REST post (context=edit) as WordPress gives it, with these fields changed."""
    item = {"id": 7, "type": "post", "status": "publish", "link": "https://s.example/p/",
            "title": {"rendered": "T"}, "content": {"rendered": "", "protected": False},
            "excerpt": {"rendered": "", "raw": ""}, "password": "",
            "modified_gmt": "2026-11-26T12:39:34", "date_gmt": "2026-11-26T12:00:00",
            "wpnotify": {"to_ping": [], "pinged": [], "bridge": "1.1"}}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not ...}


def rpc_post(**fields: Any) -> dict[str, Any]:
    """A wp.getPosts item as WordPress gives it, with these fields changed."""
    item = {"post_id": "7", "post_type": "post", "post_status": "draft", "link": "https://s/p",
            "post_title": "T", "post_content": "", "post_excerpt": "", "post_password": "",
            "post_modified_gmt": xmlrpc.client.DateTime("20261126T12:39:34"),
            "post_date_gmt": xmlrpc.client.DateTime("20261126T12:00:00")}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not ...}


def rest_posts(items: Any) -> Callable[[dict[str, str]], Answer]:
    """The post list route: IDs and times from ``items`` for the first step, then ``items``."""
    def answer(query: dict[str, str]) -> Answer:
        if query.get("_fields") == "id,modified_gmt" and isinstance(items, list):
            return as_json([{"id": 7, "modified_gmt": "2026-11-26T12:39:34"}])
        return as_json(items) if not isinstance(items, bytes) else (200, "application/json",
                                                                     items)
    return answer


def changed(source: Source) -> list[Any]:
    return list(source.changed(SINCE))


REST_CASES = {
    "no id": (rest_posts([post_item(id=...)]), "returned a post without an id"),
    "id a string": (rest_posts([post_item(id="seven")]),
                    "returned a post whose id is a string instead of a number"),
    "id true": (rest_posts([post_item(id=True)]),
                "returned a post whose id is true/false instead of a number"),
    "bad time": (rest_posts([post_item(modified_gmt="yesterday")]),
                 "whose modified_gmt is not a time like 2026-11-26T12:39:34"),
    "time a list": (rest_posts([post_item(modified_gmt=[1])]),
                    "whose modified_gmt is a list instead of a time"),
    "date nonsense": (rest_posts([post_item(date_gmt="2026-13-45T99:00:00")]),
                      "whose date_gmt is not a time"),
    "content a string": (rest_posts([post_item(content="x")]),
                         "whose content is a string instead of an object"),
    "rendered a number": (rest_posts([post_item(title={"rendered": 5}, id=7)]),
                          "whose title.rendered is a number instead of a string"),
    "lists of numbers": (rest_posts([post_item(wpnotify={"to_ping": [1], "pinged": []})]),
                         "whose wpnotify.to_ping holds something else than strings"),
    "post a list": (rest_posts([[1, 2]]), "returned a post that is a list instead of an object"),
    "list an object": (rest_posts({"posts": []}),
                       "returned the post list as an object instead of a list"),
    "deep JSON": (rest_posts(b"[" * 100_000), "returned JSON nested too deeply"),
}


@pytest.mark.parametrize("case", REST_CASES, ids=list(REST_CASES))
def test_rest_answers_a_real_site_may_give_are_one_clear_source_error(
        case: str, site: StandIn, tmp_path: Path) -> None:
    route, expected = REST_CASES[case]
    site.rest["/wp/v2/posts"] = route
    with pytest.raises(SourceError) as caught:
        changed(source_for(site, "rest", tmp_path))
    message = str(caught.value)
    assert message.startswith(site.base) and expected in message, message
    assert "\n" not in message and "app pass" not in message


def test_rest_error_answers_with_odd_fields_stay_one_line(site: StandIn, tmp_path: Path
                                                          ) -> None:
    """An error answer whose code and message are not text (a deep list, say) is still
    named, without turning that value into text."""
    deep: Any = []
    for _ in range(500):
        deep = [deep]
    site.rest["/wp/v2/posts"] = as_json({"code": deep, "message": deep}, 500)
    with pytest.raises(SourceError, match=r"answered 500 \(\?: \)"):
        changed(source_for(site, "rest", tmp_path))


def test_rest_odd_index_type_and_deletions_are_named(site: StandIn, tmp_path: Path) -> None:
    source = source_for(site, "rest", tmp_path)
    site.rest["/"] = as_json({"namespaces": "wp/v2", "name": "B", "home": "https://b"})
    with pytest.raises(SourceError, match="whose namespaces is a string instead of a list"):
        source.info()
    site.rest["/wp/v2/types/book"] = as_json([])
    with pytest.raises(SourceError, match="returned the post type 'book' that is a list"):
        changed(source_for(site, "rest", tmp_path, post_types=("book",)))
    site.rest["/wp/v2/posts"] = lambda query: (
        200, "application/json", b"[]", {"X-Wpnotify-Deleted": "2026-11-26T12:39:35"})
    changes = source.changed(SINCE)
    list(changes)
    assert changes.may_have_deleted(SINCE)  # the header announces a newer deletion
    site.rest["/wpnotify/v1/deleted"] = as_json([{"id": 3, "type": "post", "link": "x"}])
    with pytest.raises(SourceError, match="returned a deleted post without a deleted_gmt"):
        source.deletions(SINCE)


def test_rest_a_garbled_total_is_not_fatal(site: StandIn, tmp_path: Path) -> None:
    """X-WP-Total only feeds the progress bar: a garbled one counts the page instead."""
    source = source_for(site, "rest", tmp_path)
    site.rest["/wp/v2/posts"] = lambda query: (200, "application/json",
                                               json.dumps([post_item()]).encode(),
                                               {"X-WP-Total": "lots"})
    pages = list(source.archive(datetime(2026, 1, 1, tzinfo=UTC), None))
    assert [(len(posts), total) for posts, total in pages] == [(1, 1)]


def test_rest_deep_json_costs_linear_time(site: StandIn, tmp_path: Path) -> None:
    """1 MiB (and 4 MiB) of "[" is refused fast: the decoder gives up at its recursion limit,
    having read a thousand characters, so the cost is the transfer's."""
    source = source_for(site, "rest", tmp_path)

    def refused_in(size: int) -> float:
        site.rest["/wp/v2/posts"] = (200, "application/json", b"[" * size)
        start = time.monotonic()
        with pytest.raises(SourceError, match="nested too deeply"):
            changed(source)
        return time.monotonic() - start

    small, large = refused_in(1 << 20), refused_in(4 << 20)
    assert small < 5.0 and large < 5.0
    assert large < 10 * small + 0.5  # no worse than linear, with room for a busy machine


# --- XML-RPC ---------------------------------------------------------------------------

PHP_WARNING = (b"<br />\n<b>Warning</b>:  Undefined variable $x in <b>/srv/wp-content/plugins/"
               b"p.php</b> on line <b>3</b><br />\n")
HTML_ERROR = (500, "text/html",
              b"<!DOCTYPE html><html><body><p>There has been a critical error on this "
              b"website.</p></body></html>")
RPC_CASES: dict[str, tuple[dict[str, Answer], str]] = {
    "HTML error page": ({"mt.supportedMethods": HTML_ERROR},
                        "answered HTML instead of XML-RPC (HTTP 500; a PHP error or a "
                        "security plugin?)"),
    "HTML, no doctype": ({"wp.getPosts": (403, "text/html", b"<p>Forbidden</p>")},
                         "answered HTML instead of XML-RPC (HTTP 403"),
    "PHP warning first": ({"wp.getPosts": (200, "text/xml",
                                           PHP_WARNING + as_xmlrpc([])[2])},
                          "printed something before its XML-RPC reply (a PHP warning"),
    "blank line first": ({"wp.getPosts": (200, "text/xml", b"\n" + as_xmlrpc([])[2])},
                         "printed something before its XML-RPC reply"),
    "unknown encoding": ({"wp.getPosts": (200, "text/xml", as_xmlrpc([])[2].replace(
        b"<?xml version='1.0'?>", b'<?xml version="1.0" encoding="x-klingon"?>'))},
                         "answered XML in an encoding Python does not know"),
    "lying encoding": ({"wp.getPosts": (200, "text/xml", as_xmlrpc([])[2].replace(
        b"<?xml version='1.0'?>", b'<?xml version="1.0" encoding="utf-16"?>'))},
                       "not well-formed XML-RPC"),
    "no wp.getPosts": ({"mt.supportedMethods": as_xmlrpc(["wp.getOptions"])},
                       "has no wp.getPosts (XML-RPC disabled or restricted?"),
    "wp.getPosts unknown": ({"wp.getPosts": fault(-32601, "requested method does not "
                                                          "exist.")},
                            "has no wp.getPosts (XML-RPC disabled or restricted?"),
    "methods a string": ({"mt.supportedMethods": as_xmlrpc("wp.getPosts wp.getPost")},
                         "answered mt.supportedMethods with a string instead of a list"),
    "empty page": ({"wp.getPosts": (200, "text/xml", b"")},
                   "answered an empty page instead of XML-RPC (a PHP fatal error?"),
    "not found": ({"mt.supportedMethods": (404, "text/plain", b"Not Found")},
                  "answered HTTP 404: no XML-RPC there; check the url"),
    "plain text": ({"wp.getPosts": (200, "text/plain", b"XML-RPC server accepts POST "
                                                      b"requests only.")},
                   "answered text/plain that is not XML-RPC"),
    "not XML-RPC": ({"wp.getPosts": (200, "text/xml", b"<rss><channel/></rss>")},
                    "not well-formed XML-RPC"),
    "struct without value": ({"wp.getPosts": (200, "text/xml", (
        b"<methodResponse><params><param><value><struct><member><name>a</name></member>"
        b"</struct></value></param></params></methodResponse>"))},
                             "malformed XML-RPC reply"),
    "odd fault": ({"wp.getPosts": (200, "text/xml", (
        b"<methodResponse><fault><value><struct><member><name>faultCode</name><value>"
        b"<array><data/></array></value></member><member><name>faultString</name><value>"
        b"x</value></member></struct></value></fault></methodResponse>"))},
                  "sent an XML-RPC fault without a number and a message"),
    "DTD": ({"wp.getPosts": (200, "text/xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY '
                                              b'a "b">]><methodResponse/>')},
            "answered XML with a DTD"),
    "DTD in UTF-16, no byte order mark": ({"wp.getPosts": (200, "text/xml", (
        '<!DOCTYPE x [<!ENTITY a "b">]><methodResponse/>').encode("utf-16-le"))},
        "answered XML with a DTD"),
    "no post_id": ({"wp.getPosts": as_xmlrpc([rpc_post(post_id=...)])},
                   "returned a post without a post_id"),
    "post_id words": ({"wp.getPosts": as_xmlrpc([rpc_post(post_id="seven")])},
                      "returned a post whose post_id is a string instead of a number"),
    "bad time": ({"wp.getPosts": as_xmlrpc([rpc_post(
        post_modified_gmt=xmlrpc.client.DateTime("yesterday"))])},
                 "whose post_modified_gmt is not a time like 20261126T12:39:34"),
    "title a struct": ({"wp.getPosts": as_xmlrpc([rpc_post(post_title={"a": 1})])},
                       "whose post_title is an object instead of a string"),
    "posts a struct": ({"wp.getPosts": as_xmlrpc({"0": rpc_post()})},
                       "returned the post list as an object instead of a list"),
    "lists not lists": ({"mt.supportedMethods": as_xmlrpc([*WP_METHODS, "wpnotify.getPings"]),
                         "wp.getPosts": as_xmlrpc([rpc_post(post_status="publish")]),
                         "wpnotify.getPings": as_xmlrpc({"to_ping": "a b", "pinged": []})},
                        "returned the bridge's lists whose to_ping is a string instead of a "
                        "list"),
}


@pytest.mark.parametrize("case", RPC_CASES, ids=list(RPC_CASES))
def test_xmlrpc_answers_a_real_site_may_give_are_one_clear_source_error(
        case: str, site: StandIn, tmp_path: Path) -> None:
    answers, expected = RPC_CASES[case]
    site.rpc.update(answers)
    with pytest.raises(SourceError) as caught:
        changed(source_for(site, "xmlrpc", tmp_path))
    message = str(caught.value)
    assert message.startswith(f"{site.base}/xmlrpc.php") and expected in message, message
    assert "\n" not in message and "app pass" not in message


def test_xmlrpc_deep_nesting_is_refused_in_linear_time(site: StandIn, tmp_path: Path) -> None:
    """Arrays nested a hundred thousand deep (2 MiB) are read without recursion and refused
    as no post list, without ever being turned into text."""
    source = source_for(site, "xmlrpc", tmp_path)

    def refused_in(depth: int) -> float:
        site.rpc["wp.getPosts"] = (200, "text/xml", b"<methodResponse><params><param>"
                                   + b"<value><array><data>" * depth
                                   + b"</data></array></value>" * depth
                                   + b"</param></params></methodResponse>")
        start = time.monotonic()
        with pytest.raises(SourceError, match="returned a post that is a list instead"):
            changed(source)
        return time.monotonic() - start

    small, large = refused_in(25_000), refused_in(100_000)
    assert large < 5.0
    assert large < 10 * small + 0.5  # four times the input, not sixteen times the time


def test_xmlrpc_a_fault_is_one_line(site: StandIn, tmp_path: Path) -> None:
    site.rpc["wp.getPosts"] = fault(500, "Database\nerror   on\tline 3")
    with pytest.raises(SourceError, match=r"answered fault 500: Database error on line 3$"):
        changed(source_for(site, "xmlrpc", tmp_path))


def test_xmlrpc_without_the_bridge_record_pinged_says_so(site: StandIn, tmp_path: Path
                                                         ) -> None:
    """Not an UnsupportedXmlrpcMethodError escaping to the sender."""
    with pytest.raises(SourceError, match="has no wpnotify.addPinged: the wpnotify bridge is "
                                          "not installed"):
        source_for(site, "xmlrpc", tmp_path).record_pinged(7, ["https://t.example/"])


# --- what the service and the daemon make of them -----------------------------------------

def test_the_daemon_records_the_reason_and_backs_off(site: StandIn, tmp_path: Path) -> None:
    """A source error is a poll that failed (logged, last_error, backed off), never a crashed
    job."""
    site.rpc["wp.getPosts"] = HTML_ERROR
    settings = settings_for(tmp_path, ("x", site.base, "xmlrpc"))
    store = SqliteState.open(settings.state_file)
    http = Http(settings.http)
    try:
        daemon = Daemon(settings, Service(settings, store, http,
                                          sources=make_sources(settings, http)))
        with capture_logs() as logs:
            daemon._job("poll:x", lambda: daemon.poll_site(settings.sites[0]))
        state = store.site("x")
        assert state is not None and state.last_error is not None
        assert "answered HTML instead of XML-RPC" in state.last_error
        assert daemon._failing["x"][0] == 1
        events = [entry["event"] for entry in logs]
        assert "site.unreadable" in events and "site.backing_off" in events
        assert "daemon.job_crashed" not in events
    finally:
        store.close()
        http.close()


def test_a_poll_of_a_site_with_a_post_without_an_id_fails_that_site_only(
        site: StandIn, tmp_path: Path) -> None:
    site.rest["/wp/v2/posts"] = rest_posts([post_item(id=...)])
    settings = settings_for(tmp_path, ("x", site.base, "rest"))
    store = SqliteState.open(settings.state_file)
    http = Http(settings.http)
    try:
        store.record_poll("x", datetime.now(UTC), cursor=SINCE)
        report = Service(settings, store, http, sources=make_sources(settings, http)
                         ).read(settings.sites[0])
        assert report.error is not None and "returned a post without an id" in report.error
    finally:
        store.close()
        http.close()


def test_poll_through_the_real_command_names_each_site_in_one_line(site: StandIn,
                                                                   tmp_path: Path) -> None:
    """`wpnotify poll` on three sites answering nonsense: exit 1, one line per site naming
    its reason, no traceback."""
    site.rest["/wp/v2/posts"] = (200, "application/json", b"[" * 100_000)
    site.rpc["wp.getPosts"] = HTML_ERROR
    other = StandIn()
    other.rpc["wp.getPosts"] = (200, "text/xml", PHP_WARNING + as_xmlrpc([])[2])
    thread = threading.Thread(target=other.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    config = tmp_path / "config.toml"
    config.write_text("\n".join([
        'state_file = "state.sqlite3"', "[http]", "allow_private_addresses = true", "",
        *(f'[[sites]]\nname = "{name}"\nurl = "{url}"\nusername = "editor"\n'
          f'password = "app pass word 1234"\napi = "{api}"\n'
          for name, url, api in (("deep", site.base, "rest"), ("html", site.base, "xmlrpc"),
                                 ("warned", other.base, "xmlrpc")))]))
    try:
        proc = subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(config),
                               "--log-level", "error", "poll"], capture_output=True, text=True,
                              timeout=120, check=False, env={
                                  k: v for k, v in os.environ.items()
                                  if not k.startswith("WPNOTIFY_")})
    finally:
        other.shutdown()
        other.server_close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith("wpnotify: site ")]
    assert lines == [
        f"wpnotify: site deep: {site.base} returned JSON nested too deeply to be a WordPress "
        "answer; check the url (a proxy or plugin in the way?)",
        f"wpnotify: site html: {site.base}/xmlrpc.php answered HTML instead of XML-RPC "
        "(HTTP 500; a PHP error or a security plugin?)",
        f"wpnotify: site warned: {other.base}/xmlrpc.php printed something before its "
        "XML-RPC reply (a PHP warning or notice, or blank lines from a plugin or theme file?)"
        "; see the site's PHP error log and turn WP_DEBUG_DISPLAY off"], proc.stderr
    assert "app pass" not in proc.stderr + proc.stdout


def test_rest_a_post_with_wordpress_zero_time_is_read_not_refused(site: StandIn,
                                                                  tmp_path: Path) -> None:
    """WordPress answers null for a zero date (a draft's date_gmt; a modified time a direct
    SQL import left at zero): that is WordPress, not nonsense, so the post is read."""
    site.rest["/wp/v2/posts"] = as_json([post_item(modified_gmt=None, date_gmt=None)])
    [post] = source_for(site, "rest", tmp_path).posts([7])
    assert (post.id, post.modified_gmt, post.date_gmt) == (7, None, None)
