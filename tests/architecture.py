"""wpnotify's import graph and function lengths, read from the source (``ast``), never by
importing the package: shared by tests/test_architecture.py and scripts/import-graph, so that
the test and the picture a person prints cannot disagree.

The layer table below is data: the target picture of issue 13 (cli/daemon -> service ->
{sources, kinds, state} -> {http seam, settings}). When modules are renamed or added, edit the
table, not the code. A pattern names a module relative to the package (``cli``, ``state.sqlite``;
the package itself is ``wpnotify``); ``name.*`` stands for the package ``name`` and everything
under it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "wpnotify"

# --- the layer table: adjust here when modules move ----------------------------------------
# Ordered from the top down; an import may point down or sideways, never up.
LAYERS: dict[str, list[str]] = {
    "top": ["__main__", "cli", "daemon",
            "render.*"],  # renderers: top-only, they turn the service's results into text
    "service": ["service.*"],
    "middle": ["sending.*", "plan", "attempt", "kinds", "kind", "linkpayload", "discovery",
               "metrics",  # Prometheus and /healthz: events in, the state read at scrape
               "webmention", "pingback", "trackback", "weblogupdates",
               "sources.*", "state.*",
               "statusrows",  # the bridge's status rows, from the state's records
               "verify"],  # inbound verification: a protocol-like module, pure half + I/O
    "bottom": ["wpnotify", "http", "connections", "settings", "errors", "urls", "markup",
               "answer", "rpc", "times", "logs",
               "events", "systemd"],  # what happened, for watchers; systemd's notify socket
}

# The top (the CLI and the daemon) talks to the service only, besides these helpers; any
# other import from the top is a violation even though it points down.
TOP_MAY_IMPORT = ["service.*", "settings", "errors", "render.*", "logs", "times",
                  "urls",  # text for people: the renderers redact URLs as logs escape text
                  "systemd",  # the daemon tells its supervisor how it is doing
                  "wpnotify"]  # the version

# Families inside the middle, and which families each may not import.
GROUPS: dict[str, list[str]] = {
    "state": ["state.*"],
    "sources": ["sources.*"],
    "kinds": ["kinds", "kind", "linkpayload"],
    "sending": ["sending.*"],
    "protocol": ["webmention", "pingback", "trackback", "weblogupdates"],
    "verify": ["verify"],
}
GROUP_MUST_NOT_IMPORT: dict[str, list[str]] = {
    "state": ["sources", "kinds", "sending", "protocol"],
    "sources": ["state", "kinds", "sending", "protocol"],
    "protocol": ["state", "sources", "sending"],
    "kinds": ["state", "sources", "sending"],
    "verify": ["state", "sources", "sending"],
}
# Single pairs (importer, imported) that must stay apart.
MUST_NOT_IMPORT: list[tuple[str, str]] = [
    ("sources.rest", "sources.xmlrpc"),
    ("sources.xmlrpc", "sources.rest"),
]

MAX_FUNCTION_LINES = 40
LONG_BECAUSE = "Long because"


# --- the graph ------------------------------------------------------------------------------

@dataclass
class Graph:
    """Modules (short names) and, for each, what it imports and on which line first."""

    files: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, dict[str, int]] = field(default_factory=dict)


def short_name(path: Path, package_dir: Path) -> str:
    """``wpnotify/state/sqlite.py`` -> ``state.sqlite``; a package's ``__init__`` is the
    package; the package itself is ``wpnotify``."""
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or PACKAGE


def load_graph(root: Path = ROOT) -> Graph:
    package_dir = root / PACKAGE
    graph = Graph()
    for path in sorted(package_dir.rglob("*.py")):
        graph.files[short_name(path, package_dir)] = path
    for name, path in graph.files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        here = _package_of(name, path)
        edges: dict[str, int] = {}
        for target, line in _imports(tree, here, graph.files):
            if target != name:
                edges.setdefault(target, line)
        graph.edges[name] = dict(sorted(edges.items()))
    return graph


def _package_of(name: str, path: Path) -> list[str]:
    """The package a module's relative imports start from, as full dotted parts."""
    parts = [PACKAGE] + ([] if name == PACKAGE else name.split("."))
    return parts if path.name == "__init__.py" else parts[:-1]


def _imports(tree: ast.AST, here: list[str],
             known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Every import of one of the package's modules, at any depth (module level, in
    functions, under ``if TYPE_CHECKING``: all are dependencies of the design)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found = _resolve(alias.name.split("."), known)
                if found is not None:
                    yield found, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                if not base:
                    continue
            else:
                base = []
            parts = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                # `from pkg import name`: the submodule when there is one, else pkg itself.
                found = _resolve(parts + [alias.name], known) if alias.name != "*" else None
                if found is None:
                    found = _resolve(parts, known)
                if found is not None:
                    yield found, node.lineno


