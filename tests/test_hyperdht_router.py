"""Router and Announcer on 127.0.0.1: a server announced through relays, handshakes and holepunch
rounds forwarded hop by hop (client -> relay -> server -> relay -> client), routes dropped on stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dht_helpers import python_dht
from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import KeyPair, key_pair
from hyperlobby.swarm.dht_rpc import Address, IncomingRequest, Request, RequestTimeout
from hyperlobby.swarm.hyperdht import (
    Announcer,
    BadHandshakeReply,
    ForwardState,
    HandshakeAnswer,
    HandshakeMessage,
    HolepunchAnswer,
    HolepunchMessage,
    HyperDht,
)
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.router import MAX_PENDING

FAST = {"request_timeout": 0.2, "retries": 2, "query_retries": 1}


@pytest.fixture
async def network() -> AsyncIterator[list[HyperDht]]:
    """A bootstrapper and 8 persistent HyperDHT nodes (k=5 so queries walk)."""
    async with python_dht(8, k=5, **FAST) as nodes:
        yield nodes


class _Server:
    """A stand-in for helper B's server: registers callbacks and announces through relays."""

    def __init__(self, dht: HyperDht, keypair: KeyPair) -> None:
        self.dht = dht
        self.keypair = keypair
        self.target = blake2b256(keypair.public_key)
        self.handshakes: list[tuple[HandshakeMessage, Address]] = []
        self.punches: list[HolepunchMessage] = []
        self.announcer = Announcer(dht, keypair, ping_interval=0.05, pings_per_cycle=4, query_timeout=5)

    async def on_handshake(self, msg: HandshakeMessage, req: IncomingRequest) -> HandshakeAnswer | None:
        self.handshakes.append((msg, req.address))
        if msg.noise == b"drop":
            return None
        return HandshakeAnswer(b"server:" + msg.noise)

    async def on_holepunch(self, msg: HolepunchMessage, req: IncomingRequest) -> HolepunchAnswer | None:
        self.punches.append(msg)
        return HolepunchAnswer(b"punch:" + msg.payload)

    async def listen(self) -> None:
        state = ForwardState(
            None,
            self.announcer.record,
            on_peer_handshake=self.on_handshake,
            on_peer_holepunch=self.on_holepunch,
        )
        self.dht.router.set(self.target, state)
        await asyncio.wait_for(self.announcer.start(), 10)

    async def close(self) -> None:
        await asyncio.wait_for(self.announcer.stop(), 10)
        self.dht.router.delete(self.target)


async def _ephemeral(network: list[HyperDht]) -> HyperDht:
    # ephemeral and single-socket (not adaptive), so the address others see is `address`
    return await HyperDht.create(bootstrap=[str(network[0].address)], ephemeral=True, k=5, **FAST)


async def test_relayed_handshake_and_holepunch(network: list[HyperDht]) -> None:
    # both ends ephemeral: neither is in any table, so everything must go through relays
    server_dht = await _ephemeral(network)
    client = await _ephemeral(network)
    server = _Server(server_dht, key_pair())
    try:
        await server.listen()
        assert len(server.announcer.relays) == 3
        assert server.announcer.relay_addresses == [r.relay_address for r in server.announcer.relays]
        found = [r async for r in client.find_peer(server.keypair.public_key)]
        relays = {r.from_address for r in found}
        assert relays == set(server.announcer.relay_addresses)
        assert all(r.peer.public_key == server.keypair.public_key for r in found)

        relay = found[0].from_address
        res = await asyncio.wait_for(client.router.peer_handshake(server.target, b"hi", relay, retries=1), 5)
        assert res.noise == b"server:hi"
        assert res.relayed and res.server_address == server_dht.address
        msg, came_from = server.handshakes[-1]
        assert msg == HandshakeMessage(b"hi", client.address)  # the relay filled in the client
        assert came_from == relay

        punch = await asyncio.wait_for(
            client.router.peer_holepunch(server.target, 7, b"p1", relay, retries=1), 5
        )
        assert punch.payload == b"punch:p1"
        assert punch.peer_address == server_dht.address
        assert server.punches[-1] == HolepunchMessage(7, b"p1", client.address)

        # through a node that is not a relay, naming the relay: two relay hops
        other = next(n for n in network[1:] if n.address not in relays)
        res = await asyncio.wait_for(
            client.router.peer_handshake(
                server.target, b"two", other.address, relay_address=relay, retries=1
            ),
            5,
        )
        assert res.noise == b"server:two" and res.relayed
        assert server.handshakes[-1][0] == HandshakeMessage(b"two", client.address)

        # a node without the route answers empty (with closer nodes): that is a bad reply
        with pytest.raises(BadHandshakeReply):
            await asyncio.wait_for(
                client.router.peer_handshake(server.target, b"x", other.address, retries=1), 5
            )
        # a server that declines stays silent: the client times out
        with pytest.raises(RequestTimeout):
            await asyncio.wait_for(
                client.router.peer_handshake(server.target, b"drop", relay, retries=0, timeout=0.3), 5
            )
    finally:
        await server.close()
        await client.close()
        await server_dht.close()


async def test_announcer_stop_unannounces_and_refresh_reannounces(network: list[HyperDht]) -> None:
    server_dht = await _ephemeral(network)
    client = await _ephemeral(network)
    server = _Server(server_dht, key_pair())
    try:
        await server.listen()
        first = server.announcer.updates
        server.announcer.refresh()
        for _ in range(100):
            if server.announcer.updates > first:
                break
            await asyncio.sleep(0.02)
        assert server.announcer.updates > first
        assert [r async for r in client.find_peer(server.keypair.public_key)]
        await server.close()
        assert [r async for r in client.find_peer(server.keypair.public_key)] == []
        # its own record is also gone from lookups of the target
        assert [r async for r in client.lookup(server.target)] == []
    finally:
        await server.close()
        await client.close()
        await server_dht.close()


