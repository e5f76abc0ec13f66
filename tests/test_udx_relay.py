"""UDX stream relaying (``UdxStream.relay_to``) and path changes, over real sockets on 127.0.0.1.

Three sockets: two peers and a relay whose two streams forward to each other, as blind-relay
sets them up: each relay stream connects to whoever sends to it first.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct

import pytest

from hyperlobby.errors import ProtocolError
from hyperlobby.swarm.udx import UdxSocket, UdxStream


async def send_all(stream: UdxStream, data: bytes, chunk: int = 65536) -> None:
    for i in range(0, len(data), chunk):
        stream.write(data[i : i + chunk])
        await stream.drain()
    stream.end()


async def read_exactly(stream: UdxStream, n: int) -> bytes:
    parts = []
    while n > 0:
        part = await stream.read(n)
        assert part, "stream ended early"
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


class Relayed:
    """peer a <-> relay (r_a, r_b) <-> peer b."""

    async def __aenter__(self) -> Relayed:
        self.sa = await UdxSocket.bind("127.0.0.1")
        self.sb = await UdxSocket.bind("127.0.0.1")
        self.sr = await UdxSocket.bind("127.0.0.1")
        self.a = self.sa.create_stream()
        self.b = self.sb.create_stream()
        self.firewall_calls: list[tuple[str, int]] = []
        self.r_a = self.sr.create_stream(firewall=self._connect_on_first(self.a.id, "r_a"))
        self.r_b = self.sr.create_stream(firewall=self._connect_on_first(self.b.id, "r_b"))
        self.r_a.relay_to(self.r_b)
        self.r_b.relay_to(self.r_a)
        return self

    def _connect_on_first(self, remote_id: int, name: str):  # type: ignore[no-untyped-def]
        def firewall(socket: UdxSocket, host: str, port: int) -> bool:
            self.firewall_calls.append((name, port))
            stream = self.r_a if name == "r_a" else self.r_b
            stream.connect(remote_id, host, port, socket)
            return False

        return firewall

    def connect_peers(self) -> None:
        self.a.connect(self.r_a.id, *self.sr.address)
        self.b.connect(self.r_b.id, *self.sr.address)

    async def __aexit__(self, *exc: object) -> None:
        for s in (self.sa, self.sb, self.sr):
            await s.close()


async def test_bytes_flow_both_ways_through_the_relay() -> None:
    async with Relayed() as t:
        t.connect_peers()
        data_ab, data_ba = os.urandom(3_000_000), os.urandom(1_000_000)
        async with asyncio.timeout(30):
            _, _, got_b, got_a = await asyncio.gather(
                send_all(t.a, data_ab), send_all(t.b, data_ba), t.b.read_all(), t.a.read_all()
            )
        assert hashlib.sha256(got_b).digest() == hashlib.sha256(data_ab).digest()
        assert got_a == data_ba
        # each relay stream connected once, to its own peer
        assert sorted(t.firewall_calls) == sorted([("r_a", t.sa.address[1]), ("r_b", t.sb.address[1])])
        assert t.r_a.remote_address == t.sa.address and t.r_b.remote_address == t.sb.address
        # the relay forwarded without reading: nothing was delivered to its own streams
        assert t.r_a.state.packets_received == 0 and t.r_b.state.packets_received == 0


async def test_packets_sent_before_the_other_end_connects_are_retransmitted() -> None:
    async with Relayed() as t:
        t.a.connect(t.r_a.id, *t.sr.address)
        t.a.write(b"early")  # reaches r_a, which cannot forward yet: r_b is not connected
        await asyncio.sleep(0.1)
        assert t.r_b.remote_address is None
        t.b.connect(t.r_b.id, *t.sr.address)
        t.b.write(b"hello")  # connects r_b; a's retransmission then gets through
        async with asyncio.timeout(10):
            assert await read_exactly(t.b, 5) == b"early"
            assert await read_exactly(t.a, 5) == b"hello"


async def test_a_destroy_ends_the_other_peer_and_both_relay_streams() -> None:
    async with Relayed() as t:
        t.connect_peers()
        t.a.write(b"x")
        t.b.write(b"y")  # a relay stream connects when its peer first sends
        async with asyncio.timeout(10):
            assert await t.b.read(1) == b"x"
            t.a.destroy()
            err = await t.b.wait_closed()
            assert isinstance(err, ProtocolError)  # reset by peer, forwarded by the relay
            await t.r_a.wait_closed()
            await t.r_b.wait_closed()


async def test_closing_one_relay_stream_closes_its_partner_silently() -> None:
    async with Relayed() as t:
        t.connect_peers()
        t.a.write(b"x")
        t.b.write(b"y")
        async with asyncio.timeout(10):
            assert await t.b.read(1) == b"x"
        t.r_b.destroy()
        async with asyncio.timeout(5):
            await t.r_a.wait_closed()
        assert t.r_a.state.destroyed


async def test_a_relayed_stream_moves_to_a_direct_path_without_losing_bytes() -> None:
    async with Relayed() as t:
        t.connect_peers()
        moved: list[tuple[int, str, int]] = []

        def on_new_path(socket: UdxSocket, host: str, port: int) -> bool:
            moved.append((socket.address[1], host, port))
            if (host, port) != t.sr.address:  # a direct packet: follow it
                t.b.change_remote(t.a.id, host, port, socket)
            return True

        t.b.on_new_path = on_new_path
        first, second = os.urandom(500_000), os.urandom(2_000_000)
        async with asyncio.timeout(30):
            t.b.write(b"y")
            t.a.write(first)
            assert await read_exactly(t.b, len(first)) == first
            # a's side upgrades first (its holepunch came through); b follows the first packet
            t.a.change_remote(t.b.id, *t.sb.address)
            _, got = await asyncio.gather(send_all(t.a, second), t.b.read_all())
        assert got == second
        assert moved and moved[0][1:] == t.sa.address
        assert t.b.remote_address == t.sa.address and t.a.remote_address == t.sb.address


async def test_relay_to_refuses_twice_and_closed_streams() -> None:
    async with Relayed() as t:
        with pytest.raises(ProtocolError):
            t.r_a.relay_to(t.r_b)
        extra = t.sr.create_stream()
        extra.destroy()
        with pytest.raises(ProtocolError):
            t.sr.create_stream().relay_to(extra)


async def test_coalesced_reads_are_forwarded_as_one_offload_send() -> None:
    async with Relayed() as t:
        t.connect_peers()
        forwarded: list[bool] = []
        original = t.r_a._forward_run

        def spy(data: bytes, segment: int) -> bool:
            forwarded.append(original(data, segment))
            return forwarded[-1]

        t.r_a._forward_run = spy  # type: ignore[method-assign]
        data = os.urandom(4_000_000)
        t.b.write(b"y")
        async with asyncio.timeout(30):
            _, got = await asyncio.gather(send_all(t.a, data), read_exactly(t.b, len(data)))
        assert got == data
        assert any(forwarded)


def _header(flags: int, stream_id: int, seq: int) -> bytes:
    return struct.pack("<BBBBIIII", 0xFF, 1, flags, 0, stream_id, 1 << 20, seq, 0)


async def test_runs_that_are_not_all_ours_go_datagram_by_datagram() -> None:
    async with Relayed() as t:
        t.connect_peers()
        t.b.write(b"y")  # connects r_b
        async with asyncio.timeout(5):
            while t.r_b.remote_address is None:
                await asyncio.sleep(0.01)
        segment = 100
        body = bytes(segment - 20)
        ours = [_header(1, t.r_a.id, i) + body for i in range(3)]
        assert t.r_a._forward_run(b"".join(ours), segment)
        mixed = [ours[0], _header(1, t.r_b.id, 1) + body, ours[2]]  # another stream's packet
        assert not t.r_a._forward_run(b"".join(mixed), segment)
        ending = [ours[0], _header(0x10, t.r_a.id, 1) + body]  # a DESTROY ends the relay too
        assert not t.r_a._forward_run(b"".join(ending), segment)
        assert not t.r_a._forward_run(b"".join(ours) + b"\xff\x01", segment)  # a torn last header
