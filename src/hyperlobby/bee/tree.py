"""The Hyperbee 2 B-tree: reads, writes, range and diff walks over yolo-indexed blocks.

Theory of operation
-------------------
A Hyperbee is one Hypercore. Block 0 is a header; every later block is one write (put or del)
that carries the written entry (``Node.key``/``Node.value``) and a *yolo index*: the tree nodes
that this write changed, level 0 being the new root, the rest in depth-first pre-order.
Unchanged subtrees are referenced by ``(seq, offset)`` = "node number ``offset`` of block
``seq``". A tree node's keys are entry seqs (the entry is the key/value of that block). So the
tree of version ``v`` is fully described by block ``v - 1``; old versions stay readable for
free.

Two halves live here:

* **Reads** (:class:`Reader`, :class:`RangeWalk`, :class:`DiffWalk`) work on immutable decoded
  blocks (:class:`DecodedBlock`) shared through a small LRU (:class:`BlockCache`), so a block
  is fetched and decoded once and then reused by every reader and writer of the bee.
* **Writes** (:class:`Writer`) reproduce the JavaScript implementation's *mutable* object graph:
  tree nodes (:class:`_TreeNode`) whose key and child references (:class:`_Key`,
  :class:`_Child`) are shared, mutable objects. That is deliberate. The bytes JS writes for a
  batch depend on object identity: a child reference that a later write in the same batch
  re-indexes is moved to the later block, and the earlier blocks of the batch keep only the
  nodes that nothing touched afterwards (with the content those nodes have when the batch is
  flushed). Writing the same operations must give the same blocks byte for byte, so the write
  path follows that model step by step rather than a "cleaner" functional B-tree.

Blocks come from peers, so every structural fact a walk relies on is checked when a block is
decoded: keys and children may only point at blocks up to the node's own block, a node has
either no children or one more child than keys, child coordinates come in pairs and name an
existing level. A walk deeper than :data:`MAX_DEPTH` (impossible for a real B-tree of at most
2^53 entries) means a reference cycle. Each of these raises :class:`DecodeError`.

The only place blocks enter is :meth:`BlockCache._get_block`; replication will later make it wait
for the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from hyperlobby.bee.messages import Header, Metadata, Node, decode_index_levels, encode_index
from hyperlobby.errors import DecodeError, HyperlobbyError

T = 5
MIN_KEYS = T - 1
MAX_CHILDREN = MIN_KEYS * 2 + 1
MAX_DEPTH = 64
# A batch keeps at most this many decoded committed blocks besides its own pending ones.
MAX_BLOCKS_CACHED = 128


class CoreLike(Protocol):
    """What the tree needs from a Hypercore (``hyperlobby.core.hypercore.Hypercore`` fits)."""

    @property
    def length(self) -> int: ...

    @property
    def fork(self) -> int: ...

    @property
    def writable(self) -> bool: ...

    def get(self, index: int) -> bytes: ...

    def append(self, blocks: bytes | list[bytes]) -> int: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One key/value as stored at block ``seq`` (bytes here; decoded by the Hyperbee layer)."""

    seq: int
    key: bytes
    value: bytes | None


def _cmp(a: bytes, b: bytes) -> int:
    """memcmp order (what JS b4a.compare does): -1, 0 or 1."""
    if a == b:
        return 0
    return -1 if a < b else 1


def _search(keys: Sequence[int], key: bytes, key_of: Callable[[int], bytes]) -> tuple[bool, int]:
    """Binary search of ``key`` in a node's keys (block seqs, sorted by their keys).

    Returns ``(True, i)`` when key ``i`` equals it, else ``(False, i)`` with ``i`` the number of
    keys below it: the insertion point, which is also the index of the child to descend into.
    Bytes compare in memcmp order, as JS b4a.compare does.
    """
    s = 0
    e = len(keys)
    while s < e:
        mid = (s + e) >> 1
        k = key_of(keys[mid])
        if key == k:
            return True, mid
        if key < k:
            e = mid
        else:
            s = mid + 1
    return False, s


# --- decoded blocks and the cache ----------------------------------------------------------------


class ReadNode:
    """An immutable tree node as read from a block: entry seqs and flattened child coordinates."""

    __slots__ = ("block", "children", "keys", "offset")

    def __init__(self, block: DecodedBlock, offset: int, keys: tuple[int, ...], children: tuple[int, ...]):
        self.block = block
        self.offset = offset
        self.keys = keys
        self.children = children


