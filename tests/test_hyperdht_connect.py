"""Connecting through a Python-only HyperDHT on 127.0.0.1: server, connect, DhtConnection, adopt.

The network is a Python bootstrapper and three persistent Python nodes. Servers and clients
run on their own HyperDht nodes, either persistent (reachable: the OPEN paths) or ephemeral
(firewalled: the same-host LAN shortcut and the holepunch rounds). Every datagram a Python
socket sends is checked to go to 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from dht_helpers import randomize_nat
from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import key_pair
from hyperlobby.errors import HandshakeError
from hyperlobby.swarm.dht_rpc import Address
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.connect import PeerConnectionFailed, PeerNotFound, cached_relays, connect
from hyperlobby.swarm.hyperdht.connection import QUEUE_MESSAGES, DhtConnection
from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperdht.noise_wrap import PROLOGUE
from hyperlobby.swarm.hyperdht.punching import ClientPunch, ServerPunch
from hyperlobby.swarm.hyperdht.server import AlreadyListening, Server, create_server, servers_of
from hyperlobby.wire.noise import NoiseIK, NoiseKeyPair
from hyperlobby.wire.replication import Replication

WAIT = 15.0


class Net:
    def __init__(self) -> None:
        self.nodes: list[HyperDht] = []
        self.bootstrap: list[str] = []

    async def start(self, count: int = 3) -> None:
        boot = await HyperDht.bootstrapper("127.0.0.1")
        self.nodes.append(boot)
        self.bootstrap = [f"127.0.0.1:{boot.address.port}"]
        for _ in range(count):
            self.nodes.append(await HyperDht.create(bootstrap=self.bootstrap, ephemeral=False))

    async def peer(self, *, persistent: bool, **options: Any) -> HyperDht:
        eph = False if persistent else None
        dht = await HyperDht.create(bootstrap=self.bootstrap, ephemeral=eph, **options)
        self.nodes.append(dht)
        return dht

    async def close(self) -> None:
        # servers first: their unannounce needs the relays, which may be peers' nodes
        for dht in self.nodes:
            for server in servers_of(dht):
                await asyncio.wait_for(server.close(), WAIT)
        for dht in reversed(self.nodes):
            await asyncio.wait_for(dht.close(), WAIT)


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    n = Net()
    await n.start()
    try:
        yield n
    finally:
        await n.close()


async def echo_server(dht: HyperDht, **options: Any) -> tuple[Server, list[DhtConnection]]:
    accepted: list[DhtConnection] = []

    async def on_connection(conn: DhtConnection) -> None:
        accepted.append(conn)
        while True:
            msg = await conn.recv()
            if msg is None:
                return
            conn.send(b"echo:" + msg)

    server = create_server(dht, on_connection=on_connection, **options)
    await server.listen(key_pair())
    return server, accepted


async def roundtrip(conn: DhtConnection, data: bytes = b"hello") -> bytes | None:
    conn.send(data)
    return await asyncio.wait_for(conn.recv(), WAIT)


@pytest.mark.parametrize(
    ("server_persistent", "client_persistent", "lan", "fast_open"),
    [
        (True, True, True, True),
        (False, False, True, True),
        (False, False, False, True),
        (False, False, False, False),
        (True, False, True, True),
        (False, True, True, True),
    ],
    ids=["open-open", "firewalled-lan", "firewalled-holepunch", "punch-round", "open-server", "open-client"],
)
async def test_connect_and_exchange(
    net: Net, server_persistent: bool, client_persistent: bool, lan: bool, fast_open: bool
) -> None:
    server_dht = await net.peer(persistent=server_persistent)
    client_dht = await net.peer(persistent=client_persistent)
    server, accepted = await echo_server(server_dht)
    assert server.public_key is not None
    client_kp = key_pair()
    conn = await connect(
        client_dht, server.public_key, keypair=client_kp, timeout=WAIT, lan=lan, fast_open=fast_open
    )
    assert conn.is_initiator and conn.remote_public_key == server.public_key
    assert conn.public_key == client_kp.public_key
    assert await roundtrip(conn, b"x" * 5000) == b"echo:" + b"x" * 5000
    conn.send(b"")  # an empty message is a keepalive: never delivered, so never echoed
    assert await roundtrip(conn, b"again") == b"echo:again"
    assert len(accepted) == 1
    peer = accepted[0]
    assert not peer.is_initiator
    assert peer.remote_public_key == client_kp.public_key
    assert peer.handshake_hash == conn.handshake_hash
    assert peer.remote_address[0] == "127.0.0.1"
    nodes = (client_dht.node, server_dht.node)
    own = {n.socket for n in nodes} | {n.request_socket for n in nodes}
    sockets = {conn.udx_stream.socket, peer.udx_stream.socket} - own  # punch sockets, if any
    assert bool(sockets) == (not lan)  # only the holepunch path runs over punch sockets here
    conn.close()
    await asyncio.wait_for(peer.wait_closed(), WAIT)
    assert conn.closed.done()
    # a punch socket that carried the connection is closed once its stream has ended
    for _ in range(250):
        if all(s is not None and s.closed for s in sockets):
            break
        await asyncio.sleep(0.02)
    assert all(s is not None and s.closed for s in sockets)


async def test_keepalive_is_filtered_and_stream_stays_open(net: Net) -> None:
    server_dht = await net.peer(persistent=True)
    client_dht = await net.peer(persistent=True)
    server, _ = await echo_server(server_dht)
    assert server.public_key is not None
    conn = await connect(client_dht, server.public_key, timeout=WAIT)
    sent: list[bytes] = []
    make = conn._secret.keepalive

    def counted() -> bytes:
        frame = make()
        sent.append(frame)
        return frame

    conn._secret.keepalive = counted  # type: ignore[method-assign]
    conn.keepalive = 0.05
    conn._arm_keepalive()
    for _ in range(200):
        if len(sent) >= 3:
            break
        await asyncio.sleep(0.02)
    assert len(sent) >= 3  # encrypted empty frames went out while idle...
    assert await roundtrip(conn, b"after") == b"echo:after"  # ...and none reached the echo loop
    conn.close()


async def test_a_slow_reader_holds_back_a_fast_sender(net: Net) -> None:
    """Messages nobody reads stop at a bounded queue; UDX's window then pushes back on the
    sender, and everything still arrives in order once read."""
    server_dht = await net.peer(persistent=True)
    client_dht = await net.peer(persistent=True)
    count, size = 2000, 8192  # 16 MiB: more than the receive window and the send buffer together
    sent = asyncio.get_running_loop().create_future()

    async def flood(conn: DhtConnection) -> None:
        for i in range(count):
            conn.send(i.to_bytes(4, "big") * (size // 4))
            await conn.drain()
        sent.set_result(None)

    server = create_server(server_dht, on_connection=flood)
    await server.listen(key_pair())
    assert server.public_key is not None
    conn = await connect(client_dht, server.public_key, timeout=WAIT)
    for _ in range(500):  # not reading: wait (bounded) until the queue made us stop reading
        if conn._reading_paused:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # and give the sender time to run into the closed window
    assert conn._reading_paused and not sent.done()
    assert len(conn._queue) <= QUEUE_MESSAGES + 64  # what was in flight when reading paused
    for i in range(count):
        msg = await asyncio.wait_for(conn.recv(), WAIT)
        assert msg == i.to_bytes(4, "big") * (size // 4)
    await asyncio.wait_for(sent, WAIT)
    conn.close()


async def test_reconnect_uses_the_relays_that_worked(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    server_dht = await net.peer(persistent=False)
    client_dht = await net.peer(persistent=False)
    server, _ = await echo_server(server_dht)
    assert server.public_key is not None
    assert cached_relays(client_dht, server.public_key) == []
    conn = await connect(client_dht, server.public_key, timeout=WAIT)
    conn.close()
    assert set(cached_relays(client_dht, server.public_key)) == set(server.relay_addresses)

    def no_lookups(*args: object, **kwargs: object) -> object:
        raise AssertionError("FIND_PEER should not be needed")

    monkeypatch.setattr(client_dht, "find_peer", no_lookups)
    again = await connect(client_dht, server.public_key, timeout=WAIT)
    assert await roundtrip(again) == b"echo:hello"
    again.close()


async def test_connect_through_given_relay_addresses(net: Net) -> None:
    server_dht = await net.peer(persistent=False)
    client_dht = await net.peer(persistent=False)
    server, _ = await echo_server(server_dht)
    assert server.public_key is not None and server.relay_addresses
    conn = await connect(client_dht, server.public_key, relay_addresses=server.relay_addresses, timeout=WAIT)
    assert await roundtrip(conn) == b"echo:hello"
    conn.close()


async def test_replicate_a_core_over_the_connection(net: Net) -> None:
    server_dht = await net.peer(persistent=False)
    client_dht = await net.peer(persistent=False)
    writer_store, reader_store = Store(":memory:"), Store(":memory:")
    writer_rep, reader_rep = Replication(writer_store), Replication(reader_store)
    try:
        core = writer_store.get(name="dht-core")
        blocks = [f"block {i}".encode() * (i + 1) for i in range(40)]
        core.append(blocks)
        writer_rep.add(core)
        server = create_server(server_dht, on_connection=writer_rep.adopt)
        await server.listen(key_pair())
        assert server.public_key is not None
        conn = await connect(client_dht, server.public_key, timeout=WAIT)
        ended = reader_rep.adopt(conn)
        copy = reader_store.get(key=core.key)
        assert await reader_rep.update(copy, timeout=WAIT) == len(blocks)
        reader_rep.download(copy, 0, len(blocks))
        await reader_rep.wait_downloaded(copy, len(blocks), timeout=WAIT)
        assert [copy.get(i) for i in range(len(blocks))] == blocks
        core.append(b"live")  # a later append reaches the reader too
        assert await reader_rep.get(copy, len(blocks), timeout=WAIT) == b"live"
        assert reader_rep.connections == 1 and writer_rep.connections == 1
        ended.cancel()  # cancelling the future closes the connection
        await asyncio.wait_for(conn.wait_closed(), WAIT)
        for _ in range(200):
            if writer_rep.connections == 0:
                break
            await asyncio.sleep(0.05)
        assert writer_rep.connections == 0
    finally:
        await reader_rep.close()
        await writer_rep.close()
        writer_store.close()
        reader_store.close()


async def test_server_firewall_rejects_and_sees_client(net: Net) -> None:
    server_dht = await net.peer(persistent=True)
    # a rejecting server stays silent, so the client's handshakes time out: keep that short
    client_dht = await net.peer(persistent=True, request_timeout=0.25, retries=1)
    seen: list[tuple[bytes, m.NoisePayload, Address]] = []

    def firewall(remote_key: bytes, payload: m.NoisePayload, address: Address) -> bool:
        seen.append((remote_key, payload, address))
        return True

    server, accepted = await echo_server(server_dht, firewall=firewall)
    assert server.public_key is not None
    client_kp = key_pair()
    with pytest.raises(PeerConnectionFailed):
        await connect(client_dht, server.public_key, keypair=client_kp, timeout=WAIT)
    assert seen and seen[0][0] == client_kp.public_key
    assert seen[0][1].udx is not None and seen[0][2].host == "127.0.0.1"
    assert accepted == []


async def test_two_argument_and_async_firewalls(net: Net) -> None:
    """The contract's firewall(remote_public_key, payload) works, and so does an async one."""
    server_dht = await net.peer(persistent=True)
    client_dht = await net.peer(persistent=True)
    # a rejecting server stays silent: the rejected client gives up quickly
    rejected_dht = await net.peer(persistent=True, request_timeout=0.25, retries=1)
    allowed = key_pair()

    def two_args(remote_key: bytes, payload: m.NoisePayload) -> bool:
        return remote_key != allowed.public_key

    async def async_firewall(remote_key: bytes, payload: m.NoisePayload, address: Address) -> bool:
        await asyncio.sleep(0)
        return remote_key != allowed.public_key

    for firewall in (two_args, async_firewall):
        server, _ = await echo_server(server_dht, firewall=firewall)
        assert server.public_key is not None
        conn = await connect(client_dht, server.public_key, keypair=allowed, timeout=WAIT)
        assert await roundtrip(conn) == b"echo:hello"
        conn.close()
        with pytest.raises(PeerConnectionFailed):
            await connect(rejected_dht, server.public_key, keypair=key_pair(), timeout=WAIT)
        await server.close()


