"""wpnotify's benchmark: WordPress core's own sender against ``wpnotify backfill``, on the
same posts and the same receivers, side by side in one run.

    scripts/setup && .venv/bin/python bench/run.py            # the defaults below, ~4 min
    .venv/bin/python bench/run.py --posts 20 --history-rows 0  # a quick look

It installs a throwaway WordPress (Debian's package, the wpnotify bridge, 127.0.0.40:8080)
with N posts, each linking to L pages and queueing one trackback, spread round-robin over H
receiver hosts (127.0.0.101 and up, port 8080) whose every answer takes the given latency.
Then, for each sender in turn, it resets the posts (to_ping queued, pinged empty) and the
receivers, runs the sender as its own process, and reads what the receivers got. Printed for
each: wall time, notifications per second, CPU seconds and peak memory of the sender's
process, and whether every notification arrived exactly once; then the ratio, and the lower
bound that the limits and the latency imply, and wpnotify's time split at the receivers' first
request and last answer. Then an idle poll's requests, and `history --post`, an idle poll and
`status` on a state file of a million rows. Last, the start-up figures: `history --post` and
`status` on that state file, `--help` and `--version` (these two even with --history-rows 0),
each whole command as `python -m wpnotify`, the best of 7 runs after one warm-up, against its
target. Exit status 1 when a delivery check fails.

With `--baseline DIR` (another checkout of wpnotify, e.g. a `git worktree` of an older commit)
that version's backfill runs too, on the same posts and receivers, alternately with this one
(`--repeat N` pairs), and its start-up figures are timed beside these: a before-and-after
measured in one run, where a busy neighbour slows both alike. With --state or --workers, the
baseline runs each of the senders below as well, in the same turns, and its ratios are
printed beside these.

With `--state postgresql://USER@HOST:PORT/wpnotify_bench...` and `--workers N`, the one run
compares the state backends and the fleet: wpnotify on SQLite with one process, on PostgreSQL
with one, and on PostgreSQL with N `wpnotify backfill` processes started together on the same
state, each with its share of the posts (`--post`, every Nth), as an operator splits a
backfill over workers (without --state: SQLite, N processes), taken in turns like --repeat's
pairs. Each: wall
time (the first start to the last exit), CPU summed over the processes, peak memory (the
largest process's and the sum), the delivery check, and the most requests each receiver host
had in flight at once; then PostgreSQL / SQLite (target <= 1.3), N workers / 1 (target <= 1.0)
and whether every run took at least the lower bound. The database is created afresh before
each PostgreSQL run and dropped at the end; only a name starting with `wpnotify_bench`, on a
loopback address, is accepted. Exit status 1 also when a host had more requests in flight
than --per-host.

Every wpnotify runs with its bytecode compiled, as an installed package has it (a shell's
PYTHONDONTWRITEBYTECODE is dropped for the runs). Needs root (a MariaDB database,
/etc/wordpress) and sends to loopback addresses only.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "wordpress"))

from devsite import Site, ensure_mariadb, php_str, wait_for_port  # noqa: E402

SOURCE = "127.0.0.40"
FIRST_RECEIVER = 101
PORT = 8080


@dataclass(frozen=True)
class Version:
    """A wpnotify to run as `python -m wpnotify`: this checkout, as the caller set it up
    (PYTHONPATH included), or a baseline checkout. `-m` puts the working directory first on
    sys.path, so a baseline runs from outside this checkout with PYTHONPATH its own."""
    name: str
    checkout: Path | None = None

    def environment(self) -> dict[str, str] | None:
        return None if self.checkout is None else {**os.environ, "PYTHONPATH": str(self.checkout)}

    def cwd(self, folder: Path) -> Path | None:
        return None if self.checkout is None else folder


CURRENT = Version("wpnotify")


def installed_bytecode(checkouts: list[Path]) -> None:
    """Every version runs with its modules compiled, as pip leaves an installed package: a
    shell's PYTHONDONTWRITEBYTECODE would make each run compile every module again (about
    60 ms of a command's start-up here), a cost no installed system pays."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for checkout in checkouts:
        compileall.compile_dir(checkout / "wpnotify", quiet=1)


def baseline_of(path: str) -> Version:
    """The checkout given by --baseline, once a probe has shown that its package is the one
    imported (not this checkout's, nor the venv's editable install)."""
    checkout = Path(path).resolve()
    if not (checkout / "wpnotify" / "__init__.py").is_file():
        raise SystemExit(f"bench: --baseline {path}: no wpnotify/__init__.py there "
                         "(give a checkout of wpnotify, e.g. a git worktree)")
    version = Version("wpnotify (baseline)", checkout)
    probe = subprocess.run([sys.executable, "-c", "import wpnotify; print(wpnotify.__file__)"],
                           env=version.environment(), cwd=tempfile.gettempdir(),
                           capture_output=True, text=True, check=False)
    found = probe.stdout.strip()
    if probe.returncode != 0 or not Path(found).resolve().is_relative_to(checkout):
        raise SystemExit(f"bench: --baseline {path}: python imports wpnotify from "
                         f"{found or probe.stderr.strip()[-200:]!r}, not from there")
    return version


@dataclass
class Measure:
    wall: float
    cpu: float  # summed over the processes
    peak_mb: float  # the largest process's peak RSS
    status: int  # the first non-zero exit status, or 0
    output: str
    started: float  # wall clock (time.time()), to place the receivers' first and last
    peak_sum_mb: float = 0.0  # the processes' peaks added up (a bound on what they held)
    processes: int = 1


