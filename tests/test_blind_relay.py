"""The blind-relay client and server over in-memory connections (no sockets).

Each connection is a pair of fake ends that hand protomux frames to each other on the next
loop turn, as a secret stream would deliver decrypted messages. The relay makes its streams
in a UDX namespace without sockets, so what is checked here is the pairing logic: who gets
which stream id, which streams relay to which, and what cancels or ends a pairing, including
peers that send garbage.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from hyperlobby.encoding import compact
from hyperlobby.errors import HyperlobbyError, ProtocolError
from hyperlobby.swarm.hyperdht import blind_relay as br
from hyperlobby.swarm.udx import Udx, UdxSocket, UdxStream


class FakeConn:
    """One end of an in-memory message connection with DhtConnection's receiving surface."""

    def __init__(self, public_key: bytes, remote_public_key: bytes) -> None:
        self.public_key = public_key
        self.remote_public_key = remote_public_key
        self.peer: FakeConn | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: HyperlobbyError | None = None
        self._on_message: Callable[[bytes], None] | None = None
        self._on_close: Callable[[HyperlobbyError | None], None] | None = None
        self._queue: list[bytes] = []
        self.sent: list[bytes] = []

    def set_receiver(
        self, on_message: Callable[[bytes], None], on_close: Callable[[HyperlobbyError | None], None]
    ) -> None:
        self._on_message, self._on_close = on_message, on_close
        queued, self._queue = self._queue, []
        for frame in queued:
            on_message(frame)

    def send(self, frame: bytes) -> None:
        if self.closed.done():
            raise ProtocolError("closed")
        self.sent.append(frame)
        peer = self.peer
        assert peer is not None
        asyncio.get_running_loop().call_soon(peer._deliver, frame)

    def _deliver(self, frame: bytes) -> None:
        if self.closed.done():
            return
        if self._on_message is None:
            self._queue.append(frame)
        else:
            self._on_message(frame)

    def close(self, error: HyperlobbyError | None = None) -> None:
        if self.closed.done():
            return
        self.error = error
        self.closed.set_result(None)
        if self._on_close is not None:
            self._on_close(error)
        if self.peer is not None:
            self.peer.close()


def link(client_key: bytes, relay_key: bytes) -> tuple[FakeConn, FakeConn]:
    """(client end, relay end) of one connection."""
    c, r = FakeConn(client_key, relay_key), FakeConn(relay_key, client_key)
    c.peer, r.peer = r, c
    return c, r


class Relay:
    def __init__(self) -> None:
        self.key = os.urandom(32)
        self.udx = Udx()
        self.made: list[UdxStream] = []
        self.server = br.BlindRelayServer(self._create)

    def _create(self, firewall: Callable[[UdxSocket, str, int], bool]) -> UdxStream:
        stream = self.udx.create_stream(firewall=firewall)
        self.made.append(stream)
        return stream

    def client(self) -> tuple[br.BlindRelayClient, FakeConn, FakeConn]:
        c, r = link(os.urandom(32), self.key)
        client = br.BlindRelayClient(c)  # type: ignore[arg-type]
        self.server.accept(r)  # type: ignore[arg-type]
        return client, c, r


async def test_two_ends_of_a_token_get_each_a_relay_stream_that_relays_to_the_other() -> None:
    relay = Relay()
    (alice, _, _), (bob, _, _) = relay.client(), relay.client()
    token = br.new_token()
    got = await asyncio.wait_for(asyncio.gather(alice.pair(True, token, 111), bob.pair(False, token, 222)), 5)
    by_id = {s.id: s for s in relay.made}
    assert len(by_id) == 2 and set(got) == set(by_id)
    for_alice, for_bob = by_id[got[0]], by_id[got[1]]
    # each peer's relay stream relays to the other's stream
    assert for_alice._relay_to is for_bob and for_bob._relay_to is for_alice
    stats = relay.server.stats
    assert (stats.pairings_requested, stats.pairings_matched, stats.pairings_pending) == (2, 1, 0)
    assert stats.streams_active == 2 and stats.sessions_active == 2


async def test_a_pairing_waits_for_the_other_end_and_times_out_alone() -> None:
    relay = Relay()
    alice, _, _ = relay.client()
    with pytest.raises(br.RelayError):
        await alice.pair(True, br.new_token(), 1, timeout=0.2)
    assert relay.server.stats.pairings_pending == 1 and not relay.made


async def test_unpair_cancels_a_waiting_pairing() -> None:
    relay = Relay()
    (alice, _, _), (bob, _, _) = relay.client(), relay.client()
    token = br.new_token()
    waiting = asyncio.ensure_future(alice.pair(True, token, 1))
    await asyncio.sleep(0.05)
    alice.unpair(token)
    with pytest.raises(br.RelayError):
        await waiting
    await asyncio.sleep(0.05)
    assert relay.server.stats.pairings_cancelled == 1 and relay.server.stats.pairings_pending == 0
    # bob now waits alone: the cancelled half is gone
    with pytest.raises(br.RelayError):
        await bob.pair(False, token, 2, timeout=0.2)
    assert not relay.made


