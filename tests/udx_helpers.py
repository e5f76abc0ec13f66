"""Helpers for the UDX tests: a secret-stream driven over a UdxStream, and the JS peer process."""

from __future__ import annotations

import asyncio
import contextlib
import json
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
    async def start(cls, sock: UdxSocket, *args: str, max_payload: int = 1152) -> JsUdxPeer:
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
            stream.connect(info["id"], "127.0.0.1", info["port"])
            assert proc.stdin is not None
            proc.stdin.write((json.dumps({"remoteId": stream.id, "port": sock.address[1]}) + "\n").encode())
            await proc.stdin.drain()
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
