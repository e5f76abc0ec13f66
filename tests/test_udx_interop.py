"""Live interop with udx-native 1.21.3 (interop/peers/udx_peer.js) over 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from hyperlobby.errors import ProtocolError
from hyperlobby.swarm.udx import UdxSocket, UdxStream, open_connection
from hyperlobby.swarm.udx_protocol import MAX_ETHERNET_PAYLOAD, MAX_UDX_NATIVE_PAYLOAD
from hyperlobby.wire.noise import NoiseKeyPair
from hyperlobby.wire.stream import open_secret_stream
from udx_helpers import JsUdxPeer, LossyProxy, SecretOverUdx

pytestmark = pytest.mark.interop

MB = 1_000_000


async def send_all(stream: UdxStream, data: bytes, chunk: int = 65536) -> None:
    for i in range(0, len(data), chunk):
        stream.write(data[i : i + chunk])
        await stream.drain()
    stream.end()


@pytest.mark.parametrize("max_payload", [1152, 1452, MAX_UDX_NATIVE_PAYLOAD])
async def test_echo_through_udx_native(max_payload: int) -> None:
    """Python sends 4 MB, udx-native echoes every byte back: both directions at once."""
    sock = await UdxSocket.bind("127.0.0.1")
    peer = await JsUdxPeer.start(sock, "echo", max_payload=max_payload)
    try:
        data = os.urandom(4 * MB)
        async with asyncio.timeout(40):
            _, back = await asyncio.gather(send_all(peer.stream, data), peer.stream.read_all())
            assert back == data
            result = await peer.next_json()
            assert await peer.stream.wait_closed() is None
        assert result["event"] == "closed" and result["error"] is None
        assert result["received"] == len(data) == result["sent"]
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
    finally:
        await peer.stop()
        await sock.close()


async def test_receive_from_udx_native() -> None:
    sock = await UdxSocket.bind("127.0.0.1")
    peer = await JsUdxPeer.start(sock, "source", str(5 * MB))
    try:
        async with asyncio.timeout(40):
            got = await peer.stream.read_all()
            peer.stream.end()
            result = await peer.next_json()
            assert await peer.stream.wait_closed() is None
        assert len(got) == 5 * MB and result["sent"] == len(got)
        assert hashlib.sha256(got).hexdigest() == result["sentSha256"]
        assert result["error"] is None
    finally:
        await peer.stop()
        await sock.close()


async def test_send_to_udx_native() -> None:
    sock = await UdxSocket.bind("127.0.0.1")
    peer = await JsUdxPeer.start(sock, "sink")
    try:
        data = os.urandom(5 * MB)
        async with asyncio.timeout(40):
            await send_all(peer.stream, data)
            assert await peer.stream.read_all() == b""
            result = await peer.next_json()
            assert await peer.stream.wait_closed() is None
        assert result["received"] == len(data)
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        # our padded MTU probes got through udx-native's parser: the path's full size is in use
        assert peer.stream.state.max_payload == MAX_ETHERNET_PAYLOAD
    finally:
        await peer.stop()
        await sock.close()


async def test_messages_and_destroy_with_udx_native() -> None:
    sock = await UdxSocket.bind("127.0.0.1")
    peer = await JsUdxPeer.start(sock, "message")
    got: asyncio.Queue[bytes] = asyncio.Queue()
    peer.stream.on_message = got.put_nowait
    try:
        async with asyncio.timeout(20):
            for i in range(5):
                # messages are unreliable: resend until the echo shows up (loopback rarely drops)
                message = f"message {i}".encode()
                for _ in range(20):
                    peer.stream.send_message(message)
                    try:
                        assert await asyncio.wait_for(got.get(), 0.5) == message
                        break
                    except TimeoutError:
                        continue
                else:
                    pytest.fail("no message echo from udx-native")
            assert peer.proc.stdin is not None
            peer.proc.stdin.close()  # the peer destroys its stream when stdin ends
            error = await peer.stream.wait_closed()
            assert isinstance(error, ProtocolError)
    finally:
        await peer.stop()
        await sock.close()


async def test_udx_native_sees_our_destroy() -> None:
    sock = await UdxSocket.bind("127.0.0.1")
    peer = await JsUdxPeer.start(sock, "echo")
    try:
        async with asyncio.timeout(20):
            peer.stream.write(b"ping")
            assert await peer.stream.read(4) == b"ping"
            peer.stream.destroy()
            result = await peer.next_json()
        assert result["event"] == "closed" and result["error"]  # "connection reset by peer"
    finally:
        await peer.stop()
        await sock.close()


@pytest.mark.parametrize("python_is_initiator", [True, False])
async def test_secret_stream_over_udx_with_js(python_is_initiator: bool) -> None:
    """Our SecretStream on our UDX against JS ``new SecretStream(init, udxStream)``."""
    sock = await UdxSocket.bind("127.0.0.1")
    seed = os.urandom(32)
    role = "resp" if python_is_initiator else "init"
    peer = await JsUdxPeer.start(sock, "secret", role, seed.hex())
    try:
        ours = SecretOverUdx(peer.stream, python_is_initiator, NoiseKeyPair.generate())
        async with asyncio.timeout(30):
            hs = await ours.handshake
            js = await peer.next_json()
            assert js["event"] == "handshake"
            assert js["handshakeHash"] == hs.handshake_hash.hex()
            assert js["remotePublicKey"] == ours.secret.public_key.hex()
            messages = [os.urandom(n) for n in (1, 100, 1152, 1153, 65536, 1_000_000, 7)]
            for m in messages:
                ours.send(m)
            for m in messages:
                assert await ours.messages.get() == m
            peer.stream.end()
            result = await peer.next_json()
            assert result["event"] == "closed" and result["error"] is None
            assert result["received"] == sum(map(len, messages))
    finally:
        await peer.stop()
        await sock.close()


@pytest.mark.parametrize("seed", [1, 2])
async def test_echo_with_udx_native_through_loss_and_reordering(seed: int) -> None:
    """3% loss and jitter both ways: our SACKs drive udx-native's recovery and its SACKs ours."""
    sock = await UdxSocket.bind("127.0.0.1")
    proxy = LossyProxy(seed)
    peer = await JsUdxPeer.start(sock, "echo", proxy=proxy)
    try:
        data = os.urandom(1 * MB)
        async with asyncio.timeout(40):
            _, back = await asyncio.gather(send_all(peer.stream, data), peer.stream.read_all())
            assert back == data
            result = await peer.next_json()
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        assert proxy.dropped > 0 and peer.stream.state.retransmits > 0
    finally:
        await peer.stop()
        proxy.close()
        await sock.close()


