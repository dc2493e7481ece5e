"""Inbound verification end to end (issue 16, item 5): a dozen real trackbacks and pingbacks
sent to three real WordPress sites from local source pages, some that link back and some that
do not (404, no link, a link only in an HTML comment, a redirect to a private address, a
trackback whose words come from nowhere on its page, a pingback whose page linked when it
arrived and no longer does), all held for moderation. With ``inbound = "report"`` wpnotify
judges each and changes nothing; with ``"moderate"`` the unverified end as spam and the
verified approved (or still held where ``approve_verified`` is off), a ping a person changed by
hand stays as the person left it, a source that answered 503 is judged once it is back, the
report (json, csv, status) matches what WordPress shows, nothing is ever trashed or deleted,
and a second poll changes nothing."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import devsite
import pytest
from conftest import Wpnotify
from receivers import SourcePages, serving

pytestmark = pytest.mark.e2e

# Loopback addresses no other test uses (127.0.0.19 is the suite's "nothing listens here").
HOSTS = {"alpha": "127.0.0.18", "beta": "127.0.0.20", "gamma": "127.0.0.21"}
APPROVE = {"alpha": True, "beta": True, "gamma": False}  # approve_verified once moderating
PAGES = "127.0.0.70"  # the source pages, on port 8080 (WordPress fetches only 80/443/8080)
PRIVATE = "http://10.255.255.1/"  # the guard refuses it without connecting (never reached)
NO_DISK_CRON = "define('DISABLE_WP_CRON', true);"  # no wp-cron requests of its own meanwhile
# (The bridge is there so that `wpnotify check` has nothing to say but about moderation.)
TITLE = "Notes on pings"
EXCERPT = "I read a fine post about pings today and I agree with most of what it says."
# Requests that change a comment, as PHP's built-in server logs them (REST by either route).
CHANGES = re.compile(r"\]: (POST|PUT|PATCH|DELETE) /\S*(wp-json|rest_route=)/wp/v2/comments/")


@dataclass(frozen=True)
class Case:
    """One ping: where it goes and what must become of it. ``reported``: the verdict after
    the report poll ("" when a person changed it before wpnotify first looked, so it was
    never held when read); ``codes``: the reason codes accepted for the final verdict;
    ``status``: its WordPress status at the end."""

    site: str
    kind: str
    reported: str
    codes: frozenset[str]
    verdict: str
    action: str
    status: str


def case(site: str, kind: str, reported: str, codes: str, verdict: str, action: str,
         status: str) -> Case:
    return Case(site, kind, reported, frozenset(codes.split()), verdict, action, status)


CASES = {  # name: also the source page's path
    # alpha: approve_verified = true
    "linked": case("alpha", "trackback", "verified", "links", "verified", "approved",
                   "approved"),
    "flipped": case("alpha", "pingback", "unverified", "no-link", "unverified", "spam", "spam"),
    "gone": case("alpha", "trackback", "unverified", "source-gone", "unverified", "spam",
                 "spam"),
    "flaky": case("alpha", "trackback", "pending", "links", "verified", "approved", "approved"),
    # beta: approve_verified = true
    "shortlink": case("beta", "pingback", "verified", "links", "verified", "approved",
                      "approved"),
    "commented": case("beta", "trackback", "unverified", "no-link", "unverified", "spam",
                      "spam"),
    # approved by hand after the report poll, before the moderating one: left as it is
    "private": case("beta", "trackback", "unverified", "private-address", "unverified", "left",
                    "approved"),
    "redirected": case("beta", "trackback", "verified", "links", "verified", "approved",
                       "approved"),
    # gamma: approve_verified = false
    "pinged": case("gamma", "pingback", "verified", "links", "verified", "held", "hold"),
    "made-up": case("gamma", "trackback", "unverified", "excerpt-not-on-page title-not-on-page",
                    "unverified", "spam", "spam"),
    # changed by a person before wpnotify first looked
    "nolink": case("gamma", "trackback", "", "", "", "", "approved"),
    "spammed": case("gamma", "trackback", "", "", "", "", "spam"),
}
BY_HAND_FIRST = {"nolink": "approved", "spammed": "spam"}
BY_HAND_LATER = {"private": "approved"}


@dataclass(frozen=True)
class Post:
    """The post a case pings, on its site."""

    site: str
    post_id: int
    link: str  # the permalink
    slug: str


@pytest.fixture(scope="module")
def blogs(wordpress_ready: None) -> Iterator[dict[str, devsite.Site]]:
    with devsite.running({name: devsite.Site(host, title=f"Inbound {name}", bridge=True,
                                             extra_config=NO_DISK_CRON)
                          for name, host in HOSTS.items()}) as made:
        yield made


@pytest.fixture()
def pages() -> Iterator[SourcePages]:
    with serving(SourcePages(PAGES), 0.2) as server:
        yield server


# --- the source pages and the pings --------------------------------------------------------

def publish(pages: SourcePages, name: str, post: Post, site: devsite.Site) -> str:
    """The source page of case ``name`` as it is when the ping arrives; returns its URL."""
    path = f"/{name}"
    linking = (f'<p>I read <a href="{post.link}">a fine post about pings</a> today and I '
               "agree with most of what it says.</p>")
    if name == "gone":
        return pages.url(path)  # never served: 404
    if name == "flaky":
        return pages.answer(path, 503, b"busy, come back later")
    if name == "private":
        return pages.answer(path, 302, headers={"Location": PRIVATE})
    if name == "commented":
        body = f'<p>Nothing here.</p><!-- <a href="{post.link}">{EXCERPT}</a> -->'
    elif name == "nolink":
        body = f"<p>{EXCERPT}</p>"
    elif name == "made-up":
        body = f'<p>Tomatoes want sun and water. <a href="{post.link}">Also this</a>.</p>'
        return pages.page(path, "A page about gardening", body)
    elif name == "shortlink":
        body = f'<p>A fine post: <a href="{site.url}/?p={post.post_id}">this one</a>.</p>'
    elif name == "redirected":  # WordPress answers /<slug>/ with a 301 to the permalink
        body = linking.replace(post.link, f"{site.url}/{post.slug}/")
    else:
        body = linking
    return pages.page(path, TITLE, body)


def ping(site: devsite.Site, name: str, post: Post, source: str) -> None:
    """Sends case ``name``'s ping for real (WordPress verifies a pingback as it arrives)."""
    if CASES[name].kind == "pingback":
        target = f"{site.url}/?p={post.post_id}" if name == "shortlink" else post.link
        site.send_pingback(source, target)
    else:
        title, excerpt = ("Cheap replica watches, best prices",
                          "Buy cheap replica watches online with free shipping to any country."
                          ) if name == "made-up" else (TITLE, EXCERPT)
        site.send_trackback(post.link + "trackback/", url=source, title=title, excerpt=excerpt)


