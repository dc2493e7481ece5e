"""Start-up (issue 13): read-only commands import only what they use. The bench times them;
these tests pin down the imports that made them slow, so a stray top-level import fails here
instead of showing up as a slower figure in some later bench run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wpnotify.state import open_state

PROBE = """
import json, runpy, sys
sys.argv = ["wpnotify", *json.loads(sys.argv[1])]
try:
    runpy.run_module("wpnotify", run_name="__main__")
except SystemExit:
    pass
print("\\n" + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""

HEAVY_FOR_READING = ("wpnotify.sending", "wpnotify.sources", "wpnotify.http", "wpnotify.kinds",
                     "structlog", "logging", "socket", "apscheduler", "xmlrpc", "email",
                     "concurrent.futures", "prometheus_client", "wpnotify.metrics",
                     "wpnotify.systemd", "http.server",
                     "psycopg")  # only a PostgreSQL state loads it


def imported(args: list[str], cwd: Path) -> set[str]:
    """The modules loaded by `wpnotify ARGS`, run in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names
                  if name in modules or any(m.startswith(name + ".") for m in modules))


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_load_no_library(flag: str, tmp_path: Path) -> None:
    modules = imported([flag], tmp_path)
    assert "click" in modules  # the probe ran the CLI
    assert loaded(modules, ("wpnotify.service", "wpnotify.state", "wpnotify.settings",
                            *HEAVY_FOR_READING)) == []


@pytest.mark.parametrize("command", [["history", "--post", "7"], ["status"]])
def test_reading_commands_load_neither_network_nor_logging(command: list[str],
                                                           tmp_path: Path) -> None:
    open_state(tmp_path / "state.sqlite3").close()
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "config.toml").write_text(
        'state_file = "state.sqlite3"\nmetrics_listen = "127.0.0.1:9464"\n'
        '[[sites]]\nname = "blog"\nurl = "https://blog.example"\n'
        'username = "admin"\npassword_file = "pw"\n')
    modules = imported(["--config", str(tmp_path / "config.toml"), *command], tmp_path)
    assert "wpnotify.state" in modules  # the command read the state file
    assert loaded(modules, HEAVY_FOR_READING) == []
