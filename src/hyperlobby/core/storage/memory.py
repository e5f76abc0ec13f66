"""In-memory storage backend: the same contract as SQLite, for tests and throwaway stores.

Atomicity is trivial here (a batch is applied by plain Python code that cannot fail half-way once
it has been validated), but the backend still copies records in and out so that callers cannot
alias its state, and it validates batches exactly as the SQLite backend does so that a test that
passes in memory passes on disk.
"""

from __future__ import annotations

import contextlib

from hyperlobby.core.proofs import TreeNode
from hyperlobby.core.storage.base import EMPTY_HEAD, CoreRecord, Head, WriteBatch, validate_batch
from hyperlobby.errors import StorageError


class _CoreData:
    __slots__ = ("bitfield", "blocks", "head", "nodes", "record", "user_data")

    def __init__(self, record: CoreRecord) -> None:
        self.record = record
        self.head = EMPTY_HEAD
        self.blocks: dict[int, bytes] = {}
        self.nodes: dict[int, TreeNode] = {}
        self.bitfield: dict[int, bytes] = {}
        self.user_data: dict[str, bytes] = {}


class MemoryStorage:
    """A :class:`~hyperlobby.core.storage.base.StorageBackend` that lives in dicts."""

    def __init__(self) -> None:
        self._primary_key: bytes | None = None
        self._cores: dict[int, _CoreData] = {}
        self._by_key: dict[bytes, int] = {}
        self._by_dk: dict[bytes, int] = {}
        self._closed = False

    def _core(self, core_id: int) -> _CoreData:
        if self._closed:
            raise StorageError("storage is closed")
        try:
            return self._cores[core_id]
        except KeyError:
            raise StorageError("no such core in storage", core_id=core_id) from None

    def get_primary_key(self) -> bytes | None:
        return self._primary_key

    def set_primary_key(self, key: bytes) -> bytes:
        if len(key) != 32:
            raise StorageError("primary key must be 32 bytes", length=len(key))
        if self._primary_key is None:
            self._primary_key = bytes(key)
        return self._primary_key

    def create_core(
        self, key: bytes, discovery_key: bytes, manifest: bytes | None, secret_key: bytes | None
    ) -> CoreRecord:
        if self._closed:
            raise StorageError("storage is closed")
        if len(key) != 32 or len(discovery_key) != 32:
            raise StorageError("core key and discovery key must be 32 bytes")
        if key in self._by_key or discovery_key in self._by_dk:
            raise StorageError("core already stored", key=key)
        core_id = len(self._cores) + 1
        record = CoreRecord(core_id, bytes(key), bytes(discovery_key), manifest, secret_key)
        self._cores[core_id] = _CoreData(record)
        self._by_key[record.key] = core_id
        self._by_dk[record.discovery_key] = core_id
        return record

    def update_core_auth(self, core_id: int, manifest: bytes | None, secret_key: bytes | None) -> CoreRecord:
        data = self._core(core_id)
        old = data.record
        data.record = CoreRecord(
            old.id,
            old.key,
            old.discovery_key,
            old.manifest if manifest is None else bytes(manifest),
            old.secret_key if secret_key is None else bytes(secret_key),
        )
        return data.record

    def find_core(self, key: bytes) -> CoreRecord | None:
        core_id = self._by_key.get(bytes(key))
        return None if core_id is None else self._cores[core_id].record

    def find_core_by_discovery_key(self, discovery_key: bytes) -> CoreRecord | None:
        core_id = self._by_dk.get(bytes(discovery_key))
        return None if core_id is None else self._cores[core_id].record

    def list_cores(self) -> list[CoreRecord]:
        return [c.record for c in self._cores.values()]

    def get_head(self, core_id: int) -> Head:
        return self._core(core_id).head

    def get_block(self, core_id: int, index: int) -> bytes | None:
        return self._core(core_id).blocks.get(index)

    def has_block(self, core_id: int, index: int) -> bool:
        return index in self._core(core_id).blocks

    def get_node(self, core_id: int, index: int) -> TreeNode | None:
        return self._core(core_id).nodes.get(index)

    def get_bitfield_pages(self, core_id: int) -> dict[int, bytes]:
        return dict(self._core(core_id).bitfield)

    def get_user_data(self, core_id: int, name: str) -> bytes | None:
        return self._core(core_id).user_data.get(name)

    def write(self, core_id: int, batch: WriteBatch) -> None:
        data = self._core(core_id)
        validate_batch(batch)
        if batch.truncate_blocks_from is not None:
            cut = batch.truncate_blocks_from
            for i in [i for i in data.blocks if i >= cut]:
                del data.blocks[i]
        if batch.truncate_nodes_from is not None:
            cut = batch.truncate_nodes_from
            for n in [n for n in data.nodes if n >= cut]:
                del data.nodes[n]
        for n in batch.delete_nodes:
            data.nodes.pop(n, None)
        for i, value in batch.blocks:
            data.blocks[i] = bytes(value)
        for node in batch.nodes:
            data.nodes[node.index] = node
        for page, raw in batch.bitfield_pages.items():
            data.bitfield[page] = bytes(raw)
        for name, entry in batch.user_data.items():
            if entry is None:
                data.user_data.pop(name, None)
            else:
                data.user_data[name] = bytes(entry)
        if batch.manifest is not None:
            self.update_core_auth(core_id, batch.manifest, None)
        if batch.head is not None:
            data.head = batch.head

    def group(self) -> contextlib.AbstractContextManager[None]:
        """Writes apply at once here; a group only matters to transactional backends."""
        return contextlib.nullcontext()

    def close(self) -> None:
        self._closed = True
