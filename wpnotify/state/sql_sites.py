"""Sites kept in the state (`wpnotify sites`), in SQL both backends run as written (see
``sql_fleet`` for what the backend gives)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wpnotify.state.records import SiteEntry


class SitesSql:
    """The ``SiteRegistry`` part of the state (see ``protocols.SiteRegistry``)."""

    if TYPE_CHECKING:  # given by the backend's unit of work
        def _rows(self, sql: str, params: Any = ()) -> list[Any]: ...

        def _write(self, sql: str, params: Any = ()) -> int: ...

        def atomic(self) -> AbstractContextManager[None]: ...

    def stored_sites(self) -> list[SiteEntry]:
        raise NotImplementedError("issue 15, sites at runtime: in progress")

    def store_site(self, name: str, config: dict[str, Any], now: datetime) -> bool:
        raise NotImplementedError("issue 15, sites at runtime: in progress")

    def remove_site(self, name: str) -> bool:
        raise NotImplementedError("issue 15, sites at runtime: in progress")

    def set_site_disabled(self, name: str, disabled: bool, now: datetime) -> None:
        raise NotImplementedError("issue 15, sites at runtime: in progress")
