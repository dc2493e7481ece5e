"""Several workers on one state: each notification goes out once, the per-host limits and a
WordPress host's spacing hold for the fleet, a killed worker's work is taken over, a site is
polled by one worker at a time, and `status` shows who holds what. The workers are real
processes (a claim is a process's); the receivers record what arrived, in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from receivers import CountingReceiver, Log, serving, serving_all

from wpnotify.cli import main
from wpnotify.sending.leases import Heartbeat, lease_span
from wpnotify.service import Service
from wpnotify.settings import Settings, SiteSettings
from wpnotify.state import State, Status, open_state

WORKER = Path(__file__).with_name("fleetworker.py")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture()
def log() -> Log:
    return Log()


@pytest.fixture()
def where(tmp_path: Path) -> str:
    """Where the fleet's state is (a backend's test module may override this)."""
    return str(tmp_path / "state.sqlite3")


def open_store(where: str) -> State:
    return open_state(where if where.startswith("postgres") else Path(where))


@pytest.fixture()
def hosts(log: Log) -> Iterator[list[CountingReceiver]]:
    with serving_all([CountingReceiver(log, delay=0.1) for _ in range(3)]) as servers:
        yield servers


def start_worker(where: str, concurrency: int, per_host: int, *extra: str
                 ) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.Popen([sys.executable, str(WORKER), where, str(concurrency),
                             str(per_host), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(worker: subprocess.Popen[str]) -> dict[str, int]:
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


def queue(store: State, post: int, target: str) -> None:
    store.add("s", post, "pingback", target, f"https://s.example/{post}/", NOW)


def test_three_workers_share_the_queue_within_the_per_host_limits(
        where: str, hosts: list[CountingReceiver], log: Log) -> None:
    store = open_store(where)
    targets = [hosts[i % 3].url(f"/p/{i}") for i in range(90)]
    for i, target in enumerate(targets):
        queue(store, i, target)
    workers = [start_worker(where, 4, 2) for _ in range(3)]
    tallies = [finish(w) for w in workers]
    assert sum(t["sent"] for t in tallies) == 90
    assert Counter(target for _, target, _ in log.pings) == Counter(targets)  # each once
    assert max(log.peak.values()) == 2  # two at a time per host, for the whole fleet
    rows = store.history(limit=100)
    assert {r.status for r in rows} == {Status.SENT}
    assert len({r.claimed_by for r in rows}) >= 2  # the work was shared


def test_workers_recording_the_same_posts_at_once_never_deadlock(where: str, log: Log) -> None:
    """Each post's links on six hosts: every worker's batch of outcomes holds rows of many of
    the same posts, finished in any order. Each change marks its post for WordPress; on
    PostgreSQL two batches marking posts in other orders deadlocked (a worker's batch lost,
    its notifications sent twice). Every worker ends well and each target is pinged once."""
    with serving_all([CountingReceiver(log, delay=0.005) for _ in range(6)]) as servers:
        store = open_store(where)
        targets = [(post, servers[n].url(f"/d/{post}/{n}")) for post in range(40)
                   for n in range(6)]
        for post, target in targets:
            queue(store, post, target)
        workers = [start_worker(where, 12, 4) for _ in range(3)]
        assert sum(finish(w)["sent"] for w in workers) == len(targets)
        assert Counter(target for _, target, _ in log.pings) == Counter(t for _, t in targets)


def test_a_wordpress_host_is_spaced_and_alone_for_the_whole_fleet(
        where: str, hosts: list[CountingReceiver], log: Log) -> None:
    """Known to run WordPress: one request at a time and wordpress_ping_interval (1 s here)
    between two pings, whichever worker sends them."""
    store = open_store(where)
    wordpress = hosts[0]
    store.set_host(f"127.0.0.1:{wordpress.port}", wordpress=True)
    for i in range(4):
        queue(store, i, wordpress.url(f"/wp/{i}"))
    workers = [start_worker(where, 4, 2, "30", "1") for _ in range(3)]
    tallies = [finish(w) for w in workers]
    assert sum(t["sent"] for t in tallies) + sum(t["retrying"] for t in tallies) >= 4
    while len(log.pings) < 4:  # a worker may leave the last for a later run: run one
        finish(start_worker(where, 4, 2, "30", "1"))
    assert log.peak[wordpress.port] == 1
    starts = sorted(at for _, _, at in log.pings)
    assert len(starts) == 4
    assert all(b - a >= 0.95 for a, b in zip(starts, starts[1:], strict=False)), starts


def test_a_killed_workers_notifications_are_sent_by_another(where: str, log: Log) -> None:
    """kill -9 while its requests are in flight: the next worker takes them over at once
    (a dead process of this host), and each target gets its ping; those in flight at the
    kill may arrive twice, none more."""
    with serving(CountingReceiver(log, delay=2.0)) as slow:
        store = open_store(where)
        targets = [slow.url(f"/k/{i}") for i in range(4)]
        for i, target in enumerate(targets):
            queue(store, i, target)
        victim = start_worker(where, 4, 4)
        deadline = time.monotonic() + 30
        while not log.pings and time.monotonic() < deadline:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # What was in flight at the kill: every request that reached the receiver before it
        # is still in its 2 s delay now (counting it before the signal missed the requests
        # that arrived in between, which the heir then rightly sent again).
        in_flight = sum(log.in_flight.values())
        assert in_flight >= 1
        assert store.counts("s")[Status.SENDING] >= 1
        heir = finish(start_worker(where, 4, 4))
        assert heir["sent"] == 4
        arrived = Counter(target for _, target, _ in log.pings)
        assert set(arrived) == set(targets)
        assert sum(arrived.values()) - len(targets) <= in_flight
        rows = {r.target: r for r in store.history()}
        taken_over = [r for r in rows.values() if r.attempts == 2]
        assert taken_over and all("interrupted by a crash" in (r.response or "")
                                  for r in taken_over)


def test_a_heartbeat_renews_the_leases_and_leaving_frees_the_sites(where: str) -> None:
    store = open_store(where)
    queue(store, 1, "https://t.example/a")
    (row,) = store.due(datetime.now(UTC))

    def now() -> datetime:
        return datetime.now(UTC)

    with Heartbeat(store, 3.0, now) as beat:  # renews every second
        claimed_at = now()
        assert store.claim_many([row.id], claimed_at, claimed_at + lease_span(3.0))
        assert store.take_site("blog", beat.worker, claimed_at, claimed_at + lease_span(3.0))
        time.sleep(1.6)
        renewed = store.get(row.id)
        assert renewed is not None and renewed.lease_until is not None
        assert renewed.lease_until > claimed_at + lease_span(3.0)
        assert beat.held == ["blog"]
        (me,) = store.workers(now())
        assert (me.id, me.sites, me.sending) == (beat.worker, ("blog",), 1)
    assert store.workers(now()) == []
    assert store.take_site("blog", "another:1:1", now(), now() + timedelta(seconds=9))


def test_a_heartbeat_outlives_an_unexpected_error(where: str) -> None:
    """A renewal that fails with anything (a driver's own error, a bug) is logged; the next
    ones still run: a dead heartbeat thread would let the leases pass while the worker
    works on, and another worker would send what it is sending."""
    store = open_store(where)
    renew, calls = store.renew, []

    def flaky(worker: str, now: datetime, until: datetime, *, daemon: bool = False
              ) -> list[str]:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("a driver's own error")
        return renew(worker, now, until, daemon=daemon)

    store.renew = flaky  # type: ignore[method-assign]  # (a renewal that fails once)
    with Heartbeat(store, 3.0, lambda: datetime.now(UTC)):  # renews every second
        time.sleep(2.5)
    assert len(calls) >= 2, calls


def config(tmp_path: Path, where: str, sites: int = 1) -> Path:
    path = tmp_path / "config.toml"
    key = "state_url" if where.startswith("postgres") else "state_file"
    lines = [f'{key} = "{where}"', "[http]", "allow_private_addresses = true"]
    for n in range(sites):  # on loopback port 9, where nothing listens: never read here
        lines += ["[[sites]]", f'name = "site{n}"', 'url = "http://127.0.0.1:9"',
                  'username = "u"', 'password = "pw"']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.usefixtures("in_process_cli")
def test_poll_leaves_a_site_another_worker_polls(tmp_path: Path, where: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(where)
    assert store.take_site("site0", "elsewhere:4242:7", datetime.now(UTC),
                           datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config(tmp_path, where)), "poll"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "site0: not read: another worker polls it now" in out
    assert store.site("site0").last_poll_at is None  # type: ignore[union-attr]  # it exists


@pytest.mark.usefixtures("in_process_cli")
def test_status_shows_the_workers_and_what_each_holds(
        tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(where)
    now = datetime.now(UTC)
    store.join("web1:100:5", now, daemon=True)
    store.join("web2:200:6", now - timedelta(hours=1))  # not seen for long: not alive
    assert store.take_site("site0", "web1:100:5", now, now + timedelta(minutes=1))
    queue(store, 1, "https://t.example/a")
    (row,) = store.due(now)
    store.claim(row.id, now)
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config(tmp_path, where)), "status"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "  polled by: web1:100:5" in out
    assert "workers (1 alive):" in out
    assert "web1:100:5: daemon, alive; last seen" in out and "polls site0; sending 0" in out
    assert "web2:200:6: command (a backfill or poll: no share of sites), not seen within" in out
    with pytest.raises(SystemExit):
        main(["--config", str(config(tmp_path, where)), "status", "--format", "json"])
    (site,) = json.loads(capsys.readouterr().out)
    assert site["polled_by"] == "web1:100:5"


def test_a_worker_gives_up_sites_beyond_its_fair_share(tmp_path: Path, where: str) -> None:
    """Four sites, two daemons alive: this one keeps two (the first by name) and frees two,
    which the other takes. A backfill or a poll beside them is a worker too, but takes no
    share: counted, it left sites that no daemon would poll."""
    sites = tuple(SiteSettings(name=f"site{n}", url="https://s.example", username="u",
                               password="p") for n in range(4))
    store = open_store(where)
    service = Service(Settings(sites=sites), store)
    with service.working(daemon=True):
        assert all(service.take_site(site.name) for site in sites)
        assert service.balance() == (4, [])  # alone: every site is its share
        store.join("backfill:9:9", datetime.now(UTC))  # a command: no share
        assert service.balance() == (4, [])
        store.join("other:1:1", datetime.now(UTC), daemon=True)
        assert service.balance() == (2, ["site2", "site3"])
        assert service.heartbeat.held == ["site0", "site1"]
        now = datetime.now(UTC)
        assert store.take_site("site3", "other:1:1", now, now + timedelta(seconds=20))
        assert not store.take_site("site0", "other:1:1", now, now + timedelta(seconds=20))


def test_a_daemons_poll_is_logged_between_its_bounds_with_the_worker(
        tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """site.poll_started and site.poll_ended bracket the reading (even one that raises), and
    name the worker: from the logs alone one sees that no two workers read a site at once.
    A site another worker holds is not read, and nothing is logged for it."""
    from structlog.testing import capture_logs

    from wpnotify.daemon import Daemon
    from wpnotify.service.reading import SiteReport

    site = SiteSettings(name="s", url="https://s.example", username="u", password="p")
    settings = Settings(sites=(site,))
    store = open_store(where)
    service = Service(settings, store)
    daemon = Daemon(settings, service)
    order: list[str] = []

    def read(site: SiteSettings) -> SiteReport:
        order.append("read")
        return SiteReport(site.name)

    monkeypatch.setattr(service, "read", read)
    monkeypatch.setattr(service, "send_due", lambda sites=None: order.append("send"))
    with service.working(), capture_logs() as logged:
        daemon.poll_site(site)
        polls = [(e["event"], e["site"], e["worker"]) for e in logged
                 if e["event"].startswith("site.poll_")]
        worker = service.heartbeat.worker
        assert polls == [("site.poll_started", "s", worker), ("site.poll_ended", "s", worker)]
        assert order == ["read", "send"]

        monkeypatch.setattr(service, "read", lambda site: 1 / 0)
        logged.clear()
        with pytest.raises(ZeroDivisionError):
            daemon.poll_site(site)
        assert [e["event"] for e in logged] == ["site.poll_started", "site.poll_ended"]

        service.release_site("s")
        now = datetime.now(UTC)
        assert store.take_site("s", "elsewhere:1:1", now, now + timedelta(minutes=1))
        logged.clear()
        daemon.poll_site(site)
        assert logged == []
