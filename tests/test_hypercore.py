"""Hypercore behaviour: reads, writes, errors, replication entry points, growth events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hyperlobby.core.hypercore import AppendEvent, Hypercore
from hyperlobby.core.proofs import (
    BlockRequest,
    DataBlock,
    DataUpgrade,
    Proof,
    ProofRequest,
    TreeNode,
    UpgradeRequest,
)
from hyperlobby.core.storage import MemoryStorage, SqliteStorage, StorageBackend
from hyperlobby.crypto.keys import key_pair
from hyperlobby.errors import BlockNotAvailableError, CoreError, VerificationError

SEED = b"\x00" * 32


def writer(storage: StorageBackend | None = None, compat: bool = False) -> Hypercore:
    return Hypercore.create(storage, key_pair(SEED), compat=compat)


def reader_of(core: Hypercore) -> Hypercore:
    storage = MemoryStorage()
    reader = Hypercore.open(storage, core.key)
    if core.manifest is not None and not core.compat:
        reader.set_manifest(core.manifest)
    return reader


def snapshot(core: Hypercore) -> tuple[object, ...]:
    blocks = tuple(core.get(i) if core.has(i) else None for i in range(core.length + 2))
    return (core.head(), blocks)


def test_append_get_has() -> None:
    core = writer()
    assert core.append(b"hello") == 1
    assert core.append([b"world", bytearray(b"!")]) == 3
    assert core.append([]) == 3
    assert [core.get(i) for i in range(3)] == [b"hello", b"world", b"!"]
    assert core.has(2) and not core.has(3) and not core.has(-1)
    assert core.byte_length == 11
    with pytest.raises(BlockNotAvailableError):
        core.get(3)
    with pytest.raises(CoreError):
        core.get(-1)


@pytest.mark.parametrize("bad", ["text", [b"ok", "text"], [b"ok", 5], 7])
def test_append_rejects_non_bytes_without_change(bad: object) -> None:
    core = writer()
    core.append(b"a")
    before = snapshot(core)
    with pytest.raises((CoreError, TypeError)):
        core.append(bad)  # type: ignore[arg-type]
    assert snapshot(core) == before


def test_read_only_core_refuses_writes() -> None:
    core = writer()
    core.append(b"x")
    reader = reader_of(core)
    assert not reader.writable and reader.length == 0
    with pytest.raises(CoreError, match="not writable"):
        reader.append(b"y")
    with pytest.raises(CoreError, match="not writable"):
        reader.truncate(0)


def test_truncate_bounds_and_fork() -> None:
    core = writer()
    core.append([b"a", b"b", b"c"])
    with pytest.raises(CoreError):
        core.truncate(4)
    with pytest.raises(CoreError):
        core.truncate(-1)
    core.truncate(1)
    assert (core.length, core.fork, core.byte_length) == (1, 1, 1)
    assert not core.has(1)
    with pytest.raises(BlockNotAvailableError):
        core.get(1)
    core.append(b"z")
    assert core.get(1) == b"z"


def test_closed_core() -> None:
    core = writer()
    core.close()
    core.close()
    assert core.closed and not core.writable
    with pytest.raises(CoreError, match="closed"):
        core.append(b"x")
    with pytest.raises(CoreError, match="closed"):
        core.get(0)


def test_create_refuses_public_only_key_pair_and_duplicates() -> None:
    kp = key_pair(SEED)
    from hyperlobby.crypto.keys import KeyPair

    with pytest.raises(CoreError):
        Hypercore.create(key_pair=KeyPair(kp.public_key))
    storage = MemoryStorage()
    Hypercore.create(storage, kp)
    with pytest.raises(CoreError, match="already stored"):
        Hypercore.create(storage, kp)


def test_open_by_key_options() -> None:
    storage = MemoryStorage()
    with pytest.raises(CoreError):
        Hypercore.open(storage, b"short")
    with pytest.raises(CoreError):
        Hypercore.open(storage, b"\x01" * 32, create=False)
    core = Hypercore.open(storage, b"\x01" * 32)
    assert core.manifest is None and not core.writable


def test_reopen_from_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    storage = SqliteStorage(path)
    core = writer(storage)
    core.append([b"a" * 100, b"b" * 5000])
    core.truncate(1)
    core.append(b"c")
    head = core.head()
    key = core.key
    storage.close()
    again = Hypercore.open(SqliteStorage(path), key, create=False)
    assert again.head() == head
    assert again.writable
    assert [again.get(0), again.get(1)] == [b"a" * 100, b"c"]
    assert again.append(b"d") == 3


def test_user_data(tmp_path: Path) -> None:
    core = writer(SqliteStorage(tmp_path / "u.db"))
    assert core.get_user_data("k") is None
    core.set_user_data("k", b"v")
    assert core.get_user_data("k") == b"v"
    core.set_user_data("k", None)
    assert core.get_user_data("k") is None


# --- replication entry points ----------------------------------------------------------------------


@pytest.mark.parametrize("compat", [False, True])
def test_reader_syncs_from_writer_proofs(compat: bool) -> None:
    core = writer(compat=compat)
    blocks = [bytes([i]) * (i + 1) for i in range(11)]
    core.append(blocks)
    reader = reader_of(core)
    events: list[AppendEvent] = []
    reader.on_append(events.append)
    proof = core.proof(ProofRequest(fork=0, upgrade=UpgradeRequest(0, 11)))
    update = reader.verify_and_store(proof)
    assert update.upgraded and reader.length == 11 and reader.tree_hash() == core.tree_hash()
    assert reader.signature == core.signature
    assert events == [AppendEvent(11, core.byte_length, 0)]
    for i in (5, 0, 10, 3):
        assert not reader.has(i)
        p = core.proof(ProofRequest(fork=0, block=BlockRequest(i, reader.missing_nodes(i))))
        reader.verify_and_store(p)
        assert reader.get(i) == blocks[i]
    # a block plus an upgrade in one proof
    core.append(b"tail")
    p = core.proof(ProofRequest(fork=0, block=BlockRequest(11, 0), upgrade=UpgradeRequest(11, 1)))
    reader.verify_and_store(p)
    assert reader.length == 12 and reader.get(11) == b"tail"


def _reader_with_upgrade() -> tuple[Hypercore, Hypercore]:
    core = writer()
    core.append([b"a", b"b", b"c", b"d", b"e"])
    reader = reader_of(core)
    reader.verify_and_store(core.proof(ProofRequest(fork=0, upgrade=UpgradeRequest(0, 5))))
    return core, reader


def test_forged_block_proof_changes_nothing() -> None:
    core, reader = _reader_with_upgrade()
    good = core.proof(ProofRequest(fork=0, block=BlockRequest(2, reader.missing_nodes(2))))
    assert good.block is not None
    before = snapshot(reader)
    forged = Proof(fork=0, block=DataBlock(2, b"evil", good.block.nodes))
    with pytest.raises(VerificationError):
        reader.verify_and_store(forged)
    assert snapshot(reader) == before
    wrong_sibling = Proof(
        fork=0,
        block=DataBlock(2, b"c", tuple(TreeNode(n.index, n.size, b"\x00" * 32) for n in good.block.nodes)),
    )
    with pytest.raises(VerificationError):
        reader.verify_and_store(wrong_sibling)
    assert snapshot(reader) == before
    reader.verify_and_store(good)
    assert reader.get(2) == b"c"


def test_forged_signature_and_stale_fork_change_nothing() -> None:
    core = writer()
    core.append([b"a", b"b", b"c"])
    reader = reader_of(core)
    good = core.proof(ProofRequest(fork=0, upgrade=UpgradeRequest(0, 3)))
    assert good.upgrade is not None
    before = snapshot(reader)
    sig = bytearray(good.upgrade.signature)
    sig[10] ^= 1
    up = good.upgrade
    bad_sig = Proof(
        fork=0, upgrade=DataUpgrade(up.start, up.length, up.nodes, up.additional_nodes, bytes(sig))
    )
    with pytest.raises(VerificationError):
        reader.verify_and_store(bad_sig)
    assert snapshot(reader) == before
    # a proof signed for another fork
    core.truncate(3)
    stale = core.proof(ProofRequest(fork=1, upgrade=UpgradeRequest(0, 3)))
    with pytest.raises(VerificationError):
        reader.verify_and_store(stale)
    assert snapshot(reader) == before
    # a signature by a different key
    other = Hypercore.create(key_pair=key_pair(b"\x01" * 32))
    other.append([b"a", b"b", b"c"])
    foreign = other.proof(ProofRequest(fork=0, upgrade=UpgradeRequest(0, 3)))
    with pytest.raises(VerificationError):
        reader.verify_and_store(foreign)
    assert snapshot(reader) == before
    reader.verify_and_store(good)
    assert reader.length == 3


def test_forged_proof_leaves_sqlite_untouched(tmp_path: Path) -> None:
    core = writer()
    core.append([b"a", b"b", b"c"])
    path = tmp_path / "r.db"
    storage = SqliteStorage(path)
    reader = Hypercore.open(storage, core.key)
    assert core.manifest is not None
    reader.set_manifest(core.manifest)
    good = core.proof(ProofRequest(fork=0, upgrade=UpgradeRequest(0, 3)))
    assert good.upgrade is not None
    bad = Proof(fork=0, upgrade=DataUpgrade(0, 3, good.upgrade.nodes, (), b"\x00" * 68))
    with pytest.raises(VerificationError):
        reader.verify_and_store(bad)
    storage.close()
    storage = SqliteStorage(path)
    again = Hypercore.open(storage, core.key, create=False)
    assert again.length == 0 and again.signature is None
    storage.close()


def test_set_manifest_checks_key() -> None:
    core = writer()
    other = Hypercore.create(key_pair=key_pair(b"\x05" * 32))
    reader = Hypercore.open(MemoryStorage(), core.key)
    assert other.manifest is not None and core.manifest is not None
    with pytest.raises(VerificationError):
        reader.set_manifest(other.manifest)
    reader.set_manifest(core.manifest)
    reader.set_manifest(core.manifest)
    assert reader.manifest == core.manifest
    with pytest.raises(VerificationError):
        reader.set_manifest(other.manifest)


def test_proof_of_missing_block() -> None:
    _, reader = _reader_with_upgrade()
    with pytest.raises(BlockNotAvailableError):
        reader.proof(ProofRequest(fork=0, block=BlockRequest(1, 0)))


# --- growth events ------------------------------------------------------------------------------


def test_listeners_and_unsubscribe() -> None:
    core = writer()
    seen: list[AppendEvent] = []
    stop = core.on_append(seen.append)

    def broken(_: AppendEvent) -> None:
        raise RuntimeError("listener bug")

    core.on_append(broken)
    core.append([b"a", b"b"])
    core.truncate(1)
    stop()
    stop()
    core.append(b"c")
    assert seen == [AppendEvent(2, 2, 0), AppendEvent(1, 1, 1, truncated=True)]
    assert core.length == 2


async def test_wait_for_length() -> None:
    core = writer()
    assert await core.wait_for_length(0) == 0

    async def grow() -> None:
        for i in range(3):
            await asyncio.sleep(0.001)
            core.append(bytes([i]))

    task = asyncio.create_task(grow())
    assert await core.wait_for_length(3, timeout=5) == 3
    await task
    with pytest.raises(TimeoutError):
        await core.wait_for_length(10, timeout=0.01)
    waiter = asyncio.create_task(core.wait_for_length(10))
    await asyncio.sleep(0)
    core.close()
    with pytest.raises(CoreError):
        await waiter


def test_sparse_availability_survives_reopen(tmp_path: Path) -> None:
    core = writer()
    core.append([bytes([i]) for i in range(40)])
    path = tmp_path / "r.db"
    storage = SqliteStorage(path)
    reader = Hypercore.open(storage, core.key)
    assert core.manifest is not None
    reader.set_manifest(core.manifest)
    reader.verify_and_store(core.proof(ProofRequest(fork=0, upgrade=UpgradeRequest(0, 40))))
    for i in (1, 33, 2, 0):
        reader.verify_and_store(
            core.proof(ProofRequest(fork=0, block=BlockRequest(i, reader.missing_nodes(i))))
        )
    assert reader.contiguous_length == 3
    storage.close()
    storage = SqliteStorage(path)
    again = Hypercore.open(storage, core.key, create=False)
    assert [i for i in range(40) if again.has(i)] == [0, 1, 2, 33]
    assert again.contiguous_length == 3
    assert again.bitfield_words(32, 32) == (0b10,)
    assert again.bitfield_words(0, 32) == (0b111,)
    storage.close()


def test_writer_contiguous_and_truncate() -> None:
    core = writer()
    core.append([b"a"] * 70)
    assert core.contiguous_length == 70
    assert core.bitfield_words(0, 96) == (0xFFFFFFFF, 0xFFFFFFFF, 0b111111)
    core.truncate(33)
    assert core.contiguous_length == 33 and core.bitfield_words(32, 32) == (1,)
