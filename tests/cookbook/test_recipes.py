"""Every recipe in cookbook/ runs as a user runs it: exit 0, its key output, no process left.

Recipes are found by glob, so a new recipe is covered as soon as it is added; give it an entry
in ``EXPECTED`` (the line that proves it showed what it promises) and, if it takes more than a
few seconds, in ``FAST`` only when it does not.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

COOKBOOK = Path(__file__).resolve().parents[2] / "cookbook"
RECIPES = sorted(p for p in COOKBOOK.glob("*.py") if not p.name.startswith("_"))
TIMEOUT_S = 240.0

EXPECTED: dict[str, tuple[str, ...]] = {
    "decorators_async.py": (
        "learned 40 runs of 'support-bot'",
        "flowchart LR",
        "search fan-out width (mean): 3.0",
        "P(next | check, visit 3): {'END': 1.0}",
        "hints of a new run: Hints(app='support-bot'",
    ),
    "engine_priority.py": (
        "vllm   engine saw app=quick-qa priority=",
        "(lower first)",
        "sglang engine saw app=quick-qa priority=",
        "(higher first)",
    ),
    "deadlines_lstf.py": ("policy lstf", "first admitted: chat-reply"),
    "prewarm_subprocess.py": (
        "prewarm signal: prewarm sandbox",
        "with prewarm: the stage waited",
        "without prewarm: the stage waited",
        "sandbox process running: False",
    ),
    "redis_replicas.py": ("graph on replica A:", "graph on replica B:", "both replicas agree"),
    "export_graphs.py": ("digraph", "flowchart", "wrote", "from the server:"),
    "langgraph_callback.py": ("learned 4 runs of 'research-assistant'", "-> vLLM priority"),
}
ARGS: dict[str, tuple[str, ...]] = {"langgraph_callback.py": ("--invokes", "4")}
NEEDS: dict[str, str] = {
    "langgraph_callback.py": "langchain_openai",
    "engine_priority.py": "openai",
}
"""Python packages a recipe needs beyond hermes-sdk (the test is skipped without them)."""
BINARIES: dict[str, str] = {"redis_replicas.py": "redis-server"}
"""Programs a recipe starts (the test is skipped when they are not installed)."""
FAST = {"decorators_async.py"}
"""Recipes that finish in a few seconds even on a loaded machine (the rest are marked slow)."""


def _tagged_pids(tag: str) -> list[int]:
    """Live processes whose environment carries ``HERMES_RECIPE_TAG=tag`` (the recipe's tree)."""
    marker = f"HERMES_RECIPE_TAG={tag}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            pids.append(int(entry.name))
    return pids


def _params() -> list[Any]:
    out = []
    for path in RECIPES:
        marks = [] if path.name in FAST else [pytest.mark.slow]
        out.append(pytest.param(path, marks=marks, id=path.stem))
    return out


def test_every_recipe_has_an_expectation() -> None:
    assert RECIPES, "no recipes found"
    missing = [p.name for p in RECIPES if p.name not in EXPECTED]
    assert not missing, f"add the key output lines of {missing} to EXPECTED"


@pytest.mark.parametrize("recipe", _params())
def test_recipe_runs(recipe: Path, tmp_path: Path) -> None:
    if recipe.name in NEEDS:
        pytest.importorskip(NEEDS[recipe.name])
    if recipe.name in BINARIES and shutil.which(BINARIES[recipe.name]) is None:
        pytest.skip(f"{BINARIES[recipe.name]} is not installed")
    tag = uuid.uuid4().hex
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    real_home = Path.home()
    env = {
        **os.environ,
        "HERMES_RECIPE_TAG": tag,
        "HOME": str(home),  # a recipe must not touch ~/.hermes
        "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(real_home / ".cache")),
        "XDG_CONFIG_HOME": os.environ.get("XDG_CONFIG_HOME", str(real_home / ".config")),
    }
    for name in ("HERMES_STORE", "HERMES_DISABLED", "HERMES_API_KEY"):
        env.pop(name, None)  # recipes run as in a fresh shell
    try:
        done = subprocess.run(
            [sys.executable, str(recipe), *ARGS.get(recipe.name, ())],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=cwd,
            env=env,
            check=False,
        )
    finally:
        left = _tagged_pids(tag)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    for line in EXPECTED.get(recipe.name, ()):
        assert line in done.stdout, f"{line!r} missing from:\n{done.stdout}"
    assert not left, f"{recipe.name} left processes behind: {left}"
    if recipe.name == "deadlines_lstf.py":  # every tight-deadline run before every loose one
        admitted = re.findall(r"^ +(chat-reply|batch-report)/", done.stdout, re.MULTILINE)
        assert admitted == ["chat-reply"] * 3 + ["batch-report"] * 3, admitted
    if recipe.name == "engine_priority.py":  # the shorter app is the more urgent on both engines
        first = dict(re.findall(r"(\w+ +new \S+) +run: first call's priority (\d+)", done.stdout))
        prio = {" ".join(k.split()): int(v) for k, v in first.items()}
        assert prio["vllm new quick-qa"] < prio["vllm new research"], prio
        assert prio["sglang new quick-qa"] > prio["sglang new research"], prio
    assert not any(cwd.iterdir()), f"{recipe.name} wrote into the working directory"
    assert not (home / ".hermes").exists(), f"{recipe.name} wrote into ~/.hermes"
