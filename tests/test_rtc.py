"""Host and guests on aiortc over loopback: joining, the room, capacity, leaving, vanishing.

Everything is pinned to 127.0.0.1 with no ICE servers (the first tests prove it), every wait
is bounded, and nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

from hyperlobby.errors import AdmissionRefused, RtcError, SessionFullError
from hyperlobby.rtc import (
    Closed,
    IceConfig,
    IceServer,
    Joined,
    Left,
    MemorySignaling,
    Message,
    Peers,
    RoomEvent,
    RtcGuest,
    RtcHost,
    join,
    serve,
)
from hyperlobby.rtc.ice import filter_remote_sdp, ice_servers_in_use, sdp_candidates
from hyperlobby.rtc.signal import decode_signal

ICE = IceConfig.loopback()
WAIT = 10.0


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def next_of(guest: RtcGuest, kind: type, timeout: float = WAIT) -> RoomEvent:
    """The next event of ``kind``, skipping others (joins and leaves interleave with messages)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await guest.next_event(timeout)
            if isinstance(event, kind):
                return event


async def connect(host: RtcHost, guest_id: str, **kwargs: float) -> RtcGuest:
    guest = RtcGuest(guest_id, ice=ICE, **kwargs)
    await guest.complete(await host.accept(guest_id, await guest.offer()))
    await asyncio.wait_for(guest.opened, WAIT)
    return guest


@pytest.fixture
async def host() -> AsyncIterator[RtcHost]:
    h = RtcHost(8, ice=ICE, ping_interval=0.2, ping_timeout=1.5)
    yield h
    await h.close()


async def test_loopback_only_offers_and_contacts_nothing_else(host: RtcHost) -> None:
    assert IceConfig().rtc_configuration().iceServers == []  # never aiortc's public default
    with pytest.raises(RtcError):
        IceConfig(ice_servers=(IceServer(("stun:stun.example:3478",)),), loopback_only=True)
    guest = RtcGuest("alice", ice=ICE)
    offer = await guest.offer()
    answer = await host.accept("alice", offer)
    for signal in (offer, answer):
        sdp = decode_signal(signal).sdp  # type: ignore[union-attr]
        assert sdp_candidates(sdp) == ["127.0.0.1"]
    pc = guest.peer_connection
    assert pc is not None
    assert ice_servers_in_use(pc) == (None, None)
    conn = pc.sctp.transport.transport.iceGatherer._connection  # type: ignore[union-attr]
    assert {p.transport.get_extra_info("sockname")[0] for p in conn._protocols} == {"127.0.0.1"}
    await guest.complete(answer)
    await asyncio.wait_for(guest.opened, WAIT)
    await guest.leave()


def test_remote_candidates_off_this_machine_are_never_tried() -> None:
    sdp = (
        "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
        "a=candidate:2 1 udp 2130706431 192.168.1.7 5000 typ host\r\n"
        "a=candidate:3 1 udp 2130706431 8c1f0c7a.local 5000 typ host\r\n"
        "a=candidate:4 1 udp 1694498815 203.0.113.9 6000 typ srflx raddr 0.0.0.0 rport 0\r\n"
        "a=candidate:5 1 udp 2130706431 ::1 5001 typ host\r\n"
        "a=candidate:broken\r\n"
    )
    assert sdp_candidates(filter_remote_sdp(sdp, ICE)) == ["127.0.0.1", "::1"]
    assert "a=candidate:broken" not in filter_remote_sdp(sdp, ICE)
    assert filter_remote_sdp(sdp, IceConfig()) == sdp


async def test_room_broadcast_direct_and_membership() -> None:
    counts: list[int] = []
    async with RtcHost(4, ice=ICE, on_peers_changed=counts.append) as host:
        alice = await connect(host, "alice")
        assert await next_of(alice, Peers) == Peers("alice", ())
        bob = await connect(host, "bob")
        carol = await connect(host, "carol")
        assert await next_of(carol, Peers) == Peers("carol", ("alice", "bob"))
        assert await next_of(alice, Joined) == Joined("bob")
        assert await next_of(alice, Joined) == Joined("carol")
        await until(lambda: set(alice.peers) == {"bob", "carol"})
        assert host.peers == 3 and host.guests == ("alice", "bob", "carol")
        assert counts == [1, 2, 3]

        alice.send("hello room")
        assert await next_of(bob, Message) == Message("alice", "hello room")
        assert await next_of(carol, Message) == Message("alice", "hello room")

        carol.send_to("bob", b"\x00secret\xff")
        assert await next_of(bob, Message) == Message("carol", b"\x00secret\xff", "bob")
        bob.send("reply")  # alice's next message is bob's: carol's direct never reached her
        assert await next_of(alice, Message) == Message("bob", "reply")
        assert await next_of(carol, Message) == Message("bob", "reply")

        # A guest claiming to be someone else is stamped with who it really is.
        assert bob._channel is not None
        bob._channel.send(json.dumps({"type": "msg", "from": "alice", "body": "it's me"}))
        assert await next_of(carol, Message) == Message("bob", "it's me")
        for g in (alice, bob, carol):
            await g.leave()


async def test_max_peers_refusal_and_room_again_after_a_leave() -> None:
    async with RtcHost(2, ice=ICE) as host:
        a = await connect(host, "a")
        b = await connect(host, "b")
        c = RtcGuest("c", ice=ICE)
        offer = await c.offer()
        with pytest.raises(SessionFullError) as refused:
            await host.accept("c", offer)
        assert refused.value.reason == "full"
        assert host.peers == 2 and host.reserved == 2
        await b.leave()
        await until(lambda: host.peers == 1)
        await c.complete(await host.accept("c", offer))
        await asyncio.wait_for(c.opened, WAIT)
        assert host.guests == ("a", "c")
        await a.leave()
        await c.leave()


