"""Blind relays between Python and the real JS hyperdht 6.34.0 / blind-relay, on 127.0.0.1.

Every role against the other implementation: JS peers pair through a Python relay, Python
peers through a JS relay (blind-relay's Server, set up as hyperdht's own tests do), and
mixed pairs with the relay named by either side. Holepunching is made impossible (JS peers
with ``holepunch: false``, Python punches forced to see port-randomizing NATs on both ends),
so the relay is the only way through; the relay's own statistics show it paired them.
"""

from __future__ import annotations

import asyncio

import pytest

from dht_helpers import dial, randomize_nat
from hyperdht_js import WAIT, JsPeer, Py
from hyperlobby.crypto.keys import key_pair
from hyperlobby.swarm.hyperdht import blind_relay
from hyperlobby.swarm.hyperdht.blind_relay import RelayNode, serve_relay
from hyperlobby.swarm.hyperdht.punching import ClientPunch, ServerPunch
from hyperlobby.swarm.udx import UdxStream
from test_hyperdht_connect_interop import echo_server

pytestmark = pytest.mark.interop


async def python_relay(py: Py) -> RelayNode:
    return await serve_relay(await py.node(persistent=True), key_pair())


def only_relayed_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    randomize_nat(monkeypatch, ServerPunch)
    randomize_nat(monkeypatch, ClientPunch)


@pytest.mark.parametrize("named_by", ["client", "server"])
async def test_js_peers_pair_through_a_python_relay(js: JsPeer, py: Py, named_by: str) -> None:
    relay = await python_relay(py)
    key = relay.public_key.hex()
    address = {"host": relay.server.dht.address.host, "port": relay.server.dht.address.port}
    served = await js.call(
        cmd="listen",
        mode="echo",
        firewalled=True,
        holepunch=False,
        **({"relayThrough": key} if named_by == "server" else {}),
    )
    res = await js.call(
        cmd="connect",
        publicKey=served["publicKey"],
        message=b"through python".hex(),
        firewalled=True,
        holepunch=False,
        lan=False,
        relayAddress=address,
        **({"relayThrough": key} if named_by == "client" else {}),
    )
    assert res["ok"], res
    assert bytes.fromhex(res["reply"]) == b"echo:through python"
    assert res["relayed"] is True
    stats = relay.relay.stats
    assert stats.pairings_matched == 1 and stats.streams_opened == 2
    relay_streams = [s for s in relay.server.dht.node.socket.udx.streams.values() if s.relaying]
    assert all(s.state.packets_received == 0 for s in relay_streams)  # forwarded, never read
    await relay.close()


@pytest.mark.parametrize("named_by", ["client", "server"])
async def test_python_peers_pair_through_a_js_relay(
    js: JsPeer, py: Py, monkeypatch: pytest.MonkeyPatch, named_by: str
) -> None:
    only_relayed_paths(monkeypatch)
    relay = await js.call(cmd="relay")
    key = bytes.fromhex(relay["publicKey"])
    server, got, conns = await echo_server(
        await py.node(), **({"relay_through": key} if named_by == "server" else {})
    )
    assert server.public_key is not None
    conn = await dial(await py.node(), server.public_key, key if named_by == "client" else None, timeout=WAIT)
    conn.send(b"through js")
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:through js"
    assert conn.udx_stream.remote_address == (relay["address"]["host"], relay["address"]["port"])
    stats = await js.call(cmd="relayStats", id=relay["id"])
    assert stats["pairings"]["matched"] == 1 and stats["streams"]["active"] == 2
    big = bytes(range(256)) * 400
    conn.send(big)
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:" + big
    assert got == [b"through js", big]
    conn.close()
    await asyncio.wait_for(conns[0].wait_closed(), WAIT)


