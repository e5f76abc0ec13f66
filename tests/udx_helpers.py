"""Helpers for the UDX tests: a secret-stream driven over a UdxStream, and the JS peer process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

import pytest

from conftest import INTEROP, node_binary
from hyperlobby.errors import HyperlobbyError
from hyperlobby.swarm.udx import UdxSocket, UdxStream
from hyperlobby.wire.noise import KeyPairLike
from hyperlobby.wire.secret_stream import Closed, HandshakeComplete, Message, SecretStream


class SecretOverUdx:
    """Our sans-IO SecretStream with a UdxStream as its raw transport (push-mode callbacks)."""

    def __init__(self, stream: UdxStream, is_initiator: bool, key_pair: KeyPairLike) -> None:
        self.stream = stream
        self.secret = SecretStream(is_initiator, key_pair)
        self.messages: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.handshake: asyncio.Future[HandshakeComplete] = asyncio.get_running_loop().create_future()
        self.error: HyperlobbyError | None = None
        stream.on_data = self._on_data
        stream.on_end = self._on_end
        stream.on_close = lambda err: self._finish(err)
        first = self.secret.initiate()
        if first:
            stream.write(first)

    def _on_data(self, data: bytes) -> None:
        events = self.secret.receive_data(data)
        out = self.secret.data_to_send()
        if out:
            self.stream.write(out)
        for event in events:
            if isinstance(event, HandshakeComplete) and not self.handshake.done():
                self.handshake.set_result(event)
            elif isinstance(event, Message):
                self.messages.put_nowait(event.data)
            elif isinstance(event, Closed):
                self._finish(event.error)

    def _on_end(self) -> None:
        for event in self.secret.receive_eof():
            if isinstance(event, Closed):
                self._finish(event.error)

    def _finish(self, error: HyperlobbyError | None) -> None:
        if error is not None and self.error is None:
            self.error = error
        if not self.handshake.done():
            self.handshake.set_exception(error or HyperlobbyError("closed before the handshake"))
        self.messages.put_nowait(None)

    def send(self, message: bytes) -> None:
        self.stream.write(self.secret.send(message))


class JsUdxPeer:
    """``interop/peers/udx_peer.js`` as a subprocess, connected to a fresh stream on ``sock``."""

    def __init__(self, proc: asyncio.subprocess.Process, stream: UdxStream) -> None:
        self.proc = proc
        self.stream = stream

    @classmethod
    async def start(
        cls, sock: UdxSocket, *args: str, max_payload: int = 1152, proxy: LossyProxy | None = None
    ) -> JsUdxPeer:
        """Spawn the peer and connect both ends, directly or through ``proxy``."""
        proc = await asyncio.create_subprocess_exec(
            node_binary(),
            str(INTEROP / "peers" / "udx_peer.js"),
            *args,
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            info = await cls._json(proc)
            stream = sock.create_stream(max_payload=max_payload)
            js_port, our_port = info["port"], sock.address[1]
            if proxy is not None:
                await proxy.start(("127.0.0.1", js_port), ("127.0.0.1", our_port))
                js_port, our_port = proxy.port_for_b, proxy.port_for_a
            stream.connect(info["id"], "127.0.0.1", js_port)
            assert proc.stdin is not None
            proc.stdin.write((json.dumps({"remoteId": stream.id, "port": our_port}) + "\n").encode())
            await proc.stdin.drain()
            # Sending before the peer has connected its stream loses the first packets to a
            # retransmission timeout (and halves the congestion window for the whole test).
            ready = await cls._json(proc)
            assert ready == {"event": "connected"}, ready
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return cls(proc, stream)

    @staticmethod
    async def _json(proc: asyncio.subprocess.Process, timeout: float = 20.0) -> Any:
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            err = await asyncio.wait_for(proc.stderr.read(), 5)
            pytest.fail(f"udx_peer.js exited: {err.decode(errors='replace')}")
        return json.loads(line)

    async def next_json(self, timeout: float = 20.0) -> Any:
        return await self._json(self.proc, timeout)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), 10)


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data)


class LossyProxy:
    """A UDP relay between two endpoints A and B that drops, duplicates and delays packets
    (seeded).

    A talks to ``port_for_a`` and sees its packets come out at B from ``port_for_b``, and the
    reverse. Delays are per packet, so packets also overtake each other; a duplicate gets a
    delay of its own. Losses stop after ``max_losses`` so every run can finish.
    """

    def __init__(
        self,
        seed: int,
        loss: float = 0.03,
        max_delay: float = 0.004,
        max_losses: int = 300,
        duplicate: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.loss = loss
        self.max_delay = max_delay
        self.max_losses = max_losses
        self.duplicate = duplicate
        self.dropped = 0
        self.duplicated = 0
        self.forwarded = 0
        self._transports: list[asyncio.DatagramTransport] = []
        self.port_for_a = 0
        self.port_for_b = 0

    async def start(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        # facing_a receives from A and forwards to B through facing_b, and vice versa
        facing_a, _ = await loop.create_datagram_endpoint(
            lambda: _Side(lambda d: self._forward(d, facing_b, b)), local_addr=("127.0.0.1", 0)
        )
        facing_b, _ = await loop.create_datagram_endpoint(
            lambda: _Side(lambda d: self._forward(d, facing_a, a)), local_addr=("127.0.0.1", 0)
        )
        self._transports = [facing_a, facing_b]
        self.port_for_a = facing_a.get_extra_info("sockname")[1]
        self.port_for_b = facing_b.get_extra_info("sockname")[1]

    def _forward(self, data: bytes, out: asyncio.DatagramTransport, to: tuple[str, int]) -> None:
        if self.dropped < self.max_losses and self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.forwarded += 1
        loop = asyncio.get_running_loop()
        loop.call_later(self.rng.random() * self.max_delay, self._send, out, data, to)
        if self.rng.random() < self.duplicate:
            self.duplicated += 1
            loop.call_later(self.rng.random() * self.max_delay, self._send, out, data, to)

    @staticmethod
    def _send(out: asyncio.DatagramTransport, data: bytes, to: tuple[str, int]) -> None:
        if not out.is_closing():
            out.sendto(data, to)

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
