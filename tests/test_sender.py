"""Delivery against local receivers, on a controllable clock: outcomes, retries, pacing."""

from __future__ import annotations

import sqlite3
import xmlrpc.client
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response as WResponse

from wpnotify.errors import SendError
from wpnotify.http import Http
from wpnotify.sending.decide import next_attempt
from wpnotify.sending.dispatch import Dispatcher
from wpnotify.settings import HttpSettings, RetrySettings, Settings, SiteSettings
from wpnotify.state.sqlite import SqliteState

RETRY_DELAYS = RetrySettings().delays
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Clock:
    """Time that moves only when the code under test sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def make_world(tmp_path: Path, retry: RetrySettings | None = None) -> dict[str, Any]:
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example",
                                            username="u", password="p"),),
                        http=HttpSettings(allowed_networks=("127.0.0.1/32",)),
                        retry=retry or RetrySettings())
    store = SqliteState.open(tmp_path / "state.sqlite3")
    clock = Clock()
    sender = Dispatcher(settings, store, Http(settings.http), {}, clock, clock.sleep)
    return {"store": store, "clock": clock, "sender": sender}


@pytest.fixture()
def world(tmp_path: Path) -> dict[str, Any]:
    return make_world(tmp_path)


def xmlrpc_ok(message: str = "registered") -> bytes:
    return xmlrpc.client.dumps((message,), methodresponse=True).encode()


def xmlrpc_fault(code: int, text: str = "") -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True).encode()


def pingable(server: HTTPServer, path: str, endpoint: str = "/xmlrpc.php") -> str:
    server.expect_request(path, method="GET").respond_with_data(
        "<html><body>a post</body></html>", content_type="text/html",
        headers={"X-Pingback": server.url_for(endpoint)})
    return server.url_for(path)


def queue(world: dict[str, Any], target: str, kind: str = "pingback",
          payload: dict[str, str] | None = None) -> int:
    store: SqliteState = world["store"]
    store.add("s", 1, kind, target, "https://s.example/post/", world["clock"](),
              payload=payload)
    return next(r.id for r in store.history() if r.target == target and r.kind == kind)


def test_a_pingback_is_discovered_sent_and_recorded(world: dict[str, Any],
                                                    httpserver: HTTPServer) -> None:
    target = pingable(httpserver, "/post")
    calls: list[tuple[Any, ...]] = []

    def endpoint(request: Any) -> WResponse:
        calls.append(xmlrpc.client.loads(request.get_data())[0])
        return WResponse(xmlrpc_ok("thanks"), content_type="text/xml")

    httpserver.expect_request("/xmlrpc.php", method="POST").respond_with_handler(endpoint)
    row = queue(world, target)
    tally = world["sender"].deliver(["s"])
    assert (tally.sent, tally.failed) == (1, 0)
    assert calls == [("https://s.example/post/", target)]
    done = world["store"].get(row)
    assert (done.status, done.response, done.endpoint, done.attempts) == (
        "sent", "thanks", httpserver.url_for("/xmlrpc.php"), 1)


def test_a_target_without_endpoint_is_skipped_with_the_reason(
        world: dict[str, Any], httpserver: HTTPServer) -> None:
    httpserver.expect_request("/plain").respond_with_data("<p>hi</p>", content_type="text/html")
    row = queue(world, httpserver.url_for("/plain"))
    assert world["sender"].deliver(["s"]).skipped == 1
    done = world["store"].get(row)
    assert (done.status, done.error_code) == ("skipped", "no-endpoint")
    assert "no pingback endpoint" in done.error.lower()


def test_a_permanent_fault_fails_at_once(world: dict[str, Any], httpserver: HTTPServer) -> None:
    target = pingable(httpserver, "/closed")
    httpserver.expect_request("/xmlrpc.php", method="POST").respond_with_data(
        xmlrpc_fault(33, "pings closed"), content_type="text/xml")
    row = queue(world, target)
    assert world["sender"].deliver(["s"]).failed == 1
    done = world["store"].get(row)
    assert (done.status, done.attempts, done.error_code) == ("failed", 1, "target-not-pingable")


def test_503_then_200_is_retried_into_sent(world: dict[str, Any],
                                           httpserver: HTTPServer) -> None:
    target = pingable(httpserver, "/flaky")
    answers = iter([WResponse("busy", status=503),
                    WResponse(xmlrpc_ok(), content_type="text/xml")])
    httpserver.expect_request("/xmlrpc.php", method="POST").respond_with_handler(
        lambda request: next(answers))
    row = queue(world, target)
    first = world["sender"].deliver(["s"])
    assert first.retrying == 1
    waiting = world["store"].get(row)
    assert (waiting.status, waiting.error_code) == ("pending", "http-503")
    delay = waiting.next_attempt_at - START
    assert 54 <= delay.total_seconds() <= 66  # the first backoff step, with jitter
    assert world["sender"].deliver(["s"]).sent == 0  # not due yet
    world["clock"].now += timedelta(minutes=2)
    assert world["sender"].deliver(["s"]).sent == 1
    assert world["store"].get(row).attempts == 2


def test_endless_503_ends_failed_after_the_schedule(world: dict[str, Any],
                                                    httpserver: HTTPServer) -> None:
    target = pingable(httpserver, "/down")
    httpserver.expect_request("/xmlrpc.php", method="POST").respond_with_data("no", status=503)
    row = queue(world, target)
    for _ in range(len(RETRY_DELAYS) + 1):
        world["sender"].deliver(["s"])
        world["clock"].now += timedelta(days=1)
    done = world["store"].get(row)
    assert (done.status, done.attempts) == ("failed", len(RETRY_DELAYS) + 1)
    assert "503" in done.error


def test_wordpress_hosts_get_one_ping_per_interval(world: dict[str, Any],
                                                   httpserver: HTTPServer) -> None:
    httpserver.expect_request("/xmlrpc.php", method="POST").respond_with_data(
        xmlrpc_ok(), content_type="text/xml")
    rows = [queue(world, pingable(httpserver, f"/p{i}")) for i in range(3)]
    assert world["sender"].deliver(["s"]).sent == 3
    assert world["clock"].slept == [15.0, 15.0]
    assert all(world["store"].get(r).status == "sent" for r in rows)


def test_429_holds_the_host_for_retry_after_then_sends(tmp_path: Path,
                                                       httpserver: HTTPServer) -> None:
    """A Retry-After longer than the scheduled back-off (here 5 s) is waited out in full."""
    world = make_world(tmp_path, RetrySettings(delays=(5.0, 10.0)))
    target = pingable(httpserver, "/flood", endpoint="/rpc")
    answers = iter([WResponse("slow down", status=429, headers={"Retry-After": "30"}),
                    WResponse(xmlrpc_ok(), content_type="text/xml")])
    httpserver.expect_request("/rpc", method="POST").respond_with_handler(
        lambda request: next(answers))
    row = queue(world, target)
    assert world["sender"].deliver(["s"]).sent == 1
    assert 30 <= sum(world["clock"].slept) <= 31
    assert world["store"].get(row).attempts == 2


def test_a_trackback_is_posted_as_a_form(world: dict[str, Any],
                                         httpserver: HTTPServer) -> None:
    forms: list[dict[str, str]] = []

    def receive(request: Any) -> WResponse:
        forms.append(dict(request.form))
        return WResponse('<?xml version="1.0"?><response><error>0</error></response>',
                         content_type="text/xml")

    httpserver.expect_request("/tb", method="POST").respond_with_handler(receive)
    payload = {"url": "https://s.example/post/", "title": "Tïtle", "excerpt": "Ex",
               "blog_name": "Blog"}
    row = queue(world, httpserver.url_for("/tb"), kind="trackback", payload=payload)
    assert world["sender"].deliver(["s"]).sent == 1
    assert forms == [{**payload, "charset": "UTF-8"}]
    assert world["store"].get(row).response == "accepted"


def test_a_bug_in_one_notification_does_not_stop_the_others(
        world: dict[str, Any], httpserver: HTTPServer) -> None:
    httpserver.expect_request("/tb", method="POST").respond_with_data(
        '<response><error>0</error></response>', content_type="text/xml")
    broken = queue(world, httpserver.url_for("/tb"), kind="trackback", payload={"bogus": "x"})
    fine = queue(world, httpserver.url_for("/tb") + "?2", kind="trackback",
                 payload={"url": "u", "title": "t", "excerpt": "e", "blog_name": "b"})
    tally = world["sender"].deliver(["s"])
    assert tally.sent == 1
    assert world["store"].get(broken).error_code == "internal"
    assert world["store"].get(fine).status == "sent"


def test_rare_faults_get_fewer_attempts() -> None:
    fault0 = SendError("x", code="fault-0", permanent=False)
    assert next_attempt(fault0, 2, START, RETRY_DELAYS) is not None
    assert next_attempt(fault0, 3, START, RETRY_DELAYS) is None
    timeout = SendError("x", code="timeout", permanent=False)
    assert next_attempt(timeout, 5, START, RETRY_DELAYS, jitter=lambda: 1.0) == \
        START + timedelta(seconds=RETRY_DELAYS[4])
    assert next_attempt(timeout, 6, START, RETRY_DELAYS) is None
    assert next_attempt(SendError("x", code="c", permanent=True), 1, START, RETRY_DELAYS) is None


def test_the_schedule_is_configurable() -> None:
    timeout = SendError("x", code="timeout", permanent=False)
    assert next_attempt(timeout, 1, START, (10.0, 20.0), jitter=lambda: 1.0) == \
        START + timedelta(seconds=10)
    assert next_attempt(timeout, 2, START, (10.0, 20.0), jitter=lambda: 1.0) == \
        START + timedelta(seconds=20)
    assert next_attempt(timeout, 3, START, (10.0, 20.0)) is None
    assert next_attempt(SendError("x", code="fault-0", permanent=False), 2, START, (5.0,)) \
        is None


def test_each_attempt_is_one_log_event_with_its_outcome(world: dict[str, Any],
                                                        httpserver: HTTPServer) -> None:
    from structlog.testing import capture_logs

    httpserver.expect_request("/plain").respond_with_data("<p>hi</p>", content_type="text/html")
    queue(world, httpserver.url_for("/plain"))
    with capture_logs() as events:
        world["sender"].deliver(["s"])
    (event,) = [e for e in events if e["event"] == "notification.attempt"]
    assert event["site"] == "s" and event["post"] == 1 and event["kind"] == "pingback"
    assert event["outcome"] == "skipped" and event["code"] == "no-endpoint"
    assert event["target"] == httpserver.url_for("/plain")
    assert isinstance(event["duration_ms"], int)


def test_a_private_target_is_skipped_without_any_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default guard: a link to the cloud metadata address is recorded as skipped, with
    the reason, and no socket is ever opened."""
    import socket

    attempts: list[Any] = []
    monkeypatch.setattr(socket, "create_connection",
                        lambda address, *a, **k: attempts.append(address))
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    clock = Clock()
    sender = Dispatcher(settings, store, Http(settings.http), {}, clock, clock.sleep)
    store.add("s", 1, "pingback", "http://169.254.169.254/latest/meta-data/", "https://s/", START)
    assert sender.deliver(["s"]).skipped == 1
    (row,) = store.history()
    assert (row.status, row.error_code) == ("skipped", "refused-address")
    assert "169.254.169.254" in row.error and "allowed_networks" in row.error
    assert attempts == []


