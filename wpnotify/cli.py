"""The command line. Commands parse options, call the service, and write what the renderers
make of its results; errors become one line on stderr and an exit code here, and nowhere else.

Start-up: this module imports only click and wpnotify's lightest modules. The settings, the
service and what a command needs are imported inside the command, so `--help` costs click
alone, and a command that only reads (`history`, `status`) never loads the network code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from wpnotify import __version__, logs
from wpnotify.errors import WpnotifyError
from wpnotify.logs import printable

if TYPE_CHECKING:
    from wpnotify.service import Service
    from wpnotify.settings import Settings

FORMATS = ("table", "json", "csv")
#: Raised for `wpnotify` alone since click 8.2 (8.1 prints the help itself).
NO_ARGS_IS_HELP: tuple[type[click.ClickException], ...] = tuple(
    getattr(click.exceptions, name) for name in ("NoArgsIsHelpError",)
    if hasattr(click.exceptions, name))


class Names(click.Choice):  # type: ignore[type-arg]  # click 8.2 made Choice generic, 8.1 not
    """A choice among names the library defines (kinds, statuses), looked up only when the
    option is given or its help is shown: listing them must not import what defines them."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        super().__init__(())
        self._names = names

    @property  # type: ignore[override]  # a computed attribute where click keeps a list
    def choices(self) -> Sequence[str]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        pass  # click's __init__ sets it; the names come from the library


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False),
              help="Config file (default: $WPNOTIFY_CONFIG, then /etc/wpnotify/config.toml).")
@click.option("--log-level", type=click.Choice(logs.LEVELS), default="info", show_default=True,
              help="Least severe log events to show (on stderr).")
@click.version_option(__version__, prog_name="wpnotify")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, log_level: str) -> None:
    """Send WordPress trackbacks and pingbacks, once each, and keep a record."""
    ctx.obj = Options(config, log_level)


class Options:
    """The group's options, for the command that runs."""

    def __init__(self, config: Path | None, log_level: str) -> None:
        self.config = config
        self.log_level = log_level

    def settings(self) -> Settings:
        from wpnotify.settings import config_path, load_settings

        return load_settings(config_path(self.config, os.environ))


def settings_of(ctx: click.Context, *, logging: bool = False) -> Settings:
    """The settings; ``logging``: this command logs (the read-only ones never do, and do not
    pay for setting it up)."""
    options: Options = ctx.obj
    if logging:
        logs.configure(options.log_level)
    return options.settings()


@contextmanager
def service_of(ctx: click.Context, *, network: bool, logging: bool = False,
               settings: Settings | None = None, stored: bool = True) -> Iterator[Service]:
    """The service on the configured state file; with ``network``, also the HTTP seam and
    the sites' sources (closed again when the command ends); ``stored``: over the stored
    sites too (see ``open_service``)."""
    from wpnotify.service import open_service, tune  # here: `--help` never pays for it

    settings = settings or settings_of(ctx, logging=logging)
    if network:
        tune()  # process-wide, and only the commands that send need it
    with open_service(settings, network=network, stored=stored) as service:
        yield service


def kind_names() -> Sequence[str]:
    from wpnotify.service import kind_names

    return kind_names()


def status_names() -> Sequence[str]:
    from wpnotify.service import status_names

    return status_names()


def verdict_names() -> Sequence[str]:
    from wpnotify.service import verdict_names

    return verdict_names()


def echo(lines: Iterable[str | tuple[str, bool]]) -> None:
    """Writes a renderer's lines; a ``(text, True)`` line goes to stderr."""
    for line in lines:
        text, err = (line, False) if isinstance(line, str) else line
        click.echo(text, err=err)


@cli.command()
@click.pass_context
def poll(ctx: click.Context) -> None:
    """One cycle for every site: read what changed, send what is due, exit.

    Exits 0 when every site could be read, 1 otherwise (one line per failing site).
    """
    from wpnotify import render

    with service_of(ctx, network=True, logging=True) as service:
        outcome = service.poll()
    echo(render.poll(outcome))
    if not outcome.ok:
        ctx.exit(1)


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """The daemon: poll every site every poll_interval and send retries as they come due,
    until SIGTERM or SIGINT (then finish the notification in flight and exit 0)."""
    from wpnotify.daemon import Daemon, exclusive  # APScheduler: only the daemon needs it

    settings = settings_of(ctx, logging=True)
    with exclusive(settings.state_location), service_of(ctx, network=True,
                                                    settings=settings) as service:
        Daemon(settings, service).serve()


