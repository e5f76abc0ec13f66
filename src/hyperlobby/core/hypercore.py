"""Hypercore 11: a signed, append-only log, byte-compatible with the JS ``hypercore`` package.

Theory of operation
-------------------
A :class:`Hypercore` is a thin coordinator between four things:

* the **Merkle tree** (:class:`~hyperlobby.core.merkle.MerkleTree`), which knows the roots, the
  length, byte length, fork and signature, and computes appends, truncations, proofs and proof
  verification as *pure* :class:`TreeUpdate` values without touching storage;
* the **verifier** (manifest rules, crypto/signing.py), which signs and checks tree heads;
* the **availability bitfield** (which blocks we hold);
* the **storage backend**, which applies one :class:`WriteBatch` atomically.

Every mutation follows the same four steps: (1) compute the update (tree and signature) without
changing anything; (2) build one batch (blocks, new nodes, new head, dirty bitfield pages);
(3) ``storage.write(batch)``, one transaction; (4) only then apply the update to the in-memory
tree and bitfield and notify listeners. If (1) or (3) fails, nothing has changed, in memory or on
disk; a crash during (3) leaves storage at the previous commit. So a core always verifies after
a crash, and an append is durable once it returns (per the backend's durability setting).

The tree reads stored nodes through this object (it is the tree's ``NodeReader``), backed by a
small cache: appends never read nodes (the roots are in memory), but proofs and truncations do.

A reader follows a writer's truncation with a *reorg* (hypercore.md §8): :meth:`verify_reorg` checks
the remote's whole signed tree on its newer fork and finds how much of ours it shares (narrowed
with hash proofs by the replicator), and :meth:`reorg` cuts our tree back to that prefix and adopts
the new head, blocks, nodes, availability and head in one transaction.

What is *not* here yet: fetching missing blocks from peers (``get`` of a missing block raises
:class:`BlockNotAvailableError`), block encryption, sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from hyperlobby.core.merkle import MerkleTree, ReorgBatch, TreeUpdate, obsolete_nodes
from hyperlobby.core.proofs import Proof, ProofRequest, TreeNode, record_builder
from hyperlobby.core.storage.base import CoreRecord, Head, StorageBackend, WriteBatch
from hyperlobby.core.storage.memory import MemoryStorage
from hyperlobby.crypto.hashes import discovery_key as make_discovery_key
from hyperlobby.crypto.hashes import tree_hash as hash_roots
from hyperlobby.crypto.keys import KeyPair
from hyperlobby.crypto.manifest import Manifest, is_compat, manifest_hash
from hyperlobby.crypto.signing import Verifier
from hyperlobby.encoding.ids import encode_id
from hyperlobby.errors import BlockNotAvailableError, CoreError, StorageError, VerificationError

BytesLike = bytes | bytearray | memoryview

_NODE_CACHE_SIZE = 4096
FROZEN_KEY = "hyperlobby/frozen"
"""User-data entry marking a frozen core; its value is the conflicting length (ASCII digits)."""
_UNKNOWN = TreeNode(-1, 0, b"")  # a node cache miss (None is a cached "not stored")
_head = record_builder(Head)  # positional, every field (a reader builds one per stored block)
_log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class AppendEvent:
    """The core grew (or, with ``truncated``, shrank to a new fork) to this head."""

    length: int
    byte_length: int
    fork: int
    truncated: bool = False
    # Details of a truncation, left out of equality so that events compare as before they existed.
    ancestors: int = field(default=0, compare=False)
    """With ``truncated``: how many blocks survived the cut (blocks from here on were dropped)."""
    dropped: int = field(default=0, compare=False)
    """With ``truncated``: how many blocks were dropped (``[ancestors, ancestors + dropped)``)."""


AppendListener = Callable[[AppendEvent], None]


def _as_blocks(blocks: BytesLike | Iterable[BytesLike]) -> list[bytes]:
    """Normalise ``append``'s argument; reject anything that is not bytes before touching state."""
    if isinstance(blocks, bytes):
        return [blocks]
    if isinstance(blocks, bytearray | memoryview):
        return [bytes(blocks)]
    if isinstance(blocks, str):
        raise CoreError("a block must be bytes, not str (encode it first)")
    out: list[bytes] = []
    for b in blocks:
        if isinstance(b, bytes):
            out.append(b)
        elif isinstance(b, bytearray | memoryview):
            out.append(bytes(b))
        else:
            raise CoreError("a block must be bytes", type=type(b).__name__)
    return out


