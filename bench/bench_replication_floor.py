"""The least CPU a Python reader of 64 KiB blocks must spend per block on this machine.

Why this exists: issue 3 asks Python->Python replication of 64 KiB blocks to run at twice the
JS->JS rate. Whether that is possible at all depends on primitives no Python code can make
cheaper (kernel copies, libsodium, hashlib, SQLite's WAL), so this module measures them alone,
each in a tight loop, and sets their sum against the JS->JS rate measured in the same run.

A reader must, per block: read its frame from the socket, decrypt it (secretstream), hash it
(the Merkle leaf, BLAKE2b), insert it into SQLite (WAL, the design's store) and later copy it
from the WAL into the database (the checkpoint; SQLite's WAL writes every page twice). The
server must read the block, encrypt it and send it. Every number is CPU time (user + system,
so the kernel's share of a ``write`` counts), the median of a few rounds.

Run: ``python -m bench bench_replication_floor`` (``--quick`` for a smoke test).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from hyperlobby.crypto.hashes import leaf_hash

BLOCK = 64 * 1024
GROUP = 4  # blocks per transaction: about what one socket read completes at this size


def _cpu_per_call(run: Callable[[int], None], n: int, rounds: int = 3) -> float:
    """Median CPU seconds per call of ``run(n)`` divided by ``n``."""
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        run(n)
        samples.append((time.process_time() - start) / n)
    return statistics.median(samples)


def secretstream_costs(n: int) -> tuple[float, float]:
    """(encrypt, decrypt) CPU per 64 KiB message through PyNaCl's secretstream bindings."""
    key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
    push_state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(push_state, key)
    pull_state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(pull_state, header, key)
    block = os.urandom(BLOCK)
    sealed = [sodium.crypto_secretstream_xchacha20poly1305_push(push_state, block) for _ in range(n)]

    def push(k: int) -> None:
        for _ in range(k):
            sodium.crypto_secretstream_xchacha20poly1305_push(push_state, block)

    def pull(k: int) -> None:
        for i in range(k):
            sodium.crypto_secretstream_xchacha20poly1305_pull(pull_state, sealed[i])

    encrypt = _cpu_per_call(push, n)
    start = time.process_time()
    pull(n)  # the pull state moves on, so the sealed messages are good for one pass only
    decrypt = (time.process_time() - start) / n
    return encrypt, decrypt


def hash_cost(n: int) -> float:
    block = os.urandom(BLOCK)

    def run(k: int) -> None:
        for _ in range(k):
            leaf_hash(block)

    return _cpu_per_call(run, n)


def socket_costs(n: int) -> tuple[float, float]:
    """(send, receive) CPU per 64 KiB over loopback TCP, each side timed on its own thread."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    result: dict[str, float] = {}

    def receive() -> None:
        conn, _ = server.accept()
        buf = bytearray(256 * 1024)
        start = time.thread_time()
        got = 0
        while got < n * BLOCK:
            k = conn.recv_into(buf)
            if not k:
                break
            got += k
        result["recv"] = (time.thread_time() - start) / n
        conn.close()

    reader = threading.Thread(target=receive)
    reader.start()
    client = socket.create_connection(("127.0.0.1", port))
    block = os.urandom(BLOCK)
    start = time.thread_time()
    for _ in range(n):
        client.sendall(block)
    send = (time.thread_time() - start) / n
    client.close()
    reader.join(timeout=60)
    server.close()
    return send, result.get("recv", float("nan"))


def sqlite_costs(n: int, page_size: int) -> tuple[float, float, float]:
    """(insert, checkpoint, read) CPU per 64 KiB block with the design's SQLite settings
    (WAL, ``synchronous=NORMAL``), ``GROUP`` blocks per transaction, on the default temp dir."""
    tmp = Path(tempfile.mkdtemp(prefix="hl-floor-"))
    path = tmp / "floor.db"
    try:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute(f"PRAGMA page_size = {page_size}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoint timed on its own below
        db.execute("CREATE TABLE blocks (k INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        block = os.urandom(BLOCK)
        start = time.process_time()
        for first in range(0, n, GROUP):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO blocks (k, data) VALUES (?, ?)",
                [(k, block) for k in range(first, min(n, first + GROUP))],
            )
            db.execute("COMMIT")
        insert = (time.process_time() - start) / n
        start = time.process_time()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        checkpoint = (time.process_time() - start) / n
        start = time.process_time()
        for k in range(n):
            db.execute("SELECT data FROM blocks WHERE k = ?", (k,)).fetchone()
        read = (time.process_time() - start) / n
        db.close()
        return insert, checkpoint, read
    finally:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()


def js_reference(count: int) -> float | None:
    """JS->JS blocks/s for ``count`` x 64 KiB in this run, or None without node."""
    from bench import bench_replication

    try:
        results = bench_replication.run_case(count, BLOCK, ["JS -> JS"])
    except (OSError, FileNotFoundError):
        return None
    ref = results.get("JS -> JS")
    return ref["blocks"] / ref["seconds"] if ref else None


def main(quick: bool = False) -> dict[str, Any]:
    n = 50 if quick else 2000
    encrypt, decrypt = secretstream_costs(n)
    blake = hash_cost(n)
    send, recv = socket_costs(n)
    rows: dict[str, Any] = {}
    print(f"CPU per 64 KiB block (median of 3 rounds of {n}), this machine:")
    print(f"  socket send (loopback TCP)      {send * 1e6:7.0f} us")
    print(f"  socket receive                  {recv * 1e6:7.0f} us")
    print(f"  secretstream encrypt            {encrypt * 1e6:7.0f} us")
    print(f"  secretstream decrypt            {decrypt * 1e6:7.0f} us")
    print(f"  BLAKE2b leaf hash               {blake * 1e6:7.0f} us")
    for page_size in (4096, 16384):
        insert, checkpoint, read = sqlite_costs(n, page_size)
        reader = recv + decrypt + blake + insert + checkpoint
        server = read + encrypt + send
        rows[str(page_size)] = {"reader": reader, "server": server}
        print(
            f"  SQLite {page_size // 1024:2d} KiB pages: insert {insert * 1e6:5.0f} us, "
            f"checkpoint {checkpoint * 1e6:5.0f} us, read {read * 1e6:4.0f} us"
            f"  -> reader floor {reader * 1e6:5.0f} us, server floor {server * 1e6:4.0f} us"
        )
    rate = js_reference(300 if quick else 3000)
    if rate is None:
        print("  JS->JS reference: skipped (no node / interop/node_modules)")
        return rows
    budget = 1 / (2 * rate)
    print(
        f"  JS->JS in this run: {rate:.0f} blocks/s ({1e6 / rate:.0f} us per block); twice that "
        f"leaves {budget * 1e6:.0f} us per block for the reader, and {2 * budget * 1e6:.0f} us of "
        "CPU per block for reader + server together on 2 cores"
    )
    rows["js_blocks_per_s"] = rate
    return rows


if __name__ == "__main__":
    main()
