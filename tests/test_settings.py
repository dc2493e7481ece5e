"""Settings: the file, the environment, secrets from files, and one-line errors."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from wpnotify.errors import ConfigError
from wpnotify.settings import (
    HttpSettings,
    InvalidSettings,
    RetrySettings,
    Settings,
    SiteSettings,
    checked_site,
    config_path,
    load_settings,
    site_settings,
)

ROOT = Path(__file__).resolve().parent.parent
SITE = '[[sites]]\nname = "blog"\nurl = "https://blog.example/"\nusername = "u"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_example_config_loads_and_documents_every_key(tmp_path: Path) -> None:
    example = (ROOT / "config.example.toml").read_text()
    (tmp_path / "blog.password").write_text("abcd efgh\n")
    settings = load_settings(write(tmp_path, example))
    assert settings.sites[0].secret() == "abcd efgh"
    keys = set(re.findall(r"^#? ?([a-z_]+) =", example, re.M))
    for model in (Settings, HttpSettings, RetrySettings, SiteSettings):
        for field in (f.name for f in dataclasses.fields(model) if f.init):
            if field not in ("http", "retry", "sites"):
                assert field in keys, f"{model.__name__}.{field} is not in config.example.toml"


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SITE + 'password = "pw"\n'))
    assert settings.state_file == tmp_path / "wpnotify.sqlite3"
    site = settings.sites[0]
    assert (site.url, site.post_types, site.self_pings) == ("https://blog.example", ("post",),
                                                            False)
    assert settings.http.allow_private_addresses is False
    assert settings.poll_interval == 300


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    monkeypatch.setenv("WPNOTIFY_POLL_INTERVAL", "60")
    monkeypatch.setenv("WPNOTIFY_HTTP__TIMEOUT", "7.5")
    settings = load_settings(write(tmp_path, "poll_interval = 30\n" + SITE + 'password = "p"\n'))
    assert settings.poll_interval == 60 and settings.http.timeout == 7.5


def test_environment_tables_merge_key_by_key_with_the_file(tmp_path: Path) -> None:
    """A key of a table from the environment replaces that key only; names in any case;
    a variable that names no setting (WPNOTIFY_CONFIG) is not read as one."""
    path = write(tmp_path, "[http]\ntimeout = 9\n" + SITE + 'password = "p"\n')
    settings = load_settings(path, {"wpnotify_http__connect_timeout": "3",
                                    "WPNOTIFY_CONFIG": "elsewhere.toml",
                                    "WPNOTIFY_RETRY__DELAYS": "[5, 10]"})
    assert (settings.http.timeout, settings.http.connect_timeout) == (9, 3)
    assert settings.retry.delays == (5, 10)


def test_environment_sites_replace_the_files_sites(tmp_path: Path) -> None:
    sites = '[{"name": "other", "url": "https://o.example", "username": "u", "password": "p"}]'
    settings = load_settings(write(tmp_path, SITE + 'password = "p"\n'),
                             {"WPNOTIFY_SITES": sites})
    assert [site.name for site in settings.sites] == ["other"]


def test_an_unknown_key_of_a_table_in_the_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key http.bogus"):
        load_settings(write(tmp_path, SITE + 'password = "p"\n'), {"WPNOTIFY_HTTP__BOGUS": "1"})


def test_config_path_precedence(tmp_path: Path) -> None:
    assert config_path(Path("a.toml"), {"WPNOTIFY_CONFIG": "b.toml"}) == Path("a.toml")
    assert config_path(None, {"WPNOTIFY_CONFIG": "b.toml"}) == Path("b.toml")


def test_secrets_are_not_in_reprs(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SITE + 'password = "hunter2 secret"\n'))
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


@pytest.mark.parametrize("text,expected", [
    (SITE, "set exactly one of password, password_file or password_credential"),
    (SITE + 'password = "a"\npassword_file = "f"\n', "set exactly one of password"),
    (SITE + 'password_file = "missing.txt"\n', "cannot read it"),
    (SITE.replace("https://blog.example/", "blog.example") + 'password = "a"\n',
     "sites[0].url: must be the site's address"),
    (SITE + 'password = "a"\ncolour = "blue"\n', "unknown key sites[0].colour"),
    ('poll_interval = "often"\n' + SITE + 'password = "a"\n', "poll_interval:"),
    ("[http]\ntimeout = -1\n" + SITE + 'password = "a"\n', "http.timeout:"),
    ('[http]\nallowed_networks = ["intranet"]\n' + SITE + 'password = "a"\n',
     "'intranet' is not a network"),
    (SITE + 'password = "a"\n' + SITE + 'password = "b"\n', "two [[sites]] are named 'blog'"),
    ("this is = not toml [", "is not valid TOML"),
    (SITE + 'password = "a"\ninbound = "spam"\n', "sites[0].inbound:"),
    (SITE + 'password = "a"\ninbound = "report"\napi = "xmlrpc"\n',
     'reads the site\'s comments over the REST API; set api = "rest"'),
    (SITE + 'password = "a"\ninbound = "report"\napprove_verified = true\n',
     'approve_verified needs inbound = "moderate"'),
    (SITE + 'password = "a"\ninbound_deny_hosts = ["a/b"]\n', "is not a host pattern"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(tmp_path: Path, text: str,
                                                         expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_a_configuration_without_sites_is_valid(tmp_path: Path) -> None:
    """A fleet keeps its sites in the state (`wpnotify sites add`, issue 15)."""
    settings = load_settings(write(tmp_path, "state_file = 'x'\n"))
    assert settings.sites == () and settings.sites_refresh == 15.0
    with pytest.raises(ConfigError, match="no sites to watch.*wpnotify sites add"):
        settings.site("blog")


def test_a_stored_site_is_built_with_the_checks_of_a_sites_table(tmp_path: Path) -> None:
    """``site_settings`` and ``checked_site`` share the [[sites]] rules; ``checked_site``
    reads no password (the worker that polls may be another machine)."""
    (tmp_path / "pw").write_text("secret\n")
    raw = {"name": "blog", "url": "https://blog.example/", "username": "u",
           "password_file": str(tmp_path / "pw"), "post_types": ["post", "page"]}
    site = site_settings(raw)
    assert (site.url, site.post_types, site.secret()) == (
        "https://blog.example", ("post", "page"), "secret")
    assert checked_site({**raw, "password_file": "/nowhere"})["post_types"] == ("post", "page")
    for bad, expected in [({"url": "nope"}, "url: must be the site's address"),
                          ({"colour": "blue"}, "unknown key colour"),
                          ({"password_credential": "c"}, "set exactly one of password"),
                          ({"max_trackbacks_per_post": -1}, "max_trackbacks_per_post:"),
                          ({"inbound": "moderate", "api": "xmlrpc"}, 'set api = "rest"')]:
        for build in (site_settings, checked_site):
            with pytest.raises(InvalidSettings, match=expected):
                build({**raw, **bad})
    with pytest.raises(InvalidSettings, match="cannot read it"):
        site_settings({**raw, "password_file": str(tmp_path / "nowhere")})


def test_a_missing_config_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_a_systemd_credential_is_read_from_the_credentials_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "wpnotify-blog").write_text("from systemd\n")
    config = write(tmp_path, SITE + 'password_credential = "wpnotify-blog"\n')
    with pytest.raises(ConfigError, match="needs systemd's LoadCredential"):
        load_settings(config)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load_settings(config).sites[0].secret() == "from systemd"


def test_the_systemd_unit_is_hardened_and_valid(tmp_path: Path) -> None:
    """systemd-analyze: exposure 2.0 or lower, and `verify` clean (ExecStart pointed at this
    checkout's wpnotify, since /usr/local/bin/wpnotify exists only after an install)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed; run scripts/setup")
    unit = (ROOT / "systemd" / "wpnotify.service").read_text()
    copy = tmp_path / "wpnotify.service"
    copy.write_text(unit.replace("/usr/local/bin/wpnotify",
                                 str(Path(sys.executable).parent / "wpnotify")))
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(copy)],
                              capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for wpnotify.service: ([0-9.]+)", security.stdout)
    assert match, security.stdout + security.stderr
    assert float(match.group(1)) <= 2.0, security.stdout
    verify = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                            text=True, check=False)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr


