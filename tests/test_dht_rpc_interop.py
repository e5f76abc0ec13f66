"""Python dht-rpc nodes in a JS dht-rpc network (interop/peers/dht_rpc_peer.js), all on 127.0.0.1.

The JS side is npm dht-rpc itself: a bootstrapper and persistent nodes. The checks: a Python
node bootstraps through the JS bootstrapper, the JS nodes land in its table and it lands in
theirs; JS pings and FIND_NODEs are answered with a valid id; lookups from either side return
the true nearest nodes of the mixed network; user commands and tokens work both ways; JS nodes
can bootstrap through a Python node; a Python node's garbage does not hurt the JS side.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hyperlobby.swarm.dht_rpc import DELAYED_PING, Address, DhtNode, IncomingRequest, peer_id, xor_distance
from js_peer import JsLinePeer

pytestmark = pytest.mark.interop

FAST = {"request_timeout": 0.5, "retries": 3, "query_retries": 2}


class JsDht(JsLinePeer):
    """The JS dht-rpc network (interop/peers/dht_rpc_peer.js)."""

    name = "JS dht-rpc network"

    @classmethod
    async def start(cls, count: int, *extra: str) -> JsDht:
        return await cls.launch("dht_rpc_peer.js", str(count), *extra, ready_timeout=30)

    async def call(self, timeout: float = 15, **cmd: Any) -> dict[str, Any]:
        return await super().call(timeout, **cmd)

    @property
    def addresses(self) -> list[Address]:
        return [Address("127.0.0.1", n["port"]) for n in self.info["nodes"]]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.info['bootstrap']}"

    async def close(self, timeout: float = 5) -> None:
        await super().close(timeout)


@pytest.fixture
async def js_network() -> AsyncIterator[JsDht]:
    js = await JsDht.start(4)
    try:
        yield js
    finally:
        await js.close()


def _key(d: dict[str, Any]) -> str:
    return f"{d['host']}:{d['port']}"


async def test_python_node_joins_js_network(js_network: JsDht) -> None:
    js = js_network
    for n in js.info["nodes"]:
        assert n["id"] == peer_id("127.0.0.1", n["port"]).hex()
    async with await DhtNode.create(bootstrap=[js.bootstrap], ephemeral=False, **FAST) as py:
        me = f"127.0.0.1:{py.address.port}"
        # the JS nodes' replies told us our address, and the vote agrees
        assert (py.host, py.port) == ("127.0.0.1", py.address.port)
        # JS nodes are in our table, with the ids they proved
        assert set(py.nodes()) == set(js.addresses)
        for entry in py.table:
            assert entry.id == peer_id(entry.host, entry.port)
        # and we are in every JS table (our requests carried our id, JS verified it)
        tables = (await js.call(cmd="table"))["tables"]
        assert all(me in t for t in tables)

        # JS pings us and sees our id and its own address
        pong = await js.call(cmd="ping", **{"from": 2}, host="127.0.0.1", port=py.address.port)
        assert pong["id"] == py.id.hex() if py.id else False
        assert pong["to"]["port"] == js.addresses[2].port

        # mixed lookups: everyone's ids, then the true nearest from both sides
        ids = {Address("127.0.0.1", n["port"]): bytes.fromhex(n["id"]) for n in js.info["nodes"]}
        assert py.id is not None
        ids[py.address] = py.id
        for _ in range(3):
            target = os.urandom(32)
            truth = sorted(ids, key=lambda a: xor_distance(target, ids[a]))
            got = [r.address for r in await asyncio.wait_for(py.find_node(target), 15)]
            assert got == [a for a in truth if a != py.address]
            js_found = (await js.call(cmd="find", **{"from": 1}, target=target.hex()))["closest"]
            assert [_key(n) for n in js_found] == [str(a) for a in truth if a != js.addresses[1]]
            assert any(_key(n) == me and n["id"] == py.id.hex() for n in js_found)


async def test_user_commands_both_ways(js_network: JsDht) -> None:
    js = js_network
    async with await DhtNode.create(bootstrap=[js.bootstrap], ephemeral=False, **FAST) as py:
        target = os.urandom(32)
        reply = await py.request(42, js.addresses[1], target=target, value=b"hello")
        assert reply.error == 0 and reply.value == b"js:hello"
        assert reply.id == peer_id("127.0.0.1", js.addresses[1].port)
        assert reply.token is not None and reply.closer_nodes
        # the JS node accepts its own token back, and rejects a wrong one
        again = await py.request(42, js.addresses[1], value=b"x", token=reply.token)
        assert again.error == 0
        bad = await py.request(42, js.addresses[1], value=b"x", token=bytes(32))
        assert bad.error == 2
        unknown = await py.request(7, js.addresses[1])
        assert unknown.error == 1

        def handler(req: IncomingRequest) -> bool | None:
            if req.command != 42:
                return False
            req.reply(b"py:" + (req.value or b""))
            return True

        py.on_request = handler
        res = await js.call(
            cmd="request",
            **{"from": 3},
            host="127.0.0.1",
            port=py.address.port,
            command=42,
            target=target.hex(),
            value=b"yo".hex(),
        )
        assert bytes.fromhex(res["value"]) == b"py:yo"
        assert res["id"] == py.id.hex() if py.id else False
        assert res["token"] is not None and len(res["closer"]) >= 4
        res2 = await js.call(
            cmd="request",
            **{"from": 3},
            host="127.0.0.1",
            port=py.address.port,
            command=42,
            token=res["token"],
        )
        assert res2["error"] == 0
        res3 = await js.call(cmd="request", **{"from": 3}, host="127.0.0.1", port=py.address.port, command=5)
        assert res3["error"] == 1


async def test_js_nodes_bootstrap_through_python() -> None:
    """A Python bootstrapper with Python nodes; JS nodes join through it and lookups mix."""
    py_nodes: list[DhtNode] = []
    js: JsDht | None = None
    try:
        boot = await DhtNode.bootstrapper("127.0.0.1", **FAST)
        py_nodes.append(boot)
        for _ in range(3):
            py_nodes.append(await DhtNode.create(bootstrap=[boot.address], ephemeral=False, **FAST))
        js = await JsDht.start(3, str(boot.address))
        js_addrs = set(js.addresses)
        # the JS nodes contacted our bootstrapper with verified ids
        assert js_addrs - {Address("127.0.0.1", js.info["bootstrap"])} <= set(boot.nodes())
        # a fresh Python node reaches everyone through our bootstrapper alone
        async with await DhtNode.create(bootstrap=[boot.address], ephemeral=False, **FAST) as late:
            all_ids = {n.address: n.id for n in py_nodes}
            all_ids.update(
                {Address("127.0.0.1", n["port"]): bytes.fromhex(n["id"]) for n in js.info["nodes"]}
            )
            target = os.urandom(32)
            found = [r.address for r in await asyncio.wait_for(late.find_node(target), 15)]
            reachable = sorted(all_ids, key=lambda a: xor_distance(target, all_ids[a] or b""))
            assert found[:5] == reachable[:5]
            assert js_addrs & set(found)
    finally:
        if js is not None:
            await js.close()
        await asyncio.gather(*(n.close() for n in py_nodes))


async def test_garbage_to_js_and_from_js_is_harmless(js_network: JsDht) -> None:
    js = js_network
    async with await DhtNode.create(bootstrap=[js.bootstrap], ephemeral=False, **FAST) as py:
        rng = os.urandom
        for i in range(200):
            prefix = (b"\x03", b"\x13", b"")[i % 3]
            py.socket.send(prefix + rng(i % 90), js.addresses[i % len(js.addresses)].as_tuple())
        await asyncio.sleep(0.2)
        # the JS network still answers and still lists us
        pong = await py.ping(js.addresses[1])
        assert pong.error == 0 and pong.id == peer_id("127.0.0.1", js.addresses[1].port)
        tables = (await js.call(cmd="table"))["tables"]
        assert all(f"127.0.0.1:{py.address.port}" in t for t in tables)


async def test_query_and_commit_against_js(js_network: JsDht) -> None:
    """A user-command query over JS nodes, then a commit with the tokens JS handed out."""
    js = js_network
    async with await DhtNode.create(bootstrap=[js.bootstrap], **FAST) as py:  # ephemeral client
        q = await py.query(42, os.urandom(32), b"announce", timeout=15)
        assert set(q.closest_nodes) == set(js.addresses)
        assert all(r.response.value == b"js:announce" and r.response.token for r in q.closest_replies)
        results = await py.commit(q, value=b"commit")
        assert [r.value for r in results if not isinstance(r, Exception)] == [b"js:commit"] * len(
            js.addresses
        )


async def test_adaptive_python_node_becomes_persistent_among_js(js_network: JsDht) -> None:
    """JS nodes answer our PING_NAT probes on the port we name; then they add us."""
    js = js_network
    async with await DhtNode.create(bootstrap=[js.bootstrap], adaptive=True, **FAST) as py:
        me = f"127.0.0.1:{py.address.port}"
        assert not any(me in t for t in (await js.call(cmd="table"))["tables"])
        assert await py.update_network_state()
        assert py.id == peer_id("127.0.0.1", py.address.port)
        tables = (await js.call(cmd="table"))["tables"]
        assert all(me in t for t in tables)


async def test_js_clients_probe_python_nodes() -> None:
    """Plain `new DHT()` JS nodes (ephemeral, firewalled) bootstrapping only through Python.

    dht-rpc decides reachability with PING_NAT: "answer me on this other port". Python nodes
    answering it correctly is what lets a JS node conclude it is not firewalled, and then take
    an id (we trigger dht-rpc's own check instead of waiting its ~20 minutes). While ephemeral
    the JS clients must not enter our tables; once persistent they must.
    """
    py_nodes: list[DhtNode] = []
    js: JsDht | None = None
    try:
        boot = await DhtNode.bootstrapper("127.0.0.1", **FAST)
        py_nodes.append(boot)
        for _ in range(5):
            py_nodes.append(await DhtNode.create(bootstrap=[boot.address], ephemeral=False, **FAST))
        js = await JsDht.start(2, "--adaptive", "--only-extra", str(boot.address))
        clients = js.info["nodes"][1:]
        assert all(c["ephemeral"] and c["id"] is None for c in clients)
        client_addrs = {Address("127.0.0.1", c["port"]) for c in clients}
        for node in py_nodes:
            assert not client_addrs & set(node.nodes())
        ids = {n.address: n.id for n in py_nodes}
        target = os.urandom(32)
        truth = sorted(ids, key=lambda a: xor_distance(target, ids[a] or b""))
        found = (await js.call(cmd="find", target=target.hex(), **{"from": 1}))["closest"]
        assert [_key(n) for n in found] == [str(a) for a in truth]

        # Under load one PING_NAT round can miss its replies (dht-rpc then counts the node as
        # firewalled and simply checks again later); a few rounds, each a real probe, are allowed.
        for _ in range(3):
            probe = await js.call(cmd="network", persistent=False, **{"from": 1})
            if not probe["firewalled"]:
                break
        assert probe["changed"] and not probe["firewalled"] and probe["ephemeral"]
        for _ in range(3):
            persist = await js.call(cmd="network", persistent=True, **{"from": 2})
            if not persist["ephemeral"]:
                break
        assert persist["changed"] and not persist["ephemeral"]
        js_addr = Address("127.0.0.1", persist["port"])
        assert persist["id"] == peer_id(js_addr.host, js_addr.port).hex()
        assert sum(js_addr in n.nodes() for n in py_nodes) >= 4
    finally:
        if js is not None:
            await js.close()
        await asyncio.gather(*(n.close() for n in py_nodes))


async def test_delayed_ping_with_js(js_network: JsDht) -> None:
    js = js_network
    async with await DhtNode.create(bootstrap=[js.bootstrap], **FAST) as py:
        loop = asyncio.get_running_loop()
        start = loop.time()
        value = (200).to_bytes(4, "little")
        reply = await py.request(DELAYED_PING, js.addresses[1], value=value, internal=True, timeout=1.2)
        assert reply.error == 0 and loop.time() - start >= 0.19
