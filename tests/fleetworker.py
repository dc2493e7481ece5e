"""One worker of a fleet test, as its own process (the claims are a process's): sends what is
due on a shared state, then prints its tally as JSON. Run by tests/test_fleet.py:

    python tests/fleetworker.py STATE CONCURRENCY PER_HOST [LEASE [WORDPRESS_INTERVAL]]
        [--posts=ID,ID...] [--others-wait=SECONDS] [--mark-wait=PATH]

STATE is a state file's path or a postgresql:// URL. --posts: only these posts' notifications;
--others-wait: the longest look-again while other workers' requests fill the hosts (the
dispatcher's OTHERS_WAIT); --mark-wait: a file made when it first waits for room. The tally
also counts the waits for room that were told of it
(``told``) and those that ran out (``waited_out``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wpnotify.http import Http
from wpnotify.sending import dispatch
from wpnotify.sending.dispatch import Dispatcher
from wpnotify.sending.leases import Heartbeat
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.state import open_state


def main(where: str, concurrency: int, per_host: int, lease: float = 30.0,
         wordpress_interval: float = 15.0, posts: set[int] | None = None,
         mark_wait: str | None = None) -> None:
    settings = Settings(
        sites=(SiteSettings(name="s", url="https://s.example", username="u", password="p"),),
        worker_lease=lease,
        http=HttpSettings(allowed_networks=("127.0.0.1/32",), timeout=10,
                          concurrency=concurrency, per_host_concurrency=per_host,
                          wordpress_ping_interval=wordpress_interval))
    store = open_state(where if where.startswith("postgres") else Path(where))
    http = Http(settings.http)
    waits = {"told": 0, "waited_out": 0}
    wait_for_room = store.wait_for_room

    def counted(*args: Any, **kwargs: Any) -> bool:
        if mark_wait is not None:
            Path(mark_wait).touch()
        told = wait_for_room(*args, **kwargs)
        waits["told" if told else "waited_out"] += 1
        return told
    store.wait_for_room = counted  # type: ignore[method-assign]

    def now() -> datetime:
        return datetime.now(UTC)

    with Heartbeat(store, lease, now):
        tally = Dispatcher(settings, store, http, {}, now).deliver(["s"], posts)
    http.close()
    store.close()
    print(json.dumps({**tally.__dict__, **waits}))


if __name__ == "__main__":
    flags = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    plain = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "others-wait" in flags:
        dispatch.OTHERS_WAIT = float(flags["others-wait"])
    main(plain[0], int(plain[1]), int(plain[2]), *(float(a) for a in plain[3:5]),
         posts={int(p) for p in flags["posts"].split(",")} if "posts" in flags else None,
         mark_wait=flags.get("mark-wait"))
