"""JS hyperdrive and the Python social layer read each other's profile.json / session.json.

* A JS Hyperdrive client replicates a Python user's archive from a running Python node and reads
  profile.json, then session.json as the Python host starts, updates and ends its session.
* A Python node follows a user whose archive JS hyperdrive wrote, and shows that profile (and a
  session JS publishes) in its directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import INTEROP, node_binary
from hyperlobby.encoding.ids import encode_id
from hyperlobby.social import Profile, Session
from hyperlobby.social.discovery import Address
from hyperlobby.social.identity import Identity
from hyperlobby.social.node import Node, NodeOptions
from hyperlobby.social.records import canonical_url
from social_helpers import WAIT, make_identity, until

pytestmark = pytest.mark.interop
FAST = {"interval_ms": 400, "grace_ms": 400, "poll_s": 0.3, "read_timeout": 3.0, "control_socket": False}
LOBBY = canonical_url(b"\x09" * 32)


class JsPeer:
    """``interop/peers/social_peer.js`` as a child process (killed on exit)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> JsPeer:
        self.proc = await asyncio.create_subprocess_exec(
            node_binary(),
            str(INTEROP / "peers" / "social_peer.js"),
            json.dumps(self.config),
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.ready = await self._line()
        return self

    async def _line(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), WAIT + 5)
        except TimeoutError:
            pytest.fail("the JS social peer did not answer in time")
        if not line:
            err = b"" if self.proc.stderr is None else await self.proc.stderr.read()
            pytest.fail(f"the JS social peer exited: {err.decode(errors='replace')}")
        event: dict[str, Any] = json.loads(line)
        if event.get("event") == "error":
            pytest.fail(f"JS social peer error: {event['message']}")
        return event

    async def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._line()

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), WAIT)


async def test_js_reads_python_profile_and_session(tmp_path: Path) -> None:
    url_x = canonical_url(b"\x05" * 32)
    make_identity(tmp_path / "py", "Pythonista", ["dat://" + (b"\x05" * 32).hex()])
    ident = Identity.open(tmp_path / "py")
    node = Node(ident, NodeOptions(listen=Address("127.0.0.1", 0), **FAST))  # type: ignore[arg-type]
    try:
        await node.start()
        assert node.listening is not None
        config = {"storage": str(tmp_path / "js"), "key": ident.key.hex(), "connect": node.listening.port}
        async with JsPeer(config) as js:
            files = await js.ask(cmd="read")
            profile = Profile.from_json(files["profile"])
            assert profile.name == "Pythonista" and profile.friends == (url_x,)
            assert json.loads(files["profile"])["friends"] == [url_x]
            assert files["session"] is None

            session = node.host("Py room", "dat://" + (b"\x09" * 32).hex(), 5, protected=True)
            files = await js.ask(cmd="wait", path="/session.json", field="name", value="Py room")
            assert Session.from_json(files["session"]) == session
            assert json.loads(files["session"]) == {
                "name": "Py room",
                "url": LOBBY,
                "last_update": session.last_update,
                "peers": 0,
                "max_peers": 5,
                "protected": True,
            }
            node.heartbeat.set_peers(4)
            await js.ask(cmd="wait", path="/session.json", field="peers", value=4)
            node.heartbeat.stop()
            files = await js.ask(cmd="wait", path="/session.json", field=None, value=None)
            assert files["session"] is None and files["profile"] is not None
    finally:
        await node.close()
        ident.close()


async def test_python_reads_profile_written_by_js(tmp_path: Path) -> None:
    friend_hex = (b"\x03" * 32).hex()
    js_profile = {
        "name": "Jay Ess",
        "created": 1509818932375,
        "friends": ["dat://" + friend_hex],
        "theme": "dark",
    }
    config = {
        "storage": str(tmp_path / "js"),
        "listen": True,
        "files": {"/profile.json": json.dumps(js_profile)},
    }
    async with JsPeer(config) as js:
        key = bytes.fromhex(js.ready["key"])
        make_identity(tmp_path / "py", "Reader", ["hyper://" + encode_id(key)])
        ident = Identity.open(tmp_path / "py")
        peers = (Address("127.0.0.1", js.ready["port"]),)
        node = Node(ident, NodeOptions(peers=peers, **FAST))  # type: ignore[arg-type]
        try:
            await node.start()

            async def friend() -> Any:
                return node.directory.friend(key)

            view = await until(friend, lambda v: v is not None and v.profile is not None, "JS profile")
            assert view.profile.name == "Jay Ess" and view.profile.created == 1509818932375
            assert view.profile.friends == (canonical_url(b"\x03" * 32),)
            assert dict(view.profile.extra) == {"theme": "dark"}
            assert view.status == "offline"  # JS's Noise key is not its drive's signing key

            # a session JS publishes shows up live; a malformed one is reported, not fatal
            now = node.clock()
            good = {
                "name": "JS room",
                "url": LOBBY,
                "last_update": now,
                "peers": 1,
                "max_peers": 3,
                "protected": False,
            }
            await js.ask(cmd="put", path="/session.json", text=json.dumps(good))
            [s] = await until(lambda: _sessions(node), lambda ss: len(ss) == 1, "JS session")
            assert s.session.name == "JS room" and s.host_name == "Jay Ess"
            await js.ask(cmd="put", path="/session.json", text=json.dumps({**good, "peers": 7}))
            await until(
                lambda: _problems(node), lambda ps: any("peers exceeds" in p for p in ps), "bad session"
            )
            assert node.sessions() == []
        finally:
            await node.close()
            ident.close()


async def _sessions(node: Node) -> list[Any]:
    return node.sessions()


async def _problems(node: Node) -> list[str]:
    return [p.message for p in node.problems]
