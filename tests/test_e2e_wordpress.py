"""End to end, against real WordPress: a watched source blog (with the bridge) notifies a
receiving target blog, through the real `wpnotify` command.

The target runs WordPress's comment-flood check (one ping per 15 s, site-wide), so these tests
share one state file: wpnotify then knows the target is WordPress and spaces its pings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import devsite
import pytest
from conftest import Wpnotify, write_config
from pytest_httpserver import HTTPServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def watched(sites: dict[str, devsite.Site], tmp_path_factory: pytest.TempPathFactory
            ) -> Wpnotify:
    """wpnotify watching the source blog, after its first poll (which notifies nothing)."""
    folder = tmp_path_factory.mktemp("watched")
    source = sites["source"]
    config = write_config(folder, [("source", source, source.app_password)])
    tool = Wpnotify(config, folder / "state.sqlite3")
    first = tool.run("poll")
    assert "first poll" in first.stdout
    return tool


def history(tool: Wpnotify, *args: str) -> list[dict[str, Any]]:
    return json.loads(tool.run("history", "--format", "json", "--limit", "1000", *args).stdout)


@contextmanager
def webmention_watch(make_wpnotify: Any, source: devsite.Site, name: str,
                     setting: str = "") -> Iterator[tuple[Any, Wpnotify]]:
    """A verifying Webmention receiver, and a wpnotify (one more site ``setting`` line, if
    given) that has polled ``source`` once, so that what comes next is news."""
    from receivers import WebmentionReceiver, serving

    with serving(WebmentionReceiver()) as receiver:
        assert isinstance(receiver, WebmentionReceiver)
        tool = make_wpnotify([(name, source, source.app_password)])
        if setting:
            tool.config.write_text(tool.config.read_text() + setting + "\n")
        tool.run("poll")
        yield receiver, tool


def of_type(comments: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for c in comments if c["type"] == kind]


def test_first_poll_does_not_notify_the_archive(sites: dict[str, devsite.Site],
                                                make_wpnotify: Any) -> None:
    source, target = sites["source"], sites["target"]
    goal = target.create_post(post_title="Old news")
    old = source.create_post(post_title="Archive post",
                             post_content=f'<a href="{target.permalink(goal)}">old</a>')
    tool = make_wpnotify([("fresh", source, source.app_password)])
    tool.run("poll")
    tool.run("poll")
    assert history(tool, "--post", str(old)) == []
    assert target.comments(goal) == []


def test_trackback_and_pingback_arrive_as_comments(sites: dict[str, devsite.Site],
                                                   watched: Wpnotify) -> None:
    source, target = sites["source"], sites["target"]
    linked = target.create_post(post_title="Linked from the source")
    tracked = target.create_post(post_title="Trackbacked from the source")
    ping_url = target.trackback_url(tracked)
    post = source.create_post(
        post_title="Links &amp; trackbacks",
        post_content=f'<p>See <a href="{target.permalink(linked)}">this</a>.</p>',
        post_excerpt="A hand-written excerpt.",
        to_ping=ping_url,
    )
    permalink = source.permalink(post)

    out = watched.run("poll")
    assert "sent 2" in out.stdout, out.stdout + out.stderr

    pingbacks = of_type(target.comments(linked), "pingback")
    assert [c["author_url"] for c in pingbacks] == [permalink]
    trackbacks = of_type(target.comments(tracked), "trackback")
    assert [c["author_url"] for c in trackbacks] == [permalink]
    assert trackbacks[0]["author"] == "Source &amp; Co"  # blog_name, as WordPress stores it
    assert "A hand-written excerpt." in trackbacks[0]["content"]  # manual excerpt first

    rows = {row["kind"]: row for row in history(watched, "--post", str(post))}
    assert set(rows) == {"pingback", "trackback"}
    assert rows["pingback"]["status"] == "sent"
    assert rows["pingback"]["endpoint"] == f"{target.url}/xmlrpc.php"
    assert rows["pingback"]["source"] == permalink
    assert rows["trackback"]["status"] == "sent"
    assert rows["trackback"]["target"] == ping_url
    # One attempt each, or two when another test's ping to the target was under 15 s old and
    # the target's flood check answered 429 (wpnotify then waits and sends again).
    attempts = [row["attempts"] for row in rows.values()]
    for row in rows.values():
        assert row["attempts"] in (1, 2) and row["sent_at"] and row["created_at"]
    # WordPress's own lists now say what was sent, as core would have recorded it.
    pings = source.pings(post)
    assert pings["to_ping"] == []
    assert set(pings["pinged"]) == {target.permalink(linked), ping_url}

    # A second poll sends nothing, and WordPress's own cron sends nothing either.
    again = watched.run("poll")
    assert "sent 0" in again.stdout
    source.run_cron()
    assert len(target.comments(linked)) == 1 and len(target.comments(tracked)) == 1
    assert [r["attempts"] for r in history(watched, "--post", str(post))] == attempts


def test_unpublished_and_protected_posts_send_nothing(sites: dict[str, devsite.Site],
                                                      watched: Wpnotify) -> None:
    source, target = sites["source"], sites["target"]
    goal = target.create_post(post_title="Nobody may notify me")
    content = f'<a href="{target.permalink(goal)}">goal</a>'
    ping_url = target.trackback_url(goal)
    posts = [source.create_post(post_title=f"A {status} post", post_status=status,
                                post_content=content, to_ping=ping_url)
             for status in ("draft", "pending", "private")]
    posts.append(source.create_post(post_title="Protected", post_password="secret",
                                    post_content=content, to_ping=ping_url))
    watched.run("poll")
    assert target.comments(goal) == []
    for post in posts:
        assert history(watched, "--post", str(post)) == []


def test_edit_notifies_only_the_new_link(sites: dict[str, devsite.Site],
                                         watched: Wpnotify) -> None:
    source, target = sites["source"], sites["target"]
    first = target.create_post(post_title="First link")
    second = target.create_post(post_title="Second link")
    one = f'<p><a href="{target.permalink(first)}">one</a></p>'
    post = source.create_post(post_title="Growing post", post_content=one)
    watched.run("poll")
    assert len(of_type(target.comments(first), "pingback")) == 1

    source.update_post(post, post_content=one + f'<p><a href="{target.permalink(second)}">'
                                                "two</a></p>")
    watched.run("poll")
    assert len(of_type(target.comments(first), "pingback")) == 1
    assert len(of_type(target.comments(second), "pingback")) == 1
    rows = history(watched, "--post", str(post))
    assert sorted(r["target"] for r in rows) == sorted(
        [target.permalink(first), target.permalink(second)])
    assert all(r["status"] == "sent" and r["attempts"] in (1, 2) for r in rows)  # 2: a 429

    source.update_post(post, post_title="Growing post, saved again")
    out = watched.run("poll")
    assert "0 new notification" in out.stdout and "sent 0" in out.stdout
    assert len(history(watched, "--post", str(post))) == 2


def test_scheduled_post_is_notified_when_wordpress_publishes_it(
        sites: dict[str, devsite.Site], watched: Wpnotify) -> None:
    source, target = sites["source"], sites["target"]
    goal = target.create_post(post_title="Scheduled for later")
    # WordPress schedules only posts at least a minute ahead; bring this one's time (and its
    # publish_future_post cron event) forward to 3 s from now, so the test need not wait.
    post = source.create_post(
        post_title="Going live soon", post_status="future",
        post_date_gmt=(datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S"),
        post_content=f'<a href="{target.permalink(goal)}">goal</a>')
    assert source.php(f"return get_post_status({post});") == "future"
    source.php(f"""
        global $wpdb;
        $gmt = gmdate('Y-m-d H:i:s', time() + 3);
        $local = get_date_from_gmt($gmt);
        $wpdb->update($wpdb->posts, ['post_date_gmt' => $gmt, 'post_date' => $local,
                      'post_modified_gmt' => $gmt, 'post_modified' => $local], ['ID' => {post}]);
        clean_post_cache({post});
        wp_clear_scheduled_hook('publish_future_post', [{post}]);
        wp_schedule_single_event(time() + 3, 'publish_future_post', [{post}]);
        return true;""")
    watched.run("poll")
    assert history(watched, "--post", str(post)) == []
    # A scheduled post's modified time is its future date: it must not hide posts
    # published meanwhile.
    other_goal = target.create_post(post_title="Linked while the other waits")
    meanwhile = source.create_post(post_title="Published meanwhile",
                                   post_content=f'<a href="{target.permalink(other_goal)}">x</a>')
    watched.run("poll")
    assert [r["status"] for r in history(watched, "--post", str(meanwhile))] == ["sent"]

    deadline = time.monotonic() + 60
    while source.php(f"return get_post_status({post});") != "publish":
        assert time.monotonic() < deadline, "WordPress's cron did not publish the post"
        time.sleep(1)
        source.run_cron()  # a visitor's page load, in effect
    watched.run("poll")
    assert len(of_type(target.comments(goal), "pingback")) == 1
    assert [r["status"] for r in history(watched, "--post", str(post))] == ["sent"]


def test_links_wordpress_pinged_before_are_not_sent_again(
        sites: dict[str, devsite.Site], watched: Wpnotify) -> None:
    source, target = sites["source"], sites["target"]
    goal = target.create_post(post_title="Pinged by WordPress itself")
    ping_url = target.trackback_url(goal)
    link = target.permalink(goal)
    post = source.create_post(post_title="Old habits", to_ping=ping_url,
                              post_content=f'<a href="{link}">goal</a>')
    source.php(f"add_ping({post}, [{devsite.php_str(link)}, {devsite.php_str(ping_url)}]);"
               " return true;")
    watched.run("poll")
    rows = history(watched, "--post", str(post))
    assert {(r["kind"], r["status"], r["error_code"]) for r in rows} == {
        ("pingback", "skipped", "already-pinged"), ("trackback", "skipped", "already-pinged")}
    assert target.comments(goal) == []
    assert source.pings(post)["to_ping"] == []


def test_without_the_bridge_pingbacks_go_and_trackbacks_are_explained_once(
        sites: dict[str, devsite.Site], make_wpnotify: Any) -> None:
    plain, target = sites["plain"], sites["target"]
    goal = target.create_post(post_title="Linked from a plain blog")
    tool = make_wpnotify([("plain", plain, plain.app_password)])
    tool.run("poll")
    post = plain.create_post(post_title="No bridge here", to_ping=target.trackback_url(goal),
                             post_content=f'<a href="{target.permalink(goal)}">goal</a>')
    first = tool.run("poll")
    plain.update_post(post, post_title="No bridge here, edited")
    second = tool.run("poll")
    rows = history(tool, "--post", str(post))
    assert [(r["kind"], r["status"]) for r in rows] == [("pingback", "sent")]
    assert [c["type"] for c in target.comments(goal)] == ["pingback"]
    warnings = (first.stderr + second.stderr).count("bridge is not installed")
    assert warnings == 1, first.stderr + second.stderr


def test_poll_names_each_unreadable_site(sites: dict[str, devsite.Site], make_wpnotify: Any,
                                         httpserver: Any) -> None:
    source = sites["source"]
    httpserver.expect_request("/").respond_with_data("<html>a shop</html>",
                                                     content_type="text/html")
    not_wp = devsite.Site(httpserver.host, port=httpserver.port)
    broken = HTTPServer(host="127.0.0.1", port=0)
    broken.expect_request("/").respond_with_data(
        "<html><h1>Error establishing a database connection</h1></html>", status=500,
        content_type="text/html")
    broken.start()
    nobody = devsite.Site("127.0.0.19", port=8080)
    tool = make_wpnotify([("good", source, source.app_password),
                          ("badpass", source, "wrong password 1234"),
                          ("down", nobody, "x"), ("shop", not_wp, "x"),
                          ("broken", devsite.Site(broken.host, port=broken.port), "x")])
    try:
        proc = tool.run("poll", check=False)
    finally:
        broken.stop()
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wpnotify: site")]
    assert len(errors) == 4, proc.stderr
    assert "site badpass:" in errors[0] and "refused the credentials" in errors[0]
    assert "site down:" in errors[1] and "cannot reach" in errors[1]
    assert "site shop:" in errors[2] and "does not look like WordPress" in errors[2]
    assert "site broken:" in errors[3] and "answered 500; the site is failing" in errors[3]
    assert "good: first poll" in proc.stdout
    assert "wrong password 1234" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_paging_through_a_big_site(sites: dict[str, devsite.Site], tmp_path: Path,
                                   httpserver: Any) -> None:
    """1,200 posts; 130 of them change at once; every one is read, in pages of 50."""
    from wpnotify.http import Http
    from wpnotify.service import Service, make_sources
    from wpnotify.settings import load_settings
    from wpnotify.state.sqlite import SqliteState

    source = devsite.Site("127.0.0.15", title="Big blog", bridge=True)
    source.install()
    source.start()
    try:
        httpserver.expect_request("/page").respond_with_data("<p>no endpoint</p>",
                                                             content_type="text/html")
        link = httpserver.url_for("/page")
        source.php(f"""
            global $wpdb;
            for ($i = 0; $i < 1200; $i++) {{
                $wpdb->insert($wpdb->posts, [
                    'post_author' => 1, 'post_title' => "Old $i", 'post_name' => "old-$i",
                    'post_content' => '<a href="{link}?n=' . $i . '">x</a>',
                    'post_status' => 'publish', 'post_type' => 'post',
                    'post_date' => '2020-01-01 00:00:00', 'post_date_gmt' => '2020-01-01 05:00:00',
                    'post_modified' => '2020-01-01 00:00:00',
                    'post_modified_gmt' => '2020-01-01 05:00:00',
                    'to_ping' => '', 'pinged' => '', 'post_excerpt' => '',
                    'post_content_filtered' => '']);
            }}
            return true;""")
        settings = load_settings(write_config(tmp_path, [("big", source, source.app_password)]))
        http = Http(settings.http)
        store = SqliteState.open(settings.state_file)
        service = Service(settings, store, http,
                          sources=make_sources(settings, http, per_page=50))
        assert service.poll().sites[0].first_poll
        # 130 posts change within the same couple of seconds, as a bulk edit does.
        source.php("""
            global $wpdb;
            $now = current_time('mysql'); $gmt = current_time('mysql', true);
            $wpdb->query($wpdb->prepare("UPDATE $wpdb->posts SET post_modified = %s,
                post_modified_gmt = %s WHERE post_title LIKE 'Old %%' ORDER BY ID LIMIT 130",
                $now, $gmt));
            return true;""")
        report = service.poll()
        assert report.sites[0].posts == 130
        rows = store.history(site="big", limit=1000)
        assert len(rows) == 130
        assert {r.status for r in rows} == {"skipped"}
        assert {r.error_code for r in rows} == {"no-endpoint"}
        assert service.poll().sites[0].queued == 0
        assert len(store.history(site="big", limit=1000)) == 130
        store.close()
        http.close()
    finally:
        source.stop()


def test_bridge_lists_and_records_pings_over_xmlrpc(sites: dict[str, devsite.Site]) -> None:
    """The XML-RPC half of the bridge (for sites whose REST API is off), and exact removal from
    to_ping where core's SQL REPLACE() would mangle a longer URL containing the sent one."""
    import xmlrpc.client

    source = sites["source"]
    # Loopback URLs only (nothing listens there): later polls may try to send them.
    post = source.create_post(post_title="Via XML-RPC", post_status="draft",
                              to_ping="http://127.0.0.19:8080/x http://127.0.0.19:8080/x2")
    rpc = xmlrpc.client.ServerProxy(f"{source.url}/xmlrpc.php")
    pings = rpc.wpnotify.getPings(1, "admin", source.app_password, post)
    assert pings["to_ping"] == ["http://127.0.0.19:8080/x", "http://127.0.0.19:8080/x2"]
    assert pings["pinged"] == [] and pings["bridge"] == "1.2"
    after = rpc.wpnotify.addPinged(1, "admin", source.app_password, post, ["http://127.0.0.19:8080/x"])
    assert after["to_ping"] == ["http://127.0.0.19:8080/x2"]
    assert after["pinged"] == ["http://127.0.0.19:8080/x"]
    assert source.pings(post) == {"to_ping": ["http://127.0.0.19:8080/x2"],
                                  "pinged": ["http://127.0.0.19:8080/x"]}
    status = rpc.wpnotify.status(1, "admin", source.app_password)
    assert status["core_pingbacks"] is False and status["core_trackbacks"] is False
    with pytest.raises(xmlrpc.client.Fault):
        rpc.wpnotify.getPings(1, "admin", "not the password", post)


