"""What every state backend must do: unique notifications, claim-before-send, recovery after a
crash, history, site and host state, typed records. A backend's test module provides the
``backend`` fixture (a ``Backend``) and imports these tests (``from state_contract import *``);
what only one backend has (its file, its query plans) is tested in that module alone."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

import pytest

from wpnotify.errors import SendError, StateError
from wpnotify.state import (
    Action,
    Finished,
    HostState,
    InboundPing,
    Queued,
    State,
    Status,
    Verdict,
)
from wpnotify.state.processes import process_token, this_process
from wpnotify.times import wp_time

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

class Backend(Protocol):
    """How the contract reaches a backend: a state, another one on the same data (a second
    process), and a claim forged as another process's (which no API writes)."""

    def open(self) -> State: ...

    def forge_claim(self, notification_id: int, token: str) -> None: ...


@pytest.fixture()
def state(backend: Backend) -> State:
    return backend.open()


def in_a_minute(attempts: int, interrupted_before: bool) -> datetime:
    return NOW + timedelta(minutes=1)


def dead_process() -> str:
    """The claim token of a process of this host that has ended."""
    child = subprocess.Popen(["sleep", "30"])
    token = process_token(child.pid)
    child.kill()
    child.wait()
    assert token is not None
    return token


def test_due_is_filtered_and_limited(state: State) -> None:
    for site in ("a", "b"):
        for post in range(1, 6):
            state.add(site, post, "pingback", f"https://t/{post}", "https://s/", NOW)
    assert {(n.site, n.post_id) for n in state.due(NOW, ["a"], {2, 3})} == {("a", 2), ("a", 3)}
    assert len(state.due(NOW, ["a", "b"], limit=4)) == 4
    assert state.due(NOW, ["a"], set()) == [] and state.due(NOW, []) == []


def test_threads_share_one_state(state: State) -> None:
    """The sender's workers and its coordinating thread use one state at once."""
    def work(i: int) -> bool:
        state.add("s", i, "pingback", f"https://t/{i}", "https://s/", NOW)
        with state.atomic():  # nested units join the outer one
            claimed = state.claim(state.due(NOW, ["s"], {i})[0].id, NOW)
            state.finish(state.history(post_id=i)[0].id, Status.SENT, NOW)
        return claimed

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(200)))
    assert state.counts("s")[Status.SENT] == 200


def test_one_notification_per_site_post_kind_and_target(state: State) -> None:
    assert state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    assert not state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    assert state.add("s", 1, "trackback", "https://t/", "https://s/1", NOW)
    assert state.add("s", 2, "pingback", "https://t/", "https://s/2", NOW)
    assert state.add("other", 1, "pingback", "https://t/", "https://s/1", NOW)
    assert state.targets_by_kind("s", [1, 2]) == {
        1: {"pingback": {"https://t/"}, "trackback": {"https://t/"}},
        2: {"pingback": {"https://t/"}}}


def test_only_one_claim_wins(state: State, backend: Backend) -> None:
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = state.due(NOW)
    rival = backend.open()
    assert state.claim(row.id, NOW)
    assert not rival.claim(row.id, NOW)
    claimed = rival.get(row.id)
    assert claimed is not None and (claimed.status, claimed.attempts) == (Status.SENDING, 1)
    assert state.due(NOW) == []  # in flight, not due


def test_finish_records_the_outcome(state: State) -> None:
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = state.due(NOW)
    state.claim(row.id, NOW)
    later = NOW + timedelta(minutes=1)
    state.finish(row.id, Status.SENT, later, endpoint="https://t/xmlrpc.php", response="ok")
    done = state.get(row.id)
    assert done is not None
    assert (done.status, done.endpoint, done.response, done.sent_at) == (
        Status.SENT, "https://t/xmlrpc.php", "ok", later)
    assert done.as_dict()["sent_at"] == "2026-11-26T12:01:00.000000Z"


def test_an_unknown_status_is_refused(state: State) -> None:
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = state.due(NOW)
    with pytest.raises(ValueError, match="bogus"):
        state.finish(row.id, "bogus", NOW)  # type: ignore[arg-type]  # what the type forbids


def test_pending_rows_wait_for_their_time(state: State) -> None:
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = state.due(NOW)
    state.claim(row.id, NOW)
    state.finish(row.id, Status.PENDING, NOW, error="503", error_code="http-503",
                 next_attempt_at=NOW + timedelta(minutes=5))
    assert state.due(NOW + timedelta(minutes=4)) == []
    assert [r.id for r in state.due(NOW + timedelta(minutes=5))] == [row.id]
    assert state.next_retry("s") == NOW + timedelta(minutes=5)


def test_a_claim_by_a_dead_process_is_recovered_at_once(state: State,
                                                        backend: Backend) -> None:
    state.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
    state.add("s", 1, "pingback", "https://t/b", "https://s/1", NOW)
    mine, theirs = (r.id for r in state.due(NOW))
    state.claim(mine, NOW)
    state.claim(theirs, NOW)
    assert state.get(mine).claimed_by == this_process()  # type: ignore[union-attr]  # it exists
    backend.forge_claim(theirs, dead_process())
    assert state.recover_interrupted(NOW, timedelta(minutes=10), in_a_minute) == (1, 0)
    again = state.get(theirs)
    assert again is not None and again.status == Status.PENDING
    assert again.next_attempt_at == NOW + timedelta(minutes=1)  # backed off
    assert state.get(mine).status == Status.SENDING  # type: ignore[union-attr]  # alive: stands


def test_rows_left_in_flight_by_a_crash_are_sent_again(state: State) -> None:
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = state.due(NOW)
    state.claim(row.id, NOW)
    assert state.recover_interrupted(NOW + timedelta(minutes=5), timedelta(minutes=10),
                                     in_a_minute) == (0, 0)
    assert state.recover_interrupted(NOW + timedelta(minutes=11), timedelta(minutes=10),
                                     in_a_minute) == (1, 0)
    again = state.get(row.id)
    assert again is not None
    assert (again.status, again.error_code, again.attempts) == (Status.PENDING, "interrupted", 1)


def test_a_notification_that_keeps_killing_its_sender_backs_off_then_fails(
        state: State, backend: Backend) -> None:
    """Each run that dies sending it counts an attempt; the next run does not retry it at
    once (other work goes first) but after the schedule's wait, and the last attempt's
    interruption fails it, saying what happened."""
    from wpnotify.sending.decide import next_attempt

    delays = (60.0, 300.0, 1800.0)
    interrupted = SendError("x", code="interrupted", permanent=False)
    state.add("s", 1, "pingback", "https://hostile.example/", "https://s/1", NOW)
    (row,) = state.due(NOW)
    now, token = NOW, dead_process()
    told: list[bool] = []
    for attempt in range(1, len(delays) + 2):
        assert [n.id for n in state.due(now)] == [row.id]
        assert state.claim(row.id, now)
        backend.forge_claim(row.id, token)

        def again(attempts: int, before: bool, now: datetime = now) -> datetime | None:
            told.append(before)
            return next_attempt(interrupted, attempts, now, delays, jitter=lambda: 1.0)

        if attempt <= len(delays):
            assert state.recover_interrupted(now, timedelta(minutes=10), again) == (1, 0)
            left = state.get(row.id)
            assert left is not None
            assert (left.status, left.attempts, left.error_code) == (Status.PENDING, attempt,
                                                                     "interrupted")
            assert left.next_attempt_at == now + timedelta(seconds=delays[attempt - 1])
            assert state.due(now) == []  # not at once
            assert f"attempt {attempt} was interrupted" in (left.error or "")
            now += timedelta(seconds=delays[attempt - 1])
        else:
            assert state.recover_interrupted(now, timedelta(minutes=10), again) == (0, 1)
    assert told == [False, True, True, True]  # whether the attempt before was interrupted too
    done = state.get(row.id)
    assert done is not None
    assert (done.status, done.attempts, done.error_code) == (Status.FAILED, 4, "interrupted")
    assert "died or was killed while sending it" in (done.error or "")
    assert f"wpnotify retry {row.id}" in (done.error or "")
    assert state.due(now + timedelta(days=30)) == []


