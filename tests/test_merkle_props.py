"""Property tests: random trees, Python proofs verified by a fresh requester, tampering refused."""

from __future__ import annotations

import dataclasses
import hashlib
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperlobby.core import flat_tree as ft
from hyperlobby.core.merkle import MerkleTree, ProofRequestError
from hyperlobby.core.proofs import (
    BlockRequest,
    HashRequest,
    ProofRequest,
    SeekRequest,
    TreeNode,
    UpgradeRequest,
)
from hyperlobby.errors import BlockNotAvailableError, VerificationError

SECRET = b"test-signer"


class Reader:
    def __init__(self) -> None:
        self.nodes: dict[int, TreeNode] = {}

    def get_node(self, index: int) -> TreeNode | None:
        return self.nodes.get(index)


def sign(tree_hash: bytes, length: int, fork: int) -> bytes:
    """A stand-in signature (keyed hash); the tree only sees the check callable."""
    return hashlib.blake2b(
        tree_hash + length.to_bytes(8, "little") + fork.to_bytes(8, "little"), key=SECRET
    ).digest()


def check(tree_hash: bytes, length: int, fork: int, signature: bytes) -> bool:
    return signature == sign(tree_hash, length, fork)


def build(blocks: list[bytes], upto: int) -> tuple[MerkleTree, Reader]:
    reader = Reader()
    tree = MerkleTree(reader)
    update = tree.append(blocks[:upto])
    for n in update.nodes:
        reader.nodes[n.index] = n
    tree.apply(update.with_signature(sign(update.tree_hash(), update.length, update.fork)))
    return tree, reader


blocks_st = st.lists(st.binary(max_size=20), min_size=1, max_size=40)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[bytes], int, ProofRequest]:
    blocks = draw(blocks_st)
    n = len(blocks)
    have = draw(st.integers(0, n - 1))  # the requester's length
    kind = draw(
        st.sampled_from(["block", "hash", "upgrade", "block+upgrade", "seek+upgrade", "hash+upgrade"])
    )
    up = UpgradeRequest(have, draw(st.integers(1, n - have)))
    if kind == "block":
        # (the requester must have a prefix covering it: use a block it already trusts the root of)
        index = draw(st.integers(0, max(0, have - 1)))
        return blocks, have, ProofRequest(0, block=BlockRequest(index, draw(st.integers(0, 6))))
    if kind == "hash":
        return (
            blocks,
            have,
            ProofRequest(0, hash=HashRequest(draw(st.integers(0, 2 * n)), draw(st.integers(0, 4)))),
        )
    if kind == "upgrade":
        return blocks, have, ProofRequest(0, upgrade=up)
    if kind == "block+upgrade":
        index = draw(st.integers(0, up.start + up.length - 1))
        return blocks, have, ProofRequest(0, block=BlockRequest(index, draw(st.integers(0, 3))), upgrade=up)
    if kind == "hash+upgrade":
        index = draw(st.integers(0, 2 * (up.start + up.length) - 2))
        return blocks, have, ProofRequest(0, hash=HashRequest(index, 0), upgrade=up)
    total = sum(len(b) for b in blocks[: up.start + up.length])
    return blocks, have, ProofRequest(0, seek=SeekRequest(draw(st.integers(0, total))), upgrade=up)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_python_proofs_verify_and_tampering_is_refused(case: tuple[list[bytes], int, ProofRequest]) -> None:
    blocks, have, request = case
    responder, _ = build(blocks, len(blocks))
    requester, requester_nodes = build(blocks, have)
    if request.block is not None and request.upgrade is None:
        # a requester that asks with exactly the levels it lacks
        request = dataclasses.replace(
            request, block=BlockRequest(request.block.index, requester.missing_nodes(request.block.index))
        )
    value = blocks[request.block.index] if request.block is not None else b""
    try:
        proof = responder.proof(request, value)
    except (ProofRequestError, BlockNotAvailableError):
        return  # e.g. nodes out of bounds, or a hash index outside the tree
    try:
        update = requester.verify(proof, check)
    except VerificationError:
        # only acceptable when the proof lands on a node this requester does not hold
        assert request.upgrade is None or request.block is not None or request.hash is not None
        return
    before = (requester.length, list(requester.roots))
    if request.upgrade is not None:
        assert update.upgraded and update.length == len(blocks)
        assert list(update.roots) == responder.roots
    full = {n.index: n for n in build(blocks, len(blocks))[1].nodes.values()}
    assert all(full[n.index] == n for n in update.nodes)

    def flip(n: TreeNode) -> TreeNode:
        return TreeNode(n.index, n.size, bytes([n.hash[0] ^ 0x80]) + n.hash[1:])

    bad = [dataclasses.replace(proof, fork=1)]
    if proof.block is not None:
        bad.append(
            dataclasses.replace(proof, block=dataclasses.replace(proof.block, value=proof.block.value + b"!"))
        )
        for k, n in enumerate(proof.block.nodes):
            ns = (*proof.block.nodes[:k], flip(n), *proof.block.nodes[k + 1 :])
            bad.append(dataclasses.replace(proof, block=dataclasses.replace(proof.block, nodes=ns)))
    if proof.upgrade is not None:
        up = proof.upgrade
        bad.append(dataclasses.replace(proof, upgrade=dataclasses.replace(up, signature=bytes(64))))
        for k, n in enumerate(up.nodes):
            ns = (*up.nodes[:k], flip(n), *up.nodes[k + 1 :])
            bad.append(dataclasses.replace(proof, upgrade=dataclasses.replace(up, nodes=ns)))
            ns = (*up.nodes[:k], TreeNode(ft.sibling(n.index), n.size, n.hash), *up.nodes[k + 1 :])
            bad.append(dataclasses.replace(proof, upgrade=dataclasses.replace(up, nodes=ns)))
    for b in bad:
        with pytest.raises(VerificationError):
            requester.verify(b, check)
    assert (requester.length, list(requester.roots)) == before
    assert requester_nodes is not None


