"""HyperDHT connect latency: handshake through the DHT, path, encrypted stream, one round trip.

One JS @hyperswarm/testnet (3 persistent hyperdht nodes on 127.0.0.1, interop/peers/
hyperdht_connect_peer.js) carries everything; Python nodes join it. Each round is one
``connect`` to an echo server plus one message there and back, timed from the connect call to
the echo (JS times its side inside node, excluding the creation of its fresh client node). Four
pairings: JS->JS (the reference), Python->Python, Python->JS, JS->Python. Servers and clients
are firewalled (ephemeral) nodes, so the same-host shortcut raced against the holepunch is the
path taken, as for two hyperswarm peers on one machine. Medians; ratio = pairing / JS->JS.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from typing import Any

from bench.common import INTEROP
from hyperlobby.crypto.keys import key_pair
from hyperlobby.swarm.hyperdht.connect import connect
from hyperlobby.swarm.hyperdht.connection import DhtConnection
from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperdht.server import create_server, servers_of

FULL = {"rounds": 20}
QUICK = {"rounds": 2}


class _Js:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, timeout: float = 60, **msg: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.line(timeout)

    async def line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError("the JS hyperdht connect peer exited")
        out: dict[str, Any] = json.loads(raw)
        if out.get("event") == "error":
            raise RuntimeError(str(out))
        return out


async def _echo(conn: DhtConnection) -> None:
    while (msg := await conn.recv()) is not None:
        conn.send(b"echo:" + msg)


async def _py_round(client: HyperDht, public_key: bytes) -> float:
    t0 = time.perf_counter()
    conn = await connect(client, public_key, timeout=20)
    conn.send(b"hello")
    reply = await asyncio.wait_for(conn.recv(), 20)
    ms = (time.perf_counter() - t0) * 1000
    if reply != b"echo:hello":
        raise RuntimeError(f"bad echo {reply!r}")
    conn.close()
    return ms


async def run(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as storage:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(INTEROP / "peers" / "hyperdht_connect_peer.js"),
            storage,
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        js = _Js(proc)
        nodes: list[HyperDht] = []
        ms: dict[str, list[float]] = {"JS->JS": [], "Python->Python": [], "Python->JS": [], "JS->Python": []}
        try:
            info = await js.line(60)
            bootstrap = [f"{b['host']}:{b['port']}" for b in info["bootstrap"]]
            server_dht = await HyperDht.create(bootstrap=bootstrap)
            client_dht = await HyperDht.create(bootstrap=bootstrap)
            nodes += [server_dht, client_dht]
            py_server = create_server(server_dht, on_connection=_echo)
            await py_server.listen(key_pair())
            assert py_server.public_key is not None
            js_server = await js.call(cmd="listen", mode="echo")
            js_key = bytes.fromhex(js_server["publicKey"])
            for _ in range(rounds):
                res = await js.call(cmd="connect", publicKey=js_server["publicKey"])
                if not res["ok"]:
                    raise RuntimeError(f"JS->JS connect failed: {res}")
                ms["JS->JS"].append(float(res["ms"]))
                ms["Python->Python"].append(await _py_round(client_dht, py_server.public_key))
                ms["Python->JS"].append(await _py_round(client_dht, js_key))
                res = await js.call(cmd="connect", publicKey=py_server.public_key.hex())
                if not res["ok"]:
                    raise RuntimeError(f"JS->Python connect failed: {res}")
                ms["JS->Python"].append(float(res["ms"]))
        finally:
            for dht in nodes:
                for server in servers_of(dht):
                    await server.close()
            for dht in reversed(nodes):
                await dht.close()
            if proc.returncode is None:
                try:
                    await js.call(cmd="quit", timeout=20)
                except Exception:
                    proc.kill()
                await asyncio.wait_for(proc.wait(), 15)
    ref = statistics.median(ms["JS->JS"])
    print(f"rounds {rounds}: connect through a 3-node JS testnet + one echo round trip, firewalled peers")
    for name, values in ms.items():
        med = statistics.median(values)
        print(f"{name:<15} {med:7.1f} ms median   ratio to JS->JS {med / max(ref, 1e-3):5.2f}")


def main(quick: bool = False) -> None:
    cfg = QUICK if quick else FULL
    asyncio.run(run(cfg["rounds"]))


if __name__ == "__main__":
    main()
