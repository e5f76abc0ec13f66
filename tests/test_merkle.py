"""MerkleTree against hypercore 11.39.5: roots, hashes, seeks, proofs (node for node), verification."""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from conftest import load_vectors, run_node
from hyperlobby.core import flat_tree as ft
from hyperlobby.core.merkle import MerkleTree, ProofRequestError, TreeUpdate, obsolete_nodes
from hyperlobby.core.proofs import (
    BlockRequest,
    DataBlock,
    DataHash,
    DataSeek,
    DataUpgrade,
    HashRequest,
    Proof,
    ProofRequest,
    SeekRequest,
    TreeNode,
    UpgradeRequest,
)
from hyperlobby.crypto.hashes import leaf_hash, namespace
from hyperlobby.errors import BlockNotAvailableError, CoreError, VerificationError

V = load_vectors("merkle")
BLOCKS = [bytes.fromhex(b) for b in V["blocks"]]
TREE_NS = namespace("hypercore", 6)[0]


class DictReader:
    """The NodeReader of the tests: a dict of stored nodes."""

    def __init__(self, nodes: dict[int, TreeNode] | None = None) -> None:
        self.nodes: dict[int, TreeNode] = dict(nodes or {})

    def get_node(self, index: int) -> TreeNode | None:
        return self.nodes.get(index)

    def store(self, update: TreeUpdate) -> None:
        for n in update.nodes:
            self.nodes[n.index] = n


def node(triple: list[Any]) -> TreeNode:
    return TreeNode(triple[0], triple[1], bytes.fromhex(triple[2]))


def snapshots() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("compat", "default"):
        core = V["cores"][kind]
        for snap in [*core["lengths"], core["truncated"]]:
            yield kind, snap


def checker(kind: str) -> Callable[[bytes, int, int, bytes], bool]:
    """Signature check of the vector cores (compat: raw Ed25519; default v1: one-signer container)."""
    core = V["cores"][kind]
    vk = VerifyKey(bytes.fromhex(core["publicKey"]))
    key = bytes.fromhex(core["key"])

    def check(tree_hash: bytes, length: int, fork: int, signature: bytes) -> bool:
        tail = tree_hash + struct.pack("<QQ", length, fork)
        if kind == "compat":
            signable, sig = TREE_NS + tail, signature
        else:
            if len(signature) != 68 or signature[:2] != b"\x01\x00" or signature[66:] != b"\x00\x00":
                return False
            signable, sig = TREE_NS + key + tail, signature[2:66]
        try:
            vk.verify(signable, sig)
        except BadSignatureError:
            return False
        return True

    return check


def full_tree(snap: dict[str, Any]) -> tuple[MerkleTree, DictReader]:
    reader = DictReader({n[0]: node(n) for n in snap["nodes"]})
    roots = [node(r) for r in snap["roots"]]
    tree = MerkleTree(reader, roots=roots, fork=snap["fork"], signature=bytes.fromhex(snap["signature"]))
    return tree, reader


def prefix_tree(snap: dict[str, Any], length: int) -> MerkleTree:
    """A requester that holds the first ``length`` blocks of the snapshot's tree (same fork)."""
    nodes = {n[0]: node(n) for n in snap["nodes"] if ft.right_span(n[0]) < 2 * length}
    roots = [nodes[i] for i in ft.full_roots(2 * length)]
    return MerkleTree(DictReader(nodes), roots=roots, fork=snap["fork"])


def request(r: dict[str, Any], fork: int) -> ProofRequest:
    return ProofRequest(
        fork=fork,
        block=BlockRequest(**r["block"]) if r.get("block") else None,
        hash=HashRequest(**r["hash"]) if r.get("hash") else None,
        seek=SeekRequest(**r["seek"]) if r.get("seek") else None,
        upgrade=UpgradeRequest(**r["upgrade"]) if r.get("upgrade") else None,
    )