def test_retries_due_counts_tried_pending_rows_whose_time_has_come(state: State) -> None:
    """The metrics' due retries: pending, tried at least once, due by now; of one site."""
    for post in range(1, 6):
        state.add("s", post, "pingback", f"https://t/{post}", "https://s/", NOW)
    state.add("other", 1, "pingback", "https://t/1", "https://s/", NOW)
    rows = {n.post_id: n for n in state.due(NOW, ["s"])}
    for post, status, wait in ((1, Status.PENDING, 5), (2, Status.PENDING, 60),
                               (3, Status.FAILED, 0), (4, Status.SENT, 0)):
        state.claim(rows[post].id, NOW)
        state.finish(rows[post].id, status, NOW, error="x", error_code="x",
                     next_attempt_at=NOW + timedelta(minutes=wait))
    # Post 5 was never tried: put off (a host that failed moments ago) is no retry.
    state.defer(rows[5].id, NOW, NOW + timedelta(minutes=1), "host down", "host-unreachable")
    (other,) = state.due(NOW, ["other"])
    state.claim(other.id, NOW)
    state.finish(other.id, Status.PENDING, NOW, error="x", error_code="x",
                 next_attempt_at=NOW)
    assert state.retries_due("s", NOW) == 0
    assert state.retries_due("s", NOW + timedelta(minutes=5)) == 1
    assert state.retries_due("s", NOW + timedelta(hours=2)) == 2
    assert state.retries_due("other", NOW) == 1 and state.retries_due("none", NOW) == 0


def test_history_filters_and_orders_newest_first(state: State) -> None:
    for minute, (site, post, kind) in enumerate([("a", 1, "pingback"), ("a", 1, "trackback"),
                                                 ("a", 2, "pingback"), ("b", 1, "pingback")]):
        state.add(site, post, kind, f"https://t/{minute}", "https://s/", NOW +
                  timedelta(minutes=minute))
    assert [r.target for r in state.history()] == [f"https://t/{i}" for i in (3, 2, 1, 0)]
    assert [r.target for r in state.history(site="a", post_id=1)] == ["https://t/1",
                                                                      "https://t/0"]
    assert [r.target for r in state.history(kind="trackback")] == ["https://t/1"]
    assert [r.target for r in state.history(limit=1)] == ["https://t/3"]
    assert state.history(status=Status.SENT) == []


def test_site_state_keeps_cursor_baseline_and_bridge(state: State) -> None:
    assert state.site("s") is None
    cursor = wp_time("2026-11-26T11:00:00")
    state.record_poll("s", NOW, cursor=cursor, bridge=True, baseline=[(4, cursor)])
    state.record_poll("s", NOW + timedelta(minutes=1), error="down")
    site = state.site("s")
    assert site is not None
    assert (site.cursor, site.bridge, site.last_error) == (cursor, True, "down")
    assert site.baseline == frozenset({(4, cursor)})
    assert site.last_ok_at == NOW and site.last_poll_at == NOW + timedelta(minutes=1)


def test_retry_puts_failed_notifications_back_with_a_fresh_budget(state: State) -> None:
    for target in ("https://t/1", "https://t/2"):
        state.add("s", 1, "pingback", target, "https://s/1", NOW, status=Status.FAILED,
                  error="fault 0", error_code="fault-0")
    state.add("s", 1, "pingback", "https://t/3", "https://s/1", NOW)
    first, second, pending = sorted(r.id for r in state.history())
    with pytest.raises(StateError, match=f"{pending} \\(pending\\)"):
        state.requeue(ids=[first, pending])
    with pytest.raises(StateError, match="999 \\(no such notification\\)"):
        state.requeue(ids=[999])
    assert state.requeue(ids=[first]) == 1
    row = state.get(first)
    assert row is not None and (row.status, row.attempts) == (Status.PENDING, 0)
    assert "fault 0" in (row.error or "")
    assert state.requeue(ids=[], site="other") == 0
    assert state.requeue(ids=[], since=NOW + timedelta(days=3650)) == 0
    assert state.requeue(ids=[]) == 1
    assert state.get(second).status == Status.PENDING  # type: ignore[union-attr]  # it exists


def test_a_late_write_after_close_says_what_happened(state: State) -> None:
    """The daemon's shutdown grace ran out and the state was closed under a worker: its
    write says so, and not "restore it from a backup" (the file is fine)."""
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = state.due(NOW)
    state.claim(row.id, NOW)
    state.close()
    late: Callable[[], object]
    for late in (lambda: state.finish(row.id, Status.SENT, NOW), lambda: state.get(row.id)):
        with pytest.raises(StateError) as caught:
            late()
        assert "closed as wpnotify shut down" in str(caught.value)
        assert "tried again after its back-off" in str(caught.value)
        assert "backup" not in str(caught.value)


# --- what the typed state adds ------------------------------------------------------------

def test_times_round_trip_exactly(state: State) -> None:
    """Microseconds and the UTC zone survive the store; a time in another zone comes back
    as the same instant in UTC."""
    odd = datetime(2026, 11, 26, 12, 0, 1, 123456, tzinfo=UTC)
    state.add("s", 1, "pingback", "https://t/", "https://s/1", odd)
    (row,) = state.history()
    assert row.created_at == odd and row.updated_at == odd and row.created_at.tzinfo == UTC
    state.claim(row.id, odd)
    state.finish(row.id, Status.PENDING, odd, next_attempt_at=odd + timedelta(microseconds=1))
    again = state.get(row.id)
    assert again is not None and again.next_attempt_at == odd + timedelta(microseconds=1)
    local = odd.astimezone(timezone(timedelta(hours=5)))
    state.set_host("h.example", wordpress=True, not_before=local)
    assert state.host("h.example") == HostState(True, odd)
    assert state.hosts({"h.example", "unknown.example"}) == {"h.example": HostState(True, odd)}
    assert state.host("unknown.example") == HostState(False, None)


def test_site_times_keep_wordpress_seconds(state: State) -> None:
    """A cursor is WordPress's time, to the second: that is what is kept."""
    state.record_poll("s", NOW, cursor=NOW + timedelta(seconds=1, microseconds=999),
                      deletions_seen=NOW)
    site = state.site("s")
    assert site is not None and site.cursor == NOW + timedelta(seconds=1)
    assert site.deletions_seen == NOW


