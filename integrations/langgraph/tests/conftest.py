"""Every hermes-langgraph test starts from a fresh, enabled, in-memory (embedded) configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hermes_sdk.instrument as hi


@pytest.fixture(autouse=True)
def fresh_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HERMES_DISABLED", raising=False)
    monkeypatch.setenv("HERMES_STORE", "memory://")
    hi.configure(store="memory://", enabled=True)
    yield
    hi.configure(store="memory://", enabled=True)