def test_a_page_with_only_trackback_rdf_gets_a_trackback(world: dict[str, Any],
                                                         httpserver: HTTPServer) -> None:
    """trackback_discovery: neither Webmention nor Pingback, but RDF in a comment."""
    rdf = ('<!-- <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
           'xmlns:dc="http://purl.org/dc/elements/1.1/" '
           'xmlns:trackback="http://madskills.com/public/xml/rss/module/trackback/">'
           f'<rdf:Description rdf:about="{httpserver.url_for("/classic")}" '
           f'dc:identifier="{httpserver.url_for("/classic")}" '
           f'trackback:ping="{httpserver.url_for("/classic/tb")}" /></rdf:RDF> -->')
    httpserver.expect_request("/classic").respond_with_data(
        f"<html><body>{rdf}<p>a classic theme</p></body></html>", content_type="text/html")
    forms: list[dict[str, str]] = []
    httpserver.expect_request("/classic/tb", method="POST").respond_with_handler(
        lambda r: (forms.append(dict(r.form)),
                   WResponse("<response><error>0</error></response>"))[1])
    ping = {"url": "https://s.example/post/", "title": "T", "excerpt": "E", "blog_name": "B"}
    row = queue(world, httpserver.url_for("/classic"), kind="webmention",
                payload={"fallback": True, "ping": ping})
    assert world["sender"].deliver(["s"]).sent == 1
    done = world["store"].get(row)
    assert (done.kind, done.endpoint) == ("trackback", httpserver.url_for("/classic/tb"))
    assert forms == [{**ping, "charset": "UTF-8"}]