def test_status_members_are_the_stored_words(state: State) -> None:
    assert [s.value for s in Status] == ["pending", "sending", "sent", "failed", "skipped"]
    assert list(state.counts("none")) == list(Status)
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW, status=Status.SKIPPED)
    (row,) = state.history(status=Status.SKIPPED)
    assert row.status is Status.SKIPPED and row.as_dict()["status"] == "skipped"


def kinds_by_target(state: State, site: str, post_id: int) -> dict[str, set[str]]:
    """target -> the kinds that have a row for it, of one post (read through ``history``)."""
    found: dict[str, set[str]] = {}
    for row in state.history(site=site, post_id=post_id, limit=1000):
        found.setdefault(row.target, set()).add(row.kind)
    return found


def test_a_second_kind_for_a_target_is_refused_without_failing_the_unit(state: State) -> None:
    """A fallback to a kind another row of the target holds is an answer (not recorded),
    not an error: the outcome recorded after it in the same unit of work is kept, and the
    refused row keeps its own kind."""
    state.add("s", 1, "webmention", "https://t/", "https://s/1", NOW)
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    state.add("s", 1, "webmention", "https://u/", "https://s/1", NOW)
    taken, free = sorted(r.id for r in state.history(kind="webmention"))
    assert state.claim_many([taken, free], NOW, NOW + timedelta(seconds=30)) == {taken, free}
    with state.atomic():
        assert state.finish_many([Finished(taken, Status.SENT, kind="pingback")], NOW) == set()
        state.finish(taken, Status.SKIPPED, NOW, error="dup", error_code="duplicate")
    refused = state.get(taken)
    assert refused is not None and (refused.status, refused.kind) == (
        Status.SKIPPED, "webmention")
    assert state.finish_many([Finished(free, Status.SENT, kind="pingback")], NOW) == {free}
    assert kinds_by_target(state, "s", 1) == {
        "https://t/": {"webmention", "pingback"}, "https://u/": {"pingback"}}


def test_finish_many_writes_the_kind_each_went_out_as_unless_another_row_has_it(
        state: State) -> None:
    """In order: the second fallback to the same kind for one target is not written (the
    first took the kind), nor one whose kind a row already holds; nothing of either, their
    outcome included (the caller decides it again, as a duplicate)."""
    for target in ("https://t/", "https://u/", "https://v/"):
        state.add("s", 1, "webmention", target, "https://s/1", NOW)
    state.add("s", 1, "trackback", "https://t/", "https://s/1", NOW)
    state.add("s", 1, "pingback", "https://v/", "https://s/1", NOW)
    ids = {(r.kind, r.target): r.id for r in state.history(limit=10)}
    t, u, v = (ids[("webmention", f"https://{x}/")] for x in "tuv")
    tb = ids[("trackback", "https://t/")]
    for i in (t, u, v, tb):
        assert state.claim(i, NOW)
    assert state.finish_many([Finished(i, Status.SENT, kind="pingback")
                              for i in (t, tb, u, v)], NOW) == {t, u}
    assert kinds_by_target(state, "s", 1) == {
        "https://t/": {"pingback", "trackback"}, "https://u/": {"pingback"},
        "https://v/": {"webmention", "pingback"}}
    statuses = {i: n.status for i in (t, u, v, tb) if (n := state.get(i)) is not None}
    assert statuses == {t: Status.SENT, u: Status.SENT, v: Status.SENDING, tb: Status.SENDING}
    assert state.finish_many([Finished(tb, Status.SKIPPED, error="dup", error_code="duplicate")],
                             NOW) == {tb}


def test_finish_many_records_each_outcome_and_skips_a_claim_lost(state: State,
                                                                 backend: Backend) -> None:
    for post in (1, 2, 3):
        state.add("s", post, "pingback", f"https://t/{post}", "https://s/", NOW)
    a, b, c = (state.history(post_id=p)[0].id for p in (1, 2, 3))
    for i in (a, b, c):
        assert state.claim(i, NOW)
    backend.forge_claim(c, "another-host:1:1")  # taken over by another worker meanwhile
    later = NOW + timedelta(minutes=5)
    kept = state.finish_many([
        Finished(a, Status.SENT, endpoint="https://t/xmlrpc", response="ok"),
        Finished(b, Status.PENDING, error="timed out", error_code="timeout",
                 next_attempt_at=later),
        Finished(c, Status.SENT)], NOW)
    assert kept == {a, b}
    sent, retry, lost = state.get(a), state.get(b), state.get(c)
    assert sent is not None and retry is not None and lost is not None
    assert (sent.status, sent.endpoint, sent.response, sent.sent_at) == (
        Status.SENT, "https://t/xmlrpc", "ok", NOW)
    assert (retry.status, retry.error_code, retry.next_attempt_at, retry.sent_at) == (
        Status.PENDING, "timeout", later, None)
    assert lost.status == Status.SENDING
    assert state.finish_many([], NOW) == set()
    with pytest.raises(ValueError):
        state.finish_many([Finished(a, "delivered")], NOW)  # type: ignore[arg-type]


def test_add_many_queues_the_new_and_says_which(state: State) -> None:
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    added = state.add_many("s", [
        Queued(1, "pingback", "https://t/", "https://s/1"),
        Queued(1, "webmention", "https://t/", "https://s/1", {"source": "https://s/1"}),
        Queued(2, "trackback", "https://u/", "https://s/2", status=Status.SKIPPED,
               error="too many", error_code="too-many")], NOW)
    assert added == {(1, "webmention", "https://t/"), (2, "trackback", "https://u/")}
    assert state.targets_by_kind("s", [1, 2, 3]) == {
        1: {"pingback": {"https://t/"}, "webmention": {"https://t/"}},
        2: {"trackback": {"https://u/"}}}
    (skipped,) = state.history(kind="trackback")
    assert (skipped.status, skipped.error_code, skipped.source) == (
        Status.SKIPPED, "too-many", "https://s/2")
    (mention,) = state.history(kind="webmention")
    assert mention.payload == {"source": "https://s/1"}
    assert state.add_many("s", [], NOW) == set()
    assert state.targets_by_kind("s", []) == {} and state.targets_by_kind("other", [1]) == {}


def test_targets_are_read_for_many_posts_at_once(state: State) -> None:
    """More posts than an engine takes parameters in one statement."""
    state.add_many("s", [Queued(post, "pingback", f"https://t/{post}", "https://s/")
                         for post in range(1, 1201)], NOW)
    found = state.targets_by_kind("s", range(1, 1202))
    assert len(found) == 1200 and found[1200] == {"pingback": {"https://t/1200"}}


def test_a_claim_reads_hosts_and_what_is_in_flight_at_once(state: State) -> None:
    state.add("s", 1, "pingback", "https://t.example/a", "https://s/1", NOW)
    state.add("s", 2, "pingback", "https://u.example/b", "https://s/2", NOW)
    (first, _) = state.due(NOW)
    assert state.claim(first.id, NOW)
    state.set_host("t.example", wordpress=True)
    hosts, flying = state.claim_view({"t.example", "nowhere.example"}, NOW)
    assert hosts == state.hosts({"t.example", "nowhere.example"})
    assert hosts["t.example"].wordpress and "nowhere.example" not in hosts
    assert flying == [("https://t.example/a", this_process())]  # not the pending one
    assert state.claim_view(set(), NOW) == ({}, flying)


