"""The bridge's status rows and Send again (issue 14, bridge 1.2), through REST against real
WordPress: bounds and cleaning of what wpnotify pushes, the capability rules (an author can
neither read nor resend another author's post), Send again with unique ids under concurrency,
the X-Wpnotify-Resend header, the `wpnotify_to_ping` field, and the escaped rows in the posts
list column and the classic editor's meta box."""

from __future__ import annotations

import base64
import http.cookiejar
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import devsite
import pytest

pytestmark = pytest.mark.e2e

ROW_KEYS = {"kind", "target", "endpoint", "status", "attempts", "answer", "code", "sent_at",
            "next_at", "updated_at"}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class Caller:
    """One user of the source site, over REST with an application password (or no one)."""

    site: devsite.Site
    login: str = ""
    app_password: str = ""
    password: str = ""
    user_id: int = 0

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        """(status, headers, decoded JSON) of one REST request; errors are answers too."""
        request = urllib.request.Request(
            f"{self.site.url}/wp-json{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        if self.login:
            token = base64.b64encode(f"{self.login}:{self.app_password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read() or b"null")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, _, answer = self.call(method, path, body)
        assert status == 200, (status, answer)
        return answer


@dataclass
class World:
    source: devsite.Site
    admin: Caller
    author_a: Caller
    author_b: Caller
    subscriber: Caller
    nobody: Caller


@pytest.fixture(scope="module")
def world(sites: dict[str, devsite.Site]) -> World:
    """Two authors and a subscriber on the source site, each with an application password
    and a known login password (for the wp-admin pages)."""
    source = sites["source"]
    password = secrets.token_hex(12)
    made = source.php(f"""
        $out = [];
        foreach (['r14-author-a' => 'author', 'r14-author-b' => 'author',
                  'r14-subscriber' => 'subscriber'] as $login => $role) {{
            $id = wp_insert_user(['user_login' => $login, 'user_pass' => '{password}',
                                  'user_email' => $login . '@example.invalid', 'role' => $role]);
            if (is_wp_error($id)) {{ return $id->get_error_message(); }}
            [$app] = WP_Application_Passwords::create_new_application_password(
                $id, ['name' => 'r14']);
            $out[$login] = ['id' => $id, 'app' => $app];
        }}
        return $out;
        """)
    assert isinstance(made, dict), made

    def caller(login: str) -> Caller:
        return Caller(source, login, made[login]["app"], password, int(made[login]["id"]))

    return World(source, Caller(source, "admin", source.app_password, user_id=1),
                 caller("r14-author-a"), caller("r14-author-b"), caller("r14-subscriber"),
                 Caller(source))


def row(target: str, status: str = "failed", **fields: Any) -> dict[str, Any]:
    """A status row as wpnotify pushes it."""
    return {"kind": "trackback", "target": target, "endpoint": None, "status": status,
            "attempts": 1, "answer": "refused; the receiver gives no reason", "code": "refused",
            "sent_at": None, "next_at": None, "updated_at": "2026-11-30T08:00:00Z", **fields}


def post_of(world: World, author: Caller, title: str) -> int:
    return world.source.create_post(post_title=title, post_author=author.user_id)


def status_of(caller: Caller, post: int) -> dict[str, Any]:
    return dict(caller.ok("GET", f"/wpnotify/v1/posts/{post}/status"))


def test_rows_are_bounded_cleaned_and_returned_as_plain_text(world: World) -> None:
    """250 rows keep 200; unknown keys and statuses go; a long answer is cut to 300; HTML in
    an answer comes back as the same plain string; the meta is not in core's REST `meta`."""
    post = post_of(world, world.author_a, "Bounded rows")
    rows = [row(f"http://127.0.0.19:8080/{i}", "sent") for i in range(250)]
    rows[0] = row("http://127.0.0.19:8080/0", answer="y" * 1000, extra="dropped",
                  endpoint="e" * 3000)
    rows[1] = row("http://127.0.0.19:8080/1", answer=HOSTILE)
    rows.insert(2, row("http://127.0.0.19:8080/odd", "exploded"))
    answer = world.author_a.ok("POST", "/wpnotify/v1/statuses", {"posts": {str(post): rows}})
    assert answer == {"recorded": 1, "refused": []}
    got = status_of(world.author_a, post)
    assert got["post"] == post and got["bridge"] == "1.2" and len(got["rows"]) == 200
    assert all(set(r) == ROW_KEYS | {"resend_requested"} for r in got["rows"])
    assert "http://127.0.0.19:8080/odd" not in {r["target"] for r in got["rows"]}
    assert got["rows"][0]["answer"] == "y" * 300 and len(got["rows"][0]["endpoint"]) == 2000
    assert got["rows"][1]["answer"] == HOSTILE
    assert got["summary"] == {"sent": 198, "failed": 2, "waiting": 0}
    full = world.author_a.ok("GET", f"/wp/v2/posts/{post}?context=edit")
    assert full["wpnotify"]["status_summary"] == got["summary"]
    assert "_wpnotify_status" not in json.dumps(full["meta"])
    world.author_a.ok("POST", f"/wp/v2/posts/{post}", {"meta": {"_wpnotify_status": []}})
    assert len(status_of(world.author_a, post)["rows"]) == 200


def test_a_push_for_posts_the_pusher_cannot_edit_is_refused(world: World) -> None:
    """Author A's push names B's post and a missing one: both refused, B's rows untouched;
    more than 100 posts in one request is a 400."""
    mine, theirs = post_of(world, world.author_a, "A's"), post_of(world, world.author_b, "B's")
    world.author_b.ok("POST", "/wpnotify/v1/statuses",
                      {"posts": {str(theirs): [row("http://127.0.0.19:8080/b", "sent")]}})
    answer = world.author_a.ok("POST", "/wpnotify/v1/statuses", {"posts": {
        str(mine): [row("http://127.0.0.19:8080/a")], str(theirs): [], "999999": []}})
    assert answer["recorded"] == 1 and sorted(answer["refused"]) == [theirs, 999999]
    assert [r["status"] for r in status_of(world.author_b, theirs)["rows"]] == ["sent"]
    status, _, error = world.admin.call("POST", "/wpnotify/v1/statuses",
                                        {"posts": {str(i): [] for i in range(1, 102)}})
    assert status == 400 and error["code"] == "wpnotify_too_many_posts"


def test_only_users_who_may_edit_the_post_read_or_resend(world: World) -> None:
    """B cannot read or resend A's post (403); a subscriber gets 403 on every route and no
    one logged in 401; nothing was recorded."""
    post = post_of(world, world.author_a, "Guarded")
    world.author_a.ok("POST", "/wpnotify/v1/statuses",
                      {"posts": {str(post): [row("http://127.0.0.19:8080/g")]}})
    resend = {"kind": "trackback", "target": "http://127.0.0.19:8080/g"}
    routes = [("POST", "/wpnotify/v1/statuses", {"posts": {str(post): []}}),
              ("GET", f"/wpnotify/v1/posts/{post}/status", None),
              ("POST", f"/wpnotify/v1/posts/{post}/resend", resend),
              ("GET", "/wpnotify/v1/resend?since=0", None)]
    for method, path, body in routes[1:3]:
        assert world.author_b.call(method, path, body)[0] == 403, path
    for caller, expected in ((world.subscriber, 403), (world.nobody, 401)):
        for method, path, body in routes:
            assert caller.call(method, path, body)[0] == expected, (caller.login, path)
    got = status_of(world.author_a, post)["rows"]
    assert [(r["status"], r["resend_requested"]) for r in got] == [("failed", None)]


def test_send_again_queues_a_failed_row_until_wpnotify_has_taken_it(world: World) -> None:
    """A failed row resent shows "queued" with its request time; the request is listed for
    its author (not for B) and named in X-Wpnotify-Resend on an ordinary posts list; a sent
    row is a 409, an unknown one a 404; resend_seen pushed by the author is ignored, pushed by
    wpnotify's account (an editor or admin) shows the pushed status again."""
    a, b = world.author_a, world.author_b
    post = post_of(world, a, "Send again")
    failed, sent = "http://127.0.0.19:8080/f", "http://127.0.0.19:8080/s"
    a.ok("POST", "/wpnotify/v1/statuses",
         {"posts": {str(post): [row(failed), row(sent, "sent")]}})
    queued = a.ok("POST", f"/wpnotify/v1/posts/{post}/resend",
                  {"kind": "trackback", "target": failed})
    assert queued["status"] == "queued" and queued["target"] == failed
    assert queued["resend_requested"] and queued["resend_requested"].endswith("Z")
    assert status_of(a, post)["summary"] == {"sent": 1, "failed": 0, "waiting": 1}
    _, headers, _ = a.call("GET", "/wp/v2/posts?per_page=1")
    newest = int(headers["X-Wpnotify-Resend"])
    asked = a.ok("GET", f"/wpnotify/v1/resend?since={newest - 1}")
    assert asked == [{"id": newest, "post": post, "kind": "trackback", "target": failed,
                      "requested_gmt": queued["resend_requested"]}]
    assert b.ok("GET", f"/wpnotify/v1/resend?since={newest - 1}") == []
    for target, code in ((sent, 409), ("http://127.0.0.19:8080/none", 404), (failed, 409)):
        status, _, _ = a.call("POST", f"/wpnotify/v1/posts/{post}/resend",
                              {"kind": "trackback", "target": target})
        assert status == code, target
    # An author may push rows for their own post, but not move the site-wide resend_seen:
    a.ok("POST", "/wpnotify/v1/statuses", {"resend_seen": newest, "posts": {
        str(post): [row(failed, "failed"), row(sent, "sent")]}})
    assert [r["status"] for r in status_of(a, post)["rows"]] == ["queued", "sent"]
    world.admin.ok("POST", "/wpnotify/v1/statuses", {"resend_seen": newest, "posts": {
        str(post): [row(failed, "pending", attempts=0), row(sent, "sent")]}})
    got = status_of(a, post)
    assert [r["status"] for r in got["rows"]] == ["pending", "sent"]
    assert got["rows"][0]["resend_requested"] == queued["resend_requested"]


def test_parallel_send_again_requests_get_distinct_ids_and_none_is_lost(world: World) -> None:
    """Ten editors' clicks at once (ten failed rows): ten distinct, increasing ids, all ten
    requests listed, all ten rows queued."""
    a = world.author_a
    post = post_of(world, a, "Ten at once")
    targets = [f"http://127.0.0.19:8080/p{i}" for i in range(10)]
    a.ok("POST", "/wpnotify/v1/statuses", {"posts": {str(post): [row(t) for t in targets]}})
    _, headers, _ = a.call("GET", "/wpnotify/v1/resend?since=0")
    before = int(headers.get("X-Wpnotify-Resend", 0))
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda t: a.call("POST", f"/wpnotify/v1/posts/{post}/resend",
                                                 {"kind": "trackback", "target": t}), targets))
    assert [status for status, _, _ in answers] == [200] * 10, answers
    listed = a.ok("GET", f"/wpnotify/v1/resend?since={before}")
    ids = [entry["id"] for entry in listed]
    assert len(set(ids)) == 10 and ids == sorted(ids) and ids[0] > before
    assert sorted(entry["target"] for entry in listed) == sorted(targets)
    assert {r["status"] for r in status_of(a, post)["rows"]} == {"queued"}


