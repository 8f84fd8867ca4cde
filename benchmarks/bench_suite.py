"""Workload-suite benchmark: `hermes bench` over both suites, results in benchmarks/results/suite/.

    .venv/bin/python benchmarks/bench_suite.py [--quick] [extra `hermes bench` options]

Runs the paper and light suites at loads 0.7, 0.85 and 0.95 over every policy (request-FCFS is
the baseline measured in the same run), the EDF-vs-LSTF deadline sweep and the PDGraph learning
report, prints the tables and writes results.json (with the exact command) plus PNG plots.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hermes_sdk.cli import main

OUT = Path(__file__).resolve().parent / "results" / "suite"
FULL = [
    "--suite", "all", "--loads", "0.7,0.85,0.95", "--seeds", "1",
    "--n-apps", "1200", "--warmup-apps", "250",
    "--tightness", "1.2,2.0", "--tightness-load", "0.95", "--jobs", "2",
]  # fmt: skip


if __name__ == "__main__":
    extra = sys.argv[1:]
    args = extra if "--quick" in extra else FULL + extra
    sys.argv = ["hermes", "bench", *args, "--out", os.path.relpath(OUT)]
    main()
