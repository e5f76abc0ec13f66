"""UDX over real UDP sockets on 127.0.0.1, Python to Python."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sys

import pytest

from hyperlobby.errors import ProtocolError
from hyperlobby.swarm.udx import Udx, UdxSocket, UdxStream, UdxTransport, open_connection
from hyperlobby.wire.noise import NoiseKeyPair
from hyperlobby.wire.stream import open_secret_stream
from udx_helpers import LossyProxy, SecretOverUdx


async def pair(**opts: int) -> tuple[UdxSocket, UdxSocket, UdxStream, UdxStream]:
    a = await UdxSocket.bind("127.0.0.1")
    b = await UdxSocket.bind("127.0.0.1")
    sa = a.create_stream(**opts)
    sb = b.create_stream(**opts)
    sa.connect(sb.id, *b.address)
    sb.connect(sa.id, *a.address)
    return a, b, sa, sb


async def send_all(stream: UdxStream, data: bytes, chunk: int = 65536) -> None:
    for i in range(0, len(data), chunk):
        stream.write(data[i : i + chunk])
        await stream.drain()
    stream.end()


async def test_bulk_transfer_both_directions() -> None:
    a, b, sa, sb = await pair(max_payload=1452)
    try:
        data_ab, data_ba = os.urandom(8_000_000), os.urandom(3_000_000)
        async with asyncio.timeout(30):
            _, _, got_b, got_a = await asyncio.gather(
                send_all(sa, data_ab), send_all(sb, data_ba), sb.read_all(), sa.read_all()
            )
            assert hashlib.sha256(got_b).digest() == hashlib.sha256(data_ab).digest()
            assert got_a == data_ba
            assert await sa.wait_closed() is None and await sb.wait_closed() is None
    finally:
        await a.close()
        await b.close()


async def test_many_streams_share_one_socket() -> None:
    a = await UdxSocket.bind("127.0.0.1")
    b = await UdxSocket.bind("127.0.0.1")
    try:
        pairs = []
        for _ in range(20):
            sa, sb = a.create_stream(), b.create_stream()
            sa.connect(sb.id, *b.address)
            sb.connect(sa.id, *a.address)
            pairs.append((sa, sb, os.urandom(100_000)))

        async def one(sa: UdxStream, sb: UdxStream, data: bytes) -> None:
            async def echo() -> None:
                sb.write(await sb.read_all())
                sb.end()

            _, _, back = await asyncio.gather(send_all(sa, data), echo(), sa.read_all())
            assert back == data

        async with asyncio.timeout(30):
            await asyncio.gather(*(one(*p) for p in pairs))
    finally:
        await a.close()
        await b.close()


async def test_garbage_datagrams_are_ignored_and_other_datagrams_routed() -> None:
    a, b, sa, sb = await pair()
    c = await UdxSocket.bind("127.0.0.1")
    others: list[bytes] = []
    b.on_message = lambda data, addr: others.append(data)
    try:
        data = os.urandom(500_000)
        garbage = [b"", b"\xff", b"\xff\x01" + bytes(10), b"dht-rpc message", os.urandom(1200)]
        # forged UDX packets aimed at sb's id from the wrong address, and a bad data offset
        forged = bytes([0xFF, 1, 1, 0]) + sb.id.to_bytes(4, "little") + bytes(12) + b"evil"
        bad_offset = bytes([0xFF, 1, 1, 200]) + sb.id.to_bytes(4, "little") + bytes(12) + b"x"
        async with asyncio.timeout(20):
            writer = asyncio.ensure_future(send_all(sa, data))
            for _ in range(20):
                for g in [*garbage, forged, bad_offset]:
                    c.send(g, b.address)
                a.send(bad_offset, b.address)  # malformed, from the real peer's address
                await asyncio.sleep(0)
            got = await sb.read_all()
            await writer
        assert got == data
        assert b"dht-rpc message" in others and forged in others
    finally:
        await a.close()
        await b.close()
        await c.close()


async def test_destroy_reaches_the_peer() -> None:
    a, b, sa, sb = await pair()
    try:
        sa.write(b"hello")
        async with asyncio.timeout(10):
            assert await sb.read() == b"hello"
            sa.destroy()
            error = await sb.wait_closed()
            assert isinstance(error, ProtocolError)
            with pytest.raises(ProtocolError):
                await sb.read()
            with pytest.raises(ProtocolError):
                sb.write(b"late")
    finally:
        await a.close()
        await b.close()


async def test_messages_ride_on_the_stream() -> None:
    a, b, sa, sb = await pair()
    got: asyncio.Queue[bytes] = asyncio.Queue()
    sb.on_message = got.put_nowait
    try:
        sa.send_message(b"datagram")
        async with asyncio.timeout(10):
            assert await got.get() == b"datagram"
        with pytest.raises(Exception, match="larger than one packet"):
            sa.send_message(bytes(1153))
    finally:
        await a.close()
        await b.close()


async def test_close_is_clean_and_bounded() -> None:
    a, b, sa, sb = await pair()
    try:
        sa.write(b"bye")
        async with asyncio.timeout(15):
            closing = asyncio.ensure_future(sa.close(timeout=10))
            assert await sb.read_all() == b"bye"
            sb.end()
            await closing
            assert sa.closed.result() is None
        # A peer that never ends: close() gives up after its timeout and destroys.
        sc, sd = a.create_stream(), b.create_stream()
        sc.connect(sd.id, *b.address)
        sd.connect(sc.id, *a.address)
        async with asyncio.timeout(10):
            await sc.close(timeout=0.3)
            assert sc.closed.done()
            assert isinstance(await sd.wait_closed(), ProtocolError)
    finally:
        await a.close()
        await b.close()


async def test_secret_stream_over_udx() -> None:
    a, b, sa, sb = await pair()
    try:
        init = SecretOverUdx(sa, True, NoiseKeyPair.generate())
        resp = SecretOverUdx(sb, False, NoiseKeyPair.generate())
        async with asyncio.timeout(15):
            hs_i, hs_r = await init.handshake, await resp.handshake
            assert hs_i.handshake_hash == hs_r.handshake_hash
            messages = [os.urandom(n) for n in (0, 1, 1000, 65536, 300_000)]
            for m in messages:
                init.send(m)
            for m in messages[1:]:  # empty messages are keepalives and filtered
                got = await resp.messages.get()
                assert got == m
                resp.send(got[::-1])
            for m in messages[1:]:
                assert await init.messages.get() == m[::-1]
    finally:
        await a.close()
        await b.close()


async def test_read_sizes_and_a_slow_reader() -> None:
    a, b, sa, sb = await pair(recv_window=20_000, max_payload=1000)
    try:
        data = os.urandom(200_000)
        async with asyncio.timeout(20):
            writer = asyncio.ensure_future(send_all(sa, data, chunk=7000))
            got = bytearray()
            most_unread = 0
            while True:
                await asyncio.sleep(0.001)
                most_unread = max(most_unread, sb.state.unread_bytes)
                chunk = await sb.read(3333)
                assert len(chunk) <= 3333
                if not chunk:
                    break
                got += chunk
            await writer
        assert got == data
        assert most_unread <= 20_000
    finally:
        await a.close()
        await b.close()


async def test_firewall_hook_connects_on_first_packet() -> None:
    """HyperDHT style: the server stream is not connected until the client's first packet
    shows where it is; the hook sees (socket, host, port) and connects or rejects."""
    server = Udx()
    client = await UdxSocket.bind("127.0.0.1")
    s1 = await server.bind("127.0.0.1")
    s2 = await server.bind("127.0.0.1")
    stranger = await UdxSocket.bind("127.0.0.1")
    try:
        seen: list[tuple[int, str, int]] = []
        sc = client.create_stream()

        def firewall(sock: UdxSocket, host: str, port: int) -> bool:
            seen.append((sock.address[1], host, port))
            if port != client.address[1]:
                return True  # reject anyone but the expected client
            ss.connect(sc.id, host, port, socket=sock)
            return False

        ss = server.create_stream(firewall=firewall)
        # a stranger's packet for the stream is rejected by the hook and changes nothing
        evil = stranger.create_stream()
        evil.connect(ss.id, *s1.address)
        evil.write(b"not you")
        sc.connect(ss.id, *s2.address)  # the client reaches the server through its 2nd socket
        sc.write(b"hello")
        async with asyncio.timeout(10):
            assert await ss.read() == b"hello"
        assert ss.socket is s2 and ss.remote_address == ("127.0.0.1", client.address[1])
        assert (s1.address[1], "127.0.0.1", stranger.address[1]) in seen
        ss.write(b"world")
        async with asyncio.timeout(10):
            assert await sc.read() == b"world"
    finally:
        await server.close()
        await client.close()
        await stranger.close()


async def test_change_remote_mid_transfer() -> None:
    """A stream moves to another socket pair (relay -> direct upgrade) without losing a byte."""
    ua, ub = Udx(), Udx()
    a1, a2 = await ua.bind("127.0.0.1"), await ua.bind("127.0.0.1")
    b1, b2 = await ub.bind("127.0.0.1"), await ub.bind("127.0.0.1")
    try:
        sa, sb = a1.create_stream(), b1.create_stream()
        sa.connect(sb.id, *b1.address)
        sb.connect(sa.id, *a1.address)
        data = os.urandom(2_000_000)
        async with asyncio.timeout(20):
            writer = asyncio.ensure_future(send_all(sa, data))
            got = bytearray(await sb.read(100_000))
            sa.change_remote(sb.id, *b2.address, socket=a2)
            sb.change_remote(sa.id, *a2.address, socket=b2)
            got += await sb.read_all()
            await writer
        assert got == data
        assert sa.socket is a2 and sb.socket is b2
    finally:
        await ua.close()
        await ub.close()


async def test_ipv6_loopback() -> None:
    try:
        a = await UdxSocket.bind("::1")
    except OSError:
        pytest.fail("IPv6 loopback (::1) is not available on this machine")
    b = await UdxSocket.bind("::1")
    try:
        sa, sb = a.create_stream(), b.create_stream()
        sa.connect(sb.id, "::1", b.address[1])
        sb.connect(sa.id, "::1", a.address[1])
        data = os.urandom(300_000)
        async with asyncio.timeout(10):
            _, got = await asyncio.gather(send_all(sa, data), sb.read_all())
        assert got == data
    finally:
        await a.close()
        await b.close()


async def test_secret_stream_connection_over_udx_transport() -> None:
    """The TCP-era stack runs unchanged on UDX: asyncio streams -> open_secret_stream."""
    a, b, sa, sb = await pair()
    try:
        (ra, wa), (rb, wb) = await open_connection(sa), await open_connection(sb)
        kp_a, kp_b = NoiseKeyPair.generate(), NoiseKeyPair.generate()
        async with asyncio.timeout(20):
            conn_a, conn_b = await asyncio.gather(
                open_secret_stream(ra, wa, True, kp_a, keepalive=None),
                open_secret_stream(rb, wb, False, kp_b, keepalive=None),
            )
            messages = [os.urandom(n) for n in (1, 5000, 65536, 2_000_000)]
            for m in messages:
                await conn_a.send(m)
            for m in messages:
                assert await conn_b.recv() == m
                await conn_b.send(m[:100])
            for m in messages:
                assert await conn_a.recv() == m[:100]
            await conn_a.aclose()
            assert await conn_b.recv() is None
            await conn_b.aclose()
            assert await sa.wait_closed() is None and await sb.wait_closed() is None
    finally:
        await a.close()
        await b.close()


async def test_transport_back_pressure() -> None:
    """A protocol that pauses reading stalls the sender at the window (no unbounded buffering)."""
    a, b, sa, sb = await pair(recv_window=50_000, high_water=100_000)
    try:
        received = bytearray()

        class Slow(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.ReadTransport)
                self.transport = transport
                transport.pause_reading()

            def data_received(self, data: bytes) -> None:
                received.extend(data)

        proto = Slow()
        transport = UdxTransport(sb, proto)
        _, writer = await open_connection(sa)
        data = os.urandom(1_000_000)
        writer.write(data)
        async with asyncio.timeout(20):
            await asyncio.sleep(0.3)
            assert sb.state.unread_bytes <= 50_000  # held, but no more than the window
            assert sa.state.send_buffered > 900_000  # the sender is stalled, not dropping
            transport.resume_reading()
            while len(received) < len(data):
                await asyncio.sleep(0.01)
        assert received == data
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("seed", [3, 4])
async def test_bulk_both_ways_through_loss_duplication_and_reordering(seed: int) -> None:
    """Real sockets through a relay that drops 3%, duplicates 3% and delays each datagram
    by its own 0-4 ms (so they overtake each other): every byte arrives once, in order, in
    both directions, and the streams close cleanly."""
    a = await UdxSocket.bind("127.0.0.1")
    b = await UdxSocket.bind("127.0.0.1")
    proxy = LossyProxy(seed, duplicate=0.03)
    try:
        await proxy.start(a.address, b.address)
        sa = a.create_stream(max_payload=2028)
        sb = b.create_stream(max_payload=2028)
        sa.connect(sb.id, "127.0.0.1", proxy.port_for_a)
        sb.connect(sa.id, "127.0.0.1", proxy.port_for_b)
        data_ab, data_ba = os.urandom(1_500_000), os.urandom(400_000)
        async with asyncio.timeout(40):
            _, _, got_b, got_a = await asyncio.gather(
                send_all(sa, data_ab), send_all(sb, data_ba), sb.read_all(), sa.read_all()
            )
            assert hashlib.sha256(got_b).digest() == hashlib.sha256(data_ab).digest()
            assert got_a == data_ba
            assert await sa.wait_closed() is None and await sb.wait_closed() is None
        assert proxy.dropped > 0 and proxy.duplicated > 0
        assert sa.state.retransmits > 0
    finally:
        proxy.close()
        await a.close()
        await b.close()


async def test_a_datagram_can_carry_its_own_hop_limit() -> None:
    """send(ttl=5) puts 5 in that one datagram's IP header (what a holepunch's first probes
    need); the next datagram goes out with the default 64 again."""
    sender = await UdxSocket.bind("127.0.0.1")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)  # linux/in.h
        receiver.settimeout(5)
        target = receiver.getsockname()
        hops = []
        for ttl in (5, None):
            sender.send(b"\x00", target, ttl=ttl)
            _data, ancillary, _flags, _addr = receiver.recvmsg(16, socket.CMSG_SPACE(4))
            ((level, kind, value),) = ancillary
            assert (level, kind) == (socket.IPPROTO_IP, socket.IP_TTL)
            hops.append(int.from_bytes(value[:4], sys.byteorder))
        assert hops == [5, 64]
    finally:
        receiver.close()
        await sender.close()
