"""`check` warns about a password file other users can read and about an Application Password
sent over plain http:// to another host, from the configuration alone, without connecting
anywhere; warnings leave the exit status 0 (issue 12, item 14)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from wpnotify import cli, sources
from wpnotify.service import reports
from wpnotify.settings import load_settings
from wpnotify.sources import SiteInfo

pytestmark = pytest.mark.usefixtures("in_process_cli")




@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fails the test on any name lookup or connection."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise AssertionError(f"the check tried the network: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


class FineSite:
    """Stands in for the WordPress source: every site answers, bridge installed."""

    def check(self) -> tuple[SiteInfo, dict[str, Any]]:
        return SiteInfo("Blog", "https://blog.example"), {"bridge": "1.2", "editor_assets": True}


def write_config(tmp_path: Path, url: str, mode: int) -> Path:
    secret = tmp_path / "blog.password"
    secret.write_text("abcd efgh\n")
    secret.chmod(mode)
    config = tmp_path / "config.toml"
    config.write_text(f'[[sites]]\nname = "blog"\nurl = "{url}"\nusername = "u"\n'
                      'password_file = "blog.password"\n')
    return config


def run_check(capsys: pytest.CaptureFixture[str], config: Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        cli.main(["--config", str(config), "check"])
    out, err = capsys.readouterr()
    return (ended.value.code if isinstance(ended.value.code, int) else 0), out, err


def test_both_warnings_with_their_fixes_and_exit_0(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path, no_network: list[Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "make_source", lambda http, site, per_page=100: FineSite())
    config = write_config(tmp_path, "http://blog.example", 0o644)
    code, out, err = run_check(capsys, config)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, err
    secret = tmp_path / "blog.password"
    assert (f"warning: site blog: password_file {secret} is open to other users (mode 0644); "
            f"chmod 600 {secret}") in warnings
    assert any("http://blog.example is plain http://" in w and "use https://" in w
               and "clear text" in w for w in warnings)
    assert "problem:" not in err and "ok: site blog:" in out and "abcd" not in out + err
    assert no_network == []


def test_warnings_do_not_hide_problems(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    found = reports.CheckReport(problems=["site blog: cannot reach it"], warnings=["careful"])
    monkeypatch.setattr(reports, "check", lambda *args: found)
    code, _, err = run_check(capsys, write_config(tmp_path, "https://blog.example", 0o600))
    assert code == 1 and "warning: careful" in err and "problem: site blog:" in err


@pytest.mark.parametrize("url,mode", [
    ("https://blog.example", 0o600),
    ("https://blog.example", 0o400),
    ("http://127.0.0.1:8080", 0o600),
    ("http://127.9.0.1/wp", 0o600),
    ("http://localhost:8080", 0o600),
    ("http://wp.localhost", 0o600),
    ("http://[::1]:8080", 0o600),
    ("http://[::ffff:127.0.0.1]", 0o600),
])
def test_a_private_file_and_https_or_loopback_raise_no_warning(tmp_path: Path, url: str,
                                                               mode: int,
                                                               no_network: list[Any]) -> None:
    assert reports.config_warnings(load_settings(write_config(tmp_path, url, mode))) == []


@pytest.mark.parametrize("url", ["http://blog.example", "http://10.0.0.5/blog",
                                 "http://192.168.1.20", "http://[fd00::1]", "http://127.1",
                                 "http://localhost.evil.example"])
def test_plain_http_to_any_other_host_warns(tmp_path: Path, url: str,
                                            no_network: list[Any]) -> None:
    warnings = reports.config_warnings(load_settings(write_config(tmp_path, url, 0o600)))
    assert len(warnings) == 1 and "use https://" in warnings[0]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o602, 0o610])
def test_any_access_by_group_or_others_warns(tmp_path: Path, mode: int) -> None:
    warnings = reports.config_warnings(
        load_settings(write_config(tmp_path, "https://blog.example", mode)))
    assert len(warnings) == 1 and f"(mode {mode:04o}); chmod 600" in warnings[0]


@pytest.mark.parametrize("status,expected", [
    ({"bridge": "1.1"}, "bridge 1.1 is older than 1.2, so the editors show no notification "
                        "statuses"),
    ({"bridge": "1.0"}, "and the folder wordpress/wpnotify-bridge/"),
    ({"bridge": "1.2", "editor_assets": False}, "the bridge's folder wpnotify-bridge/ is "
                                                "missing"),
])
def test_a_bridge_that_cannot_show_statuses_is_named(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path, status: dict[str, Any],
                                                     expected: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14: sending works with a bridge 1.1 or without the editor scripts' folder, but
    the editors show no statuses; `check` says so (a warning, exit 0) and how to fix it."""
    site = FineSite()
    monkeypatch.setattr(site, "check", lambda: (SiteInfo("Blog", "https://blog.example"),
                                                status))
    monkeypatch.setattr(sources, "make_source", lambda http, s, per_page=100: site)
    code, out, err = run_check(capsys, write_config(tmp_path, "https://blog.example", 0o600))
    warnings = [line for line in err.splitlines() if line.startswith("warning: site blog:")]
    assert code == 0 and len(warnings) == 1 and expected in warnings[0], err
    assert f"bridge {status['bridge']} installed" in out


def test_a_current_bridge_with_its_folder_raises_no_editor_warning(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "make_source", lambda http, s, per_page=100: FineSite())
    code, _, err = run_check(capsys, write_config(tmp_path, "https://blog.example", 0o600))
    assert code == 0 and "warning" not in err, err


def test_check_names_the_proxy_and_a_readable_proxy_password(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        no_network: list[Any]) -> None:
    """`[http] proxy`: check says requests go through it and what it must refuse; its
    password file, like a site's, is a warning when others may read it (never its content)."""
    monkeypatch.setattr(sources, "make_source", lambda http, s, per_page=100: FineSite())
    config = write_config(tmp_path, "https://blog.example", 0o600)
    secret = tmp_path / "proxy.password"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    config.write_text('[http]\nproxy = "http://proxy.internal:3128"\nproxy_username = "f"\n'
                      'proxy_password_file = "proxy.password"\n' + config.read_text())
    code, out, err = run_check(capsys, config)
    assert code == 0, err
    assert "requests go through the proxy http://proxy.internal:3128, which must itself " \
           "refuse CONNECT to private" in out
    assert f"warning: [http] proxy_password_file {secret} is open to other users" in err
    assert "hunter2" not in out + err and no_network == []
