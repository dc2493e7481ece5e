"""What the commands print, as text: tables, JSON and CSV over the service's results. Pure:
each renderer returns lines (the CLI writes them), so the same data renders the same way
wherever it is shown, and a test reads the text without a terminal.

Text from receivers and watched sites can hold escape sequences and bidi marks: every
renderer escapes them (``logs.printable``); JSON keeps the exact text, escaped as JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wpnotify.logs import UNSAFE, printable
from wpnotify.urls import redact

if TYPE_CHECKING:
    from wpnotify.service import (
        Backfill,
        CheckReport,
        InboundPing,
        InboundReport,
        Notification,
        Planned,
        PollReport,
        Post,
        SiteRow,
        SiteStatus,
        WorkerStatus,
    )

HISTORY_FIELDS = ("id", "site", "post_id", "kind", "status", "attempts", "source", "target",
                  "endpoint", "error", "error_code", "response", "created_at", "updated_at",
                  "sent_at", "next_attempt_at")
#: C1 controls, DEL and bidi marks, which json.dumps leaves raw without ensure_ascii.
JSON_ESCAPES = {code: f"\\u{code:04x}" for code in UNSAFE if code >= 0x7F}
#: A spreadsheet runs a cell starting with these as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
Line = tuple[str, bool]  # (text, for stderr)


def poll(report: PollReport) -> list[Line]:
    """One line per site (a failing one on stderr), then the delivery's counts."""
    lines: list[Line] = []
    for site in report.sites:
        if site.error:
            lines.append((printable(f"wpnotify: site {site.site}: {site.error}"), True))
        elif site.busy:
            lines.append((f"{site.site}: not read: another worker polls it now (`wpnotify "
                          "status` shows which); its due notifications were sent", False))
        elif site.first_poll:
            lines.append((f"{site.site}: first poll; watching from now on (older posts are "
                          "for backfill)", False))
        else:
            lines.append((f"{site.site}: read {site.posts} post(s), {site.queued} new "
                          "notification(s)", False))
        if site.inbound is not None:
            lines.extend(inbound_lines(site.inbound))
    d = report.delivery
    lines.append((f"sent {d.sent}, skipped {d.skipped}, failed {d.failed}, "
                  f"waiting to retry {d.retrying}", False))
    return lines


def inbound_lines(report: InboundReport) -> list[Line]:
    """A site's pass over its received pings: what it came to, then its failure (on stderr;
    a failure of one comment does not stop the others, so both may show)."""
    failed = [(printable(f"wpnotify: site {report.site}: inbound: {report.error}"), True)] \
        if report.error else []
    acted = ", ".join(f"{action} {n}" for action, n in sorted(report.actions.items()))
    left = f", {report.skipped} skipped (left for a person)" if report.skipped else ""
    later = f", {report.deferred} left for the next poll (time up)" if report.deferred else ""
    return [(f"{report.site}: inbound: {report.read} new ping(s); {report.verified} verified, "
             f"{report.unverified} unverified{left}, {report.waiting} waiting to fetch again"
             f"{later}" + (f"; {acted}" if acted else ""), False), *failed]


def planned(post: Post, item: Planned) -> str:
    """A dry run's line for one notification a post would send (or skip, and why)."""
    note = f" (skipped: {item.error})" if item.status == "skipped" else ""
    return printable(f"post {post.id}: {item.shown_kind()} {redact(item.target)}{note}")


def backfill(site: str, result: Backfill, dry_run: bool) -> str:
    verb = "would be sent" if dry_run else "queued"
    d = result.delivery
    return (f"backfill {site}: {result.planned} notification(s) {verb}"
            + ("" if dry_run else f"; sent {d.sent}, skipped {d.skipped}, "
               f"failed {d.failed}, waiting to retry {d.retrying}"))


def status_json(sites: list[SiteStatus]) -> str:
    """ensure_ascii: every control character is escaped."""
    return json.dumps([site.as_dict() for site in sites], indent=2)


def status_table(sites: list[SiteStatus], workers: list[WorkerStatus]) -> list[str]:
    lines: list[str] = []
    for status in sites:
        site = status.as_dict()
        bridge = {True: "installed", False: "missing", None: "not seen yet"}[site["bridge"]]
        counts = ", ".join(f"{n} {s}" for s, n in site["notifications"].items())
        block = [f"{site['site']} ({site['url']})",
                 f"  last poll: {site['last_poll_at'] or 'never'}; last good: "
                 f"{site['last_ok_at'] or 'never'}; cursor: {site['cursor'] or 'none'}",
                 f"  bridge: {bridge}", f"  notifications: {counts}",
                 f"  next retry: {site['next_retry_at'] or 'none due'}"]
        inbound = site["inbound"]
        if inbound["mode"] != "off" or inbound["verdicts"]:
            verdicts = ", ".join(f"{n} {v}" for v, n in inbound["verdicts"].items())
            actions = ", ".join(f"{n} {a}" for a, n in inbound["actions"].items())
            block.append(f"  inbound ({inbound['mode']}): {verdicts or 'no pings yet'}"
                         + (f"; actions: {actions}" if actions else ""))
        if site["polled_by"]:
            block.append(f"  polled by: {site['polled_by']}")
        if site["last_error"]:
            block.append(f"  last error: {site['last_error']}")
        lines.extend(printable(line) for line in block)
    return lines + worker_lines(workers)


def worker_lines(workers: list[WorkerStatus]) -> list[str]:
    """The workers sharing the state (none listed when none ever ran)."""
    if not workers:
        return []
    lines = [f"workers ({sum(w.alive for w in workers)} alive):"]
    for status in workers:
        w = status.as_dict()
        state = "alive" if w["alive"] else "not seen within a lease (stopped or cut off)"
        what = "daemon" if w["daemon"] else "command (a backfill or poll: no share of sites)"
        lines.append(printable(
            f"  {w['worker']}: {what}, {state}; last seen {w['seen_at']}; polls "
            f"{', '.join(w['sites']) or 'no site'}; sending {w['sending']}"))
    return lines


