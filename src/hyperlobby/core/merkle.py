"""The Merkle tree of one core: appending, truncating, byte seeking, building and checking proofs.

Theory of operation
-------------------
A core of ``length`` blocks is a forest of perfect binary trees, one per set bit of ``length``
(``flat_tree.full_roots``). Each node is ``{index, size, hash}`` (crypto.md §4); the *roots* are all a
verifier needs to know the whole tree, and the signature covers their combined tree hash together with
``length`` and ``fork``.

This module is sans-IO. Nodes live elsewhere (SQLite, a cache, a dict in tests) and are read through
:class:`NodeReader`; nothing here ever writes. Every operation that changes the tree is split in
two steps so that the caller can persist before adopting:

1. ``append`` / ``truncate`` / ``verify`` *compute* a :class:`TreeUpdate` (new roots, length, fork,
   the nodes to store) without touching the tree;
2. the caller stores ``update.nodes`` (and the block, the signature...) and then calls
   :meth:`MerkleTree.apply`, which adopts the new head. ``apply`` refuses an update that was computed
   against another head, so a stale update can never be half-applied.

Proofs (hypercore.md §6) follow the JS reference node for node, because a JS requester checks the
exact sequence of sibling indexes it receives:

* a *block* or *hash* proof walks up from the target and lists the sibling at each level for the
  ``nodes`` levels the requester said it lacks;
* a *seek* proof does the same from the node where a byte offset lands, and is spliced into the block
  proof (or into the upgrade) where its top would otherwise be a sibling;
* an *upgrade* proof lists what a requester holding the tree at ``start`` needs to rebuild the roots of
  ``start + length``: the right-hand siblings that grow its last root, then the later roots whole. When
  the requested block lies in that new region its proof replaces the node containing it, which the
  requester recomputes. ``additional_nodes`` extend that to the responder's full length, since the
  signature the responder holds is for its own length.

Verification mirrors that: fold the block/hash/seek chain into a subtree top ``X``, then rebuild the
roots from the trusted roots plus the upgrade nodes (using ``X`` where it fits), check the signature
over the new head with a caller-supplied callable, and, when the upgrade did not use ``X``, require
``X`` to equal a node the tree already trusts. Any mismatch raises :class:`VerificationError` and
nothing is changed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from hyperlobby.core import flat_tree
from hyperlobby.core.flat_tree import full_roots, left_span, parent, right_span, sibling
from hyperlobby.core.proofs import (
    DataBlock,
    DataHash,
    DataSeek,
    DataUpgrade,
    Proof,
    ProofRequest,
    TreeNode,
    record_builder,
    tree_node,
)
from hyperlobby.crypto.hashes import leaf_hash, parent_hash, tree_hash
from hyperlobby.errors import BlockNotAvailableError, CoreError, StorageError, VerificationError

__all__ = [
    "MAX_LENGTH",
    "CheckSignature",
    "MerkleTree",
    "NodeReader",
    "PrologueLike",
    "ProofRequestError",
    "ReorgBatch",
    "TreeUpdate",
    "obsolete_nodes",
]

#: Lengths, sizes and indexes are hashed as u64; anything that does not fit is refused up front.
MAX_LENGTH = 1 << 62
_U64_LIMIT = 1 << 64
_HASH_SIZE = 32
_PARENT_HEAD = struct.Struct("<BQ")

#: ``check_signature(tree_hash, length, fork, signature) -> bool`` (the manifest's verifier).
CheckSignature = Callable[[bytes, int, int, bytes], bool]


class NodeReader(Protocol):
    """Read access to the stored nodes of one core (``None`` when the node is not stored)."""

    def get_node(self, index: int) -> TreeNode | None: ...


class PrologueLike(Protocol):
    """A manifest prologue: the first ``length`` blocks are fixed by their tree ``hash``."""

    @property
    def hash(self) -> bytes: ...

    @property
    def length(self) -> int: ...


class ProofRequestError(CoreError):
    """A request that cannot be answered because it is malformed (wire ``noData`` reason 2).

    Missing data is :class:`BlockNotAvailableError` instead (reason 1).
    """


@dataclass(frozen=True, slots=True)
class TreeUpdate:
    """A computed, not yet adopted change of the tree (see the module docstring).

    ``base_length``/``base_fork`` is the head it was computed against; ``ancestors`` is how many of
    its blocks the new tree keeps (less than ``base_length`` only for a truncation). ``nodes`` are the
    verified or computed nodes to persist. ``block`` is the proven block of a verified proof, and
    ``hash_node`` the proven node of a hash proof. ``upgraded`` says the head (roots, length, fork,
    signature) changes; a plain block proof leaves it as it is.
    """

    fork: int
    length: int
    byte_length: int
    roots: tuple[TreeNode, ...]
    nodes: tuple[TreeNode, ...]
    signature: bytes | None
    upgraded: bool
    base_length: int
    base_fork: int
    ancestors: int
    block: DataBlock | None = None
    hash_node: TreeNode | None = None

    def tree_hash(self) -> bytes:
        """Hash of the roots after the update: what a writer signs (with ``length`` and ``fork``)."""
        return tree_hash(self.roots)

    def with_signature(self, signature: bytes) -> TreeUpdate:
        """The same update carrying the writer's signature over its head.

        Built field by field rather than with ``dataclasses.replace``: a writer calls this on every
        append, and ``replace`` costs several times more.
        """
        return TreeUpdate(
            self.fork,
            self.length,
            self.byte_length,
            self.roots,
            self.nodes,
            signature,
            self.upgraded,
            self.base_length,
            self.base_fork,
            self.ancestors,
            self.block,
            self.hash_node,
        )

    @property
    def truncated(self) -> bool:
        """True when stored nodes of the old tree must be deleted (see :func:`obsolete_nodes`)."""
        return self.ancestors < self.base_length


_tree_update = record_builder(TreeUpdate)  # positional, every field (a verified block builds one)


def obsolete_nodes(ancestors: int, old_length: int) -> tuple[range, tuple[int, ...]]:
    """Tree nodes that no longer belong to a tree cut from ``old_length`` back to ``ancestors`` blocks.

    Returns the index range of everything right of the cut, plus the parents left of it whose span
    crosses the cut (their hash covered blocks that are gone). The storage owner deletes these when
    it applies a truncating update, so that a later fork never reads a node of the old one.
    """
    if ancestors >= old_length:
        return range(0), ()
    head = 2 * ancestors
    crossing: list[int] = []
    pos = head - 2
    while ancestors > 0:
        pos = parent(pos)
        if pos < head and right_span(pos) >= head:
            crossing.append(pos)
        if pos >= head and left_span(pos) == 0:
            break  # every higher ancestor has a larger index: inside the range already
    return range(head, 2 * old_length), tuple(crossing)


class _NodeQueue:
    """Proof nodes consumed in order, each required to sit at an exact index.

    ``extra`` is a node computed by the caller (a subtree top) that may stand in for one of them.
    """

    __slots__ = ("extra", "i", "nodes")

    def __init__(self, nodes: Sequence[TreeNode], extra: TreeNode | None = None) -> None:
        self.nodes = nodes
        self.i = 0
        self.extra = extra

    def remaining(self) -> int:
        return len(self.nodes) - self.i + (0 if self.extra is None else 1)

    def shift(self, index: int) -> TreeNode:
        extra = self.extra
        if extra is not None and extra.index == index:
            self.extra = None
            return extra
        if self.i >= len(self.nodes):
            raise VerificationError("proof is missing a node", expected=index)
        node = self.nodes[self.i]
        if node.index != index:
            raise VerificationError("proof node at the wrong index", expected=index, got=node.index)
        self.i += 1
        return node


def _parent_node(index: int, a: TreeNode, b: TreeNode) -> TreeNode:
    return TreeNode(index, a.size + b.size, parent_hash(a, b))


def _check_node(node: TreeNode) -> None:
    """Refuse nodes that could not have come from an honest tree before hashing them."""
    if len(node.hash) != _HASH_SIZE:
        raise VerificationError("tree node hash is not 32 bytes", index=node.index)
    if not (0 <= node.index < _U64_LIMIT and 0 <= node.size < MAX_LENGTH):
        raise VerificationError("tree node index or size out of range", index=node.index)


class _Growth:
    """Mutable roots/length of a tree being rebuilt during verification (the JS "batch")."""

    __slots__ = ("byte_length", "length", "nodes", "roots")

    def __init__(self, roots: Iterable[TreeNode], length: int, byte_length: int) -> None:
        self.roots = list(roots)
        self.length = length
        self.byte_length = byte_length
        self.nodes: list[TreeNode] = []

    def append_root(self, node: TreeNode, pos: int) -> int:
        """Add ``node`` (at tree position ``pos``) as the newest root, merging siblings upward.

        Returns the position of the newest root afterwards.
        """
        self.length += flat_tree.count_leaves(pos)
        self.byte_length += node.size
        roots = self.roots
        roots.append(node)
        self.nodes.append(node)
        while len(roots) > 1:
            right = roots[-1]
            left = roots[-2]
            if sibling(pos) != left.index:
                break
            pos = parent(pos)
            merged = _parent_node(pos, right, left)
            self.nodes.append(merged)
            del roots[-2:]
            roots.append(merged)
        return pos


@dataclass(slots=True)
class _Pending:
    """Node lists of a proof being built; ``None`` = that part was not produced (yet)."""

    node: list[TreeNode] | None = None
    seek: list[TreeNode] | None = None
    upgrade: list[TreeNode] | None = None
    additional: list[TreeNode] | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    """The block or hash a request asks for, normalised to a tree index."""

    is_block: bool
    index: int
    nodes: int
    last_block: int


class MerkleTree:
    """The head (roots, length, fork, signature) of one core's tree plus read access to its nodes."""

    __slots__ = ("byte_length", "fork", "length", "prologue", "reader", "roots", "signature")

    def __init__(
        self,
        reader: NodeReader,
        *,
        roots: Sequence[TreeNode] = (),
        fork: int = 0,
        signature: bytes | None = None,
        prologue: PrologueLike | None = None,
    ) -> None:
        self.reader = reader
        self.roots: list[TreeNode] = list(roots)
        self.fork = fork
        self.signature = signature
        self.prologue = prologue
        self.length = flat_tree.root_span_end(self.roots[-1].index) // 2 if self.roots else 0
        self.byte_length = sum(r.size for r in self.roots)
        if [r.index for r in self.roots] != full_roots(2 * self.length):
            raise CoreError("roots do not form a tree", roots=[r.index for r in self.roots])

    # --- head ---------------------------------------------------------------------------------

    def tree_hash(self) -> bytes:
        """Hash of the current roots (what the signature covers with ``length`` and ``fork``)."""
        return tree_hash(self.roots)

    def get_node(self, index: int) -> TreeNode:
        """A stored node of the current tree, or :class:`BlockNotAvailableError`."""
        if index < 0 or right_span(index) >= 2 * self.length:
            raise BlockNotAvailableError("tree node is outside the tree", index=index, length=self.length)
        node = self.reader.get_node(index)
        if node is None:
            raise BlockNotAvailableError("tree node is not stored", index=index)
        return node

    def roots_at(self, length: int) -> tuple[TreeNode, ...]:
        """Roots of the tree at an earlier ``length`` (read from stored nodes)."""
        if not 0 <= length <= self.length:
            raise CoreError("length is beyond the tree", length=length, tree_length=self.length)
        out: list[TreeNode] = []
        for i, index in enumerate(full_roots(2 * length)):
            if i < len(self.roots) and self.roots[i].index == index:
                out.append(self.roots[i])
                continue
            node = self.reader.get_node(index)
            if node is None:
                raise StorageError("root of a shorter tree is not stored", index=index, length=length)
            out.append(node)
        return tuple(out)

    def upgradeable(self, length: int) -> bool:
        """True when every root at ``length`` is stored, so an upgrade from ``length`` can be proven."""
        if not 0 <= length <= self.length:
            return False
        return all(self.reader.get_node(i) is not None for i in full_roots(2 * length))

    def _update(
        self,
        *,
        roots: Sequence[TreeNode],
        length: int,
        byte_length: int,
        nodes: Sequence[TreeNode],
        upgraded: bool,
        fork: int | None = None,
        signature: bytes | None = None,
        ancestors: int | None = None,
        block: DataBlock | None = None,
        hash_node: TreeNode | None = None,
    ) -> TreeUpdate:
        return TreeUpdate(
            fork=self.fork if fork is None else fork,
            length=length,
            byte_length=byte_length,
            roots=tuple(roots),
            nodes=tuple(nodes),
            signature=signature,
            upgraded=upgraded,
            base_length=self.length,
            base_fork=self.fork,
            ancestors=self.length if ancestors is None else ancestors,
            block=block,
            hash_node=hash_node,
        )

    def append(self, blocks: Sequence[bytes]) -> TreeUpdate:
        """The tree after appending ``blocks``: new leaves and parents, and the new roots.

        The update carries no signature; the writer signs ``update.tree_hash()`` with the new length
        and fork and attaches it with :meth:`TreeUpdate.with_signature`.
        """
        roots = list(self.roots)
        nodes: list[TreeNode] = []
        length = self.length
        byte_length = self.byte_length
        blake = hashlib.blake2b
        pack_head = _PARENT_HEAD.pack
        for block in blocks:
            size = len(block)
            pos = 2 * length
            node = TreeNode(pos, size, leaf_hash(block))
            nodes.append(node)
            roots.append(node)
            byte_length += size
            # Block n completes one parent per trailing one-bit of n (the two newest roots merge).
            n = length
            d = 0
            while n & 1:
                left = roots[-2]
                right = roots[-1]
                pos = (pos & ~(1 << (d + 1))) | (1 << d)
                d += 1
                total = left.size + right.size
                h = blake(pack_head(1, total), digest_size=32)
                h.update(left.hash)
                h.update(right.hash)
                node = TreeNode(pos, total, h.digest())
                nodes.append(node)
                del roots[-2:]
                roots.append(node)
                n >>= 1
            length += 1
        if length > MAX_LENGTH:
            raise CoreError("core length limit reached", length=length)
        return self._update(
            roots=roots, length=length, byte_length=byte_length, nodes=nodes, upgraded=bool(blocks)
        )

    def truncate(self, length: int, fork: int) -> TreeUpdate:
        """The tree cut back to ``length`` blocks on ``fork`` (roots come from stored nodes).

        Unsigned, like :meth:`append`. ``update.truncated`` tells the storage owner to drop the
        nodes listed by :func:`obsolete_nodes`.
        """
        if not 0 <= length <= self.length:
            raise CoreError("cannot truncate beyond the tree", length=length, tree_length=self.length)
        if fork < 0 or fork >= _U64_LIMIT:
            raise CoreError("fork out of range", fork=fork)
        roots = self.roots_at(length)
        return self._update(
            roots=roots,
            length=length,
            byte_length=sum(r.size for r in roots),
            nodes=(),
            upgraded=True,
            fork=fork,
            ancestors=length,
        )

    def reorg(self, proof: Proof, check_signature: CheckSignature) -> ReorgBatch:
        """Start following a remote's newer fork: verify its whole signed tree and locate the divergence.

        ``proof`` must carry ``upgrade{0, length}`` on a fork above ours (anything else is a
        :class:`VerificationError`: a lower or equal fork cannot replace a signed head). Like JS
        ``MerkleTree.reorg``, the first new root that is not a node we store marks where the trees
        part; the batch then narrows that down with hash proofs (:meth:`ReorgBatch.update`). Never
        mutates the tree.
        """
        if proof.fork <= self.fork:
            raise VerificationError("a reorg must move to a newer fork", fork=proof.fork, current=self.fork)
        update = self.verify_remote(proof, check_signature)
        batch = ReorgBatch(self.reader, update, self.length)
        for root in update.roots:
            if batch.stored_matches(root):
                continue
            if not batch.set_diff(root):
                batch.descend({n.index: n for n in update.nodes})
            return batch
        batch.finish(update.length)
        return batch

    def apply(self, update: TreeUpdate) -> None:
        """Adopt ``update`` (its nodes must already be stored: later reads go through the reader)."""
        if update.base_fork != self.fork:
            raise CoreError("update was computed for another fork", fork=update.base_fork)
        if update.upgraded:
            if update.base_length != self.length:
                raise CoreError("tree changed since the update was computed", length=update.base_length)
        elif update.base_length > self.length:
            raise CoreError("update is for a longer tree", length=update.base_length)
        if not update.upgraded:
            return
        self.roots = list(update.roots)
        self.length = update.length
        self.byte_length = update.byte_length
        self.fork = update.fork
        self.signature = update.signature

    # --- bytes ----------------------------------------------------------------------------------

    def _byte_offset_of(self, index: int) -> int:
        """Bytes before the leftmost block of tree node ``index`` (sizes of the subtrees to its left)."""
        if index & 1:
            index = left_span(index)
        head = 2 * self.length
        if index == head:
            return self.byte_length
        if index > head:
            raise CoreError("index is beyond the tree", index=index, length=self.length)
        total = 0
        for root in self.roots:
            end = flat_tree.root_span_end(root.index)
            if index >= end:
                total += root.size
                continue
            pos = root.index
            while pos != index:
                left = flat_tree.left_child(pos)
                if index < pos:
                    pos = left
                else:
                    total += self.get_node(left).size
                    pos = sibling(left)
            return total
        raise CoreError("index is beyond the tree", index=index)  # pragma: no cover - guarded above

    def byte_offset(self, index: int) -> int:
        """Byte offset of block ``index`` in the core (``byte_length`` for ``index == length``)."""
        if not 0 <= index <= self.length:
            raise CoreError("block index is beyond the tree", index=index, length=self.length)
        return self._byte_offset_of(2 * index)

    def byte_range(self, index: int) -> tuple[int, int]:
        """``(offset, size)`` of block ``index``."""
        if not 0 <= index < self.length:
            raise CoreError("block index is beyond the tree", index=index, length=self.length)
        return self._byte_offset_of(2 * index), self.get_node(2 * index).size

    def seek(self, byte_offset: int, padding: int = 0) -> tuple[int, int]:
        """Which block holds ``byte_offset``: ``(block index, offset inside it)``.

        ``padding`` bytes per block are not counted (encrypted cores). An offset equal to the total
        size gives ``(length, 0)``. When the local nodes do not reach down to the block (a sparse
        core), :class:`BlockNotAvailableError` says which blocks to fetch (``start``, ``end``).
        """
        if byte_offset < 0 or padding < 0:
            raise CoreError("negative seek", bytes=byte_offset, padding=padding)
        if byte_offset == 0:
            return 0, 0
        remaining = byte_offset
        for root in self.roots:
            size = root.size - padding * flat_tree.count_leaves(root.index)
            if remaining == size:
                return flat_tree.root_span_end(root.index) // 2, 0
            if remaining > size:
                remaining -= size
                continue
            pos = root.index
            while pos & 1:
                left_index = flat_tree.left_child(pos)
                left = self.reader.get_node(left_index)
                if left is None:
                    lo, hi = flat_tree.spans(pos)
                    raise BlockNotAvailableError(
                        "nodes needed to seek are not stored", start=lo // 2, end=hi // 2 + 1
                    )
                size = left.size - padding * flat_tree.count_leaves(left_index)
                if size == remaining:
                    return right_span(left_index) // 2 + 1, 0
                if size > remaining:
                    pos = left_index
                    continue
                remaining -= size
                pos = sibling(left_index)
            return pos // 2, remaining
        raise CoreError("seek beyond the end of the core", bytes=byte_offset)

    def missing_nodes(self, index: int) -> int:
        """The ``nodes`` count to put in a request for block ``index`` (levels not stored locally)."""
        return self.missing_tree_nodes(2 * index)

    def missing_tree_nodes(self, tree_index: int) -> int:
        """The ``nodes`` count for a hash request of node ``tree_index``.

        Counts the target and its ancestors that are not stored, stopping at the first stored one or
        at a node spanning past our length. Zero when the target is beyond our tree: the request
        then rides on an upgrade.
        """
        head = 2 * self.length
        if tree_index < 0 or right_span(tree_index) >= head:
            return 0
        pos = tree_index
        count = 0
        get = self.reader.get_node
        # Walk up while the node is not stored and lies inside the tree (an ancestor of a node
        # inside the tree starts left of ``head``, so it holds ``head`` once its span reaches it).
        # The flat-tree steps are written out: a reader calls this for every block it requests.
        bit = (tree_index + 1) & -(tree_index + 1)  # 2^depth
        while pos + bit - 1 < head and get(pos) is None:
            count += 1
            pos = (pos & ~(bit << 1)) | bit
            bit <<= 1
        return count

    # --- proof generation (responder) -----------------------------------------------------------

    def _proof_node(self, index: int, head: int) -> TreeNode:
        if right_span(index) >= head:
            raise ProofRequestError("proof would need a node beyond the tree", index=index)
        node = self.reader.get_node(index)
        if node is None:
            raise BlockNotAvailableError("tree node is not stored", index=index)
        return node

    def _seek_trusted(self, root: int, remaining: int, padding: int) -> int:
        """Descend from ``root`` to the deepest stored node that holds byte ``remaining``."""
        if not remaining:
            return root
        pos = root
        while pos & 1:
            left_index = flat_tree.left_child(pos)
            left = self.reader.get_node(left_index)
            if left is None:
                return pos
            size = left.size - padding * flat_tree.count_leaves(left_index)
            if size == remaining:
                return left_index
            if size > remaining:
                pos = left_index
                continue
            remaining -= size
            pos = sibling(left_index)
        return pos

    def _seek_from_head(self, head: int, byte_offset: int, padding: int) -> int:
        """Node where ``byte_offset`` lands in the tree whose head is ``head`` (``head`` if past it)."""
        remaining = byte_offset
        for root in full_roots(head):
            node = self.get_node(root)
            size = node.size - padding * flat_tree.count_leaves(root)
            if remaining == size:
                return root
            if remaining > size:
                remaining -= size
                continue
            return self._seek_trusted(root, remaining, padding)
        return head

    def _seek_untrusted(self, root: int, byte_offset: int, padding: int) -> int:
        """Like :meth:`_seek_trusted` inside ``root``, but check the offset really lies in it.

        Compatibility quirk: JS 11.39.5 computes the offset of ``root`` as NaN whenever a whole root
        lies to its left (it adds ``.size`` of a number), and then every comparison fails and the seek
        stops at ``root`` itself, so no seek chain is sent. We reproduce that so that a JS requester
        gets exactly the nodes a JS responder would send.
        """
        if self.roots and left_span(root) >= flat_tree.root_span_end(self.roots[0].index):
            return root
        before = self._byte_offset_of(root)
        if padding:
            before -= padding * left_span(root) // 2
        if before > byte_offset:
            raise ProofRequestError("seek offset is left of the proven subtree", bytes=byte_offset)
        if before == byte_offset:
            return root
        remaining = byte_offset - before
        node = self.get_node(root)
        if node.size - padding * flat_tree.count_leaves(root) <= remaining:
            raise ProofRequestError("seek offset is right of the proven subtree", bytes=byte_offset)
        return self._seek_trusted(root, remaining, padding)

    def _seek_chain(self, seek_root: int, top: int, head: int, p: _Pending) -> None:
        """The seek proof: the node where the seek landed, then siblings up to ``top``."""
        pos = seek_root
        if not flat_tree.contains(top, pos):
            raise ProofRequestError("seek proof does not reach its top", top=top)
        chain = [self._proof_node(pos, head)]
        while pos != top:
            chain.append(self._proof_node(sibling(pos), head))
            pos = parent(pos)
        p.seek = chain

    def _block_and_seek(
        self, target: _Target | None, seek: bool, seek_root: int, top: int, head: int, p: _Pending
    ) -> None:
        """Siblings from the target up to ``top``, splicing the seek chain in where it fits."""
        if target is None:
            self._seek_chain(seek_root, top, head, p)
            return
        pos = target.index
        chain: list[TreeNode] = []
        p.node = chain
        if not flat_tree.contains(top, pos):
            raise ProofRequestError("block proof does not reach its top", top=top)
        if not target.is_block:
            chain.append(self._proof_node(pos, head))
        while pos != top:
            sib = sibling(pos)
            if seek and flat_tree.contains(sib, seek_root) and sib != seek_root:
                self._seek_chain(seek_root, sib, head, p)
            else:
                chain.append(self._proof_node(sib, head))
            pos = parent(pos)

    def _upgrade_part(
        self,
        target: _Target | None,
        seek: bool,
        start: int,
        end: int,
        subtree: int,
        head: int,
        p: _Pending,
        additional: bool,
    ) -> list[TreeNode]:
        """Nodes that take a requester from the tree at leaf ``start`` to the tree at leaf ``end``.

        For the main upgrade (``additional`` false) the node containing ``subtree`` is replaced by the
        block/seek proof of the target, so the requester recomputes it.
        """
        out: list[TreeNode] | None = [] if start == 0 else None
        last = start - 2  # the requester's last leaf
        for root in full_roots(end):
            if flat_tree.root_span_end(root) < start + 1:
                continue  # the requester has this root already
            if out is None and flat_tree.contains(root, last):
                out = []
                pos = last
                while pos != root:
                    sib = sibling(pos)
                    if sib > last:
                        if (
                            not additional
                            and p.node is None
                            and p.seek is None
                            and flat_tree.contains(sib, subtree)
                        ):
                            self._block_and_seek(target, seek, subtree, sib, head, p)
                        else:
                            out.append(self._proof_node(sib, head))
                    pos = parent(pos)
                continue
            if out is None:
                out = []
            if not additional and p.node is None and p.seek is None and flat_tree.contains(root, subtree):
                self._block_and_seek(target, seek, subtree, root, head, p)
                continue
            out.append(self._proof_node(root, head))
        return out if out is not None else []

    def proof(self, request: ProofRequest, block_value: bytes = b"") -> Proof:
        """Answer ``request`` with exactly the nodes the JS reference would send.

        ``block_value`` is the stored block when a block is requested (the tree does not hold block
        data). The caller checks ``request.fork`` and that it has the block first, as JS does before
        building a proof. Raises :class:`ProofRequestError` for a malformed request and
        :class:`BlockNotAvailableError` when a needed node is not stored.
        """
        block_request = request.block
        if (
            block_request is not None
            and request.hash is None
            and request.seek is None
            and request.upgrade is None
            and self.length > 0
        ):
            return self._block_proof(block_request.index, block_request.nodes, block_value)
        return self._general_proof(request, block_value)

    def _general_proof(self, request: ProofRequest, block_value: bytes) -> Proof:
        """:meth:`proof` for any combination of parts."""
        head = 2 * self.length
        upgrade = request.upgrade
        up_start = up_length = 0
        if upgrade is not None:
            up_start, up_length = upgrade.start, upgrade.length
            prologue = self.prologue
            if prologue is not None and up_start < prologue.length:
                up_start, up_length = 0, prologue.length
        start = 2 * up_start if upgrade is not None else 0
        end = start + 2 * up_length if upgrade is not None else head

        target: _Target | None = None
        if request.block is not None:
            b = request.block
            target = _Target(True, 2 * b.index, b.nodes, b.index)
        elif request.hash is not None:
            h = request.hash
            target = _Target(False, h.index, h.nodes, right_span(h.index) // 2)
        if target is not None and (target.index < 0 or target.nodes < 0):
            raise ProofRequestError("negative index or nodes in request")
        seek = request.seek

        if head == 0:
            return Proof(fork=self.fork)
        if start >= end or end > head:
            raise ProofRequestError("invalid upgrade range", start=up_start, length=up_length)
        if seek is not None and upgrade is not None and target is not None and target.index >= start:
            raise ProofRequestError("cannot combine a seek with a block/hash request inside an upgrade")

        p = _Pending()
        subtree = head
        if target is not None and (upgrade is None or target.last_block < up_start):
            subtree = target.index
            for _ in range(target.nodes):
                subtree = parent(subtree)
                if flat_tree.contains(subtree, end):
                    raise ProofRequestError("nodes is out of bounds", nodes=target.nodes)
            seek_root = head
            if seek is not None:
                seek_root = self._seek_untrusted(subtree, seek.bytes, seek.padding)
            self._block_and_seek(target, seek is not None, seek_root, subtree, head, p)
        elif (target is not None or seek is not None) and upgrade is not None:
            if seek is not None:
                subtree = self._seek_from_head(end, seek.bytes, seek.padding)
            else:
                assert target is not None
                subtree = target.index

        if upgrade is not None:
            p.upgrade = self._upgrade_part(target, seek is not None, start, end, subtree, head, p, False)
            if head > end:
                p.additional = self._upgrade_part(None, False, end, head, head, head, p, True)

        data_block: DataBlock | None = None
        data_hash: DataHash | None = None
        if request.block is not None:
            if p.node is None:
                raise ProofRequestError("invalid block request", index=request.block.index)
            data_block = DataBlock(request.block.index, block_value, tuple(p.node))
        elif request.hash is not None:
            if p.node is None:
                raise ProofRequestError("invalid hash request", index=request.hash.index)
            data_hash = DataHash(request.hash.index, tuple(p.node))
        data_seek = DataSeek(seek.bytes, tuple(p.seek)) if seek is not None and p.seek is not None else None
        data_upgrade: DataUpgrade | None = None
        if upgrade is not None:
            data_upgrade = DataUpgrade(
                start=up_start,
                length=up_length,
                nodes=tuple(p.upgrade or ()),
                additional_nodes=tuple(p.additional or ()),
                signature=self.signature or b"",
            )
        return Proof(fork=self.fork, block=data_block, hash=data_hash, seek=data_seek, upgrade=data_upgrade)

    def _block_proof(self, index: int, levels: int, value: bytes) -> Proof:
        """The answer to a plain block request (no hash, seek or upgrade): the ``levels``
        siblings on the way up from the leaf, as :meth:`proof` would list them, with the same
        errors, written out with bit operations because a server builds one per block it sends."""
        head = 2 * self.length
        pos = 2 * index
        if pos < 0 or levels < 0:
            raise ProofRequestError("negative index or nodes in request")
        bit = 1
        for _ in range(levels):
            pos = (pos & ~(bit << 1)) | bit
            bit <<= 1
            if pos - bit + 1 <= head <= pos + bit - 1:
                raise ProofRequestError("nodes is out of bounds", nodes=levels)
        pos = 2 * index
        bit = 1
        get = self.reader.get_node
        chain: list[TreeNode] = []
        for _ in range(levels):
            sib = pos ^ (bit << 1)
            if sib + bit - 1 >= head:
                raise ProofRequestError("proof would need a node beyond the tree", index=sib)
            node = get(sib)
            if node is None:
                raise BlockNotAvailableError("tree node is not stored", index=sib)
            chain.append(node)
            pos = (pos & ~(bit << 1)) | bit
            bit <<= 1
        return Proof(fork=self.fork, block=DataBlock(index, value, tuple(chain)))

    # --- proof verification (requester) ---------------------------------------------------------

    @staticmethod
    def _fold_subtree(proof: Proof, nodes: list[TreeNode]) -> tuple[TreeNode | None, TreeNode | None]:
        """Hash the block/hash/seek chains of ``proof`` into their top node ``X`` (or ``None``).

        Also returns the target itself (the leaf of the block, the node of a hash proof).
        """
        top: TreeNode | None = None
        seek = proof.seek
        if seek is not None and seek.nodes:
            for n in seek.nodes:
                _check_node(n)
            q = _NodeQueue(seek.nodes)
            pos = seek.nodes[0].index
            top = q.shift(pos)
            nodes.append(top)
            while q.remaining() > 0:
                sib = q.shift(sibling(pos))
                pos = parent(pos)
                top = _parent_node(pos, top, sib)
                nodes.append(sib)
                nodes.append(top)

        chain: Sequence[TreeNode]
        if proof.block is not None:
            pos = 2 * proof.block.index
            chain = proof.block.nodes
        elif proof.hash is not None:
            pos = proof.hash.index
            chain = proof.hash.nodes
        else:
            return top, None
        for n in chain:
            _check_node(n)
        if pos < 0 or pos >= _U64_LIMIT:
            raise VerificationError("proof target index out of range", index=pos)
        q = _NodeQueue(chain, top)
        if proof.block is not None:
            value = proof.block.value
            top = TreeNode(pos, len(value), leaf_hash(value))
        else:
            top = q.shift(pos)
        target = top
        nodes.append(top)
        while q.remaining() > 0:
            sib = q.shift(sibling(pos))
            pos = parent(pos)
            top = _parent_node(pos, top, sib)
            nodes.append(sib)
            nodes.append(top)
        return top, target

    def _grow(self, proof: Proof, upgrade: DataUpgrade, top: TreeNode | None, g: _Growth) -> bool:
        """Rebuild the roots at the upgraded length into ``g``; True when ``top`` was used."""
        prologue = self.prologue
        if (
            prologue is not None
            and upgrade.start < prologue.length
            and (upgrade.start != 0 or upgrade.length < prologue.length)
        ):
            raise VerificationError("upgrade does not cover the prologue")
        for n in upgrade.nodes:
            _check_node(n)
        for n in upgrade.additional_nodes:
            _check_node(n)

        q = _NodeQueue(upgrade.nodes, top)
        roots = g.roots
        grow = len(roots) > 0
        i = 0
        for root in full_roots(2 * (upgrade.start + upgrade.length)):
            if i < len(roots) and roots[i].index == root:
                i += 1
                continue
            if grow:
                grow = False
                if i < len(roots):
                    pos = roots[-1].index
                    while pos != root:
                        pos = sibling(pos)
                        pos = g.append_root(q.shift(pos), pos)
                    continue
            g.append_root(q.shift(root), root)
        if len(q.nodes) != q.i:
            raise VerificationError("upgrade proof has unused nodes", unused=len(q.nodes) - q.i)

        if prologue is not None and g.length == prologue.length and tree_hash(g.roots) != prologue.hash:
            raise VerificationError("tree at the prologue length does not match the prologue hash")

        extra = upgrade.additional_nodes
        pos = g.roots[-1].index
        k = 0
        while k < len(extra):
            pos = sibling(pos)
            if extra[k].index != pos:
                break
            pos = g.append_root(extra[k], pos)
            k += 1
        while k < len(extra):
            node = extra[k]
            k += 1
            while node.index != pos:
                if not pos & 1:
                    raise VerificationError("unexpected additional node", index=node.index)
                pos = flat_tree.left_child(pos)
            pos = g.append_root(node, pos)
            pos = sibling(pos)
        return q.extra is None and top is not None

    def _is_trusted(self, node: TreeNode) -> bool:
        if right_span(node.index) >= 2 * self.length:
            return False
        stored = self.reader.get_node(node.index)
        return stored is not None and stored.hash == node.hash and stored.size == node.size

    def verify(self, proof: Proof, check_signature: CheckSignature) -> TreeUpdate:
        """Check a remote ``proof`` against what this tree trusts; never mutates.

        Returns the update to store and :meth:`apply`: the proven block (``update.block``) or node
        (``update.hash_node``), every verified and computed node, and, for an upgrade, the new roots,
        length, fork and signature. Raises :class:`VerificationError` for anything that does not check
        out: a proof on another fork, misplaced or missing sibling indexes, unused nodes, hashes that
        do not lead to a trusted node, or a signature that ``check_signature`` refuses.
        """
        if proof.fork != self.fork:
            raise VerificationError("proof is for another fork", fork=proof.fork, expected=self.fork)
        try:
            return self._verify(proof, check_signature, remote_only=False)
        except (struct.error, OverflowError) as exc:
            raise VerificationError("proof values out of range", detail=str(exc)) from exc

    def verify_remote(self, proof: Proof, check_signature: CheckSignature) -> TreeUpdate:
        """Check a proof that carries a whole signed tree (an upgrade from 0), on any fork.

        This is the first step of a reorg (hypercore.md §8): nothing local is trusted, so the proof
        must hold ``upgrade{start 0}`` and any block/hash in it must be covered by that upgrade. The
        update has ``ancestors == 0``; finding the common prefix with the local tree is the caller's.
        """
        upgrade = proof.upgrade
        if upgrade is None or upgrade.start != 0:
            raise VerificationError("a remote-only proof needs an upgrade from 0")
        try:
            return self._verify(proof, check_signature, remote_only=True)
        except (struct.error, OverflowError) as exc:
            raise VerificationError("proof values out of range", detail=str(exc)) from exc

    def _verify_block(self, block: DataBlock) -> TreeUpdate:
        """Check a plain block proof (no upgrade, hash or seek) walking up from the leaf.

        A requester pipelines many requests, so most of a proof's upper nodes arrived with
        earlier answers; this uses what we already hold instead of rehashing it. Every node
        computed where we hold one must equal it (a mismatch is a forgery, refused at once).
        Once the node reached is one we trust, a sibling we hold must equal ours, and then their
        parent is a node of the trusted tree too, so it is neither hashed nor looked up unless
        a later sibling we do not hold needs its value. The proof is accepted once its last
        node is trusted that way; only nodes we do not hold yet are returned for storage.
        """
        pos = 2 * block.index
        if pos < 0 or pos >= _U64_LIMIT:
            raise VerificationError("proof target index out of range", index=pos)
        head = 2 * self.length
        get = self.reader.get_node
        blake = hashlib.blake2b
        pack_head = _PARENT_HEAD.pack
        value = block.value
        top = tree_node(pos, len(value), leaf_hash(value))
        new: list[TreeNode] = []
        held = get(pos) if pos < head else None
        if held is None:
            new.append(top)
        elif held.hash != top.hash or held.size != top.size:
            raise VerificationError("block does not match the trusted tree", index=block.index)
        trusted = held is not None  # the node at ``pos`` belongs to the trusted tree
        skipped: list[TreeNode] = []  # held siblings passed while trusted, above ``top``
        bit = 1  # 2^depth of ``pos``
        for sib in block.nodes:
            sib_index = pos ^ (bit << 1)
            if sib.index != sib_index:
                raise VerificationError("proof node at the wrong index", expected=sib_index, got=sib.index)
            if len(sib.hash) != _HASH_SIZE or not 0 <= sib.size < MAX_LENGTH:
                raise VerificationError("tree node hash or size out of range", index=sib_index)
            ppos = (pos & ~(bit << 1)) | bit
            if trusted:
                known = get(sib_index) if sib_index + bit - 1 < head else None
                if known is not None:
                    if known.hash != sib.hash or known.size != sib.size:
                        raise VerificationError("proof node does not match the trusted tree", index=sib_index)
                    skipped.append(known)
                    pos = ppos
                    bit <<= 1
                    continue
                for k in skipped:  # a sibling we lack follows: the value of ``pos`` is needed
                    top = _parent_node(parent(top.index), top, k)
                skipped.clear()
            total = top.size + sib.size
            h = blake(pack_head(1, total), digest_size=32)
            if sib_index < pos:
                h.update(sib.hash)
                h.update(top.hash)
            else:
                h.update(top.hash)
                h.update(sib.hash)
            top = tree_node(ppos, total, h.digest())
            new.append(sib)
            pos = ppos
            bit <<= 1
            held = get(pos) if pos + bit - 1 < head else None
            if held is None:
                new.append(top)
                trusted = False
            elif held.hash != top.hash or held.size != top.size:
                raise VerificationError("proof does not lead to a trusted node", index=pos)
            else:
                trusted = True
        if not trusted:
            raise VerificationError("proof does not lead to a trusted node", index=pos)
        return _tree_update(
            self.fork,
            self.length,
            self.byte_length,
            tuple(self.roots),
            tuple(new),
            None,
            False,
            self.length,
            self.fork,
            self.length,
            block,
            None,
        )

    def _verify(self, proof: Proof, check_signature: CheckSignature, *, remote_only: bool) -> TreeUpdate:
        block = proof.block
        if (
            block is not None
            and not remote_only
            and proof.upgrade is None
            and proof.hash is None
            and (proof.seek is None or not proof.seek.nodes)
        ):
            return self._verify_block(block)
        nodes: list[TreeNode] = []
        top, target = self._fold_subtree(proof, nodes)
        upgrade = proof.upgrade
        block = proof.block
        hash_node = target if proof.hash is not None and proof.block is None else None

        if upgrade is None:
            if top is None:
                return self._update(
                    roots=self.roots,
                    length=self.length,
                    byte_length=self.byte_length,
                    nodes=(),
                    upgraded=False,
                )
            if not self._is_trusted(top):
                raise VerificationError("proof does not lead to a trusted node", index=top.index)
            return self._update(
                roots=self.roots,
                length=self.length,
                byte_length=self.byte_length,
                nodes=_unique(nodes),
                upgraded=False,
                block=block,
                hash_node=hash_node,
            )

        if upgrade.length <= 0:
            raise VerificationError("empty upgrade")
        if upgrade.start + upgrade.length > MAX_LENGTH:
            raise VerificationError("upgrade length out of range", length=upgrade.start + upgrade.length)
        g = _Growth((), 0, 0) if remote_only else _Growth(self.roots, self.length, self.byte_length)
        used = self._grow(proof, upgrade, top, g)
        if [r.index for r in g.roots] != full_roots(2 * g.length) or g.length > MAX_LENGTH:
            raise VerificationError("upgrade does not produce a well-formed tree", length=g.length)
        if top is not None and not used and (remote_only or not self._is_trusted(top)):
            raise VerificationError("proof does not lead to a trusted node", index=top.index)
        all_nodes = _unique([*nodes, *g.nodes])

        if not remote_only and g.length <= self.length:
            # Nothing new: acceptable only if the rebuilt roots are nodes we already trust.
            if not all(self._is_trusted(r) for r in g.roots):
                raise VerificationError("upgrade to a shorter tree does not match ours", length=g.length)
            return self._update(
                roots=self.roots,
                length=self.length,
                byte_length=self.byte_length,
                nodes=all_nodes,
                upgraded=False,
                block=block,
                hash_node=hash_node,
            )

        signature = bytes(upgrade.signature)
        digest = tree_hash(g.roots)
        if not signature or not check_signature(digest, g.length, proof.fork, signature):
            raise VerificationError("bad signature on upgrade", length=g.length, fork=proof.fork)
        return self._update(
            roots=g.roots,
            length=g.length,
            byte_length=g.byte_length,
            nodes=all_nodes,
            upgraded=True,
            fork=proof.fork,
            signature=signature,
            ancestors=0 if remote_only else self.length,
            block=block,
            hash_node=hash_node,
        )


class ReorgBatch:
    """A verified newer fork of a remote, and how much of our tree it shares (JS ``ReorgBatch``).

    ``remote`` is the remote's whole signed tree (from :meth:`MerkleTree.verify_remote`). The
    batch keeps ``diff``, the highest new-tree node known to differ from what we store, and
    ``ancestors``, the blocks before it (which both trees share). While not :attr:`finished`,
    ``want_start``/``want_end``/``want_nodes`` say what to ask a peer next: a hash proof of leaf
    ``2*i`` for some block ``i`` in ``[want_start, want_end)`` with ``want_nodes`` levels, which
    reaches exactly up to ``diff`` and lets us descend one or more levels. The narrowing is what
    lets a reader keep the blocks a truncation did not touch instead of refetching the whole root.
    """

    __slots__ = (
        "_reader",
        "ancestors",
        "diff",
        "finished",
        "nodes",
        "old_length",
        "remote",
        "want_end",
        "want_nodes",
        "want_start",
    )

    def __init__(self, reader: NodeReader, remote: TreeUpdate, old_length: int) -> None:
        self._reader = reader
        self.remote = remote
        self.old_length = old_length
        self.nodes: dict[int, TreeNode] = {n.index: n for n in remote.nodes}
        self.diff: TreeNode | None = None
        self.ancestors = 0
        self.finished = False
        self.want_start = 0
        self.want_end = 0
        self.want_nodes = 0

    @property
    def fork(self) -> int:
        return self.remote.fork

    @property
    def base_fork(self) -> int:
        return self.remote.base_fork

    @property
    def base_length(self) -> int:
        return self.remote.base_length

    def stored_matches(self, node: TreeNode) -> bool:
        """True when we store ``node`` (same hash) as part of our current tree."""
        if right_span(node.index) >= 2 * self.old_length:
            return False
        existing = self._reader.get_node(node.index)
        return existing is not None and existing.hash == node.hash

    def finish(self, ancestors: int) -> None:
        self.finished = True
        self.ancestors = ancestors

    def set_diff(self, diff: TreeNode) -> bool:
        """Make ``diff`` the divergence node; True when that settles the common prefix."""
        if self.finished:
            return True
        lo, hi = flat_tree.spans(diff.index)
        start = lo // 2
        end = min(self.old_length, hi // 2 + 1)
        self.ancestors = start
        self.diff = diff
        if not diff.index & 1 or self.want_start >= self.old_length or end <= start:
            self.finished = True
            return True
        self.want_start = start
        self.want_end = end
        self.want_nodes = (hi - lo + 2).bit_length() - 2
        return False

    def descend(self, known: dict[int, TreeNode]) -> bool:
        """Walk down from ``diff`` through the new-tree nodes in ``known``: into the left child
        while it differs from ours, else into the right one. True once the prefix is settled."""
        diff = self.diff
        if diff is None or self.finished:
            return True
        if not diff.index & 1:
            return True
        pos = diff.index
        found: TreeNode | None = None
        while pos & 1:
            left = known.get(flat_tree.left_child(pos))
            if left is None:
                break
            if not self.stored_matches(left):
                found = left
                pos = left.index
                continue
            pos = sibling(left.index)
            found = known.get(pos)
            if found is None:
                break
        if found is None:
            return False
        return self.set_diff(found)

    def update(self, proof: Proof) -> bool:
        """Narrow the divergence with a hash proof that reaches ``diff``; True once finished.

        A proof that does not fold into exactly ``diff`` (a signed node of the new tree) raises
        :class:`VerificationError`; its nodes are kept only once verified.
        """
        if self.finished:
            return True
        diff = self.diff
        if proof.hash is None or proof.block is not None or proof.upgrade is not None or diff is None:
            raise VerificationError("a reorg is narrowed with a hash proof only")
        if proof.fork != self.fork:
            raise VerificationError("hash proof is for another fork", fork=proof.fork, expected=self.fork)
        nodes: list[TreeNode] = []
        try:
            top, _target = MerkleTree._fold_subtree(proof, nodes)
        except (struct.error, OverflowError) as exc:
            raise VerificationError("proof values out of range", detail=str(exc)) from exc
        if top is None or top.index != diff.index or top.hash != diff.hash or top.size != diff.size:
            raise VerificationError("hash proof does not lead to the divergence node", index=diff.index)
        known = {n.index: n for n in nodes}
        for index, node in known.items():
            self.nodes.setdefault(index, node)
        return self.descend(known)

    def result(self) -> TreeUpdate:
        """The update to adopt: the new signed head, every verified node, and ``ancestors`` (the
        kept prefix, never more than either tree) so the owner knows what to delete."""
        ancestors = min(self.ancestors, self.old_length, self.remote.length)
        return replace(self.remote, nodes=tuple(self.nodes.values()), ancestors=ancestors)


def _unique(nodes: Iterable[TreeNode]) -> tuple[TreeNode, ...]:
    """Nodes without repeats (the same index may be produced twice while folding)."""
    seen: dict[int, TreeNode] = {}
    for n in nodes:
        seen.setdefault(n.index, n)
    return tuple(seen.values())
