"""The Swarm on the real Python HyperDht, all on 127.0.0.1: a bootstrapper and a few DHT
nodes make a private network; swarms find each other by topic, connect both ways, dedupe,
replicate a core over the connection, and stop reconnecting after leave. Then two social
nodes find each other by their archives' discovery keys with no address given."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hyperlobby.core.store import Store
from hyperlobby.social.discovery import DhtDiscovery
from hyperlobby.social.identity import Identity
from hyperlobby.social.node import Node, NodeOptions
from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperswarm import Swarm
from hyperlobby.wire.replication import Replication
from social_helpers import make_identity, until
from swarm_helpers import eventually

TOPIC = b"\x5a" * 32
FAST = [0.1, 0.2, 0.4, 2.0]


@contextlib.asynccontextmanager
async def loopback_net(size: int = 3) -> AsyncIterator[list[str]]:
    """A bootstrapper and ``size`` persistent nodes on loopback; yields the bootstrap list."""
    boot = await HyperDht.bootstrapper("127.0.0.1", 0)
    bootstrap = [f"127.0.0.1:{boot.address.port}"]
    nodes: list[HyperDht] = []
    try:
        for _ in range(size):
            nodes.append(await HyperDht.create(bootstrap=bootstrap, ephemeral=False))
        yield bootstrap
    finally:
        for n in nodes:
            await asyncio.wait_for(n.close(), 10)
        await asyncio.wait_for(boot.close(), 10)


async def _swarm(bootstrap: list[str], **kw: Any) -> Swarm:
    # ephemeral, as a swarm's node starts in JS: it stays out of routing tables, so when it
    # closes nobody's queries wait on it
    dht = await HyperDht.create(bootstrap=bootstrap)
    return Swarm(dht, owns_dht=True, backoffs=FAST, jitter=0.0, **kw)


async def test_two_swarms_meet_on_a_topic_and_replicate_a_core() -> None:
    async with loopback_net() as bootstrap:
        a, b = await _swarm(bootstrap), await _swarm(bootstrap)
        writer, reader = Store(":memory:"), Store(":memory:")
        rep_a = Replication(writer, key_pair=a.key_pair)
        rep_b = Replication(reader, key_pair=b.key_pair)
        a.on_connection = lambda conn, info: _adopt(rep_a, conn)
        b.on_connection = lambda conn, info: _adopt(rep_b, conn)
        try:
            core = writer.get(name="log")
            core.append([f"block {i}".encode() for i in range(100)])
            rep_a.add(core)
            copy = reader.get(key=core.key)
            rep_b.add(copy)
            a.join(TOPIC)  # server and client
            assert await asyncio.wait_for(a.flush(), 20)
            b.join(TOPIC)
            assert await asyncio.wait_for(b.flush(), 20)
            await eventually(lambda: len(a.connections) == len(b.connections) == 1, "connected", 20)
            (ca,), (cb,) = a.connections, b.connections
            assert ca.remote_public_key == b.key_pair.public_key
            assert cb.remote_public_key == a.key_pair.public_key
            assert ca.handshake_hash == cb.handshake_hash  # the two ends of one connection
            assert cb.is_initiator and not ca.is_initiator  # b looked up a, a had found nobody
            assert a.peers[b.key_pair.public_key].server and b.peers[a.key_pair.public_key].client
            # replicate the whole core over it, verified block by block
            assert await rep_b.update(copy, timeout=20) == 100
            rep_b.download(copy)
            await rep_b.wait_downloaded(copy, 100, timeout=30)
            assert [copy.get(i) for i in (0, 57, 99)] == [b"block 0", b"block 57", b"block 99"]
        finally:
            await rep_a.close()
            await rep_b.close()
            await _close(a, b)
            writer.close()
            reader.close()


async def test_simultaneous_dials_end_with_one_shared_connection() -> None:
    for _ in range(2):  # fresh keys each time, so both key orders are likely exercised
        async with loopback_net() as bootstrap:
            a, b = await _swarm(bootstrap), await _swarm(bootstrap)
            try:
                await asyncio.gather(a.listen(), b.listen())
                a.join_peer(b.key_pair.public_key)  # both dial at once
                b.join_peer(a.key_pair.public_key)
                await _one_each(a, b)
                await asyncio.sleep(0.5)  # let a losing duplicate finish closing
                (ca,), (cb,) = a.connections, b.connections
                assert ca.handshake_hash == cb.handshake_hash and not ca.closed.done()
                assert ca.is_initiator != cb.is_initiator
            finally:
                await _close(a, b)


async def test_a_peer_that_left_the_topic_is_not_redialled() -> None:
    async with loopback_net() as bootstrap:
        a, b = await _swarm(bootstrap), await _swarm(bootstrap)
        try:
            b.join(TOPIC, server=True, client=False)
            assert await asyncio.wait_for(b.flush(), 20)
            a.join(TOPIC, server=False, client=True)
            assert await asyncio.wait_for(a.flush(), 20)
            await eventually(lambda: len(a.connections) == 1, "a dialled b", 20)
            # a drop while joined is redialled (the short bucket: about 0.1 s here)
            next(iter(a.connections)).close()
            await eventually(lambda: a.stats.client_opened == 2 and len(a.connections) == 1, "redial", 20)
            await a.leave(TOPIC)
            next(iter(a.connections)).close()
            await asyncio.sleep(1.5)  # several times every retry bucket a's drop could land in
            assert not a.connections and a.stats.client_attempted == 2
            assert b.key_pair.public_key not in a.peers
            await eventually(lambda: not b.connections, "b saw the close", 10)
        finally:
            await _close(a, b)


async def test_social_nodes_find_friends_by_discovery_key(tmp_path: Path) -> None:
    """Alice follows Bob; Bob's node is up; Alice's node reads his profile with no address."""
    async with loopback_net() as bootstrap:
        bob_url = make_identity(tmp_path / "bob", "Bob")
        make_identity(tmp_path / "alice", "Alice", [bob_url])
        fast: dict[str, Any] = {"poll_s": 0.3, "read_timeout": 3.0, "control_socket": False}
        bob = Node(Identity.open(tmp_path / "bob"), NodeOptions(bootstrap=tuple(bootstrap), **fast))
        alice_ident = Identity.open(tmp_path / "alice")
        alice = Node(alice_ident, NodeOptions(bootstrap=tuple(bootstrap), **fast))
        try:
            await bob.start()
            assert isinstance(bob.discovery, DhtDiscovery)
            await asyncio.wait_for(bob.discovery.flush(), 20)
            await alice.start()
            # Bob's profile arrives, and Bob shows online: a connection authenticated by his own
            # signing key, found through the DHT by his archive's discovery key alone
            views = await until(
                lambda: _friends(alice),
                lambda v: bool(v) and v[0].name == "Bob" and v[0].status == "online",
                "Bob's profile, online",
                30,
            )
            assert views[0].key == bob.identity.key
        finally:
            await asyncio.wait_for(asyncio.gather(alice.close(), bob.close()), 20)
            alice.identity.close()
            bob.identity.close()


async def _one_each(a: Swarm, b: Swarm) -> None:
    await eventually(lambda: len(a.connections) == len(b.connections) == 1, "one each", 20)


async def _close(*swarms: Swarm) -> None:
    """Close together: one closing after the other would wait on the first one's dead node."""
    await asyncio.wait_for(asyncio.gather(*(s.close() for s in swarms)), 20)