@cli.command()
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table",
              show_default=True)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Per site: last poll, cursor, bridge, notifications by status, next retry due, and the
    worker polling it; then the workers sharing the state and what each holds."""
    from wpnotify import render

    with service_of(ctx, network=False) as service:
        sites, workers = service.status(), service.workers()
    echo([render.status_json(sites)] if fmt == "json"
         else render.status_table(sites, workers))


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration, reach each site, verify credentials, bridge and state file.

    One line per problem with how to fix it; exit 1 if there is any. `warning:` lines (a
    password file others can read, a password sent over plain http) leave the exit status 0.
    """
    from wpnotify import render, service

    result = service.check(settings_of(ctx, logging=True))
    echo(render.check(result))
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
@click.option("--site", "site_name", required=True,
              help="The site (its name in the config, or a stored one's).")
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
    from wpnotify import render

    if until is not None and until <= since:
        raise click.UsageError("--until must be later than --since")
    with service_of(ctx, network=True, logging=True) as service:
        site = service.site(site_name)
        on_planned = ((lambda post, item: click.echo(render.planned(post, item)))
                      if dry_run else (lambda post, item: None))
        result = service.backfill(site, since, until, list(post_ids), dry_run=dry_run,
                                  on_page=_progress(dry_run), on_planned=on_planned)
    click.echo(render.backfill(site.name, result, dry_run))
    if not dry_run and not result.complete:
        ctx.exit(1)


def _progress(quiet: bool) -> Callable[[int, int], None]:
    """A progress bar on a terminal; log lines otherwise."""
    if quiet or not sys.stderr.isatty():
        import structlog

        log = structlog.get_logger("wpnotify.cli")
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
    with service_of(ctx, network=False) as service:
        count = service.requeue(ids=list(ids), site=site_name, since=since)
    click.echo(f"{count} notification(s) queued again")


