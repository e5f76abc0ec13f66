"""Connecting through HyperDHT between Python and the real JS hyperdht 6.34.0, on 127.0.0.1.

The JS side (interop/peers/hyperdht_connect_peer.js) runs a @hyperswarm/testnet network
(persistent hyperdht nodes bound to 127.0.0.1); Python HyperDht nodes bootstrap from it, so
every handshake is relayed by JS nodes. Checked both ways: a Python client reaches a JS server
and a JS client a Python server, with the server firewalled (same-host shortcut, holepunch
offer) or reachable; data crosses the encrypted stream; a JS hypercore replicates to Python and
a Python core to JS; a firewall rejects; a wrong key fails cleanly; garbage handshakes hurt
nobody. Every Python datagram is checked to go to 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from dht_helpers import randomize_nat
from hyperdht_js import WAIT, JsPeer, Py
from hyperlobby.core.store import Store
from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import key_pair
from hyperlobby.swarm.dht_rpc import Address
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.connect import PeerConnectionFailed, PeerNotFound, connect
from hyperlobby.swarm.hyperdht.connection import DhtConnection
from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperdht.noise_wrap import PROLOGUE
from hyperlobby.swarm.hyperdht.punching import ClientPunch, ServerPunch
from hyperlobby.swarm.hyperdht.server import Server, create_server
from hyperlobby.wire.noise import NoiseIK, NoiseKeyPair
from hyperlobby.wire.replication import Replication

pytestmark = pytest.mark.interop


async def echo_server(dht: HyperDht, **options: Any) -> tuple[Server, list[bytes], list[DhtConnection]]:
    got: list[bytes] = []
    conns: list[DhtConnection] = []

    async def on_connection(conn: DhtConnection) -> None:
        conns.append(conn)
        with contextlib.suppress(Exception):
            while (msg := await conn.recv()) is not None:
                got.append(msg)
                conn.send(b"echo:" + msg)

    server = create_server(dht, on_connection=on_connection, **options)
    await server.listen(key_pair())
    return server, got, conns


@pytest.mark.parametrize("js_firewalled", [True, False], ids=["js-firewalled", "js-open"])
@pytest.mark.parametrize("py_persistent", [False, True], ids=["py-ephemeral", "py-persistent"])
async def test_python_client_to_js_server(
    js: JsPeer, py: Py, js_firewalled: bool, py_persistent: bool
) -> None:
    served = await js.call(cmd="listen", mode="echo", firewalled=js_firewalled)
    client = await py.node(persistent=py_persistent)
    kp = key_pair()
    start = time.perf_counter()
    conn = await connect(client, bytes.fromhex(served["publicKey"]), keypair=kp, timeout=WAIT)
    assert conn.remote_public_key.hex() == served["publicKey"]
    conn.send(b"from python")
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:from python"
    print(f"python->js connect+roundtrip: {(time.perf_counter() - start) * 1000:.1f} ms")
    big = bytes(range(256)) * 300
    conn.send(big)
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:" + big
    received = await js.call(cmd="received", id=served["id"])
    assert received["messages"] == [b"from python".hex(), big.hex()]
    conn.close()


@pytest.mark.parametrize("py_persistent", [False, True], ids=["py-ephemeral", "py-persistent"])
@pytest.mark.parametrize("js_firewalled", [True, False], ids=["js-firewalled", "js-open"])
async def test_js_client_to_python_server(
    js: JsPeer, py: Py, py_persistent: bool, js_firewalled: bool
) -> None:
    dht = await py.node(persistent=py_persistent)
    server, got, conns = await echo_server(dht)
    assert server.public_key is not None
    res = await js.call(
        cmd="connect", publicKey=server.public_key.hex(), message=b"from js".hex(), firewalled=js_firewalled
    )
    assert res["ok"], res
    assert bytes.fromhex(res["reply"]) == b"echo:from js"
    assert got == [b"from js"]
    assert len(conns) == 1 and conns[0].handshake_hash.hex() == res["handshakeHash"]
    print(f"js->python connect+roundtrip: {res['ms']} ms")


@pytest.mark.parametrize("fast_open", [True, False], ids=["fast-open", "punch-round"])
async def test_python_client_holepunches_to_js_server(big_js: JsPeer, fast_open: bool) -> None:
    """No same-host shortcut: the PEER_HOLEPUNCH rounds run against JS's server and the
    connection comes up over the punch sockets (without fast open: only once the punch round
    has both sides probing)."""
    py = Py(big_js)
    try:
        served = await big_js.call(cmd="listen", mode="echo", firewalled=True)
        client = await py.node()
        key = bytes.fromhex(served["publicKey"])
        conn = await connect(client, key, timeout=WAIT, lan=False, fast_open=fast_open)
        assert conn.udx_stream.socket is not client.node.socket  # a punch socket carries it
        conn.send(b"punched")
        assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:punched"
        conn.close()
    finally:
        await py.close()


@pytest.mark.parametrize("fast_open", [True, False], ids=["fast-open", "punch-round"])
async def test_js_client_holepunches_to_python_server(big_js: JsPeer, fast_open: bool) -> None:
    py = Py(big_js)
    try:
        dht = await py.node()
        server, got, conns = await echo_server(dht)
        assert server.public_key is not None
        key = server.public_key.hex()
        res = await big_js.call(cmd="connect", publicKey=key, lan=False, fastOpen=fast_open, firewalled=True)
        assert res["ok"], res
        if not fast_open:  # JS got through both rounds and ran its consistent punch against us
            assert res["punches"]["consistent"] == 1, res
        assert got == [b"hello"]
        # the JS side stays on loopback too: every socket bound while connected, punch socket included
        assert len(res["bound"]) > 2 * 13 and all(h.startswith("127.") for h in res["bound"]), res["bound"]
        bound = await big_js.call(cmd="bound")
        assert bound["hosts"] and all(h.startswith("127.") for h in bound["hosts"]), bound
        # it runs over our punch socket
        sock = conns[0].udx_stream.socket
        assert sock is not None and sock is not dht.node.socket
        assert res["remoteAddress"]["port"] == sock.address[1] != dht.address.port
    finally:
        await py.close()


async def test_js_to_js_reference_time(js: JsPeer) -> None:
    """The same round trip between two JS nodes, for comparison (printed, not asserted)."""
    served = await js.call(cmd="listen", mode="echo")
    res = await js.call(cmd="connect", publicKey=served["publicKey"])
    assert res["ok"], res
    print(f"js->js connect+roundtrip: {res['ms']} ms")


async def test_js_client_uses_relay_addresses_of_python_server(js: JsPeer, py: Py) -> None:
    dht = await py.node()
    server, got, _ = await echo_server(dht)
    assert server.public_key is not None and server.relay_addresses
    relays = [{"host": a.host, "port": a.port} for a in server.relay_addresses]
    res = await js.call(cmd="connect", publicKey=server.public_key.hex(), relayAddresses=relays)
    assert res["ok"], res
    assert got == [b"hello"]


async def test_js_core_replicates_to_python(js: JsPeer, py: Py) -> None:
    blocks = [f"js block {i}".encode() * (i + 1) for i in range(30)]
    served = await js.call(cmd="listen", mode="core", blocks=[b.hex() for b in blocks])
    client = await py.node()
    store = Store(":memory:")
    rep = Replication(store)
    try:
        conn = await connect(client, bytes.fromhex(served["publicKey"]), timeout=WAIT)
        ended = rep.adopt(conn)
        copy = store.get(key=bytes.fromhex(served["coreKey"]))
        assert await rep.update(copy, timeout=WAIT) == len(blocks)
        rep.download(copy, 0, len(blocks))
        await rep.wait_downloaded(copy, len(blocks), timeout=WAIT)
        assert [copy.get(i) for i in range(len(blocks))] == blocks
        ended.cancel()
    finally:
        await rep.close()
        store.close()


async def test_python_core_replicates_to_js(js: JsPeer, py: Py) -> None:
    dht = await py.node()
    store = Store(":memory:")
    rep = Replication(store)
    try:
        core = store.get(name="py-core")
        blocks = [f"py block {i}".encode() * (i + 2) for i in range(25)]
        core.append(blocks)
        rep.add(core)
        server = create_server(dht, on_connection=rep.adopt)
        await server.listen(key_pair())
        assert server.public_key is not None
        res = await js.call(
            cmd="fetch", publicKey=server.public_key.hex(), coreKey=core.key.hex(), length=len(blocks)
        )
        assert [bytes.fromhex(b) for b in res["blocks"]] == blocks
    finally:
        await rep.close()
        store.close()


async def test_js_server_firewall_rejects_python(js: JsPeer, py: Py) -> None:
    served = await js.call(cmd="listen", mode="echo", reject=True)
    client = await py.node(request_timeout=0.25, retries=1)
    kp = key_pair()
    with pytest.raises(PeerConnectionFailed):
        await connect(client, bytes.fromhex(served["publicKey"]), keypair=kp, timeout=WAIT)
    knocks = await js.call(cmd="knocks", id=served["id"])
    assert kp.public_key.hex() in knocks["knocks"]


async def test_python_server_firewall_rejects_js(js: JsPeer, py: Py) -> None:
    dht = await py.node()
    seen: list[bytes] = []

    def firewall(remote: bytes, payload: m.NoisePayload, address: Address) -> bool:
        seen.append(remote)
        return True

    server, got, _ = await echo_server(dht, firewall=firewall)
    assert server.public_key is not None
    res = await js.call(cmd="connect", publicKey=server.public_key.hex())
    assert not res["ok"]
    assert res["code"] in ("PEER_CONNECTION_FAILED", "REQUEST_TIMEOUT", "PEER_NOT_FOUND"), res
    print("js code", res["code"])
    assert len(seen) >= 1 and got == []


async def test_wrong_public_key_fails_cleanly_both_ways(js: JsPeer, py: Py) -> None:
    served = await js.call(cmd="listen", mode="echo")
    client = await py.node()
    with pytest.raises(PeerNotFound):
        await connect(client, key_pair().public_key, timeout=WAIT)
    res = await js.call(cmd="connect", publicKey=key_pair().public_key.hex())
    assert not res["ok"] and res["code"] == "PEER_NOT_FOUND", res
    # and the real key still works afterwards
    conn = await connect(client, bytes.fromhex(served["publicKey"]), timeout=WAIT)
    conn.send(b"still fine")
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:still fine"
    conn.close()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (m.encode(m.noise_payload, m.NoisePayload(secret_stream=m.SecretStreamInfo())), C.ERROR_ABORTED),
        (b"\x02\x00", C.ERROR_VERSION_MISMATCH),
    ],
    ids=["no-udx", "version-2"],
)
async def test_js_server_errors_match_ours(js: JsPeer, py: Py, payload: bytes, error: int) -> None:
    """The JS server answers unusable handshakes with the same error codes our server uses."""
    served = await js.call(cmd="listen", mode="echo")
    client = await py.node()
    server_key = bytes.fromhex(served["publicKey"])
    kp = key_pair()
    assert kp.secret_key is not None
    noise = NoiseIK(
        True, NoiseKeyPair(kp.public_key, kp.secret_key), remote_public_key=server_key, prologue=PROLOGUE
    )
    relay = Address(served["relayAddresses"][0]["host"], served["relayAddresses"][0]["port"])
    res = await client.router.peer_handshake(blake2b256(server_key), noise.write_message(payload), relay)
    answer = m.decode(m.noise_payload, noise.read_message(res.noise))
    assert answer.error == error and answer.udx is not None and answer.udx.id == 0


async def test_garbage_handshakes_to_js_server_are_refused(js: JsPeer, py: Py) -> None:
    served = await js.call(cmd="listen", mode="echo")
    client = await py.node()
    target = blake2b256(bytes.fromhex(served["publicKey"]))
    relays = [Address(a["host"], a["port"]) for a in served["relayAddresses"]]
    assert relays
    values = (
        b"\xff" * 50,
        m.encode(m.handshake, m.Handshake(C.FROM_CLIENT, b"\x00" * 32)),
        m.encode(m.handshake, m.Handshake(C.FROM_CLIENT, bytes(range(150)))),
        m.encode(m.holepunch, m.Holepunch(C.FROM_CLIENT, 0, b"\x01" * 64)),
    )

    async def send(relay: Address, value: bytes) -> None:
        with contextlib.suppress(Exception):
            await client.node.request(
                C.PEER_HANDSHAKE, relay, target=target, value=value, retries=0, timeout=0.3
            )

    await asyncio.gather(*(send(relay, value) for relay in relays for value in values))
    conn = await connect(client, bytes.fromhex(served["publicKey"]), timeout=WAIT)
    conn.send(b"ok")
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:ok"
    conn.close()


async def test_byte_counters_match_js_and_tell_silent_from_active(js: JsPeer, py: Py) -> None:
    """``raw_bytes_read``/``raw_bytes_written`` count what JS's NoiseSecretStream counts, so
    hyperswarm's duplicate rule ("the existing connection carried bytes both ways, so the peer
    redialling must have lost it") decides the same on both sides.

    The same exchange is made by a JS client and by a Python client against a JS echo server,
    and by a JS client against a Python echo server: the Python counters equal the JS ones of
    the same role. Before any message both sides count nothing (the id/header exchange is not
    counted), so a silent connection is not "established" and the key order decides a
    duplicate; after one message each way it is, and a redial replaces it.
    """
    from hyperlobby.swarm.hyperswarm.connection_set import keep_new_connection
    from hyperlobby.swarm.hyperswarm.swarm import _Slot

    served = await js.call(cmd="listen", mode="echo")
    message = b"count me"
    ref = await js.call(cmd="connect", publicKey=served["publicKey"], message=message.hex())
    assert ref["ok"], ref
    client = await py.node()
    conn = await connect(client, bytes.fromhex(served["publicKey"]), timeout=WAIT)
    # silent: the header exchange is done (a message goes through below) but nothing counts yet
    assert (conn.raw_bytes_read, conn.raw_bytes_written) == (0, 0)
    counted = (await js.call(cmd="counters", id=served["id"]))["conns"]
    mine = [c for c in counted if c["remotePublicKey"] == conn.public_key.hex()]
    assert [(c["rawBytesRead"], c["rawBytesWritten"]) for c in mine] == [(0, 0)]
    slot = _Slot(conn.remote_public_key, True)
    slot.conn = conn
    assert not slot.established
    # the duplicate rule for a redial, with the keys ordered so that the key rule keeps the old
    larger_is_us = conn.public_key > conn.remote_public_key

    def redial_wins(established: bool) -> bool:
        return keep_new_connection(
            local_public_key=conn.public_key,
            remote_public_key=conn.remote_public_key,
            new_is_initiator=not larger_is_us,
            existing_established=established,
        )

    assert not redial_wins(slot.established)
    # active: one message each way; the counters equal the JS client's for the same exchange
    conn.send(message)
    assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:" + message
    assert (conn.raw_bytes_read, conn.raw_bytes_written) == (ref["rawBytesRead"], ref["rawBytesWritten"])
    counted = (await js.call(cmd="counters", id=served["id"]))["conns"]
    by_key = {c["remotePublicKey"]: (c["rawBytesRead"], c["rawBytesWritten"]) for c in counted}
    assert slot.established
    assert redial_wins(slot.established)
    # and a Python server counts what the JS server counted for the JS client's exchange
    dht = await py.node()
    server, _got, conns = await echo_server(dht)
    assert server.public_key is not None
    res = await js.call(cmd="connect", publicKey=server.public_key.hex(), message=message.hex())
    assert res["ok"], res
    assert (res["rawBytesRead"], res["rawBytesWritten"]) == (ref["rawBytesRead"], ref["rawBytesWritten"])
    assert len(conns) == 1
    js_server_side = by_key[conn.public_key.hex()]
    assert (conns[0].raw_bytes_read, conns[0].raw_bytes_written) == js_server_side
    assert js_server_side == (len(message) + 17, len(b"echo:" + message) + 17 + 3)
    conn.close()


async def test_js_server_guesses_ports_while_python_opens_birthday_sockets(
    big_js: JsPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our client says its NAT randomizes ports: JS's server takes the random strategy
    (guessing our ports) while our birthday sockets probe it, and the connection comes up
    over the birthday socket its answer reached."""
    punches = randomize_nat(monkeypatch, ClientPunch)
    py = Py(big_js)
    try:
        served = await big_js.call(cmd="listen", mode="echo", firewalled=True)
        client = await py.node()
        conn = await connect(
            client, bytes.fromhex(served["publicKey"]), timeout=WAIT, lan=False, fast_open=False
        )
        conn.send(b"birthday")
        assert await asyncio.wait_for(conn.recv(), WAIT) == b"echo:birthday"
        (punch,) = punches
        assert conn.udx_stream.socket is not punch.punch.socket
        assert [h.socket for h in punch.holders] == [conn.udx_stream.socket]
        stats = await big_js.call(cmd="punches", id=served["id"])
        assert stats["punches"]["random"] == 1, stats
        conn.close()
    finally:
        await py.close()


async def test_js_client_guesses_ports_of_a_python_server_behind_a_randomizing_nat(
    big_js: JsPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other way round: our server behind a "randomizing" NAT opens birthday sockets
    toward JS's client (which takes the random strategy, guessing our ports, unless our
    probes reach it first); JS connects its stream to the birthday socket it heard from."""
    punches = randomize_nat(monkeypatch, ServerPunch)
    py = Py(big_js)
    try:
        dht = await py.node()
        server, got, conns = await echo_server(dht)
        assert server.public_key is not None
        res = await big_js.call(
            cmd="connect", publicKey=server.public_key.hex(), lan=False, fastOpen=False, firewalled=True
        )
        assert res["ok"], res
        # JS counts its random punch once it starts guessing; our birthday probes may reach
        # it first (then it is connected before it guesses at all)
        assert res["punches"]["random"] in (0, 1) and res["punches"]["consistent"] == 0, res
        assert got == [b"hello"]
        (punch,) = punches
        sock = conns[0].udx_stream.socket
        assert sock is not None and sock is not punch.punch.socket and sock is not dht.node.socket
        assert res["remoteAddress"]["port"] == sock.address[1]
        assert dht.random_punches.active == 0
    finally:
        await py.close()
