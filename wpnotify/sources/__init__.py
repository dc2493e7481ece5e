"""The WordPress sources: what a site holds, read over REST or XML-RPC as plain records.

``records`` holds the records, ``base`` the ``Source`` protocol both sources follow; ``rest``
and ``xmlrpc`` are the two sources, which import those two and never each other. A source
returns what it learned with its results (the newest deletion with the changes, the bridge's
field and WordPress's clock with each post), so no answer depends on an earlier call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wpnotify.sources.base import OVERLAP, WATCHED_STATUSES, Source, record_each
from wpnotify.sources.records import Changes, Deleted, Post, ResendRequest, SiteInfo, settled

__all__ = ["OVERLAP", "WATCHED_STATUSES", "Changes", "Deleted", "Post", "ResendRequest",
           "SiteInfo", "Source", "make_source", "record_each", "settled"]

if TYPE_CHECKING:  # for the annotations only: importing a record needs no HTTP client
    from wpnotify.http import Http
    from wpnotify.settings import SiteSettings


def make_source(http: Http, site: SiteSettings, per_page: int = 100) -> Source:
    """The source for a site's ``api``. Each is imported when asked for: a command that reads
    no site pays for neither, and an XML-RPC site's library loads only for it."""
    if site.api == "xmlrpc":
        from wpnotify.sources.xmlrpc import XmlrpcSource

        return XmlrpcSource(http, site, per_page)
    from wpnotify.sources.rest import RestSource

    return RestSource(http, site, per_page)
