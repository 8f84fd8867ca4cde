"""Config parsing (flags, TOML) and server-side run state built from unit events."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hermes_sdk.cli import app as cli_app
from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import START
from hermes_sdk.server.auth import Keyring
from hermes_sdk.server.config import (
    BackendConfig,
    ServerConfig,
    hash_api_key,
    load_config,
    parse_api_key_flag,
    parse_backend_flag,
)
from hermes_sdk.server.runs import TrackedRun
from hermes_sdk.server.wire import UnitEnd, UnitStart


def test_flags() -> None:
    assert parse_backend_flag("gpu=4") == ("gpu", BackendConfig(4))
    assert parse_backend_flag("gpu=2:30") == ("gpu", BackendConfig(2, 30.0))
    assert parse_api_key_flag("s3cr=t=acme") == ("s3cr=t", "acme")
    for bad in ("gpu", "=3", "gpu=0", "gpu=x", "gpu=1:-5"):
        with pytest.raises(ConfigError):
            parse_backend_flag(bad)
    with pytest.raises(ConfigError):
        parse_api_key_flag("nokey")


def test_toml_config(tmp_path: Path) -> None:
    digest = hash_api_key("k2", "pepper")
    (tmp_path / "hermes.toml").write_text(
        f"""
[server]
port = 9000
store = "memory://"
policy = "lstf"
key_salt = "pepper"
acquire_timeout_s = 5

[backends.gpu]
max_inflight = 3
lease_s = 120

[[api_keys]]
tenant = "acme"
key = "k1"

[[api_keys]]
tenant = "bravo"
key_sha256 = "{digest}"

