"""The XML-RPC source (api = "xmlrpc") against real WordPress: the same behaviour as REST."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import devsite
import pytest
from conftest import Wpnotify, write_config
from receivers import PingbackReceiver, serving

pytestmark = pytest.mark.e2e


def xmlrpc_tool(folder: Path, name: str, site: devsite.Site) -> Wpnotify:
    config = write_config(folder, [(name, site, site.app_password)])
    config.write_text(config.read_text() + 'api = "xmlrpc"\nprefer = "pingback"\n')
    return Wpnotify(config, folder / "state.sqlite3")


@pytest.fixture(scope="module")
def watched(sites: dict[str, devsite.Site], tmp_path_factory: pytest.TempPathFactory
            ) -> Wpnotify:
    tool = xmlrpc_tool(tmp_path_factory.mktemp("xmlrpc"), "xr", sites["source"])
    assert "first poll" in tool.run("poll").stdout
    return tool


def history(tool: Wpnotify, post: int) -> list[dict[str, Any]]:
    return json.loads(tool.run("history", "--format", "json", "--post", str(post)).stdout)


def test_trackback_and_pingback_arrive_then_nothing_twice(sites: dict[str, devsite.Site],
                                                          watched: Wpnotify) -> None:
    source, target = sites["source"], sites["target"]
    linked = target.create_post(post_title="Linked over XML-RPC")
    tracked = target.create_post(post_title="Trackbacked over XML-RPC")
    post = source.create_post(post_title="Sent by the XML-RPC source",
                              post_content=f'<a href="{target.permalink(linked)}">x</a>',
                              to_ping=target.trackback_url(tracked))
    watched.run("poll")
    assert [c["type"] for c in target.comments(linked)] == ["pingback"]
    assert [c["type"] for c in target.comments(tracked)] == ["trackback"]
    assert {(r["kind"], r["status"]) for r in history(watched, post)} == {
        ("pingback", "sent"), ("trackback", "sent")}
    assert source.pings(post)["to_ping"] == []
    watched.run("poll")
    assert len(target.comments(linked)) == 1 and len(target.comments(tracked)) == 1


def test_edits_drafts_protected_and_scheduled_posts(sites: dict[str, devsite.Site],
                                                    watched: Wpnotify) -> None:
    source = sites["source"]
    with serving(PingbackReceiver()) as receiver:
        assert isinstance(receiver, PingbackReceiver)
        one, two, hidden = (receiver.url(f"/t/xr-{n}") for n in ("one", "two", "hidden"))
        post = source.create_post(post_title="Growing over XML-RPC",
                                  post_content=f'<a href="{one}">1</a>')
        drafts = [source.create_post(post_title=f"A {s} one", post_status=s,
                                     post_content=f'<a href="{hidden}">h</a>')
                  for s in ("draft", "pending", "private")]
        drafts.append(source.create_post(post_title="Protected", post_password="pw",
                                         post_content=f'<a href="{hidden}">h</a>'))
        later = source.create_post(
            post_title="Scheduled over XML-RPC", post_status="future",
            post_date_gmt=(datetime.now(UTC) + timedelta(minutes=5)).strftime(
                "%Y-%m-%d %H:%M:%S"),
            post_content=f'<a href="{receiver.url("/t/xr-later")}">l</a>')
        watched.run("poll")
        assert dict(receiver.calls) == {one: 1}
        source.update_post(post, post_content=f'<a href="{one}">1</a><a href="{two}">2</a>')
        watched.run("poll")
        assert dict(receiver.calls) == {one: 1, two: 1}
        assert all(history(watched, d) == [] for d in drafts)

        source.php(f"""
            global $wpdb; $gmt = gmdate('Y-m-d H:i:s', time() + 2);
            $local = get_date_from_gmt($gmt);
            $wpdb->update($wpdb->posts, ['post_date_gmt' => $gmt, 'post_date' => $local,
                          'post_modified_gmt' => $gmt, 'post_modified' => $local],
                          ['ID' => {later}]);
            clean_post_cache({later});
            wp_clear_scheduled_hook('publish_future_post', [{later}]);
            wp_schedule_single_event(time() + 2, 'publish_future_post', [{later}]);
            return true;""")
        deadline = time.monotonic() + 60
        while source.php(f"return get_post_status({later});") != "publish":
            assert time.monotonic() < deadline
            time.sleep(1)
            source.run_cron()
        watched.run("poll")
        assert receiver.calls[receiver.url("/t/xr-later")] == 1
        assert hidden not in receiver.calls


def test_paging_and_no_bridge(sites: dict[str, devsite.Site], tmp_path: Path) -> None:
    """Thirteen posts change at once, read three at a time; a site without the bridge still
    gets its pingbacks sent."""
    from wpnotify.http import Http
    from wpnotify.service import Service, make_sources
    from wpnotify.settings import load_settings
    from wpnotify.state.sqlite import SqliteState

    plain = sites["plain"]
    with serving(PingbackReceiver()) as receiver:
        assert isinstance(receiver, PingbackReceiver)
        settings = load_settings(xmlrpc_tool(tmp_path, "xrpaged", plain).config)
        store = SqliteState.open(settings.state_file)
        http = Http(settings.http)
        service = Service(settings, store, http, sources=make_sources(settings, http, per_page=3))
        assert service.poll().sites[0].first_poll
        targets = [receiver.url(f"/t/page-{i}") for i in range(13)]
        for i, url in enumerate(targets):
            plain.create_post(post_title=f"Paged {i}", post_content=f'<a href="{url}">p</a>')
        report = service.poll()
        assert report.sites[0].error is None and report.delivery.sent == 13
        assert set(receiver.calls) == set(targets)
        assert service.poll().delivery.sent == 0
        store.close()


def test_check_over_xmlrpc_finds_the_bridge_or_its_absence(sites: dict[str, devsite.Site],
                                                          tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    good = xmlrpc_tool(tmp_path / "a", "xr-good", sites["source"])
    assert "bridge 1.2 installed" in good.run("check").stdout
    plain = xmlrpc_tool(tmp_path / "b", "xr-plain", sites["plain"])
    proc = plain.run("check", check=False)
    assert proc.returncode == 1 and "the wpnotify bridge is not installed" in proc.stderr
