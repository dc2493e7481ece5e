"""What a link's notification carries (a Webmention's or a pingback's row, as the planner
writes it): whether it may go out as a pingback, the trackback to send when the page offers
only TrackBack RDF, and Webmention's resend note. Its own module because both link kinds
store it and it holds a trackback, so neither protocol module imports the other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wpnotify.trackback import Ping


@dataclass(frozen=True)
class LinkPayload:
    """``fallback``: may go out as a pingback (prefer = "webmention"); ``ping``: the
    trackback for a page that offers only TrackBack RDF (trackback_discovery); ``gone`` and
    ``resend``: a sent Webmention sent again because its link left the post, or came back
    (None: never resent). Stored as ``{"fallback", "ping"?, "gone"?, "resend"?}``."""

    fallback: bool = False
    ping: Ping | None = None
    gone: bool | None = None
    resend: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"fallback": self.fallback}
        if self.ping is not None:
            data["ping"] = self.ping.to_dict()
        if self.gone is not None:
            data["gone"] = self.gone
        if self.resend is not None:
            data["resend"] = self.resend
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinkPayload:
        """Read as leniently as the rows were always read: a missing key is its default."""
        ping = data.get("ping")
        gone = data.get("gone")
        resend = data.get("resend")
        return cls(fallback=bool(data.get("fallback")),
                   ping=Ping.from_dict(ping) if isinstance(ping, Mapping) else None,
                   gone=None if gone is None else bool(gone),
                   resend=None if not resend else str(resend))
