"""The slice of :class:`~hyperlobby.swarm.hyperdht.dht.HyperDht` the swarm uses, as Protocols.

The swarm is written against these, not the concrete class, so it runs unchanged on the real
DHT and on the in-memory fake of the tests (see the shared DHT/swarm API contract). Everything
here is structural: any object with these members fits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Sequence
from typing import Any, Protocol

from hyperlobby.crypto.keys import KeyPair
from hyperlobby.swarm.dht_rpc.messages import Address


class PeerRecord(Protocol):
    """One announced peer in a lookup reply."""

    @property
    def public_key(self) -> bytes: ...

    @property
    def relay_addresses(self) -> Sequence[Address]: ...


class LookupResult(Protocol):
    """One DHT node's answer to a lookup: the peers it stores under the topic."""

    @property
    def peers(self) -> Sequence[PeerRecord]: ...


class Connection(Protocol):
    """An end-to-end encrypted connection whose Noise handshake is complete.

    ``closed`` is done when the connection has ended, for any reason. Optional members the swarm
    uses when present: ``raw_bytes_read``/``raw_bytes_written`` (duplicate resolution: a
    connection that carried bytes both ways counts as established) and ``send_keepalive()``.
    """

    @property
    def remote_public_key(self) -> bytes: ...

    @property
    def public_key(self) -> bytes: ...

    @property
    def is_initiator(self) -> bool: ...

    @property
    def handshake_hash(self) -> bytes: ...

    @property
    def closed(self) -> asyncio.Future[None]: ...

    def close(self) -> None: ...


Firewall = Callable[[bytes, Any], bool]  # (remote public key, handshake payload) -> True to reject


class Server(Protocol):
    async def listen(self, keypair: KeyPair) -> Any: ...

    async def close(self) -> Any: ...


class Dht(Protocol):
    """What the swarm calls on its DHT. Optional, used when present: ``announce_stream`` and
    ``lookup_and_unannounce`` (JS's combined queries: one walk per refresh instead of two)."""

    def lookup(self, topic: bytes) -> AsyncIterable[Any]: ...

    async def announce(
        self, topic: bytes, keypair: KeyPair, relay_addresses: Sequence[Address] = ()
    ) -> Any: ...

    async def unannounce(self, topic: bytes, keypair: KeyPair) -> Any: ...

    def create_server(self, *, firewall: Any = None, on_connection: Any = None) -> Any: ...

    async def connect(
        self,
        remote_public_key: bytes,
        *,
        keypair: KeyPair | None = None,
        relay_addresses: Sequence[Address] | None = None,
    ) -> Any: ...

    async def close(self) -> Any: ...


__all__ = ["Connection", "Dht", "Firewall", "LookupResult", "PeerRecord", "Server"]