class DecodedBlock:
    """A node block decoded once. The index is decoded (and checked) only when a walk needs it,
    because most blocks are visited only for their key; node objects are made per level on use.
    The level lists are never mutated after decoding."""

    __slots__ = ("_index", "_levels", "_nodes", "key", "seq", "size", "value")

    def __init__(
        self,
        seq: int,
        key: bytes,
        value: bytes | None,
        index: bytes | None,
        levels: list[tuple[list[int], list[int]]] | None = None,
    ) -> None:
        self.seq = seq
        self.key = key
        self.value = value
        self._index = index
        # A block we just wrote comes with its levels: nothing to decode or check.
        self._levels = levels
        self._nodes: list[ReadNode | None] | None = None
        # rough memory cost for the cache budget: payload plus decoded-index overhead
        body = len(index) if index is not None else sum(len(k) + len(c) for k, c in levels or ())
        self.size = 256 + len(key) + (len(value) if value is not None else 0) + 24 * body

    @property
    def levels(self) -> list[tuple[list[int], list[int]]]:
        levels = self._levels
        if levels is None:
            levels = decode_index_levels(self._index or b"")
            seq = self.seq
            for offset, (keys, children) in enumerate(levels):
                _check_level(seq, offset, keys, children)
            self._levels = levels
            self._index = None
        return levels

    def level(self, offset: int) -> tuple[list[int], list[int]]:
        levels = self.levels
        if offset >= len(levels):
            raise DecodeError(
                "tree node reference past the end of its block's index", seq=self.seq, offset=offset
            )
        return levels[offset]

    def node(self, offset: int) -> ReadNode:
        nodes = self._nodes
        if nodes is None:
            nodes = self._nodes = [None] * len(self.levels)
        elif offset < len(nodes):
            found = nodes[offset]
            if found is not None:
                return found
        keys, children = self.level(offset)
        made = nodes[offset] = ReadNode(self, offset, tuple(keys), tuple(children))
        return made

    def is_deletion(self) -> bool:
        """A block without a value whose own seq is no key of its index is a del marker."""
        if self.value is not None:
            return False
        seq = self.seq
        return not any(seq in keys for keys, _ in self.levels)

    def entry(self) -> Entry:
        return Entry(self.seq, self.key, self.value)


def _check_level(seq: int, offset: int, keys: list[int], children: list[int]) -> None:
    if children and len(children) != 2 * (len(keys) + 1):
        raise DecodeError(
            "tree node has the wrong number of children", seq=seq, offset=offset, keys=len(keys)
        )
    for k in keys:
        if k < 1 or k > seq:
            raise DecodeError("tree node key points outside its past", seq=seq, key=k)
    for i in range(0, len(children), 2):
        c = children[i]
        if c < 1 or c > seq:
            raise DecodeError("tree node child points outside its past", seq=seq, child=c)


class BlockCache:
    """Decoded blocks of one core, least recently used dropped first; shared by every view
    (checkouts, subs, batches) of a bee. Bounded both by count and by (approximate) bytes, so a
    bee of large values does not pin them all in memory. The seam for replication is
    :meth:`_get_block`."""

    def __init__(self, core: CoreLike, capacity: int = 8192, max_bytes: int = 32 << 20) -> None:
        self.core = core
        self.capacity = max(16, capacity)
        self.max_bytes = max(1 << 16, max_bytes)
        self._blocks: dict[int, DecodedBlock] = {}
        self._bytes = 0

    def _get_block(self, seq: int) -> bytes:
        """Raw bytes of block ``seq`` (local today; the replicator will make this fetch)."""
        return self.core.get(seq)

    def get(self, seq: int) -> DecodedBlock:
        blocks = self._blocks
        hit = blocks.pop(seq, None)
        if hit is not None:
            blocks[seq] = hit
            return hit
        if seq < 1:
            raise DecodeError("block 0 is the header, not a tree node", seq=seq)
        node = Node.decode(self._get_block(seq))
        decoded = DecodedBlock(seq, node.key, node.value, node.index)
        self.put(decoded)
        return decoded

    def put(self, decoded: DecodedBlock) -> None:
        """Remember a decoded block (writers add the blocks they append, already decoded)."""
        blocks = self._blocks
        old = blocks.pop(decoded.seq, None)
        if old is not None:
            self._bytes -= old.size
        blocks[decoded.seq] = decoded
        self._bytes += decoded.size
        while len(blocks) > self.capacity or (self._bytes > self.max_bytes and len(blocks) > 1):
            self._bytes -= blocks.pop(next(iter(blocks))).size

    def forget_from(self, length: int) -> None:
        """Drop blocks at or past ``length`` (after a truncation those numbers mean new blocks)."""
        for seq in [s for s in self._blocks if s >= length]:
            self._bytes -= self._blocks.pop(seq).size

    def clear(self) -> None:
        self._blocks.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._blocks)


# --- reads ---------------------------------------------------------------------------------------