@pytest.mark.parametrize(("retry_after", "attempts", "wait"), [
    (None, 1, 60.0),       # no Retry-After: the schedule
    (0.0, 1, 60.0),        # "Retry-After: 0" does not cut the back-off
    (0.0, 5, 43200.0),     # ... at any step
    (4.0, 2, 300.0),       # a tiny one neither
    (0.0, 3, 1800.0),      # a date in the past (a slow clock) is parsed as 0
    (120.0, 1, 120.5),     # a longer one is honoured (plus half a second)
    (86400.0, 2, 86400.5),
])
def test_retry_after_never_shortens_the_back_off(retry_after: float | None, attempts: int,
                                                 wait: float) -> None:
    error = SendError("slow down", code="http-429", permanent=False, retry_after=retry_after)
    again = next_attempt(error, attempts, START, RETRY_DELAYS, jitter=lambda: 1.0)
    assert again == START + timedelta(seconds=wait)


def test_retry_after_zero_does_not_burn_the_budget(world: dict[str, Any],
                                                   httpserver: HTTPServer) -> None:
    """A 429 with Retry-After: 0 forever: six attempts over the whole schedule, not seconds."""
    target = pingable(httpserver, "/zero", endpoint="/rpc")
    httpserver.expect_request("/rpc", method="POST").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "0"})
    row = queue(world, target)
    world["sender"].deliver(["s"])
    done = world["store"].get(row)
    assert (done.status, done.attempts) == ("pending", 1)
    delay = done.next_attempt_at - START
    assert 54 <= delay.total_seconds() <= 66  # the first back-off step, with jitter