async def test_unknown_key_is_not_found(net: Net) -> None:
    client_dht = await net.peer(persistent=True)
    with pytest.raises(PeerNotFound):
        await connect(client_dht, key_pair().public_key, timeout=WAIT)


async def test_wrong_key_through_a_relay_fails_cleanly(net: Net) -> None:
    server_dht = await net.peer(persistent=True)
    client_dht = await net.peer(persistent=True)
    server, _ = await echo_server(server_dht)
    with pytest.raises(PeerConnectionFailed):
        await connect(client_dht, key_pair().public_key, relay_addresses=server.relay_addresses, timeout=WAIT)
    assert server.public_key is not None  # the server still serves its real key
    conn = await connect(client_dht, server.public_key, timeout=WAIT)
    assert await roundtrip(conn) == b"echo:hello"
    conn.close()


async def test_hostile_handshakes_are_refused_without_harm(net: Net) -> None:
    server_dht = await net.peer(persistent=True)
    client_dht = await net.peer(persistent=True)
    server, accepted = await echo_server(server_dht)
    assert server.public_key is not None and server.target is not None
    to = server_dht.address
    here = Address("127.0.0.1", 9)
    hs, hp = C.PEER_HANDSHAKE, C.PEER_HOLEPUNCH
    values = [
        (hs, b""),
        (hs, b"\xff" * 40),
        (hs, m.encode(m.handshake, m.Handshake(C.FROM_CLIENT, b""))),
        (hs, m.encode(m.handshake, m.Handshake(C.FROM_CLIENT, b"\x00" * 32))),
        (hs, m.encode(m.handshake, m.Handshake(C.FROM_CLIENT, bytes(range(200))))),
        (hs, m.encode(m.handshake, m.Handshake(C.FROM_RELAY, b"\x01" * 120, peer_address=here))),
        (hp, m.encode(m.holepunch, m.Holepunch(C.FROM_RELAY, 0, b"\x02" * 60, peer_address=here))),
        (hp, b"\x07" * 10),
    ]

    async def send(command: int, value: bytes) -> None:
        with contextlib.suppress(Exception):
            await client_dht.node.request(
                command, to, target=server.target, value=value, retries=0, timeout=0.3
            )

    await asyncio.gather(*(send(command, value) for command, value in values))
    assert accepted == []
    conn = await connect(client_dht, server.public_key, timeout=WAIT)
    assert await roundtrip(conn) == b"echo:hello"
    conn.close()


