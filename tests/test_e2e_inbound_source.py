"""The REST source's comment routes against real WordPress (issue 16): received trackbacks and
pingbacks are read (held ones first, then everything newer than the cursor), moderated (spam,
approved) and read back; a post's permalink is found; a user who may not moderate comments is
told so in one line. The pings made here are removed again, so the session's site is left as
it was found."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import devsite
import pytest

from wpnotify.errors import SourceError
from wpnotify.http import Http
from wpnotify.settings import HttpSettings, SiteSettings
from wpnotify.sources.records import PingBatch
from wpnotify.sources.rest import RestSource

pytestmark = pytest.mark.e2e


@dataclass
class World:
    site: devsite.Site
    source: RestSource
    post: int
    page: int
    author_password: str


def trackback(site: devsite.Site, post: int, url: str) -> None:
    """A real trackback POST; WordPress's flood check (15 s site-wide, any sender) may still
    hold another test's ping: then wait it out once."""
    body = urllib.parse.urlencode({"url": url, "title": "A reply", "excerpt": "Linking here",
                                   "blog_name": "Other blog"}).encode()
    for attempt in range(2):
        try:
            with urllib.request.urlopen(site.trackback_url(post), body,
                                        timeout=30) as answer:
                assert b"<error>0</error>" in answer.read()
                return
        except urllib.error.HTTPError as exc:
            if exc.code != 429 or attempt:
                raise
            time.sleep(16)


def insert_ping(site: devsite.Site, post: int, kind: str, url: str, approved: str) -> int:
    """A ping written straight into the database (no flood check): ``approved`` is "0"
    (held), "1" or "spam"."""
    return int(site.php(f"""
        return wp_insert_comment(['comment_post_ID' => {post}, 'comment_type' => '{kind}',
            'comment_author' => 'Pinger', 'comment_author_url' => '{url}',
            'comment_author_IP' => '127.0.0.99', 'comment_content' => 'Some text',
            'comment_approved' => '{approved}']);"""))


def source_for(site: devsite.Site, username: str, password: str, per_page: int) -> RestSource:
    settings = SiteSettings(name="inbound", url=site.url, username=username,
                            password=password, api="rest")  # type: ignore[arg-type]
    return RestSource(Http(HttpSettings(allow_private_addresses=True)), settings, per_page)


@pytest.fixture(scope="module")
def world(sites: dict[str, devsite.Site]) -> Iterator[World]:
    """A post and a page on the source site, an Author (who may not moderate comments),
    and a source that reads two comments a page, so that every read pages. All removed
    afterwards, with every comment on them."""
    site = sites["source"]
    post = site.create_post(post_title="Inbound target")
    page = site.create_post(post_title="Inbound page", post_type="page")
    made = site.php("""
        $id = wp_insert_user(['user_login' => 'r16-author', 'user_pass' => wp_generate_password(),
                              'user_email' => 'r16-author@example.invalid', 'role' => 'author']);
        if (is_wp_error($id)) { return $id->get_error_message(); }
        [$app] = WP_Application_Passwords::create_new_application_password($id, ['name' => 'r16']);
        return ['id' => $id, 'app' => $app];""")
    assert isinstance(made, dict), made
    try:
        yield World(site, source_for(site, "admin", site.app_password, 2), post, page,
                    made["app"])
    finally:
        site.php(f"""
            require_once ABSPATH . 'wp-admin/includes/user.php';
            wp_delete_user({int(made['id'])});
            foreach ([{post}, {page}] as $p) {{ wp_delete_post($p, true); }}
            return true;""")  # deleting a post for good deletes its comments


def test_pings_are_read_held_first_then_newer_than_the_cursor(world: World) -> None:
    """First read: the held pings (not the approved or spam ones), and as cursor the newest
    ping of any status; a later read: held and approved pings above the cursor, oldest first,
    each once, across pages."""
    site, source = world.site, world.source
    before = source.pings(None).newest or 0
    trackback(site, world.post, "http://127.0.0.77/tb-source/")
    held = insert_ping(site, world.post, "pingback", "http://127.0.0.77/pb-source/", "0")
    approved = insert_ping(site, world.post, "trackback", "http://127.0.0.77/ok/", "1")
    spam = insert_ping(site, world.post, "pingback", "http://127.0.0.77/spam/", "spam")

    first = source.pings(None)
    ours = [p for p in first.pings if p.comment_id > before]
    assert [(p.kind, p.status, p.source) for p in ours] == [
        ("trackback", "hold", "http://127.0.0.77/tb-source/"),
        ("pingback", "hold", "http://127.0.0.77/pb-source/")]
    sent = ours[0]
    assert (sent.post_id, sent.author, sent.author_ip) == (world.post, "Other blog", "127.0.0.1")
    assert sent.content == "<strong>A reply</strong>\n\nLinking here"
    assert sent.date_gmt.tzinfo is not None
    assert first.newest == spam  # the cursor passes the spam one too

    later = source.pings(before)
    assert [p.comment_id for p in later.pings] == [sent.comment_id, held, approved]
    assert later.newest == approved
    assert [p.comment_id for p in source.pings(held).pings] == [approved]
    assert source.pings(spam) == PingBatch([], None)


def test_moderation_is_set_and_read_back(world: World) -> None:
    """Spam and approved are set and read back; setting a status a comment already has is
    no failure; a deleted comment reads as gone; anything else than spam or approved is
    refused before any request."""
    site, source = world.site, world.source
    one = insert_ping(site, world.post, "trackback", "http://127.0.0.77/one/", "0")
    two = insert_ping(site, world.post, "pingback", "http://127.0.0.77/two/", "0")
    assert source.comment_status(one) == "hold"
    assert source.set_comment_status(one, "spam") == "spam"
    assert source.comment_status(one) == "spam"
    assert source.set_comment_status(one, "spam") == "spam"  # WordPress answers 500 here
    assert source.set_comment_status(two, "approved") == "approved"
    assert source.comment_status(two) == "approved"
    site.php(f"return wp_delete_comment({two}, true);")
    assert source.comment_status(two) is None
    for wrong in ("trash", "hold", "delete"):
        with pytest.raises(ValueError):
            source.set_comment_status(one, wrong)
    assert source.comment_status(one) == "spam"


def test_post_links_give_permalink_and_type_of_posts_that_exist(world: World) -> None:
    """Posts and pages are found (pages although only posts are configured); an ID that is
    no post is left out."""
    links = world.source.post_links([world.post, world.page, 987654])
    assert links == {world.post: (world.site.permalink(world.post), "post"),
                     world.page: (world.site.permalink(world.page), "page")}


def test_a_user_who_cannot_moderate_is_told_in_one_line(world: World) -> None:
    """An Author has an Application Password that works, but may not moderate comments:
    one line naming the role needed, not "check the password"."""
    world.source.can_moderate()
    held = insert_ping(world.site, world.post, "trackback", "http://127.0.0.77/three/", "0")
    author = source_for(world.site, "r16-author", world.author_password, 2)
    author.info()  # the credentials themselves are fine
    for call in (author.can_moderate, lambda: author.pings(None),
                 lambda: author.comment_status(held)):
        with pytest.raises(SourceError) as caught:
            call()
        message = str(caught.value)
        assert "user 'r16-author' cannot moderate comments (needs moderate_comments: an " \
               "Editor or Administrator)" in message, message
        assert "\n" not in message and world.author_password not in message
