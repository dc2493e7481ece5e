"""``wpnotify run``: a thin loop around ``Service`` on APScheduler 3.

Each site is polled every ``poll_interval`` (never two polls of one site at once; missed runs
coalesce), and due notifications are sent every RETRY_TICK seconds (a third of worker_lease if
shorter). Every ``sites_refresh`` seconds the sites in effect are read again (`wpnotify sites`): a
new site gets its poll job, a removed or disabled one loses it, a changed one its source. All
jobs run on one worker thread, so the store and the HTTP client are never used
concurrently. SIGTERM or SIGINT stops new work; the job in flight finishes its current
notification (within GRACE seconds) and the state is left with nothing in flight.

Workers sharing one state (several daemons on one database) share the work: each polls the
sites whose lease it holds, no more than its fair share, and every third of a lease gives up
what is beyond its share and takes over what a stopped worker left in flight (``share_work``).
On a SQLite file, an exclusive lock beside it keeps a second daemon out.

Under systemd (``Type=notify``) it says READY once the polls are scheduled and STOPPING as it
stops, and feeds the watchdog from the work itself: the sender's passes, each job, and a tiny
job every ALIVE_TICK on the same one worker thread, so an idle daemon pings and a wedged job
stops the pings. With ``metrics_listen`` it serves /metrics and /healthz, whose limit is
``healthy_within`` (the same bound as the unit's WatchdogSec).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from wpnotify.errors import StateError, WpnotifyError
from wpnotify.service import Service, utcnow
from wpnotify.settings import Settings, SiteSettings
from wpnotify.systemd import Notifier

RETRY_TICK = 30.0
ALIVE_TICK = 10.0  # the idle daemon's proof of life, at most this far apart
HEALTHY_AT_LEAST = 180.0  # seconds without progress before /healthz says 503 (at least)
GRACE = 30.0
MAX_BACKOFF = 3600.0


def site_backoff(failures: int, poll_interval: float) -> float:
    """Seconds until a site that failed ``failures`` polls in a row is asked again: the poll
    interval, doubled for each failure after the first, never more than MAX_BACKOFF (a site
    down for a day is asked hourly, not every few minutes, nor never)."""
    if failures < 1:
        return poll_interval
    return min(poll_interval * 2.0 ** min(failures - 1, 64), max(MAX_BACKOFF, poll_interval))


def healthy_within(settings: Settings) -> float:
    """Seconds the loop may go without progress and still count as healthy: between two
    signs of life it makes a few requests at most (a site's next page, the receiver's reply,
    WordPress told at a cycle's end), each of which may take the whole timeout."""
    return max(HEALTHY_AT_LEAST, 6 * (settings.http.timeout + settings.http.connect_timeout))


def alive_tick(watchdog: float | None) -> float:
    """How often the idle daemon shows it is alive: well within the watchdog's half-period."""
    return ALIVE_TICK if watchdog is None else min(ALIVE_TICK, watchdog / 4)


log = structlog.get_logger("wpnotify.daemon")


@contextmanager
def exclusive(state: Path | str) -> Iterator[None]:
    """Holds ``<state_file>.lock`` for the daemon's lifetime; refuses if another holds it. A
    PostgreSQL state (``state`` is its URL) takes no lock: several workers sharing the
    database is what it is for (the state's leases keep them apart)."""
    if isinstance(state, str):
        yield
        return
    state_file = state
    lock_path = state_file.with_name(state_file.name + ".lock")
    try:
        handle = lock_path.open("a+")
    except OSError as exc:
        raise StateError(f"cannot create lock file {lock_path}: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise WpnotifyError(f"another wpnotify daemon (pid {holder}) is already running on "
                                f"{state_file}; stop it first, or give this one another "
                                "state_file") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


class Daemon:
    """Schedules polls and retries; ``stop()`` ends it gracefully."""

    def __init__(self, settings: Settings, service: Service,
                 environ: Mapping[str, str] | None = None) -> None:
        """``service``: built to stop when this daemon does (its ``stopping`` and ``sleep``
        read ``stopped``); see ``wpnotify.service.open_service``. ``environ``: where systemd's
        NOTIFY_SOCKET and WATCHDOG_USEC are read (the process's own by default)."""
        self.settings = settings
        self.service = service
        self.events = service.events
        self.notifier = Notifier(os.environ if environ is None else environ)
        service.watch(self.notifier)
        self.stopped = service.stop_event
        self._busy = threading.Lock()
        self._failing: dict[str, tuple[int, float]] = {}  # site -> (failed polls, not before)
        self._share = len(service.settings.sites)  # sites this worker may poll (share_work sets it)
        self._jobs: BackgroundScheduler | None = None  # the scheduler, while serving
        self._left_out: set[tuple[str, str]] = set()  # (site, problem) logged already

    def stop(self, *_signal: Any) -> None:
        if not self.stopped.is_set():
            log.info("daemon.stopping", grace_s=GRACE)
        self.stopped.set()

    def _job(self, name: str, work: Callable[[], None]) -> None:
        """Runs one job; no error escapes it, so the daemon never crash-loops."""
        if self.stopped.is_set():
            return
        with self._busy:
            self.events.alive()
            try:
                work()
            except WpnotifyError as exc:
                log.error("daemon.job_failed", job=name, error=str(exc))
            except Exception:  # noqa: BLE001 (a bug in one job must not end the daemon)
                log.exception("daemon.job_crashed", job=name)
            self.events.alive()

    def _tick(self, scheduler: BackgroundScheduler, every: float) -> None:
        """The tiny job between the others on the one worker thread: proof that it is free.
        Each tick schedules the next, once it has run: while a job blocks the thread, one
        tick waits behind it (an interval job would be refused, with a warning, each time)."""
        if self.stopped.is_set():
            return
        self.events.alive()
        scheduler.add_job(self._tick, "date", args=[scheduler, every],
                          run_date=utcnow() + timedelta(seconds=every))

    def poll_site(self, site: SiteSettings) -> None:
        """Reads a site and sends its due notifications, then judges the pings it received
        (``inbound`` on), if this worker polls it (see ``_mine``). A site that cannot be read
        is asked less often, doubling the wait up to MAX_BACKOFF, until it answers again; its
        posts are read then (the cursor did not move), so none is missed."""
        failures, not_before = self._failing.get(site.name, (0, 0.0))
        if time.monotonic() < not_before or not self._mine(site.name):
            return
        # The poll's bounds, with the worker: enough to see from the logs that no two
        # workers ever read one site at once.
        worker = self.service.heartbeat.worker
        log.info("site.poll_started", site=site.name, worker=worker)
        try:
            report = self.service.read(site)
        finally:
            log.info("site.poll_ended", site=site.name, worker=worker)
        self.events.polled(site.name, report.error is None, self.service.clock())
        self.events.alive()
        if report.error is None:
            if failures:
                log.info("site.recovered", site=site.name, failed_polls=failures)
            self._failing.pop(site.name, None)
            self.service.send_due([site.name])
            if site.inbound != "off":  # after the sending: notifications never wait for it
                self.service.inbound(site)
                self.events.alive()
            return
        failures += 1
        wait = site_backoff(failures, self.settings.poll_interval)
        self._failing[site.name] = (failures, time.monotonic() + wait - 1)
        log.warning("site.backing_off", site=site.name, failed_polls=failures,
                    next_poll_in_s=round(wait))
        self.service.send_due([site.name])  # receivers may be up even if the site is not

    def _mine(self, site: str) -> bool:
        """Whether this worker polls ``site``: it holds the site's lease already, or takes it
        (free, or its holder's lease passed) while it holds less than its fair share."""
        held = self.service.heartbeat.held
        if site not in held and len(held) >= self._share:
            return False
        return self.service.take_site(site)

    def send_due(self) -> None:
        self.service.send_due()

    def _poll(self, name: str) -> None:
        """The poll job of a site, by name: it reads the site's settings as they are now."""
        site = next((s for s in self.service.settings.sites if s.name == name), None)
        if site is not None:  # gone since the job was due: nothing to do
            self.poll_site(site)

    def _schedule(self, name: str) -> None:
        if self._jobs is None:  # not serving
            return
        self._jobs.add_job(self._job, "interval", seconds=self.settings.poll_interval,
                                args=[f"poll:{name}", lambda: self._poll(name)],
                                id=f"poll:{name}", next_run_time=utcnow(),
                                replace_existing=True)

    def refresh_sites(self) -> None:
        """Picks up the sites added, removed, disabled or changed in the state (`wpnotify
        sites`), without a restart: one query. Runs as a job, so between polls: a poll in
        progress finishes before its site goes."""
        change = self.service.refresh_sites()
        for site, problem in change.problems:
            if (site, problem) not in self._left_out:
                log.error("site.left_out", site=site, problem=problem)
        self._left_out = set(change.problems)
        if not (change.added or change.removed or change.changed):
            return
        for name in change.removed:
            self._failing.pop(name, None)
            if self._jobs is not None and self._jobs.get_job(f"poll:{name}"):
                self._jobs.remove_job(f"poll:{name}")
            self.service.release_site(name)  # no lease kept on a site no one should poll
        for name in change.added:
            self._schedule(name)
        for name in change.changed:
            self._failing.pop(name, None)  # a new URL or password: ask it again now
        self._share = self.service.balance()[0]  # the fair share of the sites now in effect
        log.info("sites.changed", added=change.added, removed=change.removed,
                 changed=change.changed)

    def share_work(self) -> None:
        """Every third of a lease: gives up sites beyond this worker's fair share (a worker
        joined), and takes over what workers that stopped left in flight, sending it now."""
        self._share, released = self.service.balance()
        if released:
            log.info("sites.released", sites=released, share=self._share,
                     detail="more workers share the state: another one polls these now")
        if self.service.take_over():
            self.service.send_due()

    def serve(self) -> None:
        """Runs until stop(); installs SIGTERM and SIGINT handlers. Refuses a state file it
        could only read: every poll would fail after reading the sites. With metrics_listen,
        its port is taken first: one that cannot be had stops the daemon before it starts."""
        self.service.require_writable()
        # APScheduler logs through the standard library, past structlog: plain text lines in
        # a JSON log. Its warning that a run was skipped while the one before it still runs
        # is the coalescing this loop intends (one job at a time); its errors still show.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        limit = healthy_within(self.settings)
        if self.notifier.watchdog is not None and self.notifier.watchdog < limit:
            log.warning("systemd.watchdog_short", watchdog_s=self.notifier.watchdog,
                        needs_s=limit, detail="a slow site or receiver may get the daemon "
                        "restarted; raise WatchdogSec= in the unit to at least needs_s")
        with contextlib.ExitStack() as stack:
            if self.settings.metrics_listen is not None:
                stack.enter_context(self.service.metrics(self.settings.metrics_listen, limit))
            stack.callback(self.notifier.close)
            self._serve()

    def _scheduler(self) -> BackgroundScheduler:
        """Every job on one worker thread: a poll per site, the retries, the alive tick."""
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC")
        self._jobs = scheduler
        self._left_out = set(self.service.found.problems())  # logged when the service opened
        for site in self.service.settings.sites:
            self._schedule(site.name)
        # Also how soon workers sharing a state join in sending what another one queued.
        scheduler.add_job(self._job, "interval",
                          seconds=min(RETRY_TICK, self.settings.worker_lease / 3),
                          args=["retries", self.send_due], id="retries")
        scheduler.add_job(self._job, "interval",
                          seconds=self.settings.worker_lease / 3,
                          args=["share", self.share_work], id="share")
        scheduler.add_job(self._job, "interval", seconds=self.settings.sites_refresh,
                          args=["sites", self.refresh_sites], id="sites")
        scheduler.add_job(self._tick, args=[scheduler, alive_tick(self.notifier.watchdog)])
        return scheduler

    def _serve(self) -> None:
        scheduler = self._scheduler()
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        # A worker until it stops (its leases renewed), taking its share of the sites.
        with self.service.working(daemon=True):
            self._share = self.service.balance()[0]
            scheduler.start()
            sites = [s.name for s in self.service.settings.sites]
            log.info("daemon.started", sites=sites,
                     poll_interval_s=self.settings.poll_interval,
                     worker=self.service.heartbeat.worker)
            self.notifier.ready(f"polling {len(sites)} site(s) every "
                                f"{self.settings.poll_interval:g} s")
            try:
                while not self.stopped.wait(1.0):
                    pass
            finally:
                self.notifier.stopping()
                self._shut_down(scheduler)

    def _shut_down(self, scheduler: BackgroundScheduler) -> None:
        scheduler.shutdown(wait=False)
        if self._busy.acquire(timeout=GRACE):
            self._busy.release()
            log.info("daemon.stopped")
        else:
            log.warning("daemon.stopped_with_work_in_flight",
                        detail="rows left 'sending' count as an interrupted attempt: "
                               "another worker, or the next run, sends them again")