async def test_announcer_moves_off_a_dead_relay(network: list[HyperDht]) -> None:
    server_dht = await _ephemeral(network)
    client = await _ephemeral(network)
    server = _Server(server_dht, key_pair())
    try:
        await server.listen()
        dead = server.announcer.relays[0].relay_address
        victim = next(n for n in network if n.address == dead)
        await victim.close()
        # the pings notice, the announcer re-runs and picks live relays only
        for _ in range(200):
            if server.announcer.relays and dead not in server.announcer.relay_addresses:
                break
            await asyncio.sleep(0.05)
        assert dead not in server.announcer.relay_addresses
        assert server.announcer.relays
        found = {r.from_address async for r in client.find_peer(server.keypair.public_key)}
        assert found and dead not in found
    finally:
        await server.close()
        await client.close()
        await server_dht.close()


async def test_malformed_router_messages_are_dropped(network: list[HyperDht]) -> None:
    client = await _ephemeral(network)
    try:
        target = blake2b256(b"nobody")
        for cmd, value in (
            (C.PEER_HANDSHAKE, b"\xff\xff\xff"),
            (C.PEER_HANDSHAKE, m.encode(m.handshake, m.Handshake(C.FROM_SERVER, b"n"))),  # no peer address
            (C.PEER_HOLEPUNCH, b"\x00"),
            (C.PEER_HOLEPUNCH, m.encode(m.holepunch, m.Holepunch(C.FROM_CLIENT, 1, b"x"))),  # nowhere to go
        ):
            with pytest.raises(RequestTimeout):
                await client.node.request(
                    cmd, network[2].address, target=target, value=value, retries=0, timeout=0.2
                )
        assert (await client.node.ping(network[2].address)).error == 0
    finally:
        await client.close()


async def test_addresses_named_in_messages_obey_the_node_filter(network: list[HyperDht]) -> None:
    """A relay restricted by filter_node is not steered elsewhere by a forged relay/peer address."""
    relay = await HyperDht.create(
        bootstrap=[str(network[0].address)],
        ephemeral=False,
        k=5,
        filter_node=lambda a: a.host == "127.0.0.1",
        **FAST,
    )
    client = await _ephemeral(network)
    try:
        target = blake2b256(b"anyone")
        elsewhere = Address("127.0.0.2", 9)
        hs = m.Handshake(C.FROM_CLIENT, b"n", relay_address=elsewhere)
        hp = m.Holepunch(C.FROM_CLIENT, 1, b"p", peer_address=elsewhere)
        back = m.Handshake(C.FROM_SERVER, b"n", peer_address=elsewhere)
        for cmd, value in (
            (C.PEER_HANDSHAKE, m.encode(m.handshake, hs)),
            (C.PEER_HOLEPUNCH, m.encode(m.holepunch, hp)),
            (C.PEER_HANDSHAKE, m.encode(m.handshake, back)),
        ):
            with pytest.raises(RequestTimeout):
                await client.node.request(
                    cmd, relay.address, target=target, value=value, retries=0, timeout=0.2
                )
        assert relay.router.stats["relayed_handshakes"] == relay.router.stats["relayed_holepunches"] == 0
        # the same through a node without a filter is forwarded (the JS behaviour)
        open_node = network[3]
        with pytest.raises(RequestTimeout):
            await client.node.request(
                C.PEER_HANDSHAKE,
                open_node.address,
                target=target,
                value=m.encode(m.handshake, hs),
                retries=0,
                timeout=0.2,
            )
        assert open_node.router.stats["relayed_handshakes"] == 1
    finally:
        await client.close()
        await relay.close()


async def test_closing_the_dht_stops_its_announcers(network: list[HyperDht]) -> None:
    server_dht = await _ephemeral(network)
    client = await _ephemeral(network)
    try:
        announcer = Announcer(server_dht, key_pair(), ping_interval=0.05, query_timeout=5)
        await asyncio.wait_for(announcer.start(), 10)
        assert [r async for r in client.find_peer(announcer.keypair.public_key)]
        await asyncio.wait_for(server_dht.close(), 10)
        assert announcer.stopped
        assert [r async for r in client.find_peer(announcer.keypair.public_key)] == []
    finally:
        await client.close()
        await server_dht.close()


async def test_a_flood_of_handshakes_for_a_stuck_server_is_bounded(network: list[HyperDht]) -> None:
    node = network[2]
    kp = key_pair()
    target = blake2b256(kp.public_key)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def stuck(msg: HandshakeMessage, req: IncomingRequest) -> HandshakeAnswer | None:
        await never
        return None

    node.router.set(
        target, ForwardState(None, m.encode(m.peer, m.Peer(kp.public_key)), on_peer_handshake=stuck)
    )
    value = m.encode(m.handshake, m.Handshake(C.FROM_CLIENT, b"noise"))
    extra = 50
    for tid in range(MAX_PENDING + extra):
        request = Request(tid=tid, to=node.address, command=C.PEER_HANDSHAKE, target=target, value=value)
        assert node.router.handle(IncomingRequest(Address("127.0.0.1", 9), None, request, node.node))
    await asyncio.sleep(0)
    assert node.router.stats["dropped"] == extra
    await node.router.close()  # cancels the stuck callbacks, bounded
    assert node.router.stats["served"] == 0
