"""The registry of notification kinds: every kind wpnotify sends, in the order a link's
target page is searched for them (Webmention first, then Pingback, then TrackBack RDF).

A new kind is one protocol module exporting a ``SPEC`` (see ``wpnotify.kind``) and one line
in ``ALL``; the planner, the attempt, the sender and the CLI read the specs from here.
"""

from __future__ import annotations

from typing import Any

from wpnotify import pingback, trackback, weblogupdates, webmention
from wpnotify.kind import Kind, Pacing

ALL: tuple[Kind[Any], ...] = (
    webmention.SPEC,
    pingback.SPEC,
    trackback.SPEC,
    weblogupdates.SPEC,
)
_DEFAULT_PACING = Pacing()


def names() -> tuple[str, ...]:
    """The kinds' names as the state file stores them (the CLI's ``--kind`` choices)."""
    return tuple(spec.name for spec in ALL)


def find(name: str) -> Kind[Any] | None:
    """The spec of ``name``, or None for a name no kind has (a row from a newer version)."""
    return _index().get(name)


_INDEX: list[tuple[tuple[Kind[Any], ...], dict[str, Kind[Any]]]] = []


def _index() -> dict[str, Kind[Any]]:
    """The specs by name, built again whenever ``ALL`` is another tuple (a test that
    registers a kind): the sender looks a kind up for every row it considers."""
    if not _INDEX or _INDEX[0][0] is not ALL:
        _INDEX[:] = [(ALL, {spec.name: spec for spec in ALL})]
    return _INDEX[0][1]


def get(name: str) -> Kind[Any]:
    spec = find(name)
    if spec is None:
        raise KeyError(f"no notification kind {name!r}")
    return spec


def pacing(name: str) -> Pacing:
    """How ``name`` is paced; an unknown kind like a link (it fails at its first try)."""
    spec = find(name)
    return _DEFAULT_PACING if spec is None else spec.pacing


def sent_as_is(name: str) -> bool:
    """Whether a row of ``name`` always goes out as that kind (no fallback to check)."""
    spec = find(name)
    return spec is not None and spec.at_target
