"""UDX stream throughput on loopback, next to TCP, in one run.

Run: ``.venv/bin/python bench/bench_udx.py`` (or ``python -m bench bench_udx``). One-way bulk
transfer of N bytes, timed from the first write until the receiver has everything:

* Python UDX -> Python UDX at udx-native's base payload (1152 B), a full Ethernet payload
  (1452 B), the largest udx-native can receive (2028 B) and 32 kB (Python-only, loopback);
* Python asyncio TCP -> Python asyncio TCP as the baseline;
* the same TCP and UDX (2028 B) transfers with the receiver in a child process, so each end
  has a core of its own as between two machines (one process does the work of both ends
  in the rows above);
* a floor: plain UDP with segmentation offload and GRO carrying the same 64 kB writes cut
  into packets behind 20-byte headers, stripped again on receipt, with no protocol at all.
  Whatever UDX does beyond that (sequence numbers, acks, windows, timers, the event loop)
  has to fit between the floor and TCP.

The Python rows do the same application work on both transports, so the ratio compares
transports and nothing else: the sender is an ``asyncio.StreamWriter`` (``write`` 64 kB,
``await drain()``; for UDX through :func:`~hyperlobby.swarm.udx.open_connection`), the
receiver an ``asyncio.Protocol`` that only counts bytes (for UDX on a ``UdxTransport``).
Earlier versions read UDX with ``await stream.read()`` (a future per wake-up and a join of
the held chunks) against the counting Protocol on TCP, which charged UDX for reader work
TCP did not do; TCP itself is measured exactly as before.

* Python UDX -> udx-native and udx-native -> Python UDX (interop/peers/udx_peer.js; the
  node side hashes what it receives or generates random bytes, so these rows include that);
* udx-native -> udx-native inside one node process, for the JS reference's own speed;
* both again through a relay: a third socket whose two streams forward to each other (what a
  blind relay does), Python (``UdxStream.relay_to``, 1452 B packets, next to the same
  transfer unrelayed) and udx-native (``relayTo``, in one node process). Each is printed as
  a ratio to its own direct transfer: what a relay costs in each implementation.

The JS rows need node and ``interop/node_modules``; without them they are reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import socket
import statistics
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from hyperlobby.swarm.udx import UdxSocket, UdxStream, UdxTransport, open_connection

HOST = "127.0.0.1"
CHUNK = 65536
INTEROP = Path(__file__).resolve().parent.parent / "interop"


@functools.lru_cache(maxsize=1)
def _random_bytes(total: int) -> bytes:
    return os.urandom(total)


async def _send(stream: UdxStream, data: bytes) -> None:
    for i in range(0, len(data), CHUNK):
        stream.write(data[i : i + CHUNK])
        await stream.drain()
    stream.end()


async def _pump(writer: asyncio.StreamWriter, data: bytes) -> None:
    """The sender of both Python rows: 64 kB writes, each followed by drain()."""
    for i in range(0, len(data), CHUNK):
        writer.write(data[i : i + CHUNK])
        await writer.drain()


async def udx_python(total: int, payload: int, *, relayed: bool = False) -> float:
    """One-way transfer between two streams on two sockets; ``relayed``: through a third
    socket whose two streams relay to each other (``UdxStream.relay_to``: what a blind relay
    does for two peers), all in this process."""
    a = await UdxSocket.bind(HOST)
    b = await UdxSocket.bind(HOST)
    r = await UdxSocket.bind(HOST) if relayed else None
    try:
        sa = a.create_stream(max_payload=payload, mtu_probing=False)
        sb = b.create_stream(max_payload=payload, mtu_probing=False)
        if r is None:
            sa.connect(sb.id, *b.address)
            sb.connect(sa.id, *a.address)
        else:
            ra, rb = r.create_stream(), r.create_stream()
            ra.connect(sa.id, *a.address)
            rb.connect(sb.id, *b.address)
            ra.relay_to(rb)
            rb.relay_to(ra)
            sa.connect(ra.id, *r.address)
            sb.connect(rb.id, *r.address)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        counter = _Counter(total, done)
        UdxTransport(sb, counter)
        _, writer = await open_connection(sa)
        data = _random_bytes(total)
        t0 = time.perf_counter()
        await asyncio.wait_for(_pump(writer, data), 120)
        await asyncio.wait_for(done, 120)
        elapsed = time.perf_counter() - t0
        assert counter.n == total
        return total / elapsed / 1e6
    finally:
        for sock in (a, b, r):
            if sock is not None:
                await sock.close()


class _Counter(asyncio.Protocol):
    def __init__(self, total: int, done: asyncio.Future[None]) -> None:
        self.total = total
        self.done = done
        self.n = 0
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.n += len(data)
        if self.n >= self.total and not self.done.done():
            self.done.set_result(None)


async def tcp_python(total: int) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    server = await loop.create_server(lambda: _Counter(total, done), HOST, 0)
    try:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(HOST, port)
        data = _random_bytes(total)
        t0 = time.perf_counter()
        await asyncio.wait_for(_pump(writer, data), 120)
        await asyncio.wait_for(done, 120)
        elapsed = time.perf_counter() - t0
        writer.close()
        return total / elapsed / 1e6
    finally:
        server.close()


def udp_floor(total: int, payload: int) -> float:
    """The ceiling for any Python UDX on this machine: the same 64 kB writes cut into packets
    of ``payload`` bytes behind 20-byte headers, sent with segmentation offload and read
    with GRO, headers stripped, and nothing else (no acks, windows, timers or event loop).
    Whatever the protocol adds has to fit between this and TCP."""
    gso = (17, 103)  # SOL_UDP, UDP_SEGMENT
    segment = payload + 20
    count = min(64, 65000 // segment)
    burst = count * payload
    cut = struct.Struct(f"{payload}s" * count)
    header = bytes(20)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        rx.bind((HOST, 0))
        rx.setsockopt(17, 104, 1)  # UDP_GRO
        rx.setblocking(False)
        tx.bind((HOST, 0))
        address = rx.getsockname()
        ancillary = [(*gso, segment.to_bytes(2, "little"))]
        data = _random_bytes(total)
        t0 = time.perf_counter()
        received = sent = 0
        while sent + burst <= total:
            rounds = min(16, (total - sent) // burst)  # about what one flush sends in the UDX rows
            for _ in range(rounds):
                chunk = data[sent : sent + burst]
                buf = bytearray(header).join([b"", *cut.unpack_from(chunk)])
                tx.sendmsg([buf], ancillary, 0, address)
                sent += burst
            for _ in range(rounds):
                read, _, _, _ = rx.recvmsg(65536, 64)
                view = memoryview(read)
                received += len(b"".join([view[o + 20 : o + segment] for o in range(0, len(read), segment)]))
        return received / (time.perf_counter() - t0) / 1e6
    finally:
        rx.close()
        tx.close()


async def _js_peer(sock: UdxSocket, *args: str) -> tuple[asyncio.subprocess.Process, UdxStream]:
    node = shutil.which("node")
    assert node is not None
    proc = await asyncio.create_subprocess_exec(
        node,
        str(INTEROP / "peers" / "udx_peer.js"),
        *args,
        cwd=INTEROP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    stream = sock.create_stream(max_payload=2028)  # the largest payload udx-native can receive
    stream.connect(info["id"], HOST, info["port"])
    proc.stdin.write((json.dumps({"remoteId": stream.id, "port": sock.address[1]}) + "\n").encode())
    await proc.stdin.drain()
    # Wait until the node side has connected its stream: packets sent before are dropped there,
    # and the retransmission timeout plus the halved window would be charged to the transfer.
    ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    assert ready == {"event": "connected"}, ready
    return proc, stream


async def udx_python_to_js(total: int) -> float:
    sock = await UdxSocket.bind(HOST)
    proc, stream = await _js_peer(sock, "sink")
    try:
        data = _random_bytes(total)
        t0 = time.perf_counter()
        await _send(stream, data)
        await asyncio.wait_for(stream.read_all(), 120)  # the sink ends after reading everything
        elapsed = time.perf_counter() - t0
        return total / elapsed / 1e6
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await sock.close()


async def udx_js_to_python(total: int) -> float:
    sock = await UdxSocket.bind(HOST)
    proc, stream = await _js_peer(sock, "source", str(total))
    try:
        t0 = time.perf_counter()
        n = 0
        async with asyncio.timeout(120):
            while chunk := await stream.read():
                n += len(chunk)
        elapsed = time.perf_counter() - t0  # includes the node side generating random bytes
        assert n == total
        stream.end()
        return total / elapsed / 1e6
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await sock.close()


async def udx_js_to_js(total: int, mode: str = "bench") -> float:
    node = shutil.which("node")
    assert node is not None
    proc = await asyncio.create_subprocess_exec(
        node,
        str(INTEROP / "peers" / "udx_peer.js"),
        mode,
        str(total),
        cwd=INTEROP,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    result = json.loads(out.splitlines()[0])
    return float(result["bytes"]) / float(result["seconds"]) / 1e6


async def run(total: int, rounds: int) -> None:
    # The Python rows run interleaved, ``rounds`` times, and report medians: on a shared
    # machine one slow moment would otherwise decide a ratio.
    python_rows: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        ("tcp     python -> python (asyncio)", lambda: tcp_python(total)),
        ("udx     python -> python (1152 B payload)", lambda: udx_python(total, 1152)),
        ("udx     python -> python (1452 B payload)", lambda: udx_python(total, 1452)),
        ("udx     python -> python (2028 B, udx-native max)", lambda: udx_python(total, 2028)),
        ("udx     python -> python (32000 B, Python-only)", lambda: udx_python(total, 32000)),
    ]
    python_rows += [
        ("tcp     python -> python, two processes", lambda: two_processes("tcp", total)),
        ("udx     python -> python, two processes (2028 B)", lambda: two_processes("udx", total, 2028)),
        ("udx     python -> python relay -> python (1452 B)", lambda: udx_python(total, 1452, relayed=True)),
        ("udx     python -> python (1452 B, the same unrelayed)", lambda: udx_python(total, 1452)),
    ]
    if sys.platform.startswith("linux"):
        python_rows += [
            ("floor   udp gso/gro, 2028 B, no protocol", lambda: _now(udp_floor(total, 2028))),
            ("floor   udp gso/gro, 32000 B, no protocol", lambda: _now(udp_floor(total, 32000))),
        ]
    samples: list[list[float]] = [[] for _ in python_rows]
    for _ in range(rounds):
        for i, (_, measure) in enumerate(python_rows):
            samples[i].append(await measure())
    rows: list[tuple[str, float | None]] = [
        (name, statistics.median(values)) for (name, _), values in zip(python_rows, samples, strict=True)
    ]
    has_js = shutil.which("node") is not None and (INTEROP / "node_modules" / "udx-native").is_dir()
    js_rows: tuple[tuple[str, Callable[[int], Awaitable[float]]], ...] = (
        ("udx     python -> udx-native", udx_python_to_js),
        ("udx     udx-native -> python", udx_js_to_python),
        ("udx     udx-native -> udx-native", udx_js_to_js),
        ("udx     udx-native -> udx-native relay -> udx-native", lambda n: udx_js_to_js(n, "relaybench")),
    )
    for name, fn in js_rows:
        rows.append((name, await fn(total) if has_js else None))
    print(f"one-way bulk transfer of {total / 1e6:.1f} MB on loopback (Python rows: median of {rounds})")
    for name, mbps in rows:
        print(f"  {name:50s} {'skipped (no node)' if mbps is None else f'{mbps:8.1f} MB/s'}")
    tcp = rows[0][1]
    if tcp:
        compatible = max(v for _, v in rows[1:4] if v is not None)
        jumbo = rows[4][1] or 0.0
        print(f"  python udx / python tcp: {compatible / tcp:.2f} (udx-native-sized packets)")
        print(f"  python udx / python tcp: {jumbo / tcp:.2f} (32 kB Python-only packets)")
        apart_tcp, apart_udx = rows[5][1], rows[6][1]
        if apart_tcp and apart_udx:
            print(f"  python udx / python tcp: {apart_udx / apart_tcp:.2f} (2028 B, two processes)")
        relayed, unrelayed = rows[7][1], rows[8][1]
        if relayed and unrelayed:
            print(f"  python relayed / python direct: {relayed / unrelayed:.2f}")
        js_direct, js_relayed = rows[-2][1], rows[-1][1]
        if js_direct and js_relayed:
            print(f"  udx-native relayed / udx-native direct: {js_relayed / js_direct:.2f}")
        for name, value in rows[9 : len(python_rows)]:
            if value:
                size = name.split(",")[1].strip()
                print(f"  {size} floor / python tcp: {value / tcp:.2f} (the ceiling without any protocol)")


async def _now(value: float) -> float:
    return value


# --- two processes: the receiving end in a child, as a real peer would be ------------------------


async def _receive_in_child(kind: str, total: int, payload: int) -> None:
    """The child's side: count ``total`` bytes, answer one byte, linger briefly, exit."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    done: asyncio.Future[None] = loop.create_future()
    counter = _Counter(total, done)
    if kind == "tcp":
        server = await loop.create_server(lambda: counter, HOST, 0)
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    else:
        sock = await UdxSocket.bind(HOST)
        stream = sock.create_stream(max_payload=payload, mtu_probing=False)
        print(json.dumps({"port": sock.address[1], "id": stream.id}), flush=True)
        peer = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
        stream.connect(peer["id"], HOST, peer["port"])
        UdxTransport(stream, counter)
    await asyncio.wait_for(done, 120)
    transport = counter.transport
    assert isinstance(transport, asyncio.WriteTransport)
    transport.write(b"!")
    loop.call_later(0.5, finished.set_result, None)  # let the answer (and its acks) go out
    await finished


