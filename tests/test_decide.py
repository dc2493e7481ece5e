"""The decision on one attempt, as a table: (notification, result, host state, fallback taken)
-> outcome. Pure: no store, no clock, no network; each row names the rule it protects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wpnotify import weblogupdates
from wpnotify.attempt import Result
from wpnotify.errors import SendError
from wpnotify.sending.decide import (
    Outcome,
    Rules,
    decide,
    one_at_a_time,
    pace_key,
    plain,
)
from wpnotify.state import HostState, Notification, Status

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RULES = Rules(delays=(1.0, 60.0, 300.0), wordpress_interval=15.0, jitter=lambda: 1.0)
TARGET = "https://t.example/post/"
PAGE_HOST = "t.example"
SERVICE = "https://rpc.example/RPC2"
XMLRPC = "https://t.example/xmlrpc.php"  # a WordPress endpoint on the target's host
UPDATE = weblogupdates.KIND
PLAIN_RPC = "https://t.example/rpc"  # a pingback server that is not WordPress's


# Payloads as the planner stores them (a kind reads its own, for the resend note).
DEFAULT_PAYLOADS = {UPDATE: weblogupdates.build_update(name="B", home="https://s.example/").to_dict(),
                    "trackback": {"title": "T", "excerpt": "", "blog_name": "B",
                                  "url": "https://s.example/7/"}}


def note(kind: str = "pingback", target: str = TARGET, attempts: int = 0,
         error_code: str | None = None, payload: dict[str, Any] | None = None
         ) -> Notification:
    return Notification(id=1, site="s", post_id=7, kind=kind, target=target,
                        source="https://s.example/7/", status=Status.SENDING, attempts=attempts,
                        endpoint=None, error=None, error_code=error_code, response=None,
                        payload=payload or DEFAULT_PAYLOADS.get(kind, {}), created_at=NOW,
                        updated_at=NOW, sent_at=None, next_attempt_at=None)


def failing(code: str = "timeout", *, permanent: bool = False, skip: bool = False,
            retry_after: float | None = None, unreachable: bool = False,
            endpoint: str | None = None) -> SendError:
    return SendError(f"{code} happened", code=code, permanent=permanent, skip=skip,
                     retry_after=retry_after, unreachable=unreachable, endpoint=endpoint)


def sent(kind: str = "pingback", endpoint: str = PLAIN_RPC) -> Result:
    return Result(kind, endpoint, "ok", None, 12)


def failed(error: SendError, kind: str = "pingback", endpoint: str | None = PLAIN_RPC
           ) -> Result:
    return Result(kind, endpoint, None, error, 12)


def after(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def seen(outcome: Outcome) -> dict[str, Any]:
    """The outcome as plain values (a SendError has no equality), times as seconds from NOW."""
    def secs(moment: datetime | None) -> float | None:
        return None if moment is None else (moment - NOW).total_seconds()

    return {"status": outcome.status, "kind": outcome.kind, "endpoint": outcome.endpoint,
            "response": outcome.response,
            "code": outcome.error.code if outcome.error else None,
            "again": secs(outcome.next_attempt_at),
            "holds": [(h.key, secs(h.until), h.wordpress) for h in outcome.holds],
            "busy": outcome.busy, "brief": outcome.brief, "covers": outcome.covers,
            "put_off": outcome.put_off, "mirror": outcome.mirror}


DEFAULT = {"kind": "pingback", "endpoint": PLAIN_RPC, "response": None, "code": None,
           "again": None, "holds": [], "busy": False, "brief": False, "covers": None,
           "put_off": False, "mirror": False}
UNKNOWN = HostState()
WORDPRESS = HostState(wordpress=True)

ROWS = [
    # (name, notification, result, host state, fallback kind taken, expected beyond DEFAULT)
    ("success: sent, WordPress is told", note(), sent(), UNKNOWN, False,
     {"status": "sent", "response": "ok", "mirror": True}),
    ("permanent error: failed at once", note(), failed(failing("fault-17", permanent=True)),
     UNKNOWN, False, {"status": "failed", "code": "fault-17"}),
    ("skip: skipped, not retried", note(),
     failed(failing("no-endpoint", skip=True), endpoint=None), UNKNOWN, False,
     {"status": "skipped", "code": "no-endpoint", "endpoint": None}),
    ("retry within budget: first wait of the schedule", note(), failed(failing()),
     UNKNOWN, False, {"status": "pending", "code": "timeout", "again": 1.0}),
    ("retry within budget: the schedule's third wait", note(attempts=2), failed(failing()),
     UNKNOWN, False, {"status": "pending", "code": "timeout", "again": 300.0}),
    ("budget spent: failed", note(attempts=3), failed(failing()), UNKNOWN, False,
     {"status": "failed", "code": "timeout"}),
    ("per-code limit (fault-0: 3 attempts): the second still retries",
     note(attempts=1), failed(failing("fault-0")), UNKNOWN, False,
     {"status": "pending", "code": "fault-0", "again": 60.0}),
    ("per-code limit (fault-0: 3 attempts): the third is the last",
     note(attempts=2), failed(failing("fault-0")), UNKNOWN, False,
     {"status": "failed", "code": "fault-0"}),
    ("per-code limit (no-link-in-source: 2 attempts)", note(attempts=1),
     failed(failing("no-link-in-source")), UNKNOWN, False,
     {"status": "failed", "code": "no-link-in-source"}),
    ("Retry-After longer than the schedule wins, and holds the host (429)", note(),
     failed(failing("http-429", retry_after=100.0)), UNKNOWN, False,
     {"status": "pending", "code": "http-429", "again": 100.5,
      "holds": [(PAGE_HOST, 100.0, False)]}),
    ("Retry-After shorter than the schedule never shortens it", note(attempts=1),
     failed(failing("http-429", retry_after=5.0)), UNKNOWN, False,
     {"status": "pending", "code": "http-429", "again": 60.0,
      "holds": [(PAGE_HOST, 5.0, False)]}),
    ("a short Retry-After that set the time: brief wait inside this run", note(),
     failed(failing("http-429", retry_after=5.0)), UNKNOWN, False,
     {"status": "pending", "code": "http-429", "again": 5.5, "brief": True,
      "holds": [(PAGE_HOST, 5.0, False)]}),
    ("Retry-After of 0 still waits the schedule", note(),
     failed(failing("http-429", retry_after=0.0)), UNKNOWN, False,
     {"status": "pending", "code": "http-429", "again": 1.0}),
    ("WordPress host (known): held 15 s after a ping", note(), sent(endpoint=XMLRPC),
     WORDPRESS, False, {"status": "sent", "response": "ok", "mirror": True,
                        "endpoint": XMLRPC, "holds": [(PAGE_HOST, 15.0, True)]}),
    ("WordPress host found by its endpoint: recorded as such, held 15 s", note(),
     sent(endpoint=XMLRPC), UNKNOWN, False,
     {"status": "sent", "response": "ok", "mirror": True, "endpoint": XMLRPC,
      "holds": [(PAGE_HOST, 15.0, True)]}),
    ("WordPress 429: the longer of Retry-After and 15 s", note(),
     failed(failing("fault-429", retry_after=40.0), endpoint=XMLRPC), WORDPRESS, False,
     {"status": "pending", "code": "fault-429", "again": 40.5, "endpoint": XMLRPC,
      "brief": True, "holds": [(PAGE_HOST, 40.0, True)]}),
    ("update service: spaced by its URL, covers the others, WordPress not told",
     note(UPDATE, SERVICE), sent(UPDATE, SERVICE), UNKNOWN, False,
     {"status": "sent", "kind": UPDATE, "endpoint": SERVICE, "response": "ok",
      "holds": [(SERVICE, 300.0, None)], "covers": ("s", UPDATE, SERVICE)}),
    ("update service too fast: its Retry-After holds that URL only",
     note(UPDATE, SERVICE),
     failed(failing("too-fast", retry_after=120.0), UPDATE, SERVICE), UNKNOWN,
     False, {"status": "pending", "kind": UPDATE, "endpoint": SERVICE,
             "code": "too-fast", "again": 120.5, "holds": [(SERVICE, 120.0, None)]}),
    ("update service failing without Retry-After: no hold",
     note(UPDATE, SERVICE), failed(failing(), UPDATE, SERVICE), UNKNOWN,
     False, {"status": "pending", "kind": UPDATE, "endpoint": SERVICE,
             "code": "timeout", "again": 1.0}),
    ("unreachable host: the rest of its queue is put off, by every worker (a hold)", note(),
     failed(failing("connect", unreachable=True, endpoint=TARGET), endpoint=TARGET),
     UNKNOWN, False, {"status": "pending", "code": "connect", "again": 1.0,
                      "endpoint": TARGET, "put_off": True,
                      "holds": [(PAGE_HOST, 1.0, None)]}),
    ("unreachable host held longer already: the hold is not shortened", note(),
     failed(failing("connect", unreachable=True, endpoint=TARGET), endpoint=TARGET),
     HostState(False, NOW + timedelta(hours=1)), False,
     {"status": "pending", "code": "connect", "again": 1.0, "endpoint": TARGET,
      "put_off": True}),
    ("unreachable endpoint on another host: the target's host is not put off", note(),
     failed(failing("connect", unreachable=True, endpoint="https://other.example/rpc"),
            endpoint="https://other.example/rpc"), UNKNOWN, False,
     {"status": "pending", "code": "connect", "again": 1.0,
      "endpoint": "https://other.example/rpc"}),
    ("unreachable on the last attempt: failed, nothing put off", note(attempts=3),
     failed(failing("connect", unreachable=True, endpoint=TARGET), endpoint=TARGET),
     UNKNOWN, False, {"status": "failed", "code": "connect", "endpoint": TARGET}),
    ("fallback kind already taken: a duplicate, skipped", note("webmention"),
     sent("pingback"), UNKNOWN, True,
     {"status": "skipped", "code": "duplicate"}),
    ("fallback kind free: sent as the fallback kind", note("webmention"), sent("pingback"),
     UNKNOWN, False, {"status": "sent", "response": "ok", "mirror": True}),
    ("interrupted previous attempt: the crash stays in the reply",
     note(error_code="interrupted", attempts=1), sent(), UNKNOWN, False,
     {"status": "sent", "mirror": True,
      "response": "ok (after an attempt interrupted by a crash)"}),
    ("resend: why it was sent again stays in the reply",
     note("webmention", payload={"resend": "the link was removed from the post"}),
     sent("webmention"), UNKNOWN, False,
     {"status": "sent", "kind": "webmention", "mirror": True,
      "response": "ok (sent again: the link was removed from the post)"}),
    ("found to be WordPress, pinged already in this cycle: busy, back in line", note(),
     Result("pingback", None, None, None, 0, busy=True), UNKNOWN, False,
     {"status": "pending", "endpoint": None, "busy": True}),
]


@pytest.mark.parametrize(("notification", "result", "host", "kind_taken", "expected"),
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_decide(notification: Notification, result: Result, host: HostState,
                kind_taken: bool, expected: dict[str, Any]) -> None:
    outcome = decide(notification, result, host, NOW, RULES, kind_taken=kind_taken)
    assert seen(outcome) == {**DEFAULT, **expected}


PLAIN_ROWS = [
    ("a plain reply frees its slot at once", note(), sent(), False, True),
    ("busy", note(), Result("pingback", None, None, None, 0, busy=True), False, False),
    ("an update service", note(UPDATE, SERVICE), sent(UPDATE, SERVICE),
     False, False),
    ("a Retry-After", note(), failed(failing(retry_after=1.0)), False, False),
    ("an unreachable host", note(), failed(failing(unreachable=True)), False, False),
    ("a WordPress endpoint", note(), sent(endpoint=XMLRPC), False, False),
    ("a host known to run WordPress", note(), sent(), True, False),
]


@pytest.mark.parametrize(("notification", "result", "wordpress", "expected"),
                         [row[1:] for row in PLAIN_ROWS], ids=[row[0] for row in PLAIN_ROWS])
def test_plain_outcomes_free_their_slot_before_recording(
        notification: Notification, result: Result, wordpress: bool, expected: bool) -> None:
    assert plain(notification, result, wordpress) is expected


@pytest.mark.parametrize(("notification", "wordpress", "expected"), [
    (note(), False, False),
    (note(), True, True),
    (note(UPDATE, SERVICE), False, True),
    (note("trackback", "https://t.example/post/trackback/"), False, True),
    (note("trackback", "https://t.example/tb.cgi?id=3"), False, False),
], ids=["plain host", "WordPress host", "update service", "WordPress trackback URL",
        "other trackback URL"])
def test_one_request_at_a_time_to_wordpress_and_update_services(
        notification: Notification, wordpress: bool, expected: bool) -> None:
    assert one_at_a_time(notification, wordpress) is expected


def test_an_update_service_is_paced_by_its_url_others_by_host() -> None:
    assert pace_key(note(UPDATE, SERVICE)) == SERVICE
    assert pace_key(note()) == PAGE_HOST
