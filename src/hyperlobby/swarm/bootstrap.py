"""Which DHT nodes to bootstrap from, and the guard that keeps tests on loopback.

A DHT node joins the network through a few well-known nodes. For a real user that is the public
HyperDHT bootstrap set (:data:`PUBLIC_BOOTSTRAP`, the list hyperdht 6 ships); for a test, a demo
or a private network it is a list of ``HOST:PORT`` the user gives. Where the list comes from,
first match wins:

1. ``--bootstrap HOST:PORT`` on the command line (repeatable, or comma-separated);
2. the ``HYPERLOBBY_BOOTSTRAP`` environment variable (comma- or space-separated);
3. the public set.

Entries may carry hyperdht's ``IP@NAME:PORT`` form; the IP is used (no DNS lookup), as the
public list is written that way. Only IPv4 is accepted (dht-rpc's wire format).

**The loopback guard.** With ``HYPERLOBBY_LOOPBACK_ONLY=1`` in the environment (the test suite
sets it for itself and every process it starts), :func:`check_loopback` refuses any list with
a node off 127.0.0.0/8, including the public default, with a :class:`SwarmError` that says
what to pass instead. So a test that forgot its loopback bootstrap fails loudly instead of
sending a packet to the public network.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hyperlobby.errors import SwarmError
from hyperlobby.swarm.hyperdht.constants import BOOTSTRAP_NODES

ENV_BOOTSTRAP: Final = "HYPERLOBBY_BOOTSTRAP"
ENV_LOOPBACK_ONLY: Final = "HYPERLOBBY_LOOPBACK_ONLY"
PUBLIC_BOOTSTRAP: Final[tuple[str, ...]] = BOOTSTRAP_NODES  # hyperdht 6.34.0's lib/constants.js


@dataclass(frozen=True, slots=True)
class BootstrapNode:
    """One bootstrap entry: ``host`` is an IPv4 address (the suggested IP when a name was given)."""

    host: str
    port: int
    name: str | None = None  # the DNS name of an ``IP@NAME:PORT`` entry, for messages only

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """A resolved list and where it came from (``"cli"``, ``"env"`` or ``"public"``)."""

    nodes: tuple[BootstrapNode, ...]
    source: str

    @property
    def addresses(self) -> list[str]:
        """``HOST:PORT`` strings, the form :meth:`HyperDht.create` takes."""
        return [str(n) for n in self.nodes]

    @property
    def loopback(self) -> bool:
        return all(n.loopback for n in self.nodes)


def parse_node(text: str) -> BootstrapNode:
    """``HOST:PORT`` or ``IP@NAME:PORT`` -> :class:`BootstrapNode` (errors say what was wrong)."""
    entry = text.strip()
    suggested, at, rest = entry.partition("@")
    if not at:
        suggested, rest = "", entry
    host, sep, port_text = rest.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SwarmError("a bootstrap node is HOST:PORT (IPv4, port 1-65535)", node=text)
    ip = suggested or host
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise SwarmError(
            "a bootstrap node needs an IPv4 address (or IP@NAME:PORT); names are not resolved", node=text
        ) from None
    if addr.version != 4:
        raise SwarmError("the DHT speaks IPv4 only", node=text)
    return BootstrapNode(str(addr), int(port_text), host if suggested else None)


def parse_bootstrap(values: str | Sequence[str]) -> tuple[BootstrapNode, ...]:
    """Nodes from one string or several (each may be a comma/space-separated list)."""
    items = [values] if isinstance(values, str) else list(values)
    out: list[BootstrapNode] = []
    for item in items:
        for part in re.split(r"[,\s]+", item.strip()):
            if part:
                node = parse_node(part)
                if node not in out:
                    out.append(node)
    return tuple(out)


def resolve_bootstrap(cli: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Bootstrap:
    """The list to use, by the precedence in the module doc (command line, environment, public)."""
    environ = os.environ if env is None else env
    if cli:
        nodes = parse_bootstrap(cli)
        if nodes:
            return Bootstrap(nodes, "cli")
    from_env = environ.get(ENV_BOOTSTRAP, "").strip()
    if from_env:
        return Bootstrap(parse_bootstrap(from_env), "env")
    return Bootstrap(parse_bootstrap(PUBLIC_BOOTSTRAP), "public")


def explicit_bootstrap(cli: Sequence[str] = (), env: Mapping[str, str] | None = None) -> bool:
    """True if the user named bootstrap nodes (flag or environment), not just the default."""
    environ = os.environ if env is None else env
    return any(c.strip() for c in cli) or bool(environ.get(ENV_BOOTSTRAP, "").strip())


def loopback_only(env: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if env is None else env
    return environ.get(ENV_LOOPBACK_ONLY, "").strip().lower() not in ("", "0", "false", "no")


def check_loopback(nodes: Sequence[BootstrapNode], env: Mapping[str, str] | None = None) -> None:
    """Under ``HYPERLOBBY_LOOPBACK_ONLY``, refuse any node off loopback (raises SwarmError)."""
    if not loopback_only(env):
        return
    off = [str(n) if n.name is None else f"{n} ({n.name})" for n in nodes if not n.loopback]
    if off:
        raise SwarmError(
            f"{ENV_LOOPBACK_ONLY} is set: refusing to contact DHT nodes off loopback; "
            "pass --bootstrap 127.0.0.1:PORT (see `hyperlobby dht bootstrap`) or --no-dht",
            nodes=off,
        )


__all__ = [
    "ENV_BOOTSTRAP",
    "ENV_LOOPBACK_ONLY",
    "PUBLIC_BOOTSTRAP",
    "Bootstrap",
    "BootstrapNode",
    "check_loopback",
    "explicit_bootstrap",
    "loopback_only",
    "parse_bootstrap",
    "parse_node",
    "resolve_bootstrap",
]