async def test_a_session_that_ends_tears_down_its_pairs() -> None:
    relay = Relay()
    (alice, alice_conn, _), (bob, _, _) = relay.client(), relay.client()
    token = br.new_token()
    await asyncio.wait_for(asyncio.gather(alice.pair(True, token, 1), bob.pair(False, token, 2)), 5)
    alice_conn.close()
    await asyncio.sleep(0.05)
    assert all(s.closed.done() for s in relay.made)
    assert relay.server.stats.streams_active == 0 and relay.server.stats.sessions_active == 1


async def test_the_same_end_asking_twice_is_answered_once() -> None:
    relay = Relay()
    (alice, _, _), (bob, _, _) = relay.client(), relay.client()
    token = br.new_token()
    alice.channel.send_pair(br.Pair(True, token, 1))  # an extra request for the same end
    await asyncio.wait_for(asyncio.gather(alice.pair(True, token, 1), bob.pair(False, token, 2)), 5)
    assert len(relay.made) == 2 and relay.server.stats.pairings_matched == 1


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\xff\xff",  # not a protomux frame
        b"\x01\x00" + b"\x01" * 5,  # a pair message with a 4-byte token
    ],
    ids=["garbage", "short-pair"],
)
async def test_a_peer_sending_garbage_loses_its_connection_not_the_relay(frame: bytes) -> None:
    relay = Relay()
    (alice, _, _), (bob, _, _) = relay.client(), relay.client()
    _mallory, mallory_conn, mallory_relay_end = relay.client()
    await asyncio.sleep(0.05)  # channels open
    mallory_conn.send(frame)
    await asyncio.sleep(0.05)
    assert mallory_relay_end.closed.done() and isinstance(mallory_relay_end.error, ProtocolError)
    token = br.new_token()
    got = await asyncio.wait_for(asyncio.gather(alice.pair(True, token, 1), bob.pair(False, token, 2)), 5)
    assert len(set(got)) == 2


async def test_a_client_whose_relay_goes_away_fails_its_pairing() -> None:
    relay = Relay()
    alice, _, relay_end = relay.client()
    waiting = asyncio.ensure_future(alice.pair(True, br.new_token(), 1))
    await asyncio.sleep(0.05)
    relay_end.close()
    with pytest.raises(br.RelayError):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(br.RelayError):
        await alice.pair(True, br.new_token(), 2)


def test_select_relay_takes_a_key_a_list_or_a_function() -> None:
    key = os.urandom(32)
    assert br.select_relay(None) is None
    assert br.select_relay(key) == key
    assert br.select_relay([key]) == key
    assert br.select_relay([]) is None
    assert br.select_relay(lambda: key) == key
    assert br.select_relay(lambda: None) is None
    with pytest.raises(Exception):  # noqa: B017 - EncodeError: not a key
        br.select_relay(b"short")


def test_messages_round_trip_through_the_codecs() -> None:
    token = br.new_token()
    assert compact.decode(br.unpair, compact.encode(br.unpair, br.Unpair(token))) == br.Unpair(token)


async def test_a_peer_asking_for_too_many_pairings_is_cut_off() -> None:
    relay = Relay()
    relay.server.max_pairs_per_session = 3
    (alice, _, alice_end), (bob, _, _) = relay.client(), relay.client()
    tokens = [br.new_token() for _ in range(3)]
    await asyncio.wait_for(
        asyncio.gather(
            *(alice.pair(True, t, i) for i, t in enumerate(tokens)), *(bob.pair(False, t, 9) for t in tokens)
        ),
        5,
    )
    assert len(relay.made) == 6
    alice.channel.send_pair(br.Pair(True, br.new_token(), 99))  # one more: over the limit
    await asyncio.sleep(0.05)
    assert alice_end.closed.done() and isinstance(alice_end.error, br.RelayError)
    assert relay.server.stats.sessions_active == 1
    # alice's pairs went with her session; bob's connection is untouched
    assert all(s.closed.done() for s in relay.made)
    token = br.new_token()
    carol, _, _ = relay.client()
    got = await asyncio.wait_for(asyncio.gather(bob.pair(True, token, 1), carol.pair(False, token, 2)), 5)
    assert len(set(got)) == 2


async def test_a_stream_id_beyond_32_bits_loses_the_connection() -> None:
    relay = Relay()
    mallory, _, mallory_end = relay.client()
    mallory.channel.send_pair(br.Pair(True, br.new_token(), 1 << 40))
    await asyncio.sleep(0.05)
    assert mallory_end.closed.done() and isinstance(mallory_end.error, ProtocolError)
    assert relay.server.stats.pairings_requested == 0
