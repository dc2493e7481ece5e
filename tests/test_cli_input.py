"""Bad input at the command line or in the configuration: exit status 2, one line on stderr
naming the key or option and the fix, never a traceback (issue 12, items 11 and 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wpnotify.cli import main
from wpnotify.state.sqlite import SqliteState

pytestmark = pytest.mark.usefixtures("in_process_cli")

SITE = ('[[sites]]\nname = "blog"\nurl = "https://blog.example"\nusername = "u"\n'
        'password = "topsecret pw"\n')


def wpnotify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Runs the real entry point (main, where errors become lines and exit codes) in-process."""
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    out, err = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 0), out, err


def assert_one_line_error(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]




@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(SITE)
    SqliteState.open(tmp_path / "wpnotify.sqlite3").close()
    return path


@pytest.mark.parametrize("text,expected", [
    ("sites = 5\n", ["sites:", "[[sites]] table"]),
    ("sites = [5]\n", ["sites[0]:", "table"]),
    ('[http]\nuser_agent = "wpnotify\\r\\nX-Injected: 1"\n' + SITE,
     ["http.user_agent:", "no CR, LF"]),
    ('[http]\nuser_agent = "wpnotify\\u0000"\n' + SITE, ["http.user_agent:", "printable ASCII"]),
    ('[http]\nuser_agent = "wpnotify\\u001b[31m"\n' + SITE, ["http.user_agent:"]),
    ('state_file = "state\\u0000.sqlite3"\n' + SITE, ["state_file:", "NUL"]),
    (SITE.replace('password = "topsecret pw"', 'password_file = "pw\\u0000"'),
     ["sites[0].password_file:", "NUL"]),
    (SITE.replace('username = "u"', 'username = "u\\r\\nx"'), ["sites[0].username:"]),
    (SITE.replace("https://blog.example", "https://blog.example:99999"),
     ["sites[0].url:", "port"]),
])
def test_bad_config_values_are_one_line_errors(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, text: str,
                                               expected: list[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    code, _, err = wpnotify(capsys, "--config", str(path), "history")
    assert_one_line_error(code, err, *expected)


@pytest.mark.parametrize("text", ["sites = []\n", ""])
@pytest.mark.parametrize("command", [["status"], ["poll"],
                                     ["backfill", "--site", "blog", "--since", "2020-01-01"]])
def test_no_sites_at_all_is_one_line_naming_both_ways_to_add_one(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str,
        command: list[str]) -> None:
    """A configuration without [[sites]] is valid (a fleet adds sites with `wpnotify sites
    add`, issue 15), but a command that needs a site says there is none, and how to add one."""
    path = tmp_path / "config.toml"
    path.write_text(text)
    code, _, err = wpnotify(capsys, "--config", str(path), *command)
    assert_one_line_error(code, err, "no sites to watch", "[[sites]] table",
                          "wpnotify sites add")
    code, out, err = wpnotify(capsys, "--config", str(path), "history")
    assert (code, err) == (0, "") and "no notifications" in out


def test_one_bad_site_is_one_error_not_also_an_empty_site_list(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SITE.replace("https://blog.example", "nope"))
    code, _, err = wpnotify(capsys, "--config", str(path), "history")
    assert_one_line_error(code, err, "sites[0].url: must be the site's address")
    assert "at least 1 item" not in err and "; sites:" not in err


@pytest.mark.parametrize("name,value", [
    ("WPNOTIFY_SITES", '[{"name": "blog",'),
    ("WPNOTIFY_SITES", "blog"),
    ("WPNOTIFY_HTTP", "{timeout: 5}"),
    ("WPNOTIFY_HTTP__ALLOWED_NETWORKS", "[10.0.0.0/8]"),
    ("WPNOTIFY_RETRY__DELAYS", "[60,"),
])
def test_malformed_json_in_the_environment_names_the_variable(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path,
        name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("WPNOTIFY_HTTP__USER_AGENT", "not json, and not the culprit")
    code, _, err = wpnotify(capsys, "--config", str(config), "history")
    assert_one_line_error(code, err, f"environment variable {name}:", "not valid JSON")
    assert "USER_AGENT" not in err


@pytest.mark.parametrize("args,expected", [
    (["history", "--limit", "99999999999999999999"], "'--limit'"),
    (["history", "--limit", str(2**63)], "'--limit'"),
    (["history", "--limit", "0"], "'--limit'"),
    (["history", "--post", "99999999999999999999"], "'--post'"),
    (["retry", "99999999999999999999"], "IDS"),
    (["retry", "1", str(2**63)], "IDS"),
    (["backfill", "--site", "blog", "--post", str(2**64), "--since", "2020-01-01"], "'--post'"),
    (["backfill", "--site", "blog", "--since", "0001-01-01", "--dry-run"], "'--since'"),
    (["backfill", "--site", "blog", "--since", "0999-12-31"], "1000-01-01 to 9999-12-31"),
    (["backfill", "--site", "blog", "--since", "2020-01-01", "--until", "0001-01-02"],
     "'--until'"),
    (["retry", "--all-failed", "--since", "0001-01-01"], "'--since'"),
    (["history", "--format", "xml"], "'--format'"),
    (["nosuch"], "No such command"),
])
def test_bad_options_are_one_line_errors_with_exit_2(capsys: pytest.CaptureFixture[str],
                                                     config: Path, args: list[str],
                                                     expected: str) -> None:
    code, _, err = wpnotify(capsys, "--config", str(config), *args)
    assert_one_line_error(code, err, "wpnotify: error:", expected)


def test_the_largest_ids_sqlite_holds_are_taken(capsys: pytest.CaptureFixture[str],
                                                config: Path) -> None:
    biggest = str(2**63 - 1)
    code, out, err = wpnotify(capsys, "--config", str(config), "history", "--limit", biggest,
                              "--post", biggest)
    assert code == 0 and "no notifications recorded" in out, err
    code, _, err = wpnotify(capsys, "--config", str(config), "retry", biggest)
    assert code == 1 and "no such notification" in err


def test_the_real_command_prints_one_line_for_an_overflowing_date(config: Path) -> None:
    """Through a real process too: what a user sees, nothing swallowed by the test harness."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WPNOTIFY_")}
    proc = subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(config),
                           "backfill", "--site", "blog", "--since", "0001-01-01", "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert_one_line_error(proc.returncode, proc.stderr, "'--since'", "out of range")
    assert proc.stdout == ""


@pytest.mark.parametrize("command", [["poll"], ["check"], ["status"], ["history"],
                                     ["backfill", "--site", "blog", "--since", "2020-01-01"]])
def test_a_password_in_the_site_url_is_refused_and_never_printed(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SITE.replace("https://blog.example", "http://admin:Hunter2Url@127.0.0.1"))
    code, out, err = wpnotify(capsys, "--config", str(path), *command)
    assert_one_line_error(code, err, "sites[0].url: remove the user name and password from "
                          "the URL; use username and password_file")
    assert "Hunter2Url" not in out + err and not (tmp_path / "wpnotify.sqlite3").exists()
