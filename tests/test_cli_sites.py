"""`wpnotify sites add|list|remove|disable|enable` (issue 15): sites kept in the state beside
the configuration file's, the same checks, no password in the database, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wpnotify.cli import main
from wpnotify.service import Service, make_sources, open_service, utcnow
from wpnotify.settings import load_settings
from wpnotify.state import open_state

pytestmark = pytest.mark.usefixtures("in_process_cli")

PASSWORD = "abcd EFGH ijkl MNOP qrst UVWX"
TOML_SITE = ('[[sites]]\nname = "toml"\nurl = "https://toml.example"\nusername = "u"\n'
             'password_file = "pw"\n')


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "config.toml").write_text('state_file = "state.sqlite3"\n' + TOML_SITE)
    return tmp_path


def wpnotify(capsys: pytest.CaptureFixture[str], folder: Path, *args: str
             ) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        main(["--config", str(folder / "config.toml"), *args])
    out, err = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 0), out, err


def add(capsys: pytest.CaptureFixture[str], folder: Path, name: str = "blog",
        *extra: str) -> tuple[int, str, str]:
    return wpnotify(capsys, folder, "sites", "add", name, "--url", "https://blog.example/",
                    "--username", "admin", "--password-file", str(folder / "pw"), *extra)


def listed(capsys: pytest.CaptureFixture[str], folder: Path) -> dict[str, dict[str, object]]:
    code, out, err = wpnotify(capsys, folder, "sites", "list", "--format", "json")
    assert (code, err) == (0, "")
    return {row["name"]: row for row in json.loads(out)}


def one_line_error(code: int, err: str, expected: int = 1) -> str:
    assert code == expected, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_site_added_is_listed_beside_the_configuration_files(
        capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    code, out, err = add(capsys, folder, "blog", "--post-type", "post", "--post-type", "page",
                         "--prefer", "both", "--api", "xmlrpc", "--self-pings",
                         "--max-trackbacks", "3", "--deny-host", "*.spam.example",
                         "--update-service", "http://rpc.pingomatic.com/")
    assert (code, err) == (0, "") and "site blog stored" in out
    rows = listed(capsys, folder)
    assert rows["toml"] == {"name": "toml", "from": "config", "url": "https://toml.example",
                            "api": "rest", "enabled": True, "problems": []}
    assert rows["blog"] == {"name": "blog", "from": "state", "url": "https://blog.example",
                            "api": "xmlrpc", "enabled": True, "problems": []}
    code, out, _ = wpnotify(capsys, folder, "sites", "list")
    assert out.splitlines()[0].split() == ["NAME", "FROM", "API", "STATE", "URL"]
    settings = load_settings(folder / "config.toml")
    with open_service(settings, network=False) as service:
        site = service.site("blog")
    assert (site.post_types, site.prefer, site.self_pings, site.max_trackbacks_per_post,
            site.deny_hosts, site.secret()) == (("post", "page"), "both", True, 3,
                                                ("*.spam.example",), PASSWORD)
    assert site.password_file == folder / "pw"


def test_the_state_holds_no_password_after_sites_add(capsys: pytest.CaptureFixture[str],
                                                     folder: Path) -> None:
    assert add(capsys, folder)[0] == 0
    wpnotify(capsys, folder, "sites", "disable", "blog")
    data = b"".join(path.read_bytes() for path in folder.glob("state.sqlite3*"))
    assert b"blog.example" in data  # the site is there...
    for secret in (PASSWORD, PASSWORD.replace(" ", "")):
        assert secret.encode() not in data  # ...its password is not
    [entry] = open_state(folder / "state.sqlite3").stored_sites()
    assert entry.config is not None and entry.config["password_file"] == str(folder / "pw")


def test_a_relative_password_file_is_stored_as_an_absolute_path(
        capsys: pytest.CaptureFixture[str], folder: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    code, _, err = wpnotify(capsys, folder, "sites", "add", "blog", "--url",
                            "https://blog.example", "--username", "u", "--password-file", "pw")
    assert (code, err) == (0, "")
    [entry] = open_state(folder / "state.sqlite3").stored_sites()
    assert entry.config is not None and entry.config["password_file"] == str(folder / "pw")


def test_an_unreadable_password_file_is_stored_with_a_warning_and_listed_as_a_problem(
        capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    code, out, err = wpnotify(capsys, folder, "sites", "add", "far", "--url",
                              "https://far.example", "--username", "u", "--password-file",
                              str(folder / "elsewhere"))
    assert code == 0 and "site far stored" in out
    assert err.startswith("warning: password_file") and "must be able to read it" in err
    [problem] = listed(capsys, folder)["far"]["problems"]  # type: ignore[misc]
    assert "cannot read it" in problem and "wpnotify sites remove far" in problem
    code, _, err = wpnotify(capsys, folder, "history", "--site", "far")
    assert (code, err) == (0, "")  # its history is still there to read
    code, _, err = wpnotify(capsys, folder, "backfill", "--site", "far", "--since",
                            "2020-01-01")
    logged, line = err.strip().splitlines()  # the log names it, and so does the error
    assert code == 2 and json.loads(logged)["event"] == "site.left_out"
    assert line.startswith("wpnotify: error: site 'far': left out on this machine")


@pytest.mark.parametrize("args,expected,code", [
    (["--url", "https://u:secret@blog.example"], "remove the user name and password", 2),
    (["--url", "blog.example"], "url: must be the site's address", 2),
    (["--max-trackbacks", "-1"], "max_trackbacks_per_post:", 2),
    (["--post-type", "Not A Type"], "post_types:", 2),
    (["--password-credential", "c"], "give --password-file or --password-credential", 2),
    (["--api", "soap"], "'soap' is not one of", 2),
    (["--username", "u" * 100_000], "username: String should have at most 200", 2),
    (["--url", "https://blog.example/" + "p" * 3000], "url: String should have at most 2000", 2),
    (["--deny-host", "x" * 300], "deny_hosts[0]: String should have at most 255", 2),
])
def test_a_bad_site_is_refused_in_one_line(capsys: pytest.CaptureFixture[str], folder: Path,
                                           args: list[str], expected: str, code: int) -> None:
    result = add(capsys, folder, "blog", *args)
    line = one_line_error(result[0], result[2], code)
    assert expected in line and "secret" not in line
    assert open_state(folder / "state.sqlite3").stored_sites() == []


def test_sites_add_refuses_a_taken_or_bad_name(capsys: pytest.CaptureFixture[str],
                                               folder: Path) -> None:
    assert add(capsys, folder)[0] == 0
    code, _, err = add(capsys, folder)
    assert "is stored already" in one_line_error(code, err)
    code, _, err = add(capsys, folder, "toml")
    assert "is in the configuration file already" in one_line_error(code, err, 2)
    code, _, err = add(capsys, folder, "no spaces")
    assert "name: use letters, digits" in one_line_error(code, err, 2)


def test_there_is_no_option_taking_the_password(capsys: pytest.CaptureFixture[str],
                                                folder: Path) -> None:
    code, _, err = add(capsys, folder, "blog", "--password", PASSWORD)
    assert "No such option '--password'" in one_line_error(code, err, 2)
    assert PASSWORD not in err


def test_remove_takes_stored_sites_only_and_keeps_history(
        capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    assert add(capsys, folder)[0] == 0
    store = open_state(folder / "state.sqlite3")
    store.add("blog", 1, "pingback", "https://t.example/", "https://blog.example/1",
              utcnow())
    store.close()
    code, out, err = wpnotify(capsys, folder, "sites", "remove", "blog")
    assert (code, err) == (0, "") and "removed (its history stays)" in out
    assert "blog" not in listed(capsys, folder)
    assert len(open_state(folder / "state.sqlite3").history(site="blog")) == 1
    code, _, err = wpnotify(capsys, folder, "sites", "remove", "blog")
    assert "no stored site is named 'blog'" in one_line_error(code, err)
    code, _, err = wpnotify(capsys, folder, "sites", "remove", "toml")
    line = one_line_error(code, err, 2)
    assert "comes from the configuration file" in line and "[[sites]]" in line


@pytest.mark.parametrize("name", ["toml", "blog"])
def test_any_site_is_disabled_and_enabled_again(capsys: pytest.CaptureFixture[str],
                                                folder: Path, name: str) -> None:
    assert add(capsys, folder)[0] == 0
    code, out, _ = wpnotify(capsys, folder, "sites", "disable", name)
    assert code == 0 and f"site {name} disabled" in out
    assert listed(capsys, folder)[name]["enabled"] is False
    settings = load_settings(folder / "config.toml")
    with open_service(settings, network=False) as service:
        assert name not in [site.name for site in service.settings.sites]
    line = one_line_error(*wpnotify(capsys, folder, "backfill", "--site", name, "--since",
                                    "2020-01-01")[::2], expected=2)
    assert f"wpnotify sites enable {name}" in line
    assert wpnotify(capsys, folder, "sites", "enable", name)[0] == 0
    assert listed(capsys, folder)[name]["enabled"] is True
    code, _, err = wpnotify(capsys, folder, "sites", "disable", "nope")
    assert "no site is named 'nope'" in one_line_error(code, err)


def test_a_stored_site_named_like_a_configured_one_is_a_reported_clash(
        capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    """Added first, then the file gained a site of that name: the file's wins."""
    assert add(capsys, folder, "later")[0] == 0
    (folder / "config.toml").write_text((folder / "config.toml").read_text()
                                        + TOML_SITE.replace('"toml"', '"later"'))
    code, out, _ = wpnotify(capsys, folder, "sites", "list")
    assert code == 0 and "a stored site has this name too" in out
    settings = load_settings(folder / "config.toml")
    with open_service(settings, network=False) as service:
        assert service.site("later").url == "https://toml.example"


