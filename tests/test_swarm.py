"""The asyncio Swarm on the in-memory fake DHT (tests/swarm_helpers.py): joining, deduplication,
firewall, max_peers, reconnects and their end, explicit peers, flush and close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hyperlobby.crypto.keys import key_pair
from hyperlobby.errors import SwarmError
from hyperlobby.swarm.hyperswarm import PeerInfo, Swarm
from swarm_helpers import FakeConnection, FakeNetwork, eventually

TOPIC = b"\x42" * 32
FAST = [0.02, 0.05, 0.1, 0.5]  # retry buckets in seconds, so reconnects happen within a test


class Rec:
    """A swarm plus the connections its on_connection hook saw."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self.seen: list[tuple[Any, PeerInfo]] = []


@contextlib.asynccontextmanager
async def swarms(net: FakeNetwork, n: int, **kw: Any) -> AsyncIterator[list[Rec]]:
    recs: list[Rec] = []
    for _ in range(n):
        s = Swarm(net.dht(), backoffs=FAST, jitter=0.0, owns_dht=True, **kw)
        rec = Rec(s)
        s.on_connection = lambda conn, info, rec=rec: rec.seen.append((conn, info))
        recs.append(rec)
    try:
        yield recs
    finally:
        for r in recs:
            await asyncio.wait_for(r.swarm.close(), 10)


async def test_two_swarms_on_a_topic_keep_one_connection_dialled_by_the_larger_key() -> None:
    net = FakeNetwork(connect_delay=0.01)
    async with swarms(net, 2) as (a, b):
        sa = a.swarm.join(TOPIC, server=True, client=False)
        sb = b.swarm.join(TOPIC, server=True, client=False)
        await asyncio.gather(a.swarm.flush(), b.swarm.flush())
        # both are announced now; turning both into clients at once makes each dial the other
        await asyncio.gather(sa.refresh(client=True), sb.refresh(client=True))
        await eventually(lambda: len(a.swarm.connections) == len(b.swarm.connections) == 1, "one each")
        await asyncio.sleep(0.05)  # let any loser's close settle
        (ca,), (cb,) = a.swarm.connections, b.swarm.connections
        assert isinstance(ca, FakeConnection) and ca.other is cb  # both ends of the same pair
        a_larger = a.swarm.key_pair.public_key > b.swarm.key_pair.public_key
        assert ca.is_initiator == a_larger and cb.is_initiator == (not a_larger)
        assert ca.remote_public_key == b.swarm.key_pair.public_key
        # both announced; the peer records carry the topic; no open connection besides this pair
        assert set(net.announcements[TOPIC]) == {a.swarm.key_pair.public_key, b.swarm.key_pair.public_key}
        assert a.swarm.peers[b.swarm.key_pair.public_key].topics == [TOPIC]
        open_pairs = [c for c in net.connections if not c.closed.done()]
        assert sorted(map(id, open_pairs)) == sorted([id(ca), id(cb)])
        # the hook saw every connection that opened, and at most one is left open
        assert a.seen and all(info.public_key == b.swarm.key_pair.public_key for _, info in a.seen)


async def test_simultaneous_dials_are_resolved_the_same_on_both_ends() -> None:
    """Both dial in the same instant (no lookup ordering): the dedup rule must agree."""
    for _ in range(6):  # different key orders
        net = FakeNetwork(connect_delay=0.01)
        async with swarms(net, 2) as (a, b):
            await a.swarm.listen()
            await b.swarm.listen()
            a.swarm.join_peer(b.swarm.key_pair.public_key)
            b.swarm.join_peer(a.swarm.key_pair.public_key)
            await eventually(lambda: len(a.swarm.connections) == len(b.swarm.connections) == 1, "one each")
            await asyncio.sleep(0.05)
            (ca,), (cb,) = a.swarm.connections, b.swarm.connections
            assert isinstance(ca, FakeConnection) and ca.other is cb
            winner = a if a.swarm.key_pair.public_key > b.swarm.key_pair.public_key else b
            assert winner.swarm.stats.client_opened >= 1
            assert (ca.is_initiator and winner is a) or (cb.is_initiator and winner is b)
            assert a.swarm.stats.duplicates + b.swarm.stats.duplicates >= 1


async def test_an_established_connection_is_replaced_by_a_redial() -> None:
    """A peer that redials although we hold a working connection lost it: the new one wins."""
    net = FakeNetwork()
    async with swarms(net, 2) as (a, b):
        await b.swarm.listen()
        a.swarm.join_peer(b.swarm.key_pair.public_key)
        await eventually(lambda: len(b.swarm.connections) == 1, "first connection")
        (old,) = b.swarm.connections
        assert isinstance(old, FakeConnection)
        old.send(b"x")
        assert old.other is not None
        old.other.send(b"y")  # carried bytes both ways: "established"
        # a second handshake from the same peer arrives at b's server (as after a's side lost it)
        assert b.swarm._server is not None
        new_a, new_b = FakeConnection.pair(a.swarm.key_pair.public_key, b.swarm.key_pair.public_key, 99)
        b.swarm._server.on_connection(new_b)
        await eventually(lambda: old.closed.done(), "old connection closed")
        await eventually(lambda: b.swarm.connections == {new_b}, "the new connection adopted")
        new_a.close()


