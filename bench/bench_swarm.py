"""The swarm: join -> first connection, then a 100-block core over that connection.

Both sides run on a private DHT on 127.0.0.1 (Python: a Python bootstrapper and three Python
nodes; JS: @hyperswarm/testnet's three nodes, in interop/peers/hyperswarm_peer.js), with a fresh
pair of swarms and a fresh topic each round:

* **join -> first connection**: a writer swarm has joined the topic as a server (announced);
  we time from the reader's ``join(topic)`` (client) to its first connection: a lookup, the
  dial (FIND_PEER, the Noise handshake relayed through the DHT, holepunch on loopback), open.
* **replicate 100 blocks**: from that connection to the reader holding all 100 blocks
  (1 KiB each), verified, over the new connection.

Both sides store their cores on disk (Python: SQLite; JS: hypercore 11's RocksDB storage).
Python <-> Python and JS <-> JS are measured in the same run; ratios are Python / JS (lower is
better for Python).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import INTEROP
from hyperlobby.core.store import Store
from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperswarm import Swarm
from hyperlobby.wire.replication import Replication

FULL = {"rounds": 15, "blocks": 100}
QUICK = {"rounds": 2, "blocks": 100}
BLOCK = 1024


async def python_rounds(rounds: int, blocks: int, tmp: Path) -> tuple[list[float], list[float]]:
    boot = await HyperDht.bootstrapper("127.0.0.1", 0)
    bootstrap = [f"127.0.0.1:{boot.address.port}"]
    nodes = [await HyperDht.create(bootstrap=bootstrap, ephemeral=False) for _ in range(3)]
    joins: list[float] = []
    reps: list[float] = []
    try:
        for r in range(rounds):
            j, rep = await _python_round(bootstrap, os.urandom(32), blocks, tmp / f"round{r}")
            joins.append(j)
            reps.append(rep)
    finally:
        for n in nodes:
            await n.close()
        await boot.close()
    return joins, reps


async def _python_round(bootstrap: list[str], topic: bytes, blocks: int, home: Path) -> tuple[float, float]:
    home.mkdir(parents=True)
    ws, rs = Store(home / "writer.db"), Store(home / "reader.db")  # on disk, as JS's cores are
    writer = Swarm(await HyperDht.create(bootstrap=bootstrap), owns_dht=True)
    reader = Swarm(await HyperDht.create(bootstrap=bootstrap), owns_dht=True)
    wrep = Replication(ws, key_pair=writer.key_pair)
    rrep = Replication(rs, key_pair=reader.key_pair)
    connected: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_reader(conn: Any, info: Any) -> None:
        rrep.adopt(conn)
        if not connected.done():
            connected.set_result(time.perf_counter())

    writer.on_connection = lambda conn, info: _adopt(wrep, conn)
    reader.on_connection = on_reader
    try:
        core = ws.get(name="bench")
        core.append([bytes([i % 256]) * BLOCK for i in range(blocks)])
        wrep.add(core)
        copy = rs.get(key=core.key)
        rrep.add(copy)
        rrep.download(copy)
        writer.join(topic, server=True, client=False)
        await asyncio.wait_for(writer.flush(), 30)
        t0 = time.perf_counter()
        reader.join(topic, server=False, client=True)
        t_conn = await asyncio.wait_for(connected, 30)
        await rrep.wait_downloaded(copy, blocks, timeout=60)
        t_done = time.perf_counter()
        assert copy.get(blocks - 1) == bytes([(blocks - 1) % 256]) * BLOCK
        return t_conn - t0, t_done - t_conn
    finally:
        await wrep.close()
        await rrep.close()
        await asyncio.gather(writer.close(), reader.close())
        ws.close()
        rs.close()


def _adopt(rep: Replication, conn: Any) -> None:
    rep.adopt(conn)


class _Js:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, msg: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.line(timeout)

    async def line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError("the JS hyperswarm peer exited")
        out: dict[str, Any] = json.loads(raw)
        if out.get("event") == "error":
            raise RuntimeError(out["message"])
        return out


async def js_rounds(rounds: int, blocks: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="hl-bench-swarm-") as tmp:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(INTEROP / "peers" / "hyperswarm_peer.js"),
            str(Path(tmp)),
            cwd=INTEROP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        js = _Js(proc)
        joins: list[float] = []
        reps: list[float] = []
        try:
            assert (await js.line(60))["ready"]
            payload = [(bytes([i % 256]) * BLOCK).hex() for i in range(blocks)]
            for _ in range(rounds):
                topic = os.urandom(32).hex()
                w = await js.call({"cmd": "swarm", "blocks": payload})
                r = await js.call({"cmd": "swarm", "coreKey": w["coreKey"]})
                await js.call({"cmd": "join", "id": w["id"], "topic": topic, "server": True, "client": False})
                await js.call({"cmd": "join", "id": r["id"], "topic": topic, "server": False, "client": True})
                conn = await js.call({"cmd": "waitConnection", "id": r["id"]})
                got = await js.call({"cmd": "waitLength", "id": r["id"], "length": blocks})
                joins.append(conn["ms"] / 1000)
                reps.append(got["sinceConnection"] / 1000)
                await js.call({"cmd": "destroy", "id": r["id"]})
                await js.call({"cmd": "destroy", "id": w["id"]})
        finally:
            if proc.returncode is None:
                try:
                    await js.call({"cmd": "quit"}, 30)
                except Exception:
                    proc.kill()
                await asyncio.wait_for(proc.wait(), 15)
    return joins, reps


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def run(rounds: int, blocks: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hl-bench-swarm-") as tmp:
        py_join, py_rep = await python_rounds(rounds, blocks, Path(tmp))
    js_join, js_rep = await js_rounds(rounds, blocks)
    print(f"rounds                          {rounds} (fresh swarms and topic each), {blocks} x {BLOCK} B")
    print(
        f"join -> first connection        Python {_ms(py_join):7.1f} ms   JS {_ms(js_join):7.1f} ms   "
        f"ratio {_ms(py_join) / max(_ms(js_join), 1e-3):5.2f}  (median)"
    )
    print(
        f"replicate {blocks} blocks           Python {_ms(py_rep):7.1f} ms   JS {_ms(js_rep):7.1f} ms   "
        f"ratio {_ms(py_rep) / max(_ms(js_rep), 1e-3):5.2f}  (median, from the connection)"
    )


def main(quick: bool = False) -> None:
    cfg = QUICK if quick else FULL
    asyncio.run(run(cfg["rounds"], cfg["blocks"]))


if __name__ == "__main__":
    main()
