"""Python Swarm against npm hyperswarm 4.17.2 (interop/peers/hyperswarm_peer.js), all on 127.0.0.1.

What it proves: a JS swarm and a Python swarm that join one topic find each other through the
DHT (JS's testnet nodes, or Python's nodes with JS bootstrapping through them), connect, and
replicate a hypercore over that connection in both directions (JS writer -> Python reader and
Python writer -> JS reader); when both dial each other at the same moment, with either key the
larger, both ends settle on the same single connection (hyperswarm's duplicate rule and ours
agree; which dial survives depends on timing, as between two JS swarms: the rule itself is
pinned down by tests/test_swarm_rules.py and tests/test_swarm.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conftest import INTEROP, node_binary
from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import key_pair
from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperswarm import Swarm
from hyperlobby.wire.replication import Replication
from swarm_helpers import eventually

pytestmark = pytest.mark.interop

TOPIC = b"\x33" * 32
BLOCKS = [f"block {i} ".encode() * 3 for i in range(100)]


class JsSwarms:
    """The JS peer process, one JSON line per command (every wait bounded)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.bootstrap: list[str] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def run(cls, storage: Path, bootstrap: list[str] | None = None) -> AsyncIterator[JsSwarms]:
        args = [str(storage)] + ([",".join(bootstrap)] if bootstrap else [])
        proc = await asyncio.create_subprocess_exec(
            node_binary(),
            str(INTEROP / "peers" / "hyperswarm_peer.js"),
            *args,
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        js = cls(proc)
        try:
            ready = await js._line(60)
            assert ready.get("ready"), ready
            js.bootstrap = ready["bootstrap"]
            assert all(b.startswith("127.") for b in js.bootstrap)
            yield js
        finally:
            with contextlib.suppress(Exception):
                await js.call({"cmd": "quit"}, 30)
            if proc.returncode is None:
                proc.kill()
            await asyncio.wait_for(proc.wait(), 10)

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            err = b"" if self.proc.stderr is None else await asyncio.wait_for(self.proc.stderr.read(), 5)
            pytest.fail(f"JS hyperswarm peer exited: {err.decode(errors='replace')}")
        result: dict[str, Any] = json.loads(raw)
        if result.get("event") == "error":
            pytest.fail(f"JS hyperswarm peer: {result['message']}")
        return result

    async def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()

    async def reply(self, timeout: float = 60) -> dict[str, Any]:
        return await self._line(timeout)

    async def call(self, msg: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        await self.send(msg)
        return await self._line(timeout)


class PySwarm:
    """A Python swarm with a store whose cores replicate over every connection it gets."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self.store = Store(":memory:")
        self.rep = Replication(self.store, key_pair=swarm.key_pair)
        swarm.on_connection = lambda conn, info: self._adopt(conn)

    def _adopt(self, conn: Any) -> None:
        self.rep.adopt(conn)

    @classmethod
    async def create(cls, bootstrap: list[str]) -> PySwarm:
        return cls(Swarm(await HyperDht.create(bootstrap=bootstrap), owns_dht=True))

    async def close(self) -> None:
        await self.rep.close()
        await asyncio.wait_for(self.swarm.close(), 20)
        self.store.close()


def _digests(blocks: list[bytes]) -> list[str]:
    return [hashlib.sha256(b).hexdigest() for b in blocks]


async def test_js_writer_python_reader_over_a_js_dht(tmp_path: Path) -> None:
    async with JsSwarms.run(tmp_path / "js") as js:
        w = await js.call({"cmd": "swarm", "blocks": [b.hex() for b in BLOCKS]})
        await js.call({"cmd": "join", "id": w["id"], "topic": TOPIC.hex(), "server": True, "client": False})
        py = await PySwarm.create(js.bootstrap)
        try:
            copy = py.store.get(key=bytes.fromhex(w["coreKey"]))
            py.rep.add(copy)
            py.swarm.join(TOPIC, server=False, client=True)
            assert await asyncio.wait_for(py.swarm.flush(), 30)
            await eventually(lambda: len(py.swarm.connections) == 1, "Python dialled JS", 30)
            (conn,) = py.swarm.connections
            assert conn.remote_public_key.hex() == w["publicKey"] and conn.is_initiator
            assert await py.rep.update(copy, timeout=30) == len(BLOCKS)
            py.rep.download(copy)
            await py.rep.wait_downloaded(copy, len(BLOCKS), timeout=30)
            assert _digests([copy.get(i) for i in range(len(BLOCKS))]) == _digests(BLOCKS)
            seen = await js.call({"cmd": "peers", "id": w["id"]})
            (jc,) = seen["connections"]
            assert jc["remotePublicKey"] == py.swarm.key_pair.public_key.hex() and not jc["initiator"]
            assert jc["handshakeHash"] == conn.handshake_hash.hex()
        finally:
            await py.close()


async def test_python_writer_js_reader_over_a_python_dht(tmp_path: Path) -> None:
    boot = await HyperDht.bootstrapper("127.0.0.1", 0)
    nodes = [
        await HyperDht.create(bootstrap=[f"127.0.0.1:{boot.address.port}"], ephemeral=False) for _ in range(3)
    ]
    bootstrap = [f"127.0.0.1:{boot.address.port}"]
    py = await PySwarm.create(bootstrap)
    try:
        core = py.store.get(name="log")
        core.append(BLOCKS)
        py.rep.add(core)
        py.swarm.join(TOPIC, server=True, client=False)
        assert await asyncio.wait_for(py.swarm.flush(), 30)
        async with JsSwarms.run(tmp_path / "js", bootstrap) as js:  # JS bootstraps through Python only
            r = await js.call({"cmd": "swarm", "coreKey": core.key.hex()})
            await js.call(
                {"cmd": "join", "id": r["id"], "topic": TOPIC.hex(), "server": False, "client": True}
            )
            got = await js.call({"cmd": "waitLength", "id": r["id"], "length": len(BLOCKS)})
            assert got["digests"] == _digests(BLOCKS)
            (conn,) = py.swarm.connections
            assert conn.remote_public_key.hex() == r["publicKey"] and not conn.is_initiator
            assert py.swarm.peers[conn.remote_public_key].server
    finally:
        await py.close()
        for n in nodes:
            await n.close()
        await boot.close()


async def _converged(js: JsSwarms, jid: int, py: PySwarm) -> tuple[Any, dict[str, Any]]:
    """Wait (bounded) until both sides hold exactly one connection, the same one, for 0.5 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    stable = 0
    while loop.time() < deadline:
        seen = await js.call({"cmd": "peers", "id": jid})
        mine = list(py.swarm.connections)
        same = (
            len(mine) == 1
            and len(seen["connections"]) == 1
            and seen["connections"][0]["handshakeHash"] == mine[0].handshake_hash.hex()
            and seen["connections"][0]["initiator"] != mine[0].is_initiator
        )
        stable = stable + 1 if same else 0
        if stable >= 5:
            return mine[0], seen
        await asyncio.sleep(0.1)
    pytest.fail(f"the two swarms did not settle on one shared connection: {mine} vs {seen}")


async def _simultaneous_round(js: JsSwarms, python_larger: bool) -> None:
    j = await js.call({"cmd": "swarm"})
    js_key = bytes.fromhex(j["publicKey"])
    for _ in range(64):  # a Python key on the wanted side of the JS one (each try: 1 in 2)
        kp = key_pair()
        if (kp.public_key > js_key) == python_larger:
            break
    py = PySwarm(Swarm(await HyperDht.create(bootstrap=js.bootstrap), keypair=kp, owns_dht=True))
    try:
        await py.swarm.listen()
        # the JS swarm listens as soon as it joins a topic as a server
        await js.call({"cmd": "join", "id": j["id"], "topic": TOPIC.hex(), "server": True, "client": False})
        # both dial in the same instant: the JS command is sent, then Python dials at once
        await js.send({"cmd": "joinPeer", "id": j["id"], "publicKey": kp.public_key.hex()})
        py.swarm.join_peer(js_key)
        assert (await js.reply(30))["ok"]
        conn, seen = await _converged(js, j["id"], py)
        # both really dialled (so each side saw a duplicate, or one was dropped before it
        # arrived) and yet they settled on the same connection
        assert py.swarm.stats.client_attempted >= 1
        assert seen["stats"]["connects"]["client"]["attempted"] >= 1
        assert conn.remote_public_key == js_key
    finally:
        await py.close()
        await js.call({"cmd": "destroy", "id": j["id"]})


async def test_simultaneous_dials_keep_the_same_connection_on_both_sides(tmp_path: Path) -> None:
    async with JsSwarms.run(tmp_path / "js") as js:
        for python_larger in (True, False, True, False):  # both key orders, twice
            await _simultaneous_round(js, python_larger)
