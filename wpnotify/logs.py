"""Logging: structlog events to stderr, readable on a terminal, JSON lines otherwise (journald,
files). Events carry fields, never secrets: no code path logs a password or an auth header.

Also what may reach a terminal: text from receivers and watched sites (an error body, a
trackback message, a site title) can hold escape sequences (OSC 52 writes the clipboard) or
bidi overrides that disguise what is shown, so every human-readable output escapes them."""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import structlog

LEVELS = ("debug", "info", "warning", "error")

#: C0 and C1 controls (ESC, BEL, CSI 0x9b ...), DEL, and the invisible marks that reorder text
#: (bidi embeddings, overrides and isolates, LRM, RLM, ALM).
UNSAFE = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F,
          *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in UNSAFE}
_ESCAPES_BUT_NEWLINE = {code: text for code, text in _ESCAPES.items() if code != 0x0A}


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with every unsafe character shown as an escape (ESC as \\x1b, U+202E as
    \\u202e), in one pass; ``newlines`` keeps line feeds (a traceback)."""
    return text.translate(_ESCAPES_BUT_NEWLINE if newlines else _ESCAPES)


def _escape_values(logger: Any, method: str, event: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """For the console renderer, which prints string values raw (others go through repr)."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = printable(value, newlines=key == "exception")
    return event


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Sets up structlog for a command that logs. It and logging are imported here, not at
    the top: commands that only read (history, status, --help) never log, and skip their
    start-up cost."""
    import logging

    import structlog

    stream = stream or sys.stderr
    renderer: list[structlog.typing.Processor]
    if stream.isatty():
        renderer = [_escape_values, structlog.dev.ConsoleRenderer(colors=False)]
    else:  # JSON escapes every control character itself, and the text stays exact
        renderer = [structlog.processors.JSONRenderer(sort_keys=False)]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
