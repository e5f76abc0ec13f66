"""Hyperdrive throughput: Python Hyperdrive on a SQLite Store vs JS hyperdrive on RocksDB, same run.

Cases: ``write`` puts N small files one by one (each a blobs append and a db append, both signed
and committed), ``read`` gets them back, ``big_write``/``big_read`` put and get one large file.
Paths are ``/d/<i % 32>/f-<i>`` and contents the same deterministic bytes on both sides. The
ratio is Python/JS throughput (above 1 means Python is faster).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.common import run_js
from hyperlobby.core.store import Store
from hyperlobby.drive import Hyperdrive

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "interop"

FULL = {"files": 1000, "size": 4096, "big": 64 * 1024 * 1024}
QUICK = {"files": 50, "size": 4096, "big": 1024 * 1024}
CASES = ("write", "read", "big_write", "big_read")


def file_data(i: int, size: int) -> bytes:
    """Same bytes as ``fileData`` in interop/bench/drive.js."""
    return bytes(((i * 131 + j * 7) & 255) for j in range(size))


def name(i: int) -> str:
    return f"/d/{i % 32}/f-{i}"


def python_numbers(files: int, size: int, big_size: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="hl-bench-drive-"))
    try:
        store = Store(tmp / "drive.db", durability="normal")
        drive = Hyperdrive(store)
        data = [file_data(i, size) for i in range(files)]
        t0 = time.perf_counter()
        for i in range(files):
            drive.put(name(i), data[i])
        out["write"] = {"ops": files, "bytes": files * size, "seconds": time.perf_counter() - t0}
        t0 = time.perf_counter()
        for i in range(files):
            got = drive.get(name(i))
            if got is None or len(got) != size:
                raise AssertionError(f"bad read {i}")
        out["read"] = {"ops": files, "bytes": files * size, "seconds": time.perf_counter() - t0}
        big = file_data(7, big_size)
        t0 = time.perf_counter()
        drive.put("/big.bin", big)
        out["big_write"] = {"ops": 1, "bytes": big_size, "seconds": time.perf_counter() - t0}
        t0 = time.perf_counter()
        got = drive.get("/big.bin")
        if got is None or len(got) != big_size:
            raise AssertionError("bad big read")
        out["big_read"] = {"ops": 1, "bytes": big_size, "seconds": time.perf_counter() - t0}
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def js_numbers(files: int, size: int, big_size: int) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = run_js("bench/drive.js", files, size, big_size)
    return result


def report(py: dict[str, dict[str, float]], js: dict[str, dict[str, float]]) -> None:
    print(f"{'case':<10} {'python':>16} {'js':>16} {'py/js':>7}")
    for case in CASES:
        if case.startswith("big"):
            p = py[case]["bytes"] / py[case]["seconds"] / 2**20
            j = js[case]["bytes"] / js[case]["seconds"] / 2**20
            unit = "MiB/s"
        else:
            p = py[case]["ops"] / py[case]["seconds"]
            j = js[case]["ops"] / js[case]["seconds"]
            unit = "files/s"
        print(f"{case:<10} {p:>8,.0f} {unit:<7} {j:>8,.0f} {unit:<7} {p / j:>6.2f}x")


def main(quick: bool = False) -> None:
    sizes = QUICK if quick else FULL
    py = python_numbers(sizes["files"], sizes["size"], sizes["big"])
    js = js_numbers(sizes["files"], sizes["size"], sizes["big"])
    report(py, js)


if __name__ == "__main__":
    main()