async def test_firewall_rejects_and_bans() -> None:
    net = FakeNetwork()
    async with swarms(net, 2) as (a, b):
        refused: list[bytes] = []

        def firewall(remote: bytes) -> bool:
            refused.append(remote)
            return True

        b.swarm.firewall = firewall
        b.swarm.join(TOPIC, server=True, client=False)
        await b.swarm.flush()
        a.swarm.join(TOPIC, server=True, client=True)
        await a.swarm.flush()
        await asyncio.sleep(0.2)  # several retry windows
        assert not a.swarm.connections and not b.swarm.connections
        assert a.swarm.key_pair.public_key in refused
        assert b.swarm.peers[a.swarm.key_pair.public_key].banned
        assert b.swarm.stats.server_rejected >= 1
        assert any(op == "connect" and k == b.swarm.key_pair.public_key for op, k in net.log)
        # b now looks up too and finds a: a banned peer is never dialled
        await b.swarm.join(TOPIC, server=True, client=True).refresh()
        await b.swarm.flush()
        dials_to_a = [k for op, k in net.log if op == "connect" and k == a.swarm.key_pair.public_key]
        assert dials_to_a == [] and not b.swarm.connections


async def test_max_peers_bounds_dials_and_accepts() -> None:
    net = FakeNetwork()
    async with swarms(net, 6) as recs:
        hub = Swarm(net.dht(), backoffs=FAST, jitter=0.0, owns_dht=True, max_peers=2)
        try:
            for r in recs:
                r.swarm.join(TOPIC, server=True, client=False)
                await r.swarm.flush()
            hub.join(TOPIC)
            await hub.flush()
            await asyncio.sleep(0.1)
            assert len(hub.connections) == 2
            # now the crowd dials the (full) hub: it refuses them at the firewall
            for r in recs:
                r.swarm.join_peer(hub.key_pair.public_key)
            await asyncio.sleep(0.2)
            assert len(hub.connections) == 2
            assert hub.stats.server_rejected >= 1
        finally:
            await hub.close()


async def test_drop_reconnects_with_backoff_and_leave_stops_it() -> None:
    net = FakeNetwork()
    async with swarms(net, 2) as (a, b):
        b.swarm.join(TOPIC, server=True, client=False)
        await b.swarm.flush()
        a.swarm.join(TOPIC, server=False, client=True)
        await a.swarm.flush()
        bk = b.swarm.key_pair.public_key
        await eventually(lambda: len(a.swarm.connections) == 1, "a dials b")
        # a dropped connection is redialled (short bucket, since it was proven)
        first = next(iter(a.swarm.connections))
        first.close()
        await eventually(lambda: len(a.swarm.connections) == 1 and first not in a.swarm.connections, "redial")
        assert a.swarm.peers[bk].attempts == 1 and a.swarm.peers[bk].proven
        # a leaves the topic: the next drop is final, and the peer record is forgotten
        await a.swarm.leave(TOPIC)
        dials = sum(1 for op, k in net.log if op == "connect" and k == bk)
        second = next(iter(a.swarm.connections))
        second.close()
        await asyncio.sleep(0.3)  # well past every retry bucket in FAST but the extra-long one
        assert not a.swarm.connections
        assert sum(1 for op, k in net.log if op == "connect" and k == bk) == dials
        assert bk not in a.swarm.peers
        # leaving as a client never announced, so there was nothing to unannounce
        assert ("unannounce", TOPIC) not in net.log


async def test_unreachable_peer_is_given_up_after_four_failures() -> None:
    net = FakeNetwork()
    async with swarms(net, 1) as (a,):
        ghost = key_pair().public_key
        from hyperlobby.swarm.hyperdht.messages import Peer

        net.announcements[TOPIC] = {ghost: Peer(ghost)}  # announced, but nobody listens
        a.swarm.join(TOPIC, server=False, client=True)
        await a.swarm.flush()
        await eventually(lambda: ghost not in a.swarm.peers, "given up", timeout=5)
        dials = [k for op, k in net.log if op == "connect" and k == ghost]
        assert len(dials) == 4  # the first dial and three retries (medium, long, long)


async def test_explicit_peer_is_dialled_without_topics_and_can_be_left() -> None:
    net = FakeNetwork()
    async with swarms(net, 2) as (a, b):
        await b.swarm.listen()
        bk = b.swarm.key_pair.public_key
        a.swarm.join_peer(bk)
        await eventually(lambda: len(a.swarm.connections) == 1, "explicit dial")
        assert a.swarm.peers[bk].explicit and a.swarm.peers[bk].topics == []
        a.swarm.leave_peer(bk)
        next(iter(a.swarm.connections)).close()
        await asyncio.sleep(0.2)
        assert not a.swarm.connections and bk not in a.swarm.peers


