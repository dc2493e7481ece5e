"""The shape of the package, checked from its source: the import graph has no cycle and no
upward edge against the layer table in tests/architecture.py (cli/daemon -> service ->
{sources, kinds, state} -> {http seam, settings}), every module is in that table, and no
function is longer than 40 lines unless it says why.

The convention for a long function: its docstring carries a reason marked "Long because", e.g.

    def _deliver_all(...) -> Tally:
        \"\"\"... Long because the loop's three waits (a slot, a result, the feed) share
        state that splitting would pass around in every call.\"\"\"

Length is counted as ``ast`` gives it: from the ``def`` line to the function's last line
(its docstring and comments included). scripts/import-graph prints the same findings with the
whole graph; edit the layer table in tests/architecture.py when modules move.
"""

from __future__ import annotations

from architecture import (
    LONG_BECAUSE,
    MAX_FUNCTION_LINES,
    cycles,
    layer_violations,
    load_graph,
    long_functions,
)


def test_the_import_graph_has_no_cycle() -> None:
    found = cycles(load_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_imports_point_down_the_layers_and_every_module_is_in_the_table() -> None:
    problems = layer_violations(load_graph())
    assert not problems, ("imports against the layer table (tests/architecture.py):\n"
                          + "\n".join(problems))


def test_no_function_is_long_without_a_reason() -> None:
    found = long_functions()
    assert not found, (f"functions over {MAX_FUNCTION_LINES} lines whose docstring gives no "
                       f"reason marked \"{LONG_BECAUSE}\":\n" + "\n".join(map(str, found)))
