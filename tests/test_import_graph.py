"""The checker behind tests/test_architecture.py and scripts/import-graph reads imports the
way Python resolves them, on small made-up packages: its own tests, so that a green
architecture test means a clean tree and not a blind checker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import architecture
import pytest
from architecture import cycles, layer_violations, load_graph, long_functions

ROOT = Path(__file__).resolve().parent.parent


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "wpnotify" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_every_import_form_is_an_edge_to_the_module_it_names(tmp_path: Path) -> None:
    graph = load_graph(tree(tmp_path, {
        "__init__.py": "__version__ = '1'\n",
        "cli.py": "from wpnotify import __version__, settings\nimport wpnotify.state\n",
        "settings.py": "from . import errors\nfrom .errors import Oops\n",
        "errors.py": "class Oops(Exception): ...\n",
        "state/__init__.py": "from .sqlite import Store\n",
        "state/sqlite.py": "from ..errors import Oops\nfrom wpnotify.state import records\n",
        "state/records.py": "import json\n",
        "daemon.py": "def run() -> None:\n    from wpnotify.state.sqlite import Store\n",
    }))
    assert graph.edges == {
        "wpnotify": {},
        "cli": {"settings": 1, "state": 2, "wpnotify": 1},
        "daemon": {"state.sqlite": 2},
        "errors": {},
        "settings": {"errors": 1},
        "state": {"state.sqlite": 1},
        "state.records": {},
        "state.sqlite": {"errors": 1, "state.records": 2},
    }


def test_a_cycle_is_reported_as_a_path_back_to_its_start(tmp_path: Path) -> None:
    graph = load_graph(tree(tmp_path, {
        "__init__.py": "",
        "a.py": "from wpnotify import b\n",
        "b.py": "def f() -> None:\n    from wpnotify import c\n",
        "c.py": "import wpnotify.a\n",
        "d.py": "from wpnotify import a\n",
    }))
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_upward_edges_top_imports_families_and_unlisted_modules_are_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(architecture, "MUST_NOT_IMPORT", [("sources.rest", "sources.xmlrpc")])
    graph = load_graph(tree(tmp_path, {
        "__init__.py": "",
        "cli.py": "from wpnotify import service, http, errors\n",
        "service.py": "",
        "http.py": "from wpnotify import service\n",
        "errors.py": "",
        "state/__init__.py": "from wpnotify.sources import rest\n",
        "sources/__init__.py": "",
        "sources/rest.py": "from wpnotify.sources import xmlrpc\n",
        "sources/xmlrpc.py": "",
        "mystery.py": "",
    }))
    assert layer_violations(graph) == [
        "mystery: not in the layer table (add it to the layer table in tests/architecture.py)",
        "cli:1 imports http: the top imports only service.*, settings, errors, render.*, logs, "
        "times, urls, systemd, wpnotify",
        "http:1 imports service: upward (bottom -> service)",
        "sources.rest:1 imports sources.xmlrpc: sources.rest must not import sources.xmlrpc",
        "state:1 imports sources.rest: state must not import sources",
    ]


def test_long_functions_need_a_reason_in_their_docstring(tmp_path: Path) -> None:
    def function(name: str, lines: int, indent: str = "", doc: str = "") -> str:
        """A function of exactly ``lines`` lines, ``def`` included."""
        body = [f'{indent}    """{doc}"""'] if doc else []
        body += [f"{indent}    x = {i}" for i in range(lines - 1 - len(body))]
        return "\n".join([f"{indent}def {name}() -> None:", *body]) + "\n"

    tree(tmp_path, {"__init__.py": "", "m.py": (
        function("at_the_limit", 40)                                   # lines 1-40
        + "class C:\n" + function("over", 41, indent="    ")           # lines 41-82
        + function("excused", 50, doc="Long because it is a table.")    # from line 83
        + function("outer", 45, doc="Says nothing about its length."))})  # from line 133
    found = [(f.path, f.line, f.name, f.lines) for f in long_functions(tmp_path)]
    assert found == [("wpnotify/m.py", 42, "C.over", 41), ("wpnotify/m.py", 133, "outer", 45)]


def test_the_script_prints_the_graph_and_fails_on_a_violation(tmp_path: Path) -> None:
    tree(tmp_path, {"__init__.py": "", "cli.py": "from wpnotify import plan\n",
                    "plan.py": "from wpnotify import cli\n"})
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "import-graph"),
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "  cli [top] -> plan\n" in proc.stdout
    assert "cycles: 1\n  cli -> plan -> cli\n" in proc.stdout
    assert "plan:1 imports cli: upward (middle -> top)" in proc.stdout