def send_to(site_name: str, site: devsite.Site, pages: SourcePages) -> dict[str, Post]:
    """Every case of one site: a post each, its page, its ping (15 s apart: the flood rule)."""
    posts = {}
    for name in (n for n, c in CASES.items() if c.site == site_name):
        slug = f"{name}-post"
        post_id = site.create_post(post_title=f"The {name} post", post_name=slug,
                                   post_content="<p>A post worth a ping.</p>")
        post = posts[name] = Post(site_name, post_id, site.permalink(post_id), slug)
        ping(site, name, post, publish(pages, name, post, site))
        if name == "flipped":  # the page no longer links: the case this feature exists for
            pages.page(f"/{name}", TITLE, f"<p>{EXCERPT}</p>")
    return posts


@dataclass(frozen=True)
class Sent:
    """A case's ping as it landed: its comment and its post."""

    key: tuple[str, int]  # (site, comment ID), as wpnotify's report keys it
    post: Post


def send_all(blogs: dict[str, devsite.Site], pages: SourcePages) -> dict[str, Sent]:
    """Sends every case, the three sites at once; each case's comment and post."""
    with ThreadPoolExecutor(len(blogs)) as pool:
        futures = [pool.submit(send_to, name, site, pages) for name, site in blogs.items()]
        posts = {name: post for future in futures for name, post in future.result().items()}
    sent = {}
    for name, post in posts.items():
        found = [cid for cid, c in blogs[post.site].received_pings().items()
                 if c["source"] == pages.url(f"/{name}") and c["post"] == post.post_id]
        assert len(found) == 1, (name, found)
        sent[name] = Sent((post.site, found[0]), post)
    return sent


