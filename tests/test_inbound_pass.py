"""The inbound pass over a site's received pings (service/inbound.py), on a real SQLite state,
with a stand-in WordPress and the verification's findings given per source: what is recorded,
when a source is fetched again, and which comments are changed (only held ones a person has
not touched, never to trash)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from wpnotify import verify
from wpnotify.service.inbound import InboundPass
from wpnotify.settings import RetrySettings, Settings, SiteSettings
from wpnotify.sources.records import PingBatch, ReceivedPing, SiteInfo
from wpnotify.state import Action, State, Verdict, open_state

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HOME = "http://blog.example"


class Site:
    """A WordPress's pings and their statuses, as the REST API would show them."""

    def __init__(self, pings: list[ReceivedPing]) -> None:
        self.comments = {p.comment_id: p for p in pings}
        self.status = {p.comment_id: p.status for p in pings}
        self.changes: list[tuple[int, str]] = []
        self.reads: list[int | None] = []

    def info(self) -> SiteInfo:
        return SiteInfo("Blog", HOME)

    def pings(self, after: int | None) -> PingBatch:
        self.reads.append(after)
        found = [p for i, p in sorted(self.comments.items())
                 if (after is None and self.status[i] == "hold")
                 or (after is not None and i > after and self.status[i] in ("hold", "approved"))]
        return PingBatch(found, max(self.comments, default=None))

    def post_links(self, ids: list[int]) -> dict[int, tuple[str, str]]:
        return {i: (f"{HOME}/post-{i}/", "post") for i in ids if i != 404}

    def comment_status(self, comment_id: int) -> str | None:
        return self.status.get(comment_id)

    def set_comment_status(self, comment_id: int, status: str) -> str:
        assert status in ("spam", "approved"), "wpnotify never trashes or deletes"
        self.changes.append((comment_id, status))
        self.status[comment_id] = status
        return status


def ping(comment_id: int, source: str, *, status: str = "hold", post_id: int = 1
         ) -> ReceivedPing:
    return ReceivedPing(comment_id=comment_id, post_id=post_id, kind="pingback", status=status,
                        source=source, author="A blog", author_ip="127.0.0.9",
                        content="[...] a mention [...]", date_gmt=NOW - timedelta(minutes=5))


FINDINGS = {
    "http://good.example/": verify.Finding("verified", "links", "the page links to the post"),
    "http://spam.example/": verify.Finding("unverified", "no-link", "no link to the post"),
    "http://down.example/": verify.Finding("retry", "timeout", "down.example took too long"),
}


@pytest.fixture()
def store(tmp_path: Path) -> Any:
    state = open_state(tmp_path / "state.sqlite3")
    yield state
    state.close()


@pytest.fixture(autouse=True)
def findings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """verify.check answers from FINDINGS by source; the sources checked, in a list."""
    checked: list[str] = []

    def check(http: object, ping: verify.Ping, addresses: object, home: str,
              **options: Any) -> verify.Finding:
        checked.append(ping.source)
        return FINDINGS[ping.source]

    monkeypatch.setattr(verify, "check", check)
    return checked


def run(store: State, wordpress: Site, inbound: str, *, approve: bool = False,
        now: datetime = NOW, delays: tuple[float, ...] = (60, 300)) -> Any:
    site = SiteSettings(name="blog", url=HOME, username="editor", password="pw",  # type: ignore[arg-type]
                        inbound=inbound, approve_verified=approve)
    settings = Settings(sites=(site,), retry=RetrySettings(delays=delays))
    return InboundPass(settings, store, site, wordpress, object(), now,  # type: ignore[arg-type]
                       jitter=lambda: 1.0).run()


def verdicts(store: State) -> dict[int, tuple[str, str | None, str]]:
    return {p.comment_id: (p.verdict.value, p.code, p.action.value)
            for p in store.inbound_list(site="blog", limit=100)}


