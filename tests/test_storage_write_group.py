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
