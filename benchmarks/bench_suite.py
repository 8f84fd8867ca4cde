"""Workload-suite benchmark: `hermes bench` over both suites, results in benchmarks/results/suite/.

    .venv/bin/python benchmarks/bench_suite.py [--quick] [extra `hermes bench` options]

Runs `hermes bench`'s steady-state defaults: the paper and light suites at loads 0.7, 0.85 and
0.95, 3 seeds of 12000 measured apps (1200 warm-up) per point, over every default policy
(request-FCFS is the baseline measured in the same run, ratios carry paired 95% CIs), the
deadline-tightness sweep and the PDGraph learning report; prints the tables and writes
results.json (with the exact command and the grid's wall time) plus PNG plots.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hermes_sdk.cli import main

OUT = Path(__file__).resolve().parent / "results" / "suite"
FULL = ["--jobs", "2"]  # the defaults are the steady-state grid


if __name__ == "__main__":
    extra = sys.argv[1:]
    args = extra if "--quick" in extra else FULL + extra
    sys.argv = ["hermes", "bench", *args, "--out", os.path.relpath(OUT)]
    main()
