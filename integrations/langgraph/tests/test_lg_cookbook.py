"""The cookbook recipe runs as a user runs it and shows what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[3] / "cookbook" / "langgraph_callback.py"


@pytest.mark.slow
def test_langgraph_callback_recipe_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(RECIPE), "--invokes", "4"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "learned 4 runs of 'research-assistant'" in out
    assert "nodes: ['critique', 'plan', 'research', 'revise', 'write']" in out
    assert "research fan-out widths seen: [2, 3, 4]" in out
    assert "flowchart" in out and "-> vLLM priority" in out