class Reader:
    """Read access to one version (``version`` = core length the view is pinned to)."""

    __slots__ = ("cache", "version")

    def __init__(self, cache: BlockCache, version: int) -> None:
        self.cache = cache
        self.version = version

    def block(self, seq: int) -> DecodedBlock:
        if seq >= self.version:
            raise DecodeError("tree references a block past its version", seq=seq, version=self.version)
        return self.cache.get(seq)

    def key(self, seq: int) -> bytes:
        return self.block(seq).key

    def root(self) -> ReadNode | None:
        if self.version < 2:
            return None
        return self.block(self.version - 1).node(0)

    def child(self, node: ReadNode, i: int) -> ReadNode:
        seq = node.children[2 * i]
        offset = node.children[2 * i + 1]
        blk = node.block if seq == node.block.seq else self.block(seq)
        return blk.node(offset)

    def get(self, key: bytes) -> DecodedBlock | None:
        """The block holding ``key`` at this version, or None (JS ``Batch._get``)."""
        node = self.root()
        depth = 0
        while node is not None:
            blk = node.block
            if blk.key == key:
                return None if blk.is_deletion() else blk
            keys = node.keys
            found, i = _search(keys, key, self.key)
            if found:
                return self.block(keys[i])
            if not node.children:
                return None
            depth += 1
            if depth > MAX_DEPTH:
                raise DecodeError("tree deeper than any real Hyperbee (a reference cycle?)")
            node = self.child(node, i)
        return None


@dataclass(frozen=True, slots=True)
class Bounds:
    """Encoded range bounds (bytes), as the iterators compare them."""

    gt: bytes | None = None
    gte: bytes | None = None
    lt: bytes | None = None
    lte: bytes | None = None


class _Frame:
    """A range-walk stack entry: a node and the position in it (even = child, odd = key)."""

    __slots__ = ("i", "node")

    def __init__(self, node: ReadNode, i: int) -> None:
        self.node = node
        self.i = i


class RangeWalk:
    """In-order (or reverse) walk with an explicit stack, seeded by a bisection of the start
    bound, exactly as JS ``RangeIterator`` so limits and bounds behave the same."""

    def __init__(self, reader: Reader, bounds: Bounds, reverse: bool = False, limit: int = -1) -> None:
        self.reader = reader
        self.limit = limit
        # (JS tests the bounds for truthiness; an empty Buffer is truthy there, so test for None)
        self.g_incl = bounds.gt is None
        self.g_key = bounds.gt if bounds.gt is not None else bounds.gte
        self.l_incl = bounds.lt is None
        self.l_key = bounds.lt if bounds.lt is not None else bounds.lte
        self.reverse = reverse
        self.stack: list[_Frame] = []

    def _push(self, node: ReadNode, i: int) -> None:
        if len(self.stack) > MAX_DEPTH:
            raise DecodeError("tree deeper than any real Hyperbee (a reference cycle?)")
        self.stack.append(_Frame(node, i))

    def _open(self) -> None:
        reader = self.reader
        node = reader.root()
        if node is None:
            return
        reverse = self.reverse
        incl = self.l_incl if reverse else self.g_incl
        start = self.l_key if reverse else self.g_key
        if start is None:
            self._push(node, len(node.keys) << 1 if reverse else 0)
            return
        while True:
            keys = node.keys
            found, pos = _search(keys, start, reader.key)
            if found:
                self._push(node, pos * 2 + 1 if incl else pos * 2 + (0 if reverse else 2))
                return
            i = 2 * pos + (-1 if reverse else 1)
            if 0 <= i <= len(keys) << 1:
                self._push(node, i)
            if not node.children:
                return
            node = reader.child(node, pos)

    def __iter__(self) -> Iterator[DecodedBlock]:
        self._open()
        reader = self.reader
        reverse = self.reverse
        end = self.g_key if reverse else self.l_key
        incl = self.g_incl if reverse else self.l_incl
        stack = self.stack
        while stack and (self.limit == -1 or self.limit > 0):
            top = stack[-1]
            node = top.node
            i = top.i
            is_key = (i & 1) == 1
            if reverse:
                if i < 0:
                    n = len(node.keys)
                else:
                    n = i >> 1
                    top.i = i - 1
            else:
                n = i >> 1
                top.i = i + 1
            if not is_key:
                if not node.children:
                    continue
                child = reader.child(node, n)
                self._push(child, len(child.keys) << 1 if reverse else 0)
                continue
            if n >= len(node.keys):
                stack.pop()
                continue
            blk = reader.block(node.keys[n])
            if end is not None:
                c = _cmp(blk.key, end)
                if (not incl) if c == 0 else (c < 0 if reverse else c > 0):
                    self.limit = 0
                    break
            if self.limit > 0:
                self.limit -= 1
            yield blk


