"""Secret-stream benchmarks: handshake latency on loopback and 64 KiB message throughput.

Run: ``.venv/bin/python bench/bench_secret_stream.py``. Three numbers are printed:

* sans-IO Noise handshake cost (no sockets), to separate crypto from asyncio overhead;
* TCP loopback connect + handshake time (Python <-> Python, median of N);
* one-way throughput of 64 KiB messages over loopback TCP, and the sans-IO encrypt+decrypt
  ceiling for the same message size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from hyperlobby.wire.noise import NoiseKeyPair
from hyperlobby.wire.secret_stream import SecretStream
from hyperlobby.wire.stream import SecretStreamConnection, connect, serve

HOST = "127.0.0.1"


def sans_io_handshake(n: int) -> float:
    a_kp, b_kp = NoiseKeyPair.generate(), NoiseKeyPair.generate()
    t0 = time.perf_counter()
    for _ in range(n):
        a = SecretStream(True, a_kp)
        b = SecretStream(False, b_kp)
        b.receive_data(a.initiate())
        a.receive_data(b.data_to_send())
        b.receive_data(a.data_to_send())
        a.receive_data(b.data_to_send())
    return (time.perf_counter() - t0) / n


def sans_io_throughput(size: int, total: int) -> float:
    a = SecretStream(True, NoiseKeyPair.generate())
    b = SecretStream(False, NoiseKeyPair.generate())
    b.receive_data(a.initiate())
    a.receive_data(b.data_to_send())
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    msg = bytes(size)
    count = total // size
    t0 = time.perf_counter()
    for _ in range(count):
        b.receive_data(a.send(msg))
    return count * size / (time.perf_counter() - t0) / 1e6


async def tcp(size: int, total: int, handshakes: int) -> tuple[float, float]:
    done = asyncio.Event()
    received = 0

    async def sink(conn: SecretStreamConnection) -> None:
        nonlocal received
        async for msg in conn:
            received += len(msg)
            if received >= total:
                done.set()

    server = await serve(HOST, 0, NoiseKeyPair.generate(), sink, keepalive=None)
    async with server:
        port = server.sockets[0].getsockname()[1]
        kp = NoiseKeyPair.generate()
        times = []
        for _ in range(handshakes):
            t0 = time.perf_counter()
            conn = await connect(HOST, port, kp, keepalive=None)
            times.append(time.perf_counter() - t0)
            await conn.aclose()
        received = 0
        conn = await connect(HOST, port, kp, keepalive=None)
        msg = bytes(size)
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            await conn.send(msg)
            sent += size
        await done.wait()
        elapsed = time.perf_counter() - t0
        await conn.aclose()
        await asyncio.sleep(0.1)  # let the server side see EOF and close before the loop ends
    return statistics.median(times), total / elapsed / 1e6


def main(quick: bool = False, size: int = 64 * 1024, total_mib: int = 256, handshakes: int = 50) -> None:
    """Component figures for the crypto under replication (bench_replication compares with JS)."""
    if quick:
        total_mib, handshakes = 2, 3
    total = total_mib * 1024 * 1024
    print(f"sans-IO handshake (both sides): {sans_io_handshake(10 if quick else 200) * 1e3:.2f} ms")
    print(f"sans-IO encrypt+decrypt {size} B messages: {sans_io_throughput(size, total):.0f} MB/s")
    hs, mbps = asyncio.run(tcp(size, total, handshakes))
    print(f"TCP loopback connect+handshake (median of {handshakes}): {hs * 1e3:.2f} ms")
    print(f"TCP loopback {size} B messages, one way: {mbps:.0f} MB/s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=int, default=64 * 1024)
    ap.add_argument("--total-mib", type=int, default=256)
    ap.add_argument("--handshakes", type=int, default=50)
    args = ap.parse_args()
    main(args.quick, args.size, args.total_mib, args.handshakes)
