"""Shared fixtures. End-to-end tests run against real WordPress sites on loopback, set up by
wordpress/devsite.py; in CI (CI=true) a missing prerequisite fails them instead of skipping."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "wordpress"))

import devsite  # noqa: E402 (needs the path above)
import postgres_db  # noqa: E402 (beside this file)

DATA = Path(__file__).parent / "data"
WORDPRESS_LOCK = "/tmp/wpnotify-tests-wordpress.lock"


def _wordpress_missing() -> str | None:
    if os.geteuid() != 0:
        return "end-to-end tests need root (they write /etc/wordpress)"
    for tool in ("php", "mariadb"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed; run scripts/setup"
    if not (devsite.WP_ROOT / "wp-load.php").exists():
        return "Debian's wordpress package is not installed; run scripts/setup"
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the group markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on real WordPress sites (the e2e marker, or the sites behind the
    ``wordpress_ready`` fixture) run one after another in one xdist process (pyproject.toml),
    first: they share the sites, their fixed loopback addresses and each site's 15 s flood
    check, and are most of the suite's time; the others run in the other process meanwhile."""
    wordpress = [item for item in items if item.get_closest_marker("e2e") is not None
                 or "wordpress_ready" in getattr(item, "fixturenames", ())]
    chosen = {id(item) for item in wordpress}
    for item in wordpress:
        item.add_marker(pytest.mark.xdist_group("wordpress"))
    items[:] = wordpress + [item for item in items if id(item) not in chosen]


@pytest.fixture(scope="session")
def wordpress_ready() -> Iterator[None]:
    problem = _wordpress_missing()
    if problem and os.environ.get("CI"):
        pytest.fail(f"CI must run the end-to-end tests: {problem}")
    if problem:
        pytest.skip(problem)
    # One process at a time on the sites' fixed addresses, whatever xdist does (a grouping
    # that fails, a second test run on this machine): the other waits, saying why.
    with open(WORDPRESS_LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.stderr.write(f"waiting for {WORDPRESS_LOCK}: another process runs tests on "
                             "the WordPress sites\n")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def sites(wordpress_ready: None) -> Iterator[dict[str, devsite.Site]]:
    """Real WordPress sites: a watched source with the bridge (in a non-UTC timezone, so time
    zone mistakes show), a receiving target, and a source without the bridge."""
    with devsite.running({
        "source": devsite.Site("127.0.0.12", title="Source & Co", bridge=True,
                               timezone="America/New_York"),
        "target": devsite.Site("127.0.0.13", title="Target blog"),
        "plain": devsite.Site("127.0.0.14", title="Plain blog", bridge=False),
    }) as made:
        yield made


@dataclass
class Wpnotify:
    """A config and state file for one watched site, and a way to run the real CLI on it."""

    config: Path
    state: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "wpnotify", "--config", str(self.config), *args],
            capture_output=True, text=True, timeout=600, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("WPNOTIFY_")},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"wpnotify {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc


def write_config(folder: Path, sites: list[tuple[str, devsite.Site, str]], top: str = "",
                 **extra: str) -> Path:
    """A config for these (name, site, password) triples, private addresses allowed."""
    lines = ['state_file = "state.sqlite3"', top, "", "[http]", "allow_private_addresses = true",
             *(f"{k} = {v}" for k, v in extra.items()), ""]
    if "[retry]" not in top:
        # A retry waits at least the schedule's step (issue 12: a short Retry-After never
        # shortens it). The first step is 10 s here, so that a WordPress target's flood hold
        # (15 s: another test pinged it moments ago) is still waited out within the run.
        lines += ["[retry]", "delays = [10, 300, 1800, 7200, 43200]", ""]
    for name, site, password in sites:
        (folder / f"{name}.password").write_text(password + "\n")
        lines += ["[[sites]]", f'name = "{name}"', f'url = "{site.url}"', 'username = "admin"',
                  f'password_file = "{name}.password"', ""]
    config = folder / "config.toml"
    config.write_text("\n".join(lines))
    return config


@pytest.fixture()
def make_wpnotify(tmp_path: Path):  # type: ignore[no-untyped-def]  # a factory fixture
    def make(site_list: list[tuple[str, devsite.Site, str]], top: str = "",
             **extra: str) -> Wpnotify:
        folder = tmp_path / f"wpnotify{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        return Wpnotify(write_config(folder, site_list, top, **extra), folder / "state.sqlite3")
    return make


@pytest.fixture()
def in_process_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For tests that call ``wpnotify.cli.main`` in this process: no WPNOTIFY_* from the
    caller, and the logging set-up that main() points at the captured stderr (which closes
    with the test) put back afterwards."""
    import structlog

    for name in list(os.environ):
        if name.startswith("WPNOTIFY_"):
            monkeypatch.delenv(name)
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """Local receivers listen on 127.0.0.1 (not "localhost", which may also mean ::1)."""
    return ("127.0.0.1", 0)


# --- PostgreSQL (postgres_db.py) ---------------------------------------------------------

@pytest.fixture(scope="session")
def postgres() -> str:
    """The PostgreSQL server's URL (no database); without one, skipped saying why, and in CI
    (CI=true) failed: CI must run the PostgreSQL tests."""
    try:
        postgres_db.admin().close()
    except psycopg.Error as exc:
        problem = f"PostgreSQL does not answer at {postgres_db.SERVER} ({exc}); run scripts/setup"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {problem}")
        pytest.skip(problem)
    return postgres_db.SERVER


@pytest.fixture()
def fresh_database(postgres: str) -> Iterator[str]:
    """A database of its own, with nothing in it yet (its URL)."""
    name = postgres_db.make_database()
    try:
        yield f"{postgres}/{name}"
    finally:
        postgres_db.drop_database(name)