def test_send_trackbacks_to_field_round_trips_through_the_posts_route(world: World) -> None:
    """wpnotify_to_ping is read as to_ping one a line and written with core's rules: http(s)
    only, no URL twice, none already pinged; the write lands in posts.to_ping."""
    a, source = world.author_a, world.source
    post = source.create_post(post_title="Trackbacks typed in", post_author=a.user_id,
                              pinged="http://127.0.0.19:8080/old")
    typed = ("http://127.0.0.19:8080/one  javascript:alert(1)\n ftp://127.0.0.19/x "
             "http://127.0.0.19:8080/old https://127.0.0.19:8080/two http://127.0.0.19:8080/one")
    saved = a.ok("POST", f"/wp/v2/posts/{post}", {"wpnotify_to_ping": typed})
    expected = ["http://127.0.0.19:8080/one", "https://127.0.0.19:8080/two"]
    assert saved["wpnotify_to_ping"] == "\n".join(expected)
    assert source.pings(post)["to_ping"] == expected
    read = a.ok("GET", f"/wp/v2/posts/{post}?context=edit")
    assert read["wpnotify_to_ping"] == "\n".join(expected)
    assert world.author_b.call("POST", f"/wp/v2/posts/{post}", {"wpnotify_to_ping": ""})[0] == 403
    assert source.pings(post)["to_ping"] == expected


