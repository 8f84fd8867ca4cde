"""`hermes keys new`: a fresh random API key, printed once, and the line for hermes.toml.

Only the salted sha256 of the key goes into the config file (``key_sha256``), so plaintext keys
need not live there; the key itself is shown once and not kept anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.markup import escape

from hermes_sdk.cli._app import app, console, err_console
from hermes_sdk.errors import ConfigError

KEY_PREFIX: Final = "hk_"
KEY_BYTES: Final = 32
"""Random bytes per key (256 bits), URL-safe base64 after the prefix."""

keys_app = typer.Typer(help="API keys for `hermes serve` (protected mode, rotation).")
app.add_typer(keys_app, name="keys")


def new_key() -> str:
    """A fresh random API key: ``hk_`` + 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def toml_entry(
    tenant: str, key_sha256: str, *, admin: bool = False, not_after: str | None = None
) -> str:
    """The ``[[api_keys]]`` table to paste into hermes.toml."""
    lines = ["[[api_keys]]", f"tenant = {json.dumps(tenant)}", f'key_sha256 = "{key_sha256}"']
    if admin:
        lines.append('role = "admin"')
    if not_after is not None:
        lines.append(f"not_after = {not_after}")
    return "\n".join(lines) + "\n"


def _not_after(value: str) -> str:
    """``value`` as a TOML offset date-time (UTC when no offset is given)."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--not-after wants an ISO date-time, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.isoformat().replace("+00:00", "Z")


@keys_app.command("new")
def new(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key belongs to.")],
    admin: Annotated[
        bool, typer.Option("--admin", help='role = "admin": may reload keys, read /metrics.')
    ] = False,
    not_after: Annotated[
        str | None,
        typer.Option("--not-after", help="Expiry, ISO date-time (UTC if no offset)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="hermes.toml to read key_salt from (default salt otherwise)."
        ),
    ] = None,
) -> None:
    """Print a fresh random key once, and the api_keys table (key_sha256) for hermes.toml."""
    from hermes_sdk.graph.records import check_name
    from hermes_sdk.server.config import DEFAULT_KEY_SALT, hash_api_key, load_config

    try:
        try:
            name = check_name(tenant, "tenant")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        salt = load_config(config).key_salt if config is not None else DEFAULT_KEY_SALT
        expiry = _not_after(not_after) if not_after is not None else None
    except ConfigError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    key = new_key()
    err_console.print(
        f"API key for tenant {name!r}: shown this once, not stored anywhere. Give it to the "
        "client (Authorization: Bearer ...) and paste the table below into hermes.toml; then "
        "`kill -HUP` the server or POST /v1/admin/reload with an admin key.",
        soft_wrap=True,
    )
    console.print(key, soft_wrap=True, highlight=False, markup=False)
    console.print(
        toml_entry(name, hash_api_key(key, salt), admin=admin, not_after=expiry),
        end="",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
