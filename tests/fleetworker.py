"""One worker of a fleet test, as its own process (the claims are a process's): sends what is
due on a shared state, then prints its tally as JSON. Run by tests/test_fleet.py:

    python tests/fleetworker.py STATE CONCURRENCY PER_HOST [LEASE [WORDPRESS_INTERVAL]]

STATE is a state file's path or a postgresql:// URL.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from wpnotify.http import Http
from wpnotify.sending.dispatch import Dispatcher
from wpnotify.sending.leases import Heartbeat
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.state import open_state


def main(where: str, concurrency: int, per_host: int, lease: float = 30.0,
         wordpress_interval: float = 15.0) -> None:
    settings = Settings(
        sites=(SiteSettings(name="s", url="https://s.example", username="u", password="p"),),
        worker_lease=lease,
        http=HttpSettings(allowed_networks=("127.0.0.1/32",), timeout=10,
                          concurrency=concurrency, per_host_concurrency=per_host,
                          wordpress_ping_interval=wordpress_interval))
    store = open_state(where if where.startswith("postgres") else Path(where))
    http = Http(settings.http)

    def now() -> datetime:
        return datetime.now(UTC)

    with Heartbeat(store, lease, now):
        tally = Dispatcher(settings, store, http, {}, now).deliver(["s"])
    http.close()
    store.close()
    print(json.dumps(tally.__dict__))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
         *(float(a) for a in sys.argv[4:6]))
