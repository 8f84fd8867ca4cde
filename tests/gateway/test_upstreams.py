"""Upstream configuration: the --upstream flag, validation, priority mapping and model routing."""

from __future__ import annotations

import pytest

from hermes_sdk.errors import ConfigError
from hermes_sdk.server.upstreams import UpstreamConfig, UpstreamRouter, parse_upstream_flag


def test_flag_with_every_option() -> None:
    up = parse_upstream_flag(
        "big=http://10.0.0.1:8000/v1,engine=vllm,max_inflight=4,models=llama|qwen,"
        "priority_levels=16,timeout_s=30"
    )
    assert up == UpstreamConfig(
        name="big",
        url="http://10.0.0.1:8000/v1",
        engine="vllm",
        max_inflight=4,
        models=("llama", "qwen"),
        priority_levels=16,
        timeout_s=30.0,
    )
    assert (
        parse_upstream_flag("s=http://h:1,engine=sglang,higher_first=false").higher_first is False
    )


@pytest.mark.parametrize(
    "flag",
    [
        "noequals",
        "=http://h",
        "a=ftp://h",
        "a=http://h,engine=tgi",
        "a=http://h,max_inflight=0",
        "a=http://h,max_inflight=x",
        "a=http://h,bogus=1",
        "a=http://h,models",
        "a=http://h,higher_first=maybe",
    ],
)
def test_bad_flags_raise_config_error(flag: str) -> None:
    with pytest.raises(ConfigError):
        parse_upstream_flag(flag)


def test_base_url_appends_v1_only_without_path() -> None:
    assert UpstreamConfig("a", "http://h:8000").base_url == "http://h:8000/v1"
    assert UpstreamConfig("a", "http://h:8000/").base_url == "http://h:8000/v1"
    assert UpstreamConfig("a", "https://h/api/v1/").base_url == "https://h/api/v1"


def test_priority_follows_engine_convention() -> None:
    vllm = UpstreamConfig("v", "http://h", engine="vllm")
    sglang = UpstreamConfig("s", "http://h", engine="sglang")
    flipped = UpstreamConfig("f", "http://h", engine="sglang", higher_first=False)
    plain = UpstreamConfig("o", "http://h")
    ranks = [0.001, 0.5, 3.0, 60.0, 1e6]
    v = [vllm.priority(r) for r in ranks]
    s = [sglang.priority(r) for r in ranks]
    assert v == sorted(v) and v[0] < v[-1]  # type: ignore[type-var]
    assert s == sorted(s, reverse=True) and s[0] > s[-1]  # type: ignore[type-var]
    assert [flipped.priority(r) for r in ranks] == v
    assert plain.priority(1.0) is None
    assert all(0 <= p < 64 for p in v + s)  # type: ignore[operator]


def test_routing_by_model() -> None:
    a = UpstreamConfig("a", "http://a", models=("m1", "m2"))
    b = UpstreamConfig("b", "http://b")
    router = UpstreamRouter([a, b])
    assert router.route("m1") is a
    assert router.route("zzz") is None
    router.learn(b, ["m3", "m1"])
    assert router.route("m3") is b
    assert router.route("m1") is a  # explicit wins
    assert [m for m, _ in router.models()] == ["m1", "m2", "m3"]
    single = UpstreamRouter([b])
    assert single.route("anything") is b


def test_router_rejects_duplicates() -> None:
    with pytest.raises(ConfigError):
        UpstreamRouter([UpstreamConfig("a", "http://a"), UpstreamConfig("a", "http://b")])
    with pytest.raises(ConfigError):
        UpstreamRouter(
            [
                UpstreamConfig("a", "http://a", models=("m",)),
                UpstreamConfig("b", "http://b", models=("m",)),
            ]
        )