def test_history_and_retry_take_a_stored_site(capsys: pytest.CaptureFixture[str],
                                              folder: Path) -> None:
    assert add(capsys, folder)[0] == 0
    assert wpnotify(capsys, folder, "history", "--site", "blog")[0] == 0
    code, out, _ = wpnotify(capsys, folder, "retry", "--all-failed", "--site", "blog")
    assert code == 0 and "0 notification(s)" in out
    code, _, err = wpnotify(capsys, folder, "history", "--site", "nope")
    assert "no site named 'nope'" in one_line_error(code, err, 2)


@pytest.mark.parametrize("damage", ["[1]", "not json", "[" * 100_000 + "]" * 100_000],
                         ids=["not an object", "not json", "nested too deep"])
def test_a_damaged_stored_site_is_named_and_can_be_removed(
        capsys: pytest.CaptureFixture[str], folder: Path, damage: str) -> None:
    assert add(capsys, folder)[0] == 0
    store = open_state(folder / "state.sqlite3")
    store._write("UPDATE site_settings SET config = ?", (damage,))  # type: ignore[attr-defined]
    store.close()
    code, _, err = wpnotify(capsys, folder, "status")
    assert "wpnotify sites remove blog" in one_line_error(code, err)
    assert wpnotify(capsys, folder, "sites", "remove", "blog")[0] == 0
    assert wpnotify(capsys, folder, "status")[0] == 0


