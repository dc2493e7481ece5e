"""The status rows WordPress shows on a post, for each kind and outcome: history's status,
the receiver's answer in plain words (fault 0 without a message is said to give no reason,
never given one), the stable code, and times as the contract writes them. The errors are the
protocol modules' own, from saved receiver replies, so a reworded message breaks this test
instead of the editor's rows."""

from __future__ import annotations

import xmlrpc.client
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from wpnotify import pingback, trackback, weblogupdates, webmention
from wpnotify.errors import SendError
from wpnotify.state import Notification, Status
from wpnotify.statusrows import ANSWER_CHARS, MAX_ROWS, NO_REASON, post_rows, status_row

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 26, 12, 39, 34, 123456, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
KEYS = {"kind", "target", "endpoint", "status", "attempts", "answer", "code", "sent_at",
        "next_at", "updated_at"}


def fault(code: int, text: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True).encode()


def error_of(call: Any, *args: Any) -> SendError:
    with pytest.raises(SendError) as caught:
        call(*args)
    return caught.value


def notification(kind: str = "pingback", status: Status = Status.PENDING, *,
                 attempts: int = 0, error: SendError | None = None, response: str | None = None,
                 sent: bool = False, retry: bool = False) -> Notification:
    return Notification(
        id=1, site="s", post_id=7, kind=kind, target="https://t.example/post/",
        source="https://s.example/7/", status=status, attempts=attempts,
        endpoint=None if status == Status.PENDING and not attempts else "https://t.example/x",
        error=error.message if error else None, error_code=error.code if error else None,
        response=response, payload={}, created_at=NOW, updated_at=NOW,
        sent_at=NOW if sent else None, next_attempt_at=LATER if retry else None)


FAULT_0 = error_of(pingback.parse_reply, 200, (DATA / "pingback-fault-0.xml").read_bytes())
CASES: list[tuple[str, Notification, Status, str | None, str | None]] = [
    # (what, notification, status, answer, code)
    ("planned, never tried: nothing to say", notification(), Status.PENDING, None, None),
    ("being sent right now", notification(status=Status.SENDING, attempts=1),
     Status.SENDING, None, None),
    ("pingback accepted: the receiver's own words",
     notification(status=Status.SENT, attempts=1, sent=True, response=pingback.parse_reply(
         200, (DATA / "pingback-ok.xml").read_bytes())),
     Status.SENT, pingback.parse_reply(200, (DATA / "pingback-ok.xml").read_bytes()), None),
    ("pingback already registered (fault 48)",
     notification(status=Status.SENT, attempts=1, sent=True, response=pingback.parse_reply(
         200, (DATA / "pingback-fault-48.xml").read_bytes())),
     Status.SENT, "already registered", None),
    ("WordPress's fault 0 with no message, retrying", notification(
        attempts=1, error=FAULT_0, retry=True), Status.PENDING, NO_REASON, "fault-0"),
    ("WordPress's fault 0 with no message, out of attempts", notification(
        status=Status.FAILED, attempts=3, error=FAULT_0), Status.FAILED, NO_REASON, "fault-0"),
    ("fault 0 with a message: the message",
     notification(status=Status.FAILED, attempts=3, error=error_of(
         pingback.parse_reply, 200, fault(0, "The source URL and the target URL cannot both "
                                          "point to the same resource."))),
     Status.FAILED, "refused: The source URL and the target URL cannot both point to the same "
                    "resource.", "fault-0"),
    ("a named pingback fault, in words, with its number",
     notification(status=Status.FAILED, attempts=2, error=error_of(
         pingback.parse_reply, 200, fault(17, ""))),
     Status.FAILED, "the receiver did not find the link in our post (fault 17)",
     "no-link-in-source"),
    ("XML-RPC switched off", notification(status=Status.FAILED, attempts=1, error=error_of(
        pingback.parse_reply, 405, b"")), Status.FAILED,
     "the pingback endpoint answered 405 (XML-RPC switched off?)", "http-405"),
    ("trackback accepted (error 0, no message)",
     notification("trackback", Status.SENT, attempts=1, sent=True, response=(
         trackback.parse_reply(200, (DATA / "trackback-ok.xml").read_bytes()))),
     Status.SENT, "accepted", None),
    ("trackback refused: closed",
     notification("trackback", Status.FAILED, attempts=1, error=error_of(
         trackback.parse_reply, 200, (DATA / "trackback-closed.xml").read_bytes())),
     Status.FAILED, "Sorry, trackbacks are closed for this item.", "closed"),
    ("trackback: a reply that is no TrackBack reply",
     notification("trackback", Status.FAILED, attempts=1, error=error_of(
         trackback.parse_reply, 200, b"<html>hello</html>")),
     Status.FAILED, "the receiver's reply is not a TrackBack response", "unverified"),
    ("webmention accepted, to be verified",
     notification("webmention", Status.SENT, attempts=1, sent=True,
                  response=webmention.parse_reply(202, None, b"")),
     Status.SENT, "accepted, to be verified", None),
    ("webmention: no endpoint is a skip",
     notification("webmention", Status.SKIPPED, error=SendError(
         "the target advertises no Webmention or Pingback endpoint", code="no-endpoint",
         permanent=True, skip=True)),
     Status.SKIPPED, "the target advertises no Webmention or Pingback endpoint", "no-endpoint"),
    ("update service ok", notification("weblogupdates", Status.SENT, attempts=1, sent=True,
                                       response="Thanks for the ping."),
     Status.SENT, "Thanks for the ping.", None),
    ("update service fault: as it said",
     notification("weblogupdates", Status.FAILED, attempts=1, error=error_of(
         weblogupdates.parse_reply, 200, fault(4, "bad blog"))),
     Status.FAILED, "fault 4: bad blog", "fault-4"),
]


