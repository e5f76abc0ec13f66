"""JS hyperdrive reads a Python host's session.json and its drive lobby: they are real archives."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import INTEROP, node_binary
from hyperlobby.lobby import HOST_FILE, DriveHostLobby, HostSession, Member, admitted_path, join
from hyperlobby.lobby.protocol import Binding, HostRecord
from hyperlobby.rtc import IceConfig, RtcHost
from hyperlobby.social.discovery import Address
from hyperlobby.social.identity import Identity
from hyperlobby.social.node import Node, NodeOptions
from lobby_helpers import close_user, guest_side, leave, make_user, rtc_guest, until
from social_helpers import WAIT, make_identity

pytestmark = pytest.mark.interop


class Reader:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), WAIT + 5)
        if not raw:
            err = b"" if self.proc.stderr is None else await self.proc.stderr.read()
            pytest.fail(f"the JS reader exited: {err.decode(errors='replace')}")
        event: dict[str, Any] = json.loads(raw)
        if event.get("event") == "error":
            pytest.fail(f"JS reader error: {event['message']}")
        return event

    async def ls(self, key: bytes) -> dict[str, bytes]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": "ls", "key": key.hex()}).encode() + b"\n")
        await self.proc.stdin.drain()
        files = (await self.line())["files"]
        return {k: base64.b64decode(v) for k, v in files.items() if v is not None}

    async def ls_until(self, key: bytes, pred: Any, what: str) -> dict[str, bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            files = await self.ls(key)
            if pred(files):
                return files
            if loop.time() > deadline:
                pytest.fail(f"JS never saw {what}: {sorted(files)}")
            await asyncio.sleep(0.05)


async def test_js_reads_python_lobby_and_session(tmp_path: Path) -> None:
    make_identity(tmp_path / "host", "Hostess")
    ident = Identity.open(tmp_path / "host")
    opts = NodeOptions(listen=Address("127.0.0.1", 0), poll_s=0.3, control_socket=False)
    node = await Node(ident, opts).start()
    pair = ident.drive.core.key_pair
    assert pair is not None and node.listening is not None
    lobby = DriveHostLobby(ident.store, node.replication, Member(ident.key, pair), max_peers=3)
    session = HostSession(lobby, RtcHost(3, ice=IceConfig(loopback_only=True)))
    await session.start()
    node.host("Interop room", lobby.url, 3)
    guest_user = await make_user("alice")
    guest = rtc_guest(guest_user)
    proc = await asyncio.create_subprocess_exec(
        node_binary(),
        str(INTEROP / "peers" / "lobby_reader.js"),
        json.dumps({"storage": str(tmp_path / "js"), "connect": node.listening.port}),
        cwd=INTEROP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        js = Reader(proc)
        assert (await js.line())["event"] == "ready"
        files = await js.ls_until(ident.key, lambda f: "/session.json" in f, "session.json")
        assert json.loads(files["/session.json"])["url"] == lobby.url
        files = await js.ls_until(lobby.key, lambda f: HOST_FILE in f, "host.offer.bin")
        record = HostRecord.decode(files[HOST_FILE])
        assert record.lobby == lobby.key and record.host == ident.key and not record.protected

        # A guest joins; JS sees the admission record (a valid writer binding), no transient files.
        await guest_user.replication.connect("127.0.0.1", node.listening.port)
        await join(guest_side(guest_user, "drive", lobby.key), guest)
        await until(lambda: lobby.machine.members.get(guest_user.gid, None) is not None, "admitted")
        await until(lambda: lobby.drive.entry(f"/{guest_user.gid}.answer.bin") is None, "answer removed")
        path = admitted_path(guest_user.gid)
        files = await js.ls_until(lobby.key, lambda f: set(f) == {HOST_FILE, path}, "the admitted guest")
        assert Binding.decode(files[path]).valid(lobby.key)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await leave(guest)
        await session.close()
        await node.close()
        ident.close()
        await close_user(guest_user)