async def test_close_unannounces_and_closes_connections() -> None:
    net = FakeNetwork()
    async with swarms(net, 2) as (a, b):
        a.swarm.join(TOPIC)
        b.swarm.join(TOPIC)
        await asyncio.gather(a.swarm.flush(), b.swarm.flush())
        await eventually(lambda: len(b.swarm.connections) == 1, "connected")
        (cb,) = b.swarm.connections
        await asyncio.wait_for(a.swarm.close(), 5)
        assert a.swarm.key_pair.public_key not in net.announcements[TOPIC]
        assert ("unannounce", TOPIC) in net.log
        assert cb.closed.done() and not a.swarm.connections
        with pytest.raises(SwarmError):
            a.swarm.join(TOPIC)
        # b notices the drop; a is gone, so b's redials fail and b gives up on it
        await eventually(lambda: not b.swarm.connections, "b sees the close")


async def test_destroying_the_last_session_leaves_the_topic() -> None:
    net = FakeNetwork()
    async with swarms(net, 1) as (a,):
        s1 = a.swarm.join(TOPIC)
        s2 = a.swarm.join(TOPIC, server=False, client=True)
        assert await s1.flushed() and await s2.flushed()
        assert a.swarm.key_pair.public_key in net.announcements[TOPIC]
        await s1.destroy()  # the only server session: the topic is unannounced, lookups go on
        assert a.swarm.key_pair.public_key not in net.announcements[TOPIC]
        assert a.swarm.topics == [TOPIC]
        assert await s2.refresh()
        await s2.destroy()
        assert a.swarm.topics == []
        with pytest.raises(SwarmError):
            a.swarm.join(b"short")


async def test_flush_waits_for_queued_dials() -> None:
    net = FakeNetwork(connect_delay=0.05)
    async with swarms(net, 4) as recs:
        for r in recs[1:]:
            r.swarm.join(TOPIC, server=True, client=False)
            await r.swarm.flush()
        a = recs[0].swarm
        a.join(TOPIC, server=False, client=True)
        assert await a.flush()
        # every queued dial settled before flush() returned: all three peers are connected
        assert len(a.connections) == 3


async def test_a_connection_without_byte_counters_counts_as_established_once_open() -> None:
    """The duplicate rule's "outdated" test falls back to "open" when a connection has no counters."""
    from hyperlobby.swarm.hyperswarm.swarm import _Slot

    a, b = FakeConnection.pair(b"\x01" * 32, b"\x02" * 32, 1)
    slot = _Slot(b"\x02" * 32, True)
    assert not slot.established  # a dial in flight never is
    slot.conn = a
    assert not slot.established  # counters present and zero: not yet
    a.send(b"x")
    b.send(b"y")
    assert slot.established
    del a.raw_bytes_read, a.raw_bytes_written
    assert slot.established  # no counters: open is enough
    a.close()
    assert not slot.established


async def test_periodic_refresh_finds_a_peer_that_came_later() -> None:
    net = FakeNetwork()
    async with swarms(net, 2, refresh_interval=0.05, refresh_jitter=0.0) as (a, b):
        a.swarm.join(TOPIC, server=False, client=True)
        assert await a.swarm.flush() and not a.swarm.connections  # nobody there yet
        b.swarm.join(TOPIC, server=True, client=False)
        await b.swarm.flush()
        # no explicit refresh: a's timer looks the topic up again and dials b
        await eventually(lambda: len(a.swarm.connections) == 1, "found by a later refresh")
        status = a.swarm.status(TOPIC)
        assert status is not None and status.refreshes >= 2


async def test_a_failed_listen_is_retried_by_the_next_refresh() -> None:
    net = FakeNetwork(fail_listens=1)
    async with swarms(net, 1) as (a,):
        session = a.swarm.join(TOPIC)
        assert not await session.flushed()  # the first announce could not even start a server
        assert a.swarm.key_pair.public_key not in net.announcements.get(TOPIC, {})
        assert await session.refresh()
        assert a.swarm.key_pair.public_key in net.announcements[TOPIC]
        assert a.swarm.key_pair.public_key in net.servers


async def test_ban_refuses_both_ways_and_keys_are_checked() -> None:
    net = FakeNetwork()
    async with swarms(net, 2) as (a, b):
        await a.swarm.listen()
        await b.swarm.listen()
        a.swarm.ban(b.swarm.key_pair.public_key)
        a.swarm.join_peer(b.swarm.key_pair.public_key)  # banned: never dialled
        b.swarm.join_peer(a.swarm.key_pair.public_key)  # b's dial is refused at a's firewall
        await asyncio.sleep(0.2)
        assert not a.swarm.connections and not b.swarm.connections
        assert not any(op == "connect" and k == b.swarm.key_pair.public_key for op, k in net.log)
        assert a.swarm.stats.server_rejected >= 1
        a.swarm.ban(b.swarm.key_pair.public_key, False)
        await eventually(lambda: len(a.swarm.connections) == 1, "connected once unbanned")
        with pytest.raises(SwarmError):
            a.swarm.join_peer(b"\x01" * 31)
        a.swarm.join_peer(a.swarm.key_pair.public_key)  # ourselves: ignored
        assert a.swarm.key_pair.public_key not in a.swarm.peers