def js_proof(entry: dict[str, Any], snap: dict[str, Any]) -> Proof:
    """Rebuild the proof JS sent from its node indexes (the script checked them against the table)."""
    table = {n[0]: node(n) for n in snap["nodes"]}
    p = entry["proof"]

    def nodes(ids: list[int]) -> tuple[TreeNode, ...]:
        return tuple(table[i] for i in ids)

    b, h, s, u = p["block"], p["hash"], p["seek"], p["upgrade"]
    return Proof(
        fork=p["fork"],
        block=DataBlock(b["index"], BLOCKS[b["index"]], nodes(b["nodes"])) if b else None,
        hash=DataHash(h["index"], nodes(h["nodes"])) if h else None,
        seek=DataSeek(s["bytes"], nodes(s["nodes"])) if s else None,
        upgrade=DataUpgrade(
            u["start"],
            u["length"],
            nodes(u["nodes"]),
            nodes(u["additionalNodes"]),
            bytes.fromhex(snap["signature"]),
        )
        if u
        else None,
    )


def proof_entries() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for kind, snap in snapshots():
        for entry in snap.get("proofs", []):
            yield kind, snap, entry


@pytest.mark.interop
def test_vectors_match_js() -> None:
    assert json.loads(run_node("vectors/merkle.js", timeout=300)) == V


def test_append_matches_js_roots_and_nodes() -> None:
    for kind in ("compat", "default"):
        reader = DictReader()
        tree = MerkleTree(reader)
        for snap in V["cores"][kind]["lengths"]:
            update = tree.append(BLOCKS[tree.length : snap["length"]])
            assert update.tree_hash().hex() == snap["treeHash"]
            reader.store(update)
            tree.apply(update.with_signature(bytes.fromhex(snap["signature"])))
            assert tree.length == snap["length"] and tree.byte_length == snap["byteLength"]
            assert [(r.index, r.size, r.hash.hex()) for r in tree.roots] == [tuple(r) for r in snap["roots"]]
            assert tree.tree_hash().hex() == snap["treeHash"]
            stored = {i: n for i, n in reader.nodes.items() if i < 2 * tree.length}
            assert stored == {n[0]: node(n) for n in snap["nodes"]}
            assert checker(kind)(tree.tree_hash(), tree.length, tree.fork, tree.signature or b"")


def test_append_many_at_once_equals_one_by_one() -> None:
    one = MerkleTree(DictReader())
    nodes: list[TreeNode] = []
    for b in BLOCKS:
        u = one.append([b])
        nodes.extend(u.nodes)
        one.apply(u)
    batch = MerkleTree(DictReader()).append(BLOCKS)
    assert list(batch.roots) == one.roots and list(batch.nodes) == nodes
    assert batch.length == len(BLOCKS) and batch.base_length == 0 and batch.upgraded


def test_byte_offsets_and_seeks_match_js() -> None:
    for _kind, snap in snapshots():
        tree, _ = full_tree(snap)
        for i, offset in enumerate(snap["byteOffsets"]):
            assert tree.byte_offset(i) == offset
            if i < tree.length:
                assert tree.byte_range(i) == (offset, len(BLOCKS[i]))
        for seek in snap["seeks"]:
            padding = seek[2] if len(seek) > 2 else 0
            expected = seek[1]
            if expected is None:
                with pytest.raises(CoreError):
                    tree.seek(seek[0], padding)
            else:
                assert list(tree.seek(seek[0], padding)) == expected, seek


def test_truncate_matches_js() -> None:
    for kind in ("compat", "default"):
        full = V["cores"][kind]["lengths"][-1]
        cut = V["cores"][kind]["truncated"]
        tree, _ = full_tree(full)
        update = tree.truncate(cut["length"], cut["fork"])
        assert [(r.index, r.size, r.hash.hex()) for r in update.roots] == [tuple(r) for r in cut["roots"]]
        assert update.tree_hash().hex() == cut["treeHash"] and update.byte_length == cut["byteLength"]
        assert update.truncated and update.ancestors == cut["length"] and update.nodes == ()
        assert tree.length == full["length"]  # computing never mutates
        tree.apply(update.with_signature(bytes.fromhex(cut["signature"])))
        assert (tree.length, tree.fork) == (cut["length"], cut["fork"])
        assert checker(kind)(tree.tree_hash(), tree.length, tree.fork, tree.signature or b"")