def measured(command: list[str], folder: Path, version: Version = CURRENT,
             processes: int = 1, each: list[list[str]] | None = None) -> Measure:
    """Runs a command as its own process, or ``processes`` copies started together (or
    the commands ``each``, one process each): wall time from the first start to the last
    exit, CPU time and peak RSS of each (wait4)."""
    commands = each or [command] * processes
    processes = len(commands)
    outs = [folder / ("out.txt" if n == 0 else f"out-{n}.txt") for n in range(processes)]
    sinks = [out.open("wb") for out in outs]
    try:
        clock = time.time()
        started = time.monotonic()
        procs = [subprocess.Popen(one, stdout=sink, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=version.environment(),
                                  cwd=version.cwd(folder)) for one, sink in zip(commands, sinks,
                                                                                strict=True)]
        usages = []
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            usages.append(usage)
        wall = time.monotonic() - started
    finally:
        for sink in sinks:
            sink.close()
    peaks = [u.ru_maxrss / 1024 for u in usages]
    failed = [p.returncode for p in procs if p.returncode != 0]
    # A failed process's output last, where a caller reads the error from.
    output = "".join(out.read_text(errors="replace")
                     for out, proc in sorted(zip(outs, procs, strict=True),
                                             key=lambda pair: pair[1].returncode != 0))
    return Measure(wall, sum(u.ru_utime + u.ru_stime for u in usages), max(peaks),
                   failed[0] if failed else 0, output, clock, sum(peaks), processes)


def best_of(command: list[str], folder: Path, runs: int = 7,
            version: Version = CURRENT) -> Measure:
    """The fastest of ``runs`` runs after one warm-up: a start-up figure is what the command
    costs, not what the page cache or a busy neighbour added to one run."""
    measured(command, folder, version)
    best = min((measured(command, folder, version) for _ in range(runs)), key=lambda m: m.wall)
    if best.status != 0:
        raise SystemExit(f"bench: {' '.join(command[2:])} ({version.name}) failed:\n"
                         f"{best.output[-2000:]}")
    return best


# Whole-command targets from issue 13, in seconds; figures without one are shown for reference.
START_UP_TARGETS = {"history --post": 0.150, "--help": 0.120}


# --- the world ------------------------------------------------------------------------------

@dataclass
class Post:
    id: int
    link: str
    targets: list[str]
    trackback: str


def receivers_of(count: int) -> list[str]:
    return [f"127.0.0.{FIRST_RECEIVER + i}" for i in range(count)]


def create_posts(site: Site, count: int, links: int, hosts: list[str]) -> list[Post]:
    """N published posts, dated in 2025, with their links and their queued trackbacks each
    spread round-robin over the hosts (so that every host gets as many of each, give or take
    one); one PHP run."""
    plan = []
    for n in range(count):
        targets = [f"http://{hosts[(n * links + k) % len(hosts)]}:{PORT}/p/{n}-{k}"
                   for k in range(links)]
        trackback = f"http://{hosts[n % len(hosts)]}:{PORT}/tb/{n}"
        plan.append({"n": n, "targets": targets, "trackback": trackback})
    made = site.php(f"""
        $plan = json_decode({php_str(json.dumps(plan))}, true);
        $out = [];
        foreach ($plan as $p) {{
            $links = '';
            foreach ($p['targets'] as $i => $t) {{
                $links .= "<p>Reading <a href=\\"$t\\">link $i</a> today.</p>\\n";
            }}
            $id = wp_insert_post([
                'post_title' => "Bench post {{$p['n']}}", 'post_status' => 'publish',
                'post_author' => 1, 'post_content' => $links, 'to_ping' => $p['trackback'],
                'post_date_gmt' => gmdate('Y-m-d H:i:s', strtotime('2025-01-01') + 60 * $p['n']),
            ], true);
            if (is_wp_error($id)) {{ return $id->get_error_message(); }}
            $out[] = [$id, get_permalink($id)];
        }}
        return $out;
    """)
    if not isinstance(made, list):
        raise SystemExit(f"bench: creating posts failed: {made}")
    return [Post(int(i), str(link), p["targets"], p["trackback"])
            for (i, link), p in zip(made, plan, strict=True)]


def warm_up(site: Site, workers: int) -> None:
    """A few requests on every PHP worker, so that each has WordPress compiled in its opcode
    cache, as on a site that is up and serving; otherwise the first requests of whichever
    sender runs first pay for it."""
    from concurrent.futures import ThreadPoolExecutor

    def fetch(_: int) -> None:
        with urllib.request.urlopen(f"{site.url}/?rest_route=/", timeout=60) as reply:
            reply.read()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fetch, range(workers * 4)))


def reset_posts(site: Site, posts: list[Post]) -> None:
    """Every post as just published: its trackback queued, nothing pinged, and core's
    "send pings" marks set (they matter to core's sender only)."""
    queued = {p.id: p.trackback for p in posts}
    site.php(f"""
        global $wpdb;
        foreach (json_decode({php_str(json.dumps(queued))}, true) as $id => $tb) {{
            $wpdb->update($wpdb->posts, ['to_ping' => $tb, 'pinged' => ''], ['ID' => $id]);
            update_post_meta($id, '_pingme', '1');
            update_post_meta($id, '_trackbackme', '1');
            delete_post_meta($id, '_encloseme');
            clean_post_cache($id);
        }}
        return true;
    """)


def receivers_call(path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"http://127.0.0.{FIRST_RECEIVER}:{PORT}{path}",
                                     method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=30) as reply:
        body = reply.read()
    return json.loads(body) if body else None