def test_a_site_url_that_redirects_is_named_with_the_fix(make_wpnotify: Any,
                                                         httpserver: Any,
                                                         sites: dict[str, devsite.Site]) -> None:
    """http:// configured for a site that moved: say where to, never send the password on."""
    source = sites["source"]

    def moved(request: Any) -> Any:
        from werkzeug import Response

        return Response("", status=301, headers={"Location": source.url + request.full_path})

    httpserver.expect_request("/").respond_with_handler(moved)
    old = devsite.Site(httpserver.host, port=httpserver.port)
    tool = make_wpnotify([("moved", old, source.app_password)])
    proc = tool.run("poll", check=False)
    assert proc.returncode == 1
    assert f'redirects to {source.url}; set the site\'s url to "{source.url}"' in proc.stderr
    assert source.app_password not in proc.stderr + proc.stdout


def test_update_services_get_one_ping_per_publish_burst_never_per_edit(
        sites: dict[str, devsite.Site], make_wpnotify: Any) -> None:
    from receivers import UpdateService

    source = sites["source"]
    with UpdateService() as service:
        tool = make_wpnotify([("upd", source, source.app_password)])
        tool.config.write_text(tool.config.read_text() +
                               f'update_services = ["{service.url}"]\n')
        tool.run("poll")
        posts = [source.create_post(post_title=f"Fresh {i}") for i in range(2)]
        old = source.create_post(post_title="Old but edited",
                                 post_date_gmt="2015-01-01 10:00:00")
        out = tool.run("poll")
        assert "sent 2" in out.stdout, out.stdout
        assert service.calls == [("weblogUpdates.extendedPing",
                                  ("Source &amp; Co", f"{source.url}/",
                                   f"{source.url}/?feed=rss2"))]
        source.update_post(posts[0], post_title="Fresh 0, edited")
        tool.run("poll")
        assert len(service.calls) == 1
    rows = json.loads(tool.run("history", "--format", "json", "--kind",
                               "update-service").stdout)
    assert sorted(r["post_id"] for r in rows) == sorted(posts)
    assert {r["status"] for r in rows} == {"sent"}
    assert old not in [r["post_id"] for r in rows]