[[upstreams]]
name = "vllm"
url = "http://127.0.0.1:8000/v1"
engine = "vllm"
models = ["m1"]
"""
    )
    cfg = load_config(tmp_path / "hermes.toml")
    assert (cfg.port, cfg.store_url, cfg.policy, cfg.acquire_timeout_s) == (
        9000,
        "memory://",
        "lstf",
        5.0,
    )
    assert cfg.backends == {"gpu": BackendConfig(3, 120.0)}
    assert cfg.upstreams[0].models == ("m1",)
    keyring = Keyring(cfg.api_keys, cfg.key_salt)
    assert keyring.tenant_of("k1") == "acme"
    assert keyring.tenant_of("k2") == "bravo"
    assert keyring.tenant_of("k3") is None
    assert "k1" not in repr(cfg)


@pytest.mark.parametrize(
    "text",
    [
        "[server]\nport = 'x'",
        "[server]\nbogus = 1",
        "[backends.gpu]\nmax_inflight = 0",
        "[backends.gpu]\nmax_inflight = 1\nwhat = 2",
        "[[api_keys]]\ntenant = 'a'",
        "[[upstreams]]\nname = 'u'\nurl = 'ftp://x'",
        "not toml [",
    ],
)
def test_bad_toml_is_a_config_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "bad.toml")


def test_server_config_validates() -> None:
    with pytest.raises(ConfigError):
        ServerConfig(port=70000)
    with pytest.raises(ConfigError):
        ServerConfig(acquire_timeout_s=0)
    with pytest.raises(ConfigError):
        ServerConfig(backends={"": BackendConfig()})


@pytest.mark.parametrize("policy", ["srpt_oracle", "deadline_oracle", "gittins_queue"])
def test_serve_refuses_simulator_only_policies(tmp_path: Path, policy: str) -> None:
    """A live scheduler cannot honour these names: it would serve another order under them."""
    with pytest.raises(ConfigError, match="only in the simulator"):
        ServerConfig(policy=policy)
    (tmp_path / "h.toml").write_text(f'[server]\npolicy = "{policy}"\n')
    with pytest.raises(ConfigError, match="only in the simulator"):
        load_config(tmp_path / "h.toml")
    result = CliRunner().invoke(cli_app, ["serve", "--policy", policy, "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "only in the simulator" in result.output
    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        ServerConfig(policy="nope")


def _start(uid: str, node: str, parent: str | None = None) -> UnitStart:
    return UnitStart("r", uid, node, parent_id=parent)


def test_run_state_from_units() -> None:
    run = TrackedRun("t", "r", "qa", arrival_s=0.0, deadline_s=30.0)
    assert run.run_state(0.0).node == START
    run.unit_started(_start("1", "plan"), 1.0)
    st = run.run_state(3.0)
    assert (st.node, st.visits, st.running, st.elapsed_s, st.width) == (
        "plan",
        (("plan", 1),),
        True,
        2.0,
        1,
    )
    run.unit_started(_start("1a", "llm-inner", parent="1"), 1.5)  # nested: not a stage
    assert run.run_state(3.0).node == "plan"
    run.unit_ended(UnitEnd("r", "1a", 0.4))
    run.unit_ended(UnitEnd("r", "1", 2.0))
    assert run.attained_s == 2.0 and not run.run_state(4.0).running
    # Fan-out: two overlapping units of one name are one stage of width 2.
    run.unit_started(_start("2", "search"), 5.0)
    run.unit_started(_start("3", "search"), 5.0)
    assert run.run_state(6.0).width == 2 and run.visits == {"plan": 1, "search": 1}
    # A different unit joining the running stage makes the composite node.
    run.unit_started(_start("4", "fetch"), 5.5)
    assert run.node == "fetch|search" and run.visits == {"plan": 1, "fetch|search": 1}
    for uid in ("2", "3", "4"):
        assert run.unit_ended(UnitEnd("r", uid, 1.0))
    assert not run.unit_ended(UnitEnd("r", "never", 1.0))
    run.unit_started(_start("5", "plan"), 7.0)
    assert run.visits["plan"] == 2
    state = run.app_state(7.0)
    assert state.deadline_s == 30.0 and state.attained_s == 5.0
    again = TrackedRun.from_json(run.to_json())
    assert again is not None and again.to_json() == run.to_json()
    assert TrackedRun.from_json({"ended": True}) is None
    assert TrackedRun.from_json({"tenant": "t"}) is None


def test_serve_flags_override_the_config_file(tmp_path: Path) -> None:
    from hermes_sdk.cli.serve import build_config

    (tmp_path / "hermes.toml").write_text(
        '[server]\nport = 9000\npolicy = "lstf"\n[backends.gpu]\nmax_inflight = 3\n'
    )
    cfg = build_config(
        config_file=tmp_path / "hermes.toml",
        host=None,
        port=9100,
        store="memory://",
        policy=None,
        backends=["gpu=5", "cpu=2:30"],
        api_keys=["k=acme"],
        upstreams=["vllm=http://127.0.0.1:8000,engine=vllm"],
    )
    assert (cfg.port, cfg.policy, cfg.store_url) == (9100, "lstf", "memory://")
    assert cfg.backends == {"gpu": BackendConfig(5), "cpu": BackendConfig(2, 30.0)}
    assert Keyring(cfg.api_keys, cfg.key_salt).tenant_of("k") == "acme"
    assert cfg.upstreams[0].engine == "vllm"


def test_idle_runs_are_forgotten() -> None:
    from hermes_sdk.server.metrics import ServerMetrics
    from hermes_sdk.server.scheduler import Scheduler
    from hermes_sdk.store import open_store

    now = [1000.0]
    config = ServerConfig(store_url="memory://", run_idle_s=60.0)
    sched = Scheduler(config, open_store("memory://"), ServerMetrics(), clock=lambda: now[0])
    sched.ingest("t", [{"type": "run_start", "run_id": "old", "app": "qa"}])
    now[0] += 50.0
    sched.ingest("t", [{"type": "run_start", "run_id": "new", "app": "qa"}])
    now[0] += 20.0
    assert sched.forget_idle_runs() == 1
    assert sched.run("t", "old") is None and sched.run("t", "new") is not None