# --- wpnotify --------------------------------------------------------------------------------

def configure(folder: Path, blogs: dict[str, devsite.Site], mode: str) -> Wpnotify:
    """Every site with ``inbound = mode``; private addresses refused except loopback, so the
    redirect to 10.x is refused by the guard; a retry due 1 s after a failed fetch."""
    lines = ['state_file = "state.sqlite3"', "", "[http]", "allow_private_addresses = false",
             'allowed_networks = ["127.0.0.0/8"]', "", "[retry]", "delays = [1]", ""]
    for name, site in blogs.items():
        secret = folder / f"{name}.password"
        secret.write_text(site.app_password + "\n")
        secret.chmod(0o600)
        lines += ["[[sites]]", f'name = "{name}"', f'url = "{site.url}"', 'username = "admin"',
                  f'password_file = "{name}.password"', f'inbound = "{mode}"']
        if mode == "moderate":
            lines.append(f"approve_verified = {str(APPROVE[name]).lower()}")
        lines.append("")
    config = folder / "config.toml"
    config.write_text("\n".join(lines))
    return Wpnotify(config, folder / "state.sqlite3")


def poll(tool: Wpnotify) -> list[dict[str, Any]]:
    """One `wpnotify poll` (exit 0: every site read); its log events (JSON lines)."""
    proc = tool.run("poll")
    return [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]


def decided(events: list[dict[str, Any]], name: str = "inbound.decided"
            ) -> Counter[tuple[str, int]]:
    """How many ``name`` events (a verdict; "inbound.acted": an earlier verdict acted on)
    each (site, comment ID) has in ``events``."""
    return Counter((str(e["site"]), int(e["comment"])) for e in events if e["event"] == name)


def report(tool: Wpnotify) -> dict[tuple[str, int], dict[str, Any]]:
    rows = json.loads(tool.run("inbound", "--format", "json", "--limit", "500").stdout)
    return {(row["site"], int(row["comment_id"])): row for row in rows}


def statuses(blogs: dict[str, devsite.Site]) -> dict[tuple[str, int], str]:
    """Every ping on every site and its WordPress status (trash included)."""
    return {(name, cid): c["status"] for name, site in blogs.items()
            for cid, c in site.received_pings().items()}


def changes_logged(blogs: dict[str, devsite.Site]) -> dict[str, int]:
    """Per site, how many comment-changing requests its server has logged so far."""
    return {name: len(CHANGES.findall(site.log_path.read_text(errors="replace")))
            for name, site in blogs.items()}


# --- the test ----------------------------------------------------------------------------

