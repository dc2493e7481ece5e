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
    # A password in the site's URL (both spellings) is refused at load, never echoed.
    in_url = tool.config.parent / "in-url.toml"
    joined, encoded = WRONG.replace(" ", ""), WRONG.replace(" ", "%20")
    in_url.write_text(f'[[sites]]\nname = "x"\nurl = "http://admin:{joined}@'
                      f'{source.url.split("//")[1]}"\nusername = "u"\npassword = "p"\n'
                      f'update_services = ["http://admin:{encoded}@r.example/"]\n')
    for config, args in [(c, a) for c in (bad_config, in_url)
                         for a in (["poll"], ["check"], ["history"], ["status"])]:
        proc = subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(config),
                               *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        outputs.extend([proc.stdout, proc.stderr])
    assert "remove the user name and password from the URL" in "".join(outputs)

    everything = "\n".join(outputs)
    assert "refused the credentials" in everything  # the bad site was really tried
    assert "notification.attempt" in everything  # and something was really sent
    state = b"".join(p.read_bytes() for p in tool.state.parent.glob("state.sqlite3*"))
    for secret in (right, WRONG):
        basic = base64.b64encode(f"admin:{secret}".encode()).decode()  # an Authorization header
        for form in (secret, secret.replace(" ", ""), secret.replace(" ", "%20"), basic):
            assert form not in everything
            assert form.encode() not in state
