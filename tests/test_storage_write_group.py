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
