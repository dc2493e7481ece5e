"""A real headless browser for the editor tests: Debian's chromium and chromedriver driven by
Selenium, with nothing fetched at run time (no Selenium Manager, no browser download), and the
few WordPress screens the tests walk through (log-in, the block editor, the wpnotify panel).

Waits are explicit (on elements and states), never fixed sleeps: the block editor on PHP's
built-in server takes seconds to load and its timing varies."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import devsite

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--window-size=1280,1400", "--lang=en-US",
         # Loopback only: a name (an avatar's host, say) resolves to nothing, no DNS asked.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.*"]
PANEL = "Links and trackbacks"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing; run scripts/setup (Debian package {package})"
    try:
        import selenium  # noqa: F401 (only whether it is there)
    except ImportError:
        return "selenium is not installed; run scripts/setup"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with a throwaway profile, closed (and its profile removed) after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, should anything call it: no network
    profile = tempfile.mkdtemp(prefix="wpnotify-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, condition: Callable[[Any], Any], seconds: float = 30,
         what: str = "the page") -> Any:
    """What ``condition`` returns once it is truthy; a clear failure after ``seconds``."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.2,
                             ignored_exceptions=[StaleElementReferenceException]).until(
            condition)
    except TimeoutException:
        shot = save(driver, "timeout")
        raise AssertionError(f"waited {seconds:.0f} s for {what}; screenshot {shot}") from None


def css(driver: Any, selector: str, seconds: float = 30) -> Any:
    """The first visible element matching ``selector``, once there is one."""
    from selenium.webdriver.common.by import By

    def visible(d: Any) -> Any:
        return next((e for e in d.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()),
                    None)
    return wait(driver, visible, seconds, selector)


def press(driver: Any, element: Any) -> None:
    """Clicks ``element`` itself: a click at its coordinates may land on whatever the editor's
    still-settling sidebar moved there meanwhile (once it was "Move to trash")."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();",
                          element)


def save(driver: Any, name: str, element: Any = None) -> Path:
    """A screenshot (of ``element`` alone when given) in tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if element is None:
        driver.save_screenshot(str(path))
    else:
        element.screenshot(str(path))
    return path


def make_user(site: devsite.Site, login: str, password: str, role: str = "author") -> int:
    """A user with a known password (made again if present), the block editor's welcome guide
    already dismissed, as if they had closed it once."""
    args = devsite.php_str(login), devsite.php_str(password), devsite.php_str(role)
    return int(site.php(
        f"""
        $old = get_user_by('login', {args[0]});
        if ($old) {{ require_once ABSPATH . 'wp-admin/includes/user.php';
                    wp_delete_user($old->ID); }}
        $id = wp_insert_user(['user_login' => {args[0]}, 'user_pass' => {args[1]},
                              'role' => {args[2]}, 'user_email' => {args[0]} . '@example.invalid']);
        if (is_wp_error($id)) {{ return $id->get_error_message(); }}
        global $wpdb;
        update_user_meta($id, $wpdb->get_blog_prefix() . 'persisted_preferences', [
            'core/edit-post' => ['welcomeGuide' => false, 'isPublishSidebarEnabled' => true],
            '_modified' => gmdate('c'),
        ]);
        return $id;
        """))


def log_in(driver: Any, site: devsite.Site, login: str, password: str) -> None:
    """Through wp-login.php, as a person does."""
    driver.get(f"{site.url}/wp-login.php")
    css(driver, "#user_login").send_keys(login)
    css(driver, "#user_pass").send_keys(password)
    css(driver, "#wp-submit").click()
    wait(driver, lambda d: "/wp-admin/" in d.current_url, what="the dashboard after log-in")


def open_editor(driver: Any, site: devsite.Site, post_id: int | None = None) -> None:
    """The block editor on a new post (or on ``post_id``), loaded and ready. Whatever the
    page before held unsaved is dropped without the browser's "Leave site?" question."""
    driver.execute_script(
        "window.addEventListener('beforeunload',"
        " function (e) { e.stopImmediatePropagation(); }, true);")
    driver.get(f"{site.url}/wp-admin/post.php?post={post_id}&action=edit" if post_id
               else f"{site.url}/wp-admin/post-new.php")
    wait(driver, lambda d: d.execute_script(
        "return !!(window.wp && wp.data && wp.data.select('core/editor') &&"
        " wp.data.select('core/editor').getCurrentPostId() &&"
        " document.querySelector('.edit-post-layout'));"), 60, "the block editor")


def open_panel(driver: Any) -> Any:
    """The wpnotify panel in the document sidebar (its "Post" tab), opened; returns it."""
    from selenium.webdriver.common.by import By

    shown = driver.find_elements(By.CSS_SELECTOR, ".wpnotify-panel")
    if not [e for e in shown if e.is_displayed()]:
        press(driver, css(driver, 'button[data-label="Post"], '
                                  'button[data-tab-id="edit-post/document"]'))
    toggle = css(driver, ".wpnotify-panel .components-panel__body-toggle")
    if toggle.get_attribute("aria-expanded") != "true":
        press(driver, toggle)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".wpnotify-status"),
         what="the panel's content")
    return css(driver, ".wpnotify-panel")


def rows(driver: Any) -> list[dict[str, str]]:
    """The panel's rows as a person reads them: kind, badge, target, answer, time."""
    return list(driver.execute_script(
        """
        return Array.from(document.querySelectorAll('.wpnotify-panel .wpnotify-row'))
          .map(function (li) {
            function t(sel) { var e = li.querySelector(sel); return e ? e.textContent : ''; }
            return {status: li.dataset.status, kind: t('.wpnotify-kind'),
                    badge: t('.wpnotify-badge'), target: t('.wpnotify-target'),
                    answer: t('.wpnotify-answer'), time: t('.wpnotify-time'),
                    resend: !!li.querySelector('.wpnotify-resend')};
          });
        """))


def refresh_until(driver: Any, check: Callable[[list[dict[str, str]]], bool],
                  what: str, seconds: float = 30) -> list[dict[str, str]]:
    """Clicks the panel's Refresh until the rows pass ``check``; returns them."""
    def refreshed(d: Any) -> list[dict[str, str]] | None:
        current = rows(d)
        if check(current):
            return current
        button = d.find_elements("css selector", ".wpnotify-panel .wpnotify-refresh")
        if button and button[0].is_enabled():
            press(d, button[0])
        return None
    try:
        return list(wait(driver, refreshed, seconds, what))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the rows: {rows(driver)}") from None