class _SubTree:
    """A position in one tree for the diff walk: ``i`` alternates child (even) and key (odd)."""

    __slots__ = ("i", "is_key", "n", "node", "offset", "parent", "reader", "seq")

    def __init__(self, reader: Reader, node: ReadNode, parent: _SubTree | None) -> None:
        self.reader = reader
        self.node = node
        self.parent = parent
        self.is_key = not node.children
        self.i = 1 if self.is_key else 0
        self.n = 0
        if self.is_key:
            self.seq = node.keys[0]
            self.offset = 0
        else:
            self.seq = node.children[0]
            self.offset = node.children[1]

    def next(self) -> bool:
        self.i += 1
        self.is_key = (self.i & 1) == 1
        if not self.is_key and not self.node.children:
            self.i += 1
        return self.update()

    def bisect(self, key: bytes, incl: bool) -> bool:
        node = self.node
        found, pos = _search(node.keys, key, self.reader.key)
        if found:
            self.i = pos * 2 + 1 if incl else pos * 2 + (2 if node.children else 3)
            return True
        self.i = 2 * pos + (0 if node.children else 1)
        return not node.children

    def update(self) -> bool:
        self.is_key = (self.i & 1) == 1
        self.n = self.i >> 1
        node = self.node
        if self.n >= (len(node.keys) if self.is_key else len(node.children) >> 1):
            return False
        if self.is_key:
            self.seq = node.keys[self.n]
            self.offset = 0
        else:
            self.seq = node.children[2 * self.n]
            self.offset = node.children[2 * self.n + 1]
        return True

    def key(self) -> bytes | None:
        if self.n < len(self.node.keys):
            return self.reader.key(self.node.keys[self.n])
        return self.parent.key() if self.parent is not None else None


def _cmp_opt(a: bytes | None, b: bytes | None) -> int:
    """Diff ordering where a missing key (past the last one) sorts after everything."""
    if a is None:
        return 1 if b is not None else 0
    if b is None:
        return -1
    return _cmp(a, b)


class _TreeWalk:
    """One side of a diff (JS ``TreeIterator`` in iterators/diff.js)."""

    def __init__(self, reader: Reader, bounds: Bounds) -> None:
        self.reader = reader
        self.stack: list[_SubTree] = []
        self.lt = bounds.lt if bounds.lt is not None else bounds.lte
        self.lte = bounds.lte is not None
        self.gt = bounds.gt if bounds.gt is not None else bounds.gte
        self.gte = bounds.gte is not None
        self.seeking = self.gt is not None

    def open(self) -> None:
        node = self.reader.root()
        if node is None or not node.keys:
            return
        tree = _SubTree(self.reader, node, None)
        if self.seeking and not self._seek(tree):
            return
        self.stack.append(tree)

    def _seek(self, tree: _SubTree) -> bool:
        assert self.gt is not None
        done = tree.bisect(self.gt, self.gte)
        oob = not tree.update()
        if done or oob:
            self.seeking = False
            if oob:
                return False
        return True

    def peek(self) -> _SubTree | None:
        return self.stack[-1] if self.stack else None

    def skip(self) -> None:
        if self.stack and not self.stack[-1].next():
            self.stack.pop()

    def next_key(self) -> DecodedBlock | None:
        n: DecodedBlock | None = None
        while self.stack and n is None:
            n = self.next()
        if n is None:
            return None
        if self.lt is None:
            return n
        c = _cmp(n.key, self.lt)
        if (c <= 0) if self.lte else (c < 0):
            return n
        self.stack = []
        return None

    def next(self) -> DecodedBlock | None:
        if not self.stack:
            return None
        top = self.stack[-1]
        is_key, n, seq = top.is_key, top.n, top.seq
        if not top.next():
            self.stack.pop()
        if is_key:
            self.seeking = False
            return self.reader.block(seq)
        child = self.reader.child(top.node, n)
        tree = _SubTree(self.reader, child, top)
        if self.seeking and not self._seek(tree):
            return None
        if len(self.stack) > MAX_DEPTH:
            raise DecodeError("tree deeper than any real Hyperbee (a reference cycle?)")
        self.stack.append(tree)
        return None