def delivery_problems(posts: list[Post], stats: dict[str, Any]) -> list[str]:
    """Every expected notification exactly once, from the right source, and nothing else."""
    expected: dict[tuple[str, str], str] = {}
    for post in posts:
        for target in post.targets:
            expected[("pingback", target)] = post.link
        expected[("trackback", post.trackback)] = post.link
    got = {(kind, target): sources for kind, target, sources in stats["pings"]}
    problems = []
    missing = [key for key in expected if key not in got]
    if missing:
        problems.append(f"{len(missing)} never arrived, e.g. {missing[0]}")
    twice = [key for key, sources in got.items() if len(sources) > 1]
    if twice:
        problems.append(f"{len(twice)} arrived more than once, e.g. {twice[0]}")
    wrong = [key for key, sources in got.items()
             if key in expected and any(s != expected[key] for s in sources)]
    if wrong:
        problems.append(f"{len(wrong)} came from the wrong source, e.g. {wrong[0]}")
    stray = [key for key in got if key not in expected]
    if stray:
        problems.append(f"{len(stray)} were not expected, e.g. {stray[0]}")
    return problems


def config_for(folder: Path, site: Site, concurrency: int, per_host: int,
               state: str = "state.sqlite3", state_url: str | None = None) -> Path:
    """A configuration file in ``folder``, named after ``state``: the state is that SQLite
    file there, or the PostgreSQL database at ``state_url``."""
    secret = folder / "app-password"
    secret.write_text(site.app_password)
    secret.chmod(0o600)
    path = folder / state.replace(".sqlite3", ".toml")
    where = (f"state_url = {json.dumps(state_url)}" if state_url is not None
             else f"state_file = {json.dumps(str(folder / state))}")
    path.touch(0o600)  # a URL may hold a password
    path.write_text(f"""
{where}

[http]
allowed_networks = ["127.0.0.0/8"]
concurrency = {concurrency}
per_host_concurrency = {per_host}

[[sites]]
name = "bench"
url = "{site.url}"
username = "admin"
password_file = "{secret}"
""")
    return path


# --- the PostgreSQL database -----------------------------------------------------------------

LOOPBACK = re.compile(r"127(\.\d{1,3}){3}|::1|localhost")


def bench_database(url: str) -> str:
    """The --state URL, once it names a database the bench may drop: ``wpnotify_bench...``
    on a loopback server (the bench sends nothing elsewhere). Raises ValueError saying why."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (parsing it raises on a bad port)
    except ValueError as error:
        raise ValueError(f"not a URL ({error})") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("give a postgresql:// URL, e.g. "
                         "postgresql://postgres@127.0.0.1:5432/wpnotify_bench")
    name = parts.path.removeprefix("/")
    if not re.fullmatch(r"wpnotify_bench[a-z0-9_]{0,40}", name):
        raise ValueError(f"the database must be named wpnotify_bench... (lower case, digits, _), "
                         f"not {name[:60]!r}: the bench drops it")
    if not LOOPBACK.fullmatch(host):
        raise ValueError(f"the server must be on a loopback address, not {host[:60]!r}")
    return url


def shown(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


def recreated(url: str, create: bool = True) -> None:
    """Drops the database of ``url`` (and whoever is still connected to it) and, unless
    ``create`` is false, creates it empty; through the server's ``postgres`` database."""
    try:
        import psycopg
    except ImportError:
        raise SystemExit("bench: --state needs psycopg: "
                         ".venv/bin/pip install 'psycopg[binary]'") from None
    parts = urllib.parse.urlsplit(url)
    name = parts.path.removeprefix("/")  # checked by bench_database: no quoting needed
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if create:
                db.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SystemExit(f"bench: PostgreSQL at {shown(url)}: {first}") from None


def postgres_cpu() -> float | None:
    """CPU seconds the local PostgreSQL server has used so far: its live processes' own and
    what its postmaster's exited children (the connections' backends) used; None when no
    server's processes can be read here. A SQLite run's database work is in wpnotify's own
    CPU time; this is PostgreSQL's counterpart (for the whole server: an exited backend's
    time cannot be told by database)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name, _, rest = text.partition(") ")
        if not name.endswith("(postgres"):
            continue
        fields = rest.split()  # from field 3 (state): utime is field 14, cutime 16
        found = True
        total += int(fields[11]) + int(fields[12])
        if fields[1] == "1":  # the postmaster: its reaped children too
            total += int(fields[13]) + int(fields[14])
    return total / ticks if found else None


# --- the runs -------------------------------------------------------------------------------

def run_core(site: Site, folder: Path) -> Measure:
    """WordPress core's own sender, as the do_pings cron event runs it (the bridge only takes
    these two off that event; called directly here, they are core's code, unchanged)."""
    script = folder / "core-send.php"
    script.write_text(site.php_script("do_all_pingbacks(); do_all_trackbacks(); return 'sent';"))
    return measured(["php", str(script)], folder)


def run_wpnotify(config: Path, folder: Path, profile: bool,
                 version: Version = CURRENT, workers: int = 1,
                 posts: list[int] | None = None) -> Measure:
    """One backfill of the whole archive; with ``workers`` > 1, that many processes started
    together, each given its share of the posts (``--post``), as an operator splits a
    backfill over workers: they share the per-host limits through the state."""
    command = [sys.executable]
    if profile:  # every thread while it holds the interpreter lock (py-spy: pip install py-spy)
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "--rate", "200", "--format", "raw", "--nonblocking", "--gil",
                   "--output", str(folder / "wpnotify.prof"), "--", sys.executable]
    command += ["-m", "wpnotify", "--config", str(config), "backfill", "--site", "bench",
                "--since", "2000-01-01"]
    if workers == 1 or not posts:
        return measured(command, folder, version, workers)
    shares = [posts[n::workers] for n in range(workers)]
    return measured(command, folder, version,
                    each=[command + [f"--post={i}" for i in share] for share in shares])