def test_a_claim_says_which_kinds_each_link_has(state: State) -> None:
    """claim_with_kinds claims as claim_many does, with the kinds of each claimed row's
    post and target (its own included)."""
    state.add("s", 1, "webmention", "https://t/", "https://s/1", NOW)
    state.add("s", 1, "trackback", "https://t/", "https://s/1", NOW)
    state.add("s", 2, "webmention", "https://u/", "https://s/2", NOW)
    state.add("s", 3, "pingback", "https://v/", "https://s/3", NOW)
    ids = {(r.post_id, r.kind): r.id for r in state.history(limit=10)}
    assert state.claim(ids[(3, "pingback")], NOW)  # claimed already: not again
    lease = NOW + timedelta(seconds=30)
    won = state.claim_with_kinds([ids[(1, "webmention")], ids[(2, "webmention")],
                                  ids[(3, "pingback")]], NOW, lease)
    assert won == {ids[(1, "webmention")]: {"webmention", "trackback"},
                   ids[(2, "webmention")]: {"webmention"}}
    claimed = state.get(ids[(1, "webmention")])
    assert claimed is not None and (claimed.status, claimed.attempts, claimed.lease_until) == (
        Status.SENDING, 1, lease)
    assert state.claim_with_kinds([], NOW, lease) == {}


def test_a_failed_unit_of_work_keeps_nothing(state: State) -> None:
    with pytest.raises(RuntimeError), state.atomic():
        state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
        raise RuntimeError("midway")
    assert state.history() == []


def test_the_pinged_outbox_keeps_urls_until_told(state: State) -> None:
    state.queue_pinged_many([("s", 2, "https://b/"), ("s", 2, "https://a/")], NOW)
    state.queue_pinged_many([("s", 1, "https://c/")], NOW)
    assert state.pinged_waiting("s", 2) == {1: ["https://c/"], 2: ["https://a/"]}
    state.pinged_told("s", {1: ["https://c/"]})
    assert state.pinged_waiting("s", 10) == {2: ["https://a/", "https://b/"]}


def test_the_pinged_outbox_is_read_for_some_posts_only(state: State) -> None:
    """A worker's mid-cycle write-back: the links of its own posts."""
    state.queue_pinged_many([("s", 1, "https://a/"), ("s", 2, "https://b/"),
                             ("s", 3, "https://c/"), ("t", 1, "https://d/")], NOW)
    assert state.pinged_waiting("s", 10, {3, 1}) == {1: ["https://a/"], 3: ["https://c/"]}
    assert state.pinged_waiting("s", 10, set()) == {}


def test_scheduled_posts_come_due_at_their_time(state: State) -> None:
    state.watch("s", 2, NOW + timedelta(minutes=1))
    state.watch("s", 1, NOW)
    assert state.scheduled_due("s", NOW) == [1]
    assert state.scheduled_due("s", NOW + timedelta(minutes=1)) == [1, 2]
    state.unwatch("s", [1])
    assert state.scheduled_due("s", NOW + timedelta(minutes=1)) == [2]


def waiting_posts(state: State, site: str = "s") -> list[int]:
    return [post for post, _ in state.status_waiting(site, 100)]


def test_every_change_to_a_notification_marks_its_post(state: State) -> None:
    """Planned, claimed, released, finished, deferred, settled, requeued, finished as a
    fallback's kind, sent again: each marks the post for a status push, whoever made the
    change."""
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    state.add("s", 2, "webmention", "https://u/", "https://s/2", NOW)
    state.add("other", 1, "pingback", "https://t/", "https://s/1", NOW)
    assert sorted(waiting_posts(state)) == [1, 2] and waiting_posts(state, "other") == [1]
    first, second = state.history(site="s", post_id=1)[0].id, state.history(post_id=2)[0].id
    changes: list[Callable[[], object]] = [
        lambda: state.claim(first, NOW), lambda: state.release(first),
        lambda: state.defer(first, NOW, NOW, "host down", "host-unreachable"),
        lambda: state.claim(first, NOW),
        lambda: state.finish(first, Status.FAILED, NOW, error="fault 0", error_code="fault-0"),
        lambda: state.requeue(ids=[first]),
        lambda: state.requeue_for_resend("s", 1, "pingback", "https://t/", NOW),
        lambda: state.settle("s", "pingback", "https://t/", NOW, "covered"),
        lambda: state.finish_many([Finished(second, Status.SENT, kind="pingback")], NOW),
        lambda: state.resend(second, NOW, {})]
    for change in changes:
        state.status_told("s", state.status_waiting("s", 100))
        assert waiting_posts(state) == []
        change()
        assert waiting_posts(state), change


def test_the_most_recently_changed_posts_are_told_first(state: State) -> None:
    for post in (3, 1, 2):
        state.add("s", post, "pingback", f"https://t/{post}", "https://s/", NOW)
    state.finish(state.history(post_id=3)[0].id, Status.SENT, NOW)
    assert waiting_posts(state) == [3, 2, 1]
    assert [post for post, _ in state.status_waiting("s", 2)] == [3, 2]


def test_settled_marks_are_of_posts_with_nothing_waiting_or_in_flight(state: State) -> None:
    for post in (1, 2, 3):
        state.add("s", post, "pingback", "https://t/", f"https://s/{post}", NOW)
    state.add("s", 1, "trackback", "https://tb/", "https://s/1", NOW)
    for n in state.history(site="s"):
        if n.post_id == 1 or (n.post_id == 2):
            state.claim(n.id, NOW)
            if n.kind != "trackback":
                state.finish(n.id, Status.SENT if n.post_id == 1 else Status.FAILED, NOW)
    # post 1: one sent, one in flight; post 2: failed (done); post 3: pending
    assert [post for post, _ in state.status_waiting("s", 10, settled=True)] == [2]
    assert sorted(post for post, _ in state.status_waiting("s", 10)) == [1, 2, 3]


def test_a_cycles_end_leaves_the_posts_being_sent_or_due_to_other_workers(
        state: State, backend: Backend) -> None:
    """Workers sending together: a post with a notification another worker has in flight,
    or one due to be sent, is left to whoever sends it (its outcome marks the post again);
    this worker's own in flight, done, and retrying-later posts are not."""
    for post in (1, 2, 3, 4, 5):
        state.add("s", post, "pingback", "https://t/", f"https://s/{post}", NOW)
    state.add("s", 1, "trackback", "https://tb/", "https://s/1", NOW)
    ids = {(n.post_id, n.kind): n.id for n in state.history(site="s")}
    for post in (1, 2, 3, 5):
        state.claim(ids[(post, "pingback")], NOW)
        state.finish(ids[(post, "pingback")], Status.SENT, NOW)
    state.claim(ids[(1, "trackback")], NOW)
    backend.forge_claim(ids[(1, "trackback")], "elsewhere.example:4242:77")
    state.add("s", 2, "trackback", "https://tb/", "https://s/2", NOW)
    state.claim(state.history(site="s", post_id=2, kind="trackback")[0].id, NOW)  # mine
    state.add("s", 5, "trackback", "https://tb/", "https://s/5", NOW)
    later = state.history(site="s", post_id=5, kind="trackback")[0].id
    state.claim(later, NOW)
    state.finish(later, Status.PENDING, NOW, error="timed out", error_code="timeout",
                 next_attempt_at=NOW + timedelta(minutes=5))
    left = state.status_waiting("s", 10, leave_to_others=(this_process(), NOW))
    assert sorted(post for post, _ in left) == [2, 3, 5]  # 1: theirs in flight; 4: due
    assert sorted(post for post, _ in state.status_waiting("s", 10)) == [1, 2, 3, 4, 5]


