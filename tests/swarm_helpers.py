"""An in-memory stand-in for HyperDht, for swarm tests that need no sockets.

:class:`FakeNetwork` is the "DHT": announcements per topic and servers per public key.
:class:`FakeDht` is one node's handle on it with exactly the methods the swarm uses;
``connect`` pairs two :class:`FakeConnection` ends in memory, checking the server's firewall
first, and hands the server its end on the next loop turn (as a real handshake would arrive).
Every call is logged so tests can assert what a swarm asked the DHT.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperlobby.crypto.keys import KeyPair
from hyperlobby.errors import HandshakeError, ProtocolError
from hyperlobby.swarm.dht_rpc.messages import Address
from hyperlobby.swarm.hyperdht.messages import LookupReply, Peer


class FakeConnection:
    def __init__(self, public_key: bytes, remote_public_key: bytes, is_initiator: bool, hh: bytes) -> None:
        self.public_key = public_key
        self.remote_public_key = remote_public_key
        self.is_initiator = is_initiator
        self.handshake_hash = hh
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.other: FakeConnection | None = None
        self.raw_bytes_read = 0
        self.raw_bytes_written = 0
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.keepalives = 0

    @staticmethod
    def pair(client: bytes, server: bytes, serial: int) -> tuple[FakeConnection, FakeConnection]:
        hh = serial.to_bytes(8, "big") * 8
        a = FakeConnection(client, server, True, hh)
        b = FakeConnection(server, client, False, hh)
        a.other, b.other = b, a
        return a, b

    def send(self, data: bytes) -> None:
        assert self.other is not None
        if self.closed.done():
            raise ProtocolError("closed")
        self.raw_bytes_written += len(data)
        self.other.raw_bytes_read += len(data)
        self.other.inbox.put_nowait(data)

    def send_keepalive(self) -> None:
        self.keepalives += 1

    def close(self) -> None:
        for end in (self, self.other):
            if end is not None and not end.closed.done():
                end.closed.set_result(None)


@dataclass
class FakeServer:
    dht: FakeDht
    firewall: Callable[[bytes, Any], bool] | None
    on_connection: Callable[[Any], None] | None
    key_pair: KeyPair | None = None
    closed: bool = False
    relay_addresses: tuple[Address, ...] = ()

    @property
    def public_key(self) -> bytes:
        assert self.key_pair is not None
        return self.key_pair.public_key

    async def listen(self, keypair: KeyPair) -> None:
        if self.dht.net.fail_listens > 0:
            self.dht.net.fail_listens -= 1
            raise ProtocolError("no DHT node took the announcement")
        self.key_pair = keypair
        self.relay_addresses = (Address("127.0.0.1", 40000 + len(self.dht.net.servers)),)
        self.dht.net.servers[keypair.public_key] = self

    async def close(self) -> None:
        self.closed = True
        if self.key_pair is not None and self.dht.net.servers.get(self.key_pair.public_key) is self:
            del self.dht.net.servers[self.key_pair.public_key]


@dataclass
class FakeNetwork:
    announcements: dict[bytes, dict[bytes, Peer]] = field(default_factory=dict)
    servers: dict[bytes, FakeServer] = field(default_factory=dict)
    log: list[tuple[str, bytes]] = field(default_factory=list)
    connect_delay: float = 0.0
    fail_listens: int = 0  # how many server listen() calls fail before they work
    serial: int = 0
    connections: list[FakeConnection] = field(default_factory=list)

    def dht(self) -> FakeDht:
        return FakeDht(self)


class FakeDht:
    def __init__(self, net: FakeNetwork) -> None:
        self.net = net
        self.closed = False
        self.servers: list[FakeServer] = []

    async def lookup_all(self, topic: bytes) -> list[Peer]:
        return list(self.net.announcements.get(topic, {}).values())

    def lookup(self, topic: bytes) -> AsyncIterator[LookupReply]:
        self.net.log.append(("lookup", topic))

        async def replies() -> AsyncIterator[LookupReply]:
            await asyncio.sleep(0)
            found = list(self.net.announcements.get(topic, {}).values())
            # two "DHT nodes" answer, each with half of the records, as a real lookup streams them
            yield LookupReply(tuple(found[::2]))
            await asyncio.sleep(0)
            yield LookupReply(tuple(found[1::2]))

        return replies()

    async def announce(self, topic: bytes, keypair: KeyPair, relay_addresses: Sequence[Address] = ()) -> None:
        self.net.log.append(("announce", topic))
        await asyncio.sleep(0)
        self.net.announcements.setdefault(topic, {})[keypair.public_key] = Peer(
            keypair.public_key, tuple(relay_addresses)
        )

    async def unannounce(self, topic: bytes, keypair: KeyPair) -> None:
        self.net.log.append(("unannounce", topic))
        await asyncio.sleep(0)
        self.net.announcements.get(topic, {}).pop(keypair.public_key, None)

    def create_server(self, *, firewall: Any = None, on_connection: Any = None) -> FakeServer:
        server = FakeServer(self, firewall, on_connection)
        self.servers.append(server)
        return server

    async def connect(
        self,
        remote_public_key: bytes,
        *,
        keypair: KeyPair | None = None,
        relay_addresses: Sequence[Address] | None = None,
    ) -> FakeConnection:
        assert keypair is not None
        self.net.log.append(("connect", remote_public_key))
        await asyncio.sleep(self.net.connect_delay)
        server = self.net.servers.get(remote_public_key)
        if server is None or server.closed or self.closed:
            raise ProtocolError("no such peer", key=remote_public_key)
        if server.firewall is not None and server.firewall(keypair.public_key, None):
            raise HandshakeError("firewalled by the remote", key=remote_public_key)
        self.net.serial += 1
        mine, theirs = FakeConnection.pair(keypair.public_key, remote_public_key, self.net.serial)
        self.net.connections += [mine, theirs]
        assert server.on_connection is not None
        server.on_connection(theirs)
        await asyncio.sleep(0)
        if theirs.closed.done():  # the server dropped it at once (a duplicate it did not keep)
            raise HandshakeError("the remote closed the new connection", key=remote_public_key)
        return mine

    async def close(self) -> None:
        self.closed = True
        for s in self.servers:
            await s.close()


async def eventually(probe: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait (bounded) until ``probe()`` holds; fail with ``what`` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