class DiffWalk:
    """Entries that differ between two versions, in key order, skipping every subtree the two
    versions share (same ``(seq, offset)``). Yields ``(left, right)``; a side is None when the
    key is absent there. Same-key pairs are yielded whenever the entry blocks differ, even if
    the values are equal (as JS ``createDiffStream`` does)."""

    def __init__(self, left: Reader, right: Reader, bounds: Bounds, limit: int = -1) -> None:
        self.left = _TreeWalk(left, bounds)
        self.right = _TreeWalk(right, bounds)
        self.limit = limit

    def __iter__(self) -> Iterator[tuple[DecodedBlock | None, DecodedBlock | None]]:
        self.left.open()
        self.right.open()
        while self.limit != 0:
            res = self._next()
            if res is None or (res[0] is None and res[1] is None):
                return
            self.limit -= 1
            yield res

    def _next(self) -> tuple[DecodedBlock | None, DecodedBlock | None] | None:
        a = self.left
        b = self.right
        while True:
            lt = a.peek()
            rt = b.peek()
            if lt is None and rt is None:
                return None
            if lt is None:
                return None, b.next_key()
            if rt is None:
                return a.next_key(), None
            if lt.seq == rt.seq and lt.is_key == rt.is_key and lt.offset == rt.offset:
                a.skip()
                b.skip()
                continue
            c = _cmp_opt(lt.key(), rt.key())
            if lt.is_key and not rt.is_key:
                b.next()
                continue
            if not lt.is_key and rt.is_key:
                a.next()
                continue
            if lt.is_key and rt.is_key:
                if c == 0:
                    return a.next_key(), b.next_key()
                if c < 0:
                    return a.next_key(), None
                return None, b.next_key()
            if c == 0:
                a.next()
                b.next()
            elif c < 0:
                b.next()
            else:
                a.next()


# --- writes --------------------------------------------------------------------------------------


class WriteConflictError(HyperlobbyError):
    """Internal: the in-memory tree is inconsistent (a node is not a child of its parent)."""


class _Child:
    """A mutable child reference. ``seq``/``offset`` are rewritten when the child is re-indexed
    into a new block, and ``seq = 0`` marks a child freed by a merge."""

    __slots__ = ("offset", "seq", "value")

    def __init__(self, seq: int, offset: int, value: _TreeNode | None) -> None:
        self.seq = seq
        self.offset = offset
        self.value = value


class _BlockEntry:
    """A block as seen by one writer: committed (decoded, with its own mutable pointer lists)
    or pending in a batch (its index is the live list of child references)."""

    __slots__ = ("decoded", "key", "pending", "pointers", "seq", "value", "writer")

    def __init__(
        self,
        seq: int,
        writer: Writer,
        key: bytes,
        value: bytes | None,
        decoded: DecodedBlock | None,
        pending: list[_Child | None] | None,
    ) -> None:
        self.seq = seq
        self.writer = writer
        self.key = key
        self.value = value
        self.decoded = decoded
        self.pending = pending
        self.pointers: dict[int, tuple[list[int], list[_ChildRef]]] | None = None

    def tree_node(self, offset: int) -> _TreeNode:
        if self.pending is not None:
            ref = self.pending[offset] if offset < len(self.pending) else None
            if ref is None or ref.value is None:
                raise WriteConflictError("pending batch node is missing", seq=self.seq, offset=offset)
            return ref.value
        assert self.decoded is not None
        pointers = self.pointers
        if pointers is None:
            pointers = self.pointers = {}
        level = pointers.get(offset)
        if level is None:
            # Built once per writer and shared by every node object made from this level, as
            # the JS pointer arrays are.
            ks, ch = self.decoded.level(offset)
            level = pointers[offset] = (list(ks), list(zip(ch[0::2], ch[1::2], strict=True)))
        keys, children = level
        return _TreeNode(self.writer, self, keys, children, offset)

    def entry(self) -> Entry:
        return Entry(self.seq, self.key, self.value)