def test_report_records_every_verdict_and_changes_no_comment(store: State) -> None:
    wordpress = Site([ping(1, "http://good.example/"), ping(2, "http://spam.example/")])
    report = run(store, wordpress, "report")
    assert (report.read, report.verified, report.unverified) == (2, 1, 1)
    assert verdicts(store) == {1: ("verified", "links", "none"),
                               2: ("unverified", "no-link", "none")}
    assert wordpress.changes == []


def test_moderate_marks_the_unverified_spam_and_leaves_the_verified_held(store: State) -> None:
    wordpress = Site([ping(1, "http://good.example/"), ping(2, "http://spam.example/")])
    run(store, wordpress, "moderate")
    assert wordpress.changes == [(2, "spam")]
    assert verdicts(store) == {1: ("verified", "links", "held"),
                               2: ("unverified", "no-link", "spam")}


def test_approve_verified_approves_a_held_ping_that_verifies(store: State) -> None:
    wordpress = Site([ping(1, "http://good.example/"), ping(2, "http://spam.example/")])
    run(store, wordpress, "moderate", approve=True)
    assert sorted(wordpress.changes) == [(1, "approved"), (2, "spam")]


def test_a_ping_a_person_changed_before_the_verdict_is_left_as_they_left_it(
        store: State) -> None:
    """Held when read, approved by a person before wpnotify acted: theirs to keep."""
    wordpress = Site([ping(1, "http://spam.example/")])
    run(store, wordpress, "report")
    wordpress.status[1] = "approved"  # the person
    run(store, wordpress, "moderate", now=NOW + timedelta(minutes=1))
    assert wordpress.changes == []
    entry = store.inbound_list(site="blog")[0]
    assert (entry.action, entry.status_after) == (Action.LEFT, "approved")


def test_a_ping_not_held_when_first_read_is_judged_but_never_changed(store: State) -> None:
    wordpress = Site([ping(1, "http://spam.example/")])
    run(store, wordpress, "moderate")  # first read: the queue as it is (nothing new after)
    wordpress.comments[2] = ping(2, "http://spam.example/", status="approved")
    wordpress.status[2] = "approved"
    run(store, wordpress, "moderate", now=NOW + timedelta(minutes=1))
    assert wordpress.changes == [(1, "spam")]
    assert verdicts(store)[2] == ("unverified", "no-link", "left")


def test_switching_report_to_moderate_acts_on_what_report_judged(store: State) -> None:
    wordpress = Site([ping(1, "http://good.example/"), ping(2, "http://spam.example/")])
    run(store, wordpress, "report")
    run(store, wordpress, "moderate", approve=True, now=NOW + timedelta(minutes=1))
    assert sorted(wordpress.changes) == [(1, "approved"), (2, "spam")]
    run(store, wordpress, "moderate", approve=True, now=NOW + timedelta(minutes=2))
    assert len(wordpress.changes) == 2, "each ping is acted on once"


def test_an_unreachable_source_is_fetched_again_on_the_schedule_then_judged(
        store: State, findings: list[str]) -> None:
    """Never judged on one failure: the retry delays, then "unreachable"."""
    wordpress = Site([ping(1, "http://down.example/")])
    assert run(store, wordpress, "moderate").waiting == 1
    entry = store.inbound_list(site="blog")[0]
    assert (entry.verdict, entry.attempts, entry.next_attempt_at) == (
        Verdict.PENDING, 1, NOW + timedelta(seconds=60))
    run(store, wordpress, "moderate", now=NOW + timedelta(seconds=30))  # not due yet
    assert findings == ["http://down.example/"]
    run(store, wordpress, "moderate", now=NOW + timedelta(seconds=61))
    assert store.inbound_list(site="blog")[0].next_attempt_at == NOW + timedelta(seconds=361)
    assert wordpress.changes == []
    run(store, wordpress, "moderate", now=NOW + timedelta(seconds=400))
    entry = store.inbound_list(site="blog")[0]
    assert (entry.verdict, entry.code, entry.attempts) == (Verdict.UNVERIFIED, "unreachable", 3)
    assert "after 3 attempts" in (entry.reason or "")
    assert wordpress.changes == [(1, "spam")]


