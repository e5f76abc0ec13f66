"""Storage backends: the same contract for SQLite and memory (atomic batches, reopen, bad input)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlobby.core.proofs import TreeNode
from hyperlobby.core.storage import Head, MemoryStorage, SqliteStorage, StorageBackend, WriteBatch
from hyperlobby.errors import StorageError

K1 = bytes(range(32))
D1 = bytes(range(32, 64))
K2 = b"\x02" * 32
D2 = b"\x03" * 32


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    store: StorageBackend = MemoryStorage() if request.param == "memory" else SqliteStorage(tmp_path / "s.db")
    yield store
    store.close()


def node(i: int, size: int = 1) -> TreeNode:
    return TreeNode(i, size, bytes([i % 256]) * 32)


def test_primary_key_is_kept_once(backend: StorageBackend) -> None:
    assert backend.get_primary_key() is None
    assert backend.set_primary_key(b"\x01" * 32) == b"\x01" * 32
    assert backend.set_primary_key(b"\x02" * 32) == b"\x01" * 32
    with pytest.raises(StorageError):
        backend.set_primary_key(b"short")


def test_cores_lookup_and_duplicates(backend: StorageBackend) -> None:
    a = backend.create_core(K1, D1, b"manifest", None)
    b = backend.create_core(K2, D2, None, b"s" * 64)
    assert a.id != b.id
    assert backend.find_core(K1) == a
    assert backend.find_core_by_discovery_key(D2) == b
    assert backend.find_core(b"\x09" * 32) is None
    assert [r.key for r in backend.list_cores()] == [K1, K2]
    with pytest.raises(StorageError):
        backend.create_core(K1, b"\x07" * 32, None, None)
    updated = backend.update_core_auth(b.id, b"m2", None)
    assert updated.manifest == b"m2" and updated.secret_key == b"s" * 64


def test_batch_roundtrip_and_truncate(backend: StorageBackend) -> None:
    core = backend.create_core(K1, D1, None, None).id
    head = Head(0, 3, 6, (node(1, 4), node(4, 2)), b"sig")
    backend.write(
        core,
        WriteBatch(
            blocks=[(0, b"aa"), (1, b"bb"), (2, b"cc")],
            nodes=[node(0, 2), node(2, 2), node(1, 4), node(4, 2)],
            head=head,
            bitfield_pages={0: b"\x07"},
            user_data={"x": b"1"},
        ),
    )
    assert backend.get_head(core) == head
    assert backend.get_block(core, 1) == b"bb"
    assert backend.get_block(core, 3) is None
    assert backend.has_block(core, 2) and not backend.has_block(core, 3)
    assert backend.get_node(core, 1) == node(1, 4)
    assert backend.get_bitfield_pages(core) == {0: b"\x07"}
    assert backend.get_user_data(core, "x") == b"1"
    backend.write(
        core,
        WriteBatch(truncate_blocks_from=1, delete_nodes=[1, 2, 4], head=Head(1, 1, 2, (node(0, 2),), b"s2")),
    )
    assert backend.get_block(core, 0) == b"aa"
    assert not backend.has_block(core, 1) and not backend.has_block(core, 2)
    assert backend.get_node(core, 1) is None and backend.get_node(core, 0) == node(0, 2)
    assert backend.get_head(core).fork == 1
    backend.write(core, WriteBatch(user_data={"x": None}))
    assert backend.get_user_data(core, "x") is None


def test_cores_do_not_share_blocks(backend: StorageBackend) -> None:
    a = backend.create_core(K1, D1, None, None).id
    b = backend.create_core(K2, D2, None, None).id
    backend.write(a, WriteBatch(blocks=[(0, b"a")]))
    backend.write(b, WriteBatch(blocks=[(0, b"b")]))
    backend.write(a, WriteBatch(truncate_blocks_from=0))
    assert backend.get_block(a, 0) is None and backend.get_block(b, 0) == b"b"


@pytest.mark.parametrize(
    "batch",
    [
        WriteBatch(blocks=[(-1, b"x")]),
        WriteBatch(nodes=[TreeNode(0, 1, b"short")]),
        WriteBatch(head=Head(length=-1)),
        WriteBatch(delete_nodes=[-5]),
        WriteBatch(blocks=[(0, "text")]),  # type: ignore[list-item]
    ],
)
def test_bad_batches_write_nothing(backend: StorageBackend, batch: WriteBatch) -> None:
    core = backend.create_core(K1, D1, None, None).id
    backend.write(core, WriteBatch(blocks=[(0, b"keep")], head=Head(0, 1, 4, (node(0, 4),), b"s")))
    with pytest.raises(StorageError):
        backend.write(
            core,
            WriteBatch(
                blocks=[(1, b"new"), *batch.blocks],
                nodes=batch.nodes,
                head=batch.head,
                delete_nodes=batch.delete_nodes,
            ),
        )
    assert backend.get_block(core, 1) is None
    assert backend.get_head(core) == Head(0, 1, 4, (node(0, 4),), b"s")


def test_closed_backend_refuses(backend: StorageBackend) -> None:
    backend.close()
    with pytest.raises(StorageError):
        backend.get_head(1)


def test_sqlite_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = SqliteStorage(path)
    s.set_primary_key(b"\x05" * 32)
    core = s.create_core(K1, D1, b"m", b"k" * 64).id
    s.write(
        core,
        WriteBatch(blocks=[(0, b"x" * 100_000)], nodes=[node(0)], head=Head(0, 1, 100_000, (node(0),), b"s")),
    )
    s.close()
    s = SqliteStorage(path, durability="full")
    assert s.get_primary_key() == b"\x05" * 32
    assert s.get_block(core, 0) == b"x" * 100_000
    assert s.get_head(core).roots == (node(0),)
    assert s.find_core(K1) is not None and s.find_core(K1).secret_key == b"k" * 64  # type: ignore[union-attr]
    s.close()


def test_sqlite_is_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SqliteStorage(path).close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    raw.execute("PRAGMA user_version = 99")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="schema version"):
        SqliteStorage(path)


def test_sqlite_refuses_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (x)")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="not a hyperlobby store"):
        SqliteStorage(path)


def test_sqlite_bad_durability(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStorage(tmp_path / "x.db", durability="fast")  # type: ignore[arg-type]


def test_sqlite_failed_transaction_rolls_back(tmp_path: Path) -> None:
    s = SqliteStorage(tmp_path / "s.db")
    core = s.create_core(K1, D1, None, None).id
    # a head update on a core id that does not exist fails after the blocks were inserted
    with pytest.raises(StorageError):
        s.write(core + 100, WriteBatch(blocks=[(0, b"ghost")], head=Head(0, 1, 5, (), b"s")))
    assert s.get_block(core + 100, 0) is None
    s.write(core, WriteBatch(blocks=[(0, b"ok")]))
    assert s.get_block(core, 0) == b"ok"
    s.close()
