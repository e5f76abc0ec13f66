"""``make demo``: the most complete end-to-end run the project can do, as a timeline.

Part 1, the product (seed: "Social peer dat archive" and "Session lobby"), loopback only, with
embedded stores in a temp dir: three users create identity archives and befriend each other;
Alice hosts a session (``session.json``), Bob and Carol find it through her archive, join
through the lobby, and talk over WebRTC data channels; Carol leaves; Alice ends the session.
Each step prints the archive files it wrote.

Part 2, under the hood: two users replicate a signed log (a Hypercore) over secret-stream, and
a real JavaScript peer (npm hypercore 11, from ``interop/``) reads Python's log and the other
way round: the same protocol, byte for byte.

Part 3, finding peers with no address: a private HyperDHT of Python nodes on loopback (the demo
starts its own bootstrap node, so nothing is sent to the public network), two Python swarms that
meet by topic alone and replicate, and npm hyperswarm finding the same topic through the Python
DHT.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hyperlobby.core.store import Store
from hyperlobby.encoding.urls import HyperUrl
from hyperlobby.lobby.demo import lobby_demo
from hyperlobby.swarm.hyperswarm.demo import swarm_demo
from hyperlobby.wire.replication import Replication

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "interop"


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def say(self, who: str, what: str) -> None:
        ms = (time.perf_counter() - self.t0) * 1000
        print(f"{ms:8.1f} ms  {who:<6} {what}", flush=True)


async def _node(*args: str, stdin: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "node",
        *args,
        cwd=INTEROP,
        stdin=asyncio.subprocess.PIPE if stdin else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run(home: Path) -> None:
    tl = Timeline()
    print("== a session: identities, friends, hosting, joining over WebRTC ==", flush=True)
    await lobby_demo(home / "session", tl)
    print("\n== under the hood: Hypercore replication, Python and JavaScript ==", flush=True)
    await replication_demo(home / "replication", tl)
    print("\n== finding peers with no address: a HyperDHT and a swarm ==", flush=True)
    await swarm_demo(home / "swarm", tl.say)


async def replication_demo(home: Path, tl: Timeline) -> None:
    home.mkdir(parents=True, exist_ok=True)
    alice_store = Store(home / "alice.db")
    bob_store = Store(home / "bob.db")
    alice = Replication(alice_store)
    bob = Replication(bob_store)
    try:
        log = alice_store.get(name="chat")
        log.append(
            [b"hi, this is alice", b"my log is signed and append-only", b"anyone with the key can verify it"]
        )
        url = HyperUrl(log.key)
        tl.say("alice", f"created log {url} with {log.length} entries")
        tl.say("alice", f"discovery key (the only thing sent on the wire) {log.discovery_key.hex()[:16]}…")
        host, port = await alice.listen("127.0.0.1", 0)
        alice.add(log)
        tl.say("alice", f"serving on {host}:{port}")

        copy = bob_store.get(key=log.key)
        bob.add(copy)
        await bob.connect(host, port)
        tl.say("bob", "connected (Noise XX handshake, secret-stream, protomux)")
        length = await bob.update(copy, timeout=10)
        tl.say("bob", f"verified Alice's signed length: {length}")
        bob.download(copy)
        await bob.wait_downloaded(copy, length, timeout=10)
        for i in range(length):
            tl.say("bob", f"  #{i}: {copy.get(i).decode()}")

        log.append(b"this one arrives live")
        await copy.wait_for_length(length + 1, timeout=10)
        entry = await bob.get(copy, length, timeout=10)
        tl.say("bob", f"  #{length} (live): {entry.decode()}")

        if shutil.which("node") is None or not (INTEROP / "node_modules" / "hypercore").is_dir():
            tl.say(
                "demo", "node or interop/node_modules missing: skipping the JavaScript part (run make demo)"
            )
            return

        # A JS hypercore reads Alice's Python-written log.
        cfg = {
            "role": "fetch",
            "port": port,
            "cores": [{"storage": str(home / "js-reader"), "key": log.key.hex()}],
        }
        proc = await _node("peers/core_peer.js", json.dumps(cfg))
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        if proc.returncode != 0:
            raise SystemExit(f"JS reader failed: {err.decode()}")
        got = json.loads(out.splitlines()[-1])["cores"][0]
        want = [hashlib.sha256(log.get(i)).hexdigest() for i in range(log.length)]
        verdict = "identical" if got["digests"] == want else "DIFFERENT"
        tl.say("js", f"npm hypercore downloaded Alice's log: {got['length']} entries, {verdict} to Python's")

        # Bob reads a log written by JS hypercore.
        blocks = [b"written by npm hypercore 11".hex(), b"read and verified by Python".hex()]
        serve_cfg = {
            "role": "serve",
            "port": 0,
            "cores": [{"storage": str(home / "js-writer"), "blocks": blocks}],
        }
        server = await _node("peers/core_peer.js", json.dumps(serve_cfg), stdin=True)
        try:
            assert server.stdout is not None
            info = json.loads(await asyncio.wait_for(server.stdout.readline(), 30))
            js_core = bob_store.get(key=bytes.fromhex(info["cores"][0]["key"]))
            bob.add(js_core)
            await bob.connect("127.0.0.1", info["port"])
            n = await bob.update(js_core, timeout=10)
            for i in range(n):
                text = (await bob.get(js_core, i, timeout=10)).decode()
                tl.say("bob", f"  JS log #{i}: {text}")
        finally:
            if server.stdin is not None:
                server.stdin.close()
            await asyncio.wait_for(server.wait(), 10)
        tl.say("demo", "done: Python and JavaScript peers replicate the same signed logs")
    finally:
        await alice.close()
        await bob.close()
        alice_store.close()
        bob_store.close()


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="hyperlobby-demo-"))
    try:
        asyncio.run(run(home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