class Browser:
    """A logged-in wp-admin session with cookies, as a person's browser has it."""

    def __init__(self, site: devsite.Site, login: str, password: str) -> None:
        self.site = site
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.get("/wp-login.php")  # sets WordPress's test cookie
        form = urllib.parse.urlencode({"log": login, "pwd": password, "testcookie": "1",
                                       "redirect_to": f"{site.url}/wp-admin/"}).encode()
        with self.opener.open(f"{site.url}/wp-login.php", form, timeout=30) as response:
            assert "/wp-admin/" in response.url, "the login failed"

    def get(self, path: str) -> str:
        with self.opener.open(f"{self.site.url}{path}", timeout=30) as response:
            return str(response.read().decode())


@pytest.fixture()
def classic_on_request(world: World) -> Iterator[str]:
    """A test-only must-use plugin: the classic editor for requests with ?r14classic=1."""
    plugin = world.source.root / "mu-plugins" / "r14-classic-editor.php"
    plugin.write_text("<?php add_filter('use_block_editor_for_post', "
                      "fn($use) => isset($_GET['r14classic']) ? false : $use);\n")
    try:
        yield "r14classic=1"
    finally:
        plugin.unlink()


def assert_escaped(page: str) -> None:
    assert HOSTILE not in page and "<img src=x onerror" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_posts_list_column_and_classic_meta_box_show_escaped_rows(
        world: World, classic_on_request: str) -> None:
    """The posts list shows author A a compact summary for A's post and nothing for B's; the
    classic editor's meta box lists A's rows escaped, with Send again on the failed one only,
    and loads classic.js with wp-api-fetch (in the classic editor only)."""
    a, b = world.author_a, world.author_b
    mine, theirs = post_of(world, a, "Column mine"), post_of(world, b, "Column theirs")
    hostile_target = 'http://127.0.0.19:8080/"><img src=x onerror=alert(1)>'
    a.ok("POST", "/wpnotify/v1/statuses", {"posts": {str(mine): [
        row("http://127.0.0.19:8080/c1", "sent"), row("http://127.0.0.19:8080/c2", "sent"),
        row(hostile_target, answer=HOSTILE, kind="<b>kind</b>"),
        row("http://127.0.0.19:8080/c3", "pending")]}})
    b.ok("POST", "/wpnotify/v1/statuses", {"posts": {str(theirs): [
        row(f"http://127.0.0.19:8080/b{i}", "sent") for i in range(7)]}})
    browser = Browser(world.source, a.login, a.password)
    listing = browser.get("/wp-admin/edit.php?post_type=post&orderby=ID&order=desc")
    assert "column-wpnotify_links" in listing and "wpnotify-bridge/classic.css" in listing
    assert "2 sent · 1 failed · 1 waiting" in listing and "7 sent" not in listing
    page = browser.get(f"/wp-admin/post.php?post={mine}&action=edit&{classic_on_request}")
    assert 'id="wpnotify-links"' in page and "Links and trackbacks (wpnotify)" in page
    assert_escaped(page)
    assert "&lt;b&gt;kind&lt;/b&gt;" in page and "<b>kind</b>" not in page
    assert page.count('class="button button-small wpnotify-resend"') == 1
    assert "wpnotify-bridge/classic.js" in page and "api-fetch" in page
    assert "wpnotify-bridge/editor.css" in page and "wpnotify-bridge/classic.css" in page
    block = browser.get(f"/wp-admin/post.php?post={mine}&action=edit")
    assert "wpnotify-bridge/classic.js" not in block