async def two_processes(kind: str, total: int, payload: int = 0) -> float:
    """Python -> Python with the receiver in its own process (so each end has a core, as
    between two machines): timed from the first write until the receiver's one-byte answer."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bench_udx",
        "--receiver",
        kind,
        str(total),
        str(payload),
        cwd=Path(__file__).resolve().parent.parent,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    sock: UdxSocket | None = None
    try:
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        if kind == "tcp":
            reader, writer = await asyncio.open_connection(HOST, info["port"])
        else:
            sock = await UdxSocket.bind(HOST)
            stream = sock.create_stream(max_payload=payload, mtu_probing=False)
            stream.connect(info["id"], HOST, info["port"])
            proc.stdin.write((json.dumps({"id": stream.id, "port": sock.address[1]}) + "\n").encode())
            await proc.stdin.drain()
            reader, writer = await open_connection(stream)
        await asyncio.sleep(0.1)  # the child has connected its end
        data = _random_bytes(total)
        t0 = time.perf_counter()
        await asyncio.wait_for(_pump(writer, data), 120)
        await asyncio.wait_for(reader.readexactly(1), 120)
        return total / (time.perf_counter() - t0) / 1e6
    finally:
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if sock is not None:
            await sock.close()


def main(quick: bool = False) -> None:
    asyncio.run(run(1_000_000, 1) if quick else run(50_000_000, 5))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--receiver", nargs=3, metavar=("KIND", "TOTAL", "PAYLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(_receive_in_child(args.receiver[0], int(args.receiver[1]), int(args.receiver[2])))
    else:
        main(quick=args.quick)
