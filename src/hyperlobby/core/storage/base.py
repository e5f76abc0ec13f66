"""The storage backend protocol: what a Store needs from whatever holds its bytes.

Theory of operation
-------------------
A backend holds every core of one Store: a store-wide primary key, one :class:`CoreRecord` per
core (key, discovery key, manifest, secret key) and, per core, its blocks, Merkle tree nodes,
bitfield pages, user data and the signed :class:`Head` (fork, length, byte length, roots,
signature).

Reads are single look-ups. Every mutation of a core goes through :meth:`StorageBackend.write`
with one :class:`WriteBatch`, which the backend applies **atomically**: either everything in the
batch is visible afterwards or nothing is. That is the whole crash-safety story. A core builds a
batch for one append (blocks + new tree nodes + new head + dirty bitfield pages), hands it to the
backend, and only after ``write`` returns does it update its in-memory state, so neither another
process reading the file nor code in this process can observe half an append.

The backend never interprets blocks, nodes or pages: checking them is the core's job, done
before a batch is built. The backend only guarantees that what was written comes back, whole.

Identifiers: a backend hands out a small integer ``CoreRecord.id`` per core. It is local to one
storage file and never leaves it (the wire and the API speak keys and discovery keys).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from hyperlobby.core.proofs import TreeNode
from hyperlobby.errors import StorageError

SCHEMA_VERSION = 2
MAX_BLOCKS_PER_CORE = 1 << 40
"""Blocks are addressed as ``core_id << 40 | index`` in the SQLite backend; 2^40 blocks is far
beyond anything a single writer produces (JS itself tops out at 2^53 bytes)."""
_MAX_INDEX = MAX_BLOCKS_PER_CORE - 1
_MAX_TREE_INDEX = 2 * MAX_BLOCKS_PER_CORE


@dataclass(frozen=True, slots=True)
class Head:
    """The signed state of a core: what a reader trusts after verification.

    ``roots`` are the Merkle roots at ``length``; they are stored with the head (not derived from
    the node table) so that opening a core costs one row, and so that the head and the roots can
    never disagree after a crash.
    """

    fork: int = 0
    length: int = 0
    byte_length: int = 0
    roots: tuple[TreeNode, ...] = ()
    signature: bytes | None = None
    contiguous_length: int = 0
    """Local, not signed: blocks ``[0, contiguous_length)`` are all stored. Kept with the head so
    that an in-order append needs no bitfield write (see hypercore.py ``_Availability``)."""


EMPTY_HEAD = Head()


@dataclass(frozen=True, slots=True)
class CoreRecord:
    """The identity of one stored core.

    ``manifest`` is ``None`` for a core opened from a bare key until a peer sends the manifest;
    ``secret_key`` (64-byte libsodium form) is ``None`` for a core we can only read.
    """

    id: int
    key: bytes
    discovery_key: bytes
    manifest: bytes | None
    secret_key: bytes | None


@dataclass(slots=True)
class WriteBatch:
    """Mutations of one core that must become visible together.

    Order of application inside a batch: truncation (``truncate_blocks_from``: blocks at or after
    that index; ``truncate_nodes_from``: tree nodes at or after that tree index; ``delete_nodes``)
    first, then the new blocks, nodes, pages and data, then the head. So a batch
    may truncate and re-grow a core in one step (a reorg) and the result is well-defined.
    """

    blocks: list[tuple[int, bytes]] = field(default_factory=list)
    nodes: list[TreeNode] = field(default_factory=list)
    head: Head | None = None
    truncate_blocks_from: int | None = None
    truncate_nodes_from: int | None = None
    delete_nodes: list[int] = field(default_factory=list)
    bitfield_pages: dict[int, bytes] = field(default_factory=dict)
    manifest: bytes | None = None
    user_data: dict[str, bytes | None] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (
            self.blocks
            or self.nodes
            or self.head is not None
            or self.truncate_blocks_from is not None
            or self.truncate_nodes_from is not None
            or self.delete_nodes
            or self.bitfield_pages
            or self.manifest is not None
            or self.user_data
        )


def _check_node(node: TreeNode) -> None:
    if not (0 <= node.index <= _MAX_TREE_INDEX and node.size >= 0 and len(node.hash) == 32):
        raise StorageError("invalid tree node in write batch", index=node.index, size=node.size)


def validate_batch(batch: WriteBatch) -> None:
    """Reject a malformed batch before anything is written (shared by every backend).

    The per-item checks are written inline (no helper call per node or block): every append goes
    through here, a batch of 100 blocks carries ~300 items, and the checks must stay cheap.
    """
    for i, value in batch.blocks:
        if not (0 <= i <= _MAX_INDEX) or not isinstance(value, bytes | bytearray | memoryview):
            raise StorageError("invalid block in write batch", index=i)
    for node in batch.nodes:
        if not (0 <= node.index <= _MAX_TREE_INDEX and node.size >= 0 and len(node.hash) == 32):
            raise StorageError("invalid tree node in write batch", index=node.index, size=node.size)
    for n in batch.delete_nodes:
        if not 0 <= n <= _MAX_TREE_INDEX:
            raise StorageError("invalid node index to delete", index=n)
    if batch.truncate_blocks_from is not None and not 0 <= batch.truncate_blocks_from <= _MAX_INDEX + 1:
        raise StorageError("invalid truncation point", length=batch.truncate_blocks_from)
    if batch.truncate_nodes_from is not None and not 0 <= batch.truncate_nodes_from <= _MAX_TREE_INDEX:
        raise StorageError("invalid node truncation point", index=batch.truncate_nodes_from)
    for page in batch.bitfield_pages:
        if page < 0:
            raise StorageError("invalid bitfield page number", page=page)
    head = batch.head
    if head is not None:
        if not (
            0 <= head.length <= MAX_BLOCKS_PER_CORE
            and head.fork >= 0
            and head.byte_length >= 0
            and 0 <= head.contiguous_length <= MAX_BLOCKS_PER_CORE
        ):
            raise StorageError("invalid head", length=head.length, fork=head.fork)
        for r in head.roots:
            if not (0 <= r.index <= _MAX_TREE_INDEX and r.size >= 0 and len(r.hash) == 32):
                raise StorageError("invalid tree node in write batch", index=r.index, size=r.size)


class StorageBackend(Protocol):
    """Everything a Store and its cores ask of storage. See the module docstring for the contract."""

    # --- store-wide ------------------------------------------------------------------------------

    def get_primary_key(self) -> bytes | None:
        """The Store's primary key, or ``None`` in a fresh store."""
        ...

    def set_primary_key(self, key: bytes) -> bytes:
        """Keep ``key`` as the primary key unless one is already kept; return the kept one."""
        ...

    def create_core(
        self, key: bytes, discovery_key: bytes, manifest: bytes | None, secret_key: bytes | None
    ) -> CoreRecord:
        """Add a core with an empty head. Fails with StorageError if the key is already stored."""
        ...

    def update_core_auth(self, core_id: int, manifest: bytes | None, secret_key: bytes | None) -> CoreRecord:
        """Fill in a manifest and/or secret key learned later (``None`` leaves a field unchanged)."""
        ...

    def find_core(self, key: bytes) -> CoreRecord | None: ...

    def find_core_by_discovery_key(self, discovery_key: bytes) -> CoreRecord | None: ...

    def list_cores(self) -> list[CoreRecord]: ...

    # --- one core --------------------------------------------------------------------------------

    def get_head(self, core_id: int) -> Head: ...

    def get_block(self, core_id: int, index: int) -> bytes | None: ...

    def has_block(self, core_id: int, index: int) -> bool: ...

    def group(self) -> AbstractContextManager[None]:
        """Writes made inside share one transaction (each still all-or-nothing on its own).

        Used for downloaded data, where committing per block would dominate the cost; local
        appends stay outside groups so they are durable when they return.
        """
        ...

    def get_node(self, core_id: int, index: int) -> TreeNode | None: ...

    def get_bitfield_pages(self, core_id: int) -> dict[int, bytes]: ...

    def get_user_data(self, core_id: int, name: str) -> bytes | None: ...

    def write(self, core_id: int, batch: WriteBatch) -> None:
        """Apply ``batch`` atomically and durably (per the backend's durability setting)."""
        ...

    def close(self) -> None: ...
