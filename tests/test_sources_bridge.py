"""Whether a site runs the bridge is the bridge's own answer (issue 12, item 5a), not a guess
from whether the first post read came with its lists. Stand-in sites on 127.0.0.1; the same
with real WordPress is in test_e2e_sources_bridge.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_sources_hostile import (
    SINCE,
    WP_METHODS,
    StandIn,
    as_json,
    as_xmlrpc,
    post_item,
    rest_posts,
    rpc_post,
    source_for,
)
from test_sources_hostile import site as site  # noqa: F401 (the stand-in site fixture)

from wpnotify.sources import Source


def read(source: Source) -> list[Any]:
    return list(source.changed(SINCE))


@pytest.fixture()
def rest(site: StandIn, tmp_path: Path) -> Iterator[Source]:  # noqa: F811 (the fixture)
    yield source_for(site, "rest", tmp_path)


def test_rest_a_post_with_its_lists_withheld_still_shows_the_bridge(
        site: StandIn, rest: Source) -> None:  # noqa: F811
    """The bridge's field is there (null) on a post whose lists are not given: present, and
    known without a request more (the post says it)."""
    site.rest["/wp/v2/posts"] = rest_posts([post_item(wpnotify=None)])
    [post] = read(rest)
    assert post.to_ping is None  # its lists were not read...
    assert post.bridge is True  # ...yet the bridge is there


def test_rest_posts_without_the_field_mean_no_bridge(site: StandIn, rest: Source  # noqa: F811
                                                     ) -> None:
    site.rest["/wp/v2/posts"] = rest_posts([post_item(wpnotify=...)])
    [post] = read(rest)
    assert post.bridge is False


def test_rest_without_posts_read_the_status_route_answers(site: StandIn,  # noqa: F811
                                                          rest: Source) -> None:
    """Asked with no post read, the source asks the bridge's status route, each time."""
    site.rest["/wp/v2/posts"] = rest_posts([post_item(wpnotify=...)])
    read(rest)
    assert rest.bridge() is False
    site.rest["/wpnotify/v1/status"] = as_json({"bridge": "1.1", "core_pingbacks": False})
    assert rest.bridge() is True
    assert site.asked[-1] == "/wpnotify/v1/status"
    del site.rest["/wpnotify/v1/status"]  # rest_no_route
    assert rest.bridge() is False


def test_xmlrpc_a_draft_first_does_not_hide_the_bridge(site: StandIn,  # noqa: F811
                                                       tmp_path: Path) -> None:
    """A draft (no lists read) and a published post: the bridge is present either way, as
    the site's list of methods says, read again at each asking."""
    site.rpc["mt.supportedMethods"] = as_xmlrpc([*WP_METHODS, "wpnotify.status",
                                                 "wpnotify.getPings"])
    site.rpc["wp.getPosts"] = as_xmlrpc([rpc_post(post_status="draft")])
    source = source_for(site, "xmlrpc", tmp_path)
    [draft] = read(source)
    assert draft.to_ping is None
    assert draft.bridge is None  # an XML-RPC post cannot tell: the source is asked
    assert source.bridge() is True
    site.rpc["mt.supportedMethods"] = as_xmlrpc(WP_METHODS)  # the bridge removed
    assert source.bridge() is False
    assert site.asked.count("mt.supportedMethods") == 3  # the client's own, then one each
