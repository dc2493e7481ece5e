"""Telling WordPress what was pinged, one post at a time (XML-RPC, or a bridge before 1.1): a
post deleted for good meanwhile has nothing left to record. It must neither fail the other
posts of the batch nor stay in the outbox to fail every cycle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from test_sources_hostile import WP_METHODS, StandIn, as_xmlrpc, fault, source_for
from test_sources_hostile import site as site  # noqa: F401 (the stand-in site fixture)

from wpnotify.errors import PostGone
from wpnotify.sources import record_each


class Recording:
    """A source whose post 5 was deleted for good."""

    def __init__(self) -> None:
        self.told: dict[int, list[str]] = {}

    def record_pinged(self, post_id: int, urls: list[str]) -> None:
        if post_id == 5:
            raise PostGone("http://blog.example has no post there any more")
        self.told[post_id] = urls


def test_a_deleted_post_does_not_stop_the_others() -> None:
    source = Recording()
    posts: Mapping[int, list[str]] = {5: ["https://a.example/"], 6: ["https://b.example/"]}
    record_each(source, posts)  # type: ignore[arg-type]  # only record_pinged is asked
    assert source.told == {6: ["https://b.example/"]}


def test_xmlrpc_invalid_post_id_from_the_bridge_means_the_post_is_gone(
        site: StandIn, tmp_path: Path) -> None:  # noqa: F811
    site.rpc["mt.supportedMethods"] = as_xmlrpc([*WP_METHODS, "wpnotify.status",
                                                 "wpnotify.addPinged"])
    site.rpc["wpnotify.addPinged"] = fault(404, "Invalid post ID.")
    source: Any = source_for(site, "xmlrpc", tmp_path)
    source.record_pinged_many({5: ["https://a.example/"], 6: ["https://b.example/"]})
    assert site.asked.count("wpnotify.addPinged") == 2  # both asked, neither failed the batch


def test_posts_the_bridge_refused_to_record_are_logged(httpserver: Any) -> None:
    """The batch route answers which posts it could not record (deleted for good, or not
    the user's to edit): they are not retried for ever, but said in the log."""
    import structlog

    from wpnotify.http import Http
    from wpnotify.settings import HttpSettings, SiteSettings
    from wpnotify.sources.rest import RestSource

    httpserver.expect_request("/", method="POST").respond_with_json(
        {"recorded": 1, "refused": [5]})
    site = SiteSettings(name="s", url=httpserver.url_for("/").rstrip("/"), username="u",
                        password="p")
    source = RestSource(Http(HttpSettings(allow_private_addresses=True)), site)
    with structlog.testing.capture_logs() as logs:
        source.record_pinged_many({5: ["https://a.example/"], 6: ["https://b.example/"]})
    assert [(e["event"], e["posts"]) for e in logs] == [("wordpress.pinged_refused", [5])]
