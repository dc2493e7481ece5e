"""Planning: what a post owes under each site setting (pure, no I/O)."""

from __future__ import annotations

from typing import Any

from wpnotify.plan import plan
from wpnotify.settings import SiteSettings
from wpnotify.sources import Post
from wpnotify.times import wp_time

HOME = "https://blog.example"


def site(**settings: Any) -> SiteSettings:
    return SiteSettings(name="s", url=HOME, username="u", password="p", **settings)


def post(links: list[str], to_ping: list[str] | None = None,
         pinged: list[str] | None = None) -> Post:
    return Post(id=1, type="post", status="publish", link=f"{HOME}/p/", title_html="T",
                content_html="".join(f'<a href="{u}">x</a>' for u in links),
                excerpt_html="", protected=False, modified_gmt=wp_time("2026-11-26T12:00:00"),
                date_gmt=wp_time("2026-11-26T12:00:00"), to_ping=tuple(to_ping or ()),
                pinged=tuple(pinged or ()))


def nothing_known(kind: str) -> set[str]:
    return set()


def summary(items: list[Any]) -> list[tuple[str, str, str, str | None]]:
    return [(i.kind, i.target, i.status, i.error_code) for i in items]


def test_prefer_decides_the_kinds_per_link() -> None:
    links = ["https://a.example/1"]
    assert [i.kind for i in plan(post(links), site(), home=HOME, blog_name="B",
                                 known=nothing_known)] == ["webmention"]
    assert [i.kind for i in plan(post(links), site(prefer="both"), home=HOME,
                                 blog_name="B", known=nothing_known)] == ["webmention",
                                                                          "pingback"]
    assert [i.kind for i in plan(post(links), site(prefer="pingback"), home=HOME,
                                 blog_name="B", known=nothing_known)] == ["pingback"]


def test_a_link_sent_as_a_pingback_fallback_is_not_planned_again() -> None:
    known = {"pingback": {"https://a.example/1"}}
    items = plan(post(["https://a.example/1", "https://a.example/2"]), site(), home=HOME,
                 blog_name="B", known=lambda kind: known.get(kind, set()))
    assert [i.target for i in items] == ["https://a.example/2"]


def test_trackbacks_beyond_the_limit_are_skipped_with_the_reason() -> None:
    to_ping = [f"https://t{i}.example/tb" for i in range(4)]
    known = {"trackback": {to_ping[0]}}
    items = plan(post([], to_ping), site(max_trackbacks_per_post=2), home=HOME,
                 blog_name="B", known=lambda kind: known.get(kind, set()))
    assert summary(items) == [
        ("trackback", to_ping[1], "pending", None),
        ("trackback", to_ping[2], "skipped", "too-many-trackbacks"),
        ("trackback", to_ping[3], "skipped", "too-many-trackbacks")]
    assert "max_trackbacks_per_post (2)" in (items[1].error or "")


def test_allow_and_deny_hosts_apply_to_every_kind() -> None:
    items = plan(post(["https://good.example/a", "https://spam.example/b",
                       "https://other.org/c"], ["https://spam.example/tb"]),
                 site(allow_hosts=("*.example",), deny_hosts=("spam.*",),
                      update_services=("https://rpc.other.org/",)),
                 home=HOME, blog_name="B", known=nothing_known, announce=True)
    assert summary(items) == [
        ("webmention", "https://good.example/a", "pending", None),
        ("webmention", "https://spam.example/b", "skipped", "host-refused"),
        ("webmention", "https://other.org/c", "skipped", "host-refused"),
        ("trackback", "https://spam.example/tb", "skipped", "host-refused"),
        ("update-service", "https://rpc.other.org/", "skipped", "host-refused")]
    assert items[1].error == "host spam.example matches deny_hosts"
    assert items[2].error == "host other.org is not in allow_hosts"


def test_update_services_only_for_a_fresh_publish() -> None:
    s = site(update_services=("https://rpc.example/",))
    assert plan(post([]), s, home=HOME, blog_name="B", known=nothing_known) == []
    (item,) = plan(post([]), s, home=HOME, blog_name="B", known=nothing_known, announce=True)
    assert (item.kind, item.payload_dict()["home"]) == ("update-service", HOME + "/")


def test_trackback_discovery_carries_the_ping_with_each_link() -> None:
    (item,) = plan(post(["https://a.example/1"]), site(trackback_discovery=True), home=HOME,
                   blog_name="B", known=nothing_known)
    stored = item.payload_dict()
    assert stored["ping"]["url"] == f"{HOME}/p/" and stored["fallback"] is True


def test_a_malformed_link_is_skipped_and_the_good_ones_planned() -> None:
    """One bad link no longer fails its whole post (issue 12, item 4): it is recorded as
    skipped with bad-url and a message naming it, the post's good links go out as usual."""
    bad = ["http://example.com:8O80/", "http://[your link here]"]
    items = plan(post([bad[0], "https://a.example/1", bad[1]], ["http://[tb"]),
                 site(prefer="both", deny_hosts=("spam.*",)), home=HOME, blog_name="B",
                 known=nothing_known)
    assert summary(items) == [
        ("webmention", bad[0], "skipped", "bad-url"),
        ("pingback", bad[0], "skipped", "bad-url"),
        ("webmention", "https://a.example/1", "pending", None),
        ("pingback", "https://a.example/1", "pending", None),
        ("webmention", bad[1], "skipped", "bad-url"),
        ("pingback", bad[1], "skipped", "bad-url"),
        ("trackback", "http://[tb", "skipped", "bad-url")]
    assert "port" in (items[0].error or "") and bad[0] in (items[0].error or "")
    assert "fix the link" in (items[4].error or "")
