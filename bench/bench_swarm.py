"""The swarm: join -> first connection, then a 100-block core over that connection.

Both sides run on a private DHT on 127.0.0.1 (Python: a Python bootstrapper and three Python
nodes; JS: @hyperswarm/testnet's three nodes, in interop/peers/hyperswarm_peer.js), with a fresh
pair of swarms and a fresh topic each round:

* **join -> first connection**: a writer swarm has joined the topic as a server (announced);
  we time from the reader's ``join(topic)`` (client) to its first connection: a lookup, the
  dial (FIND_PEER, the Noise handshake relayed through the DHT, holepunch on loopback), open.
* **replicate 100 blocks**: from that connection to the reader holding all 100 blocks
  (1 KiB each), verified, over the new connection.
* **large**: the same with 5,000 blocks of 1 KiB and 3 rounds, where the per-message path
  over a DHT connection (batch frames, one storage write group per UDX read) decides the time
  rather than the connection's set-up. Not run with ``--quick``; only it:
  ``python -c "from bench.bench_swarm import main; main(large_only=True)"``.

Both sides store their cores on disk (Python: SQLite; JS: hypercore 11's RocksDB storage).
Python <-> Python and JS <-> JS are measured in the same run, and so are the two mixed pairs on
the JS testnet (a Python writer with a JS reader, a JS writer with a Python reader; the Python
swarm bootstraps from the JS nodes). Ratios are time / JS->JS time (lower is better).
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

FULL = {"rounds": 15, "blocks": 100, "large_rounds": 3, "large_blocks": 5000}
QUICK = {"rounds": 2, "blocks": 100, "large_rounds": 0, "large_blocks": 0}  # --quick: no large case
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


class _PySide:
    """One Python swarm with one core (a writer holding ``blocks`` or a reader of ``key``)."""

    def __init__(self, swarm: Swarm, store: Store, rep: Replication) -> None:
        self.swarm, self.store, self.rep = swarm, store, rep
        self.core: Any = None
        self.connected: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    @classmethod
    async def make(
        cls, bootstrap: list[str], db: Path, *, blocks: int = 0, key: bytes | None = None
    ) -> _PySide:
        store = Store(db)
        swarm = Swarm(await HyperDht.create(bootstrap=bootstrap), owns_dht=True)
        side = cls(swarm, store, Replication(store, key_pair=swarm.key_pair))
        side.core = store.get(key=key) if key is not None else store.get(name="bench")
        if blocks:
            side.core.append([bytes([i % 256]) * BLOCK for i in range(blocks)])
        side.rep.add(side.core)
        if key is not None:
            side.rep.download(side.core)
        swarm.on_connection = side._on_connection
        return side

    def _on_connection(self, conn: Any, info: Any) -> None:
        self.rep.adopt(conn)
        if not self.connected.done():
            self.connected.set_result(time.perf_counter())

    async def close(self) -> None:
        await self.rep.close()
        await self.swarm.close()
        self.store.close()


async def mixed_rounds(rounds: int, blocks: int, tmp: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Python writer -> JS reader and JS writer -> Python reader, on the JS testnet."""
    proc = await _start_js(tmp / "js")
    js = _Js(proc)
    out: dict[str, tuple[list[float], list[float]]] = {"py->js": ([], []), "js->py": ([], [])}
    try:
        bootstrap = (await js.line(60))["bootstrap"]
        payload = [(bytes([i % 256]) * BLOCK).hex() for i in range(blocks)]
        for r in range(rounds):
            # a Python writer announces; a JS reader joins and dials it
            topic = os.urandom(32)
            writer = await _PySide.make(bootstrap, tmp / f"pw{r}.db", blocks=blocks)
            try:
                writer.swarm.join(topic, server=True, client=False)
                await asyncio.wait_for(writer.swarm.flush(), 30)
                rd = await js.call({"cmd": "swarm", "coreKey": writer.core.key.hex()})
                await js.call(
                    {"cmd": "join", "id": rd["id"], "topic": topic.hex(), "server": False, "client": True}
                )
                conn = await js.call({"cmd": "waitConnection", "id": rd["id"]})
                got = await js.call({"cmd": "waitLength", "id": rd["id"], "length": blocks})
                out["py->js"][0].append(conn["ms"] / 1000)
                out["py->js"][1].append(got["sinceConnection"] / 1000)
                await js.call({"cmd": "destroy", "id": rd["id"]})
            finally:
                await writer.close()
            # a JS writer announces; a Python reader joins and dials it
            topic = os.urandom(32)
            w = await js.call({"cmd": "swarm", "blocks": payload})
            await js.call(
                {"cmd": "join", "id": w["id"], "topic": topic.hex(), "server": True, "client": False}
            )
            reader = await _PySide.make(bootstrap, tmp / f"pr{r}.db", key=bytes.fromhex(w["coreKey"]))
            try:
                t0 = time.perf_counter()
                reader.swarm.join(topic, server=False, client=True)
                t_conn = await asyncio.wait_for(reader.connected, 30)
                await reader.rep.wait_downloaded(reader.core, blocks, timeout=60)
                t_done = time.perf_counter()
                assert reader.core.get(blocks - 1) == bytes([(blocks - 1) % 256]) * BLOCK
                out["js->py"][0].append(t_conn - t0)
                out["js->py"][1].append(t_done - t_conn)
            finally:
                await reader.close()
                await js.call({"cmd": "destroy", "id": w["id"]})
    finally:
        await _stop_js(js)
    return out


