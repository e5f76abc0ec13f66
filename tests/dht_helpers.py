"""A small Python-only HyperDHT on 127.0.0.1 for tests: one bootstrapper and persistent nodes,
and a way to make one side of a holepunch act as if behind a port-randomizing NAT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hyperlobby.swarm.hyperdht import HyperDht
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht.connect import connect
from hyperlobby.swarm.hyperdht.connection import DhtConnection
from hyperlobby.swarm.hyperdht.holepuncher import NatSampler
from hyperlobby.swarm.hyperdht.punching import _Punch


@asynccontextmanager
async def python_dht(count: int, **options: Any) -> AsyncIterator[list[HyperDht]]:
    """``[bootstrapper, node1, ... node<count>]``, every node bootstrapped; all closed at the end.

    ``options`` go to every node (e.g. ``k=5`` so a small network still makes queries walk, and
    short request timeouts).
    """
    nodes: list[HyperDht] = []
    try:
        boot = await HyperDht.bootstrapper("127.0.0.1", **options)
        nodes.append(boot)
        for _ in range(count):
            node = HyperDht.create(bootstrap=[str(boot.address)], ephemeral=False, **options)
            nodes.append(await asyncio.wait_for(node, 10))
        await asyncio.wait_for(asyncio.gather(*(n.node.bootstrap() for n in nodes[1:])), 10)
        yield nodes
    finally:
        await asyncio.gather(*(n.close() for n in nodes))


async def dial(client: HyperDht, key: bytes, relay: bytes | None = None, *, timeout: float) -> DhtConnection:
    """Connect with neither the same-host shortcut nor an early probe, so the holepunch (or
    the blind relay ``relay``) decides how the peers meet."""
    return await connect(client, key, timeout=timeout, lan=False, fast_open=False, relay_through=relay)


class RandomNat(NatSampler):
    """What a port-randomizing NAT would make the samples say: forced, since on loopback every
    socket keeps its port."""

    def _update_firewall(self) -> None:
        super()._update_firewall()
        if self.sampled >= 3:
            self.firewall = C.FIREWALL_RANDOM


def randomize_nat(monkeypatch: pytest.MonkeyPatch, cls: type[_Punch]) -> list[_Punch]:
    """Every punch of ``cls`` (ServerPunch or ClientPunch) made from now on reports a
    randomizing NAT, and its punch socket's own probes are dropped, so only a birthday socket
    can open the path. Returns the punches as they are made."""
    made: list[_Punch] = []
    original = cls.__init__

    def init(self: _Punch, dht: HyperDht, *args: Any) -> None:
        original(self, dht, *args)  # type: ignore[arg-type]
        self.nat = self.puncher.nat = RandomNat(firewalled=dht.node.firewalled)
        self.punch.probe = lambda *_a, **_k: None  # type: ignore[method-assign]
        made.append(self)

    monkeypatch.setattr(cls, "__init__", init)
    return made
