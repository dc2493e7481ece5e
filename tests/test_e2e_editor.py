"""The editor side of issue 14 in a real headless browser (Debian's chromium, driven by
Selenium), against real WordPress with the bridge: an author queues a trackback in the block
editor's "Links and trackbacks" panel, sees each link's and trackback's result after wpnotify's
poll, and sends a refused one again. Smaller tests check the panel alone on rows pushed by hand
(route 1): text never becomes markup, Send again, another author's rows, a failing bridge.

Screenshots go to tests/artifacts/ (the block editor's panel and the classic editor's box)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import browser
import devsite
import pytest
from conftest import Wpnotify
from receivers import LocalServer, PingbackReceiver, QuietHandler, reply, serving

pytestmark = pytest.mark.e2e

PASSWORD = "ann-pass-1-2-3"  # no quotes: wp-login.php gets them slashed
HOSTILE = "<img src=x onerror=alert(1)>"


class Trackbacks(LocalServer):
    """POST /tb/<name>: a trackback, accepted, or refused with ``refuse`` as the message."""

    def __init__(self) -> None:
        super().__init__(_TrackbackHandler)
        self.received: list[str] = []
        self.refuse: str | None = None


class _TrackbackHandler(QuietHandler):
    server: Trackbacks

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(self.path)
        refuse = self.server.refuse
        answer = (f"<error>1</error><message>{escape(refuse)}</message>" if refuse
                  else "<error>0</error>")
        reply(self, 200, f'<?xml version="1.0" encoding="utf-8"?><response>{answer}</response>'
              .encode(), "text/xml", {})


@pytest.fixture(scope="module")
def chromium_ready() -> None:
    """Skips (fails in CI) before any site is set up when the browser cannot run."""
    problem = browser.browser_missing()
    if problem and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {problem}")
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def author(chromium_ready: None, sites: dict[str, devsite.Site]) -> int:
    return browser.make_user(sites["source"], "editor-ann", PASSWORD)


@pytest.fixture(scope="module")
def driver(sites: dict[str, devsite.Site], author: int) -> Iterator[Any]:
    """A headless Chromium logged in to the source site as the author "editor-ann"."""
    with browser.chromium() as chromium:
        browser.log_in(chromium, sites["source"], "editor-ann", PASSWORD)
        yield chromium


def row(kind: str, target: str, status: str, answer: str | None = None,
        **more: Any) -> dict[str, Any]:
    """A status row as wpnotify pushes it (contract: every key present)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"kind": kind, "target": target, "endpoint": None, "status": status,
            "attempts": 1, "answer": answer, "code": None,
            "sent_at": now if status == "sent" else None, "next_at": None, "updated_at": now,
            **more}


def push(site: devsite.Site, post_id: int, rows: list[dict[str, Any]],
         resend_seen: int = 0) -> None:
    answer = site.rest("POST", "/wpnotify/v1/statuses",
                       {"posts": {str(post_id): rows}, "resend_seen": resend_seen})
    assert answer == {"recorded": 1, "refused": []}, answer


def api(driver: Any, method: str, path: str, data: Any = None) -> dict[str, Any]:
    """wp.apiFetch in the page, as the logged-in user (cookie and REST nonce)."""
    return dict(driver.execute_async_script(
        """
        var done = arguments[arguments.length - 1];
        var request = {path: arguments[1], method: arguments[0]};
        if (arguments[2]) { request.data = arguments[2]; }
        wp.apiFetch(request).then(function (r) { done({ok: r}); },
                                  function (e) { done({error: e}); });
        """, method, path, data))