@settings(max_examples=100, deadline=None)
@given(blocks_st, st.data())
def test_truncate_then_append_equals_fresh_tree(blocks: list[bytes], data: st.DataObject) -> None:
    tree, reader = build(blocks, len(blocks))
    cut = data.draw(st.integers(0, len(blocks)))
    update = tree.truncate(cut, 1)
    tree.apply(update)
    fresh, _ = build(blocks, cut)
    assert tree.roots == fresh.roots and tree.byte_length == fresh.byte_length and tree.fork == 1
    tail = data.draw(st.lists(st.binary(max_size=8), max_size=5))
    more = tree.append(tail)
    other = fresh.append(tail)
    assert more.roots == other.roots and more.tree_hash() == other.tree_hash()
    assert reader is not None


@settings(max_examples=100, deadline=None)
@given(blocks_st, st.integers(0, 3), st.data())
def test_seek_and_byte_offsets(blocks: list[bytes], padding: int, data: st.DataObject) -> None:
    blocks = [b + bytes(padding) for b in blocks]
    tree, _ = build(blocks, len(blocks))
    offsets = [0]
    for b in blocks:
        offsets.append(offsets[-1] + len(b))
    assert [tree.byte_offset(i) for i in range(len(blocks) + 1)] == offsets
    net = [len(b) - padding for b in blocks]
    target = data.draw(st.integers(0, sum(net)))
    index, rel = tree.seek(target, padding)
    before = sum(net[:index])
    assert before + rel == target
    assert index == len(blocks) or rel < net[index] or (rel == 0 and net[index] == 0)


def test_append_speed() -> None:
    """Appending is a hot path: well over 10k single-block appends per second (with hashing)."""
    tree = MerkleTree(Reader())
    block = b"x" * 64
    t0 = time.perf_counter()
    for _ in range(20000):
        tree.apply(tree.append((block,)))
    rate = 20000 / (time.perf_counter() - t0)
    assert tree.length == 20000
    assert rate > 10000, f"{rate:.0f} appends/s"
