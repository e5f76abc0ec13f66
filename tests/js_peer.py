"""Driving a JS peer script from ``interop/peers`` that speaks one JSON line per command.

The scripts print a ``{ready: ...}`` line once started, then answer each command line with one
line (see interop/peers/lines.js). Every wait here is bounded; a script that dies or reports an
error fails the test with its stderr or message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Self

import pytest

from conftest import INTEROP, node_binary


class JsLinePeer:
    """One running ``node interop/peers/<script>`` process."""

    name = "JS peer"

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.info: dict[str, Any] = {}

    @classmethod
    async def launch(cls, script: str, *args: str, ready_timeout: float = 60, limit: int = 1 << 16) -> Self:
        proc = await asyncio.create_subprocess_exec(
            node_binary(),
            str(INTEROP / "peers" / script),
            *args,
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=limit,
        )
        peer = cls(proc)
        peer.info = await peer._line(ready_timeout)
        if not peer.info.get("ready"):
            await peer.close()
            pytest.fail(f"{cls.name} did not start: {peer.info}")
        return peer

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            err = b""
            if self.proc.stderr is not None:
                err = await asyncio.wait_for(self.proc.stderr.read(), 5)
            pytest.fail(f"{self.name} exited: {err.decode(errors='replace')}")
        result: dict[str, Any] = json.loads(raw)
        return result

    async def call(self, timeout: float = 30, **cmd: Any) -> dict[str, Any]:
        """Send one command and return its answer; an error answer fails the test."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        reply = await self._line(timeout)
        if reply.get("event") == "error" or isinstance(reply.get("error"), str):
            pytest.fail(f"{self.name}: command {cmd} failed: {reply}")
        return reply

    async def close(self, timeout: float = 15) -> None:
        """Ask the script to quit; kill it if it does not within ``timeout`` seconds."""
        if self.proc.returncode is None:
            with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd":"quit"}\n')
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), timeout)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