def test_a_ping_on_a_post_that_is_gone_is_skipped_and_left_alone(store: State) -> None:
    wordpress = Site([ping(1, "http://spam.example/", post_id=404)])
    run(store, wordpress, "moderate")
    assert verdicts(store) == {1: ("skipped", "post-gone", "none")}
    assert wordpress.changes == []


def test_each_ping_is_read_and_judged_once(store: State, findings: list[str]) -> None:
    """The cursor: a later pass asks only for newer comments, and judges nothing twice."""
    wordpress = Site([ping(1, "http://good.example/"), ping(2, "http://spam.example/")])
    run(store, wordpress, "report")
    run(store, wordpress, "report", now=NOW + timedelta(minutes=1))
    assert wordpress.reads == [None, 2]
    assert sorted(findings) == ["http://good.example/", "http://spam.example/"]


def test_a_ping_whose_check_trips_a_bug_is_retried_then_left_unjudged(
        store: State, monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolated: the other pings are judged; never spam for wpnotify's own failure."""
    def check(http: object, ping: verify.Ping, *args: Any, **options: Any) -> verify.Finding:
        if ping.source == "http://bug.example/":
            raise KeyError("a bug")
        return FINDINGS[ping.source]

    monkeypatch.setattr(verify, "check", check)
    wordpress = Site([ping(1, "http://bug.example/"), ping(2, "http://spam.example/")])
    run(store, wordpress, "moderate", delays=(1,))
    assert verdicts(store) == {1: ("pending", "check-failed", "none"),
                               2: ("unverified", "no-link", "spam")}
    run(store, wordpress, "moderate", now=NOW + timedelta(seconds=2), delays=(1,))
    assert verdicts(store)[1] == ("skipped", "check-failed", "none")
    assert wordpress.changes == [(2, "spam")]


def test_a_pass_judges_until_its_time_is_up_and_leaves_the_rest_as_they_were(
        store: State, findings: list[str]) -> None:
    """The daemon's one job thread has other sites: a pass stops starting new groups of
    fetches once its budget is spent; the rest wait for the next pass, no attempt counted."""
    wordpress = Site([ping(i, "http://spam.example/") for i in range(1, 21)])
    ticks = iter(range(1000))
    site = SiteSettings(name="blog", url=HOME, username="editor", password="pw",  # type: ignore[arg-type]
                        inbound="report")
    settings = Settings(sites=(site,))
    report = InboundPass(settings, store, site, wordpress, object(), NOW,  # type: ignore[arg-type]
                         jitter=lambda: 1.0, budget=2.5,
                         monotonic=lambda: float(next(ticks))).run()
    assert (report.unverified, report.deferred) == (16, 4)  # two groups of 8 in the budget
    waiting = [p for p in store.inbound_list(site="blog", limit=100)
               if p.verdict is Verdict.PENDING]
    assert len(waiting) == 4 and all(p.attempts == 0 for p in waiting)
    run(store, wordpress, "report", now=NOW + timedelta(minutes=1))
    assert len(findings) == 20


def test_attempts_count_the_fetches_of_the_source_only(store: State,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A ping judged without reading its page (its host denied, a page of the site itself)
    has no attempt; one whose page was read has one."""
    own = verify.Finding("skipped", "own-site", "a page of this site")
    denied = verify.Finding("unverified", "host-denied", "host matches inbound_deny_hosts")
    answers = {"http://blog.example/?s=x": own, "http://denied.example/": denied,
               **FINDINGS}
    monkeypatch.setattr(verify, "check",
                        lambda http, ping, *args, **kwargs: answers[ping.source])
    wordpress = Site([ping(1, "http://blog.example/?s=x"), ping(2, "http://denied.example/"),
                      ping(3, "http://spam.example/")])
    run(store, wordpress, "report")
    assert {p.comment_id: p.attempts for p in store.inbound_list(site="blog")} == {
        1: 0, 2: 0, 3: 1}