USERINFO_FIX = "remove the user name and password from the URL"


@pytest.mark.parametrize("url", [
    "http://admin:s3cret@blog.example",
    "https://admin:s3cret@blog.example/wp/",
    "https://admin%40x:s3cret@blog.example:8443",
    "http://admin:s3cret@blog.example@other.example",
    "http://admin:s3cret@",
    "admin:s3cret@blog.example",
    "ftp://admin:s3cret@blog.example",
    "http://admin:s3cret\x1b@blog.example",
])
def test_a_site_url_with_a_password_is_refused_without_repeating_it(tmp_path: Path,
                                                                   url: str) -> None:
    text = SITE.replace('"https://blog.example/"', '"' + url.replace("\x1b", "\\u001b") + '"')
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text + 'password = "a"\n'))
    message = str(caught.value)
    assert f"sites[0].url: {USERINFO_FIX}; use username and password_file" in message
    assert "s3cret" not in message and "\n" not in message


def test_update_service_urls_with_a_password_are_refused_by_position(tmp_path: Path) -> None:
    text = SITE + ('password = "a"\nupdate_services = ["http://rpc.example/", '
                   '"http://u:s3cret@rpc.example/", "gopher://x"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    message = str(caught.value)
    assert f"sites[0].update_services[1]: {USERINFO_FIX}" in message
    assert "sites[0].update_services[2]: must be an http(s) URL" in message
    assert "s3cret" not in message and "update_services[0]" not in message


@pytest.mark.parametrize("text", [
    '[http]\nallowed_networks = ["http://u:s3cret@10.0.0.1/"]\n' + SITE + 'password = "a"\n',
    SITE + 'password = "a"\ndeny_hosts = ["u:s3cret@spam.example"]\n',
])
def test_other_quoted_values_lose_what_comes_before_an_at_sign(tmp_path: Path,
                                                               text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert "s3cret" not in str(caught.value) and "…@" in str(caught.value)


def test_urls_without_a_password_still_load(tmp_path: Path) -> None:
    text = SITE.replace("https://blog.example/", "http://127.0.0.1:8080/wp/") + (
        'password = "a"\nupdate_services = ["http://rpc.example/ping?x=@y", '
        '"http://rpc.example/ping?x=@y"]\n')
    site = load_settings(write(tmp_path, text)).sites[0]
    assert site.url == "http://127.0.0.1:8080/wp"
    assert site.update_services == ("http://rpc.example/ping?x=@y",)


def test_scalars_from_the_environment_are_text_converted_to_their_types(tmp_path: Path
                                                                        ) -> None:
    """The environment holds only text: numbers and booleans given so are taken, as the
    pydantic models took them, and become real ints, floats and bools."""
    path = write(tmp_path, SITE + 'password = "p"\n')
    settings = load_settings(path, {"WPNOTIFY_HTTP__ALLOW_PRIVATE_ADDRESSES": "true",
                                    "WPNOTIFY_HTTP__MAX_REDIRECTS": "3",
                                    "WPNOTIFY_POLL_INTERVAL": "60"})
    assert settings.http.allow_private_addresses is True
    assert settings.http.max_redirects == 3 and type(settings.http.max_redirects) is int
    assert settings.poll_interval == 60.0 and type(settings.poll_interval) is float
    for text, value in (("yes", True), ("On", True), ("1", True), ("no", False),
                        ("FALSE", False), ("0", False)):
        loaded = load_settings(path, {"WPNOTIFY_HTTP__ALLOW_PRIVATE_ADDRESSES": text})
        assert loaded.http.allow_private_addresses is value, text


@pytest.mark.parametrize("environ,expected", [
    ({"WPNOTIFY_HTTP__ALLOW_PRIVATE_ADDRESSES": "maybe"},
     "http.allow_private_addresses: Input should be a valid boolean"),
    ({"WPNOTIFY_HTTP__MAX_REDIRECTS": "3.5"}, "http.max_redirects: Input should be a valid "
     "integer"),
    ({"WPNOTIFY_POLL_INTERVAL": "often"}, "poll_interval: Input should be a valid number"),
])
def test_text_from_the_environment_that_is_no_such_value_is_named(
        tmp_path: Path, environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_settings(write(tmp_path, SITE + 'password = "p"\n'), environ)


@pytest.mark.parametrize("text,expected", [
    ("[http]\ntimeout = true\n", "http.timeout: Input should be a valid number"),
    ("[http]\nconcurrency = true\n", "http.concurrency: Input should be a valid integer"),
])
def test_a_boolean_is_not_taken_for_a_number(tmp_path: Path, text: str, expected: str) -> None:
    """Decided in the rewrite: `timeout = true` is a slip, not one second (pydantic took
    True as 1)."""
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_settings(write(tmp_path, text + SITE + 'password = "p"\n'))


def test_every_bad_key_is_named_in_field_order_then_unknown_keys(tmp_path: Path) -> None:
    text = ('bogus = 1\npoll_interval = 0\n[[sites]]\nname = "!"\n'
            '[http]\ntimeout = "a"\nmax_redirects = 21\nextra = 1\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert str(caught.value).split(": ", 1)[1] == (
        "poll_interval: Input should be greater than or equal to 5; "
        "http.timeout: Input should be a valid number, unable to parse string as a number; "
        "http.max_redirects: Input should be less than or equal to 20; "
        "unknown key http.extra (a typo? every key is in config.example.toml); "
        "sites[0].name: use letters, digits, '.', '_' or '-' (at most 64), e.g. \"blog\"; "
        "sites[0].url is required; sites[0].username is required; "
        "unknown key bogus (a typo? every key is in config.example.toml)")


def test_settings_built_in_code_are_checked_and_keep_the_password_out_of_reprs(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^url: must be the site's address"):
        SiteSettings(name="s", url="nope", username="u", password="p")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout: Input should be greater than 0"):
        HttpSettings(timeout=0)
    site = SiteSettings(name="s", url="https://s.example/", username="u",
                        password="hunter2")  # type: ignore[arg-type]
    assert site.url == "https://s.example" and site.secret() == "hunter2"
    assert "hunter2" not in repr(site) + str(site) + repr(Settings(sites=(site,)))
    assert isinstance(RetrySettings(delays=[5, 10]).delays, tuple)  # type: ignore[arg-type]


def test_a_changed_copy_of_a_site_reads_its_password_file_again(tmp_path: Path) -> None:
    """dataclasses.replace (what model_copy was) checks the copy like any new site."""
    (tmp_path / "pw").write_text("from file\n")
    site = SiteSettings(name="s", url="https://s.example", username="u",
                        password_file=tmp_path / "pw")
    copy = dataclasses.replace(site, post_types=("page",))
    assert copy.secret() == "from file" and copy.post_types == ("page",)


def test_loading_the_settings_does_not_import_pydantic() -> None:
    """Start-up (issue 13): the settings are standard library only."""
    import subprocess
    import sys

    code = ("import sys, wpnotify.settings; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.stdout.strip() == "[]"


def test_a_state_url_is_where_the_state_is_and_never_shows_its_password(tmp_path: Path
                                                                         ) -> None:
    url = "postgresql://wpnotify:hunter2@db.example:5432/wpnotify"
    settings = load_settings(write(tmp_path, f'state_url = "{url}"\n' + SITE + 'password = "a"\n'))
    assert settings.state_location == url
    assert settings.state_shown == "state database postgresql://wpnotify@db.example:5432/wpnotify"
    assert "hunter2" not in repr(settings) + str(settings)
    plain = load_settings(write(tmp_path, SITE + 'password = "a"\n'))
    assert plain.state_location == tmp_path / "wpnotify.sqlite3"
    assert plain.state_shown == f"state file {tmp_path / 'wpnotify.sqlite3'}"


def test_the_state_url_comes_from_the_environment_too(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SITE + 'password = "a"\n'),
                             {"WPNOTIFY_STATE_URL": "postgres://h/db"})
    assert settings.state_location == "postgres://h/db"


@pytest.mark.parametrize(("text", "environ", "expected"), [
    ('state_url = "postgresql://u:hunter2@h/db"\nstate_file = "s.sqlite3"\n', {},
     "state_url and state_file are both set; keep one"),
    ('state_file = "s.sqlite3"\n', {"WPNOTIFY_STATE_URL": "postgresql://u:hunter2@h/db"},
     "state_url and state_file are both set; keep one"),
    ('state_url = "mysql://u:hunter2@h/db"\n', {}, "state_url: must be a PostgreSQL URL"),
    ('state_url = "/var/lib/hunter2.sqlite3"\n', {}, "for the SQLite file, set state_file"),
    ('state_url = "postgresql://u:hunter2@h/db\\n"\n', {}, "must not contain control"),
])
def test_a_bad_state_url_is_one_line_without_the_password(tmp_path: Path, text: str,
                                                          environ: dict[str, str],
                                                          expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text + SITE + 'password = "a"\n'), environ)
    message = str(caught.value)
    assert expected in message and "\n" not in message and "hunter2" not in message, message