def sites_json(rows: list[SiteRow]) -> str:
    """ensure_ascii: every control character is escaped."""
    return json.dumps([row.as_dict() for row in rows], indent=2)


def sites_table(rows: list[SiteRow]) -> list[str]:
    """One line per site; each problem on its own line below it (they are long)."""
    if not rows:
        return ["no sites: add a [[sites]] table to the configuration file, or add one with "
                "wpnotify sites add"]
    header = ("NAME", "FROM", "API", "STATE", "URL")
    table = [header] + [
        tuple(printable(text) for text in (
            row.name, row.origin, row.api or "?", "enabled" if row.enabled else "disabled",
            clip(redact(row.url or "?"), 60)))
        for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width)
                       for text, width in zip(table[0], widths, strict=True)).rstrip()]
    for row, line in zip(rows, table[1:], strict=True):
        lines.append("  ".join(text.ljust(width)
                               for text, width in zip(line, widths, strict=True)).rstrip())
        lines.extend(printable(f"  problem: {problem}") for problem in row.problems)
    return lines


def check(result: CheckReport) -> list[Line]:
    """``ok:`` notes on stdout; warnings (unsafe but working) and problems on stderr."""
    return ([(printable(f"ok: {note}"), False) for note in result.notes]
            + [(printable(f"warning: {warning}"), True) for warning in result.warnings]
            + [(printable(f"problem: {problem}"), True) for problem in result.problems])


def records(rows: Iterable[Notification]) -> list[dict[str, Any]]:
    """History rows as the fields the JSON and CSV forms show, in their order."""
    return [{name: row.as_dict()[name] for name in HISTORY_FIELDS} for row in rows]


def history_json(rows: list[Notification]) -> list[str]:
    return exact_json(records(rows))


def history_csv(rows: list[Notification]) -> list[str]:
    return spreadsheet(records(rows), HISTORY_FIELDS)


def exact_json(rows: list[dict[str, Any]]) -> list[str]:
    """Exact text: json escapes C0 controls itself; C1 controls, DEL and bidi marks, which it
    leaves raw without ensure_ascii, are written as \\u escapes too (they can only be inside
    strings, so the document decodes to the same text)."""
    return [json.dumps(rows, indent=2, ensure_ascii=False).translate(JSON_ESCAPES)]


def spreadsheet(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> list[str]:
    """CSV for spreadsheets: a cell that would start a formula gets a leading apostrophe, and
    control characters are escaped as in the tables (JSON has the exact text)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: cell(value) for key, value in row.items()} for row in rows)
    return [out.getvalue().removesuffix("\n")]


def cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return printable(("'" + value) if value.startswith(FORMULA_START) else value)


def history_table(rows: list[Notification]) -> list[str]:
    if not rows:
        return ["no notifications recorded (yet)"]
    header = ("WHEN (UTC)", "SITE", "POST", "KIND", "STATUS", "TRIES", "TARGET", "DETAIL")
    table = [header] + [
        tuple(printable(text) for text in (
            row.as_dict()["created_at"][:19].replace("T", " "), row.site, str(row.post_id),
            row.kind, row.status.value, str(row.attempts), clip(redact(row.target), 60),
            clip(row.error or row.response or "", 70)))
        for row in rows
    ]
    return columns(table)


def columns(table: list[tuple[str, ...]]) -> list[str]:
    """Rows (the header first) as lines of left-aligned columns, two spaces apart."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return ["  ".join(text.ljust(width)
                      for text, width in zip(line, widths, strict=True)).rstrip()
            for line in table]


def clip(text: str, width: int) -> str:
    """One line of at most ``width``, whitespace runs as one space, controls escaped."""
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


HISTORY: dict[str, Callable[[list[Notification]], list[str]]] = {
    "table": history_table, "json": history_json, "csv": history_csv}


INBOUND_FIELDS = ("site", "comment_id", "post_id", "kind", "source", "author", "author_ip",
                  "received_at", "seen_at", "status_seen", "verdict", "code", "reason",
                  "attempts", "next_attempt_at", "action", "status_after", "decided_at",
                  "acted_at")


def inbound_records(rows: Iterable[InboundPing]) -> list[dict[str, Any]]:
    return [{name: row.as_dict()[name] for name in INBOUND_FIELDS} for row in rows]


def inbound_json(rows: list[InboundPing]) -> list[str]:
    return exact_json(inbound_records(rows))


def inbound_csv(rows: list[InboundPing]) -> list[str]:
    return spreadsheet(inbound_records(rows), INBOUND_FIELDS)


def inbound_table(rows: list[InboundPing]) -> list[str]:
    if not rows:
        return ["no pings recorded that match (inbound is off, no ping arrived yet, or the "
                "filters leave none)"]
    header = ("SEEN (UTC)", "SITE", "COMMENT", "POST", "KIND", "VERDICT", "ACTION", "SOURCE",
              "REASON")
    table = [header] + [
        tuple(printable(text) for text in (
            row.as_dict()["seen_at"][:19].replace("T", " "), row.site, str(row.comment_id),
            str(row.post_id), row.kind, row.verdict.value, row.action.value,
            clip(redact(row.source), 50), clip(row.reason or "", 70)))
        for row in rows
    ]
    return columns(table)


INBOUND: dict[str, Callable[[list[InboundPing]], list[str]]] = {
    "table": inbound_table, "json": inbound_json, "csv": inbound_csv}
