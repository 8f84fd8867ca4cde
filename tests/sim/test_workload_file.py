"""Workload files: schema validation with errors that name the field, and `hermes sim`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from hermes_sdk import ConfigError
from hermes_sdk.cli import app
from hermes_sdk.sim import load_workload, parse_workload, workload_schema

EXAMPLE: dict[str, Any] = {
    "seed": 1,
    "n_apps": 300,
    "warmup_apps": 30,
    "arrival": {"process": "poisson", "rate": 0.8},
    "backends": {"cpu": {"servers": 1, "preemptive": True}},
    "learning": "oracle",
    "apps": [{"name": "a", "weight": 1.0, "deadline_s": None, "start": "u",
              "units": {"u": {"kind": "llm", "backend": "cpu",
                              "service": {"dist": "exponential", "mean": 1.0},
                              "fanout": {"dist": "deterministic", "value": 1},
                              "next": [{"to": "END", "p": 1.0}]}}}],
}  # fmt: skip
"""The example of issue 3, verbatim apart from its size."""


def test_schema_is_valid_and_accepts_the_issue_example() -> None:
    jsonschema.Draft202012Validator.check_schema(workload_schema())
    jsonschema.validate(EXAMPLE, workload_schema())
    wl = parse_workload(EXAMPLE)
    assert wl.n_apps == 300 and wl.learning == "oracle"
    assert wl.backends["cpu"].preemptive


def mutate(path: str, value: Any) -> dict[str, Any]:
    """EXAMPLE with the field at dotted ``path`` set (``value=...`` deletes it)."""
    doc = copy.deepcopy(EXAMPLE)
    parts = path.split(".")
    node: Any = doc
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is ...:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


U = "apps.0.units.u"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("n_apps", ..., "'n_apps' is a required property"),
        ("n_apps", 0, "n_apps"),
        ("warmup_apps", 300, "warmup_apps"),
        ("learning", "psychic", "learning"),
        ("arrival.rate", ..., "arrival"),
        ("arrival.process", "bursty", "arrival.process"),
        ("backends.cpu.servers", 0, "backends.cpu.servers"),
        ("apps.0.start", "nope", "apps[0].start"),
        (f"{U}.service.mean", -1, "apps[0].units.u.service.mean"),
        (f"{U}.service.dist", "gamma", "apps[0].units.u.service.dist"),
        (f"{U}.service", {"dist": "uniform", "low": 3, "high": 1}, "apps[0].units.u.service"),
        (f"{U}.service", {"dist": "two_point", "values": [1, 2], "probs": [0.5, 0.2]},
         "apps[0].units.u.service.probs"),
        (f"{U}.service", {"dist": "exponential", "mean": 1, "sd": 2}, "apps[0].units.u.service"),
        (f"{U}.backend", "gpu", "apps[0].units.u.backend"),
        (f"{U}.sevice", {"dist": "exponential", "mean": 1}, "apps[0].units.u"),
        (f"{U}.next", [{"to": "v", "p": 1.0}], "apps[0].units.u.next[0].to"),
        (f"{U}.next", [{"to": "END", "p": 0.5}], "apps[0].units.u.next"),
        (f"{U}.by_visit", [[{"to": "END", "p": 1.0}]], "exactly one of 'next' or 'by_visit'"),
        (f"{U}.service", ..., "apps[0].units.u.service"),
        (f"{U}.input_tokens", {"dist": "deterministic", "value": 10}, None),
    ],
)  # fmt: skip
def test_bad_workloads_name_the_field(path: str, value: Any, message: str | None) -> None:
    doc = mutate(path, value)
    if message is None:
        parse_workload(doc)  # tokens as well as service: fine
        return
    with pytest.raises(ConfigError) as info:
        parse_workload(doc)
    assert message in str(info.value)


def test_token_units_need_a_time_model() -> None:
    doc = mutate(f"{U}.service", ...)
    doc["apps"][0]["units"]["u"]["output_tokens"] = {"dist": "deterministic", "value": 10}
    with pytest.raises(ConfigError, match=r"backends\.cpu\.time_model"):
        parse_workload(doc)
    doc["backends"]["cpu"]["time_model"] = {"per_output_token_s": 0.05}
    assert parse_workload(doc).apps[0].units["u"].service is None


def test_load_workload_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read workload file"):
        load_workload(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_apps": 3,,}')
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON \(line 1"):
        load_workload(bad)


def write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_cli_json_prints_exactly_one_object(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sim", "--workload", write(tmp_path, EXAMPLE), "--policy", "gittins", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in ("policy", "n", "mean", "p50", "p95", "p99", "deadline_hit_rate",
                "utilization", "per_app"):  # fmt: skip
        assert key in out
    assert out["policy"] == "gittins" and out["n"] == 270
    assert out["per_app"]["a"]["n"] == 270
    assert set(out["per_app"]["a"]) == {"n", "mean", "p95"}
    assert out["deadline_hit_rate"] is None
    again = CliRunner().invoke(
        app, ["sim", "-w", write(tmp_path, EXAMPLE), "-p", "gittins", "--json", "--seed", "2"]
    )
    assert json.loads(again.stdout)["mean"] != out["mean"]


def test_cli_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "-w", write(tmp_path, EXAMPLE), "-p", "las"])
    assert result.exit_code == 0, result.output
    assert "las" in result.stdout and "p99" in result.stdout


@pytest.mark.parametrize(
    ("doc_change", "args", "message"),
    [
        ({"n_apps": "many"}, [], "n_apps"),
        ({}, ["--policy", "magic"], "unknown policy 'magic'"),
        ({}, ["--n-apps", "10", "--warmup-apps", "10"], "--warmup-apps"),
    ],
)
def test_cli_bad_input_exits_2(
    tmp_path: Path, doc_change: dict[str, Any], args: list[str], message: str
) -> None:
    doc = {**EXAMPLE, **doc_change}
    result = CliRunner().invoke(app, ["sim", "-w", write(tmp_path, doc), *args, "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.output


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "-w", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "cannot read workload file" in result.output
