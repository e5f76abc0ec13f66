"""The asyncio adapter over real loopback TCP: Python <-> Python, timeouts, hostile peers."""

from __future__ import annotations

import asyncio
import random

import pytest

from hyperlobby.errors import HandshakeError, HyperlobbyError, ProtocolError
from hyperlobby.wire.noise import NoiseKeyPair
from hyperlobby.wire.secret_stream import Message, SecretStream
from hyperlobby.wire.stream import SecretStreamConnection, connect, serve

HOST = "127.0.0.1"


async def echo(conn: SecretStreamConnection) -> None:
    async for msg in conn:
        await conn.send(msg)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def test_python_to_python_echo() -> None:
    server_kp, client_kp = NoiseKeyPair.generate(), NoiseKeyPair.generate()
    seen: list[bytes] = []

    async def handler(conn: SecretStreamConnection) -> None:
        seen.append(conn.remote_public_key)
        await echo(conn)

    server = await serve(HOST, 0, server_kp, handler, filter_empty=False, keepalive=None)
    async with server:
        async with asyncio.timeout(20):
            conn = await connect(HOST, port_of(server), client_kp, filter_empty=False, keepalive=None)
            assert conn.remote_public_key == server_kp.public_key
            rng = random.Random(5)
            sizes = [0, 1, 17, 1000, 65536, 1 << 20] + [rng.randrange(0, 200_000) for _ in range(40)]
            msgs = [rng.randbytes(n) for n in sizes]

            async def writer() -> None:
                for m in msgs:
                    await conn.send(m)

            task = asyncio.create_task(writer())
            for m in msgs:
                assert await conn.recv() == m
            await task
            await conn.aclose()
            assert await conn.recv() is None
    assert seen == [client_kp.public_key]


async def test_keepalive_is_sent_when_idle_and_filtered_by_default() -> None:
    got: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def handler(conn: SecretStreamConnection) -> None:
        async for msg in conn:
            await got.put(msg)
        await got.put(None)

    server = await serve(HOST, 0, None, handler, filter_empty=False)
    async with server:
        async with asyncio.timeout(10):
            conn = await connect(HOST, port_of(server), keepalive=0.1)
            assert await got.get() == b""  # keepalives arrive as empty messages
            assert await got.get() == b""
            await conn.send(b"real")
            assert await got.get() == b"real"
            await conn.aclose()
            assert await got.get() is None


async def test_handshake_timeout_on_stalled_peer() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1 << 16)
            await asyncio.sleep(5)
        finally:
            writer.close()

    server = await asyncio.start_server(silent, HOST, 0)
    async with server:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(HandshakeError, match="timed out"):
            await connect(HOST, port_of(server), handshake_timeout=0.3)
        assert loop.time() - t0 < 2


async def test_server_survives_hostile_clients() -> None:
    errors: list[HyperlobbyError] = []
    server = await serve(HOST, 0, None, echo, on_error=errors.append, handshake_timeout=0.5)
    async with server:
        async with asyncio.timeout(10):
            cases = [
                b"GET / HTTP/1.1\r\n\r\n",  # garbage
                b"\xff\xff\xff",  # 16 MiB length prefix
                b"\x20\x00\x00" + b"\x01" * 10,  # truncated handshake, then EOF
                b"",  # stalls: never sends anything
            ]
            for raw in cases:
                reader, writer = await asyncio.open_connection(HOST, port_of(server))
                writer.write(raw)
                if raw:
                    writer.write_eof()
                data = await reader.read()  # the server closes on us
                assert data == b""
                writer.close()
            # and it still serves a well-behaved client
            conn = await connect(HOST, port_of(server))
            await conn.send(b"ok")
            assert await conn.recv() == b"ok"
            await conn.aclose()
    assert len(errors) == 4
    assert all(isinstance(e, HyperlobbyError) for e in errors)
    assert isinstance(errors[-1], HandshakeError) and "timed out" in str(errors[-1])