async def test_python_client_names_a_js_relay_for_a_js_server(
    js: JsPeer, py: Py, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_relayed_paths(monkeypatch)
    relay = await js.call(cmd="relay")
    served = await js.call(cmd="listen", mode="echo", firewalled=True, holepunch=False)
    conn = await dial(
        await py.node(), bytes.fromhex(served["publicKey"]), bytes.fromhex(relay["publicKey"]), timeout=WAIT
    )
    conn.send(b"py->js")
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:py->js"
    assert conn.udx_stream.remote_address == (relay["address"]["host"], relay["address"]["port"])
    stats = await js.call(cmd="relayStats", id=relay["id"])
    assert stats["pairings"]["matched"] == 1
    conn.close()


async def test_js_client_names_a_python_relay_for_a_python_server(
    js: JsPeer, py: Py, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_relayed_paths(monkeypatch)
    relay = await python_relay(py)
    server, got, conns = await echo_server(await py.node())
    assert server.public_key is not None
    address = {"host": relay.server.dht.address.host, "port": relay.server.dht.address.port}
    res = await js.call(
        cmd="connect",
        publicKey=server.public_key.hex(),
        message=b"js->py".hex(),
        firewalled=True,
        holepunch=False,
        lan=False,
        relayAddress=address,
        relayThrough=relay.public_key.hex(),
    )
    assert res["ok"], res
    assert bytes.fromhex(res["reply"]) == b"echo:js->py" and res["relayed"] is True
    assert got == [b"js->py"]
    assert conns[0].udx_stream.remote_address == (address["host"], address["port"])
    assert relay.relay.stats.pairings_matched == 1
    await relay.close()


async def test_a_relayed_connection_to_js_moves_to_the_punched_path(
    big_js: JsPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our client relays through a JS relay first (its punch waits for that), then punches
    through to the JS server: both ends leave the relay, as hyperdht's own upgrade does, and
    the relay's streams end."""
    monkeypatch.setattr(blind_relay, "UPGRADE_GRACE", 0.5)
    relayed = asyncio.Event()
    original_run, original_attach = ClientPunch.run, blind_relay.RelayPath.attach

    first_paths: list[tuple[str, int] | None] = []

    def attach(self: blind_relay.RelayPath, stream: UdxStream, remote_id: int) -> None:
        original_attach(self, stream, remote_id)
        first_paths.append(stream.remote_address)
        relayed.set()

    async def late_run(self: ClientPunch, *args: object, **kwargs: object) -> None:
        async with asyncio.timeout(WAIT):
            await relayed.wait()
        await original_run(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(blind_relay.RelayPath, "attach", attach)
    monkeypatch.setattr(ClientPunch, "run", late_run)
    py = Py(big_js)
    try:
        relay = await big_js.call(cmd="relay")
        relay_path = (relay["address"]["host"], relay["address"]["port"])
        served = await big_js.call(cmd="listen", mode="echo", firewalled=True)
        conn = await dial(
            await py.node(),
            bytes.fromhex(served["publicKey"]),
            bytes.fromhex(relay["publicKey"]),
            timeout=WAIT,
        )
        assert first_paths == [relay_path]  # the relay came first
        conn.send(b"first")
        assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:first"
        async with asyncio.timeout(WAIT):
            while conn.udx_stream.remote_address == relay_path:
                await asyncio.sleep(0.05)
        for i in range(10):
            conn.send(b"direct%d" % i)
            assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:direct%d" % i
        async with asyncio.timeout(WAIT):  # the relay pair is gone, the connection is not
            while (await big_js.call(cmd="relayStats", id=relay["id"]))["streams"]["active"]:
                await asyncio.sleep(0.1)
        conn.send(b"last")
        assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:last"
        stats = await big_js.call(cmd="relayStats", id=relay["id"])
        assert stats["pairings"]["matched"] == 1
        received = await big_js.call(cmd="received", id=served["id"])
        assert received["messages"] == [
            m.hex() for m in [b"first", *(b"direct%d" % i for i in range(10)), b"last"]
        ]
        conn.close()
    finally:
        await py.close()