PAGE_BITS = 4096
"""Blocks per stored availability page (512 bytes: small enough to stay inside an SQLite b-tree
cell, so an out-of-order block rewrites one small row, not a chain of overflow pages)."""
_PAGE_BYTES = PAGE_BITS // 8


def _fill_bits(buf: bytearray, start: int, end: int, value: bool) -> None:
    """Set or clear bits ``[start, end)`` of ``buf`` (LSB-first within each byte, as on the wire)."""
    while start < end and start & 7:
        _put_bit(buf, start, value)
        start += 1
    while end > start and end & 7:
        end -= 1
        _put_bit(buf, end, value)
    if start < end:
        buf[start >> 3 : end >> 3] = (b"\xff" if value else b"\x00") * ((end - start) >> 3)


def _put_bit(buf: bytearray, bit: int, value: bool) -> None:
    if value:
        buf[bit >> 3] |= 1 << (bit & 7)
    else:
        buf[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF


class _Availability:
    """Which blocks this core holds: a contiguous prefix plus pages of bits for the rest.

    ``contiguous`` (kept in the head row) covers blocks ``[0, contiguous)``; the pages only record
    blocks beyond it that arrived out of order. A writer therefore never writes a page at all
    (every append extends the prefix), which keeps an append at one small row update.

    Changes are computed first (:meth:`preview_set`, :meth:`preview_clear`) and go into the same
    storage batch as the blocks they describe; they are adopted only after that batch commits, so
    availability on disk always matches the blocks on disk.
    """

    __slots__ = ("_pages", "contiguous")

    def __init__(self, pages: dict[int, bytes], contiguous: int) -> None:
        self.contiguous = contiguous
        self._pages: dict[int, bytes] = {}
        for n, raw in pages.items():
            if len(raw) != _PAGE_BYTES:
                raise CoreError("stored bitfield page has the wrong size", page=n, size=len(raw))
            self._pages[n] = raw

    def _bit(self, index: int) -> bool:
        page = self._pages.get(index // PAGE_BITS)
        if page is None:
            return False
        bit = index % PAGE_BITS
        return bool(page[bit >> 3] >> (bit & 7) & 1)

    def get(self, index: int) -> bool:
        return index < self.contiguous or self._bit(index)

    def preview_set(self, start: int, count: int) -> tuple[dict[int, bytes], int]:
        """(changed pages, new contiguous length) once blocks ``[start, start+count)`` are held."""
        end = start + count
        if start <= self.contiguous:
            c = max(self.contiguous, end)
            while self._bit(c):
                c += 1
            return {}, c
        return self._fill(start, end, True), self.contiguous

    def preview_clear(self, start: int, count: int) -> tuple[dict[int, bytes], int]:
        """(changed pages, new contiguous length) once blocks ``[start, start+count)`` are dropped."""
        return self._fill(start, start + count, False), min(self.contiguous, start)

    def _fill(self, start: int, end: int, value: bool) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        pos = start
        while pos < end:
            n = pos // PAGE_BITS
            stop = min(end, (n + 1) * PAGE_BITS)
            old = self._pages.get(n)
            if old is None and not value:
                pos = stop
                continue
            buf = bytearray(old) if old is not None else bytearray(_PAGE_BYTES)
            _fill_bits(buf, pos - n * PAGE_BITS, stop - n * PAGE_BITS, value)
            out[n] = bytes(buf)
            pos = stop
        return out

    def adopt(self, pages: dict[int, bytes], contiguous: int) -> None:
        self._pages.update(pages)
        self.contiguous = contiguous

    def words(self, start: int, count: int) -> bytes:
        """Raw bits for blocks ``[start, start+count)`` with ``start`` a multiple of 8 (for the wire)."""
        out = bytearray()
        contiguous = self.contiguous
        for i in range(start, start + count, 8):
            if i + 8 <= contiguous:
                out.append(0xFF)
                continue
            page = self._pages.get(i // PAGE_BITS)
            byte = 0 if page is None else page[(i % PAGE_BITS) >> 3]
            if i < contiguous:
                byte |= (1 << (contiguous - i)) - 1
            out.append(byte)
        return bytes(out)


class Hypercore:
    """One core, writable (we hold a signing key) or read-only (we only know its key).

    Make one with :meth:`create` (a new writable core) or :meth:`open` (by key), or, usually,
    through :class:`~hyperlobby.core.store.Store`, which derives keys like corestore and keeps
    many cores in one database.
    """

    # --- construction ----------------------------------------------------------------------------

    def __init__(self, storage: StorageBackend, record: CoreRecord, *, owns_storage: bool = False) -> None:
        """Load a stored core (internal: use :meth:`create`, :meth:`open` or a Store)."""
        self._storage = storage
        self._owns_storage = owns_storage
        self._record = record
        self._id = record.id
        self.key: bytes = record.key
        self.discovery_key: bytes = record.discovery_key
        self._closed = False
        self._listeners: list[AppendListener] = []
        self._waiters: list[tuple[int, asyncio.Future[int]]] = []
        self._cache: dict[int, TreeNode | None] = {}

        self._manifest: Manifest | None = None
        self._compat = False
        self._verifier: Verifier | None = None
        if record.manifest is not None:
            self._adopt_manifest(Manifest.decode(record.manifest))

        self._key_pair: KeyPair | None = None
        if record.secret_key is not None:
            self._key_pair = KeyPair(record.secret_key[32:], record.secret_key)

        head = storage.get_head(self._id)
        self._tree = MerkleTree(self, roots=head.roots, fork=head.fork, signature=head.signature)
        if self._tree.length != head.length or self._tree.byte_length != head.byte_length:
            raise CoreError("stored head does not match its roots", length=head.length)
        self._bitfield = _Availability(storage.get_bitfield_pages(self._id), head.contiguous_length)
        frozen = storage.get_user_data(self._id, FROZEN_KEY)
        self._frozen_at: int | None = int(frozen) if frozen is not None and frozen.isdigit() else None
        self._conflict_listeners: list[Callable[[int], None]] = []

    @classmethod
    def create(
        cls,
        storage: StorageBackend | None = None,
        key_pair: KeyPair | None = None,
        *,
        manifest: Manifest | None = None,
        compat: bool = False,
    ) -> Hypercore:
        """A new, empty, writable core.

        By default, like JS hypercore 11, the core is *non-compat*: its key is the hash of the
        default single-signer manifest and signatures are 68-byte multisig containers.
        ``compat=True`` gives a hypercore-10 style core whose key is the public key and whose
        signatures are raw 64-byte Ed25519 signatures.
        """
        from hyperlobby.crypto.keys import key_pair as new_key_pair

        owns = storage is None
        backend: StorageBackend = MemoryStorage() if storage is None else storage
        kp = new_key_pair() if key_pair is None else key_pair
        if kp.secret_key is None:
            raise CoreError("creating a writable core needs a key pair with a secret key")
        if manifest is None:
            manifest = Manifest.default(kp.public_key)
        if compat:
            key = kp.public_key
            if not is_compat(manifest, key):
                raise CoreError("a compat core needs the default single-signer manifest of its key pair")
        else:
            key = manifest_hash(manifest)
        if backend.find_core(key) is not None:
            raise CoreError("a core with this key is already stored; open it instead", key=key)
        raw_manifest = manifest.encode()
        record = backend.create_core(key, make_discovery_key(key), raw_manifest, kp.secret_key)
        return cls(backend, record, owns_storage=owns)

    @classmethod
    def open(cls, storage: StorageBackend, key: bytes, *, create: bool = True) -> Hypercore:
        """The core with ``key``: the stored one (writable if we hold its secret key), else a new
        read-only core that knows only its key (``create=False`` raises instead)."""
        if len(key) != 32:
            raise CoreError("a core key is 32 bytes", length=len(key))
        record = storage.find_core(bytes(key))
        if record is None:
            if not create:
                raise CoreError("no core with this key is stored", key=key)
            record = storage.create_core(bytes(key), make_discovery_key(key), None, None)
        return cls(storage, record)

    # --- identity --------------------------------------------------------------------------------

    def _adopt_manifest(self, manifest: Manifest) -> None:
        self._manifest = manifest
        self._compat = is_compat(manifest, self.key)
        self._verifier = Verifier(manifest, self.key, self._compat)

    def set_manifest(self, manifest: Manifest) -> None:
        """Accept a manifest a peer sent for this key-only core, if it really defines this key."""
        self._check_open()
        if self._manifest is not None:
            if manifest != self._manifest:
                raise VerificationError("a different manifest is already stored for this core", key=self.key)
            return
        if manifest_hash(manifest) != self.key and not is_compat(manifest, self.key):
            raise VerificationError("manifest does not match the core key", key=self.key)
        raw = manifest.encode()
        self._storage.write(self._id, WriteBatch(manifest=raw))
        self._adopt_manifest(manifest)

    @property
    def id(self) -> str:
        """The z-base-32 form of the key (what JS calls ``core.id``)."""
        return encode_id(self.key)

    @property
    def manifest(self) -> Manifest | None:
        return self._manifest

    @property
    def compat(self) -> bool:
        return self._compat

    @property
    def key_pair(self) -> KeyPair | None:
        return self._key_pair

    @property
    def writable(self) -> bool:
        return self._key_pair is not None and self._verifier is not None and not self._closed

    # --- head ------------------------------------------------------------------------------------

    @property
    def length(self) -> int:
        return self._tree.length

    @property
    def byte_length(self) -> int:
        return self._tree.byte_length

    @property
    def fork(self) -> int:
        return self._tree.fork

    @property
    def signature(self) -> bytes | None:
        return self._tree.signature

    @property
    def roots(self) -> tuple[TreeNode, ...]:
        return tuple(self._tree.roots)

    def tree_hash(self) -> bytes:
        """Hash of the current roots: the value the signature covers (with length and fork)."""
        return hash_roots(self._tree.roots)

    def head(self) -> Head:
        """The current signed head as one immutable record."""
        t = self._tree
        return Head(t.fork, t.length, t.byte_length, tuple(t.roots), t.signature, self._bitfield.contiguous)

    # --- NodeReader for the tree ------------------------------------------------------------------

    def get_node(self, index: int) -> TreeNode | None:
        """A stored tree node (cached); ``None`` if we do not hold it.

        Misses are cached too: a reader asks about the same absent ancestors for every block it
        requests or verifies. That stays coherent because every write to this core goes through
        this object (:meth:`_remember` replaces a cached miss; truncation clears the cache).
        """
        node = self._cache.get(index, _UNKNOWN)
        if node is not _UNKNOWN:
            return node
        cache = self._cache
        node = self._storage.get_node(self._id, index)
        if len(cache) > _NODE_CACHE_SIZE:
            cache.clear()
        cache[index] = node
        return node

    def _remember(self, nodes: Iterable[TreeNode]) -> None:
        cache = self._cache
        if len(cache) > _NODE_CACHE_SIZE:
            cache.clear()
        for n in nodes:
            cache[n.index] = n

    # --- blocks ----------------------------------------------------------------------------------

    def has(self, index: int) -> bool:
        """True if block ``index`` is stored locally (verified)."""
        return 0 <= index < self._tree.length and self._bitfield.get(index)

    def get(self, index: int) -> bytes:
        """Block ``index`` from local storage.

        Raises :class:`BlockNotAvailableError` if we do not hold it (fetching from peers belongs
        to the replicator, which calls :meth:`verify_and_store` and then retries).
        """
        self._check_open()
        if index < 0:
            raise CoreError("block index must be non-negative", index=index)
        if not self.has(index):
            raise BlockNotAvailableError("block is not available locally", index=index, length=self.length)
        value = self._storage.get_block(self._id, index)
        if value is None:
            raise BlockNotAvailableError("block is missing from storage", index=index)
        return value

    def append(self, blocks: BytesLike | Iterable[BytesLike]) -> int:
        """Append one block or a list of blocks in one signed, durable step; return the new length."""
        self._check_open()
        values = _as_blocks(blocks)
        kp = self._key_pair
        verifier = self._verifier
        if kp is None or verifier is None:
            raise CoreError("core is not writable", key=self.key)
        self._check_not_frozen()
        if not values:
            return self._tree.length
        tree = self._tree
        start = tree.length
        update = tree.append(values)
        signature = verifier.sign(hash_roots(update.roots), update.length, update.fork, kp)
        update = update.with_signature(signature)
        pages, contiguous = self._bitfield.preview_set(start, len(values))
        self._storage.write(
            self._id,
            WriteBatch(
                blocks=list(enumerate(values, start)),
                nodes=list(update.nodes),
                head=Head(
                    update.fork, update.length, update.byte_length, tuple(update.roots), signature, contiguous
                ),
                bitfield_pages=pages,
            ),
        )
        tree.apply(update)
        self._bitfield.adopt(pages, contiguous)
        self._remember(update.nodes)
        self._notify(AppendEvent(update.length, update.byte_length, update.fork))
        return update.length

    def truncate(self, new_length: int) -> None:
        """Drop the blocks from ``new_length`` on, move to ``fork + 1`` and sign the new head."""
        self._check_open()
        kp = self._key_pair
        verifier = self._verifier
        if kp is None or verifier is None:
            raise CoreError("core is not writable", key=self.key)
        self._check_not_frozen()
        old_length = self._tree.length
        if not 0 <= new_length <= old_length:
            raise CoreError("truncation point is outside the core", length=new_length, current=old_length)
        fork = self._tree.fork + 1
        update = self._tree.truncate(new_length, fork)
        signature = verifier.sign(hash_roots(update.roots), update.length, fork, kp)
        update = update.with_signature(signature)
        pages, contiguous = self._bitfield.preview_clear(new_length, old_length - new_length)
        right_of_cut, crossing = obsolete_nodes(new_length, old_length)
        self._storage.write(
            self._id,
            WriteBatch(
                truncate_blocks_from=new_length,
                truncate_nodes_from=right_of_cut.start if right_of_cut else None,
                delete_nodes=list(crossing),
                nodes=list(update.nodes),
                head=Head(
                    fork, update.length, update.byte_length, tuple(update.roots), signature, contiguous
                ),
                bitfield_pages=pages,
            ),
        )
        self._cache.clear()
        self._tree.apply(update)
        self._bitfield.adopt(pages, contiguous)
        self._notify(
            AppendEvent(
                update.length,
                update.byte_length,
                fork,
                truncated=True,
                ancestors=new_length,
                dropped=old_length - new_length,
            )
        )

    # --- replication entry points -----------------------------------------------------------------

    def proof(self, request: ProofRequest) -> Proof:
        """Answer a peer's request from local data (the block value is filled in here)."""
        self._check_open()
        if request.block is not None and not self.has(request.block.index):
            raise BlockNotAvailableError("block is not available locally", index=request.block.index)
        value = b""
        if request.block is not None:
            stored = self._storage.get_block(self._id, request.block.index)
            if stored is None:
                raise BlockNotAvailableError("block is missing from storage", index=request.block.index)
            value = stored
        return self._tree.proof(request, value)

    def missing_nodes(self, index: int) -> int:
        """How many proof levels to ask for with block ``index`` (up to the first node we hold)."""
        return self._tree.missing_nodes(index)

    @property
    def contiguous_length(self) -> int:
        """How many blocks from the start are all held locally (a writer holds its whole core).

        Peers announce this prefix with one ``range`` message. It is kept with the head and
        advanced whenever a block extends it (over any blocks that had arrived out of order).
        """
        return min(self._bitfield.contiguous, self._tree.length)

    def bitfield_words(self, start: int, count: int) -> tuple[int, ...]:
        """Availability of blocks ``[start, start+count)`` as little-endian uint32 words.

        ``start`` must be a multiple of 32: this is the body of a wire ``bitfield`` message.
        """
        if start % 32:
            raise CoreError("bitfield words start on a multiple of 32", start=start)
        words = (count + 31) // 32
        raw = self._bitfield.words(start, words * 32)
        return struct.unpack(f"<{words}I", raw)

    def _check_signature(self, tree_hash: bytes, length: int, fork: int, signature: bytes) -> bool:
        verifier = self._verifier
        if verifier is None:
            # A key-only core that never received a manifest: like JS, assume a compat core whose
            # key is the signer's public key (a non-compat core needs its manifest first).
            verifier = Verifier(None, self.key)
        return verifier.verify(tree_hash, length, fork, signature)

    def verify_and_store(self, proof: Proof) -> TreeUpdate:
        """Check a peer's proof against what we trust and store what it proves, in one transaction.

        On any failure (bad hashes, bad signature, stale fork, a block we cannot place) a
        :class:`VerificationError` is raised and nothing is stored or changed.
        """
        self._check_open()
        update = self._tree.verify(proof, self._check_signature)
        batch = WriteBatch(nodes=list(update.nodes))
        pages: dict[int, bytes] = {}
        contiguous = self._bitfield.contiguous
        block = update.block
        if block is not None and not self._bitfield.get(block.index):
            batch.blocks.append((block.index, bytes(block.value)))
            pages, contiguous = self._bitfield.preview_set(block.index, 1)
            batch.bitfield_pages = pages
        t = update if update.upgraded else self._tree
        signature = update.signature if update.upgraded else self._tree.signature
        if update.upgraded or contiguous != self._bitfield.contiguous:
            batch.head = _head(t.fork, t.length, t.byte_length, tuple(t.roots), signature, contiguous)
        if not batch.is_empty():
            self._storage.write(self._id, batch)
        if update.upgraded:
            self._tree.apply(update)
        self._bitfield.adopt(pages, contiguous)
        self._remember(update.nodes)
        if update.upgraded:
            self._notify(AppendEvent(update.length, update.byte_length, update.fork))
        return update

    # --- writer equivocation ---------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        """True once two conflicting signed trees of this core were seen (kept across reopens)."""
        return self._frozen_at is not None

    @property
    def frozen_length(self) -> int | None:
        """The length at which two conflicting signed trees were seen, if the core is frozen."""
        return self._frozen_at

    def check_conflict(self, proof: Proof) -> bool:
        """Does ``proof`` (a whole signed tree: an upgrade from 0) show the writer signed a tree
        other than ours at the same length on the same fork? If so, freeze the core.

        Why: a hypercore has one writer, and everything a reader trusts rests on that writer
        signing one history. Two valid signatures over different trees of the same length and
        fork prove the key signed twice (a bug, a restored backup, a stolen key). Which history
        is right cannot be decided, so like JS hypercore the core stops: no appends, no
        downloads. A proof we cannot judge (another fork, longer than us, no manifest yet, roots
        we do not hold) is not a conflict. A proof whose signature or hashes do not check out
        raises :class:`VerificationError`.
        """
        self._check_open()
        upgrade = proof.upgrade
        if upgrade is None or upgrade.start != 0:
            raise VerificationError("a conflict proof is a whole tree: an upgrade from 0")
        length = upgrade.length
        if length == 0 or length > self.length or proof.fork != self.fork or self._manifest is None:
            return False
        remote = self._tree.verify_remote(proof, self._check_signature)
        try:
            ours = self._tree.roots_at(length)
        except (CoreError, StorageError):
            return False
        if hash_roots(ours) == hash_roots(remote.roots):
            return False
        self._freeze(length)
        return True

    def on_conflict(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call ``listener(length)`` when this core freezes on a conflict; returns an unsubscribe."""
        return _subscribe(self._conflict_listeners, listener)

    def _freeze(self, length: int) -> None:
        if self._frozen_at is not None:
            return
        self._storage.write(self._id, WriteBatch(user_data={FROZEN_KEY: str(length).encode()}))
        self._frozen_at = length
        _log.warning("hypercore %s frozen: two conflicting signed trees at length %d", self.key.hex(), length)
        _call_each(self._conflict_listeners, length, "conflict")

    def _check_not_frozen(self) -> None:
        if self._frozen_at is not None:
            raise CoreError(
                "core is frozen: its writer signed two conflicting trees",
                key=self.key,
                length=self._frozen_at,
            )

    def verify_reorg(self, proof: Proof) -> ReorgBatch:
        """Check a remote's whole signed tree on a newer fork (``upgrade{0, n}``); change nothing.

        The batch says how much of our tree the new one shares so far; while it is not
        ``finished`` the replicator narrows it with hash proofs (:meth:`ReorgBatch.update`) so
        that blocks the truncation did not touch are kept. Raises :class:`VerificationError` for
        a lower or equal fork, a bad signature or a malformed tree.
        """
        self._check_open()
        return self._tree.reorg(proof, self._check_signature)

    def reorg(self, proof: Proof | ReorgBatch) -> TreeUpdate:
        """Follow a remote truncation: cut back to the shared prefix and adopt the newer fork.

        ``proof`` is a verified :class:`ReorgBatch` or a raw proof (verified here; if its
        divergence point was not narrowed down, the whole differing root is dropped, which is
        safe but may refetch blocks that were still valid). In one transaction: blocks and nodes
        past the shared prefix are deleted, the new tree's verified nodes stored, availability
        cleared past the prefix, and the new head (roots, length, fork, signature) written. Then
        listeners get an :class:`AppendEvent` with ``truncated=True``. Nothing unverified is
        stored; a stale batch (the core changed meanwhile) raises :class:`CoreError`.
        """
        self._check_open()
        batch = self.verify_reorg(proof) if isinstance(proof, Proof) else proof
        tree = self._tree
        if batch.base_fork != tree.fork or batch.base_length != tree.length or batch.fork <= tree.fork:
            raise CoreError("the core changed since this reorg was verified", fork=tree.fork)
        update = batch.result()
        old_length = tree.length
        ancestors = update.ancestors
        pages, contiguous = self._bitfield.preview_clear(ancestors, old_length - ancestors)
        right_of_cut, crossing = obsolete_nodes(ancestors, old_length)
        self._storage.write(
            self._id,
            WriteBatch(
                truncate_blocks_from=ancestors if ancestors < old_length else None,
                truncate_nodes_from=right_of_cut.start if right_of_cut else None,
                delete_nodes=list(crossing),
                nodes=list(update.nodes),
                head=Head(
                    update.fork,
                    update.length,
                    update.byte_length,
                    tuple(update.roots),
                    update.signature,
                    contiguous,
                ),
                bitfield_pages=pages,
            ),
        )
        self._cache.clear()
        tree.apply(update)
        self._bitfield.adopt(pages, contiguous)
        self._notify(
            AppendEvent(
                update.length,
                update.byte_length,
                update.fork,
                truncated=True,
                ancestors=ancestors,
                dropped=old_length - ancestors,
            )
        )
        return update

    # --- user data -------------------------------------------------------------------------------

    def get_user_data(self, name: str) -> bytes | None:
        self._check_open()
        return self._storage.get_user_data(self._id, name)

    def set_user_data(self, name: str, value: bytes | None) -> None:
        """Small per-core values kept next to the core (``None`` deletes)."""
        self._check_open()
        self._storage.write(self._id, WriteBatch(user_data={name: value}))

    # --- growth events ---------------------------------------------------------------------------

    def on_append(self, listener: AppendListener) -> Callable[[], None]:
        """Call ``listener`` after every committed append, truncation or verified upgrade.

        Returns a function that unsubscribes it. Listeners run synchronously after the commit;
        an exception in one does not undo the append and does not stop the others.
        """
        return _subscribe(self._listeners, listener)

    async def wait_for_length(self, length: int, timeout: float | None = None) -> int:
        """Wait until the core holds at least ``length`` blocks; return the length then."""
        self._check_open()
        if self._tree.length >= length:
            return self._tree.length
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        entry = (length, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def _notify(self, event: AppendEvent) -> None:
        _call_each(self._listeners, event, "append")
        if self._waiters:
            for want, fut in list(self._waiters):
                if event.length >= want and not fut.done():
                    fut.get_loop().call_soon_threadsafe(_resolve, fut, event.length)

    # --- lifecycle -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CoreError("core is closed", key=self.key)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the core; waiters get :class:`CoreError`. Closes storage if the core owns it."""
        if self._closed:
            return
        self._closed = True
        for _, fut in self._waiters:
            if not fut.done():
                fut.get_loop().call_soon_threadsafe(_fail, fut, CoreError("core closed", key=self.key))
        self._waiters.clear()
        self._listeners.clear()
        if self._owns_storage:
            self._storage.close()

    def __enter__(self) -> Hypercore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "writable" if self.writable else "read-only"
        return f"Hypercore(key={self.key.hex()}, length={self.length}, fork={self.fork}, {mode})"


def _subscribe(listeners: list[Callable[[_T], None]], listener: Callable[[_T], None]) -> Callable[[], None]:
    """Add ``listener``; return the function that removes it again (idempotent)."""
    listeners.append(listener)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            listeners.remove(listener)

    return unsubscribe


def _call_each(listeners: list[Callable[[_T], None]], value: _T, what: str) -> None:
    """Call every listener with ``value``; one listener's bug neither undoes the change that is
    being reported nor keeps the others from hearing of it."""
    for listener in list(listeners):
        try:
            listener(value)
        except Exception:
            _log.exception("%s listener failed", what)


def _resolve(fut: asyncio.Future[int], value: int) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future[int], err: BaseException) -> None:
    if not fut.done():
        fut.set_exception(err)


__all__ = ["AppendEvent", "AppendListener", "Hypercore"]
