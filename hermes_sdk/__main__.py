"""`python -m hermes_sdk` runs the `hermes` command line (used to start child servers)."""

from hermes_sdk.cli import main

main()
