"""What the state holds, as typed records: every time an aware UTC ``datetime``, every status a
``Status``. A notification's ``payload`` stays a plain dict here: the state knows no protocol,
and the kinds turn it into their own payloads outside."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from wpnotify.times import iso


class Status(StrEnum):
    """Where a notification stands; the values are the ones the state file stores."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


def plain(record: Any, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record's fields as plain values, in their order: times in the state's own text
    form, enums (a status, a verdict) as the words the state stores."""
    data: dict[str, Any] = {}
    for field in fields(record):
        if field.name in leave_out:
            continue
        value = getattr(record, field.name)
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, StrEnum):
            value = value.value
        data[field.name] = value
    return data


@dataclass(frozen=True)
class Notification:
    """One notification: unique per (site, post_id, kind, target)."""

    id: int
    site: str
    post_id: int
    kind: str
    target: str
    source: str
    status: Status
    attempts: int
    endpoint: str | None
    error: str | None
    error_code: str | None
    response: str | None
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    claimed_by: str | None = None
    lease_until: datetime | None = None  # while being sent: until when its claim holds

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the renderers (the payload left out): times in the state file's
        own text form and the status as its text, so `history --format json/csv` prints what
        the file holds."""
        return plain(self, leave_out=("payload",))


@dataclass(frozen=True)
class Queued:
    """A notification to queue (``add_many``): unique per post, kind and target."""

    post_id: int
    kind: str
    target: str
    source: str
    payload: dict[str, Any] | None = None
    status: Status = Status.PENDING
    error: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class Finished:
    """How one attempt ended, as ``finish_many`` records it (see ``Queue.finish``).
    ``kind``: the kind it went out as, when another than its row's (a fallback)."""

    id: int
    status: Status
    endpoint: str | None = None
    error: str | None = None
    error_code: str | None = None
    response: str | None = None
    next_attempt_at: datetime | None = None
    kind: str | None = None


@dataclass(frozen=True)
class SiteState:
    """Where the reading of one site stands. ``cursor``, ``deletions_seen`` and the baseline's
    modified times are WordPress's times (whole seconds); ``baseline`` holds the posts of the
    overlap window already handled, as (id, modified)."""

    name: str
    cursor: datetime | None
    baseline: frozenset[tuple[int, datetime]]
    deletions_seen: datetime | None
    last_poll_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None
    bridge: bool | None


@dataclass(frozen=True)
class HostState:
    """A host's pacing: known to run WordPress (its flood check), no request before
    ``not_before``. The defaults are what an unknown host has."""

    wordpress: bool = False
    not_before: datetime | None = None


@dataclass(frozen=True)
class WorkerState:
    """A wpnotify process sharing the state (a daemon, or a one-off command while it sends):
    ``id`` is its claim token (host:pid:start), ``seen_at`` its latest heartbeat; ``sites``
    the sites whose poll it holds, ``sending`` how many notifications it is sending;
    ``daemon``: a `wpnotify run`, which takes its share of the sites' polls."""

    id: str
    started_at: datetime
    seen_at: datetime
    sites: tuple[str, ...]
    sending: int
    daemon: bool = False


@dataclass(frozen=True)
class SiteEntry:
    """A site stored in the state by `wpnotify sites add`, or the stored flag of a site from
    the configuration file (``config`` None). ``config`` holds the site's settings as plain
    values, never a password: a password file's path or a systemd credential's name."""

    name: str
    config: dict[str, Any] | None
    disabled: bool
    added_at: datetime
    updated_at: datetime


class Verdict(StrEnum):
    """What wpnotify made of a ping it received; the values are the ones the state stores."""

    PENDING = "pending"  # not judged yet, or waiting to fetch the source again
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    SKIPPED = "skipped"  # not judged: its post is gone or unreadable, the comment is gone


class Action(StrEnum):
    """What wpnotify did to a ping's comment in WordPress (stored values)."""

    NONE = "none"  # nothing done (inbound = "report"; acted on if "moderate" comes on later)
    SPAM = "spam"  # marked spam by wpnotify
    APPROVED = "approved"  # approved by wpnotify (approve_verified)
    HELD = "held"  # moderate: verified, left held for a person (approve_verified off)
    LEFT = "left"  # not touched: it was not held, or a person changed it first


@dataclass(frozen=True)
class InboundPing:
    """A trackback or pingback a site received, as wpnotify first read it, and what it made
    of it: unique per (site, comment_id). The text fields are capped when stored (source
    2,000, author 500, content 4,000 characters): a sender chooses them."""

    site: str
    comment_id: int
    post_id: int
    kind: str  # "trackback" | "pingback"
    source: str  # the page that sent the ping (the comment's author_url)
    author: str
    author_ip: str
    content: str
    received_at: datetime  # the comment's date_gmt
    seen_at: datetime  # when wpnotify first read it
    status_seen: str  # WordPress's status of the comment when first read
    verdict: Verdict = Verdict.PENDING
    code: str | None = None  # stable reason code, e.g. "links", "no-link", "source-gone"
    reason: str | None = None  # one line for people
    attempts: int = 0  # fetches of the source so far
    next_attempt_at: datetime | None = None
    action: Action = Action.NONE
    status_after: str | None = None  # WordPress's status after the action (or as found)
    decided_at: datetime | None = None
    acted_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the renderers: times in the state's own text form, the verdict
        and the action as their stored words (`inbound --format json/csv`)."""
        return plain(self)
