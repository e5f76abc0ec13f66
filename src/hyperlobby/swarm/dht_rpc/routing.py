"""The Kademlia routing table dht-rpc keeps: 256 rows of up to k=20 nodes by XOR distance.

Theory of operation
-------------------
Row ``i`` holds the nodes whose id shares exactly ``i`` leading bits with ours (the first
differing bit is bit ``i``). Rows are kept sorted by id so lookups are binary searches. A
full row refuses new nodes; the caller is told (``add`` returns False) and may ping the
row's stalest node and swap it out if it is gone, which favours long-lived nodes as
Kademlia intends.

``closest(target)`` is the same walk as the JS table rather than an exact XOR sort: start at
the row the target falls in, then rows with shorter shared prefixes, then the longer ones.
It is kept for parity with JS (tested against it); the node itself uses :meth:`nearest`,
the exact XOR order, which gives lookups a better answer in the same wire format.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

K = 20


def xor_distance(a: bytes, b: bytes) -> int:
    """XOR distance as an integer, for sorting by closeness to a target."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def shared_prefix_bits(a: bytes, b: bytes) -> int:
    """Number of leading bits ``a`` and ``b`` share (``len*8`` when equal)."""
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    bits = len(a) * 8
    return bits if x == 0 else bits - x.bit_length()


@dataclass(eq=False)
class RoutingNode:
    """A table entry: address, id, and the node-local bookkeeping ticks (mutable on purpose)."""

    id: bytes
    host: str
    port: int
    added: int = 0
    seen: int = 0
    pinged: int = 0
    down_hints: int = 0
    sampled: int | None = None
    to: tuple[str, int] | None = field(default=None)


class RoutingTable:
    """k-buckets keyed by shared-prefix length with our id."""

    def __init__(self, id: bytes, k: int = K) -> None:
        self.id = id
        self.k = k
        self.rows: list[list[RoutingNode]] = [[] for _ in range(len(id) * 8)]
        self.size = 0

    def _row(self, id: bytes) -> int:
        n = shared_prefix_bits(self.id, id)
        return min(n, len(self.rows) - 1)

    @staticmethod
    def _search(row: list[RoutingNode], id: bytes) -> tuple[int, bool]:
        lo, hi = 0, len(row)
        while lo < hi:
            mid = (lo + hi) // 2
            other = row[mid].id
            if other == id:
                return mid, True
            if other < id:
                lo = mid + 1
            else:
                hi = mid
        return lo, False

    def add(self, node: RoutingNode) -> bool:
        """Insert or replace ``node``; False if its row is full (the caller may evict and retry)."""
        row = self.rows[self._row(node.id)]
        i, found = self._search(row, node.id)
        if found:
            row[i] = node
            return True
        if len(row) >= self.k:
            return False
        row.insert(i, node)
        self.size += 1
        return True

    def remove(self, id: bytes) -> bool:
        row = self.rows[self._row(id)]
        i, found = self._search(row, id)
        if not found:
            return False
        del row[i]
        self.size -= 1
        return True

    def get(self, id: bytes) -> RoutingNode | None:
        row = self.rows[self._row(id)]
        i, found = self._search(row, id)
        return row[i] if found else None

    def has(self, id: bytes) -> bool:
        return self.get(id) is not None

    def row_of(self, id: bytes) -> list[RoutingNode]:
        """The row ``id`` belongs in (for eviction decisions when it is full)."""
        return self.rows[self._row(id)]

    def closest(self, target: bytes, k: int | None = None) -> list[RoutingNode]:
        """Up to ``k`` nodes near ``target``, chosen row by row as the JS table does."""
        limit = self.k if k is None else k
        out: list[RoutingNode] = []
        d = self._row(target)
        for i in range(d, -1, -1):
            if len(out) >= limit:
                break
            out.extend(self.rows[i][: limit - len(out)])
        for i in range(d + 1, len(self.rows)):
            if len(out) >= limit:
                break
            out.extend(self.rows[i][: limit - len(out)])
        return out

    def nearest(self, target: bytes, k: int | None = None) -> list[RoutingNode]:
        """The ``k`` nodes truly nearest ``target`` by XOR distance, nearest first.

        What we seed our own lookups with and answer FIND_NODE with: unlike :meth:`closest`
        it never leaves out a closer node, so lookups converge on the exact k closest even
        with small k (the table holds at most 256*k nodes, so sorting them is cheap).
        """
        limit = self.k if k is None else k
        return sorted(self, key=lambda n: xor_distance(target, n.id))[:limit]

    def random(self) -> RoutingNode | None:
        if self.size == 0:
            return None
        n = random.randrange(self.size)
        for row in self.rows:
            if n < len(row):
                return row[n]
            n -= len(row)
        return None  # pragma: no cover - size and rows always agree

    def __iter__(self) -> Iterator[RoutingNode]:
        for row in self.rows:
            yield from row

    def __len__(self) -> int:
        return self.size