def test_obsolete_nodes_after_truncation() -> None:
    dropped, crossing = obsolete_nodes(3, 8)
    assert dropped == range(6, 16)
    assert set(crossing) == {5, 3}
    assert obsolete_nodes(5, 5) == (range(0), ())
    for ancestors in range(1, 20):
        _, crossing = obsolete_nodes(ancestors, 40)
        head = 2 * ancestors
        expected = {i for i in range(head) if i & 1 and ft.left_span(i) < head <= ft.right_span(i)}
        assert set(crossing) == expected, ancestors


def test_proofs_select_the_same_nodes_as_js() -> None:
    checked = errors = 0
    for _kind, snap, entry in proof_entries():
        tree, _ = full_tree(snap)
        req = request(entry["request"], snap["fork"])
        value = BLOCKS[req.block.index] if req.block is not None else b""
        if "error" in entry:
            with pytest.raises((ProofRequestError, BlockNotAvailableError)):
                tree.proof(req, value)
            errors += 1
            continue
        assert tree.proof(req, value) == js_proof(entry, snap), entry["request"]
        checked += 1
    assert checked > 4000 and errors > 1000


def test_spec_table_6_3() -> None:
    snap = next(s for k, s in snapshots() if k == "compat" and s["length"] == 11)
    tree, _ = full_tree(snap)

    def ids(req: ProofRequest) -> tuple[list[int], list[int], list[int]]:
        p = tree.proof(req, BLOCKS[req.block.index] if req.block else b"")
        part = p.block or p.hash
        up = p.upgrade
        return (
            [n.index for n in part.nodes] if part else [],
            [n.index for n in up.nodes] if up else [],
            [n.index for n in up.additional_nodes] if up else [],
        )

    assert ids(ProofRequest(0, upgrade=UpgradeRequest(3, 1))) == ([], [6], [11, 17, 20])
    assert ids(ProofRequest(0, upgrade=UpgradeRequest(3, 5))) == ([], [6, 11], [17, 20])
    assert ids(ProofRequest(0, upgrade=UpgradeRequest(0, 11))) == ([], [7, 17, 20], [])
    assert ids(ProofRequest(0, block=BlockRequest(9, 0), upgrade=UpgradeRequest(3, 8))) == (
        [16],
        [6, 11, 20],
        [],
    )
    assert ids(ProofRequest(0, block=BlockRequest(5, 0), upgrade=UpgradeRequest(3, 8))) == (
        [8, 13],
        [6, 17, 20],
        [],
    )
    assert ids(ProofRequest(0, block=BlockRequest(1, 2))) == ([0, 5], [], [])
    assert ids(ProofRequest(0, hash=HashRequest(5, 1))) == ([5, 1], [], [])


def _requester_for(snap: dict[str, Any], proof: Proof) -> MerkleTree:
    if proof.upgrade is not None:
        return prefix_tree(snap, proof.upgrade.start)
    return full_tree(snap)[0]