@pytest.mark.parametrize("prefer,expected", [("webmention", {"webmention"}),
                                             ("both", {"webmention", "pingback"}),
                                             ("pingback", {"pingback"})])
def test_one_notification_per_link_as_preferred(sites: dict[str, devsite.Site],
                                                make_wpnotify: Any, prefer: str,
                                                expected: set[str]) -> None:
    """A page that takes both Webmention and Pingback gets what `prefer` says; the
    Webmention is verified by the receiver against the real source post."""
    source = sites["source"]
    with webmention_watch(make_wpnotify, source, f"pref-{prefer}",
                          f'prefer = "{prefer}"') as (receiver, tool):
        target = receiver.url(f"/page/{prefer}")
        post = source.create_post(post_title=f"Prefers {prefer}",
                                  post_content=f'<p><a href="{target}">a page</a></p>')
        tool.run("poll")
        permalink = source.permalink(post)
        rows = json.loads(tool.run("history", "--format", "json", "--post", str(post)).stdout)
    assert {r["kind"] for r in rows} == expected
    assert {r["status"] for r in rows} == {"sent"}
    assert receiver.verified == ([(permalink, target)] if "webmention" in expected else [])
    assert receiver.pingbacks == ([(permalink, target)] if "pingback" in expected else [])
    if "webmention" in expected:
        row = next(r for r in rows if r["kind"] == "webmention")
        assert row["endpoint"] == receiver.url("/webmention")
        assert row["response"] == "accepted, to be verified"