def test_an_update_services_pacing_holds_that_service_not_its_host(
        world: dict[str, Any], httpserver: HTTPServer) -> None:
    """After a ping, an update service waits five minutes; a trackback and a Webmention to
    other URLs on the same host go at once, and a second service on it is paced apart."""
    reply = xmlrpc.client.dumps(({"flerror": False, "message": "Thanks"},),
                                methodresponse=True).encode()
    for path in ("/service", "/other-service"):
        httpserver.expect_request(path, method="POST").respond_with_data(
            reply, content_type="text/xml")
    httpserver.expect_request("/tb", method="POST").respond_with_data(
        "<response><error>0</error></response>", content_type="text/xml")
    httpserver.expect_request("/page").respond_with_data(
        "<p>hi</p>", content_type="text/html",
        headers={"Link": f'<{httpserver.url_for("/wm")}>; rel="webmention"'})
    httpserver.expect_request("/wm", method="POST").respond_with_data("", status=202)
    update = {"name": "B", "home": "https://s.example/", "feed": "https://s.example/?feed=rss2"}
    store, clock = world["store"], world["clock"]
    queue(world, httpserver.url_for("/service"), kind="update-service", payload=update)
    assert world["sender"].deliver(["s"]).sent == 1

    clock.now += timedelta(seconds=10)
    ping = {"url": "https://s.example/post/", "title": "T", "excerpt": "E", "blog_name": "B"}
    rows = [queue(world, httpserver.url_for("/tb"), kind="trackback", payload=ping),
            queue(world, httpserver.url_for("/page"), kind="webmention"),
            queue(world, httpserver.url_for("/other-service"), kind="update-service",
                  payload=update)]
    store.add("s", 2, "update-service", httpserver.url_for("/service"),
              "https://s.example/2/", clock(), payload=update)
    tally = world["sender"].deliver(["s"])
    assert (tally.sent, tally.retrying) == (3, 1)
    assert clock.slept == []  # nothing waited for the service's five minutes
    assert [store.get(r).status for r in rows] == ["sent", "sent", "sent"]
    (held,) = store.history(post_id=2)
    assert (held.status, held.attempts) == ("pending", 0)  # the same service: still paced
    clock.now += timedelta(minutes=5)
    assert world["sender"].deliver(["s"]).sent == 1