def test_js_proofs_verify() -> None:
    verified = refused = 0
    for kind, snap, entry in proof_entries():
        if "error" in entry:
            continue
        proof = js_proof(entry, snap)
        tree = _requester_for(snap, proof)
        before = (tree.length, list(tree.roots), tree.fork)
        check = checker(kind)
        top = _subtree_top(proof)
        unmerged = proof.upgrade is not None and top is not None and not _used_by_upgrade(top, proof)
        if unmerged and top is not None and ft.right_span(top) >= 2 * tree.length:
            # The proof lands on a node the prefix requester does not hold: JS refuses it too.
            with pytest.raises(VerificationError):
                tree.verify(proof, check)
            refused += 1
            continue
        update = tree.verify(proof, check)
        assert (tree.length, list(tree.roots), tree.fork) == before
        if proof.upgrade is not None:
            assert update.upgraded and update.length == snap["length"]
            assert update.tree_hash().hex() == snap["treeHash"] and update.signature == bytes.fromhex(
                snap["signature"]
            )
        else:
            assert not update.upgraded
        if proof.block is not None:
            assert update.block == proof.block
            leaf = TreeNode(2 * proof.block.index, len(proof.block.value), leaf_hash(proof.block.value))
            # The leaf is stored unless the requester holds it already (nodes it holds are not
            # handed back for storing again).
            assert leaf in update.nodes or tree.reader.get_node(leaf.index) == leaf
        table = {n[0]: node(n) for n in snap["nodes"]}
        assert all(table[n.index] == n for n in update.nodes)
        verified += 1
    assert verified > 3000 and refused > 0


def _subtree_top(proof: Proof) -> int | None:
    if proof.block is not None:
        pos, count = 2 * proof.block.index, len(proof.block.nodes)
    elif proof.hash is not None:
        pos, count = proof.hash.index, len(proof.hash.nodes) - 1
    elif proof.seek is not None and proof.seek.nodes:
        pos, count = proof.seek.nodes[0].index, len(proof.seek.nodes) - 1
    else:
        return None
    if (proof.block is not None or proof.hash is not None) and proof.seek is not None and proof.seek.nodes:
        count += len(proof.seek.nodes) - 1
    for _ in range(count):
        pos = ft.parent(pos)
    return pos


def _used_by_upgrade(top: int, proof: Proof) -> bool:
    """Whether the responder merged the block/hash/seek chain into the upgrade (hypercore.md §6.1)."""
    assert proof.upgrade is not None
    if proof.block is not None:
        return proof.block.index >= proof.upgrade.start
    if proof.hash is not None:
        return ft.right_span(proof.hash.index) // 2 >= proof.upgrade.start
    return True


def _tamper_cases(proof: Proof) -> Iterator[tuple[str, Proof]]:
    """Every single-field corruption of a proof that an honest verifier must refuse."""
    r = dataclasses.replace

    def flip(n: TreeNode) -> TreeNode:
        return TreeNode(n.index, n.size, bytes([n.hash[0] ^ 1]) + n.hash[1:])

    parts: list[tuple[str, tuple[TreeNode, ...], Callable[[tuple[TreeNode, ...]], Proof]]] = []
    if proof.block is not None:
        blk = proof.block
        parts.append(("block", blk.nodes, lambda ns: r(proof, block=r(blk, nodes=ns))))
        yield "block value", r(proof, block=r(blk, value=blk.value + b"x"))
        yield "block index", r(proof, block=r(blk, index=blk.index + 1))
    if proof.hash is not None:
        hsh = proof.hash
        parts.append(("hash", hsh.nodes, lambda ns: r(proof, hash=r(hsh, nodes=ns))))
    if proof.seek is not None:
        sk = proof.seek
        parts.append(("seek", sk.nodes, lambda ns: r(proof, seek=r(sk, nodes=ns))))
    if proof.upgrade is not None:
        up = proof.upgrade
        parts.append(("upgrade", up.nodes, lambda ns: r(proof, upgrade=r(up, nodes=ns))))
        parts.append(
            ("additional", up.additional_nodes, lambda ns: r(proof, upgrade=r(up, additional_nodes=ns)))
        )
        sig = up.signature
        yield "signature", r(proof, upgrade=r(up, signature=bytes([sig[0] ^ 1]) + sig[1:]))
        yield "no signature", r(proof, upgrade=r(up, signature=b""))
        if up.start > 0:
            yield (
                "shorter upgrade",
                r(proof, upgrade=r(up, length=up.length - 1))
                if up.length > 1
                else r(proof, upgrade=r(up, start=up.start - 1)),
            )
    yield "fork", r(proof, fork=proof.fork + 1)
    for name, ns, make in parts:
        for k, n in enumerate(ns):
            yield f"{name} hash {k}", make((*ns[:k], flip(n), *ns[k + 1 :]))
            yield f"{name} size {k}", make((*ns[:k], TreeNode(n.index, n.size + 1, n.hash), *ns[k + 1 :]))
            yield f"{name} index {k}", make((*ns[:k], TreeNode(n.index + 2, n.size, n.hash), *ns[k + 1 :]))
        if ns:
            yield f"{name} extra", make((*ns, ns[-1]))
            # A shorter block/hash chain is still a valid proof when its new top is trusted; only the
            # upgrade parts must be complete.
            if name in ("upgrade", "additional"):
                yield f"{name} dropped", make(ns[:-1])


