"""Reliability and security report: fuzzing, load, faults, tenant isolation, hostile input.

Run: ``.venv/bin/python benchmarks/bench_reliability.py [--quick] [--plot-only] [--only LABEL]``
(``--only``: re-run some steps and merge them into the report, listed under ``reruns``). Every
scenario
runs real
processes on loopback (``hermes serve`` and ``hermes sim-engine`` children, ``redis-server``)
through the same code as ``tests/reliability`` (which runs them smaller), and is one entry of
``benchmarks/results/reliability.json``: ``{"command", "scenarios": [{"name", "passed", ...}]}``,
drawn in ``reliability.png``.

The exposure audit calls every registered route with no key, a wrong key, an expired key and
another tenant's key (only /healthz, the static page/assets/OpenAPI document and a public
/metrics may answer 2xx); key rotation removes a key under load (its stream finishes, its waiting
acquire gets 401, the other waiters keep their order, kept keys see no error).

Load is 500 concurrent apps x 20 units through the scheduler (events + acquire/release) and
through the gateway (sim engine); its added latency is measured twice: idle, against a same-run
baseline (``GET /healthz`` for acquire, the engine called directly for the gateway), and under
the full load (client time minus the server-reported queue wait and, for the gateway, the
engine's own time per request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reliability import exposure, faults, inputs, load, otlp_input, replicas, security  # noqa: E402
from reliability.fuzz import (  # noqa: E402
    GATEWAY_OPERATIONS,
    Case,
    cases,
    openapi_operations,
    problem,
    send,
)
from reliability.harness import ThreadedServer  # noqa: E402

from hermes_sdk.server import BackendConfig, ServerConfig  # noqa: E402
from hermes_sdk.sim.engine import SimEngineConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"
FUZZ_KEY = "bench-fuzz-key-42"


def fuzz(tmp: Path, examples: int) -> dict[str, Any]:
    """Hypothesis-generated and mutated requests to every OpenAPI operation and the gateway."""
    config = ServerConfig(
        port=0,
        store_url=f"sqlite:///{tmp}/fuzz.db",
        backends={"gpu": BackendConfig(max_inflight=1_000_000, lease_s=5.0), "r1": BackendConfig()},
        acquire_timeout_s=0.3,
    ).with_api_keys({FUZZ_KEY: "fuzzer"})
    server = ThreadedServer(
        config, engine=SimEngineConfig(step_base_s=0.0005, min_output_tokens=1, max_output_tokens=4)
    )
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    per_op: Counter[str] = Counter()
    relayed_5xx: list[str] = []

    def run(case: Case) -> None:
        status, ctype, body = send(server.url, case)
        statuses[status] += 1
        if status >= 500 and ctype.startswith("relayed;"):
            relayed_5xx.append(f"{case.method} {case.path} {case.body!r:.120}: {body[:120]!r}")
        per_op[f"{case.method} {case.path.split('?')[0]}"] += 1
        why = problem(status, ctype, body)
        if why is not None and len(problems) < 20:
            problems.append(f"{case.method} {case.path}: {why}")

    t0 = time.perf_counter()
    try:
        for ops, n in ((openapi_operations(), examples), (GATEWAY_OPERATIONS, examples // 2)):
            test = settings(
                max_examples=n,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(given(case=cases(ops, FUZZ_KEY))(run))
            test()
    finally:
        server.close()
    five_xx = sum(n for s, n in statuses.items() if s >= 500) - len(relayed_5xx)
    return {
        "name": "fuzz_openapi_and_gateway",
        "passed": not problems and five_xx == 0,
        "requests": sum(statuses.values()),
        "operations": len(openapi_operations()) + len(GATEWAY_OPERATIONS),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "five_xx": five_xx,
        "engine_5xx_relayed": len(relayed_5xx),
        "engine_5xx_examples": relayed_5xx[:3],
        "uncoded_errors": problems,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }


def _merge(old: dict[str, Any], new: dict[str, Any], only: list[str]) -> dict[str, Any]:
    """``old`` with ``new``'s scenarios replacing same-named ones (new names appended)."""
    fresh = {s["name"]: s for s in new["scenarios"]}
    scenarios = [fresh.pop(s["name"], s) for s in old["scenarios"]] + list(fresh.values())
    reruns = [*old.get("reruns", []), {"only": only, "command": new["command"], **new["machine"]}]
    return {
        **old,
        "passed": all(s["passed"] for s in scenarios),
        "scenarios": scenarios,
        "reruns": reruns,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller load and fuzz runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw the PNG next to --out from that JSON"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="LABEL",
        help="run only the steps whose label contains LABEL (repeatable); their results replace "
        "the same-named scenarios of the existing --out report",
    )
    args = parser.parse_args()
    png = args.out.with_suffix(".png")
    if args.plot_only:
        from plotting import redraw

        redraw(plot, args.out, png)
        return
    logging.basicConfig(level=logging.ERROR)
    quick = args.quick
    apps, units = (100, 5) if quick else (500, 20)
    examples = 300 if quick else 2000
    huge_n = 150_000 if quick else 1_000_000
    console = Console()
    scenarios: list[dict[str, Any]] = []
    steps: list[tuple[str, Callable[[Path], Awaitable[dict[str, Any]] | dict[str, Any]]]] = [
        ("fuzz", lambda d: fuzz(d, examples)),
        ("load scheduler", lambda d: load.scenario_scheduler_load(d, n_apps=apps, n_units=units)),
        ("load gateway", lambda d: load.scenario_gateway_load(d, n_apps=apps, n_units=units)),
        (
            "kill/restart",
            lambda d: faults.scenario_kill_restart(
                d, n_apps=50 if quick else 200, kill_after_s=1.5
            ),
        ),
        ("redis restart", lambda d: faults.scenario_redis_restart(d, persist=True)),
        ("redis restart empty", lambda d: faults.scenario_redis_restart(d, persist=False)),
        # three `hermes serve` replicas, one global admission order (issue 30)
        ("replicas load", lambda d: replicas.scenario_replicas_load(d, clients=64 - 40 * quick)),
        ("replica killed", replicas.scenario_replica_killed_with_waiters),
        ("upstream faults", faults.scenario_upstream_faults),
        ("webhook down", faults.scenario_webhook_down),
        ("clock jumps", faults.scenario_clock_jumps),
        ("slow client", faults.scenario_slow_client),
        ("tenant matrix", security.scenario_tenant_matrix),
        ("gateway tenants", security.scenario_gateway_tenants),
        ("keys constant time", lambda d: security.scenario_key_compare()),
        ("secrets", security.scenario_secrets_at_rest_and_logs),
        ("secrets in logs", security.scenario_secrets_in_process_logs),
        ("forged priority", security.scenario_forged_priority),
        ("size/rate limits", security.scenario_limits),
        # exposure: protected mode, every route without/with a wrong/expired/foreign key, rotation
        ("protected mode", exposure.scenario_protected_mode),
        ("exposure audit", exposure.scenario_audit),
        (
            "exposure audit, public metrics",
            lambda d: exposure.scenario_audit(d, metrics_public=True),
        ),
        ("key rotation", lambda d: exposure.scenario_rotation(d, n_load=8 if quick else 32)),
        ("SIGHUP reload", exposure.scenario_sighup),
        ("input limits", lambda d: inputs.scenario_input_limits(d, huge_n=huge_n)),
        ("otlp hostile input", lambda d: otlp_input.scenario_otlp_hostile(d, huge_n=huge_n)),
    ]
    if args.only:
        steps = [(label, step) for label, step in steps if any(o in label for o in args.only)]
    for label, step in steps:
        console.print(f"[bold]{label}[/] ...")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                out = step(Path(tmp))
                result: dict[str, Any] = (
                    asyncio.run(out) if asyncio.iscoroutine(out) else cast(dict[str, Any], out)
                )
            except Exception as exc:  # a crashing scenario is a failed scenario, reported
                result = {"name": label, "passed": False, "error": repr(exc)}
        result.setdefault("scenario_s", round(time.perf_counter() - t0, 2))
        scenarios.append(result)
    table = Table(title="hermes reliability")
    table.add_column("scenario")
    table.add_column("passed")
    table.add_column("figures")
    skip = {"name", "passed", "errors", "leaks", "uncoded_errors", "refused_not_4xx", "violations"}
    for s in scenarios:
        figures = ", ".join(
            f"{k}={v}" for k, v in s.items() if k not in skip and isinstance(v, (int, float, str))
        )
        table.add_row(s["name"], "[green]yes[/]" if s["passed"] else "[red]NO[/]", figures[:240])
    console.print(table)
    report = {
        "command": "python benchmarks/bench_reliability.py"
        + (" --quick" if quick else "")
        + "".join(f" --only '{o}'" for o in args.only or []),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "passed": all(s["passed"] for s in scenarios),
        "scenarios": scenarios,
    }
    if args.only and args.out.exists():  # merge the re-run steps into the full report
        report = _merge(json.loads(args.out.read_text()), report, args.only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, png)
    console.print(f"wrote {args.out} and {png}")