def test_webmentions_follow_removed_links_and_a_trashed_post(
        sites: dict[str, devsite.Site], make_wpnotify: Any) -> None:
    """A link removed by an edit, then the whole post trashed: each mentioned target is sent
    the Webmention again, once, and the verifying receiver drops the mention."""
    source = sites["source"]
    with webmention_watch(make_wpnotify, source, "follow") as (receiver, tool):
        kept, dropped = receiver.url("/page/kept"), receiver.url("/page/dropped")
        both = f'<p><a href="{kept}">kept</a> and <a href="{dropped}">dropped</a></p>'
        post = source.create_post(post_title="Changing mind", post_content=both)
        permalink = source.permalink(post)
        tool.run("poll")
        assert sorted(receiver.verified) == sorted([(permalink, kept), (permalink, dropped)])

        source.update_post(post, post_content=f'<p><a href="{kept}">kept</a></p>')
        tool.run("poll")
        assert receiver.verified == [(permalink, kept)]
        assert receiver.deleted == [(permalink, dropped)]
        tool.run("poll")  # nothing more to say
        assert receiver.deleted == [(permalink, dropped)]

        source.php(f"wp_trash_post({post}); return true;")
        tool.run("poll")
        assert receiver.verified == []
        assert receiver.deleted == [(permalink, dropped), (permalink, kept)]
        rows = json.loads(tool.run("history", "--format", "json", "--post", str(post)).stdout)
    by_target = {r["target"]: r for r in rows}
    assert "sent again: the link was removed from the post" in by_target[dropped]["response"]
    assert "sent again: the post is no longer public (trash)" in by_target[kept]["response"]
    assert {r["kind"] for r in rows} == {"webmention"}