class _TreeNode:
    """A mutable B-tree node during a write (JS ``TreeNode``).

    ``keys`` holds entry seqs. (JS wraps each in an object that caches the key bytes; nothing
    depends on those objects' identity, so plain ints plus the writer's key table do the same.)
    ``children`` holds shared, mutable :class:`_Child` references, whose identity does matter.
    A child never loaded is kept as a plain ``(seq, offset)`` pair and becomes a :class:`_Child`
    when first loaded: only loaded children are ever re-indexed, updated or freed, so the
    difference cannot be observed in the output.
    """

    __slots__ = ("block", "changed", "children", "keys", "offset", "writer")

    def __init__(
        self,
        writer: Writer,
        block: _BlockEntry | None,
        keys: list[int],
        children: list[_ChildRef],
        offset: int,
    ) -> None:
        self.writer = writer
        self.block = block
        self.offset = offset
        self.keys = keys
        self.children = children
        self.changed = False

    @classmethod
    def create(cls, writer: Writer, block: _BlockEntry | None) -> _TreeNode:
        node = cls(writer, block, [], [], 0)
        node.changed = True
        return node

    def get_key(self, index: int) -> bytes:
        return self.writer.key_of(self.keys[index])

    def get_key_entry(self, index: int) -> _BlockEntry:
        return self.writer.get_block(self.keys[index])

    def get_child_node(self, index: int) -> _TreeNode:
        child = self.children[index]
        if not isinstance(child, _Child):
            child = self.children[index] = _Child(child[0], child[1], None)
        node = child.value
        if node is not None:
            return node
        block = self.block
        source = block if block is not None and child.seq == block.seq else self.writer.get_block(child.seq)
        node = source.tree_node(child.offset)
        child.value = node
        return node

    def insert_key(
        self, seq: int, target: bytes, value: bytes | None, child: _TreeNode | None, cas: _Cas | None
    ) -> bool:
        """Insert (or replace) entry ``seq`` (key ``target``); False when the node now
        overflows and must split."""
        keys = self.keys
        found, i = _search(keys, target, self.writer.key_of)
        if found:
            if cas is not None:
                prev = self.get_key_entry(i)
                if not cas(prev.entry(), Entry(seq, target, value)):
                    return True
            if not self.writer.always_duplicate:
                prev = self.get_key_entry(i)
                if prev.value == value:
                    return True
            self.changed = True
            keys[i] = seq
            return True
        keys.insert(i, seq)
        if child is not None:
            self.children.insert(i + 1, _Child(0, 0, child))
        self.changed = True
        return len(keys) < MAX_CHILDREN

    def remove_key(self, index: int) -> None:
        del self.keys[index]
        if self.children:
            freed = self.children[index + 1]
            if isinstance(freed, _Child):
                freed.seq = 0
            del self.children[index + 1]
        self.changed = True

    def siblings(self, parent: _TreeNode) -> tuple[_TreeNode | None, int, _TreeNode | None]:
        children = parent.children
        for i, ref in enumerate(children):
            if isinstance(ref, _Child) and ref.value is self:
                left = parent.get_child_node(i - 1) if i else None
                right = parent.get_child_node(i + 1) if i < len(children) - 1 else None
                return left, i, right
        raise WriteConflictError("node is not a child of its parent")

    def merge(self, node: _TreeNode, median: int) -> None:
        self.changed = True
        self.keys.append(median)
        self.keys.extend(node.keys)
        self.children.extend(node.children)

    def split(self) -> tuple[int, _TreeNode]:
        keys = self.keys
        half = len(keys) >> 1
        right = _TreeNode.create(self.writer, self.block)
        right.keys = keys[len(keys) - half :]
        del keys[len(keys) - half :]
        median = keys.pop()
        children = self.children
        if children:
            cut = len(children) - (half + 1)
            right.children = children[cut:]
            del children[cut:]
        self.changed = True
        return median, right

    def index_changes(self, index: list[_Child | None], seq: int) -> int:
        """Append this node and, in pre-order, its changed descendants to ``index``."""
        offset = len(index)
        index.append(None)
        self.changed = False
        for child in self.children:
            if not isinstance(child, _Child):
                continue
            node = child.value
            if node is None or not node.changed:
                continue
            child.seq = seq
            child.offset = node.index_changes(index, seq)
            index[child.offset] = child
        return offset

    def update_children(self, seq: int, block: _BlockEntry) -> None:
        for child in self.children:
            if not isinstance(child, _Child):
                continue
            node = child.value
            if node is None or child.seq != seq:
                continue
            node.block = block
            node.update_children(seq, block)


_Cas = Callable[[Entry, Entry], bool]
_ChildRef = _Child | tuple[int, int]


def _deflate(index: list[_Child | None]) -> list[tuple[list[int], list[int]]]:
    """The yolo index levels (entry seqs, flattened child coordinates) of ``index``'s nodes."""
    levels: list[tuple[list[int], list[int]]] = []
    for ref in index:
        assert ref is not None and ref.value is not None
        node = ref.value
        flat: list[int] = []
        for c in node.children:
            if isinstance(c, _Child):
                flat.append(c.seq)
                flat.append(c.offset)
            else:
                flat.extend(c)
        levels.append((list(node.keys), flat))
    return levels


def encode_header(metadata: Metadata | None) -> bytes:
    return Header(metadata=metadata).encode()


