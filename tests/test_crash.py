"""Crash safety: kill -9 a writer at random moments; every reported append must survive and verify.

The child appends (single blocks and batches, small and 64 KiB) to an SQLite store and prints the
new length after each ``append`` returns. The parent kills it with SIGKILL at a random moment,
reopens the store and checks that (a) the core holds at least the last reported length, (b) every
block is the expected content and hashes to its stored leaf, (c) the stored roots are the tree of
those blocks, and (d) the signature verifies. Then the next child continues on the same file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperlobby.core.merkle import MerkleTree
from hyperlobby.core.proofs import TreeNode
from hyperlobby.core.store import Store
from hyperlobby.crypto.hashes import leaf_hash
from hyperlobby.crypto.signing import Verifier

CHILD = r"""
import sys
from hyperlobby.core.store import Store

def block(i):
    size = 65536 if i % 97 == 0 else 1 + (i * 31) % 700
    return (i.to_bytes(8, "little") * (size // 8 + 1))[:size]

store = Store(sys.argv[1], primary_key=b"\x07" * 32, durability=sys.argv[2])
core = store.get(name="crash")
out = sys.stdout
n = core.length
while True:
    if n % 5 == 0:
        batch = [block(i) for i in range(n, n + 7)]
        n = core.append(batch)
    else:
        n = core.append(block(n))
    out.write(f"{n}\n")
    out.flush()
"""


def expected_block(i: int) -> bytes:
    size = 65536 if i % 97 == 0 else 1 + (i * 31) % 700
    return (i.to_bytes(8, "little") * (size // 8 + 1))[:size]


class _NoNodes:
    def get_node(self, index: int) -> TreeNode | None:
        return None


def check_store(path: Path, reported: int) -> int:
    with Store(path) as store:
        core = store.get(name="crash")
        assert core.length >= reported, f"lost appends: stored {core.length} < reported {reported}"
        fresh = MerkleTree(_NoNodes())
        values = [core.get(i) for i in range(core.length)]
        for i, value in enumerate(values):
            assert value == expected_block(i), f"block {i} has the wrong content"
            stored_leaf = core.get_node(2 * i)
            assert stored_leaf is not None and stored_leaf.hash == leaf_hash(value)
        if values:
            fresh.apply(fresh.append(values))
        assert tuple(fresh.roots) == core.roots
        assert core.byte_length == sum(len(v) for v in values)
        if core.length:
            assert core.signature is not None
            assert Verifier(core.manifest, core.key).verify(
                core.tree_hash(), core.length, core.fork, core.signature
            )
        return core.length


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["normal"])
def test_kill_9_never_loses_a_returned_append(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(1234)
    env = dict(os.environ)
    deadline = time.monotonic() + 18
    kills = 0
    length = 0
    for round_ in range(15):
        if time.monotonic() > deadline:
            break
        log = tmp_path / f"child-{round_}.log"
        with log.open("wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path), durability], stdout=out, env=env
            )
            # wait until the child has appended at least once, then a random extra moment
            start = time.monotonic()
            while log.stat().st_size == 0 and child.poll() is None and time.monotonic() - start < 10:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.25))
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL, "child exited on its own (see its log)"
        kills += 1
        lines = log.read_bytes().split(b"\n")
        complete = [int(x) for x in lines[:-1] if x]  # the last piece may be a torn line
        reported = max(complete, default=length)
        assert reported >= length
        length = check_store(path, reported)
    assert kills >= 10
    assert length > 0
