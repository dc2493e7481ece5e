"""The status rows WordPress shows on a post (issue 14's contract), built from the state's
notifications: what the block editor's panel, the classic meta box and the posts list read.

Pure: a row is a plain dict, made from one Notification. The status is history's own word, so
`wpnotify history` and the editor cannot disagree; the ``answer`` is the receiver's reply or
the reason it failed, in one line of plain words, and honest about what receivers hide: a
stock WordPress refuses nearly every pingback with fault 0 and an empty message
(PROTOCOLS.md §2.4), so that row says the receiver gives no reason instead of guessing one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from wpnotify.state.records import Notification, Status

ANSWER_CHARS = 300  # the bridge keeps this much of an answer
MAX_ROWS = 200  # rows the bridge keeps per post: the newest notifications are sent
NO_REASON = "refused; the receiver gives no reason"
# Messages as the protocol modules and the state write them (pingback.raise_for_fault,
# QueueSql.requeue).
_FAULT = re.compile(r"fault (-?\d+), ([^:]*)(?:: (.*))?", re.S)
_RETRIED = "queued again by wpnotify retry; it failed with: "


def status_row(n: Notification) -> dict[str, Any]:
    """One notification as the bridge stores it (every key always present)."""
    pending = n.status == Status.PENDING
    return {"kind": n.kind, "target": n.target, "endpoint": n.endpoint,
            "status": n.status.value, "attempts": n.attempts, "answer": answer(n),
            "code": n.error_code, "sent_at": utc_text(n.sent_at),
            "next_at": utc_text(n.next_attempt_at) if pending else None,
            "updated_at": utc_text(n.updated_at)}


def post_rows(notifications: Iterable[Notification]) -> list[dict[str, Any]]:
    """A post's rows, oldest first: of its newest MAX_ROWS notifications, as the bridge
    keeps no more (``history --post`` lists them all)."""
    ordered = sorted(notifications, key=lambda n: (n.created_at, n.id))
    return [status_row(n) for n in ordered[-MAX_ROWS:]]


def answer(n: Notification) -> str | None:
    """What the receiver said, or why the notification failed or waits; None when there is
    nothing to say (never tried, or being sent right now)."""
    if n.status == Status.SENDING:
        return None
    if n.status == Status.SENT:
        return one_line(n.response or "") or "accepted"
    if not n.error:
        return None if n.status == Status.PENDING else n.status.value
    if n.error.startswith(_RETRIED):
        return one_line(f"queued again; it had failed: {_explained(n.error[len(_RETRIED):])}")
    return one_line(_explained(n.error))


def _explained(error: str) -> str:
    """An error as history records it, with a pingback fault (``pingback.raise_for_fault``'s
    "fault N, meaning[: text]") put in plain words: fault 0 with no message is WordPress's
    refusal without a reason."""
    found = _FAULT.fullmatch(error.strip())
    if found is None:
        return error
    number, meaning, text = found.group(1), found.group(2), (found.group(3) or "").strip()
    if number == "0":
        return f"refused: {text}" if text else NO_REASON
    return f"{meaning} (fault {number}){': ' + text if text else ''}"


def one_line(text: str) -> str:
    """Whitespace folded to single spaces, cut to ANSWER_CHARS with an ellipsis."""
    folded = " ".join(text.split())
    return folded if len(folded) <= ANSWER_CHARS else folded[:ANSWER_CHARS - 1] + "…"


def utc_text(moment: datetime | None) -> str | None:
    """"2026-11-26T12:39:34Z": UTC, whole seconds, as the contract's rows carry times."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
