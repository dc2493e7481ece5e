"""The package stays lint-clean and fully typed (ruff and mypy --strict, as configured in
pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("tool", [["ruff", "check", "wpnotify", "tests", "wordpress", "bench"],
                                  ["mypy"]])
def test_static_checks_pass(tool: list[str]) -> None:
    if shutil.which(tool[0], path=str(Path(sys.executable).parent)) is None:
        pytest.fail(f"{tool[0]} is not installed; run scripts/setup")
    proc = subprocess.run([str(Path(sys.executable).parent / tool[0]), *tool[1:]], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