@pytest.mark.parametrize(("n", "status", "answer", "code"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_row_says_what_history_says_in_plain_words(n: Notification, status: Status,
                                                     answer: str | None,
                                                     code: str | None) -> None:
    row = status_row(n)
    assert set(row) == KEYS
    assert (row["status"], row["answer"], row["code"]) == (status.value, answer, code)
    assert (row["kind"], row["target"], row["attempts"]) == (n.kind, n.target, n.attempts)
    assert row["status"] == n.as_dict()["status"]  # history's word
    assert row["updated_at"] == "2026-11-26T12:39:34Z"
    assert row["sent_at"] == ("2026-11-26T12:39:34Z" if status == Status.SENT else None)


def test_the_next_retry_shows_only_while_pending() -> None:
    waiting = notification(attempts=1, error=FAULT_0, retry=True)
    assert status_row(waiting)["next_at"] == "2026-11-26T12:44:34Z"
    assert status_row(replace(waiting, status=Status.FAILED))["next_at"] is None


def test_a_retried_row_says_it_was_queued_again_and_why_it_had_failed() -> None:
    retried = replace(notification(status=Status.PENDING, attempts=0, error=FAULT_0),
                      error=f"queued again by wpnotify retry; it failed with: {FAULT_0.message}")
    assert status_row(retried)["answer"] == f"queued again; it had failed: {NO_REASON}"


def test_an_answer_is_one_line_and_bounded() -> None:
    long = notification(status=Status.SENT, attempts=1, sent=True,
                        response="line one\n\tline two " + "x" * 1000)
    answer = status_row(long)["answer"]
    assert answer.startswith("line one line two x") and "\n" not in answer
    assert len(answer) == ANSWER_CHARS and answer.endswith("…")


def test_a_posts_rows_are_its_newest_oldest_first() -> None:
    rows = [replace(notification(), id=i, target=f"https://t.example/{i}",
                    created_at=NOW + timedelta(seconds=i)) for i in range(MAX_ROWS + 5)]
    found = post_rows(reversed(rows))
    assert len(found) == MAX_ROWS
    assert found[0]["target"] == "https://t.example/5"
    assert found[-1]["target"] == f"https://t.example/{MAX_ROWS + 4}"
