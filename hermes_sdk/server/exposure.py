"""Protected mode: a scheduler reachable from other machines must have API keys.

Binding a non-loopback address (``0.0.0.0``, a LAN or public IP, a host name that is not
loopback) with no ``[[api_keys]]`` would let anyone who reaches the port read every learned
graph, post events, hold every backend's slots and spend the gateway's upstreams, so
``hermes serve`` refuses to start unless ``--insecure-no-auth`` says it is meant (Redis's
"protected mode" and Jupyter's token play the same part).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Final

from hermes_sdk.errors import ConfigError
from hermes_sdk.server.config import ServerConfig

log = logging.getLogger("hermes_sdk.server")

INSECURE_BANNER: Final = (
    "INSECURE: --insecure-no-auth: this scheduler listens on {where} without any API key; "
    "anyone who can reach it can read every learned graph, post events, hold every slot and "
    "spend the gateway's upstreams"
)


def is_loopback(host: str) -> bool:
    """True when ``host`` names only loopback addresses (127.0.0.0/8, ::1, ``localhost``).

    A host name is resolved; one that does not resolve, or resolves to any other address, is
    not loopback. ``""`` and ``0.0.0.0``/``::`` (every interface) are not loopback.
    """
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        pass
    if not name:
        return False
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return False
    addrs = {str(info[4][0]).split("%")[0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)


def exposed_without_keys(config: ServerConfig) -> bool:
    """True when ``config`` listens beyond loopback and has no API key at all."""
    return not config.api_keys and not is_loopback(config.host)


def check_protected_mode(config: ServerConfig) -> None:
    """Refuse (ConfigError) a non-loopback bind without keys, unless ``insecure_no_auth``.

    With the override the start is logged at WARNING; the caller shows the same line.
    """
    if not exposed_without_keys(config):
        return
    where = f"{config.host or '*'}:{config.port}"
    if config.insecure_no_auth:
        log.warning(INSECURE_BANNER.format(where=where))
        return
    raise ConfigError(
        f"protected mode: refusing to listen on {where} (not loopback) without any API key: "
        "anyone who can reach the port could read every learned graph, post events, hold "
        "every slot and spend the gateway's upstreams. Either add keys: an [[api_keys]] table "
        "(tenant and key_sha256; `hermes keys new --tenant T` prints one) in hermes.toml "
        "passed with --config, or --api-key KEY=TENANT; or bind --host 127.0.0.1; or, on a "
        "network where that is meant, pass --insecure-no-auth."
    )


def insecure_mode(config: ServerConfig) -> bool:
    """True when the server runs exposed and open because of ``--insecure-no-auth``."""
    return config.insecure_no_auth and exposed_without_keys(config)


def metrics_public(config: ServerConfig) -> bool:
    """Whether /metrics answers without a key (``metrics_public``, or by default: loopback)."""
    if config.metrics_public is not None:
        return config.metrics_public
    return is_loopback(config.host)