def test_resend_seen_never_passes_the_newest_request(world: World) -> None:
    """A resend_seen beyond the newest request (a bug, or a hostile push) is cut to it: a
    request made after it still shows "queued" until wpnotify takes it."""
    a = world.author_a
    post = post_of(world, a, "Seen too far")
    target = "http://127.0.0.19:8080/far"
    world.admin.ok("POST", "/wpnotify/v1/statuses",
                   {"resend_seen": 10**15, "posts": {str(post): [row(target)]}})
    queued = a.ok("POST", f"/wpnotify/v1/posts/{post}/resend",
                  {"kind": "trackback", "target": target})
    assert queued["status"] == "queued"
    assert world.admin.ok("GET", "/wpnotify/v1/status")["editor_assets"] is True


def _cookie_call(browser: Browser, method: str, path: str, body: Any,
                 nonce: str | None = None) -> int:
    """The HTTP status of a REST request made with the browser's login cookies only (as a
    page on another site could make it), or with the REST nonce too (as the editors do)."""
    request = urllib.request.Request(
        f"{browser.site.url}/wp-json{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"X-WP-Nonce": nonce} if nonce else {})})
    try:
        with browser.opener.open(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_cookies_without_the_rest_nonce_are_nobody(world: World) -> None:
    """Cross-site request forgery: author A's login cookies without the wp_rest nonce read no
    rows, send nothing again and write no "Send trackbacks to" (401, nothing changed); with
    the nonce, as the editors send it, the same Send again is taken."""
    a, source = world.author_a, world.source
    post = source.create_post(post_title="Forged", post_author=a.user_id,
                              to_ping="http://127.0.0.19:8080/kept")
    target = "http://127.0.0.19:8080/forged"
    a.ok("POST", "/wpnotify/v1/statuses", {"posts": {str(post): [row(target)]}})
    browser = Browser(source, a.login, a.password)
    resend = {"kind": "trackback", "target": target}
    for method, path, body in (("GET", f"/wpnotify/v1/posts/{post}/status", None),
                               ("POST", f"/wpnotify/v1/posts/{post}/resend", resend),
                               ("POST", f"/wp/v2/posts/{post}", {"wpnotify_to_ping": ""})):
        assert _cookie_call(browser, method, path, body) == 401, path
    assert [r["status"] for r in status_of(a, post)["rows"]] == ["failed"]
    assert source.pings(post)["to_ping"] == ["http://127.0.0.19:8080/kept"]
    nonce = browser.get("/wp-admin/admin-ajax.php?action=rest-nonce").strip()
    assert _cookie_call(browser, "POST", f"/wpnotify/v1/posts/{post}/resend", resend,
                        nonce) == 200
    assert [r["status"] for r in status_of(a, post)["rows"]] == ["queued"]


def test_a_post_no_longer_public_sends_nothing_again(world: World) -> None:
    """A failed trackback of a post made private, a draft, password-protected or trashed
    since: Send again is a 409 (it would carry the post's title and excerpt), nothing is
    recorded; published again, it is taken."""
    a, source = world.author_a, world.source
    post = post_of(world, a, "Left the public")
    target = "http://127.0.0.19:8080/hidden"
    a.ok("POST", "/wpnotify/v1/statuses", {"posts": {str(post): [row(target)]}})
    resend = {"kind": "trackback", "target": target}
    for change in ({"post_status": "private"}, {"post_status": "draft"},
                   {"post_status": "publish", "post_password": "secret"},
                   {"post_status": "trash", "post_password": ""}):
        source.update_post(post, **change)
        status, _, error = a.call("POST", f"/wpnotify/v1/posts/{post}/resend", resend)
        assert (status, error["code"]) == (409, "wpnotify_not_public"), change
    assert [r["status"] for r in status_of(a, post)["rows"]] == ["failed"]
    source.update_post(post, post_status="publish")
    assert a.ok("POST", f"/wpnotify/v1/posts/{post}/resend", resend)["status"] == "queued"