@pytest.mark.parametrize("api", ["rest", "xmlrpc"])
def test_an_edit_in_the_second_the_post_was_read_is_not_missed(
        api: str, sites: dict[str, devsite.Site], make_wpnotify: Any) -> None:
    """WordPress keeps modified times to the second, so a post read in the second it was
    saved can change again under the same time. Such a post is read again at the next poll
    (here its time is pinned ahead of WordPress's clock: every read falls in or before it)."""
    source = sites["source"]
    with webmention_watch(make_wpnotify, source, f"same-second-{api}",
                          f'api = "{api}"') as (receiver, tool):
        post = source.create_post(post_title=f"Saved twice in a second ({api})",
                                  post_content="<p>No links yet.</p>")
        source.php(f"""
            global $wpdb;
            $gmt = gmdate('Y-m-d H:i:s', time() + 60);
            $wpdb->update($wpdb->posts, ['post_modified_gmt' => $gmt,
                                         'post_modified' => get_date_from_gmt($gmt)],
                          ['ID' => {post}]);
            clean_post_cache({post});
            return true;""")
        tool.run("poll")  # reads it, with nothing to send
        page = receiver.url(f"/page/same-second-{api}")
        source.php(f"""
            global $wpdb;  // the second save: new content, the same modified time
            $wpdb->update($wpdb->posts, ['post_content' => '<p><a href="{page}">x</a></p>'],
                          ['ID' => {post}]);
            clean_post_cache({post});
            return true;""")
        tool.run("poll")
        assert receiver.verified == [(source.permalink(post), page)]
        # Gone for good, so that its time ahead does not wake the other tests' polls.
        source.php(f"wp_delete_post({post}, true); return true;")