def test_a_post_changed_while_its_push_was_in_flight_is_pushed_again(state: State) -> None:
    """No lost update: the mark read before the push is removed only if unchanged."""
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    state.add("s", 2, "pingback", "https://t/", "https://s/2", NOW)
    read = state.status_waiting("s", 100)
    state.claim(state.history(post_id=1)[0].id, NOW)  # while WordPress was being told
    state.status_told("s", read)
    assert waiting_posts(state) == [1]
    state.status_told("s", state.status_waiting("s", 100))
    assert waiting_posts(state) == []


def test_a_posts_rows_are_every_kind_oldest_first(state: State) -> None:
    state.add("s", 1, "webmention", "https://t/", "https://s/1", NOW + timedelta(seconds=1))
    state.add("s", 1, "trackback", "https://tb/", "https://s/1", NOW)
    state.add("s", 2, "pingback", "https://t/", "https://s/2", NOW)
    state.add("other", 1, "pingback", "https://t/", "https://s/1", NOW)
    rows = state.post_rows("s", [1, 3])
    assert list(rows) == [1]
    assert [(n.kind, n.target) for n in rows[1]] == [("trackback", "https://tb/"),
                                                     ("webmention", "https://t/")]


def test_a_resend_request_requeues_with_a_fresh_budget(state: State) -> None:
    state.add("s", 1, "trackback", "https://tb/", "https://s/1", NOW)
    n = state.history()[0]
    state.claim(n.id, NOW)
    assert not state.requeue_for_resend("s", 1, "trackback", "https://tb/", NOW)  # in flight
    state.finish(n.id, Status.FAILED, NOW, endpoint="https://tb/", error="refused",
                 error_code="refused")
    later = NOW + timedelta(hours=1)
    assert state.requeue_for_resend("s", 1, "trackback", "https://tb/", later)
    again = state.get(n.id)
    assert again is not None
    assert (again.status, again.attempts, again.next_attempt_at, again.error,
            again.error_code) == (Status.PENDING, 0, later, None, None)
    assert [d.id for d in state.due(later, ["s"])] == [n.id]
    assert not state.requeue_for_resend("s", 1, "pingback", "https://tb/", later)  # no such
    assert not state.requeue_for_resend("other", 1, "trackback", "https://tb/", later)
    state.claim(n.id, later)
    state.finish(n.id, Status.SENT, later)
    assert not state.requeue_for_resend("s", 1, "trackback", "https://tb/", later)  # sent


def test_a_post_can_be_marked_without_a_change(state: State) -> None:
    """A Send again request that changed nothing still owes WordPress a push."""
    state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    state.status_told("s", state.status_waiting("s", 100))
    state.mark_status("s", 1)
    state.mark_status("s", 5)  # a post wpnotify has no notification of
    assert sorted(waiting_posts(state)) == [1, 5] and waiting_posts(state, "other") == []


def test_resend_seen_is_kept_per_site_and_never_moves_back(state: State) -> None:
    assert state.resend_seen("s") == 0
    state.set_resend_seen("s", 7)
    state.set_resend_seen("s", 5)
    state.record_poll("s", NOW, cursor=NOW)
    assert (state.resend_seen("s"), state.resend_seen("other")) == (7, 0)


def test_claim_many_claims_only_what_is_still_pending(state: State, backend: Backend) -> None:
    for target in ("a", "b", "c"):
        state.add("s", 1, "pingback", f"https://t/{target}", "https://s/1", NOW)
    a, b, c = (n.id for n in state.due(NOW))
    rival = backend.open()
    assert rival.claim(b, NOW)
    lease = NOW + timedelta(seconds=30)
    assert state.claim_many([a, b, c], NOW, lease) == {a, c}
    assert state.claim_many([], NOW, lease) == set()
    mine = state.get(a)
    assert mine is not None and (mine.status, mine.attempts, mine.claimed_by) == (
        Status.SENDING, 1, this_process())
    _, flying = state.claim_view(set(), NOW)
    assert sorted(t for t, _ in flying) == ["https://t/a", "https://t/b", "https://t/c"]


def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(state: State,
                                                             backend: Backend) -> None:
    """A worker on another machine (its process cannot be checked) loses its claims once its
    lease has passed, not before, whatever ``older_than`` says; the first interruption is
    told apart from a repeated one."""
    state.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
    (row,) = state.due(NOW)
    assert state.claim_many([row.id], NOW, NOW + timedelta(seconds=30)) == {row.id}
    backend.forge_claim(row.id, "elsewhere.example:4242:77")
    seen: list[bool] = []

    def at_once(attempts: int, before: bool) -> datetime:
        seen.append(before)
        return NOW + timedelta(seconds=31)

    assert state.recover_interrupted(NOW + timedelta(seconds=29), timedelta(minutes=10),
                                     at_once) == (0, 0)
    assert [t for t, _ in state.claim_view(set(), NOW + timedelta(seconds=29))[1]] == [
        "https://t/a"]
    _, expired = state.claim_view(set(), NOW + timedelta(seconds=31))
    assert expired == []  # its lease passed: not in flight
    assert state.recover_interrupted(NOW + timedelta(seconds=31), timedelta(minutes=10),
                                     at_once) == (1, 0)
    assert seen == [False]
    again = state.get(row.id)
    assert again is not None and (again.status, again.claimed_by) == (Status.PENDING, None)
    assert [n.id for n in state.due(NOW + timedelta(seconds=31))] == [row.id]


def test_a_site_is_polled_by_one_worker_at_a_time(state: State, backend: Backend) -> None:
    rival = backend.open()
    until = NOW + timedelta(seconds=30)
    assert state.take_site("blog", "w1", NOW, until)
    assert state.take_site("blog", "w1", NOW, until)  # its own: kept
    assert not rival.take_site("blog", "w2", NOW + timedelta(seconds=29), until)
    assert rival.take_site("blog", "w2", until, until + timedelta(seconds=30))  # expired
    assert not state.take_site("blog", "w1", until, until + timedelta(seconds=30))
    state.release_site("blog", "w1")  # not its own any more: no effect
    assert not state.take_site("blog", "w1", until, until + timedelta(seconds=30))
    rival.release_site("blog", "w2")
    assert state.take_site("blog", "w1", until, until + timedelta(seconds=30))


