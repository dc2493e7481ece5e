"""`wpnotify inbound` and the inbound parts of `status`: what an admin reads of the pings the
sites received, from the state alone (the pass that fills it: test_inbound_pass.py and
test_e2e_inbound.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_cli import run

from wpnotify.render import INBOUND_FIELDS
from wpnotify.state import Action, InboundPing, Verdict
from wpnotify.state.sqlite import SqliteState

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def ping(site: str, comment_id: int, source: str) -> InboundPing:
    return InboundPing(site=site, comment_id=comment_id, post_id=7, kind="trackback",
                       source=source, author="=HYPERLINK(\"x\")", author_ip="127.0.0.9",
                       content="<strong>Title</strong>\n\nexcerpt",
                       received_at=NOW - timedelta(minutes=1), seen_at=NOW,
                       status_seen="hold")


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[[sites]]\nname = "blog"\nurl = "https://blog.example"\n'
                    'username = "u"\npassword = "topsecret pw"\ninbound = "moderate"\n\n'
                    '[[sites]]\nname = "other"\nurl = "https://other.example"\n'
                    'username = "u"\npassword = "pw"\n')
    store = SqliteState.open(tmp_path / "wpnotify.sqlite3")
    store.add_pings("blog", [ping("blog", 11, "https://good.example/a"),
                             ping("blog", 12, "https://spam.example/\x1b[31mred"),
                             ping("blog", 13, "https://slow.example/")], 13)
    store.record_verdict("blog", 11, verdict=Verdict.VERIFIED, code="links",
                         reason="links to the post", attempts=1, next_attempt_at=None, now=NOW)
    store.record_action("blog", 11, Action.HELD, "hold", NOW)
    store.record_verdict("blog", 12, verdict=Verdict.UNVERIFIED, code="no-link",
                         reason="no link to the post", attempts=1, next_attempt_at=None,
                         now=NOW)
    store.record_action("blog", 12, Action.SPAM, "spam", NOW)
    store.record_verdict("blog", 13, verdict=Verdict.PENDING, code="timeout",
                         reason="slow.example took longer than 20 s", attempts=1,
                         next_attempt_at=NOW + timedelta(minutes=1), now=NOW)
    store.close()
    return path


def test_inbound_json_lists_each_ping_with_its_verdict_reason_and_action(config: Path) -> None:
    proc = run("--config", str(config), "inbound", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [tuple(r[k] for k in ("comment_id", "verdict", "code", "action", "status_after"))
            for r in sorted(rows, key=lambda r: r["comment_id"])] == [
        (11, "verified", "links", "held", "hold"),
        (12, "unverified", "no-link", "spam", "spam"),
        (13, "pending", "timeout", "none", None)]
    assert all(list(row) == list(INBOUND_FIELDS) for row in rows)
    assert rows[0]["source"].startswith("https://")  # exact text in JSON
    assert "\x1b" in next(r["source"] for r in rows if r["comment_id"] == 12)


def test_inbound_filters_by_verdict_and_site_and_csv_defuses_formulas(config: Path) -> None:
    proc = run("--config", str(config), "inbound", "--format", "csv", "--verdict", "unverified",
               "--site", "blog")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["comment_id"] for r in rows] == ["12"]
    assert rows[0]["author"].startswith("'=")  # never a formula in a spreadsheet
    assert "\x1b" not in proc.stdout and "\\x1b" in proc.stdout
    proc = run("--config", str(config), "inbound", "--site", "other")
    assert proc.returncode == 0 and "no pings recorded" in proc.stdout


def test_inbound_table_escapes_what_a_sender_wrote(config: Path) -> None:
    proc = run("--config", str(config), "inbound")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split()[:3] == ["SEEN", "(UTC)", "SITE"]
    assert "\x1b" not in proc.stdout and "unverified  spam" in proc.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["inbound", "--verdict", "spammy"], "Invalid value for '--verdict'"),
    (["inbound", "--site", "nope"], "no site named 'nope'"),
    (["inbound", "--limit", "0"], "--limit"),
])
def test_bad_inbound_options_are_one_line_errors(config: Path, args: list[str],
                                                 expected: str) -> None:
    proc = run("--config", str(config), *args)
    assert proc.returncode != 0 and expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_status_counts_a_sites_pings_by_verdict_and_action(config: Path) -> None:
    proc = run("--config", str(config), "status", "--format", "json")
    sites = {s["site"]: s for s in json.loads(proc.stdout)}
    assert sites["blog"]["inbound"] == {
        "mode": "moderate", "verdicts": {"pending": 1, "verified": 1, "unverified": 1},
        "actions": {"none": 1, "spam": 1, "held": 1}}
    assert sites["other"]["inbound"] == {"mode": "off", "verdicts": {}, "actions": {}}
    table = run("--config", str(config), "status").stdout
    assert "inbound (moderate): 1 pending, 1 verified, 1 unverified; actions: 1 none, " \
           "1 spam, 1 held" in table
    assert "inbound (off)" not in table
