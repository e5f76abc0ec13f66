"""BLAKE2b hashing as Hypercore uses it: plain, keyed, namespaces, discovery keys, tree hashes.

Hypercore hashes Merkle nodes with *fixed* 8-byte little-endian lengths and a one-byte type
prefix (0 leaf, 1 parent, 2 root set). This differs from Dat-era hypercore (big-endian), so no
v9 vector applies. hashlib's BLAKE2b is the libsodium algorithm and avoids a call through
PyNaCl's wrapper for every node (the benchmarks compare the two).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import Protocol

_U64 = struct.Struct("<Q")
_PARENT_HEAD = struct.Struct("<BQ")
_U64X2 = struct.Struct("<QQ")

LEAF_TYPE = b"\x00"
PARENT_TYPE = b"\x01"
ROOT_TYPE = b"\x02"


class TreeNodeLike(Protocol):
    """Anything with the three fields of a Merkle node."""

    @property
    def index(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def hash(self) -> bytes: ...


def blake2b256(data: bytes, key: bytes | None = None) -> bytes:
    """BLAKE2b with a 32-byte digest, optionally keyed (libsodium ``crypto_generichash``)."""
    if key is None:
        return hashlib.blake2b(data, digest_size=32).digest()
    return hashlib.blake2b(data, digest_size=32, key=key).digest()


def blake2b512(data: bytes, key: bytes | None = None) -> bytes:
    """BLAKE2b with a 64-byte digest (the Noise hash)."""
    if key is None:
        return hashlib.blake2b(data, digest_size=64).digest()
    return hashlib.blake2b(data, digest_size=64, key=key).digest()


def namespace(name: str, count: int) -> list[bytes]:
    """``count`` 32-byte namespace constants derived from ``name`` as hypercore-crypto does."""
    if not 0 < count <= 256:
        raise ValueError("namespace count must be in 1..256")
    base = blake2b256(name.encode("utf-8"))
    return [blake2b256(base + bytes((i,))) for i in range(count)]


def discovery_key(key: bytes) -> bytes:
    """The public topic of a core: keyed BLAKE2b of the word "hypercore" under the core key.

    Only the discovery key goes on the wire, so a peer that does not already know the core key
    learns nothing that lets it read the core.
    """
    if len(key) != 32:
        raise ValueError("a core key is 32 bytes")
    return blake2b256(b"hypercore", key=key)


def leaf_hash(block: bytes) -> bytes:
    """Hash of a Merkle leaf: ``00 ‖ u64le(len) ‖ block``."""
    h = hashlib.blake2b(digest_size=32)
    h.update(LEAF_TYPE)
    h.update(_U64.pack(len(block)))
    h.update(block)
    return h.digest()


def parent_hash(left: TreeNodeLike, right: TreeNodeLike) -> bytes:
    """Hash of a parent: ``01 ‖ u64le(size_l + size_r) ‖ hash_l ‖ hash_r`` (left = smaller index)."""
    if left.index > right.index:
        left, right = right, left
    h = hashlib.blake2b(digest_size=32)
    h.update(_PARENT_HEAD.pack(1, left.size + right.size))
    h.update(left.hash)
    h.update(right.hash)
    return h.digest()


def tree_hash(roots: Iterable[TreeNodeLike]) -> bytes:
    """Hash of the root set: ``02 ‖ (hash ‖ u64le(index) ‖ u64le(size))`` for each root.

    The input is joined first and hashed in one call (a writer hashes its roots on every append;
    one ``update`` per field costs more than the concatenation).
    """
    pack = _U64X2.pack
    return hashlib.blake2b(
        ROOT_TYPE + b"".join([r.hash + pack(r.index, r.size) for r in roots]), digest_size=32
    ).digest()