def test_a_heartbeat_renews_a_workers_leases_and_leave_frees_its_sites(state: State) -> None:
    state.join("w1", NOW)
    state.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
    (row,) = state.due(NOW)
    assert state.claim_many([row.id], NOW, NOW + timedelta(seconds=30)) == {row.id}
    assert state.take_site("blog", "w1", NOW, NOW + timedelta(seconds=30))
    assert state.take_site("news", "w1", NOW, NOW + timedelta(seconds=30))
    me = this_process()
    later = NOW + timedelta(seconds=20)
    assert state.renew(me, later, later + timedelta(seconds=30)) == []
    assert state.renew("w1", later, later + timedelta(seconds=30)) == ["blog", "news"]
    sent = state.get(row.id)
    assert sent is not None and sent.lease_until == later + timedelta(seconds=30)
    (w1, mine) = sorted(state.workers(later), key=lambda w: w.id != "w1")
    assert (w1.id, w1.sites, w1.sending, w1.seen_at) == ("w1", ("blog", "news"), 0, later)
    assert (mine.id, mine.sending) == (me, 1)
    state.leave("w1")
    assert [w.id for w in state.workers(later)] == [me]
    assert state.take_site("blog", "w2", later, later + timedelta(seconds=30))


def test_workers_gone_for_good_are_forgotten_with_their_sites(state: State) -> None:
    state.join("old", NOW)
    state.join("new", NOW + timedelta(minutes=5))
    assert state.take_site("blog", "old", NOW, NOW + timedelta(days=1))
    assert state.forget_workers(NOW + timedelta(minutes=1)) == 1
    assert [w.id for w in state.workers(NOW)] == ["new"]
    assert state.take_site("blog", "new", NOW, NOW + timedelta(seconds=30))


def test_claiming_units_exclude_each_other(state: State, backend: Backend) -> None:
    """What one claiming unit reads stays true until it commits: a rival's unit waits (from
    its first statement: the lock may go with it, as PostgreSQL's does)."""
    import threading

    rival = backend.open()
    inside, entered = threading.Event(), threading.Event()
    order: list[str] = []

    def second() -> None:
        inside.wait(5)
        with rival.claiming():
            rival.claim_view({"t.example"}, NOW)
            entered.set()
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with state.claiming():
        state.claim_view({"t.example"}, NOW)
        inside.set()
        assert not entered.wait(0.3)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]


# --- sites stored by `wpnotify sites` ------------------------------------------------------

BLOG = {"url": "https://blog.example", "username": "u", "password_file": "/etc/pw",
        "post_types": ["post", "page"], "self_pings": True, "max_trackbacks_per_post": 3}


def test_a_stored_sites_settings_round_trip_as_a_dict(state: State) -> None:
    assert state.stored_sites() == []
    assert state.store_site("blog", BLOG, NOW)
    [entry] = state.stored_sites()
    assert (entry.name, entry.config, entry.disabled) == ("blog", BLOG, False)
    assert entry.added_at == entry.updated_at == NOW


def test_a_second_site_of_the_same_name_is_refused(state: State) -> None:
    assert state.store_site("blog", BLOG, NOW)
    assert not state.store_site("blog", {**BLOG, "url": "https://other.example"},
                                NOW + timedelta(hours=1))
    [entry] = state.stored_sites()
    assert entry.config == BLOG and entry.added_at == NOW


def test_stored_sites_come_by_name(state: State) -> None:
    for name in ("c", "a", "b"):
        state.store_site(name, BLOG, NOW)
    assert [entry.name for entry in state.stored_sites()] == ["a", "b", "c"]


def test_removing_a_stored_site_keeps_its_history(state: State) -> None:
    state.store_site("blog", BLOG, NOW)
    state.add("blog", 1, "pingback", "https://t/1", "https://blog.example/1", NOW)
    assert state.remove_site("blog")
    assert state.stored_sites() == []
    assert not state.remove_site("blog")
    assert len(state.history(site="blog")) == 1


def test_a_stored_site_is_disabled_and_enabled_again(state: State) -> None:
    state.store_site("blog", BLOG, NOW)
    state.set_site_disabled("blog", True, NOW + timedelta(minutes=1))
    [entry] = state.stored_sites()
    assert entry.disabled and entry.config == BLOG
    assert entry.updated_at == NOW + timedelta(minutes=1) and entry.added_at == NOW
    state.set_site_disabled("blog", False, NOW + timedelta(minutes=2))
    [entry] = state.stored_sites()
    assert not entry.disabled and entry.config == BLOG


def test_a_configuration_files_site_is_disabled_by_a_flag_row(state: State) -> None:
    state.set_site_disabled("toml", True, NOW)
    [entry] = state.stored_sites()
    assert (entry.name, entry.config, entry.disabled) == ("toml", None, True)
    assert not state.remove_site("toml")  # a flag is no stored site
    state.set_site_disabled("toml", False, NOW)
    assert state.stored_sites() == []  # enabled: nothing left to keep


def test_adding_over_a_left_over_flag_stores_the_site_enabled(state: State) -> None:
    state.set_site_disabled("blog", True, NOW)
    assert state.store_site("blog", BLOG, NOW)
    [entry] = state.stored_sites()
    assert entry.config == BLOG and not entry.disabled


@pytest.mark.parametrize("config", ['["a list"]', "{not json", "7"])
def test_a_stored_site_that_cannot_be_read_names_its_repair(state: State, config: str) -> None:
    state.store_site("blog", BLOG, NOW)
    state._write("UPDATE site_settings SET config = ? WHERE name = ?",  # type: ignore[attr-defined]
                 (config, "blog"))
    with pytest.raises(StateError) as caught:
        state.stored_sites()
    message = str(caught.value)
    assert "'blog'" in message and "wpnotify sites remove blog" in message
    assert "\n" not in message
    assert state.remove_site("blog") and state.stored_sites() == []  # the repair works


def test_a_stored_site_with_an_unreadable_time_names_its_repair(state: State) -> None:
    state.store_site("blog", BLOG, NOW)
    state._write("UPDATE site_settings SET added_at = ? WHERE name = ?",  # type: ignore[attr-defined]
                 ("yesterday", "blog"))
    with pytest.raises(StateError, match="sites remove blog"):
        state.stored_sites()


def test_a_lease_renewal_does_not_mark_the_post(state: State) -> None:
    """The heartbeat renews every row a worker sends every few seconds; only a change of
    what WordPress is shown marks the post (migration 8's trigger columns)."""
    state.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
    (row,) = state.due(NOW)
    state.claim_many([row.id], NOW, NOW + timedelta(seconds=30))
    state.status_told("s", state.status_waiting("s", 10))
    state.renew(this_process(), NOW, NOW + timedelta(seconds=60))
    assert state.get(row.id).lease_until == NOW + timedelta(seconds=60)  # type: ignore[union-attr]
    assert state.status_waiting("s", 10) == []
    state.finish(row.id, Status.SENT, NOW)
    assert [post for post, _ in state.status_waiting("s", 10)] == [1]


def test_a_daemon_is_told_from_a_command_and_stays_one(state: State) -> None:
    state.join("daemon:1:1", NOW, daemon=True)
    state.join("backfill:2:2", NOW)
    state.renew("daemon:1:1", NOW + timedelta(seconds=5), NOW + timedelta(seconds=25))
    state.join("daemon:1:1", NOW + timedelta(seconds=6))  # seen again: still a daemon
    kinds = {w.id: w.daemon for w in state.workers(NOW)}
    assert kinds == {"daemon:1:1": True, "backfill:2:2": False}
    state.forget_workers(NOW + timedelta(days=1))
    assert state.renew("daemon:1:1", NOW, NOW, daemon=True) == []  # forgotten: joins again
    assert [(w.id, w.daemon) for w in state.workers(NOW)] == [("daemon:1:1", True)]