def _resolve(parts: list[str], known: dict[str, Path]) -> str | None:
    if not parts or parts[0] != PACKAGE:
        return None
    name = ".".join(parts[1:]) or PACKAGE
    return name if name in known else None


# --- the table ------------------------------------------------------------------------------

def matches(name: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        stem = pattern[:-2]
        return name == stem or name.startswith(stem + ".")
    return name == pattern


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(matches(name, p) for p in patterns)


def layer_of(name: str) -> str | None:
    for layer, patterns in LAYERS.items():
        if matches_any(name, patterns):
            return layer
    return None


def groups_of(name: str) -> set[str]:
    return {group for group, patterns in GROUPS.items() if matches_any(name, patterns)}


# --- the checks -----------------------------------------------------------------------------

def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (a path that comes back to its start) per strongly connected part with more
    than one module (Tarjan's algorithm, iterative: no recursion limit to worry about)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[list[str]] = []
    for start in graph.edges:
        if start in index:
            continue
        work = [(start, iter(graph.edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    part = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        part.append(top)
                        if top == node:
                            break
                    if len(part) > 1:
                        parts.append(sorted(part))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph.edges.get(child, {}))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return [_cycle_in(graph, part) for part in sorted(parts)]


def _cycle_in(graph: Graph, part: list[str]) -> list[str]:
    """A shortest way from the part's first module back to itself (breadth first)."""
    members = set(part)
    start = part[0]
    came_from: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in graph.edges[node]:
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child in members and child not in came_from:
                came_from[child] = node
                queue.append(child)
    return part  # unreachable for a strongly connected part


def layer_violations(graph: Graph) -> list[str]:
    """Upward edges, imports from the top beyond what it may use, forbidden family and pair
    edges, and modules missing from the table: one line each, ``module:line ...``."""
    order = list(LAYERS)
    problems = [f"{name}: not in the layer table (add it to the layer table in "
                f"tests/architecture.py)" for name in graph.edges if layer_of(name) is None]
    for name, edges in graph.edges.items():
        mine = layer_of(name)
        if mine is None:
            continue
        for target, line in edges.items():
            theirs = layer_of(target)
            where = f"{name}:{line} imports {target}"
            if theirs is None:
                continue
            if order.index(theirs) < order.index(mine):
                problems.append(f"{where}: upward ({mine} -> {theirs})")
            elif mine == "top" and theirs != "top" and not matches_any(target, TOP_MAY_IMPORT):
                problems.append(f"{where}: the top imports only {', '.join(TOP_MAY_IMPORT)}")
            problems.extend(f"{where}: {group} must not import {banned}"
                            for group in sorted(groups_of(name))
                            for banned in GROUP_MUST_NOT_IMPORT.get(group, [])
                            if banned in groups_of(target))
            problems.extend(f"{where}: {a} must not import {b}" for a, b in MUST_NOT_IMPORT
                            if matches(name, a) and matches(target, b))
    return problems


@dataclass(frozen=True)
class LongFunction:
    path: str
    line: int
    name: str
    lines: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name} ({self.lines} lines)"


def long_functions(root: Path = ROOT, limit: int = MAX_FUNCTION_LINES) -> list[LongFunction]:
    """Functions and methods longer than ``limit`` lines (``def`` to last line) whose
    docstring gives no reason marked "Long because"."""
    found = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, node in _functions(tree, ""):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit and LONG_BECAUSE not in (ast.get_docstring(node) or ""):
                found.append(LongFunction(str(path.relative_to(root)), node.lineno, name,
                                          length))
    return found


def _functions(node: ast.AST, prefix: str
               ) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


# --- for a person ---------------------------------------------------------------------------

def report(root: Path = ROOT) -> tuple[str, bool]:
    """The graph, each module's layer, and every violation, as text; and whether all is
    well."""
    graph = load_graph(root)
    lines = ["import graph (module [layer] -> what it imports):"]
    for name, edges in graph.edges.items():
        lines.append(f"  {name} [{layer_of(name) or '?'}] -> {', '.join(edges) or '-'}")
    found_cycles = cycles(graph)
    lines.append(f"cycles: {len(found_cycles)}")
    lines.extend(f"  {' -> '.join(cycle)}" for cycle in found_cycles)
    problems = layer_violations(graph)
    lines.append(f"layer violations: {len(problems)}")
    lines.extend(f"  {problem}" for problem in problems)
    long = long_functions(root)
    lines.append(f"functions over {MAX_FUNCTION_LINES} lines without \"{LONG_BECAUSE}\": "
                 f"{len(long)}")
    lines.extend(f"  {function}" for function in long)
    return "\n".join(lines), not (found_cycles or problems or long)
