"""Write groups: several writes in one transaction, each still all-or-nothing on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperlobby.core.storage import SqliteStorage
from hyperlobby.core.storage.base import Head, WriteBatch
from hyperlobby.errors import StorageError

K1, D1 = b"\x01" * 32, b"\x11" * 32


def test_group_commits_all_writes_together(tmp_path: Path) -> None:
    s = SqliteStorage(tmp_path / "s.db")
    core = s.create_core(K1, D1, None, None).id
    with s.group():
        s.write(core, WriteBatch(blocks=[(0, b"a")]))
        with s.group():  # nested groups join the outer one
            s.write(core, WriteBatch(blocks=[(1, b"b")]))
        other = SqliteStorage(tmp_path / "s.db")  # another connection sees nothing yet
        assert other.get_block(core, 0) is None
        other.close()
    s.close()
    reopened = SqliteStorage(tmp_path / "s.db")
    assert reopened.get_block(core, 0) == b"a"
    assert reopened.get_block(core, 1) == b"b"
    reopened.close()


def test_a_failed_write_inside_a_group_leaves_the_others(tmp_path: Path) -> None:
    s = SqliteStorage(tmp_path / "s.db")
    core = s.create_core(K1, D1, None, None).id
    with s.group():
        s.write(core, WriteBatch(blocks=[(0, b"kept")]))
        with pytest.raises(StorageError):  # fails after inserting its block: rolled back alone
            s.write(core + 100, WriteBatch(blocks=[(5, b"ghost")], head=Head(0, 1, 5, (), b"s")))
        s.write(core, WriteBatch(blocks=[(1, b"also kept")]))
    assert s.get_block(core, 0) == b"kept"
    assert s.get_block(core, 1) == b"also kept"
    assert s.get_block(core + 100, 5) is None
    s.close()


def test_an_exception_in_the_group_rolls_everything_back(tmp_path: Path) -> None:
    s = SqliteStorage(tmp_path / "s.db")
    core = s.create_core(K1, D1, None, None).id
    with pytest.raises(RuntimeError), s.group():
        s.write(core, WriteBatch(blocks=[(0, b"gone")]))
        raise RuntimeError("caller failed")
    assert s.get_block(core, 0) is None
    s.write(core, WriteBatch(blocks=[(0, b"later")]))  # the storage is still usable
    assert s.get_block(core, 0) == b"later"
    s.close()


def test_nodes_staged_in_a_group_are_readable_and_committed(tmp_path: Path) -> None:
    from hyperlobby.core.proofs import TreeNode

    s = SqliteStorage(tmp_path / "s.db")
    core = s.create_core(K1, D1, None, None).id
    n5 = TreeNode(5, 2, b"\x05" * 32)  # a parent whose row is partial: merged, not written whole
    n2 = TreeNode(2, 1, b"\x02" * 32)
    with s.group():
        s.write(core, WriteBatch(nodes=[n5]))
        assert s.get_node(core, 5) == n5  # read back from the staged row
        s.write(core, WriteBatch(nodes=[n2]))
        assert s.get_node(core, 2) == n2
        with pytest.raises(StorageError):  # a failing write drops what it would have staged
            s.write(
                core + 100, WriteBatch(nodes=[TreeNode(9, 1, b"\x09" * 32)], head=Head(0, 1, 1, (), b"s"))
            )
        assert s.get_node(core + 100, 9) is None
    s.close()
    reopened = SqliteStorage(tmp_path / "s.db")
    assert reopened.get_node(core, 5) == n5
    assert reopened.get_node(core, 2) == n2
    reopened.close()


@pytest.mark.parametrize("seed", range(8))
def test_grouped_writes_read_back_like_memory(tmp_path: Path, seed: int) -> None:
    """Random writes in random groups: what a group stages is readable at once, a write that is
    not a plain addition sees the staged ones applied first, and all of it is committed."""
    import random

    from hyperlobby.core import flat_tree
    from hyperlobby.core.proofs import TreeNode
    from hyperlobby.core.storage import MemoryStorage

    rng = random.Random(seed)
    mem = MemoryStorage()
    disk = SqliteStorage(tmp_path / "g.db")
    a = mem.create_core(K1, D1, None, None).id
    b = disk.create_core(K1, D1, None, None).id
    top = 40

    def rnode(index: int) -> TreeNode:
        return TreeNode(index, rng.randrange(1 << 40), rng.randbytes(32))

    def random_batch() -> WriteBatch:
        batch = WriteBatch()
        kind = rng.random()
        if kind < 0.5:
            for _ in range(rng.randrange(0, 3)):
                batch.blocks.append((rng.randrange(top), rng.randbytes(rng.randrange(1, 9))))
            for _ in range(rng.randrange(0, 6)):
                batch.nodes.append(rnode(rng.randrange(2 * top)))
            if rng.random() < 0.3:  # a whole node group, as an append writes it
                g = rng.randrange(top)
                pos = 2 * g
                batch.nodes.append(rnode(pos))
                for _ in range(flat_tree.depth(g)):
                    pos = flat_tree.parent(pos)
                    batch.nodes.append(rnode(pos))
            if rng.random() < 0.4:
                batch.head = Head(0, rng.randrange(top), rng.randrange(1000), (), rng.randbytes(64), 3)
            if rng.random() < 0.2:
                batch.bitfield_pages = {rng.randrange(3): rng.randbytes(8)}
        elif kind < 0.65:
            batch.truncate_blocks_from = rng.randrange(top)
            batch.truncate_nodes_from = rng.randrange(2 * top)
        elif kind < 0.8:
            batch.delete_nodes = [rng.randrange(2 * top) for _ in range(rng.randrange(1, 4))]
        else:
            batch.user_data = {"x": rng.randbytes(4)}
            batch.nodes.append(rnode(rng.randrange(2 * top)))
        return batch

    def same() -> None:
        for i in range(2 * top):
            assert disk.get_node(b, i) == mem.get_node(a, i), i
        for i in range(top):
            assert disk.get_block(b, i) == mem.get_block(a, i), i
            assert disk.has_block(b, i) == mem.has_block(a, i), i
        assert disk.get_head(b) == mem.get_head(a)
        assert disk.get_bitfield_pages(b) == mem.get_bitfield_pages(a)
        assert disk.get_user_data(b, "x") == mem.get_user_data(a, "x")

    for _ in range(12):
        with disk.group():
            for _ in range(rng.randrange(1, 8)):
                batch = random_batch()
                mem.write(a, batch)
                disk.write(b, batch)
                same()
        same()
    disk.close()
    disk = SqliteStorage(tmp_path / "g.db")
    same()
    disk.close()