def test_a_password_edited_into_a_stored_site_leaves_it_out_unshown(
        capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    """The state keeps no secret: a row given a password by hand is not used, and the
    problem says how to replace it without ever repeating the value."""
    assert add(capsys, folder)[0] == 0
    store = open_state(folder / "state.sqlite3")
    [entry] = store.stored_sites()
    config = json.dumps({**(entry.config or {}), "password": "hunter2-by-hand"})
    store._write("UPDATE site_settings SET config = ?", (config,))  # type: ignore[attr-defined]
    store.close()
    code, out, err = wpnotify(capsys, folder, "sites", "list")
    assert "a password is stored in the state" in out and "hunter2" not in out + err
    settings = load_settings(folder / "config.toml")
    with open_service(settings, network=False) as service:
        assert [site.name for site in service.settings.sites] == ["toml"]


def test_service_without_stored_sites_is_the_configuration_files(folder: Path) -> None:
    settings = load_settings(folder / "config.toml")
    service = Service(settings, open_state(folder / "state.sqlite3"))
    assert [row.name for row in service.found.rows] == ["toml"]


def test_refresh_swaps_in_the_sites_their_sources_and_their_trust(folder: Path) -> None:
    """What the daemon's refresh job does between jobs: a new site gets a source and the
    HTTP seam's trust, a changed one a new source, a disabled one loses both."""
    from wpnotify.http import Http

    settings = load_settings(folder / "config.toml")
    store = open_state(folder / "state.sqlite3")
    http = Http(settings.http, trusted_origins=[settings.sites[0].url])
    service = Service(settings, store, http, sources=make_sources(settings, http))
    sender = service.sender
    raw = {"name": "blog", "url": "http://127.0.0.1:8080", "username": "u",
           "password_file": str(folder / "pw")}
    service.add_site(raw)
    change = service.refresh_sites()
    assert (change.added, change.removed, change.changed) == (["blog"], [], [])
    assert set(service.sources) == {"toml", "blog"}
    assert service.sender is sender and set(sender.mirror.sources) == {"toml", "blog"}
    assert ("http", "127.0.0.1", 8080) in http.pool.trusted
    first = service.sources["blog"]
    assert not service.refresh_sites().added and service.sources["blog"] is first
    service.remove_site("blog")
    service.add_site({**raw, "url": "http://127.0.0.1:8081"})
    assert service.refresh_sites().changed == ["blog"] and service.sources["blog"] is not first
    assert ("http", "127.0.0.1", 8080) not in http.pool.trusted
    service.set_site_disabled("blog", True)
    assert service.refresh_sites().removed == ["blog"]
    assert set(service.sources) == {"toml"} and service.settings.sites == settings.sites
    assert ("http", "127.0.0.1", 8081) not in http.pool.trusted
    http.close()
    store.close()
