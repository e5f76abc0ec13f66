"""Python HyperDht against npm hyperdht 6.34.0 (interop/peers/hyperdht_peer.js), all on 127.0.0.1.

What it proves: records announced by one side are found by the other's lookups and removed by
its unannounce; mutable and immutable values put by one side are read and verified by the
other (JS checks our signatures, we check theirs); a mixed DHT of about 20 nodes (half Python,
half JS) answers lookups from both sides, and keeps answering when storing nodes go away;
relaying works across implementations: hyperdht's own router client talks through JS relays
to a Python server's router entry, a Python client talks through Python or JS relays to a JS
router entry kept announced by hyperdht's own Announcer, and a real JS client connects to a
real JS server (Noise, holepunch) with only Python nodes to relay for them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import pytest

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import key_pair
from hyperlobby.swarm.dht_rpc import Address, IncomingRequest, xor_distance
from hyperlobby.swarm.hyperdht import (
    Announcer,
    ForwardState,
    HandshakeAnswer,
    HandshakeMessage,
    HolepunchAnswer,
    HolepunchMessage,
    HyperDht,
)
from hyperlobby.swarm.hyperdht.persistent import sign_mutable, verify_mutable
from js_peer import JsLinePeer

pytestmark = pytest.mark.interop

FAST = {"request_timeout": 0.5, "retries": 3, "query_retries": 2}


class JsHyperDht(JsLinePeer):
    """The JS hyperdht nodes (interop/peers/hyperdht_peer.js)."""

    name = "JS hyperdht nodes"

    @classmethod
    async def start(cls, count: int, *bootstrap: str) -> JsHyperDht:
        return await cls.launch("hyperdht_peer.js", str(count), *bootstrap)

    @property
    def bootstrap(self) -> list[str]:
        return [f"{b['host']}:{b['port']}" for b in self.info["bootstrap"]]

    @property
    def addresses(self) -> list[Address]:
        return [Address("127.0.0.1", n["port"]) for n in self.info["nodes"]]

    async def close(self, timeout: float = 10) -> None:
        await super().close(timeout)


async def _python_nodes(bootstrap: list[str], count: int) -> list[HyperDht]:
    nodes = []
    for _ in range(count):
        nodes.append(
            await asyncio.wait_for(HyperDht.create(bootstrap=bootstrap, ephemeral=False, **FAST), 20)
        )
    return nodes


async def _close_all(nodes: list[HyperDht]) -> None:
    await asyncio.gather(*(n.close() for n in nodes), return_exceptions=True)


@pytest.fixture
async def testnet() -> AsyncIterator[tuple[JsHyperDht, list[HyperDht]]]:
    """A JS testnet (createTestnet, 6 nodes) that 4 persistent Python nodes join."""
    js = await JsHyperDht.start(6)
    nodes: list[HyperDht] = []
    try:
        nodes = await _python_nodes(js.bootstrap, 4)
        # a second self-lookup so the Python nodes also learn about each other
        await asyncio.wait_for(asyncio.gather(*(n.node.bootstrap() for n in nodes)), 20)
        yield js, nodes
    finally:
        await js.close()  # first: its servers unannounce from the Python nodes as they stop
        await _close_all(nodes)


def _seed_whose_relays(js: JsHyperDht, py: list[HyperDht], want: Callable[[list[bool]], bool]) -> bytes:
    """A key seed whose three closest nodes (the relays an announcer picks) satisfy ``want``.

    ``want`` gets, for the 3 nodes closest to BLAKE2b(public key), whether each is a JS node.
    """
    js_ids = [bytes.fromhex(n["id"]) for n in js.info["nodes"] if n["id"]]
    py_ids = [n.id for n in py if n.id is not None]
    for _ in range(500):
        seed = os.urandom(32)
        target = blake2b256(key_pair(seed).public_key)
        ranked = sorted(
            [(xor_distance(target, i), True) for i in js_ids]
            + [(xor_distance(target, i), False) for i in py_ids]
        )
        if want([is_js for _, is_js in ranked[:3]]):
            return seed
    pytest.fail(
        f"no key seed with the wanted relays in 500 tries ({len(js_ids)} JS, {len(py_ids)} Python ids)"
    )


async def _py_lookup(dht: HyperDht, topic: bytes) -> list[set[bytes]]:
    return [{p.public_key for p in r.peers} async for r in dht.lookup(topic)]


async def _js_lookup(js: JsHyperDht, frm: int, topic: bytes) -> list[set[bytes]]:
    res = await js.call(cmd="lookup", **{"from": frm}, topic=topic.hex())
    return [{bytes.fromhex(p["publicKey"]) for p in r["peers"]} for r in res["replies"]]


async def test_announce_lookup_unannounce_both_ways(testnet: tuple[JsHyperDht, list[HyperDht]]) -> None:
    js, _py = testnet
    client = await HyperDht.create(bootstrap=js.bootstrap, **FAST)
    try:
        # Python announces (with relay addresses), JS finds it
        topic = os.urandom(32)
        kp = key_pair(os.urandom(32))
        relay = Address("127.0.0.1", 4001)
        await asyncio.wait_for(client.announce(topic, kp, [relay]), 20)
        res = await js.call(cmd="lookup", **{"from": 2}, topic=topic.hex())
        holders = [
            r for r in res["replies"] if any(p["publicKey"] == kp.public_key.hex() for p in r["peers"])
        ]
        assert len(holders) >= 3
        assert holders[0]["peers"][0]["relayAddresses"] == [{"host": "127.0.0.1", "port": 4001}]
        # JS announces, Python finds both
        seed = os.urandom(32)
        js_pk = bytes.fromhex(
            (await js.call(cmd="announce", **{"from": 3}, topic=topic.hex(), seed=seed.hex()))["publicKey"]
        )
        found = await _py_lookup(client, topic)
        assert sum(1 for s in found if {kp.public_key, js_pk} <= s) >= 3
        # JS unannounces: Python no longer sees it; Python unannounces: JS sees nothing
        await js.call(cmd="unannounce", **{"from": 3}, topic=topic.hex(), seed=seed.hex())
        found = await _py_lookup(client, topic)
        assert found and all(js_pk not in s for s in found)
        assert await asyncio.wait_for(client.unannounce(topic, kp), 20) >= 3
        assert await _js_lookup(js, 2, topic) == []
    finally:
        await client.close()


async def test_mutable_and_immutable_records_both_ways(testnet: tuple[JsHyperDht, list[HyperDht]]) -> None:
    js, py = testnet
    client = await HyperDht.create(bootstrap=js.bootstrap, **FAST)
    try:
        # immutable: JS puts, Python gets (hash checked); Python puts, JS gets
        value = os.urandom(100)
        h = bytes.fromhex((await js.call(cmd="immutablePut", **{"from": 1}, value=value.hex()))["hash"])
        assert h == blake2b256(value)
        got = await asyncio.wait_for(client.immutable_get(h), 20)
        assert got is not None and got.value == value
        value2 = b"from python " + os.urandom(8)
        put = await asyncio.wait_for(py[1].immutable_put(value2), 20)
        assert (await js.call(cmd="immutableGet", **{"from": 4}, hash=put.target.hex()))[
            "value"
        ] == value2.hex()

        # mutable: same seed gives the same key and the same signature on both sides
        seed = os.urandom(32)
        kp = key_pair(seed)
        res = await js.call(cmd="mutablePut", **{"from": 2}, seed=seed.hex(), value=b"js v1".hex(), seq=1)
        assert bytes.fromhex(res["publicKey"]) == kp.public_key
        assert bytes.fromhex(res["signature"]) == sign_mutable(1, b"js v1", kp)
        rec = await asyncio.wait_for(client.mutable_get(kp.public_key), 20)
        assert rec is not None and (rec.seq, rec.value) == (1, b"js v1")
        assert verify_mutable(rec.signature, rec.seq, rec.value, kp.public_key)
        # Python updates the same record; JS reads the newer one
        await asyncio.wait_for(client.mutable_put(kp, b"py v2", seq=2), 20)
        res = await js.call(cmd="mutableGet", **{"from": 5}, publicKey=kp.public_key.hex())
        assert (res["seq"], bytes.fromhex(res["value"])) == (2, b"py v2")
        # a Python-only key read by JS, and JS's seq filter
        kp2 = key_pair()
        await asyncio.wait_for(py[0].mutable_put(kp2, b"only python", seq=7), 20)
        res = await js.call(cmd="mutableGet", **{"from": 1}, publicKey=kp2.public_key.hex())
        assert bytes.fromhex(res["value"]) == b"only python"
        res = await js.call(cmd="mutableGet", **{"from": 1}, publicKey=kp2.public_key.hex(), seq=8)
        assert res["value"] is None
    finally:
        await client.close()


async def test_mixed_dht_of_twenty_nodes() -> None:
    """10 Python nodes (one the bootstrapper) and 10 JS nodes bootstrapping through Python."""
    boot = await HyperDht.bootstrapper("127.0.0.1", **FAST)
    py: list[HyperDht] = [boot]
    js: JsHyperDht | None = None
    client: HyperDht | None = None
    try:
        py += await _python_nodes([str(boot.address)], 9)
        js = await JsHyperDht.start(10, str(boot.address))
        await asyncio.wait_for(asyncio.gather(*(n.node.bootstrap() for n in py[1:])), 20)
        js_addrs = set(js.addresses)
        assert js_addrs & set(py[5].node.nodes()), "JS nodes are in Python tables"
        client = await HyperDht.create(bootstrap=[str(boot.address)], **FAST)
        js_client = (await js.call(cmd="node", ephemeral=True))["index"]

        topic = os.urandom(32)
        kp = key_pair()
        await asyncio.wait_for(client.announce(topic, kp), 20)
        seed = os.urandom(32)
        js_pk = bytes.fromhex(
            (await js.call(cmd="announce", **{"from": js_client}, topic=topic.hex(), seed=seed.hex()))[
                "publicKey"
            ]
        )
        both = {kp.public_key, js_pk}
        py_found = await _py_lookup(client, topic)
        js_found = await _js_lookup(js, js_client, topic)
        assert sum(1 for s in py_found if both <= s) >= 3
        assert sum(1 for s in js_found if both <= s) >= 3

        # storage is spread over both implementations
        holders = [
            r.from_address async for r in client.lookup(topic) if both <= {p.public_key for p in r.peers}
        ]
        assert any(a in js_addrs for a in holders) and any(a not in js_addrs for a in holders)

        # nodes that go away: one JS and one Python holder die; lookups still find both records
        # and no reply comes from the dead
        dead_js = next(a for a in holders if a in js_addrs)
        dead_py = next(a for a in holders if a not in js_addrs)
        await js.call(cmd="destroy", index=js.addresses.index(dead_js))
        victim = next(n for n in py if n.address == dead_py)
        await victim.close()
        py.remove(victim)
        replies = [r async for r in client.lookup(topic)]
        sources = {r.from_address for r in replies}
        assert dead_js not in sources and dead_py not in sources
        assert sum(1 for r in replies if both <= {p.public_key for p in r.peers}) >= 1
        # the closest nodes a query settles on (what an announce would commit to) skip the dead
        query = await client.lookup(topic).finished()
        assert dead_js not in query.closest_nodes and dead_py not in query.closest_nodes
        # (one resend per request on the JS side: hyperdht's default of 5 waits ~6 s per dead node)
        res = await js.call(cmd="lookup", **{"from": js_client}, topic=topic.hex(), retries=1)
        peers = [{bytes.fromhex(p["publicKey"]) for p in r["peers"]} for r in res["replies"]]
        assert sum(1 for s in peers if both <= s) >= 1
        js_sources = {Address(r["from"]["host"], r["from"]["port"]) for r in res["replies"]}
        assert js_sources and dead_js not in js_sources and dead_py not in js_sources
    finally:
        if client is not None:
            await client.close()
        if js is not None:
            await js.close()
        await _close_all(py)


class _PyServer:
    """A Python router entry with callbacks that answer without Noise (the relay path is the point)."""

    def __init__(self, dht: HyperDht, seed: bytes) -> None:
        self.dht = dht
        self.keypair = key_pair(seed)
        self.target = blake2b256(self.keypair.public_key)
        self.handshakes: list[HandshakeMessage] = []
        self.punches: list[HolepunchMessage] = []
        self.announcer = Announcer(dht, self.keypair, query_timeout=10)

    async def _hs(self, msg: HandshakeMessage, req: IncomingRequest) -> HandshakeAnswer:
        self.handshakes.append(msg)
        return HandshakeAnswer(b"py:" + msg.noise)

    async def _hp(self, msg: HolepunchMessage, req: IncomingRequest) -> HolepunchAnswer:
        self.punches.append(msg)
        return HolepunchAnswer(b"py:" + msg.payload)

    async def listen(self) -> None:
        self.dht.router.set(self.target, ForwardState(None, self.announcer.record, self._hs, self._hp))
        await asyncio.wait_for(self.announcer.start(), 20)


async def test_js_router_client_reaches_python_server_through_js_relays(
    testnet: tuple[JsHyperDht, list[HyperDht]],
) -> None:
    js, py = testnet
    server_dht = await HyperDht.create(bootstrap=js.bootstrap, ephemeral=True, **FAST)
    # mostly JS relays (all three is not always possible: it depends on where the ids fall)
    server = _PyServer(server_dht, _seed_whose_relays(js, py, lambda kinds: sum(kinds) >= 2))
    try:
        await server.listen()
        relays = server.announcer.relay_addresses
        assert len(relays) == 3
        assert len(set(relays) & set(js.addresses)) >= 2
        # hyperdht's findPeer sees the route our Announcer stored (JS nodes verified our signature)
        client_index = (await js.call(cmd="node", ephemeral=True))["index"]
        res = await js.call(
            cmd="findPeer", **{"from": client_index}, publicKey=server.keypair.public_key.hex()
        )
        found = {Address(r["from"]["host"], r["from"]["port"]) for r in res["replies"]}
        assert found == set(relays)
        for relay in relays:
            res = await js.call(
                cmd="rawHandshake",
                **{"from": client_index},
                target=server.target.hex(),
                noise=b"hello".hex(),
                host=relay.host,
                port=relay.port,
            )
            assert bytes.fromhex(res["noise"]) == b"py:hello"
            assert res["relayed"] is True
            assert res["serverAddress"] == {"host": "127.0.0.1", "port": server_dht.address.port}
            res = await js.call(
                cmd="rawHolepunch",
                **{"from": client_index},
                target=server.target.hex(),
                id=3,
                payload=b"punch".hex(),
                host=relay.host,
                port=relay.port,
            )
            assert bytes.fromhex(res["payload"]) == b"py:punch"
        client_port = next(m.peer_address for m in server.handshakes if m.peer_address is not None).port
        assert all(m.peer_address == Address("127.0.0.1", client_port) for m in server.handshakes)
        assert [p.id for p in server.punches] == [3] * len(relays)

        # two relay hops across implementations: the JS client asks a Python node that holds no
        # route, naming a JS relay; Python forwards (FROM_RELAY), the JS relay passes it on as
        # FROM_SECOND_RELAY, our server answers the Python node (FROM_SERVER), which replies
        js_relay = next(a for a in relays if a in set(js.addresses))
        first_hop = next(n for n in py if n.address not in relays)
        res = await js.call(
            cmd="rawHandshake",
            **{"from": client_index},
            target=server.target.hex(),
            noise=b"two hops".hex(),
            host=first_hop.address.host,
            port=first_hop.address.port,
            relayAddress={"host": js_relay.host, "port": js_relay.port},
        )
        assert bytes.fromhex(res["noise"]) == b"py:two hops" and res["relayed"] is True
        assert first_hop.router.stats["relayed_handshakes"] == 1
        assert server.handshakes[-1] == HandshakeMessage(b"two hops", Address("127.0.0.1", client_port))
    finally:
        await server.announcer.stop()
        await server_dht.close()


async def test_python_client_reaches_js_server_through_mixed_relays(
    testnet: tuple[JsHyperDht, list[HyperDht]],
) -> None:
    js, py = testnet
    client = await HyperDht.create(bootstrap=js.bootstrap, ephemeral=True, **FAST)
    try:
        server_index = (await js.call(cmd="node", ephemeral=True))["index"]
        seed = _seed_whose_relays(js, py, lambda kinds: any(kinds) and not all(kinds))  # JS and Python
        res = await js.call(cmd="fakeServer", **{"from": server_index}, seed=seed.hex())
        pk = bytes.fromhex(res["publicKey"])
        target = blake2b256(pk)
        found = [r async for r in client.find_peer(pk)]
        assert {r.peer.public_key for r in found} == {pk}
        relays = [r.from_address for r in found]
        assert len(relays) == len(res["relays"])
        for relay in relays:
            hs = await asyncio.wait_for(client.router.peer_handshake(target, b"hi", relay), 10)
            assert hs.noise == b"js:hi" and hs.relayed
            hp = await asyncio.wait_for(client.router.peer_holepunch(target, 1, b"pp", relay), 10)
            assert hp.payload == b"js:pp"
        assert set(relays) & set(js.addresses) and set(relays) - set(js.addresses)
        for n in py:
            if n.address in relays:
                assert n.router.stats["relayed_handshakes"] == 1
                assert n.router.stats["relayed_holepunches"] == 1
    finally:
        await client.close()


async def test_js_client_connects_to_js_server_through_python_relays() -> None:
    """Only Python nodes in the DHT: a real hyperdht connect (Noise + holepunch) relayed by them."""
    boot = await HyperDht.bootstrapper("127.0.0.1", **FAST)
    py: list[HyperDht] = [boot]
    js: JsHyperDht | None = None
    try:
        py += await _python_nodes([str(boot.address)], 6)
        js = await JsHyperDht.start(0, str(boot.address))
        server = (await js.call(cmd="node", ephemeral=True))["index"]
        client = (await js.call(cmd="node", ephemeral=True))["index"]
        seed = os.urandom(32)
        pk = (await js.call(cmd="listen", **{"from": server}, seed=seed.hex()))["publicKey"]
        message = os.urandom(16)
        res = await js.call(
            cmd="connect", **{"from": client}, publicKey=pk, message=message.hex(), timeout=40
        )
        assert bytes.fromhex(res["echoed"]) == message
        assert sum(n.router.stats["relayed_handshakes"] for n in py) >= 1
    finally:
        if js is not None:
            await js.close()
        await _close_all(py)
