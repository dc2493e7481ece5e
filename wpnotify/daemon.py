"""``wpnotify run``: a thin loop around ``Service`` on APScheduler 3.

Each site is polled every ``poll_interval`` (never two polls of one site at once; missed runs
coalesce), and due notifications are sent every RETRY_TICK seconds (a third of worker_lease if
shorter). All jobs run on one worker thread, so the store and the HTTP client are never used
concurrently. SIGTERM or SIGINT stops new work; the job in flight finishes its current
notification (within GRACE seconds) and the state is left with nothing in flight.

Workers sharing one state (several daemons on one database) share the work: each polls the
sites whose lease it holds, no more than its fair share, and every third of a lease gives up
what is beyond its share and takes over what a stopped worker left in flight (``share_work``).
On a SQLite file, an exclusive lock beside it keeps a second daemon out."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from wpnotify.errors import StateError, WpnotifyError
from wpnotify.service import Service, utcnow
from wpnotify.settings import Settings, SiteSettings

RETRY_TICK = 30.0
GRACE = 30.0
MAX_BACKOFF = 3600.0


def site_backoff(failures: int, poll_interval: float) -> float:
    """Seconds until a site that failed ``failures`` polls in a row is asked again: the poll
    interval, doubled for each failure after the first, never more than MAX_BACKOFF (a site
    down for a day is asked hourly, not every few minutes, nor never)."""
    if failures < 1:
        return poll_interval
    return min(poll_interval * 2.0 ** min(failures - 1, 64), max(MAX_BACKOFF, poll_interval))
log = structlog.get_logger("wpnotify.daemon")


@contextmanager
def exclusive(state_file: Path) -> Iterator[None]:
    """Holds ``<state_file>.lock`` for the daemon's lifetime; refuses if another holds it."""
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

    def __init__(self, settings: Settings, service: Service) -> None:
        """``service``: built to stop when this daemon does (its ``stopping`` and ``sleep``
        read ``stopped``); see ``wpnotify.service.open_service``."""
        self.settings = settings
        self.service = service
        self.stopped = service.stop_event
        self._busy = threading.Lock()
        self._failing: dict[str, tuple[int, float]] = {}  # site -> (failed polls, not before)
        self._share = len(settings.sites)  # sites this worker may poll (share_work sets it)

    def stop(self, *_signal: Any) -> None:
        if not self.stopped.is_set():
            log.info("daemon.stopping", grace_s=GRACE)
        self.stopped.set()

    def _job(self, name: str, work: Callable[[], None]) -> None:
        """Runs one job; no error escapes it, so the daemon never crash-loops."""
        if self.stopped.is_set():
            return
        with self._busy:
            try:
                work()
            except WpnotifyError as exc:
                log.error("daemon.job_failed", job=name, error=str(exc))
            except Exception:  # noqa: BLE001 (a bug in one job must not end the daemon)
                log.exception("daemon.job_crashed", job=name)

    def poll_site(self, site: SiteSettings) -> None:
        """Reads a site and sends its due notifications, if this worker polls it (see
        ``_mine``). A site that cannot be read is asked less often, doubling the wait up to
        MAX_BACKOFF, until it answers again; its posts are read then (the cursor did not
        move), so none is missed."""
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
        if report.error is None:
            if failures:
                log.info("site.recovered", site=site.name, failed_polls=failures)
            self._failing.pop(site.name, None)
            self.service.send_due([site.name])
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
        could only read: every poll would fail after reading the sites."""
        self.service.require_writable()
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC")
        for site in self.settings.sites:
            scheduler.add_job(self._job, "interval", seconds=self.settings.poll_interval,
                              args=[f"poll:{site.name}", lambda s=site: self.poll_site(s)],
                              id=f"poll:{site.name}", next_run_time=utcnow())
        # Also how soon workers sharing a state join in sending what another one queued.
        scheduler.add_job(self._job, "interval",
                          seconds=min(RETRY_TICK, self.settings.worker_lease / 3),
                          args=["retries", self.send_due], id="retries")
        scheduler.add_job(self._job, "interval",
                          seconds=self.settings.worker_lease / 3,
                          args=["share", self.share_work], id="share")
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        with self.service.working():  # a worker until it stops: its leases renewed
            self._share = self.service.balance()[0]
            scheduler.start()
            log.info("daemon.started", sites=[s.name for s in self.settings.sites],
                     poll_interval_s=self.settings.poll_interval,
                     worker=self.service.heartbeat.worker)
            try:
                while not self.stopped.wait(1.0):
                    pass
            finally:
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