@dataclass(frozen=True)
class Sender:
    """One way to run wpnotify's backfill: a version, its configuration (a SQLite state file
    or the PostgreSQL database ``database``, made afresh for each run) and how many processes
    run it together."""
    name: str
    version: Version
    config: Path
    workers: int = 1
    database: str | None = None


@dataclass
class Run:
    """One sender's run: its measure, its delivery check, and what the receivers saw."""
    name: str
    measure: Measure
    problems: list[str]
    requests: int
    span: tuple[float, float]  # the receivers' first request and last answer, from its start
    host_peak: int = 0  # the most requests any one receiver host had in flight at once
    server_cpu: float | None = None  # the PostgreSQL server's CPU seconds during the run


def backfill(sender: Sender, site: Site, posts: list[Post], folder: Path,
             profile: bool) -> Run:
    """A backfill on freshly reset posts and receivers, from a fresh state file or database
    (every run of every sender starts from the same place)."""
    for leftover in folder.glob(sender.config.stem + ".sqlite3*"):
        leftover.unlink()
    if sender.database is not None:
        recreated(sender.database)
    reset_posts(site, posts)
    receivers_call("/_reset", "POST")
    print(f"bench: {sender.name} backfill ...", flush=True)
    server_before = None if sender.database is None else postgres_cpu()
    ours = run_wpnotify(sender.config, folder,
                        profile and sender.version == CURRENT and sender.workers == 1,
                        sender.version, sender.workers, [post.id for post in posts])
    server_after = None if server_before is None else postgres_cpu()
    stats = receivers_call("/_stats")
    problems = delivery_problems(posts, stats)
    host_peak = max(stats["peak"].values(), default=0)
    if ours.status != 0:
        problems.append(f"exit status {ours.status}: {ours.output.strip().splitlines()[-1:]}")
    return Run(sender.name, ours, problems, sum(stats["requests"].values()),
               (stats["first"] - ours.started, stats["last"] - ours.started), host_peak,
               None if server_before is None or server_after is None
               else server_after - server_before)


def alternated(senders: list[Sender], repeat: int, site: Site, posts: list[Post],
               folder: Path, profile: bool) -> list[Run]:
    """Each sender's backfill ``repeat`` times, taking turns (baseline, current, baseline,
    current), so that a busy neighbour slows them alike; runs are numbered when repeated."""
    runs = []
    for turn in range(repeat):
        for sender in senders:
            run = backfill(sender, site, posts, folder, profile)
            if repeat > 1:
                run.name += f" #{turn + 1}"
            runs.append(run)
    return runs


def best(runs: list[Run], name: str) -> Run:
    """The sender's fastest run, with the least peak memory of its runs (RSS varies a little
    from run to run; the least is what the sender needs). A run that failed its delivery
    check counts only when all did (one that stopped early is no figure to compare)."""
    mine = [r for r in runs if r.name.split(" #")[0] == name]
    pool = [r for r in mine if not r.problems] or mine
    fastest = min(pool, key=lambda r: r.measure.wall)
    peak = min(r.measure.peak_mb for r in pool)
    peak_sum = min(r.measure.peak_sum_mb for r in pool)
    return dataclasses.replace(fastest, name=name, host_peak=max(r.host_peak for r in mine),
                               measure=dataclasses.replace(fastest.measure, peak_mb=peak,
                                                           peak_sum_mb=peak_sum))


def php_requests(site: Site, since: int) -> list[str]:
    """The requests PHP's built-in server logged after byte ``since`` of its log."""
    with site.log_path.open("rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").splitlines()
    return [line.split("]: ", 1)[1] for line in lines if "]: " in line]


def idle_poll(site: Site, config: Path, folder: Path) -> tuple[list[str], Measure]:
    """The requests of a poll with nothing new (after a first poll that sets the baseline)."""
    command = [sys.executable, "-m", "wpnotify", "--config", str(config), "poll"]
    first = measured(command, folder)
    if first.status != 0:
        raise SystemExit(f"bench: first poll failed:\n{first.output[-2000:]}")
    time.sleep(0.5)
    start = site.log_path.stat().st_size
    idle = measured(command, folder)
    time.sleep(0.5)  # PHP writes its log line after answering
    return php_requests(site, start), idle


def grown(state: Path, rows: int, big: Path) -> int:
    """A copy of ``state`` at ``big`` grown to ``rows`` notifications (sent pingbacks, six a
    post, a minute apart); returns the count. Those rows stand for old history WordPress was
    told about long ago: the status marks their inserts made (schema 7's triggers) are
    cleared, or every later poll would push them (to posts the bench's WordPress lacks)."""
    shutil.copy(state, big)
    with sqlite3.connect(big) as db:
        have = db.execute("SELECT COUNT(*) FROM notifications").fetchone()[0]
        db.execute(f"""
            WITH RECURSIVE n(i) AS (
                SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - have:d})
            INSERT INTO notifications (site, post_id, kind, target, source, status, payload,
                                       created_at, updated_at, sent_at, endpoint, response)
            SELECT 'bench', 1000000 + i / 6, 'pingback', 'http://127.0.0.1/t/' || i,
                   'http://127.0.0.40:8080/p/' || (i / 6), 'sent', '{{}}',
                   strftime('%Y-%m-%dT%H:%M:%fZ', '2020-01-01', '+' || (i * 60) || ' seconds'),
                   strftime('%Y-%m-%dT%H:%M:%fZ', '2020-01-01', '+' || (i * 60) || ' seconds'),
                   strftime('%Y-%m-%dT%H:%M:%fZ', '2020-01-01', '+' || (i * 60) || ' seconds'),
                   'http://127.0.0.1/rpc', 'registered'
            FROM n""")
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'status_outbox'").fetchone():
            db.execute("DELETE FROM status_outbox WHERE post_id >= 1000000")
        total: int = db.execute("SELECT COUNT(*) FROM notifications").fetchone()[0]
    return total


