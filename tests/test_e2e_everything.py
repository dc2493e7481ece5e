"""Issue 5's promise, end to end, from either source API: a post linking to a Webmention
site, a Pingback site (real WordPress) and a TrackBack-only page, on a blog that pings an
update service, notifies each once, correctly; then an edit and a trash are followed."""

from __future__ import annotations

import json
from typing import Any

import devsite
import pytest
from receivers import UpdateService, WebmentionReceiver, serving
from werkzeug import Request
from werkzeug import Response as WResponse

pytestmark = pytest.mark.e2e

RDF = ('<!-- <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
       'xmlns:dc="http://purl.org/dc/elements/1.1/" '
       'xmlns:trackback="http://madskills.com/public/xml/rss/module/trackback/">'
       '<rdf:Description rdf:about="{page}" dc:identifier="{page}" dc:title="Classic" '
       'trackback:ping="{ping}" /></rdf:RDF> -->')


@pytest.mark.parametrize("api", ["rest", "xmlrpc"])
def test_every_kind_once_from_either_api(api: str, sites: dict[str, devsite.Site],
                                         make_wpnotify: Any, httpserver: Any) -> None:
    source, wordpress = sites["source"], sites["target"]
    page, ping_url = httpserver.url_for(f"/classic-{api}"), httpserver.url_for(f"/tb-{api}")
    trackbacks: list[dict[str, str]] = []

    def receive(request: Request) -> WResponse:
        trackbacks.append(dict(request.form))
        return WResponse('<?xml version="1.0"?><response><error>0</error></response>',
                         content_type="text/xml")

    httpserver.expect_request(f"/classic-{api}").respond_with_data(
        f"<html><body>{RDF.format(page=page, ping=ping_url)}<p>old school</p></body></html>",
        content_type="text/html")
    httpserver.expect_request(f"/tb-{api}", method="POST").respond_with_handler(receive)
    with serving(WebmentionReceiver()) as mentions, UpdateService() as updates:
        assert isinstance(mentions, WebmentionReceiver)
        tool = make_wpnotify([(f"all-{api}", source, source.app_password)])
        tool.config.write_text(tool.config.read_text() + f'api = "{api}"\n'
                               "trackback_discovery = true\n"
                               f'update_services = ["{updates.url}"]\n')
        tool.run("poll")
        goal = wordpress.create_post(post_title=f"Pinged over {api}")
        wm_page = mentions.url(f"/page/{api}")
        links = [wm_page, wordpress.permalink(goal), page]
        post = source.create_post(post_title=f"Everything over {api}", post_content="".join(
            f'<p><a href="{url}">{i}</a></p>' for i, url in enumerate(links)))
        permalink = source.permalink(post)
        tool.run("poll")
        tool.run("poll")  # nothing twice

        assert mentions.verified == [(permalink, wm_page)] and mentions.pingbacks == []
        assert [c["type"] for c in wordpress.comments(goal)] == ["pingback"]
        assert [t["url"] for t in trackbacks] == [permalink]
        assert [call[0] for call in updates.calls] == ["weblogUpdates.extendedPing"]
        rows = json.loads(tool.run("history", "--format", "json", "--post", str(post)).stdout)
        assert sorted((r["kind"], r["target"], r["status"]) for r in rows) == sorted([
            ("webmention", wm_page, "sent"), ("pingback", wordpress.permalink(goal), "sent"),
            ("trackback", page, "sent"), ("update-service", updates.url, "sent")])

        source.update_post(post, post_content=f'<p><a href="{wordpress.permalink(goal)}">'
                                               f'only WordPress now</a></p>')
        tool.run("poll")
        assert mentions.deleted == [(permalink, wm_page)]  # the removed link was followed
        source.php(f"wp_trash_post({post}); return true;")
        tool.run("poll")
        assert mentions.deleted == [(permalink, wm_page)]  # nothing left to tell it
        assert len(wordpress.comments(goal)) == 1 and len(trackbacks) == 1  # never re-sent
        assert len(updates.calls) == 1