def _adopt(rep: Replication, conn: Any) -> None:
    rep.adopt(conn)


async def _friends(node: Node) -> Any:
    return node.friends()


async def test_leave_and_close_unannounce() -> None:
    async with loopback_net() as bootstrap:
        a, b = await _swarm(bootstrap), await _swarm(bootstrap)
        probe = await HyperDht.create(bootstrap=bootstrap)
        try:
            other = b"\x5b" * 32
            a.join(TOPIC, server=True, client=False)
            a.join(other, server=True, client=False)
            b.join(TOPIC, server=True, client=False)
            assert await a.flush() and await b.flush()
            assert await _announced(probe, TOPIC) == {a.key_pair.public_key, b.key_pair.public_key}
            await a.leave(TOPIC)  # gone from this topic, still under the other
            assert await _announced(probe, TOPIC) == {b.key_pair.public_key}
            assert await _announced(probe, other) == {a.key_pair.public_key}
            await asyncio.wait_for(a.close(), 20)  # closing unannounces what is left
            assert await _announced(probe, other) == set()
        finally:
            await _close(a, b)
            await probe.close()


async def _announced(dht: HyperDht, topic: bytes) -> set[bytes]:
    found: set[bytes] = set()
    async for reply in dht.lookup(topic):
        found.update(p.public_key for p in reply.peers)
    return found
