"""End to end: a site on a loopback address is read, and its bridge used, with no
`allow_private_addresses` and no `allowed_networks` (issue 12, item 16): wpnotify trusts
exactly the configured site's origin, as WordPress trusts its own host. Links in its posts to
other loopback origins stay refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import devsite
import pytest
from conftest import Wpnotify

pytestmark = pytest.mark.e2e


def guarded_config(folder: Path, site: devsite.Site) -> Wpnotify:
    """A config for ``site`` with the address guard at its defaults: nothing private allowed."""
    secret = folder / "site.password"
    secret.write_text(site.app_password + "\n")
    secret.chmod(0o600)
    config = folder / "config.toml"
    config.write_text("\n".join([
        'state_file = "state.sqlite3"', "",
        "[[sites]]", 'name = "local"', f'url = "{site.url}"', 'username = "admin"',
        'password_file = "site.password"', "",
    ]))
    return Wpnotify(config, folder / "state.sqlite3")


def history(tool: Wpnotify, post: int) -> list[dict[str, Any]]:
    return json.loads(tool.run("history", "--format", "json", "--post", str(post)).stdout)


def test_the_configured_site_is_trusted_and_nothing_else(
        sites: dict[str, devsite.Site], tmp_path: Path) -> None:
    source, target = sites["source"], sites["target"]
    tool = guarded_config(tmp_path, source)

    checked = tool.run("check", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "bridge" in checked.stdout

    first = tool.run("poll")
    assert "first poll" in first.stdout, first.stdout + first.stderr

    goal = target.create_post(post_title="Another loopback origin")
    post = source.create_post(
        post_title="Links to a private neighbour",
        post_content=f'<a href="{target.permalink(goal)}">neighbour</a>',
        to_ping=target.trackback_url(goal),
    )
    tool.run("poll")  # exit 0: the site itself was read

    rows = history(tool, post)
    # The link is refused before discovery, so it keeps the kind it was planned as.
    assert len(rows) == 2 and "trackback" in {row["kind"] for row in rows}, rows
    for row in rows:
        assert row["status"] == "skipped", row
        assert row["error_code"] == "refused-address", row
    assert target.comments(goal) == []
    # The bridge was reached on the trusted origin: the refused trackback stays queued in
    # WordPress (it was not sent), and the site's status says the bridge is there.
    status = json.loads(tool.run("status", "--format", "json").stdout)
    assert status[0]["bridge"] is True, status
    assert target.trackback_url(goal) in source.pings(post)["to_ping"]
