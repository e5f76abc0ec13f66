"""Flat-tree arithmetic: the in-order numbering Hypercore gives to Merkle tree nodes.

Theory of operation
-------------------
Every node of the (conceptually infinite) binary tree over the blocks gets one integer. Leaves
(blocks) take the even numbers, block ``i`` being ``2i``; a parent sits between its two children,
so a node of depth ``d`` and offset ``o`` (its position among the nodes of that depth) is
``(2o + 1)·2^d − 1``::

    depth 2:              3
    depth 1:      1               5
    depth 0:  0       2       4       6

In binary, a node of depth ``d`` ends with exactly ``d`` one-bits followed by a zero bit, which makes
every relation a couple of bit operations on Python ints (no loops, no allocation):

* ``depth(i)``  = number of trailing one-bits;
* ``sibling(i)`` flips bit ``d + 1``;
* ``parent(i)`` clears bit ``d + 1`` and sets bit ``d``;
* the node covers the leaves ``[i − 2^d + 1, i + 2^d − 1]`` (its *span*).

A tree of ``length`` blocks is a forest of perfect subtrees, one per set bit of ``length``, from the
largest to the smallest: these are the *full roots*, the nodes the tree hash and the signature
cover. All functions take and return tree indexes unless their name says "leaf" or "block".
"""

from __future__ import annotations

__all__ = [
    "children",
    "contains",
    "count",
    "count_leaves",
    "depth",
    "full_roots",
    "index",
    "is_left",
    "left_child",
    "left_span",
    "offset",
    "parent",
    "right_child",
    "right_span",
    "root_span_end",
    "sibling",
    "spans",
]


def depth(i: int) -> int:
    """Height of node ``i`` above the leaves (the number of trailing one-bits of ``i``)."""
    # (i + 1) turns the trailing ones into zeros behind a single one; isolate that bit.
    low = (i + 1) & -(i + 1)
    return low.bit_length() - 1


def offset(i: int, d: int | None = None) -> int:
    """Position of node ``i`` among the nodes of its depth, counted from the left."""
    if d is None:
        d = depth(i)
    return (i + 1) >> (d + 1)


def index(d: int, o: int) -> int:
    """The node at depth ``d`` and offset ``o``."""
    return ((2 * o + 1) << d) - 1


def parent(i: int, d: int | None = None) -> int:
    """The node directly above ``i``."""
    if d is None:
        d = depth(i)
    return (i & ~(1 << (d + 1))) | (1 << d)


def sibling(i: int, d: int | None = None) -> int:
    """The other child of ``i``'s parent."""
    if d is None:
        d = depth(i)
    return i ^ (1 << (d + 1))


def is_left(i: int, d: int | None = None) -> bool:
    """True when ``i`` is the left child of its parent (its offset is even)."""
    if d is None:
        d = depth(i)
    return not (i >> (d + 1)) & 1


def left_child(i: int, d: int | None = None) -> int:
    """Left child of ``i``; a leaf has no children, so ``-1`` is returned for even ``i``."""
    if not i & 1:
        return -1
    if d is None:
        d = depth(i)
    return i - (1 << (d - 1))


def right_child(i: int, d: int | None = None) -> int:
    """Right child of ``i``; ``-1`` for a leaf."""
    if not i & 1:
        return -1
    if d is None:
        d = depth(i)
    return i + (1 << (d - 1))


def children(i: int, d: int | None = None) -> tuple[int, int] | None:
    """``(left, right)`` children of ``i``, or ``None`` for a leaf."""
    if not i & 1:
        return None
    if d is None:
        d = depth(i)
    half = 1 << (d - 1)
    return i - half, i + half


def left_span(i: int, d: int | None = None) -> int:
    """Leftmost leaf (tree index) below ``i``."""
    if d is None:
        d = depth(i)
    return i - (1 << d) + 1


def right_span(i: int, d: int | None = None) -> int:
    """Rightmost leaf (tree index) below ``i``."""
    if d is None:
        d = depth(i)
    return i + (1 << d) - 1


def spans(i: int, d: int | None = None) -> tuple[int, int]:
    """``(left_span, right_span)`` of ``i``: the first and last leaf it covers."""
    if d is None:
        d = depth(i)
    half = (1 << d) - 1
    return i - half, i + half


def count(i: int, d: int | None = None) -> int:
    """Number of nodes in the subtree rooted at ``i`` (itself included)."""
    if d is None:
        d = depth(i)
    return (2 << d) - 1


def count_leaves(i: int, d: int | None = None) -> int:
    """Number of blocks below ``i``."""
    if d is None:
        d = depth(i)
    return 1 << d


def contains(i: int, target: int) -> bool:
    """True when ``target`` lies inside the subtree of ``i`` (any node between its spans)."""
    half = (i + 1) & -(i + 1)  # 2^depth(i)
    return i - half < target < i + half


def root_span_end(i: int) -> int:
    """The leaf index just after ``i``'s span (``right_span(i) + 2``): where the next tree starts."""
    return i + ((i + 1) & -(i + 1)) + 1


def full_roots(i: int) -> list[int]:
    """Roots of the tree whose head (first absent leaf) is the even index ``i``.

    ``full_roots(2 * length)`` lists the perfect subtrees of a ``length``-block tree, left to right:
    one per set bit of ``length``, largest first.
    """
    if i & 1:
        raise ValueError("full roots are defined for leaf (even) indexes only")
    if i < 0:
        raise ValueError("full roots of a negative index")
    length = i >> 1
    roots: list[int] = []
    start = 0  # leftmost leaf of the next root, as a tree index
    bit = 1 << (length.bit_length() - 1) if length else 0
    while bit:
        if length & bit:
            roots.append(start + bit - 1)
            start += 2 * bit
        bit >>= 1
    return roots
