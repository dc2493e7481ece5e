"""The sources package's shape and what a source call returns: the two sources never import
each other, and the newest deletion a site names comes back with the changes that named it,
so whether a poll asks for deletions depends on that poll's own reading, not on an earlier
call. Stand-in sites on 127.0.0.1."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_sources_hostile import (
    SINCE,
    WP_METHODS,
    StandIn,
    as_json,
    as_xmlrpc,
    post_item,
    rest_posts,
    settings_for,
    source_for,
)
from test_sources_hostile import site as site  # noqa: F401 (the stand-in site fixture)

import wpnotify.sources
from wpnotify.http import Http
from wpnotify.service import Service, make_sources
from wpnotify.sources import Deleted
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time

PACKAGE = Path(wpnotify.sources.__file__).parent
NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)
DELETED = {"id": 3, "type": "post", "link": "https://s.example/3/",
           "deleted_gmt": "2026-11-26T12:39:30"}


def imported(module: str) -> set[str]:
    """Every module ``wpnotify.sources.<module>`` imports, at any depth of its code."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_rest_and_xmlrpc_do_not_import_each_other() -> None:
    assert not {m for m in imported("rest") if m.startswith("wpnotify.sources.xmlrpc")}
    assert not {m for m in imported("xmlrpc") if m.startswith("wpnotify.sources.rest")}


@pytest.mark.parametrize(("module", "other"), [("rest", "xmlrpc"), ("xmlrpc", "rest")])
def test_loading_one_source_loads_not_the_other(module: str, other: str) -> None:
    """In a fresh interpreter, as a command starts: nothing pulls the other in indirectly."""
    code = (f"import sys, wpnotify.sources.{module}; "
            f"print('wpnotify.sources.{other}' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "False"


def test_records_and_base_import_no_source() -> None:
    """The bottom of the package: what both sources import imports neither of them."""
    for module in ("records", "base"):
        assert not {m for m in imported(module)
                    if m.startswith(("wpnotify.sources.rest", "wpnotify.sources.xmlrpc"))}


def test_rest_changes_return_the_newest_deletion_the_bridge_named(
        site: StandIn, tmp_path: Path) -> None:  # noqa: F811
    """The X-Wpnotify-Deleted header of the poll's own answers, the newest of them."""
    source = source_for(site, "rest", tmp_path)
    site.rest["/wp/v2/posts"] = lambda query: (
        200, "application/json", b"[]", {"X-Wpnotify-Deleted": "2026-11-26T12:39:35"})
    changes = source.changed(SINCE)
    assert list(changes) == []
    assert changes.newest_deletion == wp_time("2026-11-26T12:39:35")
    assert changes.may_have_deleted(wp_time("2026-11-26T12:39:34"))
    assert not changes.may_have_deleted(wp_time("2026-11-26T12:39:35"))

    site.rest["/wp/v2/posts"] = as_json([])  # no deletion remembered: no header
    again = source.changed(SINCE)
    list(again)
    assert again.newest_deletion is None  # nothing carried over from the last call
    assert not again.may_have_deleted(SINCE)


def test_rest_an_unreadable_deletion_header_names_nothing(
        site: StandIn, tmp_path: Path) -> None:  # noqa: F811
    source = source_for(site, "rest", tmp_path)
    site.rest["/wp/v2/posts"] = lambda query: (
        200, "application/json", b"[]", {"X-Wpnotify-Deleted": "yesterday"})
    changes = source.changed(SINCE)
    list(changes)
    assert changes.newest_deletion is None


def test_rest_deletions_are_read_with_the_site_clock(site: StandIn,  # noqa: F811
                                                     tmp_path: Path) -> None:
    source = source_for(site, "rest", tmp_path)
    site.rest["/wpnotify/v1/deleted"] = as_json([DELETED])
    [gone] = source.deletions(SINCE)
    assert gone == Deleted(3, "post", "https://s.example/3/", wp_time("2026-11-26T12:39:30"),
                           gone.read_at)
    assert gone.read_at is not None  # the answer's Date: whether the second had ended


def test_a_rest_poll_asks_for_deletions_only_when_its_reading_named_a_newer_one(
        site: StandIn, tmp_path: Path) -> None:  # noqa: F811
    """An idle poll stays one request; a deletion named after the mark is asked for once,
    and the mark moves to it."""
    settings = settings_for(tmp_path, ("s", site.base, "rest"))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    http = Http(settings.http)
    service = Service(settings, store, http, sources=make_sources(settings, http),
                      clock=lambda: NOW)
    store.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"),
                      deletions_seen=wp_time("2026-11-26T12:39:30"))
    site.rest["/wpnotify/v1/deleted"] = as_json([DELETED])
    header = {"X-Wpnotify-Deleted": "2026-11-26T12:39:30"}
    site.rest["/wp/v2/posts"] = lambda query: (200, "application/json", b"[]", header)

    service.read(settings.sites[0])
    assert site.asked == ["/wp/v2/posts"]  # nothing after the mark: no request more

    header["X-Wpnotify-Deleted"] = "2026-11-26T12:39:33"
    site.rest["/wpnotify/v1/deleted"] = as_json([{**DELETED, "deleted_gmt":
                                                  "2026-11-26T12:39:33"}])
    service.read(settings.sites[0])
    assert site.asked[1:] == ["/wp/v2/posts", "/wpnotify/v1/deleted"]
    state = store.site("s")
    assert state is not None and state.deletions_seen == wp_time("2026-11-26T12:39:33")


def test_xmlrpc_changes_leave_deletions_to_be_asked_and_deletions_answer(
        site: StandIn, tmp_path: Path) -> None:  # noqa: F811
    """XML-RPC answers name no deletion, so each poll asks; the answer is the list."""
    site.rpc["mt.supportedMethods"] = as_xmlrpc([*WP_METHODS, "wpnotify.getDeleted"])
    site.rpc["wpnotify.getDeleted"] = as_xmlrpc([DELETED])
    source = source_for(site, "xmlrpc", tmp_path)
    changes = source.changed(SINCE)
    assert list(changes) == []
    assert changes.newest_deletion is None and changes.may_have_deleted(SINCE)
    [gone] = source.deletions(SINCE)
    assert (gone.id, gone.deleted_gmt) == (3, wp_time("2026-11-26T12:39:30"))


def test_xmlrpc_without_the_bridge_there_are_no_deletions(
        site: StandIn, tmp_path: Path) -> None:  # noqa: F811
    source = source_for(site, "xmlrpc", tmp_path)
    assert source.deletions(SINCE) == []


def test_a_rest_poll_takes_the_bridge_from_the_posts_it_read(
        site: StandIn, tmp_path: Path) -> None:  # noqa: F811
    """The bridge's field on the posts read says the bridge is there (null lists and all):
    the poll records it without asking the status route."""
    settings = settings_for(tmp_path, ("s", site.base, "rest"))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    http = Http(settings.http)
    service = Service(settings, store, http, sources=make_sources(settings, http),
                      clock=lambda: NOW)
    store.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"))
    site.rest["/"] = as_json({"namespaces": ["wp/v2"], "name": "B", "home": site.base})
    site.rest["/wp/v2/posts"] = rest_posts([post_item(wpnotify=None)])
    assert service.read(settings.sites[0]).posts == 1
    assert "/wpnotify/v1/status" not in site.asked
    state = store.site("s")
    assert state is not None and state.bridge is True