def test_a_lost_claim_records_nothing_over_the_new_claimant(state: State,
                                                           backend: Backend) -> None:
    """This worker's lease passed and another worker sends the notification now: a late
    outcome or release of this one's is not written over the other's claim."""
    state.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
    (row,) = state.due(NOW)
    assert state.claim_many([row.id], NOW, NOW + timedelta(seconds=20)) == {row.id}
    backend.forge_claim(row.id, "elsewhere.example:4242:77")  # taken over meanwhile
    state.release(row.id)
    assert not state.finish(row.id, Status.SENT, NOW, response="late")
    left = state.get(row.id)
    assert left is not None
    assert (left.status, left.claimed_by, left.response) == (
        Status.SENDING, "elsewhere.example:4242:77", None)
    backend.forge_claim(row.id, this_process())  # its own again: written
    assert state.finish(row.id, Status.SENT, NOW, response="ok")
    assert state.get(row.id).status == Status.SENT  # type: ignore[union-attr]  # it exists



def ping(comment_id: int, site: str = "s", **changes: Any) -> InboundPing:
    """A ping as first read: seen at NOW, received a minute per comment ID before."""
    made = InboundPing(site, comment_id, 10, "trackback", f"https://src.example/{comment_id}",
                       "Some blog", "192.0.2.7", "<strong>Title</strong>\n\nexcerpt",
                       NOW - timedelta(minutes=comment_id), NOW, "hold")
    return replace(made, **changes)


def test_a_ping_is_recorded_once_and_keeps_its_first_record(state: State) -> None:
    """A second read of a ping (a retried poll) neither counts it nor changes it."""
    assert state.add_pings("s", [ping(1), ping(2)], 2) == 2
    state.record_verdict("s", 1, verdict=Verdict.VERIFIED, code="links", reason="links here",
                         attempts=1, next_attempt_at=None, now=NOW)
    again = ping(1, source="https://other.example/", status_seen="approved")
    assert state.add_pings("s", [again, ping(3)], 3) == 1
    (first,) = [p for p in state.inbound_list(site="s") if p.comment_id == 1]
    assert (first.source, first.status_seen, first.verdict, first.code) == (
        "https://src.example/1", "hold", Verdict.VERIFIED, "links")
    assert first == replace(ping(1), verdict=Verdict.VERIFIED, code="links",
                            reason="links here", attempts=1, decided_at=NOW)


def test_a_ping_of_another_site_is_refused(state: State) -> None:
    with pytest.raises(ValueError, match="'t'"):
        state.add_pings("s", [ping(1), ping(2, site="t")], 2)
    assert state.inbound_list() == [] and state.inbound_cursor("s") is None


def test_the_inbound_cursor_never_moves_back(state: State) -> None:
    """A site never polled has no row yet: the first cursor makes it (and no poll's
    fields are touched)."""
    assert state.inbound_cursor("s") is None
    assert state.add_pings("s", [], None) == 0 and state.inbound_cursor("s") is None
    state.add_pings("s", [], 40)
    assert state.inbound_cursor("s") == 40
    state.add_pings("s", [ping(3)], 7)
    assert state.inbound_cursor("s") == 40
    state.add_pings("s", [], None)
    assert state.inbound_cursor("s") == 40
    state.add_pings("s", [], 2**40)  # a BIGINT on PostgreSQL
    assert state.inbound_cursor("s") == 2**40
    site = state.site("s")
    assert site is not None and (site.cursor, site.last_poll_at) == (None, None)
    state.record_poll("t", NOW, cursor=NOW)
    state.add_pings("t", [], 5)
    site = state.site("t")
    assert state.inbound_cursor("t") == 5 and site is not None and site.cursor == NOW


def test_pings_and_their_cursor_are_kept_together_or_not_at_all(state: State) -> None:
    with pytest.raises(RuntimeError), state.atomic():
        state.add_pings("s", [ping(1)], 1)
        raise RuntimeError("the poll failed after")
    assert state.inbound_list() == [] and state.inbound_cursor("s") is None


def test_due_pings_are_pending_ones_whose_time_has_come_oldest_first(state: State) -> None:
    state.add_pings("s", [ping(i) for i in (5, 2, 9, 7, 3)], 9)
    state.record_verdict("s", 9, verdict=Verdict.PENDING, code="unreachable",
                         reason="timed out", attempts=1,
                         next_attempt_at=NOW + timedelta(minutes=5), now=NOW)
    state.record_verdict("s", 5, verdict=Verdict.UNVERIFIED, code="no-link", reason="x",
                         attempts=1, next_attempt_at=None, now=NOW)
    state.record_verdict("s", 7, verdict=Verdict.PENDING, code="unreachable",
                         reason="timed out", attempts=1, next_attempt_at=NOW, now=NOW)
    assert [p.comment_id for p in state.inbound_due("s", NOW)] == [2, 3, 7]
    assert [p.comment_id for p in state.inbound_due("s", NOW, limit=2)] == [2, 3]
    later = NOW + timedelta(minutes=5)
    assert [p.comment_id for p in state.inbound_due("s", later)] == [2, 3, 7, 9]
    assert state.inbound_due("t", later) == []


def test_a_verdict_is_decided_only_when_final(state: State) -> None:
    state.add_pings("s", [ping(1)], 1)
    retry = NOW + timedelta(minutes=1)
    state.record_verdict("s", 1, verdict=Verdict.PENDING, code="unreachable",
                         reason="connection refused", attempts=1, next_attempt_at=retry,
                         now=NOW)
    (waiting,) = state.inbound_list()
    assert (waiting.verdict, waiting.code, waiting.attempts, waiting.next_attempt_at,
            waiting.decided_at) == (Verdict.PENDING, "unreachable", 1, retry, None)
    state.record_verdict("s", 1, verdict=Verdict.UNVERIFIED, code="source-gone",
                         reason="the source answered 404", attempts=2, next_attempt_at=None,
                         now=retry)
    (done,) = state.inbound_list()
    assert (done.verdict, done.code, done.reason, done.attempts, done.next_attempt_at,
            done.decided_at) == (Verdict.UNVERIFIED, "source-gone", "the source answered 404",
                                 2, None, retry)
    state.record_verdict("s", 404, verdict=Verdict.VERIFIED, code="links", reason="x",
                         attempts=1, next_attempt_at=None, now=NOW)  # unknown: nothing
    assert [p.comment_id for p in state.inbound_list()] == [1]


def test_unacted_pings_are_judged_ones_with_no_action_oldest_first(state: State) -> None:
    """What a site switched from report to moderate still has to act on."""
    state.add_pings("s", [ping(i) for i in range(1, 7)], 6)
    state.add_pings("t", [ping(1, site="t")], 1)
    for comment_id, verdict in ((1, Verdict.VERIFIED), (2, Verdict.UNVERIFIED),
                                (3, Verdict.SKIPPED), (5, Verdict.UNVERIFIED),
                                (6, Verdict.VERIFIED)):
        for site in ("s", "t"):
            state.record_verdict(site, comment_id, verdict=verdict, code="c", reason="r",
                                 attempts=1, next_attempt_at=None, now=NOW)
    state.record_action("s", 5, Action.SPAM, "spam", NOW)
    assert [p.comment_id for p in state.inbound_unacted("s")] == [1, 2, 6]
    assert [p.comment_id for p in state.inbound_unacted("s", limit=1)] == [1]
    assert [(p.site, p.comment_id) for p in state.inbound_unacted("t")] == [("t", 1)]


