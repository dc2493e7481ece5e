"""What a kind of notification is, as the rest of wpnotify sees it: a spec that each protocol
module fills in once (``SPEC``), and the registry (``kinds``) lists. The planner, the attempt
and the sender read these fields instead of testing a kind's name, so a new kind is one
protocol module and one registry line.

This module imports no protocol module (they import it), so it sits below them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from wpnotify.http import Http, Response


class Payload(Protocol):
    """What a notification carries beyond its source and target, stored as JSON in the
    state file's ``payload`` column (``to_dict`` writes exactly those keys)."""

    def to_dict(self) -> dict[str, Any]: ...

    @property
    def resend(self) -> str | None:
        """Why a sent notification goes out again (noted in the history), or None."""
        ...


P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class Letter(Generic[P]):
    """One send: the post that links (``source``), what it notifies (``target``) and the
    kind's own payload."""

    source: str
    target: str
    payload: P


@dataclass(frozen=True)
class Pacing:
    """How the sender spaces a kind's requests. The defaults suit a link's notification:
    paced with its host, several at once (within ``per_host_concurrency``)."""

    one_at_a_time: bool = False  # never two at once to one host
    flood_checked: bool = False  # WordPress's comment-flood check counts it: to a WordPress
    # endpoint one at a time, spaced (wordpress_ping_interval)
    by_url: bool = False  # paced by its endpoint URL, not its host (update services)
    spacing: float = 0.0  # with by_url: seconds after a sent one before the next to that URL
    settles_target: bool = False  # one sent settles the others waiting for that target
    pinged: bool = True  # a sent one is written to the post's pinged list in WordPress


@dataclass(frozen=True)
class Kind(Generic[P]):
    """One kind of notification.

    ``name`` is what the state file stores (never renamed: existing rows must read back);
    ``label`` names it in messages. ``read`` turns a stored payload into the typed one.
    ``find`` reads the kind's endpoint from a fetched target page (None: never found in a
    page); ``at_target`` says the target is the endpoint itself, so a row of this kind is
    sent as what it is. A link's notification is sent to what its page advertises: the
    kinds whose ``fallback`` gives a payload for it are looked for too (after its own kind,
    in registry order), and the first found is what it goes out as."""

    name: str
    label: str
    read: Callable[[Mapping[str, Any]], P]
    send: Callable[[Http, str, Letter[P]], str]
    find: Callable[[Response, str], str | None] | None = None
    at_target: bool = False
    fallback: Callable[[Any], P | None] | None = None  # from a link's payload: may go as this
    pacing: Pacing = Pacing()
