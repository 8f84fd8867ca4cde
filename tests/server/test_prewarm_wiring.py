"""`hermes serve --prewarm` / `[prewarm]` turn the prewarm planner on in the scheduler."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from hermes_sdk.cli.serve import build_config
from hermes_sdk.errors import ConfigError
from hermes_sdk.server.config import load_config

from .conftest import StartServer


async def test_prewarm_routes_only_when_configured(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    plain = await serve()
    async with http.get(f"{plain.url}/v1/prewarm") as resp:
        assert resp.status == 404
    warm = await serve(prewarm_backends=("sandbox",))
    async with http.get(f"{warm.url}/v1/prewarm") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert set(doc["backends"]) == {"sandbox"}
    assert 0.0 < doc["threshold"] < 1.0
    async with http.get(f"{warm.url}/metrics") as resp:
        assert "hermes_prewarm_" in await resp.text()


def test_flags_and_toml_configure_prewarm(tmp_path: Path) -> None:
    cfg = build_config(
        config_file=None, host=None, port=None, store=None, policy=None,
        backends=[], api_keys=[], upstreams=[],
        prewarm=["sandbox", "dnn=http://127.0.0.1:9/hook"],
    )  # fmt: skip
    assert cfg.prewarm_backends == ("sandbox", "dnn")
    assert cfg.prewarm_webhooks == {"dnn": "http://127.0.0.1:9/hook"}
    toml = tmp_path / "hermes.toml"
    toml.write_text('[prewarm]\nbackends = ["gpu"]\n[prewarm.webhooks]\nsandbox = "http://h/x"\n')
    loaded = load_config(toml)
    assert loaded.prewarm_backends == ("gpu", "sandbox")
    assert loaded.prewarm_webhooks == {"sandbox": "http://h/x"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[prewarm]\nbackends = "gpu"\n', "array of backend names"),
        ("[prewarm]\nfoo = 1\n", "unknown key"),
        ('[prewarm.webhooks]\ngpu = "ftp://x"\n', "http"),
    ],
)
def test_bad_prewarm_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "hermes.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(toml)
