"""The command line: exit codes, one-line errors, history renderers, and docs that match."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wpnotify.cli import HISTORY_FIELDS, cli
from wpnotify.state.sqlite import SqliteState

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WPNOTIFY_")}
    return subprocess.run([sys.executable, "-m", "wpnotify", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, timeout=60, check=False)


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[[sites]]\nname = "blog"\nurl = "https://blog.example"\n'
                    'username = "u"\npassword = "topsecret pw"\n')
    store = SqliteState.open(tmp_path / "wpnotify.sqlite3")
    store.add("blog", 7, "pingback", "https://t.example/a", "https://blog.example/p", NOW)
    store.add("blog", 7, "trackback", "https://t.example/tb", "https://blog.example/p", NOW,
              status="failed", error="Sorry, trackbacks are closed for this item.",
              error_code="closed")
    store.add("blog", 8, "pingback", "https://t.example/b", "https://blog.example/q", NOW)
    store.close()
    return path


def test_history_json_has_the_promised_fields(config: Path) -> None:
    proc = run("--config", str(config), "history", "--format", "json", "--post", "7")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["kind"] for r in rows} == {"pingback", "trackback"}
    for field in ("site", "post_id", "source", "target", "kind", "status", "attempts",
                  "endpoint", "error", "created_at", "sent_at"):
        assert all(field in row for row in rows)
    failed = next(r for r in rows if r["kind"] == "trackback")
    assert failed["status"] == "failed" and "closed" in failed["error"]


def test_history_csv_and_filters(config: Path) -> None:
    proc = run("--config", str(config), "history", "--format", "csv", "--kind", "pingback")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert list(rows[0]) == list(HISTORY_FIELDS)
    assert sorted(r["target"] for r in rows) == ["https://t.example/a", "https://t.example/b"]
    proc = run("--config", str(config), "history", "--status", "failed", "--limit", "5")
    assert "trackbacks are closed" in proc.stdout and "t.example/a" not in proc.stdout


def test_an_empty_history_says_so(config: Path) -> None:
    proc = run("--config", str(config), "history", "--post", "999")
    assert proc.returncode == 0 and "no notifications recorded" in proc.stdout


@pytest.mark.parametrize("args,expected", [
    (["history", "--site", "nope"], "no site named 'nope'"),
    (["history", "--status", "bogus"], "Invalid value for '--status'"),
    (["history", "--limit", "0"], "Invalid value for '--limit'"),
])
def test_bad_options_are_one_line_errors(config: Path, args: list[str], expected: str) -> None:
    proc = run("--config", str(config), *args)
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_bad_configuration_exits_2_with_one_line_and_no_secret(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sites]]\nname = "b"\nurl = "nope"\nusername = "u"\n'
                   'password = "topsecret pw"\n')
    proc = run("--config", str(bad), "poll")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sites[0].url" in lines[0]
    assert "topsecret" not in proc.stderr + proc.stdout


def test_no_configuration_at_all_names_the_fix(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "wpnotify", "history"], cwd=tmp_path,
                          capture_output=True, text=True, check=False,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("WPNOTIFY_")})
    if Path("/etc/wpnotify/config.toml").exists():
        pytest.skip("this machine has a system-wide config")
    assert proc.returncode == 2 and "--config PATH or set WPNOTIFY_CONFIG" in proc.stderr


def test_wpnotify_config_variable_is_read(config: Path) -> None:
    proc = run("history", "--format", "json", env={"WPNOTIFY_CONFIG": str(config)})
    assert proc.returncode == 0 and len(json.loads(proc.stdout)) == 3


def test_readme_documents_every_command_and_option() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, command in cli.commands.items():
        assert f"wpnotify {name}" in readme, f"README does not show `wpnotify {name}`"
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in readme, f"README does not mention {name} {opt}"
    for param in cli.params:
        for opt in param.opts:
            if opt.startswith("--") and opt not in ("--help", "--version"):
                assert opt in readme, f"README does not mention {opt}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "scripts/setup && .venv/bin/python -m pytest"
    assert command in readme and command in ci


def test_retry_requeues_failed_notifications(config: Path) -> None:
    rows = json.loads(run("--config", str(config), "history", "--format", "json").stdout)
    failed = next(r for r in rows if r["status"] == "failed")
    proc = run("--config", str(config), "retry", str(failed["id"]))
    assert proc.returncode == 0 and "1 notification(s) queued again" in proc.stdout
    again = run("--config", str(config), "retry", str(failed["id"]))
    assert again.returncode == 1 and "only failed notifications can be retried" in again.stderr
    assert run("--config", str(config), "retry").returncode == 2
    proc = run("--config", str(config), "retry", "--all-failed", "--since", "2020-01-01")
    assert proc.returncode == 0 and "0 notification(s)" in proc.stdout
