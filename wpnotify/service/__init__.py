"""The library's front door. The CLI and the daemon call ``Service`` (through ``open_service``)
and nothing else: one cycle of wpnotify's main job (read what changed on each site, queue what
it owes, send what is due), backfill, sending what is due, and the read-only questions
(history, status), each returning plain data for the renderers.

``Service`` composes the parts (``reading``, ``recording``, ``backfilling``, the sending
dispatcher, ``reports``) over the state, the sources and the HTTP seam it is given. It imports
them where they are first used: `history` and `status` must start fast on a big state file,
and they need the state and the settings only.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from wpnotify.errors import ConfigError, StateError, WpnotifyError
from wpnotify.events import NO_EVENTS, Events, Fanout
from wpnotify.settings import NO_SITES  # loaded already: every command reads the settings
from wpnotify.state import InboundPing, Notification, State, Status, open_state
from wpnotify.state.clock import StateClock

if TYPE_CHECKING:  # for the annotations; the renderers take these names from here too
    from wpnotify.http import Http
    from wpnotify.metrics import MetricsServer
    from wpnotify.plan import Known, Planned
    from wpnotify.sending.backlog import Tally
    from wpnotify.sending.dispatch import Dispatcher
    from wpnotify.sending.leases import Heartbeat
    from wpnotify.service.backfilling import Backfill, OnPage, OnPlanned
    from wpnotify.service.inbound import InboundReport
    from wpnotify.service.reading import SiteReport
    from wpnotify.service.reports import CheckReport, SiteStatus, WorkerStatus
    from wpnotify.service.sites import Added, Change, SiteRow, Sites
    from wpnotify.settings import Settings, SiteSettings
    from wpnotify.sources import Post, Source

#: The results' types, defined beside the parts that make them; imported on first use, so that
#: ``from wpnotify.service import SiteReport`` works without loading every part at start-up.
LAZY_NAMES = {"Backfill": "wpnotify.service.backfilling", "CheckReport": "wpnotify.service.reports",
              "Planned": "wpnotify.plan", "Post": "wpnotify.sources",
              "SiteReport": "wpnotify.service.reading", "SiteStatus": "wpnotify.service.reports",
              "WorkerStatus": "wpnotify.service.reports",
              "Tally": "wpnotify.sending.backlog", "Added": "wpnotify.service.sites",
              "Change": "wpnotify.service.sites", "SiteRow": "wpnotify.service.sites",
              "InboundReport": "wpnotify.service.inbound"}

__all__ = ["Added", "Backfill", "Change", "CheckReport", "InboundPing", "InboundReport",
           "Notification", "Planned",
           "PollReport", "Post", "Service", "SiteReport", "SiteRow", "SiteStatus", "Tally",
           "WorkerStatus", "check", "kind_names", "make_sources", "open_service",
           "status_names", "tune", "utcnow", "verdict_names"]


def __getattr__(name: str) -> Any:
    """PEP 562: the results' types in LAZY_NAMES, loaded when first asked for."""
    if name not in LAZY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(LAZY_NAMES[name]), name)


def utcnow() -> datetime:
    return datetime.now(UTC)


def tune() -> None:
    """Process-wide settings the sending relies on (the interpreter's switch interval), for
    the entry points to set once: the library itself never changes them behind its caller's
    back."""
    from wpnotify import sending

    sending.tune()


def kind_names() -> Sequence[str]:
    """The kinds of notification, as `history --kind` takes them (the registry's order)."""
    from wpnotify import kinds

    return kinds.names()


def verdict_names() -> Sequence[str]:
    """The verdicts on received pings, as `inbound --verdict` takes them."""
    from wpnotify.state import Verdict

    return [verdict.value for verdict in Verdict]


def status_names() -> Sequence[str]:
    return [status.value for status in Status]


def make_sources(settings: Settings, http: Http, per_page: int = 100) -> dict[str, Source]:
    """Each site's source (of the sites in ``settings``), by site name, over its ``api``.
    ``per_page`` is WordPress's maximum, 100, unless a test lowers it."""
    from wpnotify.sources import make_source

    return {site.name: make_source(http, site, per_page) for site in settings.sites}


