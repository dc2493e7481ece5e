"""The sending package's seams: process-wide tuning belongs to the entry points, and the
`pinged` mirror decides on its own when WordPress is told."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_sender import make_world

from wpnotify import cli, sending
from wpnotify.errors import WpnotifyError
from wpnotify.sending.pinged import PINGED_BATCH, PingedMirror
from wpnotify.state.sqlite import SqliteState

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture()
def switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.usefixtures("switch_interval")
def test_a_delivery_leaves_the_process_wide_switch_interval_alone(tmp_path: Path) -> None:
    """Library code does not change a process-wide setting behind its caller's back."""
    world = make_world(tmp_path)
    world["store"].add("s", 1, "trackback", "http://[your link here]/", "https://s.example/1/",
                       world["clock"](), payload={"title": "T", "excerpt": "", "blog_name": "B",
                                                  "url": "https://s.example/1/"})
    assert world["sender"].deliver(["s"]).skipped == 1
    assert sys.getswitchinterval() == pytest.approx(0.005)


@pytest.mark.usefixtures("switch_interval")
@pytest.mark.parametrize(("command", "tuned"), [(["poll"], True), (["backfill", "--help"], False),
                                                (["history"], False), (["--version"], False)])
def test_the_cli_tunes_the_process_only_for_the_commands_that_send(
        command: list[str], tuned: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1 ms switch interval the bench measured is set by the entry point, and only where
    something is sent (the service is stopped there, before any network)."""
    import wpnotify.service

    def no_service(*args: object, **kwargs: object) -> None:
        raise WpnotifyError("stopped before the service opened")

    monkeypatch.setattr(wpnotify.service, "open_service", no_service)
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "config.toml").write_text(
        'state_file = "state.sqlite3"\n[[sites]]\nname = "blog"\nurl = "https://blog.example"\n'
        'username = "admin"\npassword_file = "pw"\n')
    with pytest.raises(SystemExit):
        cli.main(["--config", str(tmp_path / "config.toml"), *command])
    expected = sending.SWITCH_INTERVAL if tuned else 0.005
    assert sys.getswitchinterval() == pytest.approx(expected)


class Bridge:
    def __init__(self) -> None:
        self.told: list[dict[int, list[str]]] = []

    def record_pinged_many(self, posts: dict[int, list[str]]) -> None:
        self.told.append(dict(posts))


def test_the_mirror_tells_wordpress_every_batch_and_at_the_cycle_end(tmp_path: Path) -> None:
    """A batch of sent links is told without waiting for the cycle's end; the rest at its
    end; sites not delivered in the cycle are left to whoever delivers them."""
    store = SqliteState.open(tmp_path / "state.sqlite3")
    bridges = {"s": Bridge(), "other": Bridge()}
    store.queue_pinged_many([("other", 1, "https://o.example/")], NOW)
    mirror = PingedMirror(store, bridges)  # type: ignore[arg-type]  # only what it asks
    mirror.include(["s"])
    for i in range(PINGED_BATCH):
        mirror.sent("s", 1 + i % 2, [f"https://t.example/{i}"], NOW)
    assert [sum(map(len, told.values())) for told in bridges["s"].told] == [PINGED_BATCH]
    mirror.sent("s", 3, ["https://t.example/last"], NOW)
    assert len(bridges["s"].told) == 1  # not a batch yet
    mirror.close()
    assert bridges["s"].told[1] == {3: ["https://t.example/last"]}
    assert bridges["other"].told == []
    assert store.pinged_waiting("s", 10) == {}


def _imports(tree: ast.AST) -> Iterator[tuple[str, list[str], bool]]:
    """(module, names, under ``if TYPE_CHECKING``) for each ``from … import …``."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            guarded.update(id(inner) for inner in ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names], id(node) in guarded
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in guarded


def test_sending_knows_the_sources_only_by_their_protocol() -> None:
    """The sending package talks to WordPress through the `Source` protocol alone (a type,
    never imported at run time), and never reaches up to the service, the CLI or the
    daemon."""
    package = Path(sending.__file__).parent
    for path in package.glob("*.py"):
        for module, names, typing_only in _imports(ast.parse(path.read_text())):
            assert not module.startswith(("wpnotify.service", "wpnotify.cli",
                                          "wpnotify.daemon")), (path.name, module)
            if module.startswith("wpnotify.sources"):
                assert typing_only and names == ["Source"], (path.name, module, names)
