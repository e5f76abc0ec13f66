"""A ``make demo`` stage for peer discovery: a private HyperDHT on loopback, two Python swarms
that meet by topic alone, and npm hyperswarm joining the same topic through the Python DHT.

:func:`swarm_demo` prints each step through ``say(who, what)`` (the demo's timeline). Alice
announces her log under its discovery key; Bob, knowing only the key, looks the topic up,
dials her through the DHT (Noise handshake relayed by a DHT node, then a direct UDX stream)
and replicates the log; a JS hyperswarm peer (interop/peers/hyperswarm_peer.js) bootstraps
from the Python nodes, finds Alice the same way and reads the log, byte for byte. Everything
binds and sends on 127.0.0.1 only; without node or interop/node_modules the JS step is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperlobby.core.store import Store
from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperswarm.swarm import Swarm
from hyperlobby.wire.replication import Replication

INTEROP = Path(__file__).resolve().parents[4] / "interop"

Say = Callable[[str, str], None]


async def swarm_demo(home: Path, say: Say) -> None:
    home.mkdir(parents=True, exist_ok=True)
    boot = await HyperDht.bootstrapper("127.0.0.1", 0)
    bootstrap = [f"127.0.0.1:{boot.address.port}"]
    nodes = [await HyperDht.create(bootstrap=bootstrap, ephemeral=False) for _ in range(2)]
    say(
        "dht", f"a private HyperDHT: bootstrap node {bootstrap[0]} and {len(nodes)} more nodes, loopback only"
    )
    alice_store, bob_store = Store(home / "alice.db"), Store(home / "bob.db")
    alice = Swarm(await HyperDht.create(bootstrap=bootstrap), owns_dht=True)
    bob = Swarm(await HyperDht.create(bootstrap=bootstrap), owns_dht=True)
    alice_rep = Replication(alice_store, key_pair=alice.key_pair)
    bob_rep = Replication(bob_store, key_pair=bob.key_pair)
    connected: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def bob_connected(conn: Any, info: Any) -> None:
        bob_rep.adopt(conn)
        if not connected.done():
            connected.set_result(time.perf_counter())

    alice.on_connection = lambda conn, info: _adopt(alice_rep, conn)
    bob.on_connection = bob_connected
    try:
        log = alice_store.get(name="news")
        log.append([b"found through the DHT", b"no address was exchanged", b"only the log's key"])
        alice_rep.add(log)
        topic = log.discovery_key
        alice.join(topic, server=True, client=False)
        await asyncio.wait_for(alice.flush(), 20)
        say("alice", f"announced under her log's discovery key {topic.hex()[:16]}… (the topic)")

        copy = bob_store.get(key=log.key)
        bob_rep.add(copy)
        t0 = time.perf_counter()
        bob.join(topic, server=False, client=True)
        at = await asyncio.wait_for(connected, 20)
        say(
            "bob",
            f"looked the topic up, dialled Alice through the DHT: connected in {(at - t0) * 1000:.1f} ms",
        )
        length = await bob_rep.update(copy, timeout=20)
        for i in range(length):
            say("bob", f"  #{i}: {(await bob_rep.get(copy, i, timeout=20)).decode()}")

        if shutil.which("node") is None or not (INTEROP / "node_modules" / "hyperswarm").is_dir():
            say("demo", "node or interop/node_modules missing: skipping the JavaScript swarm (run make demo)")
            return
        digests = await _js_reads(home / "js", bootstrap, topic, log.key, length)
        want = [hashlib.sha256(log.get(i)).hexdigest() for i in range(length)]
        verdict = "identical" if digests == want else "DIFFERENT"
        say(
            "js", f"npm hyperswarm, bootstrapped from the Python DHT, found Alice and read her log: {verdict}"
        )
    finally:
        await alice_rep.close()
        await bob_rep.close()
        await asyncio.gather(alice.close(), bob.close())
        for n in nodes:
            await n.close()
        await boot.close()
        alice_store.close()
        bob_store.close()


def _adopt(rep: Replication, conn: Any) -> None:
    rep.adopt(conn)


async def _js_reads(storage: Path, bootstrap: list[str], topic: bytes, key: bytes, length: int) -> list[str]:
    """Run the JS hyperswarm peer: join ``topic`` as a client and read ``length`` blocks of ``key``."""
    storage.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(INTEROP / "peers" / "hyperswarm_peer.js"),
        str(storage),
        ",".join(bootstrap),
        cwd=INTEROP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def call(msg: dict[str, Any] | None) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        if msg is not None:
            proc.stdin.write((json.dumps(msg) + "\n").encode())
            await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the JS hyperswarm peer exited")
        out: dict[str, Any] = json.loads(line)
        if out.get("event") == "error":
            raise RuntimeError(out["message"])
        return out

    try:
        await call(None)  # ready
        reader = await call({"cmd": "swarm", "coreKey": key.hex()})
        await call({"cmd": "join", "id": reader["id"], "topic": topic.hex(), "server": False, "client": True})
        got = await call({"cmd": "waitLength", "id": reader["id"], "length": length})
        await call({"cmd": "quit"})
        digests: list[str] = got["digests"]
        return digests
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 15)


__all__ = ["swarm_demo"]
