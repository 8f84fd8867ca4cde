"""`hermes version`."""

from __future__ import annotations

import hermes_sdk
from hermes_sdk.cli._app import app, console


@app.command()
def version() -> None:
    """Print the installed hermes-sdk version."""
    console.print(hermes_sdk.__version__)