def test_tampered_js_proofs_are_refused() -> None:
    cases = 0
    for kind, snap, entry in proof_entries():
        if "error" in entry or snap["length"] not in (11, 13):
            continue
        proof = js_proof(entry, snap)
        tree = _requester_for(snap, proof)
        check = checker(kind)
        try:
            tree.verify(proof, check)
        except VerificationError:
            continue  # lands on a node this requester lacks (see test_js_proofs_verify)
        before = (tree.length, list(tree.roots), tree.fork, tree.signature)
        for name, bad in _tamper_cases(proof):
            with pytest.raises(VerificationError):
                tree.verify(bad, check)
                pytest.fail(f"accepted a proof with a tampered {name}: {entry['request']}")
            cases += 1
        assert (tree.length, list(tree.roots), tree.fork, tree.signature) == before
    assert cases > 5000


def test_missing_nodes_match_js_sparse_replica() -> None:
    sp = V["sparse"]
    nodes = {n[0]: node(n) for n in sp["nodes"]}
    tree = MerkleTree(DictReader(nodes), roots=[node(r) for r in sp["roots"]])
    assert [tree.missing_nodes(i) for i in range(sp["length"])] == sp["missingNodes"]
    assert tree.missing_nodes(sp["length"] + 5) == 0


def test_block_proofs_for_a_sparse_requester() -> None:
    """A requester asks with its own missing_nodes count; the proof lands on a node it holds."""
    full = next(s for k, s in snapshots() if k == "compat" and s["length"] == 37)
    responder, _ = full_tree(full)
    sp = V["sparse"]
    # The sparse replica is of a different (21-block) core: rebuild the same shape on the 37-block core.
    reader = DictReader(
        {i: n for i, n in full_tree(full)[1].nodes.items() if i in {r[0] for r in full["roots"]}}
    )
    requester = MerkleTree(reader, roots=[node(r) for r in full["roots"]])
    assert sp["fetched"]
    for index in range(full["length"]):
        nodes = requester.missing_nodes(index)
        proof = responder.proof(ProofRequest(0, block=BlockRequest(index, nodes)), BLOCKS[index])
        update = requester.verify(proof, checker("compat"))
        assert update.block is not None and update.block.index == index
        reader.store(update)
        assert requester.missing_nodes(index) == 0


def _pipelined(order: list[int]) -> tuple[MerkleTree, DictReader, dict[int, TreeNode], list[Proof]]:
    """A requester holding only the roots of the 37-block core, with a proof for every block
    asked for before any answer arrived (as a replicator pipelines its requests)."""
    full = next(s for k, s in snapshots() if k == "compat" and s["length"] == 37)
    responder, truth = full_tree(full)
    roots = {r[0] for r in full["roots"]}
    reader = DictReader({i: n for i, n in truth.nodes.items() if i in roots})
    requester = MerkleTree(reader, roots=[node(r) for r in full["roots"]])
    proofs = [
        responder.proof(ProofRequest(0, block=BlockRequest(i, requester.missing_nodes(i))), BLOCKS[i])
        for i in order
    ]
    return requester, reader, truth.nodes, proofs


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_pipelined_block_proofs_verify_in_any_order(seed: int | None) -> None:
    import random

    order = list(range(37))
    if seed is not None:
        random.Random(seed).shuffle(order)
    requester, reader, truth, proofs = _pipelined(order)
    sent = stored = 0
    for proof in proofs:
        update = requester.verify(proof, checker("compat"))
        assert proof.block is not None and update.block == proof.block and not update.upgraded
        assert all(truth[n.index] == n and n.index not in reader.nodes for n in update.nodes)
        sent += len(proof.block.nodes)
        stored += len(update.nodes)
        reader.store(update)
        assert reader.nodes[2 * proof.block.index] == truth[2 * proof.block.index]
    # Nodes that earlier answers already brought are checked, not stored a second time.
    assert stored < sent + len(proofs)