def test_a_change_asked_for_and_never_confirmed_is_found_again(state: State) -> None:
    """A change recorded before its request (status_after None) until it is confirmed."""
    state.add_pings("s", [ping(i) for i in range(1, 6)], 5)
    state.add_pings("t", [ping(1, site="t")], 1)
    state.record_action("s", 1, Action.SPAM, None, NOW)
    state.record_action("s", 2, Action.APPROVED, None, NOW)
    state.record_action("s", 3, Action.SPAM, "spam", NOW)
    state.record_action("s", 4, Action.LEFT, None, NOW)
    state.record_action("t", 1, Action.SPAM, None, NOW)
    assert [p.comment_id for p in state.inbound_unconfirmed("s")] == [1, 2]
    assert [p.comment_id for p in state.inbound_unconfirmed("s", limit=1)] == [1]
    state.record_action("s", 1, Action.SPAM, "spam", NOW)
    assert [p.comment_id for p in state.inbound_unconfirmed("s")] == [2]
    assert [(p.site, p.comment_id) for p in state.inbound_unconfirmed("t")] == [("t", 1)]


def test_an_action_is_recorded_with_its_time_and_wordpress_status(state: State) -> None:
    state.add_pings("s", [ping(1), ping(2)], 2)
    later = NOW + timedelta(seconds=30)
    state.record_action("s", 1, Action.APPROVED, "approved", later)
    state.record_action("s", 2, Action.LEFT, "trash", later)
    found = {p.comment_id: p for p in state.inbound_list()}
    assert (found[1].action, found[1].status_after, found[1].acted_at) == (
        Action.APPROVED, "approved", later)
    assert (found[2].action, found[2].status_after) == (Action.LEFT, "trash")
    assert found[1].as_dict()["acted_at"] == "2026-11-26T12:00:30.000000Z"
    assert found[1].as_dict()["action"] == "approved"


def test_the_inbound_list_is_filtered_and_newest_first(state: State) -> None:
    """Newest seen first, then the higher comment ID first among pings seen at once."""
    state.add_pings("s", [ping(1), ping(2, seen_at=NOW + timedelta(hours=1)), ping(3)], 3)
    state.add_pings("t", [ping(4, site="t", seen_at=NOW + timedelta(minutes=1))], 4)
    state.record_verdict("s", 3, verdict=Verdict.VERIFIED, code="links", reason="r",
                         attempts=1, next_attempt_at=None, now=NOW)
    state.record_verdict("t", 4, verdict=Verdict.VERIFIED, code="links", reason="r",
                         attempts=1, next_attempt_at=None, now=NOW)
    assert [(p.site, p.comment_id) for p in state.inbound_list()] == [
        ("s", 2), ("t", 4), ("s", 3), ("s", 1)]
    assert [p.comment_id for p in state.inbound_list(site="s")] == [2, 3, 1]
    assert [p.comment_id for p in state.inbound_list(verdict=Verdict.VERIFIED)] == [4, 3]
    assert [p.comment_id for p in state.inbound_list(site="s", verdict=Verdict.PENDING)
            ] == [2, 1]
    assert [p.comment_id for p in state.inbound_list(limit=2)] == [2, 4]
    assert state.inbound_list(site="nowhere") == []


def test_inbound_counts_list_every_verdict_and_action_of_one_site(state: State) -> None:
    state.add_pings("s", [ping(i) for i in range(1, 5)], 4)
    state.add_pings("t", [ping(1, site="t")], 1)
    for comment_id in (1, 2, 3):
        state.record_verdict("s", comment_id, verdict=Verdict.UNVERIFIED, code="no-link",
                             reason="r", attempts=1, next_attempt_at=None, now=NOW)
    state.record_action("s", 1, Action.SPAM, "spam", NOW)
    state.record_action("s", 2, Action.SPAM, "spam", NOW)
    counts = state.inbound_counts("s")
    assert len(counts) == len(Verdict) * len(Action)
    assert {pair: n for pair, n in counts.items() if n} == {
        (Verdict.UNVERIFIED, Action.SPAM): 2, (Verdict.UNVERIFIED, Action.NONE): 1,
        (Verdict.PENDING, Action.NONE): 1}
    assert sum(state.inbound_counts("t").values()) == 1
    assert sum(state.inbound_counts("nowhere").values()) == 0


def test_a_pings_long_text_is_capped(state: State) -> None:
    """What a sender chose is stored bounded, whatever it sent."""
    state.add_pings("s", [ping(1, source="https://x.example/" + "a" * 5000, author="b" * 900,
                                content="c" * 10_000, author_ip="9" * 300)], 1)
    state.record_verdict("s", 1, verdict=Verdict.UNVERIFIED, code="no-link",
                         reason="r" * 5000, attempts=1, next_attempt_at=None, now=NOW)
    (stored,) = state.inbound_list()
    assert (len(stored.source), len(stored.author), len(stored.content)) == (2000, 500, 4000)
    assert stored.source.startswith("https://x.example/aaa")
    assert len(stored.author_ip) <= 100 and len(stored.reason or "") <= 1000


def test_a_sites_pings_stay_its_own(state: State) -> None:
    """The same comment ID on two sites is two pings; nothing done to one touches the other."""
    state.add_pings("s", [ping(1)], 1)
    state.add_pings("t", [ping(1, site="t", source="https://t-src.example/")], 9)
    state.record_verdict("s", 1, verdict=Verdict.UNVERIFIED, code="no-link", reason="r",
                         attempts=1, next_attempt_at=None, now=NOW)
    state.record_action("s", 1, Action.SPAM, "spam", NOW)
    (other,) = state.inbound_list(site="t")
    assert (other.source, other.verdict, other.action) == (
        "https://t-src.example/", Verdict.PENDING, Action.NONE)
    assert [p.site for p in state.inbound_due("t", NOW)] == ["t"]
    assert state.inbound_due("s", NOW) == [] and state.inbound_unacted("t") == []
    assert (state.inbound_cursor("s"), state.inbound_cursor("t")) == (1, 9)


def test_an_inbound_ping_round_trips_and_prints_plain_values(state: State) -> None:
    first = ping(12, kind="pingback", content="it\u2019s \u00e9t\u00e9 \U0001f600")
    state.add_pings("s", [first], 12)
    (stored,) = state.inbound_list()
    assert stored == first
    plain = stored.as_dict()
    assert plain["verdict"] == "pending" and plain["action"] == "none"
    assert plain["seen_at"] == "2026-11-26T12:00:00.000000Z"
    assert plain["decided_at"] is None and list(plain) == [
        f.name for f in fields(InboundPing)]


# Last: every test above is exported (a test below this line would silently not run).
__all__ = ["Backend", "state", *(name for name in dir() if name.startswith("test_"))]