def test_a_batch_of_outcomes_marks_its_posts_in_post_order(world: dict[str, Any]) -> None:
    """Every change to a row marks its post (a trigger on PostgreSQL takes the mark's row
    lock): one batch must take the posts' marks in ascending order, as status_told's
    deletes do, or two workers wait for each other (a deadlock, the batch's outcomes lost).
    A mark once taken is held to the unit's end: what counts is the order in which each
    post is first met (``lock_marks`` takes them all first)."""
    from concurrent.futures import ThreadPoolExecutor

    from wpnotify.attempt import Result
    from wpnotify.sending.backlog import Backlog
    from wpnotify.sending.dispatch import _Finished, _Run

    store: SqliteState = world["store"]
    sender: Dispatcher = world["sender"]
    now = world["clock"]()
    store.add("s", 1, "pingback", "https://a.example/1", "https://s.example/1/", now)
    store.add("s", 7, "webmention", "https://b.example/7", "https://s.example/7/", now)
    due = {n.post_id: n for n in store.due(now)}
    store.claim_many([n.id for n in due.values()], now, now + timedelta(minutes=1))
    posts = {n.id: n.post_id for n in due.values()}
    touched: list[int] = []
    for name in ("lock_marks", "finish_many", "release", "settle"):
        real = getattr(store, name)

        def spy(*args: Any, real: Any = real, name: str = name, **kw: Any) -> Any:
            if name == "lock_marks":
                touched.extend(post for _, post in args[0])
            elif name == "finish_many":
                touched.extend(posts[o.id] for o in args[0])
            elif name == "release":
                touched.append(posts[args[0]])
            return real(*args, **kw)
        setattr(store, name, spy)
    finished = [  # post 7's Webmention went out as a pingback (a fallback)
        _Finished(due[1], Result("pingback", "https://a.example/xmlrpc", "ok", None, 5), True),
        _Finished(due[7], Result("pingback", "https://b.example/xmlrpc", "ok", None, 5), True)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = _Run(["s"], None, None, Backlog([]), pool, now)
        with store.claiming():
            sender._finish(run, finished)
    assert {n.status for n in store.history()} == {"sent"}
    first_met = list(dict.fromkeys(touched))
    assert touched and first_met == sorted(first_met)


def test_a_fallback_whose_kind_was_taken_meanwhile_is_recorded_as_a_duplicate(
        world: dict[str, Any], tmp_path: Path) -> None:
    """A Webmention row that went out as a pingback, while a pingback row for the same link
    was added after the claim (the kinds taken are read at the claim): it ends skipped as
    the duplicate it is, its row's kind kept; the batch's other fallback is written with its
    kind; a third, whose claim another worker took over meanwhile, is left as that worker
    has it."""
    from concurrent.futures import ThreadPoolExecutor

    from wpnotify.attempt import Result
    from wpnotify.sending.backlog import Backlog
    from wpnotify.sending.dispatch import _Finished, _Run

    store: SqliteState = world["store"]
    sender: Dispatcher = world["sender"]
    now = world["clock"]()
    for post in (1, 2, 3):
        store.add("s", post, "webmention", f"https://a.example/{post}", "https://s.example/",
                  now)
    due = {n.post_id: n for n in store.due(now)}
    store.claim_many([n.id for n in due.values()], now, now + timedelta(minutes=1))
    store.add("s", 1, "pingback", "https://a.example/1", "https://s.example/", now)
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # post 3: another worker's now
        db.execute("UPDATE notifications SET claimed_by = 'other:1:1' WHERE id = ?",
                   (due[3].id,))
    db.close()
    finished = [_Finished(due[p], Result("pingback", f"https://a.example/xmlrpc{p}", "ok",
                                         None, 5), True) for p in (1, 2, 3)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = _Run(["s"], None, None, Backlog([]), pool, now)
        with store.claiming():
            sender._finish(run, finished)
    rows = {(n.post_id, n.kind): n for n in store.history(limit=10)}
    duplicate = rows[(1, "webmention")]
    assert (duplicate.status, duplicate.error_code) == ("skipped", "duplicate")
    assert rows[(1, "pingback")].status == "pending"  # the row that took the kind, untouched
    assert rows[(2, "pingback")].status == "sent"
    assert (rows[(3, "webmention")].status, rows[(3, "webmention")].claimed_by) == (
        "sending", "other:1:1")
    assert run.tally.skipped == 1


def test_an_unreachable_hosts_hold_another_worker_wrote_meanwhile_is_not_shortened(
        world: dict[str, Any], tmp_path: Path) -> None:
    """An unreachable host is held until this notification's retry only when the state
    holds it less long (``decide``'s put_off): another worker recording a longer hold
    between this pass's read of the hosts (``_start``) and its outcomes' unit must keep
    it, as when the hosts were read in the recording unit (under the claiming lock)."""
    from concurrent.futures import ThreadPoolExecutor

    from wpnotify.attempt import Result
    from wpnotify.sending.backlog import Backlog
    from wpnotify.sending.dispatch import _Finished, _Run
    from wpnotify.times import iso

    store: SqliteState = world["store"]
    sender: Dispatcher = world["sender"]
    now = world["clock"]()
    queue(world, "https://a.example/1")
    (n,) = store.due(now)
    store.claim_many([n.id], now, now + timedelta(minutes=1))
    down = SendError("connection refused", code="connect", permanent=False,
                     unreachable=True)
    finished = [_Finished(n, Result("pingback", None, None, down, 5), False)]
    later = now + timedelta(hours=6)  # another worker's hold, from a later attempt
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = _Run(["s"], None, None, Backlog([]), pool, now)
        sender._start(run, {"a.example"})  # this pass reads its hosts (no hold yet)
        with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # the other worker's unit
            db.execute("INSERT INTO hosts (host, not_before) VALUES ('a.example', ?)",
                       (iso(later),))
        db.close()
        with store.claiming():
            sender._finish(run, finished)
    assert store.host("a.example").not_before == later


def test_a_fallback_taken_over_and_sent_by_another_worker_is_not_recorded_a_duplicate(
        world: dict[str, Any], tmp_path: Path) -> None:
    """This worker's lease passed; another took the Webmention over, sent it as a pingback
    too and recorded it (the row's kind is now pingback). This worker's outcome finds no
    other row of that kind: the row itself holds it; it must not turn the sent row into a
    skipped duplicate of itself."""
    from concurrent.futures import ThreadPoolExecutor

    from wpnotify.attempt import Result
    from wpnotify.sending.backlog import Backlog
    from wpnotify.sending.dispatch import _Finished, _Run

    store: SqliteState = world["store"]
    sender: Dispatcher = world["sender"]
    now = world["clock"]()
    queue(world, "https://a.example/1", kind="webmention")
    (n,) = store.due(now)
    store.claim_many([n.id], now, now + timedelta(minutes=1))
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # the other worker's outcome
        db.execute("UPDATE notifications SET kind = 'pingback', status = 'sent', "
                   "claimed_by = 'other:1:1' WHERE id = ?", (n.id,))
    db.close()
    finished = [_Finished(n, Result("pingback", "https://a.example/xmlrpc", "ok", None, 5),
                          True)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = _Run(["s"], None, None, Backlog([]), pool, now)
        with store.claiming():
            sender._finish(run, finished)
    row = store.get(n.id)
    assert row is not None and (row.kind, row.status, row.error_code) == (
        "pingback", "sent", None)
