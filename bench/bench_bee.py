"""Hyperbee throughput: Python Hyperbee on a SQLite Store vs JS hyperbee on RocksDB, same run.

Cases: single ``put`` calls (each one a signed, committed append), ``get`` of existing keys in a
scattered order, a full in-order ``range`` read, and puts in batches of 100. Keys are
``key-<8 hex>`` in the same pseudo-random order on both sides, values 32 bytes. The ratio is
Python/JS throughput (above 1 means Python is faster). Both sides run ``rounds`` times,
alternating, and each case keeps its best round, so a burst of load on the machine does not
land on one side only.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.common import run_js
from hyperlobby.bee import Hyperbee
from hyperlobby.core.store import Store

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "interop"

FULL = {"puts": 10_000, "gets": 10_000, "batch_size": 100, "rounds": 3}
QUICK = {"puts": 300, "gets": 300, "batch_size": 100, "rounds": 1}
CASES = ("put", "get", "range", "put_batch")


def key_at(i: int) -> str:
    return f"key-{(i * 2654435761) & 0xFFFFFFFF:08x}"


def python_numbers(puts: int, gets: int, batch_size: int) -> dict[str, dict[str, float]]:
    value = b"v" * 32
    out: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="hl-bench-bee-"))
    try:
        store = Store(tmp / "single.db", durability="normal")
        db = Hyperbee(store.get(name="bee"), key_encoding="utf-8", value_encoding="binary")
        t0 = time.perf_counter()
        for i in range(puts):
            db.put(key_at(i), value)
        out["put"] = {"ops": puts, "seconds": time.perf_counter() - t0}
        t0 = time.perf_counter()
        for i in range(gets):
            if db.get(key_at((i * 7919) % puts)) is None:
                raise AssertionError("missing key")
        out["get"] = {"ops": gets, "seconds": time.perf_counter() - t0}
        t0 = time.perf_counter()
        n = sum(1 for _ in db.range())
        out["range"] = {"ops": n, "seconds": time.perf_counter() - t0}
        store.close()

        store = Store(tmp / "batch.db", durability="normal")
        db = Hyperbee(store.get(name="bee"), key_encoding="utf-8", value_encoding="binary")
        t0 = time.perf_counter()
        for i in range(0, puts, batch_size):
            with db.batch() as b:
                for j in range(i, min(puts, i + batch_size)):
                    b.put(key_at(j), value)
        out["put_batch"] = {"ops": puts, "seconds": time.perf_counter() - t0}
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def js_numbers(puts: int, gets: int, batch_size: int) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = run_js("bench/bee.js", puts, gets, batch_size)
    return result


def report(py: dict[str, dict[str, float]], js: dict[str, dict[str, float]]) -> None:
    print(f"{'case':<10} {'python ops/s':>14} {'js ops/s':>12} {'py/js':>7}")
    for case in CASES:
        p = py[case]["ops"] / py[case]["seconds"]
        j = js[case]["ops"] / js[case]["seconds"]
        print(f"{case:<10} {p:>14,.0f} {j:>12,.0f} {p / j:>6.2f}x")


def _best(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {case: min((r[case] for r in runs), key=lambda r: r["seconds"] / r["ops"]) for case in CASES}


def main(quick: bool = False) -> None:
    sizes = QUICK if quick else FULL
    args = (sizes["puts"], sizes["gets"], sizes["batch_size"])
    py_runs, js_runs = [], []
    for _ in range(sizes["rounds"]):
        py_runs.append(python_numbers(*args))
        js_runs.append(js_numbers(*args))
    report(_best(py_runs), _best(js_runs))


if __name__ == "__main__":
    main()
