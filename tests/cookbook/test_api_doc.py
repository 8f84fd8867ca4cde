"""docs/api.md documents every public name and every CLI command (so it cannot silently drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hermes_sdk
from hermes_sdk.cli import app

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _documented() -> str:
    return API_MD.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", hermes_sdk.__all__)
def test_every_core_name_is_documented(name: str) -> None:
    assert f"`{name}" in _documented() or f"{name}(" in _documented(), name


def test_every_langgraph_name_is_documented() -> None:
    hermes_langgraph = pytest.importorskip("hermes_langgraph")
    text = _documented()
    missing = [n for n in hermes_langgraph.__all__ if not re.search(rf"\b{re.escape(n)}\b", text)]
    assert not missing, f"document {missing} in docs/api.md"


def test_every_cli_command_and_flag_is_documented() -> None:
    import typer.main

    text = _documented()
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    assert commands
    for name, command in commands.items():
        subs = getattr(command, "commands", None) or {"": command}
        for sub_name, sub in subs.items():
            full = f"hermes {name} {sub_name}".strip()
            assert f"### `{full}" in text or f"`{full}`" in text, full
            for param in sub.params:
                flags = [o for o in getattr(param, "opts", []) if o.startswith("--")]
                if flags and flags[0] != "--help":
                    assert any(f in text for f in flags), f"{full} {flags[0]}"