def test_pipelined_block_proofs_with_any_node_forged_are_refused() -> None:
    """Once earlier answers are stored, the upper nodes of a pipelined proof are compared with
    what the requester holds: changing any node (or the block) is still refused."""
    requester, reader, _, proofs = _pipelined(list(range(37)))
    refused = 0
    for proof in proofs:
        assert proof.block is not None
        before = dict(reader.nodes)
        forged = [dataclasses.replace(proof.block, value=proof.block.value + b"!")]
        for k, n in enumerate(proof.block.nodes):
            bad = [*proof.block.nodes]
            bad[k] = TreeNode(n.index, n.size, bytes(32))
            forged.append(dataclasses.replace(proof.block, nodes=tuple(bad)))
            bad[k] = TreeNode(n.index, n.size + 1, n.hash)
            forged.append(dataclasses.replace(proof.block, nodes=tuple(bad)))
        for block in forged:
            with pytest.raises(VerificationError):
                requester.verify(dataclasses.replace(proof, block=block), checker("compat"))
            refused += 1
        assert reader.nodes == before
        reader.store(requester.verify(proof, checker("compat")))
    assert refused > 37 * 3


def test_block_proof_mixing_held_and_new_siblings() -> None:
    """The requester holds the leaf and its sibling but not the next level up: the held part is
    checked without hashing, then the value is rebuilt to fold in the sibling it lacks."""
    writer_nodes = DictReader()
    writer = MerkleTree(writer_nodes)
    blocks = [bytes([i]) * (i + 1) for i in range(16)]
    update = writer.append(blocks)
    writer_nodes.store(update)
    writer.apply(update)
    truth = writer_nodes.nodes
    proof = writer.proof(ProofRequest(0, block=BlockRequest(0, 4)), blocks[0])
    assert proof.block is not None and [n.index for n in proof.block.nodes] == [2, 5, 11, 23]
    held = {i: truth[i] for i in (0, 2, 15)}  # leaf 0, its sibling, the root; not 1, 3 or 7
    requester = MerkleTree(DictReader(held), roots=[truth[15]])
    result = requester.verify(proof, lambda *_: False)
    assert {n.index for n in result.nodes} == {3, 5, 7, 11, 23}
    assert all(truth[n.index] == n for n in result.nodes)
    for k in range(4):
        bad = [*proof.block.nodes]
        bad[k] = TreeNode(bad[k].index, bad[k].size, bytes(32))
        forged = dataclasses.replace(proof, block=dataclasses.replace(proof.block, nodes=tuple(bad)))
        with pytest.raises(VerificationError):
            requester.verify(forged, lambda *_: False)


def test_plain_block_proofs_match_the_general_path() -> None:
    """A plain block request takes a shortcut: same nodes, and the same errors, as the general
    proof builder, for every block, every ``nodes`` count and blocks just past the end."""

    def outcome(build: Callable[[ProofRequest, bytes], Proof], req: ProofRequest, value: bytes) -> object:
        try:
            return build(req, value)
        except CoreError as exc:
            return type(exc), str(exc)

    compared = 0
    for kind, snap in snapshots():
        tree, reader = full_tree(snap)
        sparse = MerkleTree(
            DictReader({i: n for i, n in reader.nodes.items() if i % 7 != 3}),
            roots=list(tree.roots),
            fork=tree.fork,
        )
        for t in (tree, sparse):
            for index in range(-1, t.length + 2):
                for nodes in range(-1, 12):
                    req = ProofRequest(t.fork, block=BlockRequest(index, nodes))
                    value = BLOCKS[index] if 0 <= index < len(BLOCKS) else b"x"
                    fast = outcome(t.proof, req, value)
                    general = outcome(t._general_proof, req, value)
                    assert fast == general, (kind, index, nodes)
                    compared += 1
    assert compared > 1000


