"""HyperDht on 127.0.0.1, Python only: announce/lookup/unannounce, records, routing, hostile input."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import key_pair
from hyperlobby.swarm.dht_rpc import ERROR_UNKNOWN_COMMAND, Address
from hyperlobby.swarm.hyperdht import (
    PUBLIC_BOOTSTRAP,
    ForwardState,
    HandshakeAnswer,
    HandshakeMessage,
    HyperDht,
    QueryFailed,
)
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.udx import UdxSocket

FAST = {"request_timeout": 0.2, "retries": 2, "query_retries": 1}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every datagram a Python node sends in these tests must go to 127.0.0.0/8."""
    original = UdxSocket.send

    def checked(self: UdxSocket, data: bytes, address: tuple[str, int]) -> None:
        assert address[0].startswith("127."), f"datagram to non-loopback {address}"
        original(self, data, address)

    monkeypatch.setattr(UdxSocket, "send", checked)


@pytest.fixture
async def network() -> AsyncIterator[list[HyperDht]]:
    """A bootstrapper and 9 persistent HyperDHT nodes (k=5 so queries walk)."""
    nodes: list[HyperDht] = []
    try:
        boot = await HyperDht.bootstrapper("127.0.0.1", k=5, **FAST)
        nodes.append(boot)
        for _ in range(9):
            nodes.append(
                await asyncio.wait_for(
                    HyperDht.create(bootstrap=[str(boot.address)], ephemeral=False, k=5, **FAST), 10
                )
            )
        await asyncio.wait_for(asyncio.gather(*(n.node.bootstrap() for n in nodes[1:])), 10)
        yield nodes
    finally:
        await asyncio.gather(*(n.close() for n in nodes))


async def _client(network: list[HyperDht]) -> HyperDht:
    return await HyperDht.create(bootstrap=[str(network[0].address)], k=5, **FAST)


async def test_announce_then_lookup_then_unannounce(network: list[HyperDht]) -> None:
    client = await _client(network)
    try:
        kp = key_pair()
        topic = blake2b256(b"a topic")
        relay = Address("127.0.0.1", 4000)
        result = await asyncio.wait_for(network[3].announce(topic, kp, [relay]), 10)
        assert result.committed == 5
        replies = [r async for r in client.lookup(topic)]
        assert len(replies) >= 4  # the announcer itself is among the closest but holds no copy
        for reply in replies:
            assert [p.public_key for p in reply.peers] == [kp.public_key]
            assert reply.peers[0].relay_addresses == (relay,)
        removed = await asyncio.wait_for(network[3].unannounce(topic, kp), 10)
        assert removed >= 4
        assert [r async for r in client.lookup(topic)] == []
    finally:
        await client.close()


async def test_immutable_and_mutable_records(network: list[HyperDht]) -> None:
    client = await _client(network)
    try:
        put = await asyncio.wait_for(client.immutable_put(b"some bytes"), 10)
        assert put.target == blake2b256(b"some bytes") and put.committed >= 1
        got = await asyncio.wait_for(network[5].immutable_get(put.target), 10)
        assert got is not None and got.value == b"some bytes"

        kp = key_pair()
        await asyncio.wait_for(client.mutable_put(kp, b"first", seq=1), 10)
        await asyncio.wait_for(network[2].mutable_put(kp, b"second", seq=2), 10)
        latest = await asyncio.wait_for(network[7].mutable_get(kp.public_key), 10)
        assert latest is not None and (latest.seq, latest.value) == (2, b"second")
        # an older seq is refused everywhere
        with pytest.raises(QueryFailed):
            await asyncio.wait_for(client.mutable_put(kp, b"old", seq=1), 10)
    finally:
        await client.close()


async def test_ephemeral_node_does_not_store(network: list[HyperDht]) -> None:
    client = await _client(network)
    try:
        reply = await client.node.request(C.LOOKUP, network[1].address, target=os.urandom(32))
        assert reply.error == 0
        other = await _client(network)
        try:
            reply = await client.node.request(C.LOOKUP, other.node.address, target=os.urandom(32))
            assert reply.error == ERROR_UNKNOWN_COMMAND
        finally:
            await other.close()
    finally:
        await client.close()


async def test_router_set_get_delete_and_direct_handshake(network: list[HyperDht]) -> None:
    server_node = network[4]
    kp = key_pair()
    target = blake2b256(kp.public_key)
    seen: list[HandshakeMessage] = []

    async def on_handshake(msg: HandshakeMessage, req: object) -> HandshakeAnswer:
        seen.append(msg)
        return HandshakeAnswer(b"noise-reply:" + msg.noise)

    record = m.encode(m.peer, m.Peer(kp.public_key))
    server_node.router.set(target, ForwardState(None, record, on_peer_handshake=on_handshake))
    assert server_node.router.get(target) is not None
    client = await _client(network)
    try:
        res = await asyncio.wait_for(
            client.router.peer_handshake(target, b"hello", server_node.address, retries=1), 5
        )
        assert res.noise == b"noise-reply:hello" and not res.relayed
        assert seen == [HandshakeMessage(b"hello", None)]
        server_node.router.delete(target)
        assert server_node.router.get(target) is None
    finally:
        await client.close()


async def test_garbage_datagrams_are_ignored(network: list[HyperDht]) -> None:
    target = network[2]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\x03", b"\x03\xff\xff\xff", os.urandom(200), b"\x13" + os.urandom(50)):
            s.sendto(junk, target.address.as_tuple())
    await asyncio.sleep(0.05)
    assert (await target.node.ping(network[1].address)).error == 0


def test_public_bootstrap_is_only_a_constant() -> None:
    assert len(PUBLIC_BOOTSTRAP) == 3
    assert all(entry.endswith(":49737") for entry in PUBLIC_BOOTSTRAP)
