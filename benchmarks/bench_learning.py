"""Embedded learning under a soak: runs/s produced, stored and learned per store, peak RSS growth
and runs lost at a clean exit, with the one-run-per-write path measured as the baseline.

Run: ``.venv/bin/python benchmarks/bench_learning.py [--runs 80000] [--quick] [--plot-only]``.
Writes ``benchmarks/results/learning.json`` and ``learning.png``. Every store is measured in a
fresh child process (its own RSS), the shape of issue #29's soak: one process, sync functions
decorated ``@hermes.llm`` and ``@hermes.tool``, 1-12 (llm, tool) iterations per run, five apps,
the default queue bound. Per store (SQLite file, memory, a throwaway redis-server):

- ``soak``: the app produces ``--runs`` runs as fast as it can while the learner stores and
  learns them, then exits *without* ``flush()``: produced runs/s (the app's loop), learned
  runs/s over the whole soak (first run to everything stored), peak RSS growth over the RSS
  before the first run, drops, and runs lost at exit (counted in the store after the child
  exited; memory: read from the counters after the exit drain);
- ``soak_backpressure``: the same soak with ``HERMES_LEARN_BACKPRESSURE=1`` (``submit()`` sleeps
  200 us at a time, at most 25 times, while the queue is over 1/8 of its bound): the app slowed
  to the learner's pace instead of runs dropped;
- ``soak_process``: the same soak with ``HERMES_LEARNER=process`` (a child process stores and
  learns, sends its graphs back): peak RSS growth is the app's plus the child's (each over its
  RSS after the warm-up; the sum of two peaks, an upper bound), and the app-side CPU per run of
  the feeder thread (flatten + marshal + pipe write) and of the receiver thread (graph installs
  and rank-table refreshes), read from ``/proc/self/task`` right after the loop;
- ``drain``: ``--drain`` runs queued while learning is held, then released: stored and learned
  runs/s of the learner alone (what bounds the exit drain), and the exit time a full default
  queue would need at that rate;
- ``drain_process``: the same with ``HERMES_LEARNER=process``: the child alone (started and
  answering before the clock starts; one frame of every queued run), wall runs/s until
  ``flush()`` returns (every run stored, learned and its graphs installed in the app);
- ``baseline``: the same paths stored and learned one write per run (``GraphRegistry.observe``,
  what every run cost before batching), on the same store kind, in the same child.

Every 8th soak run's first llm call also times ``current_hints()`` (the learner folding runs in
meanwhile): its p50 and p99 per store.

Targets (issue #29): learned >= 10,000 runs/s on SQLite, peak RSS growth <= 50 MiB, 0 lost,
``current_hints()`` p50 <= 20 us while graphs learn.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "learning.json"
PNG = RESULTS.with_suffix(".png")
TARGET_RUNS_S = 10_000
TARGET_RSS_MIB = 50
TARGET_HINTS_P50_US = 20
HINT_EVERY = 8
"""Every 8th run's first llm call asks ``current_hints()`` (timed) while the learner learns."""
APPS = [f"app{i}" for i in range(5)]
SOAKS = (
    ("soak", False, "thread", 1),
    ("soak_backpressure", True, "thread", 4),
    ("soak_process", False, "process", 5),
)
"""(result key, backpressure, learner, Redis db) of each soak."""
MODE_LABELS = {
    "soak": "thread",
    "soak_backpressure": "thread + backpressure",
    "soak_process": "process",
}


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mib() -> float:
    """This process's own peak (``VmHWM``): ``ru_maxrss`` carries the parent's across ``exec``."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _soak_child(store_url: str, runs: int, out_path: str) -> None:
    """Produce ``runs`` runs, record the counters, then exit cleanly without flush()."""
    import atexit

    report: dict[str, Any] = {}

    def at_exit() -> None:  # registered before hermes: runs after its exit drain
        from hermes_sdk.instrument import runtime as rt

        c = rt.current_runtime().counters()
        process = report.pop("process", None)
        if process is not None:
            p = process.stats()
            child_growth = p.child_peak_rss_mib - report["child_rss_before_mib"]
            child_cpu_s = p.child_cpu_s - report["child_cpu_before_s"]
            report.update(
                child_cpu_s=child_cpu_s,
                child_cpu_us_per_run=1e6 * child_cpu_s / max(p.completed - 1, 1),
                child_peak_rss_mib=p.child_peak_rss_mib,
                child_peak_rss_growth_mib=child_growth,
                app_peak_rss_growth_mib=report["peak_rss_growth_mib"],
                peak_rss_growth_mib=report["peak_rss_growth_mib"] + child_growth,
                learner_process_failures=p.failures,
                graph_installs=p.graph_installs,
            )
        report.update(
            stored_and_learned=c.runs_completed,
            backpressure_sleeps=c.learn_backpressure_sleeps,
            failed=c.runs_failed_to_record,
            dropped=c.runs_dropped,
            pending_after_exit=c.runs_pending,
            peak_queue_bytes=c.peak_pending_bytes,
            max_queue_bytes=c.max_pending_bytes,
            learned_all_s=time.perf_counter() - report["t0"],
        )
        Path(out_path).write_text(json.dumps(report), encoding="utf-8")

    atexit.register(at_exit)
    import hermes_sdk as hermes

    hermes.configure(store=store_url)

    hint_s: list[float] = []

    @hermes.llm(backend="model")
    def think(i: int, ask: bool = False) -> dict[str, object]:
        if ask:  # what an app asking for hints pays, while the learner folds runs in
            t0 = time.perf_counter()
            hermes.current_hints()
            hint_s.append(time.perf_counter() - t0)
        return {"usage": {"prompt_tokens": 300 + i, "completion_tokens": 40 + i}}

    @hermes.tool
    def act(i: int) -> int:
        return i

    rng = random.Random(0)
    with hermes.run("warmup"):  # opens the store and the registry before measuring
        think(0)
    hermes.flush(10)
    from hermes_sdk.instrument import runtime as rt

    process = rt.current_runtime().process
    child0 = process.stats() if process is not None else None
    rss0 = _rss_mib()
    peak0 = _peak_rss_mib()
    report["t0"] = t0 = time.perf_counter()
    for r in range(runs):
        with hermes.run(APPS[r % 5]):
            for i in range(rng.randint(1, 12)):
                think(i, i == 0 and r % HINT_EVERY == 0)
                act(i)
    produce_s = time.perf_counter() - t0
    report["thread_cpu_s"] = _thread_cpu_s()
    if process is not None and child0 is not None:
        report["child_rss_before_mib"] = child0.child_rss_mib
        report["child_cpu_before_s"] = child0.child_cpu_s
        report["process"] = process  # read at exit, after the child's last answer
    hint_s.sort()
    report.update(
        runs=runs,
        produce_s=produce_s,
        produced_runs_s=runs / produce_s,
        rss_before_mib=rss0,
        peak_rss_mib=_peak_rss_mib(),
        peak_rss_growth_mib=_peak_rss_mib() - max(rss0, 0.0),
        peak_rss_was_before_mib=peak0,
        current_hints_calls=len(hint_s),
        current_hints_p50_us=1e6 * hint_s[len(hint_s) // 2] if hint_s else None,
        current_hints_p99_us=1e6 * hint_s[int(len(hint_s) * 0.99)] if hint_s else None,
    )


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of this process's hermes threads so far, by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if not thread.name.startswith("hermes-") or thread.native_id is None:
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[thread.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _drain_child(store_url: str, runs: int, baseline_url: str, out_path: str) -> None:
    """Queue ``runs`` runs with learning held, release, time the drain; then the baseline."""
    import hermes_sdk as hermes
    from hermes_sdk.graph import GraphRegistry
    from hermes_sdk.graph.records import RunPath
    from hermes_sdk.instrument import runtime as rt
    from hermes_sdk.store import open_store

    hermes.configure(store=store_url, learn_queue_bytes=1024 * 2**20)
    runtime = rt.current_runtime()
    runtime.registry()  # open (and replay) before timing
    process = runtime.process
    child_cpu0 = 0.0
    if process is not None:  # the child alone: started and answering before timing
        assert hermes.flush(60) and process.stats().started
        child_cpu0 = process.stats().child_cpu_s
    gate = threading.Event()
    inner = runtime.learn_many if process is None else process.handle
    kept: list[RunPath] = []

    def held(paths: list[RunPath]) -> None:
        gate.wait()
        inner(paths)

    runtime.learner.handle = held

    @hermes.llm(backend="model")
    def think(i: int) -> dict[str, object]:
        return {"usage": {"prompt_tokens": 300 + i, "completion_tokens": 40 + i}}

    @hermes.tool
    def act(i: int) -> int:
        return i

    rng = random.Random(1)
    for r in range(runs):
        with hermes.run(APPS[r % 5]) as run:
            for i in range(rng.randint(1, 12)):
                think(i)
                act(i)
        if len(kept) < 3_000 and run.path is not None:
            kept.append(run.path)
    queued_bytes = runtime.counters().pending_bytes
    t0, cpu0 = time.perf_counter(), time.process_time()
    gate.set()
    assert hermes.flush(600)
    drain_s, drain_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    c = runtime.counters()
    batches = runtime.learner.stats().batches
    if process is not None:  # the app's CPU is not the learner's: no baseline either
        doc = {
            "runs": runs,
            "learner": "process",
            "drain_s": drain_s,
            "stored_and_learned": c.runs_completed,
            "drain_runs_s": c.runs_completed / drain_s,
            "queued_bytes_per_run": queued_bytes / runs,
            "child_peak_rss_mib": process.stats().child_peak_rss_mib,
            "child_cpu_us_per_run": 1e6 * (process.stats().child_cpu_s - child_cpu0) / runs,
        }
        Path(out_path).write_text(json.dumps(doc), encoding="utf-8")
        return
    # baseline: the same kind of store, one durable write and one observe per run
    base = GraphRegistry(open_store(baseline_url))
    t0, cpu0 = time.perf_counter(), time.process_time()
    for path in kept:
        base.observe(path)
    base_s, base_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    base.close()
    doc = {
        "runs": runs,
        "drain_s": drain_s,
        "stored_and_learned": c.runs_completed,
        "drain_runs_s": c.runs_completed / drain_s,
        "drain_runs_per_cpu_s": c.runs_completed / drain_cpu_s,
        "drain_batches": batches,
        "queued_bytes_per_run": queued_bytes / runs,
        "baseline_runs": len(kept),
        "baseline_runs_s": len(kept) / base_s,
        "baseline_runs_per_cpu_s": len(kept) / base_cpu_s,
    }
    Path(out_path).write_text(json.dumps(doc), encoding="utf-8")


# -- parent -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on loopback (no persistence), as in tests/conftest.py."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(400):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.025)
        client.close()

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def llen(self, db: int) -> int:
        import redis

        client = redis.Redis(port=self.port, db=db)
        try:
            return int(client.llen("hermes:paths"))  # type: ignore[arg-type]
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _child(
    args: list[str], *, backpressure: bool = False, learner: str = "thread"
) -> dict[str, Any]:
    env = {
        **os.environ,
        "HERMES_LEARN_BACKPRESSURE": "1" if backpressure else "0",
        "HERMES_LEARNER": learner,
    }
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        proc = subprocess.run(
            [sys.executable, __file__, *args, "--out", out],
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
        doc: dict[str, Any] = json.loads(Path(out).read_text(encoding="utf-8"))
        doc["exit_warnings"] = [ln for ln in proc.stderr.splitlines() if "hermes:" in ln][:5]
        return doc
    finally:
        os.unlink(out)


def _sqlite_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM paths WHERE app != 'warmup'").fetchone()[0])
    finally:
        conn.close()


def measure(
    runs: int,
    drain: int,
    stores: list[str],
    synchronous: str = "full",
    modes: tuple[str, ...] = tuple(m[0] for m in SOAKS),
) -> dict[str, Any]:
    """Every store's soaks (``modes``) and drains (``drain`` 0: none), each in a fresh child
    (SQLite URLs with ``synchronous``)."""
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sync = f"?synchronous={synchronous}"
        server = RedisServer(work) if "redis" in stores else None
        try:
            for kind in stores:
                if kind == "sqlite":
                    soak_url = f"sqlite:///{work}/soak.db{sync}"
                    drain_url = f"sqlite:///{work}/drain.db{sync}"
                    base_url = f"sqlite:///{work}/b.db{sync}"
                elif kind == "memory":
                    soak_url = drain_url = base_url = "memory://"
                else:
                    assert server is not None
                    soak_url, drain_url, base_url = server.url(1), server.url(2), server.url(3)
                row: dict[str, Any] = {}
                for key, backpressure, learner, db in SOAKS:
                    if key not in modes:
                        continue
                    if kind == "sqlite":
                        soak_url = f"sqlite:///{work}/{key}.db{sync}"
                    elif kind == "redis":
                        assert server is not None
                        soak_url = server.url(db)
                    on = "on" if backpressure else "off"
                    print(
                        f"{kind}: soak of {runs:,} runs, learner {learner}, backpressure {on} ...",
                        flush=True,
                    )
                    soak = _child(
                        ["--soak", soak_url, str(runs)], backpressure=backpressure, learner=learner
                    )
                    if kind == "sqlite":
                        stored = _sqlite_rows(work / f"{key}.db")
                    elif kind == "redis":
                        assert server is not None
                        stored = server.llen(db) - 1  # minus warm-up
                    else:
                        stored = soak["stored_and_learned"] - 1
                    soak["backpressure"] = backpressure
                    soak["learner"] = learner
                    soak["stored_after_exit"] = stored
                    soak["lost_at_exit"] = soak["runs"] - stored - soak["dropped"]
                    soak["learned_runs_s"] = (soak["stored_and_learned"] - 1) / soak[
                        "learned_all_s"
                    ]
                    cpu = soak.get("thread_cpu_s", {})
                    for name, field in (
                        ("hermes-learner", "feeder_cpu_us_per_run"),
                        ("hermes-learner-receiver", "receiver_cpu_us_per_run"),
                    ):
                        if name in cpu:  # the thread learner's "feeder" is the learner itself
                            soak[field] = 1e6 * cpu[name] / soak["runs"]
                    row[key] = soak
                if not drain:
                    rows[kind] = row
                    continue
                print(f"{kind}: drain of {drain:,} queued runs + baseline ...", flush=True)
                row["drain"] = _child(["--drain-child", drain_url, str(drain), base_url])
                if kind == "sqlite":
                    drain_url = f"sqlite:///{work}/drain_process.db{sync}"
                elif kind == "redis":
                    assert server is not None
                    drain_url = server.url(6)
                print(f"{kind}: drain of {drain:,} queued runs, learner process ...", flush=True)
                row["drain_process"] = _child(
                    ["--drain-child", drain_url, str(drain), base_url], learner="process"
                )
                rows[kind] = row
        finally:
            if server is not None:
                server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=80_000, help="runs per soak (80,000)")
    parser.add_argument("--drain", type=int, default=20_000, help="runs queued for the drain")
    parser.add_argument("--quick", action="store_true", help="10,000-run soak, 5,000 drain")
    parser.add_argument("--stores", default="sqlite,memory,redis")
    parser.add_argument(
        "--modes",
        default=",".join(m[0] for m in SOAKS),
        help="soaks to run (an A/B: a subset; the plot needs all three)",
    )
    parser.add_argument(
        "--queue-mib",
        type=float,
        default=None,
        help="the soaks' queue bound (HERMES_LEARN_QUEUE_MIB; default: the SDK's default)",
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=("full", "normal"),
        default=None,
        help="the SQLite URLs' synchronous option (default: the store's default)",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="JSON to write (an A/B run: elsewhere)"
    )
    parser.add_argument("--soak", nargs=2, metavar=("URL", "RUNS"), help=argparse.SUPPRESS)
    parser.add_argument("--drain-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    sys.path.insert(0, str(Path(__file__).parent))
    from plotting import add_plot_only, redraw

    add_plot_only(parser, PNG, RESULTS)
    args = parser.parse_args()
    if args.soak:
        _soak_child(args.soak[0], int(args.soak[1]), args.out)
        return
    if args.drain_child:
        url, n, base = args.drain_child
        _drain_child(url, int(n), base, args.out)
        return
    if args.plot_only:
        redraw(plot, RESULTS, PNG)
        return
    runs, drain = (10_000, 5_000) if args.quick else (args.runs, args.drain)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    load0 = os.getloadavg()[0]
    from hermes_sdk.instrument.learner import DEFAULT_EXIT_TIMEOUT_S, DEFAULT_MAX_BYTES
    from hermes_sdk.store.sqlite import DEFAULT_SYNCHRONOUS

    synchronous = args.sqlite_synchronous or DEFAULT_SYNCHRONOUS
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if args.queue_mib is not None:  # every child inherits it (the drains set their own bound)
        os.environ["HERMES_LEARN_QUEUE_MIB"] = str(args.queue_mib)
    queue_bytes = (
        DEFAULT_MAX_BYTES if args.queue_mib is None else max(1, int(args.queue_mib * 2**20))
    )
    rows = measure(runs, drain, stores, synchronous, modes)

    for row in rows.values():
        if "drain" not in row:
            continue
        d = row["drain"]
        d["full_queue_runs"] = queue_bytes / d["queued_bytes_per_run"]
        d["full_queue_exit_s"] = d["full_queue_runs"] / d["drain_runs_s"]
    doc = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m_before_after": [load0, os.getloadavg()[0]],
        },
        "runs": runs,
        "drain_runs": drain,
        "queue_bound_bytes": queue_bytes,
        "exit_timeout_s": DEFAULT_EXIT_TIMEOUT_S,
        "sqlite_synchronous": synchronous,
        "targets": {
            "learned_runs_s": TARGET_RUNS_S,
            "peak_rss_growth_mib": TARGET_RSS_MIB,
            "current_hints_p50_us": TARGET_HINTS_P50_US,
        },
        "stores": rows,
    }
    results: Path = args.results
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    _print(doc)
    if not drain or set(modes) != set(MODE_LABELS):  # an A/B subset: no plot
        print(f"wrote {results}")
        return
    png = results.with_suffix(".png")
    plot(doc, png)
    print(f"wrote {results} and {png}")


def _print(doc: dict[str, Any]) -> None:
    print(
        f"{'store':8} {'learner':22} {'produced/s':>10} {'learned/s':>9} {'alone/s':>8} "
        f"{'baseline/s':>10} {'RSS+MiB':>8} {'dropped':>8} {'lost':>5} {'hints p50':>9} "
        f"{'feeder us/run':>13}"
    )
    for kind, row in doc["stores"].items():
        for key in MODE_LABELS:
            if key not in row:
                continue
            s = row[key]
            d = {
                **row.get("drain", {"drain_runs_s": float("nan"), "baseline_runs_s": float("nan")}),
                **(
                    {"drain_runs_s": row["drain_process"]["drain_runs_s"]}
                    if key == "soak_process" and "drain_process" in row
                    else {}
                ),
            }
            feeder = s.get("feeder_cpu_us_per_run")
            print(
                f"{kind:8} {MODE_LABELS[key]:22} "
                f"{s['produced_runs_s']:10,.0f} {s['learned_runs_s']:9,.0f} "
                f"{d['drain_runs_s']:8,.0f} {d['baseline_runs_s']:10,.0f} "
                f"{s['peak_rss_growth_mib']:8.1f} {s['dropped']:8d} {s['lost_at_exit']:5d} "
                f"{s.get('current_hints_p50_us') or float('nan'):9.1f} "
                f"{float('nan') if feeder is None else feeder:13.1f}"
            )


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} us"


def plot(result: dict[str, Any], path: Path) -> None:
    """Runs/s per store and learner (produced, learned in the soak, drain, one-write-per-run
    baseline) and peak RSS growth, with the targets."""
    from plotting import figure, grouped_bars, save

    rows = result["stores"]
    keys = list(rows)
    modes = [m for m in MODE_LABELS if all(m in rows[k] for k in keys)]
    # the memory store keeps every stored path in RAM: its RSS is the store, not the queue
    stores = [f"{k} (store in RAM)" if k == "memory" else k for k in keys]
    load = result.get("machine", {}).get("load_average_1m_before_after")
    fig, axes = figure(
        1,
        2,
        (14, 5.6),
        f"Embedded learning, soak of {result['runs']:,} runs (llm + tool, 1-12 iterations, "
        "5 apps)\nlearner thread / thread + backpressure / child process"
        + (f"; shared 2-core machine, load average {load[0]:.1f}-{load[1]:.1f}" if load else ""),
        height_ratios=None,
    )
    series: dict[str, list[float]] = {}
    for m in modes:
        series[f"produced ({MODE_LABELS[m]})"] = [rows[k][m]["produced_runs_s"] for k in keys]
        series[f"stored + learned ({MODE_LABELS[m]})"] = [
            rows[k][m]["learned_runs_s"] for k in keys
        ]
    series["stored + learned (thread learner alone)"] = [
        rows[k]["drain"]["drain_runs_s"] for k in keys
    ]
    if all("drain_process" in rows[k] for k in keys):
        series["stored + learned (process learner alone)"] = [
            rows[k]["drain_process"]["drain_runs_s"] for k in keys
        ]
    series["baseline: one write per run"] = [rows[k]["drain"]["baseline_runs_s"] for k in keys]
    grouped_bars(
        axes[0],
        stores,
        series,
        axis_label="runs/s (log)",
        log=True,
        title="throughput",
        targets=[(result["targets"]["learned_runs_s"], "target: >= 10,000 runs/s learned")],
        legend="outside",
    )
    grouped_bars(
        axes[1],
        stores,
        {
            f"peak RSS growth, {MODE_LABELS[m]} (MiB)": [
                rows[k][m]["peak_rss_growth_mib"] for k in keys
            ]
            for m in modes
        },
        axis_label="MiB (process: app + child)",
        title="peak RSS growth\ndropped (thread / + backpressure / process),\n"
        "lost at exit and current_hints() p50 (process)\n"
        + "\n".join(
            f"{k}: "
            + " / ".join(f"{rows[k][m]['dropped']:,}" for m in modes)
            + f"; lost {rows[k][modes[-1]]['lost_at_exit']}"
            + f"; {_us(rows[k][modes[-1]].get('current_hints_p50_us'))}"
            for k in keys
        ),
        targets=[(result["targets"]["peak_rss_growth_mib"], "target: <= 50 MiB")],
        legend="lower right",
    )
    save(fig, path)


if __name__ == "__main__":
    main()
