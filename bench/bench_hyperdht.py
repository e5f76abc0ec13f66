"""HyperDHT operations on a private DHT on 127.0.0.1: announce, lookup, mutable and immutable put/get.

Python: a Python bootstrapper and ``nodes - 1`` persistent Python nodes, queried by an
ephemeral Python client. JS: @hyperswarm/testnet with ``nodes`` nodes (interop/peers/
hyperdht_peer.js), queried by an ephemeral JS node, timed inside node. Each round uses a fresh
topic and key pair, and each operation is checked (the lookup finds the announcement, the gets
return the value put). Medians per operation; ratios are Python / JS (lower is better for
Python). Both sides use their libraries' default timeouts and concurrency, so the numbers are
dominated by round trips and per-message work on one machine, not by network latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from bench.common import INTEROP
from hyperlobby.crypto.keys import key_pair
from hyperlobby.swarm.hyperdht.dht import HyperDht

FULL = {"rounds": 20, "nodes": 10}
QUICK = {"rounds": 2, "nodes": 5}
OPS = ("announce", "lookup", "mutablePut", "mutableGet", "immutablePut", "immutableGet")

T = TypeVar("T")


async def python_rounds(rounds: int, nodes: int) -> dict[str, list[float]]:
    boot = await HyperDht.bootstrapper("127.0.0.1", 0)
    bootstrap = [str(boot.address)]
    network = [await HyperDht.create(bootstrap=bootstrap, ephemeral=False) for _ in range(nodes - 1)]
    client = await HyperDht.create(bootstrap=bootstrap, ephemeral=True)
    ms: dict[str, list[float]] = {op: [] for op in OPS}

    async def timed(op: str, work: Awaitable[T]) -> T:
        # ``work`` is a coroutine: nothing of it runs until awaited here
        t0 = time.perf_counter()
        result = await work
        ms[op].append((time.perf_counter() - t0) * 1000)
        return result

    try:
        for _ in range(rounds):
            kp = key_pair()
            topic = os.urandom(32)
            await timed("announce", client.announce(topic, kp))
            if await timed("lookup", _count_peers(client, topic)) == 0:
                raise RuntimeError("bench lookup found nothing")
            value = b"bench value " + os.urandom(8)
            await timed("mutablePut", client.mutable_put(kp, value, seq=1))
            got = await timed("mutableGet", client.mutable_get(kp.public_key))
            if got is None or got.value != value:
                raise RuntimeError("bench mutable_get mismatch")
            put = await timed("immutablePut", client.immutable_put(value))
            if await timed("immutableGet", client.immutable_get(put.target)) is None:
                raise RuntimeError("bench immutable_get found nothing")
    finally:
        await client.close()
        for n in network:
            await n.close()
        await boot.close()
    return ms


async def _count_peers(client: HyperDht, topic: bytes) -> int:
    return sum([len(r.peers) async for r in client.lookup(topic)])


async def js_rounds(rounds: int, nodes: int) -> dict[str, list[float]]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(INTEROP / "peers" / "hyperdht_peer.js"),
        str(nodes),
        cwd=INTEROP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def call(msg: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        await proc.stdin.drain()
        return await line(timeout)

    async def line(timeout: float) -> dict[str, Any]:
        assert proc.stdout is not None
        raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError("the JS hyperdht peer exited")
        out: dict[str, Any] = json.loads(raw)
        if out.get("event") == "error" or isinstance(out.get("error"), str):
            raise RuntimeError(str(out))
        return out

    try:
        assert (await line(60))["ready"]
        client = (await call({"cmd": "node", "ephemeral": True}))["index"]
        result = await call({"cmd": "bench", "from": client, "rounds": rounds})
        ms: dict[str, list[float]] = result["ms"]
        return ms
    finally:
        if proc.returncode is None:
            try:
                await call({"cmd": "quit"}, 30)
            except Exception:
                proc.kill()
            await asyncio.wait_for(proc.wait(), 15)


async def run(rounds: int, nodes: int) -> None:
    py = await python_rounds(rounds, nodes)
    js = await js_rounds(rounds, nodes)
    print(f"rounds          {rounds} (fresh topic and key each), DHT of {nodes} nodes + 1 ephemeral client")
    for op in OPS:
        p, j = statistics.median(py[op]), statistics.median(js[op])
        print(f"{op:<15} Python {p:7.2f} ms   JS {j:7.2f} ms   ratio {p / max(j, 1e-3):5.2f}  (median)")


def main(quick: bool = False) -> None:
    cfg = QUICK if quick else FULL
    asyncio.run(run(cfg["rounds"], cfg["nodes"]))


if __name__ == "__main__":
    main()