def test_inbound_pings_are_judged_reported_and_moderated_against_real_wordpress(
        blogs: dict[str, devsite.Site], pages: SourcePages, tmp_path: Path) -> None:
    sent = send_all(blogs, pages)
    arrived = statuses(blogs)
    assert {arrived[sent[name].key] for name in CASES} == {"hold"}, arrived  # held on arrival
    for name, status in BY_HAND_FIRST.items():  # a person, before wpnotify looks
        assert blogs[CASES[name].site].set_comment_status(sent[name].key[1], status) == status
    before = statuses(blogs)

    tool = configure(tmp_path, blogs, "report")
    quiet = changes_logged(blogs)
    events = poll(tool)
    reported = report(tool)
    check_report_poll(reported, sent, events)
    assert statuses(blogs) == before, "inbound = report changed a comment"
    assert changes_logged(blogs) == quiet, "inbound = report sent a comment change"

    for name, status in BY_HAND_LATER.items():  # a person, after wpnotify's first look
        assert blogs[CASES[name].site].set_comment_status(sent[name].key[1], status) == status
    pages.page("/flaky", TITLE, f'<p>I read <a href="{sent["flaky"].post.link}">a fine post '
               "about pings</a> today and I agree with most of what it says.</p>")
    time.sleep(1.5)  # the retry of the 503 source comes due ([retry] delays = [1])

    tool = configure(tmp_path, blogs, "moderate")
    checked = tool.run("check", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    quiet = changes_logged(blogs)
    moderating = poll(tool)
    final = report(tool)
    after = statuses(blogs)
    assert set(after) == set(before), "a comment was deleted"
    check_moderated(final, after, sent, moderating + events)
    acted = sum(CASES[n].action in ("spam", "approved") for n in CASES)
    assert sum(changes_logged(blogs).values()) - sum(quiet.values()) == acted

    again = poll(tool)
    assert decided(again) + decided(again, "inbound.acted") == Counter(), "decided again"
    assert statuses(blogs) == after, "a second poll changed a comment"
    assert report(tool) == final
    check_other_renderings(tool, final)


def check_report_poll(reported: dict[tuple[str, int], dict[str, Any]],
                      sent: dict[str, Sent], events: list[dict[str, Any]]) -> None:
    """After the report poll: the held pings judged (the 503 one pending, never judged on
    one failure), nothing acted on, the ones a person changed first never read as held."""
    read = {name for name, c in CASES.items() if c.reported}
    assert set(reported) == {sent[name].key for name in read}, sorted(reported)
    for name in read:
        row, want = reported[sent[name].key], CASES[name]
        assert (row["kind"], row["post_id"]) == (want.kind, sent[name].post.post_id), (name, row)
        assert row["verdict"] == want.reported, (name, row)
        assert row["action"] == "none", (name, row)
        assert row["status_seen"] == "hold", (name, row)
        assert row["reason"] or want.reported == "pending", (name, row)
        if want.reported != "pending":
            assert row["code"] in want.codes, (name, row)
    counts = decided(events)
    assert counts == Counter(sent[n].key for n in read if CASES[n].reported != "pending")
    assert decided(events, "inbound.acted") == Counter(), "acted on in report mode"


def check_moderated(final: dict[tuple[str, int], dict[str, Any]],
                    after: dict[tuple[str, int], str], sent: dict[str, Sent],
                    events: list[dict[str, Any]]) -> None:
    """After the moderating poll: each ping's verdict, code and action, WordPress showing
    what the report says, the hand-changed ones as the person left them, nothing trashed or
    deleted, one decision logged per ping."""
    for name, want in CASES.items():
        at = sent[name].key
        assert after.get(at) == want.status, (name, after.get(at))
        row = final.get(at)
        if not want.reported:  # changed by hand before the first read: never read, or left
            assert row is None or row["action"] == "left", (name, row)
            continue
        assert row is not None, name
        assert (row["verdict"], row["action"]) == (want.verdict, want.action), (name, row)
        assert row["code"] in want.codes, (name, row)
        assert row["status_after"] == want.status, (name, row)
    assert "trash" not in after.values(), after
    counts = decided(events)
    assert set(counts) == set(final) and set(counts.values()) == {1}, counts


def check_other_renderings(tool: Wpnotify, final: dict[tuple[str, int], dict[str, Any]]
                           ) -> None:
    """csv, the table, --site/--verdict filters and `status` tell the same story as json."""
    text = tool.run("inbound", "--format", "csv", "--limit", "500").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {(r["site"], int(r["comment_id"])): (r["verdict"], r["code"], r["action"])
            for r in rows} == {k: (r["verdict"], r["code"] or "", r["action"])
                               for k, r in final.items()}
    table = tool.run("inbound").stdout
    assert all(name in table for name in HOSTS), table
    only = json.loads(tool.run("inbound", "--site", "beta", "--verdict", "verified",
                               "--format", "json").stdout)
    assert {(r["site"], r["comment_id"]) for r in only} == {
        k for k, r in final.items() if k[0] == "beta" and r["verdict"] == "verified"}
    status = json.loads(tool.run("status", "--format", "json").stdout)
    assert {site["site"] for site in status} == set(HOSTS)
    for site in status:
        mine = [r for k, r in final.items() if k[0] == site["site"]]
        assert site["inbound"] == {"mode": "moderate",
                                   "verdicts": dict(Counter(r["verdict"] for r in mine)),
                                   "actions": dict(Counter(r["action"] for r in mine))}, site
