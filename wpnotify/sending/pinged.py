"""WordPress's `pinged` lists, kept in step with what was sent: the one place that writes back
to WordPress.

Sent links go to the state file's outbox with their outcome (in the dispatcher's transaction),
and are told to WordPress through the bridge, as core would add them, PINGED_BATCH links a
request, on a thread of their own so that sending never waits for WordPress. What cannot be
told (WordPress down, no bridge yet) stays in the outbox for the next cycle, across restarts
too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from wpnotify.errors import SourceError, WpnotifyError
from wpnotify.state import PingedOutbox, SiteLog

if TYPE_CHECKING:  # the protocol only: sending never calls into a source's package
    from wpnotify.sources import Source

PINGED_BATCH = 50  # sent links told to WordPress in one request; small, so the last is quick
PINGED_BATCHES = 20  # requests per site and flush at most: a long backlog (a bridge installed
# after months) goes over several cycles instead of holding one cycle's end

log = structlog.get_logger("wpnotify.sender")


class Outbox(PingedOutbox, SiteLog, Protocol):
    """What the mirror needs of the state: the outbox, and whether a site has the bridge."""


class PingedMirror:
    """Tells each site's WordPress what was sent for its posts. The dispatcher says which
    sites a cycle delivers (``include``), what was sent (``sent``) and when the cycle ends
    (``close``); the mirror decides when to write back."""

    def __init__(self, store: Outbox, sources: Mapping[str, Source],
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.sources = sources
        self.stopping = stopping  # a daemon's shutdown: one request at most, the rest waits
        self._worker: ThreadPoolExecutor | None = None  # tells WordPress, off the send loop
        self._unflushed = 0  # links sent since WordPress was last told
        self._told: set[str] = set()  # the sites delivered in this cycle: WordPress is told

    def open(self) -> None:
        """A cycle begins: write-backs go to the mirror's own thread until ``close``."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wpnotify-pinged")

    def include(self, sites: Iterable[str]) -> None:
        """These sites are delivered in this cycle: their outboxes are emptied at its end (a
        backfill of one site leaves the others' to the daemon: two writers of one post's
        pinged list could lose a link)."""
        self._told.update(sites)

    def sent(self, site: str, post_id: int, targets: list[str], now: datetime) -> None:
        """Notes sent links in the outbox (in the caller's transaction, with their outcome);
        every PINGED_BATCH of them, WordPress is told without waiting for the cycle's end."""
        self.store.queue_pinged(site, post_id, targets, now)
        self._unflushed += len(targets)
        if self._unflushed >= PINGED_BATCH:
            self.flush()

    def close(self) -> None:
        """The cycle ended: WordPress is told what was sent (and what an earlier cycle could
        not tell it); returns once that is done."""
        try:
            self.flush()
        finally:
            if self._worker is not None:
                self._worker.shutdown(wait=True)
            self._worker = None
            self._told = set()

    def flush(self) -> None:
        """Hands every delivered site's outbox to the mirror's thread (or, outside a cycle,
        empties it here)."""
        self._unflushed = 0
        for site in sorted(self._told):
            source = self.sources.get(site)
            if source is None:
                continue
            if self._worker is not None:
                self._worker.submit(self._tell, site, source)
            else:
                self._tell(site, source)

    def _tell(self, site: str, source: Source) -> None:
        """Empties one site's outbox, a batch at a time (PINGED_BATCHES at most); stops at
        the first failure (the rest waits). Never raises: it runs beside the sending."""
        try:
            state = self.store.site(site)
            if state is not None and state.bridge is False:
                return  # no bridge: the links wait until it is installed
            for batch in range(PINGED_BATCHES):
                if batch and self.stopping():
                    return  # shutting down: one request at most, the rest waits
                if not (waiting := self.store.pinged_waiting(site, PINGED_BATCH)):
                    return
                try:
                    source.record_pinged_many(waiting)
                except SourceError as exc:
                    log.warning("wordpress.record_pinged_failed", site=site,
                                posts=len(waiting), error=str(exc),
                                detail="kept; WordPress is told again at the next cycle")
                    return
                self.store.pinged_told(site, waiting)
        except WpnotifyError as exc:
            log.warning("wordpress.record_pinged_failed", site=site, error=str(exc),
                        detail="kept; WordPress is told again at the next cycle")
        except Exception:  # noqa: BLE001 (a bug here must not stop the sending)
            log.exception("wordpress.record_pinged_failed", site=site)