def history_at_scale(state: Path, rows: int, folder: Path, config: Path) -> dict[str, float]:
    """`history --post` on a copy of the state file grown to ``rows`` notifications (the copy
    is ``config``'s state file)."""
    total = grown(state, rows, folder / "big.sqlite3")
    sys.path.insert(0, str(ROOT))
    from wpnotify.state import open_state

    store = open_state(folder / "big.sqlite3")
    post = 1000000 + (rows // 12)
    times = []
    for _ in range(7):
        started = time.perf_counter()
        found = store.history(post_id=post, limit=50)
        times.append(time.perf_counter() - started)
    store.close()
    return {"rows": total, "found": len(found), "query_ms": statistics.median(times) * 1000,
            "post": post, **reads(CURRENT, config, post, folder)}


def reads(version: Version, config: Path, post: int, folder: Path) -> dict[str, float]:
    """`history --post` and `status`, whole commands, on ``config``'s (big) state file."""
    cli = best_of([sys.executable, "-m", "wpnotify", "--config", str(config), "history",
                   "--post", str(post)], folder, version=version)
    status = best_of([sys.executable, "-m", "wpnotify", "--config", str(config), "status"],
                     folder, version=version)
    return {"command_s": cli.wall, "status_s": status.wall}


def start_up(folder: Path, history: dict[str, float] | None,
             version: Version = CURRENT) -> dict[str, float]:
    """The start-up figures: `--help` and `--version` (no configuration, no state file), and
    `history --post` and `status` on the big state file when there is one."""
    figures = {}
    if history is not None:
        figures["history --post"] = history["command_s"]
        figures["status"] = history["status_s"]
    for flag in ("--help", "--version"):
        figures[flag] = best_of([sys.executable, "-m", "wpnotify", flag], folder,
                                version=version).wall
    return figures


def print_start_up(figures: dict[str, float], baseline: dict[str, float] | None) -> None:
    # Start-up is CPU-bound and short: on a busy machine every run is slowed, so the load is
    # printed with the figures for a reader to judge them by.
    print(f"start-up (whole command, python -m wpnotify, best of 7 after a warm-up; load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    for name, seconds in figures.items():
        target = START_UP_TARGETS.get(name)
        verdict = ("no target" if target is None else
                   f"target <= {target * 1000:.0f} ms: {'ok' if seconds <= target else 'over'}")
        before = ("" if baseline is None else
                  f"  baseline {baseline[name] * 1000:6.0f} ms, "
                  f"current / baseline {seconds / baseline[name]:.2f}")
        shown = f"({verdict})" if baseline is None else f"{f'({verdict})':<25}"
        print(f"  {name:<15} {seconds * 1000:6.0f} ms  {shown}{before}")


def fleet_senders(state: str | None, workers: int, config: Path,
                  config_of: Callable[[str, str | None], Path],
                  version: Version = CURRENT) -> list[Sender]:
    """A version's senders: SQLite with one process; with a --state URL, PostgreSQL with
    one; with --workers N > 1, N processes on PostgreSQL's state (SQLite's without a URL).
    Alone, the first keeps the bench's old name, "wpnotify" (or the baseline's). A baseline's
    state files are its own (``config_of`` names them: a newer schema is refused by older
    code); its PostgreSQL database is the same, made afresh before each run."""
    if state is None and workers == 1:
        return [Sender(version.name, version, config)]
    prefix = "" if version == CURRENT else "baseline-"
    senders = [Sender(f"{version.name}, SQLite, 1 worker", version, config)]
    if state is not None:
        postgres = config_of(f"{prefix}postgresql.sqlite3", state)
        senders.append(Sender(f"{version.name}, PostgreSQL, 1 worker", version, postgres, 1,
                              state))
        if workers > 1:
            senders.append(Sender(f"{version.name}, PostgreSQL, {workers} workers", version,
                                  postgres, workers, state))
    else:
        senders.append(Sender(f"{version.name}, SQLite, {workers} workers", version,
                              config_of(f"{prefix}workers.sqlite3", None), workers))
    return senders


# --- report ---------------------------------------------------------------------------------

def lower_bound(posts: list[Post], latency: float, per_host: int,
                concurrency: int) -> tuple[float, int, int]:
    """The least time the requests can take: a pingback needs 2 (the page, the ping), a
    trackback 1; each host takes per_host at a time (over the whole fleet), everything
    concurrency at a time (each process's own limit: pass it times the processes)."""
    per_host_requests: Counter[str] = Counter()
    for post in posts:
        for target in post.targets:
            per_host_requests[target.split("/")[2]] += 2
        per_host_requests[post.trackback.split("/")[2]] += 1
    total = sum(per_host_requests.values())
    busiest = max(per_host_requests.values())
    bound = max(busiest * latency / per_host, total * latency / concurrency)
    return bound, total, busiest


def row(name: str, m: Measure, count: int, problems: list[str], host_peak: int,
        width: int = 16) -> str:
    check = "exactly once" if not problems else "FAILED: " + "; ".join(problems)
    peak = (f"{m.peak_mb:6.1f} MB" if m.processes == 1 else
            f"{m.peak_mb:.1f}, sum {m.peak_sum_mb:.1f} MB")
    return (f"| {name:<{width}} | {m.wall:8.2f} s | {count / m.wall:8.1f} | {m.cpu:7.2f} s | "
            f"{peak:>19} | {host_peak:9d} | {check} |")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_backends(runs: list[Run], senders: list[Sender], repeat: int, bound: float,
                   per_host: int, version: Version = CURRENT) -> bool:
    """A version's state backends and fleet side by side: PostgreSQL / SQLite with one worker
    (target <= 1.3) and N workers / one (target <= 1.0), whether every run took at least the
    lower bound (nothing skipped) and kept within the per-host limit. False when a host had
    more in flight than --per-host."""
    fleet = [s for s in senders if s.version == version]
    runs = [r for r in runs if r.name.split(" #")[0] in {s.name for s in fleet}]
    by_name = {s.name: best(runs, s.name) for s in fleet}
    each = "one run each" if repeat == 1 else f"best of {repeat} runs each, taken in turns"
    print(f"state and workers ({each}; CPU summed over a run's processes; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")

    def ratio(label: str, top: Sender, bottom: Sender, target: float) -> None:
        a, b = by_name[top.name].measure, by_name[bottom.name].measure
        memory = (f"{a.peak_mb:.1f} / {b.peak_mb:.1f} MB" if a.processes == b.processes == 1
                  else f"{a.peak_mb:.1f} (sum {a.peak_sum_mb:.1f}) / {b.peak_mb:.1f} MB")
        print(f"  {label}: wall {a.wall:.2f} / {b.wall:.2f} s = {a.wall / b.wall:.2f}x "
              f"(target <= {target}: {verdict(a.wall / b.wall <= target)}); CPU "
              f"{a.cpu:.2f} / {b.cpu:.2f} s = {a.cpu / b.cpu:.2f}x; peak memory {memory}")
        servers = [(s.name, by_name[s.name].server_cpu) for s in (top, bottom)]
        if any(cpu is not None for _, cpu in servers):
            print("    the PostgreSQL server's CPU meanwhile (outside wpnotify's; the whole "
                  "server's, other databases' work included): "
                  + ", ".join(f"{cpu:.2f} s ({name.removeprefix(version.name + ', ')})"
                              for name, cpu in servers if cpu is not None))

    sqlite_one = fleet[0]
    postgres = [s for s in fleet if s.database is not None]
    many = [s for s in fleet if s.workers > 1]
    if postgres:
        ratio("PostgreSQL / SQLite, 1 worker", postgres[0], sqlite_one, 1.3)
    if many:
        one = postgres[0] if postgres else sqlite_one
        backend = "PostgreSQL" if postgres else "SQLite"
        ratio(f"{many[0].workers} workers / 1 worker, {backend}", many[0], one, 1.0)
    print("  where each one's time went (start-up and the first posts read / first request to "
          "last answer / WordPress told, exit):")
    for name, run in by_name.items():
        first, last = run.span
        print(f"    {name.removeprefix(version.name + ', '):<24} {first:.2f} / "
              f"{last - first:.2f} / {run.measure.wall - last:.2f} s")
    fastest = min((r for r in runs if r.name.split(" #")[0] in by_name),
                  key=lambda r: r.measure.wall)
    print(f"  lower bound {bound:.2f} s: the fastest run took {fastest.measure.wall:.2f} s "
          f"({fastest.name}; less would mean work skipped): "
          f"{verdict(fastest.measure.wall >= bound)}")
    worst = max(runs, key=lambda r: r.host_peak)
    within = worst.host_peak <= per_host
    print(f"  per-host limit {per_host}: at most {worst.host_peak} request(s) in flight at one "
          f"receiver host in any run ({worst.name}): {verdict(within)}")
    return within


def print_against_baseline(ours: Run, before: Run, repeat: int) -> None:
    each = "one run each" if repeat == 1 else f"best of {repeat} runs each, taken in turns"
    which = ours.name.removeprefix(CURRENT.name).removeprefix(", ")
    print(f"current / baseline{f', {which}' if which else ''} ({each}): wall "
          f"{ours.measure.wall:.2f} / {before.measure.wall:.2f} s = "
          f"{ours.measure.wall / before.measure.wall:.2f}x, "
          f"CPU {ours.measure.cpu:.2f} / {before.measure.cpu:.2f} s = "
          f"{ours.measure.cpu / before.measure.cpu:.2f}x, peak memory "
          f"{ours.measure.peak_mb:.1f} / {before.measure.peak_mb:.1f} MB = "
          f"{ours.measure.peak_mb / before.measure.peak_mb:.2f}x; receiver requests "
          f"{ours.requests} / {before.requests}")


# Innermost frames that are waits, not work (py-spy cannot always tell an idle thread).
IDLE = ("wait (threading", "_worker (concurrent", "get (queue", "readinto (socket",
        "recv_into", "sleep", "accept (socket", "_wait_for_tstate_lock", "acquire", "poll",
        "select")


def print_profile(path: Path) -> None:
    """Where wpnotify's threads spent their samples: by innermost function, and by the first
    frame inside wpnotify (what part of wpnotify asked for the work)."""
    leaf: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in IDLE):
            continue
        total += int(count)
        leaf[frames[-1]] += int(count)
        mine = [f for f in frames if "(wpnotify/" in f]
        ours[mine[-1] if mine else "(outside wpnotify: start-up, imports)"] += int(count)
    print(f"\nwpnotify's samples ({total} at 200 a second, threads holding the interpreter lock, "
          "waits left out):")
    for name, title in ((leaf, "innermost function"), (ours, "innermost wpnotify frame")):
        print(f"  by {title}:")
        for frame, count in name.most_common(15):
            print(f"    {100 * count / total:5.1f}%  {frame[:110]}")


def main() -> int:
    parser = argparse.ArgumentParser(description="wpnotify against WordPress core's sender")
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--links", type=int, default=5, help="links per post")
    parser.add_argument("--hosts", type=int, default=20, help="receiver hosts")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--per-host", type=int, default=2, help="wpnotify's per-host limit")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="wpnotify's global limit (default: hosts x per-host, >= 16)")
    parser.add_argument("--history-rows", type=int, default=1_000_000,
                        help="state-file size for the history figure (0 skips it)")
    parser.add_argument("--skip-core", action="store_true", help="only wpnotify")
    parser.add_argument("--profile", action="store_true",
                        help="sample wpnotify with py-spy and print where its CPU went")
    parser.add_argument("--baseline", metavar="DIR",
                        help="another wpnotify checkout (e.g. a git worktree of an older "
                             "commit) to run beside this one")
    parser.add_argument("--repeat", type=int, default=1,
                        help="wpnotify backfills per version, taken in turns (default 1)")
    parser.add_argument("--state", metavar="URL",
                        help="a PostgreSQL database to run wpnotify on too, beside SQLite, "
                             "e.g. postgresql://postgres@127.0.0.1:5432/wpnotify_bench "
                             "(made afresh, dropped at the end: its name must start with "
                             "wpnotify_bench)")
    parser.add_argument("--workers", type=int, default=1,
                        help="also run N backfill processes together on one state "
                             "(PostgreSQL's with --state, else SQLite's) beside one")
    args = parser.parse_args()
    for name, value, low, high in (("--posts", args.posts, 1, 100_000),
                                   ("--links", args.links, 0, 100),
                                   ("--hosts", args.hosts, 1, 100),
                                   ("--latency", args.latency, 0, 10),
                                   ("--per-host", args.per_host, 1, 16),
                                   ("--concurrency", args.concurrency, 0, 256),
                                   ("--history-rows", args.history_rows, 0, 100_000_000),
                                   ("--repeat", args.repeat, 1, 100),
                                   ("--workers", args.workers, 1, 16)):
        if not low <= value <= high:
            parser.error(f"{name} must be from {low} to {high}, not {value}")
    if args.state is not None:
        try:
            bench_database(args.state)
        except ValueError as error:
            parser.error(f"--state: {error}")
    baseline = None if args.baseline is None else baseline_of(args.baseline)
    installed_bytecode([ROOT] + ([] if baseline is None or baseline.checkout is None
                                 else [baseline.checkout]))
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (it sets up a throwaway WordPress site)")
    concurrency = args.concurrency or max(16, args.hosts * args.per_host)
    hosts = receivers_of(args.hosts)
    if args.state is not None:
        recreated(args.state)  # reachable, and ours to drop, before anything is set up
    folder = Path(tempfile.mkdtemp(prefix="wpnotify-bench-"))
    ensure_mariadb()
    site = Site(SOURCE, title="wpnotify bench", bridge=True, workers=4,
                extra_config="define('DISABLE_WP_CRON', true);  // the bench runs the senders")
    receivers = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "receivers.py"), *hosts,
         "--latency", str(args.latency)], stdout=subprocess.PIPE, text=True)
    try:
        assert receivers.stdout is not None
        if receivers.stdout.readline().strip() != "ready":
            raise SystemExit("bench: the receivers did not start (ports 8080 taken?)")
        for host in hosts:
            wait_for_port(host, PORT, 10)
        print(f"bench: installing WordPress on {SOURCE} with {args.posts} posts "
              f"({args.links} links and 1 trackback each, over {args.hosts} hosts, "
              f"{args.latency * 1000:.0f} ms per answer)", flush=True)
        site.install()
        site.start()
        posts = create_posts(site, args.posts, args.links, hosts)
        warm_up(site, site.workers)
        count = args.posts * (args.links + 1)
        config = config_for(folder, site, concurrency, args.per_host)
        senders = fleet_senders(args.state, args.workers, config,
                                lambda state, url: config_for(folder, site, concurrency,
                                                              args.per_host, state, url))
        if baseline is not None:  # first in each turn; same settings, its own state files
            senders[:0] = fleet_senders(
                args.state, args.workers,
                config_for(folder, site, concurrency, args.per_host, state="baseline.sqlite3"),
                lambda state, url: config_for(folder, site, concurrency, args.per_host, state,
                                              url), baseline)
        runs = alternated(senders, args.repeat, site, posts, folder, args.profile)
        results = {r.name: (r.measure, r.problems, r.host_peak) for r in runs}
        best_ours = best(runs, next(s.name for s in senders if s.version == CURRENT))
        ours, ours_requests, ours_span = best_ours.measure, best_ours.requests, best_ours.span

        if not args.skip_core:
            reset_posts(site, posts)
            receivers_call("/_reset", "POST")
            print("bench: WordPress core's do_all_pingbacks() + do_all_trackbacks() ...",
                  flush=True)
            core = run_core(site, folder)
            stats = receivers_call("/_stats")
            results["WordPress core"] = (core, delivery_problems(posts, stats),
                                         max(stats["peak"].values(), default=0))
            if core.status != 0 or "WPNOTIFY-DEVSITE" not in core.output:
                results["WordPress core"][1].append(f"PHP failed: {core.output[-300:]}")
            core_requests = sum(stats["requests"].values())

        requests, idle = idle_poll(site, config, folder)
        history = big_poll = baseline_history = None
        if args.history_rows:
            big = config_for(folder, site, concurrency, args.per_host, state="big.sqlite3")
            history = history_at_scale(folder / "state.sqlite3", args.history_rows, folder, big)
            if baseline is not None:  # its own file: a newer schema is refused by older code
                big_before = config_for(folder, site, concurrency, args.per_host,
                                        state="big-baseline.sqlite3")
                grown(folder / "baseline.sqlite3", args.history_rows,
                      folder / "big-baseline.sqlite3")
                baseline_history = reads(baseline, big_before, int(history["post"]), folder)
            big_poll = idle_poll(site, big, folder)  # flat as the state file grows?
    finally:
        receivers.terminate()
        receivers.wait(10)
        site.stop()
        if args.state is not None:
            recreated(args.state, create=False)
    figures = start_up(folder, history)
    baseline_figures = (None if baseline is None else
                        start_up(folder, baseline_history, baseline))

    bound, total, busiest = lower_bound(posts, args.latency, args.per_host, concurrency)
    fleet_bound = lower_bound(posts, args.latency, args.per_host,
                              concurrency * args.workers)[0]
    print()
    print(f"{args.posts} posts x ({args.links} pingbacks + 1 trackback) = {count} "
          f"notifications to {args.hosts} hosts, {args.latency * 1000:.0f} ms per answer; "
          f"wpnotify: concurrency {concurrency}, per host {args.per_host}; "
          f"{os.cpu_count()} CPUs")
    print()
    width = max(16, *(len(name) for name in results))
    print(f"| {'sender':<{width}} |     wall   | notif./s |    CPU    | peak memory (RSS)   "
          f"| host peak | delivery |")
    print(f"|-{'-' * width}-|------------|----------|-----------|---------------------"
          f"|-----------|----------|")
    for name, (m, problems, host_peak) in results.items():
        print(row(name, m, count, problems, host_peak, width))
    print("(host peak: the most requests one receiver host had in flight at once)")
    print()
    within = True
    versions = [CURRENT] + ([] if baseline is None else [baseline])
    if len([s for s in senders if s.version == CURRENT]) > 1:
        for version in versions:
            if version != CURRENT:
                print(f"{version.name} ({version.checkout}):")
            within = print_backends(runs, senders, args.repeat, fleet_bound, args.per_host,
                                    version) and within
    elif max(host_peak for _, _, host_peak in results.values()) > args.per_host:
        within = False
        print(f"per-host limit {args.per_host}: exceeded (see host peak): FAIL")
    if baseline is not None:
        for mine, theirs in zip([s for s in senders if s.version == CURRENT],
                                [s for s in senders if s.version == baseline], strict=True):
            print_against_baseline(best(runs, mine.name), best(runs, theirs.name),
                                   args.repeat)
    print(f"receiver requests: wpnotify {ours_requests}"
          + ("" if args.skip_core else f", WordPress core {core_requests}"))
    print(f"lower bound: {bound:.2f} s ({total} requests, {busiest} to the busiest host, "
          f"x {args.latency * 1000:.0f} ms / {args.per_host} per host; "
          f"{total} x {args.latency * 1000:.0f} ms / {concurrency} overall)")
    print(f"wpnotify / lower bound: {ours.wall / bound:.2f}x (target <= 1.5)")
    first, last = ours_span
    print(f"  of which: start-up and the first posts read {first:.2f} s; first request to last "
          f"answer {last - first:.2f} s ({(last - first) / bound:.2f}x the bound); "
          f"after it {ours.wall - last:.2f} s (WordPress told, exit)")
    if not args.skip_core:
        print(f"speed-up over WordPress core: {core.wall / ours.wall:.1f}x (target >= 25)")
    print(f"wpnotify peak memory: {ours.peak_mb:.1f} MB (target < 80)")
    print(f"idle poll: {len(requests)} request(s) to WordPress "
          f"({'; '.join(r[:90] for r in requests)}), {idle.wall:.2f} s, "
          f"{idle.cpu:.2f} s CPU, {idle.peak_mb:.1f} MB")
    if history is not None:
        print(f"history --post on {history['rows']:,} rows: {history['query_ms']:.2f} ms "
              f"query ({history['found']} rows), {history['command_s'] * 1000:.0f} ms for "
              f"the whole command (Python start-up included)")
    if big_poll is not None and history is not None:
        big_requests, big_idle = big_poll
        print(f"idle poll on that state file: {len(big_requests)} request(s), "
              f"{big_idle.wall:.2f} s, {big_idle.cpu:.2f} s CPU, {big_idle.peak_mb:.1f} MB; "
              f"`status`: {history['status_s'] * 1000:.0f} ms")
    print_start_up(figures, baseline_figures)
    if args.profile:
        print_profile(folder / "wpnotify.prof")
    shutil.rmtree(folder, ignore_errors=True)
    failed = any(problems for _, problems, _ in results.values())
    if failed:
        print("bench: DELIVERY CHECK FAILED", file=sys.stderr)
    if not within:
        print(f"bench: MORE THAN --per-host {args.per_host} IN FLIGHT AT ONE HOST",
              file=sys.stderr)
    return 1 if failed or not within else 0


if __name__ == "__main__":
    sys.exit(main())
