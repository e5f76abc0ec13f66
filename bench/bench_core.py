"""Append throughput: Python Hypercore on SQLite vs JS hypercore 11 on RocksDB, same machine, same run.

Cases: 1 KiB blocks one per ``append`` call, 1 KiB blocks in batches of 100, 1 MiB blocks one per
call. Every append is signed and committed (one transaction per call). Python runs with
``durability="normal"`` (survives a killed process) and, for the small-block cases, with
``"full"`` (fsync per commit: survives a power cut) on fewer blocks. The ratio is Python/JS
throughput (above 1 means Python is faster).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.storage import Durability
from hyperlobby.core.store import Store

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "interop"

FULL = {"single": 100_000, "batches": 1000, "batch_size": 100, "big": 1000, "fsync_single": 3000}
QUICK = {"single": 200, "batches": 4, "batch_size": 100, "big": 3, "fsync_single": 50}


def _timed(durability: Durability, run: Callable[[Hypercore], int], block_size: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="hl-bench-"))
    try:
        store = Store(tmp / "bench.db", durability=durability)
        core = store.get(name="bench")
        start = time.perf_counter()
        blocks = run(core)
        seconds = time.perf_counter() - start
        store.close()
        return {"blocks": blocks, "bytes": blocks * block_size, "seconds": seconds}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def python_numbers(sizes: dict[str, int], durability: Durability, single: int) -> dict[str, dict[str, float]]:
    kib = b"a" * 1024
    mib = b"b" * (1024 * 1024)
    batch = [kib] * sizes["batch_size"]

    def singles(core: Hypercore) -> int:
        append = core.append
        for _ in range(single):
            append(kib)
        return single

    def batches(core: Hypercore) -> int:
        n = sizes["batches"] if durability == "normal" else max(1, single // sizes["batch_size"])
        for _ in range(n):
            core.append(batch)
        return n * sizes["batch_size"]

    def bigs(core: Hypercore) -> int:
        for _ in range(sizes["big"]):
            core.append(mib)
        return sizes["big"]

    out = {
        "single_1k": _timed(durability, singles, 1024),
        "batch_1k": _timed(durability, batches, 1024),
    }
    if durability == "normal":
        out["single_1m"] = _timed(durability, bigs, len(mib))
    return out


def js_numbers(sizes: dict[str, int]) -> dict[str, dict[str, float]]:
    args = [str(sizes[k]) for k in ("single", "batches", "batch_size", "big")]
    proc = subprocess.run(
        ["node", "bench/core_append.js", *args], cwd=INTEROP, capture_output=True, check=True, timeout=900
    )
    result: dict[str, dict[str, float]] = json.loads(proc.stdout)
    return result


def _rate(r: dict[str, float]) -> tuple[float, float]:
    return r["blocks"] / r["seconds"], r["bytes"] / r["seconds"] / 1e6


def report(py: dict[str, dict[str, float]], js: dict[str, dict[str, float]], fsync: dict[str, Any]) -> None:
    print(f"{'case':<12} {'python blocks/s':>16} {'MB/s':>8} {'js blocks/s':>12} {'MB/s':>8} {'py/js':>7}")
    for case in ("single_1k", "batch_1k", "single_1m"):
        pb, pm = _rate(py[case])
        jb, jm = _rate(js[case])
        print(f"{case:<12} {pb:>16,.0f} {pm:>8.1f} {jb:>12,.0f} {jm:>8.1f} {pb / jb:>6.2f}x")
    for case, r in fsync.items():
        pb, pm = _rate(r)
        jb, _ = _rate(js[case])
        label = case + " FULL"
        print(
            f"{label:<12} {pb:>16,.0f} {pm:>8.1f} {jb:>12,.0f} {'':>8} {pb / jb:>6.2f}x  (fsync per commit)"
        )


def main(quick: bool = False) -> None:
    sizes = QUICK if quick else FULL
    py = python_numbers(sizes, "normal", sizes["single"])
    fsync = python_numbers(sizes, "full", sizes["fsync_single"])
    js = js_numbers(sizes)
    report(py, js, fsync)


if __name__ == "__main__":
    main()