async def test_flow_control_with_a_slow_reader() -> None:
    """A 64 kB receive window and a reader that sleeps: udx-native must not overrun it."""
    sock = await UdxSocket.bind("127.0.0.1")
    create = sock.create_stream
    sock.create_stream = lambda **kw: create(recv_window=64_000, **kw)  # type: ignore[method-assign]
    peer = await JsUdxPeer.start(sock, "source", str(MB))
    stream = peer.stream
    try:
        got = bytearray()
        most_unread = 0
        async with asyncio.timeout(30):
            while True:
                await asyncio.sleep(0.005)
                most_unread = max(most_unread, stream.state.unread_bytes)
                chunk = await stream.read(40_000)
                if not chunk:
                    break
                got += chunk
            stream.end()
            result = await peer.next_json()
        assert hashlib.sha256(got).hexdigest() == result["sentSha256"]
        assert most_unread <= 64_000
    finally:
        await peer.stop()
        await sock.close()


async def test_secret_stream_connection_over_udx_transport_with_js() -> None:
    """wire.stream.open_secret_stream, unchanged, over UdxTransport to JS secret-stream on udx-native."""
    sock = await UdxSocket.bind("127.0.0.1")
    peer = await JsUdxPeer.start(sock, "secret", "resp", os.urandom(32).hex())
    try:
        reader, writer = await open_connection(peer.stream)
        async with asyncio.timeout(30):
            conn = await open_secret_stream(reader, writer, True, NoiseKeyPair.generate(), keepalive=None)
            assert (await peer.next_json())["event"] == "handshake"
            messages = [os.urandom(n) for n in (3, 4000, 200_000)]
            for m in messages:
                await conn.send(m)
            for m in messages:
                assert await conn.recv() == m
            await conn.aclose()
            result = await peer.next_json()
        assert result["event"] == "closed" and result["error"] is None
    finally:
        await peer.stop()
        await sock.close()