def by_target(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {each["target"]: each for each in rows}


def click_send_again(driver: Any, target: str) -> None:
    from selenium.webdriver.common.by import By

    for item in driver.find_elements(By.CSS_SELECTOR, ".wpnotify-panel .wpnotify-row"):
        if item.find_element(By.CSS_SELECTOR, ".wpnotify-target").text == target:
            browser.press(driver, item.find_element(By.CSS_SELECTOR, ".wpnotify-resend"))
            return
    raise AssertionError(f"no row for {target} in the panel: {browser.rows(driver)}")


def test_the_panel_shows_rows_as_text_and_sends_a_failed_one_again(
        sites: dict[str, devsite.Site], driver: Any, author: int) -> None:
    """Rows pushed through route 1 show with their badges; a hostile answer stays text; only
    the failed row offers Send again, which turns it to Queued and records a request; a save
    reads the rows again."""
    source = sites["source"]
    post = source.create_post(post_title="Rows pushed by hand", post_author=author)
    push(source, post, hand_rows())
    browser.open_editor(driver, source, post)
    browser.open_panel(driver)
    shown = by_target(browser.wait(driver, lambda d: len(browser.rows(d)) == 5 and
                                   browser.rows(d), what="five rows"))
    check_pushed_rows(shown)
    assert not driver.find_elements("css selector", ".wpnotify-panel img")
    browser.save(driver, "panel-pushed-rows", browser.css(driver, ".wpnotify-panel"))

    click_send_again(driver, "http://127.0.0.1:9/tb/hostile")
    browser.wait(driver, lambda d: by_target(browser.rows(d))["http://127.0.0.1:9/tb/hostile"]
                 ["badge"] == "Queued", what="the row Queued")
    browser.refresh_until(driver, lambda r: by_target(r)["http://127.0.0.1:9/tb/hostile"]
                          ["badge"] == "Queued", "Queued after a reload")
    requests = source.rest("GET", "/wpnotify/v1/resend?since=0")
    assert [(r["kind"], r["target"]) for r in requests if r["post"] == post] == [
        ("trackback", "http://127.0.0.1:9/tb/hostile")]
    assert not driver.find_elements("css selector", ".wpnotify-panel .wpnotify-error")

    # wpnotify takes the request and reports the trackback sent; saving the post (no
    # Refresh) reads the rows again.
    push(source, post, [row("trackback", "http://127.0.0.1:9/tb/hostile", "sent", "accepted")],
         resend_seen=max(r["id"] for r in requests))
    type_trackbacks(driver, "http://127.0.0.1:9/tb/later")
    update(driver)
    browser.wait(driver, lambda d: [(r["badge"], r["answer"]) for r in browser.rows(d)] == [
        ("Sent", "accepted")], 8, "the rows read again after the save")  # before the 20 s


def hand_rows() -> list[dict[str, Any]]:
    """One row of each status but queued, one with a hostile answer."""
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    return [
        row("pingback", "http://127.0.0.1:9/linked", "sent", "registered"),
        row("trackback", "http://127.0.0.1:9/tb/hostile", "failed", HOSTILE, code="refused"),
        row("webmention", "http://127.0.0.1:9/busy", "pending", "the endpoint answered 503",
            next_at=later),
        row("pingback", "http://127.0.0.1:9/private", "skipped", "a private address"),
        row("weblogupdates", "http://127.0.0.1:9/RPC2", "sending"),
    ]


def check_pushed_rows(shown: dict[str, dict[str, str]]) -> None:
    """The rows of the panel test as a person reads them: kinds, badges, answers (the hostile
    one as text), times, and Send again only on the failed and the skipped row."""
    linked, hostile, busy, private, service = (
        shown[f"http://127.0.0.1:9/{name}"]
        for name in ("linked", "tb/hostile", "busy", "private", "RPC2"))
    assert (linked["kind"], linked["badge"], linked["answer"]) == ("Pingback", "Sent",
                                                                   "registered")
    assert (hostile["kind"], hostile["badge"], hostile["answer"]) == ("Trackback", "Failed",
                                                                      HOSTILE)
    assert busy["badge"].startswith("Retrying at "), busy
    assert (private["badge"], service["kind"], service["badge"], service["answer"]) == (
        "Skipped", "Update service", "Sending", "")
    assert [each["resend"] for each in (linked, hostile, busy, private, service)] == [
        False, True, False, True, False]
    assert all(each["time"] for each in shown.values()), shown


def test_an_author_can_neither_read_nor_resend_another_authors_rows(
        sites: dict[str, devsite.Site], driver: Any, author: int) -> None:
    """From the author's own editor (cookie and nonce), another author's post answers 403 to
    both routes the panel uses, and no request is recorded for it."""
    source = sites["source"]
    other = browser.make_user(source, "editor-bob", PASSWORD + " bob")
    theirs = source.create_post(post_title="Bob's post", post_author=other)
    push(source, theirs, [row("trackback", "http://127.0.0.1:9/tb/bob", "failed", "refused")])
    mine = source.create_post(post_title="Ann's post", post_author=author)
    browser.open_editor(driver, source, mine)
    read = api(driver, "GET", f"/wpnotify/v1/posts/{theirs}/status")
    resend = api(driver, "POST", f"/wpnotify/v1/posts/{theirs}/resend",
                 {"kind": "trackback", "target": "http://127.0.0.1:9/tb/bob"})
    for answer in (read, resend):
        assert "ok" not in answer, answer
        assert answer["error"]["data"]["status"] == 403, answer
    assert api(driver, "GET", f"/wpnotify/v1/posts/{mine}/status")["ok"]["rows"] == []
    requests = source.rest("GET", "/wpnotify/v1/resend?since=0")
    assert [r for r in requests if r["post"] == theirs] == []


BREAK = """<?php
// Written by tests/test_e2e_editor.py for one test: the status route answers {mode}.
add_filter('rest_pre_dispatch', function ($result, $server, $request) {{
    if (strpos($request->get_route(), '/wpnotify/v1/posts/') !== 0) {{ return $result; }}
    if ('{mode}' === 'error') {{
        return new WP_Error('wpnotify_test', "The bridge is\\nbroken for a test.",
                            ['status' => 500]);
    }}
    if ('{mode}' === 'shape') {{ return new WP_REST_Response(['rows' => 'not a list']); }}
    return new WP_REST_Response(['rows' => [null, 5, 'x', ['status' => 5],
        ['status' => 'constructor', 'kind' => '__proto__', 'target' => ['a' => 1],
         'answer' => ['<b>x</b>'], 'next_at' => 'soon', 'sent_at' => 7]]]);
}}, 10, 3);
"""


def test_the_panel_shows_a_broken_bridge_in_one_line_and_keeps_working(
        sites: dict[str, devsite.Site], driver: Any, author: int) -> None:
    """An error answer and an answer of the wrong shape each show as one line in the panel;
    rows of every wrong type render as text or not at all; the field stays usable; once the
    route works again, the empty state shows."""
    source = sites["source"]
    post = source.create_post(post_title="No rows yet", post_author=author, post_status="draft")
    browser.open_editor(driver, source, post)
    browser.open_panel(driver)
    empty = browser.css(driver, ".wpnotify-panel .wpnotify-empty")
    assert empty.text == "Nothing sent yet: wpnotify sends after publishing."
    plugin = source.root / "mu-plugins" / "wpnotify-test-break.php"
    try:
        for mode, message in (("error", "The bridge is broken for a test."),
                              ("shape", "The wpnotify bridge sent no rows")):
            plugin.write_text(BREAK.format(mode=mode))
            browser.press(driver, browser.css(driver, ".wpnotify-panel .wpnotify-refresh"))
            error = browser.wait(driver, lambda d, says=message: [e for e in d.find_elements(
                "css selector", ".wpnotify-panel .wpnotify-error") if says in e.text],
                what=f"the error line ({mode})")[0]
            assert "\n" not in error.text
        plugin.write_text(BREAK.format(mode="odd"))  # rows of every wrong type
        browser.press(driver, browser.css(driver, ".wpnotify-panel .wpnotify-refresh"))
        odd = browser.wait(driver, browser.rows, what="the one row with a status")
        assert odd == [{"status": "constructor", "kind": "__proto__", "badge": "constructor",
                        "target": "", "answer": "", "time": "", "resend": False}], odd
        assert not driver.find_elements("css selector", ".wpnotify-panel .wpnotify-error")
        browser.css(driver, ".wpnotify-panel .wpnotify-to-ping textarea").send_keys(
            "http://127.0.0.1:9/tb/still-typed")
    finally:
        plugin.unlink(missing_ok=True)
    browser.press(driver, browser.css(driver, ".wpnotify-panel .wpnotify-refresh"))
    browser.wait(driver, lambda d: not d.find_elements("css selector", ".wpnotify-error"),
                 what="the error line gone")
    assert browser.css(driver, ".wpnotify-panel .wpnotify-empty")
    assert driver.execute_script("return wp.data.select('core/editor')"
                                 ".getEditedPostAttribute('wpnotify_to_ping')") == (
        "http://127.0.0.1:9/tb/still-typed")


CLASSIC = """<?php
// Written by tests/test_e2e_editor.py for one page load: the classic editor for posts.
add_filter('use_block_editor_for_post', '__return_false');
"""


def test_an_author_queues_a_trackback_sees_results_and_sends_a_refused_one_again(
        sites: dict[str, devsite.Site], driver: Any, author: int, make_wpnotify: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's scenario: in the block editor, a post with a link (a pingback) and a
    trackback typed into "Send trackbacks to"; publish; a poll; both rows Sent. A second
    trackback the receiver refuses: Failed with its message; Send again: Queued; once the
    receiver accepts, the next poll: Sent. Screenshots of both editors."""
    source = sites["source"]
    tool: Wpnotify = make_wpnotify([("editor", source, source.app_password)])
    tool.run("poll")  # the first poll: wpnotify watches from now on
    with serving(PingbackReceiver()) as pings, serving(Trackbacks()) as trackbacks:
        assert isinstance(pings, PingbackReceiver) and isinstance(trackbacks, Trackbacks)
        link, first, second = (pings.url("/t/linked"), trackbacks.url("/tb/first"),
                               trackbacks.url("/tb/second"))
        post = write_and_publish(driver, source, link, first)
        tool.run("poll")
        assert (dict(pings.calls), trackbacks.received) == ({link: 1}, ["/tb/first"])
        browser.refresh_until(driver, lambda r: [(e["target"], e["badge"]) for e in r] in (
            [(link, "Sent"), (first, "Sent")], [(first, "Sent"), (link, "Sent")]),
            "both rows Sent")
        browser.wait(driver, lambda d: browser.css(
            d, ".wpnotify-panel .wpnotify-to-ping textarea").get_attribute("value") == "",
            10, "the sent trackback gone from the field, as after a reload")
        assert not driver.execute_script(
            "return wp.data.select('core/editor').isEditedPostDirty();")

        shots = refuse_then_send_again(driver, tool, trackbacks, second)
    shots.append(classic_screenshot(driver, source, post, [link, first, second]))
    with capsys.disabled():
        print(f"\nscreenshots: {' '.join(map(str, shots))}")


def refuse_then_send_again(driver: Any, tool: Wpnotify, trackbacks: Trackbacks,
                           second: str) -> list[Path]:
    """The scenario's second half: a trackback refused, Failed with the receiver's message;
    Send again once the receiver accepts: Queued, then Sent. Returns the screenshots."""
    trackbacks.refuse = "Trackbacks from strangers are not welcome here"
    type_trackbacks(driver, second)
    update(driver)
    tool.run("poll")
    failed = browser.refresh_until(
        driver, lambda r: by_target(r).get(second, {}).get("badge") == "Failed",
        "the refused trackback Failed")
    assert trackbacks.refuse in by_target(failed)[second]["answer"]
    driver.execute_script("document.activeElement.blur();")  # no focus ring in the picture
    panel = browser.css(driver, ".wpnotify-panel")
    shots = [browser.save(driver, "editor-panel", panel)]

    trackbacks.refuse = None
    click_send_again(driver, second)
    browser.wait(driver, lambda d: by_target(browser.rows(d))[second]["badge"] == "Queued",
                 what="the row Queued")
    tool.run("poll")
    assert trackbacks.received == ["/tb/first", "/tb/second", "/tb/second"]
    browser.refresh_until(driver, lambda r: by_target(r)[second]["badge"] == "Sent",
                          "the trackback sent again Sent")
    shots.append(browser.save(driver, "editor-panel-sent", panel))
    return shots


def write_and_publish(driver: Any, site: devsite.Site, link: str, trackback: str) -> int:
    """A new post typed as a person does: title, a paragraph with a link (Ctrl+K), the
    trackback in the panel's field; published through the publish panel. Returns its ID."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.open_editor(driver, site)
    title = browser.css(driver, ".editor-post-title__input")
    title.click()
    title.send_keys("A post with a link and a trackback", Keys.ENTER)
    paragraph = browser.wait(driver, lambda d: d.switch_to.active_element if "rich-text" in (
        d.switch_to.active_element.get_attribute("class") or "") else None,
        what="the paragraph after the title")
    paragraph.send_keys("I read ")
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("k").key_up(Keys.CONTROL).perform()
    url = browser.css(driver, ".block-editor-link-control__search-input input, "
                      "input.block-editor-url-input__input")
    url.send_keys(link, Keys.ENTER)
    browser.css(driver, f'.block-editor-rich-text__editable a[href="{link}"]')
    browser.open_panel(driver)
    type_trackbacks(driver, trackback)
    browser.press(driver, browser.css(driver, ".editor-post-publish-panel__toggle"))
    browser.press(driver, browser.css(
        driver, ".editor-post-publish-panel .editor-post-publish-button"))
    browser.wait(driver, lambda d: d.execute_script(
        "var e = wp.data.select('core/editor');"
        " return e.isCurrentPostPublished() && !e.isSavingPost();"), what="the post published")
    browser.press(driver, browser.css(
        driver, '.editor-post-publish-panel__header button[aria-label="Close panel"]'))
    browser.open_panel(driver)
    post_id = int(driver.execute_script(
        "return wp.data.select('core/editor').getCurrentPostId();"))
    assert site.pings(post_id)["to_ping"] == [trackback]
    return post_id


def type_trackbacks(driver: Any, urls: str) -> None:
    """Replaces what "Send trackbacks to" holds with ``urls``, key by key."""
    from selenium.webdriver.common.keys import Keys

    field = browser.css(driver, ".wpnotify-panel .wpnotify-to-ping textarea")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(urls)


def update(driver: Any) -> None:
    """Clicks Update and waits until the post is saved."""
    browser.press(driver, browser.css(driver, ".editor-post-publish-button"))
    browser.wait(driver, lambda d: d.execute_script(
        "var e = wp.data.select('core/editor');"
        " return !e.isSavingPost() && !e.isEditedPostDirty();"), what="the post saved")


def classic_screenshot(driver: Any, site: devsite.Site, post_id: int,
                       targets: list[str]) -> Path:
    """The classic editor's meta box for the post (the classic editor forced for one page
    load by a test-only must-use plugin), with every target shown; its screenshot's path."""
    from selenium.webdriver.common.by import By

    plugin = site.root / "mu-plugins" / "wpnotify-test-classic.php"
    plugin.write_text(CLASSIC)
    try:
        driver.get(f"{site.url}/wp-admin/post.php?post={post_id}&action=edit")
        box = browser.wait(driver, lambda d: next(
            (b for b in d.find_elements(By.CSS_SELECTOR, ".postbox")
             if "Links and trackbacks" in b.find_element(By.CSS_SELECTOR, "h2").text), None),
            what="the classic editor's wpnotify box")
    finally:
        plugin.unlink(missing_ok=True)
    for target in targets:
        assert target in box.text, box.text
    return browser.save(driver, "classic-meta-box", box)


def test_the_classic_meta_box_sends_a_failed_one_again(
        sites: dict[str, devsite.Site], driver: Any, author: int) -> None:
    """In the classic editor, Send again on the failed row (classic.js, through wp.apiFetch
    with the REST nonce) turns its badge to Queued, drops the button and records the request;
    the sent row has no button."""
    from selenium.webdriver.common.by import By

    source = sites["source"]
    post = source.create_post(post_title="Classic rows", post_author=author)
    sent, failed = "http://127.0.0.1:9/tb/classic-sent", "http://127.0.0.1:9/tb/classic-failed"
    push(source, post, [row("trackback", sent, "sent", "accepted"),
                        row("trackback", failed, "failed", "Trackbacks are closed")])
    newest = source.rest("GET", "/wpnotify/v1/resend?since=0")
    plugin = source.root / "mu-plugins" / "wpnotify-test-classic.php"
    plugin.write_text(CLASSIC)
    try:
        driver.get(f"{source.url}/wp-admin/post.php?post={post}&action=edit")
        rows = browser.wait(driver, lambda d: d.find_elements(
            By.CSS_SELECTOR, "#wpnotify-links .wpnotify-row") or None, what="the box's rows")
    finally:
        plugin.unlink(missing_ok=True)
    shown = {r.get_attribute("data-target"): r for r in rows}
    assert shown[sent].find_elements(By.CSS_SELECTOR, ".wpnotify-resend") == []
    assert shown[failed].find_element(By.CSS_SELECTOR, ".wpnotify-badge").text == "Failed"
    browser.press(driver, shown[failed].find_element(By.CSS_SELECTOR, ".wpnotify-resend"))
    browser.wait(driver, lambda d: shown[failed].find_element(
        By.CSS_SELECTOR, ".wpnotify-badge").text == "Queued", what="the row Queued")
    assert shown[failed].find_elements(By.CSS_SELECTOR, ".wpnotify-resend") == []
    requests = source.rest("GET", f"/wpnotify/v1/resend?since={len(newest) and newest[-1]['id']}")
    assert [(r["post"], r["kind"], r["target"]) for r in requests] == [
        (post, "trackback", failed)]
