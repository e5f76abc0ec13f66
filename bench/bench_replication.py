"""Replication throughput over loopback TCP, Python and the JS reference side by side in one run.

Every pairing downloads a whole core from a server running in its own process (so the two ends
use the machine's two cores, as two real peers would): JS->JS (the reference), Python->Python,
Python server -> JS reader, and JS server -> Python reader. Readers store what they verify on
disk (SQLite for Python, RocksDB for JS). ``seconds`` runs from the TCP connect to the last block
stored; ``handshake`` from the connect to the moment the reader has verified the writer's length.
Ratios are throughput relative to JS->JS (above 1 means faster). The reader's CPU time per block
(the JS reader's includes its start-up) is printed too: it moves much less than wall time when
the machine is shared.

Run a server by hand with ``python -m bench.bench_replication serve DB COUNT SIZE``; measure one
size (optionally only some pairings, e.g. ``"Py -> Py,JS -> JS"``) with
``python -m bench.bench_replication run COUNT SIZE [PAIRS]`` while iterating.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import key_pair
from hyperlobby.wire.replication import Replication

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "interop"

FULL = [(10_000, 64 * 1024), (100_000, 1024)]
QUICK = [(100, 64 * 1024), (500, 1024)]


def _block(i: int, size: int) -> bytes:
    return i.to_bytes(4, "little") + bytes(size - 4)


# --- servers (each in its own process) ---------------------------------------------------------


def _start_js_server(tmp: Path, count: int, size: int) -> tuple[subprocess.Popen[bytes], int, str]:
    proc = subprocess.Popen(
        ["node", "bench/replicate.js", "serve", str(tmp / "js-server"), str(count), str(size)],
        cwd=INTEROP,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, int(info["port"]), str(info["key"])


def _start_py_server(tmp: Path, count: int, size: int) -> tuple[subprocess.Popen[bytes], int, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bench_replication",
            "serve",
            str(tmp / "py-server.db"),
            str(count),
            str(size),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, int(info["port"]), str(info["key"])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _serve(db: str, count: int, size: int) -> None:
    store = Store(db)
    core = store.get(name="bench")
    while core.length < count:
        start = core.length
        core.append([_block(i, size) for i in range(start, min(count, start + 256))])
    rep = Replication(store, key_pair=key_pair())
    rep.add(core)
    _, port = await rep.listen("127.0.0.1", 0)
    print(json.dumps({"port": port, "key": core.key.hex()}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # serve until the bench closes our stdin
    await rep.close()
    store.close()


# --- readers -------------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _js_fetch(tmp: Path, port: int, key: str) -> dict[str, float]:
    cpu = _children_cpu()
    out = subprocess.run(
        ["node", "bench/replicate.js", "fetch", str(port), key, str(tmp / "js-reader")],
        cwd=INTEROP,
        capture_output=True,
        check=True,
        timeout=900,
    )
    cpu = _children_cpu() - cpu  # the reader process, start-up included
    info = json.loads(out.stdout.splitlines()[-1])
    shutil.rmtree(tmp / "js-reader", ignore_errors=True)
    return {
        "blocks": info["blocks"],
        "bytes": info["bytes"],
        "seconds": info["seconds"],
        "handshake": info["handshake_ms"],
        "cpu": cpu,
    }


async def _py_fetch_async(tmp: Path, port: int, key: str) -> dict[str, float]:
    db = tmp / "py-reader.db"
    store = Store(db)
    core = store.get(key=bytes.fromhex(key))
    rep = Replication(store)
    rep.add(core)
    c0 = time.process_time()
    t0 = time.perf_counter()
    await rep.connect("127.0.0.1", port)
    length = await rep.update(core, timeout=30)
    t1 = time.perf_counter()
    rep.download(core, 0, length)
    await rep.wait_downloaded(core, length, timeout=900)
    t2 = time.perf_counter()
    result = {
        "blocks": length,
        "bytes": core.byte_length,
        "seconds": t2 - t0,
        "handshake": (t1 - t0) * 1000,
        "cpu": time.process_time() - c0,
    }
    await rep.close()
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return result


def _py_fetch(tmp: Path, port: int, key: str) -> dict[str, float]:
    return asyncio.run(_py_fetch_async(tmp, port, key))


# --- the run -------------------------------------------------------------------------------------

PAIRS = [
    ("JS -> JS", _start_js_server, _js_fetch),
    ("Py -> Py", _start_py_server, _py_fetch),
    ("Py -> JS", _start_py_server, _js_fetch),
    ("JS -> Py", _start_js_server, _py_fetch),
]


def run_case(count: int, size: int, only: list[str] | None = None) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="hl-bench-repl-"))
    try:
        for name, start, fetch in PAIRS:
            if only is not None and name not in only:
                continue
            proc, port, key = start(tmp, count, size)
            try:
                before = _proc_cpu(proc.pid)
                results[name] = fetch(tmp, port, key)
                results[name]["server_cpu"] = _proc_cpu(proc.pid) - before
            finally:
                _stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def report(count: int, size: int, results: dict[str, dict[str, float]]) -> None:
    ref = results.get("JS -> JS")
    ref_rate = ref["blocks"] / ref["seconds"] if ref is not None else float("nan")
    label = f"{count} x {size // 1024} KiB"
    print(
        f"{label}: server -> reader   blocks/s     MB/s   handshake   ratio vs JS->JS"
        "   CPU/block: reader  server"
    )
    for name, r in results.items():
        rate = r["blocks"] / r["seconds"]
        mbps = r["bytes"] / r["seconds"] / 1e6
        blocks = max(r["blocks"], 1)
        cpu = r["cpu"] / blocks * 1e6
        server = r.get("server_cpu", float("nan")) / blocks * 1e6
        print(
            f"  {name:10s} {rate:14.0f} {mbps:8.1f} {r['handshake']:8.1f} ms   {rate / ref_rate:5.2f}x"
            f"   {cpu:17.0f} us {server:5.0f} us"
        )


def main(quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for count, size in QUICK if quick else FULL:
        results = run_case(count, size)
        report(count, size, results)
        out[f"{count}x{size}"] = results
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        asyncio.run(_serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        n, sz = int(sys.argv[2]), int(sys.argv[3])
        pairs = [p.strip() for p in sys.argv[4].split(",")] if len(sys.argv) >= 5 else None
        report(n, sz, run_case(n, sz, pairs))
    else:
        main(quick="--quick" in sys.argv)