# Counts shown next to each scenario, when it has them (lists count their entries): the work
# done first, then what must be zero.
KEY_COUNTS = (
    "requests", "acquires", "units", "acknowledged", "acknowledged_paths", "cells",
    "lost_paths", "lost_acknowledged", "duplicate_grants", "engine_duplicates", "engine_missing",
    "non_200", "stuck_apps", "five_xx", "leaks", "leaked", "refused_not_4xx", "uncoded_errors",
    "load_requests", "violations",
)  # fmt: skip
PASS, FAIL = "#2ca02c", "#d62728"


def _counts(scenario: dict[str, Any]) -> str:
    if "error" in scenario:
        return str(scenario["error"])[:60]
    shown = []
    for key in KEY_COUNTS:
        value = scenario.get(key)
        if isinstance(value, list):
            value = len(value)
        if isinstance(value, int) and not isinstance(value, bool):
            shown.append(f"{key} {value:,}")
    return ",  ".join(shown[:4])


def plot(report: dict[str, Any], path: Path) -> None:
    """Every scenario passed or failed (with its wall time and key counts), the fuzzer's answers
    by status, and the load scenarios' added latency idle vs under the full load."""
    from plotting import grouped_bars, pyplot, save

    scenarios = report["scenarios"]
    passed = sum(bool(s["passed"]) for s in scenarios)
    fig, axes = pyplot().subplot_mosaic(
        [["pass", "counts"], ["fuzz", "fuzz"], ["load", "load"]],
        figsize=(13, 13),
        height_ratios=(2.2, 1, 1),
        width_ratios=(1.25, 1),
    )
    fig.suptitle(
        f"hermes reliability and security: {passed}/{len(scenarios)} scenarios passed "
        "(real processes on loopback)",
        fontsize=11,
    )
    pass_ax, counts_ax, fuzz_ax, load_ax = (axes[k] for k in ("pass", "counts", "fuzz", "load"))
    grouped_bars(
        pass_ax,
        [s["name"] for s in scenarios],
        {"wall time": [max(float(s.get("scenario_s", 0.01)), 0.01) for s in scenarios]},
        log=True,
        axis_label="scenario wall time (s, log)",
        title="Scenarios: green = passed, red = failed",
        labels={
            "wall time": [
                f"{'pass' if s['passed'] else 'FAIL'}, {s.get('scenario_s', 0):g} s"
                for s in scenarios
            ]
        },
        bar_colors={"wall time": [PASS if s["passed"] else FAIL for s in scenarios]},
        legend=None,
    )
    pass_ax.set_xlim(right=pass_ax.get_xlim()[1] * 4)  # room for "pass, 43.18 s"
    counts_ax.set_ylim(pass_ax.get_ylim())
    counts_ax.set_axis_off()
    counts_ax.set_title("key counts (lost / duplicated / leaked must be 0)", fontsize=10)
    for i, s in enumerate(scenarios):
        counts_ax.text(0.0, i, _counts(s), va="center", fontsize=7.5)
    by_name = {s["name"]: s for s in scenarios}
    fuzz = by_name.get("fuzz_openapi_and_gateway")
    if fuzz and "status_counts" in fuzz:
        codes = list(fuzz["status_counts"])
        relayed = fuzz.get("engine_5xx_relayed", 0)
        grouped_bars(
            fuzz_ax,
            codes,
            {"responses": [fuzz["status_counts"][c] for c in codes]},
            horizontal=False,
            axis_label="responses",
            title=f"Fuzzing: {fuzz['requests']:,} generated requests to {fuzz['operations']} "
            f"operations, answers by HTTP status ({fuzz['five_xx']} own 5xx, "
            f"{relayed} relayed from the engine)",
            bar_colors={"responses": [FAIL if c.startswith("5") else PASS for c in codes]},
            legend=None,
        )
        fuzz_ax.set_xlabel("HTTP status")
    else:
        fuzz_ax.set_axis_off()
    sched, gw = by_name.get("load_scheduler", {}), by_name.get("load_gateway", {})
    rows = [
        (f"scheduler acquire ({sched.get('apps')} apps x {sched.get('units_per_app')} units)",
         sched, ("idle_added_p50_ms", "idle_added_p99_ms", "acquire_added_p50_ms",
                 "acquire_added_p99_ms")),
        (f"gateway request ({gw.get('apps')} apps x {gw.get('units_per_app')} units)",
         gw, ("idle_added_p50_ms", "idle_added_p99_ms", "added_p50_ms", "added_p99_ms")),
    ]  # fmt: skip
    rows = [row for row in rows if row[1]]
    if rows:
        names = ("idle p50", "idle p99", "under load p50", "under load p99")
        grouped_bars(
            load_ax,
            [label for label, _, _ in rows],
            {
                n: [s.get(k) for _, s, keys in rows for k in keys[i : i + 1]]
                for i, n in enumerate(names)
            },
            log=True,
            axis_label="added latency (ms, log): idle = minus the same-run baseline, "
            "under load = minus the queue wait",
            title="Load: latency hermes adds, idle and under the full load",
            legend="outside",
        )
    else:
        load_ax.set_axis_off()
    save(fig, path)


if __name__ == "__main__":
    main()
