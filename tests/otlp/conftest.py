"""Reuse the real-server fixtures of tests/server (a scheduler on a loopback port)."""

from tests.server.conftest import http, pytest_configure, serve

__all__ = ["http", "pytest_configure", "serve"]