async def test_garbage_on_the_stream_closes_only_that_connection(net: Net) -> None:
    """Bytes that are not secret-stream frames end that connection with an error; the server
    and the replication on it carry on."""
    server_dht = await net.peer(persistent=False)
    client_dht = await net.peer(persistent=False)
    store, other_store = Store(":memory:"), Store(":memory:")
    errors: list[Exception] = []
    rep, other = Replication(store, on_error=errors.append), Replication(other_store)
    try:
        server = create_server(server_dht, on_connection=rep.adopt)
        await server.listen(key_pair())
        assert server.public_key is not None
        bad = await connect(client_dht, server.public_key, timeout=WAIT)
        bad.udx_stream.write(b"\x05\x00\x00" + b"\xee" * 5)  # after our header: a frame that fails its MAC
        for _ in range(200):
            if errors:
                break
            await asyncio.sleep(0.02)
        assert errors and rep.connections == 0
        good = await connect(client_dht, server.public_key, timeout=WAIT)
        ended = other.adopt(good)
        for _ in range(200):
            if rep.connections == 1:
                break
            await asyncio.sleep(0.02)
        assert rep.connections == 1
        ended.cancel()
    finally:
        await other.close()
        await rep.close()
        store.close()
        other_store.close()


async def test_many_clients_at_once(net: Net) -> None:
    server_dht = await net.peer(persistent=False)
    server, accepted = await echo_server(server_dht)
    assert server.public_key is not None
    clients = [await net.peer(persistent=False) for _ in range(4)]
    conns = await asyncio.gather(
        *(connect(c, server.public_key, timeout=WAIT) for c in clients for _ in range(3))
    )
    replies = await asyncio.gather(*(roundtrip(c, f"n{i}".encode()) for i, c in enumerate(conns)))
    assert replies == [f"echo:n{i}".encode() for i in range(len(conns))]
    assert len(accepted) == len(conns)
    assert len({c.handshake_hash for c in accepted}) == len(conns)
    for c in conns:
        c.close()