def test_verify_rejects_a_proof_landing_on_an_unknown_node() -> None:
    full = next(s for k, s in snapshots() if k == "compat" and s["length"] == 11)
    responder, _ = full_tree(full)
    requester = MerkleTree(DictReader(), roots=[])
    proof = responder.proof(ProofRequest(0, block=BlockRequest(2, 1)), BLOCKS[2])
    with pytest.raises(VerificationError):
        requester.verify(proof, checker("compat"))


def test_verify_remote_accepts_a_whole_tree_on_another_fork() -> None:
    cut = V["cores"]["compat"]["truncated"]
    responder, _ = full_tree(cut)
    proof = responder.proof(
        ProofRequest(cut["fork"], block=BlockRequest(4, 0), upgrade=UpgradeRequest(0, cut["length"])),
        BLOCKS[4],
    )
    old = prefix_tree(V["cores"]["compat"]["lengths"][-1], 20)
    with pytest.raises(VerificationError):
        old.verify(proof, checker("compat"))
    update = old.verify_remote(proof, checker("compat"))
    assert update.fork == cut["fork"] and update.length == cut["length"] and update.ancestors == 0
    assert update.tree_hash().hex() == cut["treeHash"] and update.block == proof.block
    with pytest.raises(VerificationError):
        old.verify_remote(dataclasses.replace(proof, upgrade=None), checker("compat"))


def test_apply_refuses_stale_updates() -> None:
    tree = MerkleTree(DictReader())
    first = tree.append([b"a"])
    second = tree.append([b"b"])
    tree.apply(first)
    with pytest.raises(CoreError):
        tree.apply(second)
    with pytest.raises(CoreError):
        tree.apply(dataclasses.replace(tree.append([b"c"]), base_fork=3))


def test_bad_constructor_and_requests() -> None:
    with pytest.raises(CoreError):
        MerkleTree(DictReader(), roots=[TreeNode(4, 1, bytes(32))])
    snap = next(s for k, s in snapshots() if k == "compat" and s["length"] == 11)
    tree, _ = full_tree(snap)
    with pytest.raises(CoreError):
        tree.truncate(12, 1)
    with pytest.raises(CoreError):
        tree.byte_offset(12)
    with pytest.raises(CoreError):
        tree.seek(snap["byteLength"] + 1)
    with pytest.raises(ProofRequestError):
        tree.proof(ProofRequest(0, block=BlockRequest(-1, 0)))
    empty = MerkleTree(DictReader())
    assert empty.proof(ProofRequest(0, upgrade=UpgradeRequest(0, 1))) == Proof(fork=0)
    assert empty.tree_hash() == bytes.fromhex("") or len(empty.tree_hash()) == 32


def test_record_builder_makes_ordinary_frozen_records() -> None:
    from hyperlobby.core.proofs import record_builder, tree_node

    node = tree_node(6, 3, b"h" * 32)
    assert type(node) is TreeNode and node == TreeNode(6, 3, b"h" * 32)
    assert hash(node) == hash(TreeNode(6, 3, b"h" * 32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.size = 4  # type: ignore[misc]
    build = record_builder(TreeUpdate)
    fields = (1, 2, 3, (node,), (), None, False, 2, 1, 2, None, None)
    update = build(*fields)
    assert type(update) is TreeUpdate and update == TreeUpdate(*fields)
    assert update.with_signature(b"s").signature == b"s"  # methods come with the class

    @dataclasses.dataclass(frozen=True, slots=True)
    class Child(TreeNode):
        extra: int

    assert record_builder(Child) is Child  # a layout it does not handle: the class itself
