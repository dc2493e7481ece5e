"""Acting on judged pings, for a site with ``inbound = "moderate"``: an unverified ping held
for moderation is marked spam, a verified one approved (``approve_verified``) or left held.

Only a ping that WordPress held when wpnotify first read it, and still holds when read again
right before the change, is changed: anything else was decided by WordPress on arrival or by a
person, and is theirs. Nothing is ever trashed or deleted.

A change is recorded as asked for (its action, no status yet) before the request, and
confirmed after it. A lost answer or a killed process leaves it asked for: the next pass reads
the comment and confirms it, so the record never says "left" for wpnotify's own change; one
not as asked then (never arrived, refused by a plugin, or undone by a person since: wpnotify
cannot tell which) is left as it is, never asked twice. A comment that cannot be read is
logged and tried again at the next pass; it never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import structlog

from wpnotify.errors import SourceError
from wpnotify.state import Action, InboundLog, InboundPing, Verdict

log = structlog.get_logger("wpnotify.inbound")

HELD = "hold"
STATUS_OF = {Action.SPAM: "spam", Action.APPROVED: "approved"}  # what each change asks for


class Comments(Protocol):
    """What moderating needs of the site (its REST source)."""

    def comment_status(self, comment_id: int) -> str | None: ...
    def set_comment_status(self, comment_id: int, status: str) -> str: ...


class Moderator:
    """Changes (and records) one site's judged pings in one pass at ``now``; tells
    ``done`` each action recorded and ``failed`` each comment that could not be read or
    changed (the pass's report counts them)."""

    def __init__(self, store: InboundLog, site: str, approve_verified: bool,
                 source: Comments, now: datetime, done: Callable[[Action], None],
                 failed: Callable[[str], None]) -> None:
        self.store = store
        self.site = site
        self.approve_verified = approve_verified
        self.source = source
        self.now = now
        self.done = done
        self.failed = failed
        self.tried: set[int] = set()  # comments that failed in this pass: once per pass

    def act(self, ping: InboundPing, verdict: Verdict) -> tuple[Action, str | None]:
        """Moderates one judged ping as its verdict says, if it is still held as first
        seen; returns what was done and WordPress's status after it (None: not known yet,
        the change is confirmed at the next pass; or the comment could not be read)."""
        if ping.status_seen != HELD:  # approved by WordPress on arrival, or by a person
            return self._record(ping, Action.LEFT, ping.status_seen)
        try:
            status = self.source.comment_status(ping.comment_id)
        except SourceError as exc:
            self._failed(ping, exc)
            return Action.NONE, None  # still unacted: the next pass acts on it
        if status != HELD:  # a person decided meanwhile (or deleted it): theirs
            return self._record(ping, Action.LEFT, status)
        if verdict is Verdict.UNVERIFIED:
            return self._change(ping, Action.SPAM)
        if self.approve_verified:
            return self._change(ping, Action.APPROVED)
        return self._record(ping, Action.HELD, HELD)

    def confirm(self, ping: InboundPing) -> None:
        """A change asked for whose answer never came: done (confirmed), or not as asked,
        which is left as it is: wpnotify cannot tell a change that never arrived (or that a
        plugin refused) from a person's "Not Spam" since, so it asks once, never twice."""
        try:
            status = self.source.comment_status(ping.comment_id)
        except SourceError as exc:
            self._failed(ping, exc)
            return
        if status == STATUS_OF[ping.action]:
            self._record(ping, ping.action, status)
        else:
            log.warning("inbound.change_unconfirmed", site=self.site, comment=ping.comment_id,
                        asked=STATUS_OF[ping.action], status=status)
            self._record(ping, Action.LEFT, status)

    def _change(self, ping: InboundPing, action: Action) -> tuple[Action, str | None]:
        wanted = STATUS_OF[action]
        self.store.record_action(self.site, ping.comment_id, action, None, self.now)
        try:
            after = self.source.set_comment_status(ping.comment_id, wanted)
        except SourceError as exc:
            self._failed(ping, exc)
            return action, None  # asked for: confirmed (or asked again) at the next pass
        if after != wanted:  # a plugin kept it as it was, or made it something else
            log.warning("inbound.change_refused", site=self.site, comment=ping.comment_id,
                        asked=wanted, status=after)
            return self._record(ping, Action.LEFT, after)
        return self._record(ping, action, after)

    def _record(self, ping: InboundPing, action: Action, after: str | None
                ) -> tuple[Action, str | None]:
        self.store.record_action(self.site, ping.comment_id, action, after, self.now)
        self.done(action)
        return action, after

    def _failed(self, ping: InboundPing, exc: SourceError) -> None:
        """One comment that cannot be read or changed now: logged, and the pass's error
        (`poll` says so), but the other pings go on."""
        log.warning("inbound.change_failed", site=self.site, comment=ping.comment_id,
                    error=str(exc))
        self.tried.add(ping.comment_id)
        self.failed(str(exc))
