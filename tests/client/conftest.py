"""The client tests run against the real server fixtures of tests/server."""

from server.conftest import http, pytest_configure, serve

__all__ = ["http", "pytest_configure", "serve"]