async def raw_handshake(port: int) -> tuple[SecretStream, asyncio.StreamReader, asyncio.StreamWriter]:
    """A hand-driven sans-IO client, so a test can put arbitrary bytes on an open stream."""
    reader, writer = await asyncio.open_connection(HOST, port)
    core = SecretStream(True, NoiseKeyPair.generate())
    writer.write(core.initiate())
    while not core.can_send:
        core.receive_data(await reader.read(4096))
    writer.write(core.data_to_send())
    return core, reader, writer


async def test_bad_mac_after_handshake_tears_down_recv() -> None:
    result: asyncio.Future[HyperlobbyError | None] = asyncio.get_running_loop().create_future()

    async def handler(conn: SecretStreamConnection) -> None:
        try:
            while await conn.recv() is not None:
                pass
            result.set_result(None)
        except HyperlobbyError as err:
            result.set_result(err)

    server = await serve(HOST, 0, None, handler)
    async with server:
        async with asyncio.timeout(10):
            core, reader, writer = await raw_handshake(port_of(server))
            frame = bytearray(core.send(b"tampered"))
            frame[10] ^= 0xFF
            writer.write(bytes(frame))
            err = await result
            assert isinstance(err, ProtocolError) and "authentication" in str(err)
            assert await reader.read() == b""  # the server hung up (our data after its header)
            writer.close()
            await asyncio.sleep(0.05)  # let the server's handler finish closing its socket


async def test_truncated_frame_at_eof_is_an_error() -> None:
    result: asyncio.Future[HyperlobbyError | None] = asyncio.get_running_loop().create_future()

    async def handler(conn: SecretStreamConnection) -> None:
        try:
            msgs = [m async for m in conn]
            result.set_result(None if msgs == [b"whole"] else ProtocolError("unexpected"))
        except HyperlobbyError as err:
            result.set_result(err)

    server = await serve(HOST, 0, None, handler)
    async with server:
        async with asyncio.timeout(10):
            core, _reader, writer = await raw_handshake(port_of(server))
            writer.write(core.send(b"whole") + core.send(b"cut short")[:9])
            writer.write_eof()
            err = await result
            assert err is not None and "inside a frame" in str(err)
            writer.close()


async def test_idle_timeout() -> None:
    async def handler(conn: SecretStreamConnection) -> None:
        await asyncio.sleep(3)

    server = await serve(HOST, 0, None, handler, keepalive=None)
    async with server:
        async with asyncio.timeout(5):
            conn = await connect(HOST, port_of(server), timeout=0.3, keepalive=None)
            with pytest.raises(ProtocolError, match="timed out"):
                await conn.recv()
            with pytest.raises(ProtocolError):
                await conn.send(b"late")
            conn.close()


async def test_clean_eof_and_close_wake_receivers() -> None:
    async def handler(conn: SecretStreamConnection) -> None:
        await conn.send(b"bye")

    server = await serve(HOST, 0, None, handler)
    async with server:
        async with asyncio.timeout(5):
            conn = await connect(HOST, port_of(server))
            assert await conn.recv() == b"bye"
            assert await conn.recv() is None
            assert await conn.recv() is None
            assert conn.error is None
            await conn.aclose()


async def test_events_in_the_handshake_chunk_are_kept() -> None:
    """Data that arrives glued to the last handshake message must not be lost."""

    async def server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        core = SecretStream(False, NoiseKeyPair.generate())
        while not core.can_send:
            core.receive_data(await reader.read(4096))
            out = core.data_to_send()
            if core.can_send:
                writer.write(out + core.send(b"first") + core.send(b"second"))
            else:
                writer.write(out)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(server_side, HOST, 0)
    async with server:
        async with asyncio.timeout(5):
            conn = await connect(HOST, port_of(server))
            assert [await conn.recv(), await conn.recv()] == [b"first", b"second"]
            await conn.aclose()


def test_message_event_is_frozen() -> None:
    m = Message(b"x")
    with pytest.raises(AttributeError):
        m.data = b"y"  # type: ignore[misc]