async def test_guest_leaves_peers_drop_and_others_are_told() -> None:
    counts: list[int] = []
    async with RtcHost(4, ice=ICE, on_peers_changed=counts.append) as host:
        a = await connect(host, "a")
        b = await connect(host, "b")
        await b.leave()
        assert b.closed
        assert await next_of(a, Left) == Left("b", "left")
        await until(lambda: host.peers == 1)
        assert counts == [1, 2, 1]
        assert a.peers == ()
        with pytest.raises(RtcError):
            b.send("too late")
        await a.leave()
        await until(lambda: host.peers == 0)


async def test_host_notices_a_guest_that_vanished() -> None:
    async with RtcHost(4, ice=ICE, ping_interval=0.2, ping_timeout=1.0) as host:
        a = await connect(host, "a")
        b = await connect(host, "b", host_timeout=60.0)
        # Kill b's network without a word: its sockets close, no SCTP abort or DTLS alert leaves.
        pc = b.peer_connection
        assert pc is not None
        conn = pc.sctp.transport.transport.iceGatherer._connection  # type: ignore[union-attr]
        for protocol in list(conn._protocols):
            protocol.transport.close()
        left = await next_of(a, Left, timeout=15.0)
        assert left == Left("b", "timeout")
        assert host.peers == 1 and host.guests == ("a",)
        await b.leave()
        await a.leave()


async def test_host_close_ends_every_guest() -> None:
    counts: list[int] = []
    host = RtcHost(4, ice=ICE, on_peers_changed=counts.append)
    a = await connect(host, "a")
    b = await connect(host, "b")
    await host.close()
    for guest in (a, b):
        closed = await next_of(guest, Closed)
        assert isinstance(closed, Closed)
        assert guest.closed
    assert host.peers == 0 and counts[-1] == 0
    c = RtcGuest("c", ice=ICE)
    with pytest.raises(AdmissionRefused) as refused:
        await host.accept("c", await c.offer())
    assert refused.value.reason == "closed"
    await c.leave()
    await host.close()  # idempotent


async def test_guest_notices_a_host_that_vanished() -> None:
    async with RtcHost(4, ice=ICE, ping_interval=5.0, ping_timeout=60.0) as host:
        a = await connect(host, "a", host_timeout=1.0)
        # The host pings every 5 s, so 1 s of silence is "gone" for this guest.
        closed = await next_of(a, Closed)
        assert closed == Closed("host timeout")
        await until(lambda: host.peers == 0)


async def test_hostile_frames_are_dropped_and_the_guest_stays(host: RtcHost) -> None:
    a = await connect(host, "a")
    b = await connect(host, "b")
    channel = a._channel
    assert channel is not None
    for raw in [
        "not json",
        b"\xff\xfe\x00",
        json.dumps({"type": "peers", "to": "b", "peers": ["evil"]}),
        json.dumps({"type": "join", "from": "evil"}),
        json.dumps({"type": "direct", "to": "nobody", "body": "x"}),
        json.dumps({"type": "msg", "body": "x" * 70000}),
    ]:
        channel.send(raw)
    a.send("still here")
    assert await next_of(b, Message) == Message("a", "still here")
    assert sum(host.dropped_frames.values()) == 6
    assert host.peers == 2 and b.peers == ("a",)
    with pytest.raises(RtcError, match="too large"):
        a.send("x" * 70000)
    await a.leave()
    await b.leave()


async def test_a_guest_that_never_connects_gives_its_place_back() -> None:
    async with RtcHost(1, ice=ICE, open_timeout=0.5) as host:
        ghost = RtcGuest("ghost", ice=ICE)
        await host.accept("ghost", await ghost.offer())  # the answer is never applied
        assert host.reserved == 1 and host.peers == 0
        await until(lambda: host.reserved == 0)
        a = await connect(host, "a")
        assert host.guests == ("a",)
        await ghost.leave()
        await a.leave()


async def test_same_guest_reconnecting_replaces_the_old_connection(host: RtcHost) -> None:
    other = await connect(host, "other")
    old = await connect(host, "a")
    new = await connect(host, "a")
    assert await next_of(old, Closed)
    assert host.guests == ("other", "a") and host.peers == 2
    new.send("back")
    assert await next_of(other, Message) == Message("a", "back")
    await new.leave()
    await other.leave()


async def test_bad_offers_are_refused_without_harm(host: RtcHost) -> None:
    with pytest.raises(RtcError):
        await host.accept("a", b"garbage")
    with pytest.raises(RtcError):
        await host.accept("a", b'{"type":"offer","sdp":"v=0\\r\\nnonsense"}')
    with pytest.raises(AdmissionRefused) as refused:
        await host.accept("bad\nid", b"")
    assert refused.value.reason == "bad-id"
    assert host.reserved == 0
    a = await connect(host, "a")
    await a.leave()


async def test_serve_and_join_through_the_signaling_seam() -> None:
    lobby = MemorySignaling()
    async with RtcHost(1, ice=ICE) as host:
        server = asyncio.create_task(serve(host, lobby))
        a = RtcGuest("a", ice=ICE)
        await join(a, lobby, timeout=WAIT)
        assert host.peers == 1
        b = RtcGuest("b", ice=ICE)
        with pytest.raises(SessionFullError):
            await join(b, lobby, timeout=WAIT)
        assert b.closed
        await a.leave()
        await until(lambda: host.peers == 0)
        c = RtcGuest("c", ice=ICE)
        await join(c, lobby, timeout=WAIT)
        await c.leave()
        lobby.close()
        await asyncio.wait_for(server, WAIT)