async def test_a_lying_relay_makes_connect_fail_cleanly(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relay answering with a forged Noise reply: the client refuses it with a clear error."""
    server_dht = await net.peer(persistent=True)
    client_dht = await net.peer(persistent=True)
    server, _ = await echo_server(server_dht)
    assert server.public_key is not None
    real = client_dht.router.peer_handshake

    async def forged(*args: Any, **kwargs: Any) -> Any:
        res = await real(*args, **kwargs)
        return replace(res, noise=res.noise[:40] + bytes(len(res.noise) - 40))

    monkeypatch.setattr(client_dht.router, "peer_handshake", forged)
    with pytest.raises(HandshakeError):
        await connect(client_dht, server.public_key, timeout=WAIT)
    monkeypatch.setattr(client_dht.router, "peer_handshake", real)
    conn = await connect(client_dht, server.public_key, timeout=WAIT)
    assert await roundtrip(conn) == b"echo:hello"
    conn.close()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (m.encode(m.noise_payload, m.NoisePayload(secret_stream=m.SecretStreamInfo())), C.ERROR_ABORTED),
        (b"\x02\x00", C.ERROR_VERSION_MISMATCH),  # a payload version we do not speak
    ],
    ids=["no-udx", "version-2"],
)
async def test_server_answers_unusable_handshakes_with_an_error(net: Net, payload: bytes, error: int) -> None:
    """As server.js: no UDX info is ABORTED, another payload version VERSION_MISMATCH; the
    answer still goes out (so the client learns why) and no connection is made."""
    server_dht = await net.peer(persistent=True)
    client_dht = await net.peer(persistent=True)
    server, accepted = await echo_server(server_dht)
    assert server.public_key is not None and server.target is not None
    client_kp = key_pair()
    assert client_kp.secret_key is not None
    noise = NoiseIK(
        True,
        NoiseKeyPair(client_kp.public_key, client_kp.secret_key),
        remote_public_key=server.public_key,
        prologue=PROLOGUE,
    )
    res = await client_dht.router.peer_handshake(
        server.target, noise.write_message(payload), server_dht.address
    )
    answer = m.decode(m.noise_payload, noise.read_message(res.noise))
    assert answer.error == error and answer.udx is not None and answer.udx.id == 0
    assert accepted == []


async def test_listen_twice_and_close_is_bounded(net: Net) -> None:
    dht = await net.peer(persistent=True)
    kp = key_pair()
    server = create_server(dht)
    await server.listen(kp)
    with pytest.raises(AlreadyListening):
        await server.listen(kp)
    other = create_server(dht)
    with pytest.raises(AlreadyListening):
        await other.listen(kp)
    await asyncio.wait_for(server.close(), WAIT)
    assert server.target is not None and dht.router.get(server.target) is None
    client_dht = await net.peer(persistent=True)
    with pytest.raises((PeerNotFound, PeerConnectionFailed)):
        await connect(client_dht, kp.public_key, timeout=5)


async def test_a_batch_receiver_gets_each_read_as_one_list_in_order(net: Net) -> None:
    """Messages decrypted from one socket read reach a batch receiver together, in order; the
    end is reported after everything received before it; the counters see every message."""
    server_dht = await net.peer(persistent=True)
    client_dht = await net.peer(persistent=True)
    accepted: asyncio.Queue[DhtConnection] = asyncio.Queue()

    async def on_connection(conn: DhtConnection) -> None:
        await accepted.put(conn)

    server = create_server(server_dht, on_connection=on_connection)
    await server.listen(key_pair())
    assert server.public_key is not None
    conn = await connect(client_dht, server.public_key, timeout=WAIT)
    peer = await asyncio.wait_for(accepted.get(), WAIT)
    reads: list[list[bytes]] = []
    ended: list[object] = []
    early = [b"before the receiver %d" % i for i in range(3)]
    for msg in early:
        conn.send(msg)
    for _ in range(100):  # bounded: until the early ones are queued on the peer
        if peer._queue:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    peer.set_batch_receiver(reads.append, ended.append)
    assert reads == [early]  # what was queued arrives at once, as one list
    messages = [b"m%03d" % i for i in range(200)]
    conn.send_batch(messages)
    conn.send(b"")  # a keepalive: counted, never delivered
    conn.send(b"last")
    conn.close()
    await asyncio.wait_for(peer.wait_closed(), WAIT)
    got = [m for read in reads[1:] for m in read]
    assert got == [*messages, b"last"]
    assert len(reads) - 1 < len(got) // 4  # many messages per call, not one call each
    assert ended == [None]  # a clean end, reported after the last message
    sizes = [len(m) for m in [*early, *messages, b"", b"last"]]
    assert conn.raw_bytes_written == sum(n + 17 + 3 for n in sizes)
    assert peer.raw_bytes_read == sum(n + 17 for n in sizes)


@pytest.mark.parametrize("random_side", ["server", "client"])
async def test_a_randomizing_nat_is_punched_with_birthday_sockets(
    net: Net, monkeypatch: pytest.MonkeyPatch, random_side: str
) -> None:
    """One side's NAT randomizes ports: it opens 255 more punch sockets, all probing the
    other side's address, while the other side guesses ports. The connection runs over the
    birthday socket that got through (the punch socket's own probes are dropped here so it
    cannot be that one); the other sockets close, and the random punch ration is taken and
    given back."""
    punches = randomize_nat(monkeypatch, ServerPunch if random_side == "server" else ClientPunch)
    server_dht = await net.peer(persistent=False)
    client_dht = await net.peer(persistent=False)
    server, accepted = await echo_server(server_dht)
    assert server.public_key is not None
    conn = await connect(client_dht, server.public_key, timeout=WAIT, lan=False, fast_open=False)
    assert await roundtrip(conn, b"y" * 3000) == b"echo:" + b"y" * 3000
    (punch,) = punches
    random_dht = server_dht if random_side == "server" else client_dht
    stream = accepted[0].udx_stream if random_side == "server" else conn.udx_stream
    assert stream.socket is not punch.punch.socket  # a birthday socket carries the connection
    assert [h.socket for h in punch.holders] == [stream.socket]  # the only one left open
    assert random_dht.random_punches.active == 0 and random_dht.random_punches.last > 0
    assert punch._closing is not None
    await asyncio.wait_for(punch._closing, WAIT)
    birthday = [
        s
        for s in random_dht.node.socket.udx.sockets
        if s not in (random_dht.node.socket, random_dht.node.request_socket)
    ]
    assert birthday == [stream.socket]  # the 255 others are closed
    conn.close()
    await asyncio.wait_for(accepted[0].wait_closed(), WAIT)
    for _ in range(250):
        if stream.socket is not None and stream.socket.closed:
            break
        await asyncio.sleep(0.02)
    assert stream.socket is not None and stream.socket.closed


@pytest.mark.parametrize("rationed", ["server", "client"])
async def test_random_punches_beyond_the_ration_fail_fast(
    net: Net, monkeypatch: pytest.MonkeyPatch, rationed: str
) -> None:
    """A node already running its one random punch does not start another: a server answers
    TRY_LATER, a client gives up before punching, and neither opens birthday sockets."""
    punches = randomize_nat(monkeypatch, ServerPunch)
    server_dht = await net.peer(persistent=False)
    client_dht = await net.peer(persistent=False)
    (server_dht if rationed == "server" else client_dht).random_punches.begin()
    server, accepted = await echo_server(server_dht)
    assert server.public_key is not None
    with pytest.raises(PeerConnectionFailed):
        await connect(client_dht, server.public_key, timeout=WAIT, lan=False, fast_open=False)
    assert not accepted
    assert all(len(p.holders) <= 1 for p in punches)  # no birthday sockets were opened
