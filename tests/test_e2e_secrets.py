"""Secrets never appear in logs, history, `check` or `status` output, error messages or the
state file: every output of a session of real commands is searched for the passwords."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from typing import Any

import devsite
import pytest

pytestmark = pytest.mark.e2e
WRONG = "Zq9x Wr0ng Pass 7777"


def test_no_password_in_any_output_or_state(sites: dict[str, devsite.Site],
                                            make_wpnotify: Any) -> None:
    source, target = sites["source"], sites["target"]
    right = source.app_password
    tool = make_wpnotify([("good", source, right), ("bad", source, WRONG)],
                         top="poll_interval = 5")
    outputs: list[str] = []

    def run(*args: str) -> None:
        proc = tool.run("--log-level", "debug", *args, check=False)
        outputs.extend([proc.stdout, proc.stderr])

    run("poll")
    goal = target.create_post(post_title="Secret keeper")
    source.create_post(post_title="Links", post_content=f'<a href="{target.permalink(goal)}">'
                                                        "x</a>")
    run("poll")
    run("check")
    run("status")
    run("status", "--format", "json")
    for fmt in ("table", "json", "csv"):
        run("history", "--format", fmt)
    daemon = subprocess.Popen([sys.executable, "-m", "wpnotify", "--config", str(tool.config),
                               "--log-level", "debug", "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    daemon.send_signal(signal.SIGTERM)
    outputs.extend(daemon.communicate(timeout=60))

    bad_config = tool.config.parent / "bad.toml"
    bad_config.write_text(f'[[sites]]\nname = "x"\nurl = "not a url"\nusername = "u"\n'
                          f'password = "{WRONG}"\n')
    for args in (["poll"], ["check"], ["history"]):
        proc = subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(bad_config),
                               *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 2
        outputs.extend([proc.stdout, proc.stderr])

    everything = "\n".join(outputs)
    assert "refused the credentials" in everything  # the bad site was really tried
    assert "notification.attempt" in everything  # and something was really sent
    state = b"".join(p.read_bytes() for p in tool.state.parent.glob("state.sqlite3*"))
    for secret in (right, WRONG):
        basic = base64.b64encode(f"admin:{secret}".encode()).decode()  # an Authorization header
        for form in (secret, secret.replace(" ", ""), basic):
            assert form not in everything
            assert form.encode() not in state