@cli.command()
@click.option("--site", help="Only this site (its name, in the config or stored).")
@click.option("--post", "post_id", type=ID, help="Only this post ID.")
@click.option("--kind", type=Names(kind_names), help="Only this kind of notification.")
@click.option("--status", type=Names(status_names), help="Only notifications in this state.")
@click.option("--limit", type=ID, default=50, show_default=True,
              help="At most this many rows, newest first.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True)
@click.pass_context
def history(ctx: click.Context, site: str | None, post_id: int | None, kind: str | None,
            status: str | None, limit: int, fmt: str) -> None:
    """What was sent, when, and why something failed; newest first."""
    from wpnotify import render

    with service_of(ctx, network=False) as service:
        rows = service.history(site=site, post_id=post_id, kind=kind, status=status,
                               limit=limit)
    echo(render.HISTORY[fmt](rows))


@cli.command()
@click.option("--site", help="Only this site (its name, in the config or stored).")
@click.option("--verdict", type=Names(verdict_names), help="Only pings with this verdict.")
@click.option("--limit", type=ID, default=50, show_default=True,
              help="At most this many rows, newest first.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True)
@click.pass_context
def inbound(ctx: click.Context, site: str | None, verdict: str | None, limit: int,
            fmt: str) -> None:
    """The trackbacks and pingbacks the sites received: each one's verdict, its reason, and
    what wpnotify did with it (for sites with inbound = "report" or "moderate"); newest
    first."""
    from wpnotify import render

    with service_of(ctx, network=False) as service:
        rows = service.inbound_list(site=site, verdict=verdict, limit=limit)
    echo(render.INBOUND[fmt](rows))


@cli.group()
def sites() -> None:
    """Sites kept in the state database, beside those of the configuration file: running
    daemons pick changes up within sites_refresh seconds, without a restart."""


@sites.command("add")
@click.argument("name")
@click.option("--url", required=True, help="The site's address, http(s)://host[/path].")
@click.option("--username", required=True, help="The WordPress user wpnotify reads as.")
@click.option("--password-file", type=click.Path(dir_okay=False),
              help="A file holding the user's Application Password (stored as an absolute "
                   "path; every worker that polls the site must be able to read it).")
@click.option("--password-credential",
              help="The name of a systemd credential holding it (LoadCredential=).")
@click.option("--api", type=click.Choice(("rest", "xmlrpc")), help="How to read the site "
              "(default: rest).")
@click.option("--post-type", "post_types", multiple=True,
              help="A post type to watch (repeatable; default: post).")
@click.option("--prefer", type=click.Choice(("webmention", "pingback", "both")),
              help="Which protocol a link gets when it offers both (default: webmention).")
@click.option("--update-service", "update_services", multiple=True,
              help="An update service (weblogUpdates.ping) to tell of new posts (repeatable).")
@click.option("--allow-host", "allow_hosts", multiple=True,
              help="Only notify hosts matching this pattern (repeatable).")
@click.option("--deny-host", "deny_hosts", multiple=True,
              help="Never notify hosts matching this pattern (repeatable).")
@click.option("--self-pings", is_flag=True, default=None,
              help="Also notify the site's own posts.")
@click.option("--trackback-discovery", is_flag=True, default=None,
              help="Look for trackback URLs in linked pages.")
@click.option("--max-trackbacks", "max_trackbacks_per_post", type=int,
              help="Trackbacks at most per post (default: 10).")
@click.option("--inbound", type=click.Choice(("off", "report", "moderate")),
              help="Judge the pings the site receives (default: off; see README "
                   "\"Received pings\").")
@click.option("--approve-verified", is_flag=True, default=None,
              help="With --inbound moderate: approve a held ping that verifies.")
@click.option("--verify-sender-ip", is_flag=True, default=None,
              help="Also require a ping's sender IP to be its source host's.")
@click.option("--inbound-allow-host", "inbound_allow_hosts", multiple=True,
              help="Only pings from hosts matching this pattern can verify (repeatable).")
@click.option("--inbound-deny-host", "inbound_deny_hosts", multiple=True,
              help="Pings from hosts matching this pattern never verify (repeatable).")
@click.pass_context
def sites_add(ctx: click.Context, /, name: str, **options: Any) -> None:
    """Store a site (checked as a [[sites]] table is). There is no option taking the
    password itself: a command line is seen by other users (ps) and kept in shell history,
    and the state database must hold no secret; give a password file or a systemd
    credential, whose path or name is all that is stored."""
    if (options["password_file"] is None) == (options["password_credential"] is None):
        raise click.UsageError("give --password-file or --password-credential (one of them)")
    raw = {"name": name, **{key: list(value) if isinstance(value, tuple) else value
                            for key, value in options.items()
                            if value is not None and value != ()}}
    with service_of(ctx, network=False, stored=False) as service:
        added = service.add_site(raw)
    for warning in added.warnings:
        click.echo(printable(f"warning: {warning}"), err=True)
    click.echo(printable(f"site {added.name} stored; running daemons start polling it "
                         "within sites_refresh seconds"))


@sites.command("list")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table",
              show_default=True)
@click.pass_context
def sites_list(ctx: click.Context, fmt: str) -> None:
    """Every site: where it comes from (config or state), URL, API, enabled or disabled,
    and its problems (a stored site left out on this machine, a name clash)."""
    from wpnotify import render

    with service_of(ctx, network=False, stored=False) as service:
        rows = service.sites()
    echo([render.sites_json(rows)] if fmt == "json" else render.sites_table(rows))


@sites.command("remove")
@click.argument("name")
@click.pass_context
def sites_remove(ctx: click.Context, name: str) -> None:
    """Remove a stored site (one of the configuration file is edited there); its
    notifications and history stay."""
    with service_of(ctx, network=False, stored=False) as service:
        service.remove_site(name)
    click.echo(printable(f"site {name} removed (its history stays)"))


@sites.command("disable")
@click.argument("name")
@click.pass_context
def sites_disable(ctx: click.Context, name: str) -> None:
    """Stop polling a site, stored or of the configuration file, until enabled again."""
    _set_disabled(ctx, name, True)


@sites.command("enable")
@click.argument("name")
@click.pass_context
def sites_enable(ctx: click.Context, name: str) -> None:
    """Poll a disabled site again."""
    _set_disabled(ctx, name, False)


def _set_disabled(ctx: click.Context, name: str, disabled: bool) -> None:
    with service_of(ctx, network=False, stored=False) as service:
        service.set_site_disabled(name, disabled)
    click.echo(printable(f"site {name} {'disabled' if disabled else 'enabled'}"))


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
    if isinstance(exc, NO_ARGS_IS_HELP):  # `wpnotify` alone: the help
        exc.show()
        sys.exit(exc.exit_code)
    where = ""
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        where = f" (see '{exc.ctx.command_path} --help')"
    click.echo(printable(f"wpnotify: error: {exc.format_message()}{where}"), err=True)
    sys.exit(exc.exit_code)
