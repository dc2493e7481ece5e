"""What one delivery still has to send (per host, oldest first), the pages a backfill feeds
it, and the count of what it did."""

from __future__ import annotations

import queue
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from wpnotify.attempt import host_of
from wpnotify.sending.decide import pace_key, paced_apart
from wpnotify.state import HostState, Notification


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retrying: int = 0

    def count(self, status: str) -> None:
        if status == "pending":
            self.retrying += 1
        elif status in ("sent", "failed", "skipped"):
            setattr(self, status, getattr(self, status) + 1)

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.skipped += other.skipped
        self.retrying += other.retrying


class Feed:
    """Posts handed to a running delivery a page at a time, by a backfill's reader thread.
    The reader waits while a page is waiting, so it is never more than a page ahead."""

    def __init__(self) -> None:
        self._pages: queue.Queue[set[int]] = queue.Queue(maxsize=1)
        self._closed = threading.Event()  # the reader has no more
        self._cancelled = threading.Event()  # the delivery takes no more

    def put(self, posts: set[int]) -> bool:
        """Hands a page over; False when the delivery stopped taking them."""
        while not self._cancelled.is_set():
            try:
                self._pages.put(posts, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        self._closed.set()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def done(self) -> bool:
        return self._closed.is_set() and self._pages.empty()

    def take(self, timeout: float) -> set[int] | None:
        try:
            return self._pages.get(timeout=timeout) if timeout > 0 else self._pages.get_nowait()
        except queue.Empty:
            return None


class Backlog:
    """What one delivery still has to send, per host, oldest first within each host."""

    def __init__(self, items: list[Notification]) -> None:
        self.by_host: dict[str, deque[Notification]] = {}
        self.services: set[str] = set()  # endpoint URLs met in this run (paced apart)
        for n in items:
            self.push(n)

    def __len__(self) -> int:
        return sum(len(q) for q in self.by_host.values())

    def push(self, n: Notification) -> None:
        self.by_host.setdefault(host_of(n.target), deque()).append(n)
        if paced_apart(n):
            self.services.add(pace_key(n))

    def take(self, host: str) -> list[Notification]:
        return list(self.by_host.pop(host, ()))

    def drop(self, key: tuple[str, str, str]) -> int:
        """Removes those of this (site, kind, target); returns how many went."""
        gone = 0
        for host, q in list(self.by_host.items()):
            kept = deque(n for n in q if (n.site, n.kind, n.target) != key)
            gone += len(q) - len(kept)
            if kept:
                self.by_host[host] = kept
            else:
                del self.by_host[host]
        return gone

    def pick(self, now: datetime, hosts: Mapping[str, HostState],
             room: Callable[[str, Notification], int], slots: int) -> list[Notification]:
        """Up to ``slots`` notifications ready now, round-robin over hosts, at most
        ``room(host, n)`` more for each host."""
        picked: list[Notification] = []
        taken: Counter[str] = Counter()
        progress = True
        while progress and len(picked) < slots:
            progress = False
            for host in list(self.by_host):
                q = self.by_host[host]
                n = next((n for n in q if ready_at(n, now, hosts) <= now), None)
                if n is None or taken[host] >= room(host, n):
                    continue
                q.remove(n)
                if not q:
                    del self.by_host[host]
                picked.append(n)
                taken[host] += 1
                progress = True
                if len(picked) >= slots:
                    break
        return picked

    def next_ready(self, now: datetime, hosts: Mapping[str, HostState]) -> datetime | None:
        times = [ready_at(n, now, hosts) for q in self.by_host.values() for n in q]
        return min(times, default=None)

    def pace_keys(self) -> set[str]:
        """What the store's holds are read for: every host, and each URL paced apart."""
        return set(self.by_host) | self.services


def ready_at(n: Notification, now: datetime, hosts: Mapping[str, HostState]) -> datetime:
    """When ``n`` may go: its own retry time, its host's hold and its service's pacing."""
    ready = n.next_attempt_at or now
    for key in {host_of(n.target), pace_key(n)}:
        held = hosts.get(key)
        if held is not None and held.not_before is not None:
            ready = max(ready, held.not_before)
    return ready
