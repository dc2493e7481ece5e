"""Crash safety with real processes: `wpnotify poll` killed with SIGKILL at arbitrary moments
during a large send loses nothing, and what was in flight is sent again after its back-off
(receivers deduplicate, and wpnotify counts their "already registered" as sent)."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any

import devsite
import pytest
from receivers import PingbackReceiver, serving

pytestmark = pytest.mark.e2e
LINKS = 100  # to one receiver, two at a time (per_host_concurrency): about 5 s of sending
IN_FLIGHT = 2
KILLS = 6


def test_sigkill_during_a_large_send_loses_nothing(sites: dict[str, devsite.Site],
                                                  make_wpnotify: Any) -> None:
    source = sites["source"]
    rng = random.Random(1234)
    with serving(PingbackReceiver(delay=0.1)) as receiver:
        assert isinstance(receiver, PingbackReceiver)
        # An interrupted attempt counts and waits like a failed one: 1 s here, and room for
        # a notification in flight at every kill.
        tool = make_wpnotify([("crash", source, source.app_password)],
                             top=f"[retry]\ndelays = {[1] * (KILLS + 2)}")
        tool.run("poll")
        targets = [receiver.url(f"/t/{i}") for i in range(LINKS)]
        post = source.create_post(post_title="A hundred links", post_content="".join(
            f'<p><a href="{url}">{i}</a></p>' for i, url in enumerate(targets)))
        command = [sys.executable, "-m", "wpnotify", "--config", str(tool.config), "poll"]
        kills = 0
        for _ in range(KILLS):
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.8, 2.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        with sqlite3.connect(tool.state) as db:
            in_flight = db.execute("SELECT COUNT(*) FROM notifications WHERE status = 'sending'"
                                   ).fetchone()[0]
        assert kills >= 3, "the send finished too fast to be interrupted; raise LINKS"
        # The claims of the dead processes are recovered at once, and sent after the wait.
        tool.run("poll")
        time.sleep(1.5)
        final = tool.run("poll")
        assert "waiting to retry 0" in final.stdout, final.stdout
        rows = json.loads(tool.run("history", "--format", "json", "--post", str(post),
                                   "--limit", "100").stdout)
    assert len(rows) == LINKS
    assert {r["status"] for r in rows} == {"sent"}
    assert set(receiver.calls) == set(targets)  # every one arrived
    repeats = sum(count - 1 for count in receiver.calls.values())
    assert repeats <= kills * IN_FLIGHT  # at most those in flight at each kill went twice
    interrupted = [r for r in rows if "interrupted by a crash" in (r["response"] or "")]
    assert len(interrupted) >= min(in_flight, 1)
    assert all(r["attempts"] >= 2 for r in interrupted)