@pytest.mark.parametrize("api", ["rest", "xmlrpc"])
def test_a_post_deleted_for_good_is_followed_too(api: str, sites: dict[str, devsite.Site],
                                                 make_wpnotify: Any) -> None:
    """Deleted without passing through the trash: the bridge remembers it, and the
    Webmention receivers are told."""
    source = sites["source"]
    with webmention_watch(make_wpnotify, source, f"del-{api}",
                          f'api = "{api}"') as (receiver, tool):
        page = receiver.url(f"/page/deleted-{api}")
        post = source.create_post(post_title=f"Short-lived ({api})",
                                  post_content=f'<a href="{page}">x</a>')
        permalink = source.permalink(post)
        tool.run("poll")
        assert receiver.verified == [(permalink, page)]
        source.php(f"wp_delete_post({post}, true); return true;")
        tool.run("poll")
        assert receiver.deleted == [(permalink, page)]
        tool.run("poll")
        assert receiver.deleted == [(permalink, page)]  # once
        rows = json.loads(tool.run("history", "--format", "json", "--post", str(post)).stdout)
    assert "sent again: the post is no longer public (deleted)" in rows[0]["response"]


def _requests_after(site: devsite.Site, offset: int) -> list[str]:
    time.sleep(0.3)  # PHP's built-in server logs a request after answering it
    with site.log_path.open("rb") as log:
        log.seek(offset)
        return [line.split("]: ", 1)[1] for line in log.read().decode(errors="replace")
                .splitlines() if "]: " in line]


