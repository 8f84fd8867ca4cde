"""``hermes serve`` with one module constant changed, for ``bench_server_live``'s A/B modes of
settings that have no command-line flag. Usage: ``python benchmarks/live_variant.py
MODULE:NAME=VALUE serve ...`` (VALUE an int, or a float with a dot), e.g.
``hermes_sdk.server.run_events:APPLY_CHUNK=1000000`` (each events batch applied in one loop
turn, as before the chunks); ``sys:switchinterval=SECONDS`` sets the GIL's switch interval."""

from __future__ import annotations

import importlib
import sys


def apply(setting: str) -> None:
    """Apply one ``MODULE:NAME=VALUE`` (or ``sys:switchinterval=SECONDS``) setting."""
    target, value = setting.split("=", 1)
    if target == "sys:switchinterval":  # the GIL's switch interval (seconds)
        sys.setswitchinterval(float(value))
        return
    module, name = target.split(":", 1)
    mod = importlib.import_module(module)
    getattr(mod, name)  # fails on a name the module does not have
    setattr(mod, name, float(value) if "." in value else int(value))


def main() -> None:
    apply(sys.argv[1])
    sys.argv = ["hermes", *sys.argv[2:]]
    from hermes_sdk.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
