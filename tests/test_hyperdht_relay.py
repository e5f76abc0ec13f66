"""Blind relays through a Python-only HyperDHT on 127.0.0.1 (``relay_through``).

A third node runs :func:`serve_relay`. Two firewalled peers whose NATs both randomize ports
cannot holepunch (in JS either): with a relay named by either side they connect through it,
and the relay sees only ciphertext. When holepunching can work but is slower than the
relay, the connection starts relayed and moves to the direct path once the punch is through.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT
from dht_helpers import dial, randomize_nat
from hyperlobby.crypto.keys import key_pair
from hyperlobby.encoding.ids import decode_key
from hyperlobby.swarm.hyperdht import blind_relay
from hyperlobby.swarm.hyperdht.blind_relay import RelayNode, serve_relay
from hyperlobby.swarm.hyperdht.connect import PeerConnectionFailed
from hyperlobby.swarm.hyperdht.connection import DhtConnection
from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperdht.punching import ClientPunch, ServerPunch
from hyperlobby.swarm.udx import UdxStream
from swarm_helpers import eventually
from test_hyperdht_connect import WAIT, Net, echo_server, roundtrip

FAST = [0.1, 0.2, 0.4, 2.0]  # swarm retry backoffs


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    n = Net()
    await n.start()
    try:
        yield n
    finally:
        await n.close()


async def relay_node(net: Net) -> RelayNode:
    return await serve_relay(await net.peer(persistent=True), key_pair())


async def echo_peers(net: Net, **server_options: Any) -> tuple[bytes, list[DhtConnection], HyperDht]:
    """A firewalled echo server and a firewalled client node: (server key, accepted, client)."""
    server, accepted = await echo_server(await net.peer(persistent=False), **server_options)
    assert server.public_key is not None
    return server.public_key, accepted, await net.peer(persistent=False)


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    await eventually(predicate, "the condition", timeout)


@pytest.mark.parametrize("named_by", ["client", "server"])
async def test_peers_that_cannot_holepunch_connect_through_a_relay(
    net: Net, monkeypatch: pytest.MonkeyPatch, named_by: str
) -> None:
    randomize_nat(monkeypatch, ServerPunch)
    randomize_nat(monkeypatch, ClientPunch)
    relay = await relay_node(net)
    server_opts = {"relay_through": relay.public_key} if named_by == "server" else {}
    server_key, accepted, client = await echo_peers(net, **server_opts)
    conn = await dial(client, server_key, relay.public_key if named_by == "client" else None, timeout=WAIT)
    assert await roundtrip(conn, b"r" * 20_000) == b"echo:" + b"r" * 20_000
    relay_address = relay.server.dht.address
    # both ends run through the relay node's socket, each to its own relay stream
    assert conn.udx_stream.remote_address == (relay_address.host, relay_address.port)
    await wait_until(lambda: len(accepted) == 1)
    assert accepted[0].udx_stream.remote_address == (relay_address.host, relay_address.port)
    assert conn.remote_public_key == server_key
    stats = relay.relay.stats
    assert stats.pairings_matched == 1 and stats.streams_active == 2 and stats.pairings_pending == 0
    # the relay forwarded without reading: its streams delivered nothing to it
    relay_streams = [s for s in relay.server.dht.node.socket.udx.streams.values() if s.relaying]
    assert len(relay_streams) == 2 and all(s.state.packets_received == 0 for s in relay_streams)
    # closing the connection tears the pair down
    conn.close()
    await asyncio.wait_for(accepted[0].wait_closed(), WAIT)
    await wait_until(lambda: stats.streams_active == 0 and stats.sessions_active == 0)
    await relay.close()


async def test_without_a_relay_the_same_peers_cannot_connect(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    randomize_nat(monkeypatch, ServerPunch)
    randomize_nat(monkeypatch, ClientPunch)
    server_key, _, client = await echo_peers(net)
    with pytest.raises(PeerConnectionFailed):
        await dial(client, server_key, timeout=WAIT)


async def test_a_relay_nobody_runs_fails_the_connect_with_the_punch_error(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    randomize_nat(monkeypatch, ServerPunch)
    randomize_nat(monkeypatch, ClientPunch)
    server_key, accepted, client = await echo_peers(net)
    nobody = key_pair().public_key
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PeerConnectionFailed):
        await dial(client, server_key, nobody, timeout=WAIT)
    assert loop.time() - started < WAIT  # failed on its own, not by the connect timeout
    assert not accepted


async def test_a_relayed_connection_moves_to_the_direct_path_once_punched(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's punch starts late, so the relay connects first; when the punch is
    through, both ends move to the direct path and the relay pair is torn down."""
    monkeypatch.setattr(blind_relay, "UPGRADE_GRACE", 0.5)
    original_run, original_attach = ClientPunch.run, blind_relay.RelayPath.attach
    relayed = asyncio.Event()

    first_paths: list[tuple[str, int] | None] = []

    def attach(self: blind_relay.RelayPath, stream: UdxStream, remote_id: int) -> None:
        original_attach(self, stream, remote_id)
        if self.is_initiator:  # the client's (it named the relay)
            first_paths.append(stream.remote_address)
            relayed.set()

    async def late_run(self: ClientPunch, *args: object, **kwargs: object) -> None:
        async with asyncio.timeout(WAIT):
            await relayed.wait()  # the client's punch starts only once a relay path is up
        await original_run(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(blind_relay.RelayPath, "attach", attach)
    monkeypatch.setattr(ClientPunch, "run", late_run)
    relay = await relay_node(net)
    server_key, accepted, client = await echo_peers(net)
    conn = await dial(client, server_key, relay.public_key, timeout=WAIT)
    relay_address = relay.server.dht.address
    relay_pair = (relay_address.host, relay_address.port)
    assert first_paths == [relay_pair]  # the relay won the race
    assert await roundtrip(conn, b"before") == b"echo:before"
    await wait_until(lambda: len(accepted) == 1)
    peer = accepted[0]
    # then the punch: both streams leave the relay
    await wait_until(
        lambda: conn.udx_stream.remote_address != relay_pair and peer.udx_stream.remote_address != relay_pair
    )
    for i in range(20):  # and the connection carries on, without losing a message
        assert await roundtrip(conn, b"after%d" % i) == b"echo:after%d" % i
    stats = relay.relay.stats
    await wait_until(lambda: stats.streams_active == 0)  # the relay connections closed after the grace
    assert await roundtrip(conn, b"still") == b"echo:still"
    conn.close()
    await asyncio.wait_for(peer.wait_closed(), WAIT)
    await relay.close()


async def test_a_swarm_relays_a_peer_it_could_not_punch_to(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    """hyperswarm's rule: a dial that failed for want of a punchable path makes the next dial
    to that peer go through the swarm's relay (our NAT does not randomize here, so the first
    dial goes direct and fails)."""
    from hyperlobby.swarm.hyperswarm import Swarm

    randomize_nat(monkeypatch, ServerPunch)
    randomize_nat(monkeypatch, ClientPunch)
    relay = await relay_node(net)
    a, b = [
        Swarm(await net.peer(persistent=False), backoffs=FAST, jitter=0.0, relay_through=relay.public_key)
        for _ in range(2)
    ]
    dials: list[object] = []
    original = b.dht.connect

    async def connect_spy(*args: object, **kwargs: object) -> object:
        if args[0] == a.key_pair.public_key:  # (not the relay connection's own dial)
            dials.append(kwargs.get("relay_through"))
        return await original(*args, lan=False, fast_open=False, **kwargs)  # type: ignore[arg-type]

    b.dht.connect = connect_spy  # type: ignore[method-assign]
    topic = b"\x77" * 32
    try:
        a.join(topic, server=True, client=False)
        assert await asyncio.wait_for(a.flush(), WAIT)
        b.join(topic, server=False, client=True)
        await wait_until(lambda: len(a.connections) == len(b.connections) == 1, 3 * WAIT)
        assert dials == [None, relay.public_key]  # direct first (failed), then through the relay
        peer = b.peers[a.key_pair.public_key]
        assert peer.force_relaying
        (conn,) = b.connections
        relay_address = relay.server.dht.address
        assert conn.udx_stream.remote_address == (relay_address.host, relay_address.port)
        assert relay.relay.stats.pairings_matched == 1
    finally:
        await a.close()
        await b.close()
        await relay.close()


async def test_the_relay_command_serves_a_stable_key_that_peers_pair_through(
    tmp_path: Path, net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hyperlobby dht relay --key-file F`` prints its key (the same on every run) and
    relays for peers that name it."""
    randomize_nat(monkeypatch, ServerPunch)
    randomize_nat(monkeypatch, ClientPunch)
    key_file = tmp_path / "relay.key"
    keys: list[str] = []
    for run in range(2):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hyperlobby.cli",
            "dht",
            "relay",
            "--bootstrap",
            net.bootstrap[0],
            "--key-file",
            str(key_file),
            "--json",
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        )
        try:
            assert proc.stdout is not None
            line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
            assert line["event"] == "relaying"
            keys.append(line["key"])
            if run == 0:
                assert key_file.stat().st_mode & 0o777 == 0o600
                server_key, _, client = await echo_peers(net)
                conn = await dial(client, server_key, decode_key(line["key"]), timeout=WAIT)
                assert await roundtrip(conn, b"via the command") == b"echo:via the command"
                conn.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert keys[0] == keys[1] and len(decode_key(keys[0])) == 32


def test_relay_through_options_parse_keys_and_reject_junk(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from hyperlobby.cli.dht import ENV_RELAY_THROUGH, relay_option
    from hyperlobby.errors import SwarmError

    a, b = key_pair().public_key, key_pair().public_key
    from hyperlobby.encoding.ids import encode_id

    monkeypatch.delenv(ENV_RELAY_THROUGH, raising=False)
    assert relay_option(argparse.Namespace(relay_through=[])) == ()
    assert relay_option(argparse.Namespace(relay_through=[encode_id(a), b.hex()])) == (a, b)
    monkeypatch.setenv(ENV_RELAY_THROUGH, f"{encode_id(a)},{b.hex()}")
    assert relay_option(argparse.Namespace(relay_through=[])) == (a, b)
    with pytest.raises(SwarmError):
        relay_option(argparse.Namespace(relay_through=["not-a-key"]))
