"""SQLite node groups and background checkpoints: the same results as the in-memory backend.

The SQLite backend packs the nodes that end at one block into one row and rewrites rows when
nodes are merged or deleted; these tests drive both backends through random sequences of
whole-group writes (what an append produces), piecemeal writes (proofs), truncations at any
node index and deletions, and require every node to read back identically.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

from hyperlobby.core import flat_tree
from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.merkle import MerkleTree
from hyperlobby.core.proofs import TreeNode
from hyperlobby.core.storage import MemoryStorage, SqliteStorage, WriteBatch
from hyperlobby.core.storage import sqlite as sqlite_backend
from hyperlobby.core.store import Store
from hyperlobby.crypto.hashes import leaf_hash, parent_hash
from hyperlobby.crypto.signing import Verifier
from hyperlobby.errors import StorageError

K = bytes(range(32))
D = bytes(range(32, 64))


class _NoNodes:
    def get_node(self, index: int) -> TreeNode | None:
        return None


def fresh_node(blocks: list[bytes], index: int) -> TreeNode:
    """Node ``index`` of the tree over ``blocks``, computed from scratch."""
    if not index & 1:
        return TreeNode(index, len(blocks[index // 2]), leaf_hash(blocks[index // 2]))
    left, right = flat_tree.children(index) or (0, 0)
    a, b = fresh_node(blocks, left), fresh_node(blocks, right)
    return TreeNode(index, a.size + b.size, parent_hash(a, b))


def rnode(rng: random.Random, index: int) -> TreeNode:
    return TreeNode(index, rng.randrange(1 << 40), rng.randbytes(32))


def whole_group(rng: random.Random, g: int) -> list[TreeNode]:
    """The nodes an append of block ``g`` creates: the leaf, then its completed parents."""
    out = [rnode(rng, 2 * g)]
    pos = 2 * g
    for _ in range(flat_tree.depth(g)):
        pos = flat_tree.parent(pos)
        out.append(rnode(rng, pos))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_node_groups_match_memory(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    mem = MemoryStorage()
    disk = SqliteStorage(tmp_path / "g.db")
    a = mem.create_core(K, D, None, None).id
    b = disk.create_core(K, D, None, None).id
    top = 70
    for _ in range(40):
        kind = rng.random()
        batch = WriteBatch()
        if kind < 0.35:
            start = rng.randrange(top)
            for g in range(start, start + rng.randrange(1, 6)):
                batch.nodes.extend(whole_group(rng, g))
        elif kind < 0.6:
            batch.nodes.extend(rnode(rng, rng.randrange(2 * top)) for _ in range(rng.randrange(1, 8)))
        elif kind < 0.7:
            # whole groups and pieces of the same groups in one batch, in any order: last one wins
            g = rng.randrange(top)
            pieces = [n.index for n in whole_group(rng, g)]
            batch.nodes.append(rnode(rng, rng.choice(pieces)))
            batch.nodes.extend(whole_group(rng, g))
            batch.nodes.append(rnode(rng, rng.choice(pieces)))
            batch.nodes.extend(whole_group(rng, g)[: rng.randrange(1, len(pieces) + 1)])
            batch.nodes.extend(whole_group(rng, g + 1))
        elif kind < 0.85:
            batch.truncate_nodes_from = rng.randrange(2 * top + 2)
        else:
            batch.delete_nodes = [rng.randrange(2 * top) for _ in range(rng.randrange(1, 6))]
        mem.write(a, batch)
        disk.write(b, batch)
        for i in range(2 * top + 2):
            assert disk.get_node(b, i) == mem.get_node(a, i), (i, batch)
    disk.close()
    disk = SqliteStorage(tmp_path / "g.db")
    for i in range(2 * top + 2):
        assert disk.get_node(b, i) == mem.get_node(a, i)
    disk.close()


def test_nodes_of_other_cores_are_untouched(tmp_path: Path) -> None:
    rng = random.Random(1)
    s = SqliteStorage(tmp_path / "g.db")
    a = s.create_core(K, D, None, None).id
    b = s.create_core(b"\x01" * 32, b"\x02" * 32, None, None).id
    na = [n for g in range(8) for n in whole_group(rng, g)]
    nb = [n for g in range(8) for n in whole_group(rng, g)]
    s.write(a, WriteBatch(nodes=na))
    s.write(b, WriteBatch(nodes=nb))
    s.write(a, WriteBatch(truncate_nodes_from=0))
    assert all(s.get_node(a, n.index) is None for n in na)
    assert all(s.get_node(b, n.index) == n for n in nb)
    s.close()


def test_node_beyond_the_largest_tree_is_refused(tmp_path: Path) -> None:
    s = SqliteStorage(tmp_path / "g.db")
    core = s.create_core(K, D, None, None).id
    with pytest.raises(StorageError):
        s.write(core, WriteBatch(nodes=[TreeNode((1 << 41) - 1, 1, b"h" * 32)]))
    assert s.get_node(core, (1 << 41) - 1) is None
    assert s.get_node(core, -1) is None
    s.close()


def test_version_1_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SqliteStorage(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="schema version"):
        SqliteStorage(path)


def test_background_checkpoints_keep_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many checkpoint rounds (tiny thresholds) while appending: nothing is lost or torn."""
    monkeypatch.setattr(sqlite_backend, "_CHECKPOINT_BYTES", 64 << 10)
    monkeypatch.setattr(sqlite_backend, "_TAIL_BYTES", 32 << 10)
    path = tmp_path / "c.db"
    store = Store(path, primary_key=b"\x01" * 32)
    core = store.get(name="c")
    blocks = [bytes([i % 251]) * (1 + (i * 977) % 9000) for i in range(600)]
    for i in range(0, 400, 10):
        core.append(blocks[i : i + 10])
    for blk in blocks[400:]:
        core.append(blk)
    length = core.length
    store.close()
    store = Store(path, primary_key=b"\x01" * 32)
    core2: Hypercore = store.get(name="c")
    assert core2.length == length
    assert [core2.get(i) for i in range(length)] == blocks
    for i, value in enumerate(blocks):
        leaf = core2.get_node(2 * i)
        assert leaf is not None and leaf.hash == leaf_hash(value)
    fresh = MerkleTree(_NoNodes())
    fresh.apply(fresh.append(blocks))
    assert tuple(fresh.roots) == core2.roots
    # every stored parent is the one a fresh tree computes
    for index in range(2 * length - 1):
        if flat_tree.right_span(index) < 2 * length:
            node = core2.get_node(index)
            assert node is not None and node == fresh_node(blocks, index)
    assert core2.signature is not None
    assert Verifier(core2.manifest, core2.key).verify(core2.tree_hash(), length, core2.fork, core2.signature)
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()


def test_wal_restarts_when_the_writer_outpaces_the_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remainder never small enough (tail threshold 0) still lets the WAL start over once it
    holds ``_RESTART_BYTES``. Counted as resets of the writer's WAL estimate, so the test does
    not depend on how fast this disk syncs: it appends until three restarts (at most 60 s)."""
    monkeypatch.setattr(sqlite_backend, "_CHECKPOINT_BYTES", 64 << 10)
    monkeypatch.setattr(sqlite_backend, "_TAIL_BYTES", 0)
    monkeypatch.setattr(sqlite_backend, "_RESTART_BYTES", 512 << 10)
    path = tmp_path / "r.db"
    store = Store(path, primary_key=b"\x02" * 32)
    storage = store.storage
    assert isinstance(storage, SqliteStorage)
    core = store.get(name="r")
    block = b"x" * 16384
    restarts = 0
    last = 0
    deadline = time.monotonic() + 60
    while restarts < 3 and time.monotonic() < deadline:
        core.append(block)
        if storage._wal_bytes < last:
            restarts += 1
        last = storage._wal_bytes
    assert restarts == 3
    assert core.get(core.length - 1) == block
    store.close()