def client(settings: Settings) -> Http:
    """The HTTP seam: the sites' own origins (of the sites in ``settings``) are trusted even
    on a loopback or private address; every other address meets the guard as configured."""
    from wpnotify.http import Http

    return Http(settings.http, trusted_origins=[site.url for site in settings.sites])


def sites_in_effect(settings: Settings, store: State) -> Sites:
    """The configuration file's sites plus the stored ones, less the disabled (one query)."""
    from wpnotify.service.sites import in_effect

    return in_effect(settings, store.stored_sites())


@contextmanager
def open_service(settings: Settings, *, network: bool = True,
                 stored: bool = True) -> Iterator[Service]:
    """The service on the configured state (file or database), closed again on leaving, over
    the sites in effect (``stored``: the stored sites read too; the `sites` commands that
    must work on a damaged row read none). ``network``: with the HTTP seam and the sites'
    sources (for poll, backfill, the daemon); without, for the commands that only read or
    write the state (history, status, retry, sites)."""
    state = open_state(settings.state_location)
    try:
        found = sites_in_effect(settings, state) if stored else None
        effective = settings if found is None else found.settings
        if not network:
            yield Service(effective, state, configured=settings, found=found)
            return
        if found is not None:
            _log_left_out(found.problems())
        http = client(effective)
        try:
            yield Service(effective, state, http, sources=make_sources(effective, http),
                          configured=settings, found=found)
        finally:
            http.close()
    finally:
        state.close()


def _log_left_out(problems: list[tuple[str, str]]) -> None:
    """Logs the sites left out (a command that sends logs; `history` and `status` do not)."""
    import structlog

    for site, problem in problems:
        structlog.get_logger("wpnotify.sites").error("site.left_out", site=site,
                                                      problem=problem)


def check(settings: Settings) -> CheckReport:
    """Validates what can be validated without sending anything: the configuration, the
    state (it may be the problem, so it is not opened first), and each site in effect (the
    stored ones too, each that is left out a problem)."""
    from wpnotify.service import reports
    from wpnotify.service.sites import in_effect

    found, unread = in_effect(settings, []), None
    try:
        store = open_state(settings.state_location)
        try:
            found = sites_in_effect(settings, store)
        finally:
            store.close()
    except StateError as exc:
        unread = str(exc)  # the state check below names it, or it is a damaged stored site
    http = client(found.settings)
    try:
        result = reports.check(found.settings, lambda: open_state(settings.state_location),
                               make_sources(found.settings, http))
    finally:
        http.close()
    if unread is not None and unread not in result.problems:
        result.problems.append(unread)
    result.problems += [f"site {site}: {problem}" for site, problem in found.problems()]
    if not found.rows:
        result.warnings.append(NO_SITES)
    return result


@dataclass(frozen=True)
class PollReport:
    sites: list[SiteReport]
    delivery: Tally

    @property
    def ok(self) -> bool:
        return all(report.error is None
                   and (report.inbound is None or report.inbound.error is None)
                   for report in self.sites)


