"""Fit a :class:`~hyperlobby.swarm.hyperdht.dht.HyperDht` to the swarm's :class:`Dht` protocol.

The shared API contract has ``create_server`` and ``connect`` as HyperDht methods; today they
are module functions (``hyperdht.server.create_server(dht, ...)``, ``hyperdht.connect.connect(dht,
...)``). :func:`as_swarm_dht` returns the DHT itself when it already has both methods and
otherwise wraps it in :class:`HyperDhtPeers`, which forwards to those functions, so the swarm
needs no change whichever way the DHT grows.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from typing import Any, cast

from hyperlobby.crypto.keys import KeyPair
from hyperlobby.swarm.dht_rpc.messages import Address
from hyperlobby.swarm.hyperswarm.dht_protocol import Dht


class HyperDhtPeers:
    """A HyperDht plus ``create_server``/``connect`` methods (forwarding to hyperdht's functions)."""

    def __init__(self, dht: Any) -> None:
        self.inner = dht

    def lookup(self, topic: bytes) -> AsyncIterable[Any]:
        return cast(AsyncIterable[Any], self.inner.lookup(topic))

    async def announce(self, topic: bytes, keypair: KeyPair, relay_addresses: Sequence[Address] = ()) -> Any:
        return await self.inner.announce(topic, keypair, relay_addresses)

    async def unannounce(self, topic: bytes, keypair: KeyPair) -> Any:
        return await self.inner.unannounce(topic, keypair)

    def create_server(self, *, firewall: Any = None, on_connection: Any = None) -> Any:
        from hyperlobby.swarm.hyperdht.server import create_server

        return create_server(self.inner, firewall=firewall, on_connection=on_connection)

    async def connect(
        self,
        remote_public_key: bytes,
        *,
        keypair: KeyPair | None = None,
        relay_addresses: Sequence[Address] | None = None,
    ) -> Any:
        from hyperlobby.swarm.hyperdht.connect import connect

        return await connect(self.inner, remote_public_key, keypair=keypair, relay_addresses=relay_addresses)

    async def close(self) -> Any:
        return await self.inner.close()


def as_swarm_dht(dht: Any) -> Dht:
    """``dht`` itself if it has the whole protocol, else wrapped in :class:`HyperDhtPeers`."""
    if callable(getattr(dht, "create_server", None)) and callable(getattr(dht, "connect", None)):
        return cast(Dht, dht)
    return HyperDhtPeers(dht)


__all__ = ["HyperDhtPeers", "as_swarm_dht"]