async def _start_js(storage: Path) -> asyncio.subprocess.Process:
    storage.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        "node",
        str(INTEROP / "peers" / "hyperswarm_peer.js"),
        str(storage),
        cwd=INTEROP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 24,  # waitLength answers with a digest per block
    )


async def _stop_js(js: _Js) -> None:
    if js.proc.returncode is None:
        try:
            await js.call({"cmd": "quit"}, 30)
        except Exception:
            js.proc.kill()
        await asyncio.wait_for(js.proc.wait(), 15)


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
        js = _Js(await _start_js(Path(tmp)))
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
            await _stop_js(js)
    return joins, reps


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def run(rounds: int, blocks: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hl-bench-swarm-") as tmp:
        py_join, py_rep = await python_rounds(rounds, blocks, Path(tmp))
        js_join, js_rep = await js_rounds(rounds, blocks)
        mixed = await mixed_rounds(rounds, blocks, Path(tmp))
    _table(rounds, blocks, py_join, py_rep, js_join, js_rep, mixed)


def _table(
    rounds: int,
    blocks: int,
    py_join: list[float],
    py_rep: list[float],
    js_join: list[float],
    js_rep: list[float],
    mixed: dict[str, tuple[list[float], list[float]]],
) -> None:
    rows = {"JS->JS": (js_join, js_rep), "Py->Py": (py_join, py_rep)}
    rows["Py writer->JS reader"] = mixed["py->js"]
    rows["JS writer->Py reader"] = mixed["js->py"]
    print(
        f"rounds {rounds} (fresh swarms and topic each), {blocks} x {BLOCK} B; medians, ratio = time / JS->JS"
    )
    print(f"{'pair':<22} {'join->first conn':>17} {'ratio':>6} {f'replicate {blocks}':>15} {'ratio':>6}")
    for name, (joins, reps) in rows.items():
        jr = _ms(joins) / max(_ms(js_join), 1e-3)
        rr = _ms(reps) / max(_ms(js_rep), 1e-3)
        print(f"{name:<22} {_ms(joins):14.1f} ms {jr:6.2f} {_ms(reps):12.1f} ms {rr:6.2f}")


def main(quick: bool = False, large_only: bool = False) -> None:
    cfg = QUICK if quick else FULL
    if not large_only:
        asyncio.run(run(cfg["rounds"], cfg["blocks"]))
    if cfg["large_rounds"]:
        print("large case:")
        asyncio.run(run(cfg["large_rounds"], cfg["large_blocks"]))


if __name__ == "__main__":
    main()