class Service:
    """Reads sites and sends their notifications, on one state and one HTTP seam.

    ``sources``: one per configured site, by name (``make_sources`` builds them); a test
    passes stand-ins. Without ``http`` and ``sources`` it answers only what the state knows.
    ``stop()`` (a daemon's shutdown) cuts waits short and starts no new send; ``sleep`` and
    ``stopping`` replace that for a test. ``events`` hears of attempts and progress (the
    metrics, the watchdog); ``watch`` adds a listener before the work starts.

    ``settings`` holds the sites in effect; ``configured``, the configuration file's (default:
    the same), from which ``refresh_sites`` works them out again; ``found``: what
    ``sites_in_effect`` found (default: the configuration file's sites alone)."""

    def __init__(self, settings: Settings, store: State, http: Http | None = None, *,
                 sources: Mapping[str, Source] | None = None,
                 clock: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] | None = None,
                 stopping: Callable[[], bool] | None = None,
                 events: Events = NO_EVENTS, configured: Settings | None = None,
                 found: Sites | None = None) -> None:
        from wpnotify.service.sites import in_effect

        self.settings = settings
        self.configured = configured or settings
        self.found = found or in_effect(settings, [])
        self.store = store
        self.http = http
        self.sources: Mapping[str, Source] = sources or {}
        # By default the state's clock: workers on several machines share one database and
        # compare the times they write there (leases, holds, retries).
        self.clock = clock or StateClock(store)
        self.stop_event = threading.Event()
        self.sleep = sleep or self._pause
        self.stopping = stopping or self.stop_event.is_set
        self.events = Fanout(events)

    def watch(self, listener: Events) -> None:
        """Adds a listener to this service's events (the daemon's, as it starts)."""
        self.events.add(listener)

    @contextmanager
    def metrics(self, listen: str, healthy_within: float) -> Iterator[MetricsServer]:
        """Serves /metrics and /healthz on ``listen`` while inside, fed by this service's
        events and reading its state; a port that cannot be had is a WpnotifyError."""
        from wpnotify.metrics import Metrics, MetricsServer

        watcher = Metrics(lambda: [site.name for site in self.settings.sites], self.store,
                          self.clock, healthy_within)
        server = MetricsServer(listen, watcher)
        self.watch(watcher)
        try:
            yield server
        finally:
            server.close()

    def stop(self) -> None:
        self.stop_event.set()

    def _pause(self, seconds: float) -> None:
        """Waits, or less when stopped."""
        self.stop_event.wait(seconds)

    @cached_property
    def sender(self) -> Dispatcher:
        """The sending dispatcher, made on first use (a read-only command never needs it)."""
        from wpnotify.sending.dispatch import Dispatcher

        if self.http is None:
            raise WpnotifyError("internal: this service was opened without the network")
        return Dispatcher(self.settings, self.store, self.http, self.sources, self.clock,
                          self.sleep, self.stopping, self.events)

    def require_writable(self) -> None:
        """Raises StateError when the state was opened read-only (before a command writes)."""
        self.store.require_writable()

    # --- workers sharing the state -----------------------------------------------------------

    @cached_property
    def heartbeat(self) -> Heartbeat:
        """This process as a worker: its leases kept alive while it works (``working``)."""
        from wpnotify.sending.leases import Heartbeat

        return Heartbeat(self.store, self.settings.worker_lease, self.clock)

    def working(self, *, daemon: bool = False) -> Heartbeat:
        """``with service.working():`` this process is a worker meanwhile: it shows in
        `status`, and its claims and sites stay its own until it leaves (or is killed and
        its leases pass). ``daemon``: it takes its share of the sites' polls (`run`); a
        backfill or a poll beside the daemons takes none, so they keep every site polled."""
        heartbeat = self.heartbeat
        if not heartbeat.working:  # the outermost entry joins, as what it is
            heartbeat.daemon = daemon
        return heartbeat

    def take_site(self, name: str) -> bool:
        """The poll of a site for this worker (kept until released, while it works); False
        when another worker holds it."""
        from wpnotify.sending.leases import lease_span

        now = self.clock()
        heartbeat = self.heartbeat
        if not self.store.take_site(name, heartbeat.worker, now,
                                    now + lease_span(self.settings.worker_lease)):
            return False
        heartbeat.held = sorted({*heartbeat.held, name})
        return True

    def release_site(self, name: str) -> None:
        heartbeat = self.heartbeat
        self.store.release_site(name, heartbeat.worker)
        heartbeat.held = [held for held in heartbeat.held if held != name]

    def fair_share(self) -> int:
        """How many sites this worker may hold: the sites shared out over the daemons alive
        (seen within a lease), rounded up, so that together they hold every site. Workers
        gone for long (ten leases) are forgotten on the way."""
        lease = timedelta(seconds=self.settings.worker_lease)
        now = self.clock()
        self.store.forget_workers(now - 10 * lease)
        alive = [w for w in self.store.workers(now) if w.daemon and w.seen_at > now - lease]
        return -(-len(self.settings.sites) // max(len(alive), 1))

    def balance(self) -> tuple[int, list[str]]:
        """Gives up the sites this worker holds beyond its fair share (the last by name),
        so that a worker that joins gets its part; returns the share and the sites given
        up."""
        share = self.fair_share()
        extra = sorted(self.heartbeat.beat())[share:]
        for name in extra:
            self.release_site(name)
        return share, extra

    def take_over(self) -> int:
        """Puts back in the queue what workers that stopped left in flight; how many."""
        return self.sender.recover()

    # --- the main job ----------------------------------------------------------------------

    def poll(self) -> PollReport:
        """One full cycle for every site in effect."""
        if not self.found.rows:
            raise ConfigError(NO_SITES)
        self.store.require_writable()
        with self.working():
            reports = [self._read_alone(site) for site in self.settings.sites]
            tally = self.sender.deliver([site.name for site in self.settings.sites])
            # The pings received come last: the notifications owed never wait behind them.
            reports = [self._inbound_alone(site, report)
                       for site, report in zip(self.settings.sites, reports, strict=True)]
        return PollReport(reports, tally)

    def _inbound_alone(self, site: SiteSettings, report: SiteReport) -> SiteReport:
        """The pings a site read in this poll received, unless another worker polls it now."""
        if site.inbound == "off" or report.error is not None or report.busy:
            return report
        if not self.take_site(site.name):
            return report
        try:
            return replace(report, inbound=self.inbound(site))
        finally:
            self.release_site(site.name)

    def _read_alone(self, site: SiteSettings) -> SiteReport:
        """Reads a site unless another worker polls it (it holds its lease) at this moment."""
        from wpnotify.service.reading import SiteReport

        if not self.take_site(site.name):
            return SiteReport(site.name, busy=True)
        try:
            return self.read(site)
        finally:
            self.release_site(site.name)

    def read(self, site: SiteSettings) -> SiteReport:
        """Reads one site's changes and queues their notifications; never raises SourceError."""
        from wpnotify.service.reading import read_site

        return read_site(self.store, site, self.sources[site.name], self.clock())

    def inbound(self, site: SiteSettings) -> InboundReport:
        """One pass over the pings a site received (``service.inbound``): read the new
        ones, judge what is due, act as its ``inbound`` setting says."""
        from wpnotify.service.inbound import PingSource, check_site

        if self.http is None:
            raise WpnotifyError("internal: this service was opened without the network")
        source = cast(PingSource, self.sources[site.name])  # inbound needs api = "rest"
        return check_site(self.settings, self.store, site, source, self.http, self.clock(),
                          self.events)

    def inbound_list(self, *, site: str | None = None, verdict: str | None = None,
                     limit: int = 50) -> list[InboundPing]:
        """The recorded pings and their verdicts, newest first, for `wpnotify inbound`."""
        from wpnotify.state import Verdict

        if site is not None:
            self.site(site)  # an unknown name is a ConfigError naming the known ones
        return self.store.inbound_list(site=site,
                                       verdict=None if verdict is None else Verdict(verdict),
                                       limit=limit)

    def send_due(self, sites: list[str] | None = None) -> Tally:
        """Sends what is due for these sites (every site in effect if None)."""
        names = [site.name for site in self.settings.sites] if sites is None else sites
        return self.sender.deliver(names)

    def owed(self, site: SiteSettings, source: Source, post: Post,
             announce: bool = False, known: Known | None = None) -> list[Planned]:
        """What a post owes beyond what the state holds (``known``: the targets it holds per
        kind); nothing unless published and open. ``announce``: also ping the update
        services (a fresh publish)."""
        from wpnotify.service.recording import Recorder

        return Recorder(self.store, site, source).owed(post, announce, known)

    def backfill(self, site: SiteSettings, since: datetime, until: datetime | None,
                 post_ids: list[int], *, dry_run: bool = False,
                 on_page: OnPage = lambda done, total: None,
                 on_planned: OnPlanned = lambda post, item: None) -> Backfill:
        """Sends what older published posts owe, page by page (memory stays flat), under the
        same rules and state as polling. ``dry_run`` sends and records nothing; each planned
        notification is handed to ``on_planned`` either way."""
        from wpnotify.service.backfilling import Backfiller

        backfiller = Backfiller(self.store, site, self.sources[site.name], self.clock,
                                on_page, on_planned)
        if dry_run:  # outside a sending cycle: no request to a receiver, nor to WordPress
            return backfiller.preview(since, until, post_ids)
        self.store.require_writable()
        # One discovery cache for the whole archive; a worker meanwhile (its claims leased).
        with self.working(), self.sender.cycle():
            return backfiller.run(self.sender, since, until, post_ids)

    # --- what the state knows --------------------------------------------------------------

    def history(self, *, site: str | None = None, post_id: int | None = None,
                kind: str | None = None, status: str | None = None,
                limit: int = 50) -> list[Notification]:
        """Notifications, newest first, optionally filtered; a site name that no site has
        (in the configuration or stored, enabled or not) is an error (a typo), not an empty
        list."""
        if site is not None:
            self.found.known(site)
        return self.store.history(site=site, post_id=post_id, kind=kind,
                                  status=None if status is None else Status(status),
                                  limit=limit)

    def requeue(self, *, ids: list[int], site: str | None = None,
                since: datetime | None = None) -> int:
        """Failed notifications back in the queue with a fresh retry budget: by ID, or all
        failed ones (of a site, since a time)."""
        if site is not None:
            self.found.known(site)
        return self.store.requeue(ids=ids, site=site, since=since)

    def status(self) -> list[SiteStatus]:
        """Per site in effect: last polls, cursor, bridge, counts, next retry."""
        from wpnotify.service import reports

        if not self.found.rows:
            raise ConfigError(NO_SITES)
        return reports.status(self.settings, self.store, self.clock())

    def workers(self) -> list[WorkerStatus]:
        """The workers sharing the state (daemons, and commands while they send), with the
        sites each polls and how many notifications each is sending."""
        from wpnotify.service import reports

        return reports.workers(self.settings, self.store, self.clock())

    # --- the sites ---------------------------------------------------------------------------

    def site(self, name: str) -> SiteSettings:
        """The site in effect of that name; a ConfigError says why there is none (unknown,
        disabled, left out on this machine, no sites at all)."""
        return self.found.require(name)

    def sites(self) -> list[SiteRow]:
        """Every site known, from the configuration file and the state, with its problems."""
        from wpnotify.service.sites import in_effect

        return in_effect(self.configured, self.store.stored_sites()).rows

    def add_site(self, raw: Mapping[str, Any]) -> Added:
        """Stores a site given as the keys of a [[sites]] table (no password: a password
        file or a systemd credential); the daemons pick it up without a restart."""
        from wpnotify.service import sites

        self.store.require_writable()
        return sites.add(self.store, self.configured, raw, self.clock())

    def remove_site(self, name: str) -> None:
        """Removes a stored site (its history stays)."""
        from wpnotify.service import sites

        self.store.require_writable()
        sites.remove(self.store, self.configured, name)

    def set_site_disabled(self, name: str, disabled: bool) -> None:
        """Disables (or enables again) any site, of the configuration file or stored."""
        from wpnotify.service import sites

        self.store.require_writable()
        sites.set_disabled(self.store, self.configured, name, disabled, self.clock())

    def refresh_sites(self) -> Change:
        """Works out the sites in effect again (one query) and swaps in what changed: the
        settings, each new or changed site's source, the HTTP seam's trusted origins, and a
        sender over them. Call it between jobs (the daemon does, on its one worker thread):
        nothing of a cycle in progress is swapped under it."""
        from wpnotify.service.sites import Change

        found = sites_in_effect(self.configured, self.store)
        old = {site.name: site for site in self.settings.sites}
        new = {site.name: site for site in found.settings.sites}
        change = Change(added=[name for name in new if name not in old],
                        removed=[name for name in old if name not in new],
                        changed=[name for name in new if name in old and new[name] != old[name]],
                        problems=found.problems())
        self.found = found
        if not (change.added or change.removed or change.changed):
            return change
        if self.http is not None:
            from wpnotify.sources import make_source

            fresh = set(change.added) | set(change.changed)
            self.sources = {name: self.sources[name] if name in self.sources and name not in fresh
                            else make_source(self.http, site) for name, site in new.items()}
            self.http.trust(site.url for site in found.settings.sites)
        self.settings = found.settings
        if "sender" in self.__dict__:  # made already: it keeps what it learnt of the sites
            self.sender.use_sites(self.settings, self.sources)
        return change
