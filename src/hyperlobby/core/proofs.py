"""Records shared by the Merkle tree and the replication messages.

A proof request names what the requester lacks (a block, a tree node, a byte offset, a newer
signed length); a proof answers it with the value and the tree nodes needed to check it against
what the requester already trusts. The same records are the sub-structures of the wire's
``request`` and ``data`` messages (``hyperlobby.wire.messages``), so the core can build and verify
proofs without knowing anything about the wire, and the wire can carry them without knowing
how they are checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

_R = TypeVar("_R")


def record_builder(cls: type[_R]) -> Callable[..., _R]:
    """A fast positional constructor for the frozen, slotted record class ``cls``.

    A frozen dataclass sets each field through ``object.__setattr__`` (its own ``__setattr__``
    refuses), which makes building one ~4x slower than a plain slotted object; the replication
    hot path builds ~15 records per block. The builder fills an instance of a plain twin class
    with the same slots, then gives it ``cls`` as its class: the result is an ordinary, equal,
    immutable instance of ``cls``. Arguments are every field, in declaration order (no
    defaults). A class this does not fit (a base with fields, other slots) gets ``cls`` itself.
    """
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    if cls.__bases__ != (object,) or getattr(cls, "__slots__", None) != names:
        return cls
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": names})
    args = ", ".join(names)
    body = "".join(f"    _o.{n} = {n}\n" for n in names)
    source = f"def build({args}):\n    _o = _new(_twin)\n{body}    _o.__class__ = _cls\n    return _o\n"
    scope: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    try:
        exec(source, scope)  # the way dataclasses itself writes __init__
        build: Callable[..., _R] = scope["build"]
        build(*([None] * len(names)))  # the class swap is refused for an incompatible layout
    except (TypeError, SyntaxError):
        return cls
    return build


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A Merkle tree node: flat-tree ``index``, byte ``size`` of the blocks below, 32-byte ``hash``."""

    index: int
    size: int
    hash: bytes


tree_node: Callable[[int, int, bytes], TreeNode] = record_builder(TreeNode)
"""``TreeNode(index, size, hash)``, faster (see :func:`record_builder`)."""


# --- what a requester asks for ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Block ``index`` plus ``nodes`` levels of its proof (up to the first node the requester has)."""

    index: int
    nodes: int


@dataclass(frozen=True, slots=True)
class HashRequest:
    """Tree node ``index`` (a tree index, not a block index) plus ``nodes`` levels of proof."""

    index: int
    nodes: int


@dataclass(frozen=True, slots=True)
class SeekRequest:
    """Which block holds byte offset ``bytes`` (``padding`` bytes per block are not counted)."""

    bytes: int
    padding: int = 0


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """Prove the signed tree at ``start + length``, given the requester trusts the tree at ``start``."""

    start: int
    length: int


# --- what a responder answers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataBlock:
    index: int
    value: bytes
    nodes: tuple[TreeNode, ...]


@dataclass(frozen=True, slots=True)
class DataHash:
    index: int
    nodes: tuple[TreeNode, ...]


@dataclass(frozen=True, slots=True)
class DataSeek:
    bytes: int
    nodes: tuple[TreeNode, ...]


@dataclass(frozen=True, slots=True)
class DataUpgrade:
    start: int
    length: int
    nodes: tuple[TreeNode, ...]
    additional_nodes: tuple[TreeNode, ...]
    signature: bytes


@dataclass(frozen=True, slots=True)
class ProofRequest:
    """Everything one request may ask of a tree at once (any part may be absent)."""

    fork: int
    block: BlockRequest | None = None
    hash: HashRequest | None = None
    seek: SeekRequest | None = None
    upgrade: UpgradeRequest | None = None


@dataclass(frozen=True, slots=True)
class Proof:
    """The answer to a :class:`ProofRequest`: the parts that were asked for, at ``fork``."""

    fork: int
    block: DataBlock | None = None
    hash: DataHash | None = None
    seek: DataSeek | None = None
    upgrade: DataUpgrade | None = None