class Writer:
    """One write operation (``auto_flush``) or a batch of them (JS ``Batch`` when writing).

    A batch keeps its pending blocks in memory; reads inside the batch see them (the tree root
    is the last pending root). :meth:`flush` turns them into blocks and appends them in one
    core append.
    """

    def __init__(
        self,
        cache: BlockCache,
        *,
        auto_flush: bool,
        metadata: Metadata | None = None,
        always_duplicate: bool = True,
    ) -> None:
        self.cache = cache
        self.core = cache.core
        self.auto_flush = auto_flush
        self.metadata = metadata
        self.always_duplicate = always_duplicate
        self.blocks: dict[int, _BlockEntry] = {}
        self.length = 0
        self.root: _TreeNode | None = None
        self._appending: list[tuple[bytes, DecodedBlock]] | None = None
        # seq -> key bytes for every entry this writer compared against (and its own writes)
        self._keys: dict[int, bytes] = {}

    @property
    def version(self) -> int:
        return max(1, self.core.length + self.length)

    def get_block(self, seq: int) -> _BlockEntry:
        found = self.blocks.get(seq)
        if found is not None:
            return found
        if seq >= self.core.length + self.length:
            raise DecodeError("tree references a block past its version", seq=seq)
        decoded = self.cache.get(seq)
        entry = _BlockEntry(seq, self, decoded.key, decoded.value, decoded, None)
        if len(self.blocks) - self.length < MAX_BLOCKS_CACHED:
            self.blocks[seq] = entry
        return entry

    def key_of(self, seq: int) -> bytes:
        key = self._keys.get(seq)
        if key is None:
            found = self.blocks.get(seq)
            if found is not None:
                key = found.key
            else:
                if seq >= self.core.length + self.length:
                    raise DecodeError("tree references a block past its version", seq=seq)
                key = self.cache.get(seq).key
            self._keys[seq] = key
        return key

    def get_root(self, ensure_header: bool) -> _TreeNode | None:
        if ensure_header and self.core.length == 0 and self.core.writable:
            self.core.append(encode_header(self.metadata))
        version = self.version
        if version < 2:
            return None
        return self.get_block(version - 1).tree_node(0)

    # -- put --

    def put(self, key: bytes, value: bytes | None, cas: _Cas | None = None) -> bool:
        """Write ``key`` = ``value``; False when nothing was written (a cas veto or a no-op)."""
        root = self.get_root(True)
        if root is None:
            root = _TreeNode.create(self, None)
        node = root
        seq = self.core.length + self.length
        self._keys[seq] = key  # (a vetoed write may have left another key under this seq)
        stack: list[_TreeNode] = []

        while node.children:
            stack.append(node)
            if len(stack) > MAX_DEPTH:
                raise DecodeError("tree deeper than any real Hyperbee (a reference cycle?)")
            node.changed = True
            keys = node.keys
            found, i = _search(keys, key, node.writer.key_of)
            if found:
                if cas is not None:
                    prev = node.get_key_entry(i)
                    if not cas(prev.entry(), Entry(seq, key, value)):
                        return False
                if not self.always_duplicate:
                    prev = node.get_key_entry(i)
                    if prev.value == value:
                        return False
                keys[i] = seq
                node.changed = True
                self._append(root, seq, key, value)
                return True
            node = node.get_child_node(i)

        needs_split = not node.insert_key(seq, key, value, None, cas)
        if not node.changed:
            return False

        while needs_split:
            parent = stack.pop() if stack else None
            median, right = node.split()
            if parent is not None:
                needs_split = not parent.insert_key(median, self.key_of(median), value, right, None)
                node = parent
            else:
                root = _TreeNode.create(self, node.block)
                root.keys.append(median)
                root.children.append(_Child(0, 0, node))
                root.children.append(_Child(0, 0, right))
                needs_split = False

        self._append(root, seq, key, value)
        return True

    # -- del --

    def delete(self, key: bytes, cas: _Cas | None = None) -> bool:
        """Delete ``key``; False when it was absent (nothing is written then) or cas vetoed."""
        node = self.get_root(True)
        if node is None:
            return False
        seq = self.core.length + self.length
        stack: list[_TreeNode] = []
        while True:
            stack.append(node)
            if len(stack) > MAX_DEPTH:
                raise DecodeError("tree deeper than any real Hyperbee (a reference cycle?)")
            found, i = _search(node.keys, key, node.writer.key_of)
            if found:
                if cas is not None:
                    prev = node.get_key_entry(i)
                    if not cas(prev.entry(), Entry(seq, key, None)):
                        return False
                if node.children:
                    self._set_key_to_nearest_leaf(node, i, stack)
                else:
                    node.remove_key(i)
                # marked only now, so a miss rewrites nothing
                for n in stack:
                    n.changed = True
                self._append(self._rebalance(stack), seq, key, None)
                return True
            if not node.children:
                return False
            node = node.get_child_node(i)

    @staticmethod
    def _leaf_size(node: _TreeNode, go_left: bool) -> int:
        depth = 0
        while node.children:
            depth += 1
            if depth > MAX_DEPTH:
                raise DecodeError("tree deeper than any real Hyperbee (a reference cycle?)")
            node = node.get_child_node(0 if go_left else len(node.children) - 1)
        return len(node.keys)

    def _set_key_to_nearest_leaf(self, node: _TreeNode, index: int, stack: list[_TreeNode]) -> None:
        """Replace internal key ``index`` by its predecessor, or by its successor when the
        predecessor's leaf is the smaller one."""
        left = node.get_child_node(index)
        right = node.get_child_node(index + 1)
        ls = self._leaf_size(left, False)
        rs = self._leaf_size(right, True)
        if ls < rs:
            stack.append(right)
            while right.children:
                right = right.get_child_node(0)  # loaded by _leaf_size already
                stack.append(right)
            node.keys[index] = right.keys.pop(0)
        else:
            stack.append(left)
            while left.children:
                left = left.get_child_node(len(left.children) - 1)
                stack.append(left)
            node.keys[index] = left.keys.pop()

    @staticmethod
    def _rebalance(stack: list[_TreeNode]) -> _TreeNode:
        root = stack[0]
        while len(stack) > 1:
            node = stack.pop()
            parent = stack[-1]
            if len(node.keys) >= MIN_KEYS:
                return root
            left, index, right = node.siblings(parent)

            if left is not None and len(left.keys) > MIN_KEYS:
                left.changed = True
                node.keys.insert(0, parent.keys[index - 1])
                if left.children:
                    node.children.insert(0, left.children.pop())
                parent.keys[index - 1] = left.keys.pop()
                return root

            if right is not None and len(right.keys) > MIN_KEYS:
                right.changed = True
                node.keys.append(parent.keys[index])
                if right.children:
                    node.children.append(right.children.pop(0))
                parent.keys[index] = right.keys.pop(0)
                return root

            if left is not None:
                index -= 1
                right = node
            else:
                left = node
            assert right is not None
            left.merge(right, parent.keys[index])
            parent.remove_key(index)

        if not root.keys and root.children:
            return root.get_child_node(0)
        return root

    # -- output --

    def _append(self, root: _TreeNode, seq: int, key: bytes, value: bytes | None) -> None:
        index: list[_Child | None] = []
        root.index_changes(index, seq)
        index[0] = _Child(seq, 0, root)
        if not self.auto_flush:
            block = _BlockEntry(seq, self, key, value, None, index)
            root.block = block
            self.root = root
            self.length += 1
            self.blocks[seq] = block
            root.update_children(seq, block)
            return
        levels = _deflate(index)
        self.core.append(Node(encode_index(levels), key, value).encode())
        self.cache.put(DecodedBlock(seq, key, value, None, levels))

    def to_blocks(self) -> list[bytes]:
        """The pending writes as blocks. Every block but the last keeps only the nodes that no
        later write of the batch re-indexed (with their current contents), renumbered by a
        swap-remove compaction, exactly as JS does."""
        return [blk for blk, _ in self._encode_pending()]

    def _encode_pending(self) -> list[tuple[bytes, DecodedBlock]]:
        # The compaction below mutates the pending indexes, so it may run only once.
        if self._appending is not None:
            return self._appending
        out: list[tuple[bytes, DecodedBlock]] = []
        base = self.core.length
        for i in range(self.length):
            seq = base + i
            entry = self.blocks[seq]
            pending = entry.pending
            assert pending is not None
            if i < self.length - 1:
                pending[0] = None
                j = 0
                while j < len(pending):
                    ref = pending[j]
                    if ref is not None and ref.seq == seq:
                        ref.offset = j
                        j += 1
                        continue
                    if j == len(pending) - 1:
                        pending.pop()
                    else:
                        pending[j] = pending.pop()
            levels = _deflate(pending)
            node = Node(encode_index(levels), entry.key, entry.value)
            out.append((node.encode(), DecodedBlock(seq, entry.key, entry.value, None, levels)))
        self._appending = out
        return out

    def flush(self) -> int:
        """Append every pending write in one core append; returns the new core length."""
        if not self.length:
            return self.core.length
        encoded = self._encode_pending()
        self.root = None
        self.blocks.clear()
        self.length = 0
        self._appending = None
        length = self.core.append([blk for blk, _ in encoded])
        for _, decoded in encoded:
            self.cache.put(decoded)
        return length

    def discard(self) -> None:
        self._appending = None
        self.root = None
        self.blocks.clear()
        self.length = 0

    # -- reads inside a batch --

    def get(self, key: bytes) -> Entry | None:
        """Look ``key`` up in the tree as this writer sees it (pending writes included)."""
        node = self.get_root(False)
        depth = 0
        while node is not None:
            block = node.block
            if block is not None and block.pending is None and block.key == key:
                assert block.decoded is not None
                return None if block.decoded.is_deletion() else block.entry()
            keys = node.keys
            found, i = _search(keys, key, node.writer.key_of)
            if found:
                return self.get_block(keys[i]).entry()
            if not node.children:
                return None
            depth += 1
            if depth > MAX_DEPTH:
                raise DecodeError("tree deeper than any real Hyperbee (a reference cycle?)")
            node = node.get_child_node(i)
        return None