def test_an_idle_poll_is_one_small_request(sites: dict[str, devsite.Site],
                                           make_wpnotify: Any) -> None:
    """Issue 7: a poll that finds nothing asks for IDs and times only, once; a poll after an
    edit then reads that one post in full, and the next one is idle again."""
    source, target = sites["source"], sites["target"]
    tool = make_wpnotify([("idle", source, source.app_password)])
    tool.run("poll")  # the first poll: baseline
    tool.run("poll")  # reads the overlap window once more and remembers it as seen
    start = source.log_path.stat().st_size
    tool.run("poll")
    idle = _requests_after(source, start)
    assert len(idle) == 1, idle
    assert "_fields=id,modified_gmt" in idle[0] and "content" not in idle[0]
    goal = target.create_post(post_title="Idle goal")
    post = source.create_post(post_title="Wakes the poll",
                              post_content=f'<a href="{target.permalink(goal)}">g</a>')
    time.sleep(1.1)  # read in the second it was saved, it would be read once more (see
    # test_an_edit_in_the_second_the_post_was_read_is_not_missed)
    start = source.log_path.stat().st_size
    tool.run("poll")
    busy = _requests_after(source, start)
    assert any(f"include={post}" in line and "content" in line for line in busy), busy
    start = source.log_path.stat().st_size
    tool.run("poll")
    assert len(_requests_after(source, start)) == 1
    # Bridge 1.2: a Send again request makes every answer carry X-Wpnotify-Resend; the poll
    # that sees it newer asks for the requests, and the polls after it are idle again.
    asked = source.php(f"""
        \\Wpnotify\\Bridge\\store_rows({post}, [['kind' => 'trackback', 'status' => 'failed',
            'target' => 'http://127.0.0.19:8080/idle-resend']]);
        wp_set_current_user(1);
        $row = \\Wpnotify\\Bridge\\request_resend(get_post({post}), 'trackback',
                                                   'http://127.0.0.19:8080/idle-resend');
        return is_wp_error($row) ? $row->get_error_message() : $row['status'];""")
    assert asked == "queued", asked
    start = source.log_path.stat().st_size
    tool.run("poll")
    assert any("wpnotify/v1/resend" in line for line in _requests_after(source, start))
    start = source.log_path.stat().st_size
    tool.run("poll")
    assert len(_requests_after(source, start)) == 1
