"""The command line. Commands parse options, call the library, and render what it returns;
errors become one line on stderr and an exit code here, and nowhere else."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import structlog

from wpnotify import __version__, logs, report
from wpnotify.errors import WpnotifyError
from wpnotify.http import Http
from wpnotify.logs import printable
from wpnotify.plan import Planned
from wpnotify.service import PollReport, Service
from wpnotify.settings import Settings, config_path, load_settings
from wpnotify.state import Notification, State, Status, open_state
from wpnotify.urls import redact
from wpnotify.wordpress import Post

log = structlog.get_logger("wpnotify.cli")

KINDS = ("webmention", "pingback", "trackback", "update-service")
FORMATS = ("table", "json", "csv")
HISTORY_FIELDS = ("id", "site", "post_id", "kind", "status", "attempts", "source", "target",
                  "endpoint", "error", "error_code", "response", "created_at", "updated_at",
                  "sent_at", "next_attempt_at")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False),
              help="Config file (default: $WPNOTIFY_CONFIG, then /etc/wpnotify/config.toml).")
@click.option("--log-level", type=click.Choice(logs.LEVELS), default="info", show_default=True,
              help="Least severe log events to show (on stderr).")
@click.version_option(__version__, prog_name="wpnotify")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, log_level: str) -> None:
    """Send WordPress trackbacks and pingbacks, once each, and keep a record."""
    logs.configure(log_level)
    ctx.obj = lambda: load_settings(config_path(config, os.environ))


def settings_of(ctx: click.Context) -> Settings:
    loader: Callable[[], Settings] = ctx.obj
    return loader()


def client(settings: Settings) -> Http:
    """The HTTP seam for a command: the configured sites' own origins are trusted even on a
    loopback or private address; every other address meets the guard as configured."""
    return Http(settings.http, trusted_origins=[site.url for site in settings.sites])


@contextmanager
def opened(settings: Settings) -> Iterator[State]:
    store = open_state(settings.state_file)
    try:
        yield store
    finally:
        store.close()


@cli.command()
@click.pass_context
def poll(ctx: click.Context) -> None:
    """One cycle for every site: read what changed, send what is due, exit.

    Exits 0 when every site could be read, 1 otherwise (one line per failing site).
    """
    settings = settings_of(ctx)
    http = client(settings)
    try:
        with opened(settings) as store:
            outcome = Service(settings, store, http).poll()
    finally:
        http.close()
    render_poll(outcome)
    if not outcome.ok:
        ctx.exit(1)


def render_poll(report: PollReport) -> None:
    for site in report.sites:
        if site.error:
            click.echo(printable(f"wpnotify: site {site.site}: {site.error}"), err=True)
        elif site.first_poll:
            click.echo(f"{site.site}: first poll; watching from now on (older posts are for "
                       "backfill)")
        else:
            click.echo(f"{site.site}: read {site.posts} post(s), {site.queued} new "
                       "notification(s)")
    d = report.delivery
    click.echo(f"sent {d.sent}, skipped {d.skipped}, failed {d.failed}, "
               f"waiting to retry {d.retrying}")


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """The daemon: poll every site every poll_interval and send retries as they come due,
    until SIGTERM or SIGINT (then finish the notification in flight and exit 0)."""
    from wpnotify.daemon import Daemon, exclusive  # APScheduler: only the daemon needs it

    settings = settings_of(ctx)
    with exclusive(settings.state_file):
        http = client(settings)
        try:
            with opened(settings) as store:
                Daemon(settings, store, http).serve()
        finally:
            http.close()


@cli.command()
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table",
              show_default=True)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Per site: last poll, cursor, bridge, notifications by status, next retry due."""
    settings = settings_of(ctx)
    with opened(settings) as store:
        sites = report.status(settings, store)
    if fmt == "json":
        click.echo(json.dumps(sites, indent=2))  # ensure_ascii: every control is escaped
        return
    for site in sites:
        bridge = {True: "installed", False: "missing", None: "not seen yet"}[site["bridge"]]
        counts = ", ".join(f"{n} {s}" for s, n in site["notifications"].items())
        lines = [f"{site['site']} ({site['url']})",
                 f"  last poll: {site['last_poll_at'] or 'never'}; last good: "
                 f"{site['last_ok_at'] or 'never'}; cursor: {site['cursor'] or 'none'}",
                 f"  bridge: {bridge}", f"  notifications: {counts}",
                 f"  next retry: {site['next_retry_at'] or 'none due'}"]
        if site["last_error"]:
            lines.append(f"  last error: {site['last_error']}")
        click.echo("\n".join(printable(line) for line in lines))


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration, reach each site, verify credentials, bridge and state file.

    One line per problem with how to fix it; exit 1 if there is any. `warning:` lines (a
    password file others can read, a password sent over plain http) leave the exit status 0.
    """
    settings = settings_of(ctx)
    http = client(settings)
    try:
        result = report.check(settings, http)
    finally:
        http.close()
    for note in result.notes:
        click.echo(printable(f"ok: {note}"))
    for warning in result.warnings:  # unsafe but working: the exit status stays 0
        click.echo(printable(f"warning: {warning}"), err=True)
    for problem in result.problems:
        click.echo(printable(f"problem: {problem}"), err=True)
    if not result.ok:
        ctx.exit(1)


class UtcDate(click.DateTime):
    """A UTC date (or date and time) that WordPress can hold: MySQL's DATETIME runs from year
    1000 to 9999, and a date near datetime.min would overflow when a source steps a second
    back from it, so anything outside is refused here, in one line."""

    name = "date"
    FIRST = datetime(1000, 1, 1, tzinfo=UTC)
    LAST = datetime(9999, 12, 31, tzinfo=UTC)

    def __init__(self) -> None:
        super().__init__(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        moment: datetime = super().convert(value, param, ctx).replace(tzinfo=UTC)
        if not self.FIRST <= moment <= self.LAST:
            self.fail(f"{moment.date().isoformat()} is out of range; give a date from "
                      "1000-01-01 to 9999-12-31 (the dates WordPress can store)", param, ctx)
        return moment


DATE = UtcDate()
#: Post and notification IDs, and --limit: SQLite stores signed 64-bit integers.
ID = click.IntRange(min=1, max=2**63 - 1)


@cli.command()
@click.option("--site", "site_name", required=True, help="The site (its name in the config).")
@click.option("--since", type=DATE, required=True,
              help="Posts dated from this day on (YYYY-MM-DD, UTC).")
@click.option("--until", type=DATE, help="…and before this day (default: no end).")
@click.option("--post", "post_ids", type=ID, multiple=True,
              help="Only this post (repeatable); --since and --until then do not apply.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send and record nothing.")
@click.pass_context
def backfill(ctx: click.Context, site_name: str, since: datetime, until: datetime | None,
             post_ids: tuple[int, ...], dry_run: bool) -> None:
    """Send what older published posts never sent, under the same rules and state as the
    daemon (safe to run while it runs, and twice). Exit 0 when everything went out, 1 when
    something failed or waits to be retried."""
    settings = settings_of(ctx)
    site = settings.site(site_name)
    if until is not None and until <= since:
        raise click.UsageError("--until must be later than --since")
    http = client(settings)
    bar = _progress(dry_run)

    def planned(post: Post, item: Planned) -> None:
        if dry_run:
            note = f" (skipped: {item.error})" if item.status == "skipped" else ""
            kind = item.kind + (" (or pingback)" if item.payload.get("fallback") else "")
            click.echo(printable(f"post {post.id}: {kind} {redact(item.target)}{note}"))

    try:
        with opened(settings) as store:
            result = Service(settings, store, http).backfill(
                site, since, until, list(post_ids), dry_run=dry_run, on_page=bar,
                on_planned=planned)
    finally:
        http.close()
    verb = "would be sent" if dry_run else "queued"
    d = result.delivery
    click.echo(f"backfill {site.name}: {result.planned} notification(s) {verb}"
               + ("" if dry_run else f"; sent {d.sent}, skipped {d.skipped}, "
                  f"failed {d.failed}, waiting to retry {d.retrying}"))
    if not dry_run and not result.complete:
        ctx.exit(1)


def _progress(quiet: bool) -> Callable[[int, int], None]:
    """A progress bar on a terminal; log lines otherwise."""
    if quiet or not sys.stderr.isatty():
        return lambda done, total: log.info("backfill.progress", posts=done, total=total)
    def show(done: int, total: int) -> None:
        if total <= 0:  # not known (XML-RPC)
            sys.stderr.write(f"\r{done} posts")
            sys.stderr.flush()
            return
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} posts")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


@cli.command()
@click.argument("ids", nargs=-1, type=ID)
@click.option("--all-failed", is_flag=True, help="Every failed notification (of --site).")
@click.option("--since", type=DATE,
              help="With --all-failed: only those that failed since this date (UTC).")
@click.option("--site", "site_name", help="With --all-failed: only this site.")
@click.pass_context
def retry(ctx: click.Context, ids: tuple[int, ...], all_failed: bool, since: datetime | None,
          site_name: str | None) -> None:
    """Put failed notifications back in the queue: by ID (see history --format json), or
    --all-failed. The next poll or the daemon sends them, with a fresh retry budget."""
    if bool(ids) == all_failed:
        raise click.UsageError("give notification IDs or --all-failed (not both)")
    if (since or site_name) and not all_failed:
        raise click.UsageError("--since and --site go with --all-failed")
    settings = settings_of(ctx)
    if site_name is not None:
        settings.site(site_name)
    with opened(settings) as store:
        count = store.requeue(ids=list(ids), site=site_name, since=since)
    click.echo(f"{count} notification(s) queued again")


@cli.command()
@click.option("--site", help="Only this site (its name in the config).")
@click.option("--post", "post_id", type=ID, help="Only this post ID.")
@click.option("--kind", type=click.Choice(KINDS), help="Only this kind of notification.")
@click.option("--status", type=click.Choice([s.value for s in Status]),
              help="Only notifications in this state.")
@click.option("--limit", type=ID, default=50, show_default=True,
              help="At most this many rows, newest first.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True)
@click.pass_context
def history(ctx: click.Context, site: str | None, post_id: int | None, kind: str | None,
            status: str | None, limit: int, fmt: str) -> None:
    """What was sent, when, and why something failed; newest first."""
    settings = settings_of(ctx)
    if site is not None:
        settings.site(site)  # a typo in --site is an error, not an empty table
    with opened(settings) as store:
        rows = store.history(site=site, post_id=post_id, kind=kind,
                             status=None if status is None else Status(status), limit=limit)
    RENDERERS[fmt](rows)


def _records(rows: list[Notification]) -> list[dict[str, Any]]:
    return [{name: row.as_dict()[name] for name in HISTORY_FIELDS} for row in rows]


def render_json(rows: list[Notification]) -> None:
    """Exact text: json escapes C0 controls itself; C1 controls, DEL and bidi marks, which it
    leaves raw without ensure_ascii, are written as \\u escapes too (they can only be inside
    strings, so the document decodes to the same text)."""
    click.echo(json.dumps(_records(rows), indent=2, ensure_ascii=False).translate(JSON_ESCAPES))


JSON_ESCAPES = {code: f"\\u{code:04x}" for code in logs.UNSAFE if code >= 0x7F}
#: A spreadsheet runs a cell starting with these as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def render_csv(rows: list[Notification]) -> None:
    """For spreadsheets: a cell that would start a formula gets a leading apostrophe, and
    control characters are escaped as in the table (``--format json`` has the exact text)."""
    writer = csv.DictWriter(sys.stdout, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in record.items()}
                     for record in _records(rows))


def _cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return printable(("'" + value) if value.startswith(FORMULA_START) else value)


def render_table(rows: list[Notification]) -> None:
    if not rows:
        click.echo("no notifications recorded (yet)")
        return
    header = ("WHEN (UTC)", "SITE", "POST", "KIND", "STATUS", "TRIES", "TARGET", "DETAIL")
    table = [header] + [
        tuple(printable(cell) for cell in (
            f"{row.created_at:%Y-%m-%d %H:%M:%S}", row.site, str(row.post_id), row.kind,
            row.status.value, str(row.attempts), _clip(redact(row.target), 60),
            _clip(row.error or row.response or "", 70)))
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _clip(text: str, width: int) -> str:
    """One line of at most ``width``, whitespace runs as one space, controls escaped."""
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


RENDERERS: dict[str, Callable[[list[Notification]], None]] = {
    "table": render_table, "json": render_json, "csv": render_csv}


def main(argv: list[str] | None = None) -> None:
    """Entry point: the one place where errors become messages and exit codes."""
    try:
        code = cli.main(args=argv, prog_name="wpnotify", standalone_mode=False)
    except WpnotifyError as exc:
        click.echo(printable(f"wpnotify: error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _click_error(exc)
    except click.Abort:
        click.echo("wpnotify: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _click_error(exc: click.ClickException) -> NoReturn:
    """A bad option or argument: one line, like every other error, naming the option and
    where its help is (click's own form is three lines, usage first)."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # `wpnotify` alone: the help (click 8.2+)
        exc.show()
        sys.exit(exc.exit_code)
    where = ""
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        where = f" (see '{exc.ctx.command_path} --help')"
    click.echo(printable(f"wpnotify: error: {exc.format_message()}{where}"), err=True)
    sys.exit(exc.exit_code)
