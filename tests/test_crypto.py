"""hyperlobby.crypto against golden vectors printed by hypercore 11 / corestore 7 / hypercore-crypto."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import load_vectors, run_node
from hyperlobby.crypto import caps, corestore, keys, namespaces
from hyperlobby.crypto.hashes import discovery_key
from hyperlobby.crypto.manifest import (
    Manifest,
    Prologue,
    Signer,
    core_key,
    create_manifest,
    is_compat,
    manifest_codec,
    manifest_hash,
)
from hyperlobby.crypto.signing import (
    Verifier,
    inflate,
    inflate_v0,
    tree_signable,
    tree_signable_compat,
)
from hyperlobby.encoding import compact as c
from hyperlobby.encoding.ids import encode_id
from hyperlobby.errors import DecodeError, EncodeError

V: Any = load_vectors("crypto")
h = bytes.fromhex


def manifest_json(m: Manifest) -> dict[str, Any]:
    """The same JSON shape the JS script prints for a manifest."""
    return {
        "version": m.version,
        "hash": "blake2b",
        "allowPatch": m.allow_patch,
        "quorum": m.quorum,
        "signers": [
            {"signature": "ed25519", "namespace": s.namespace.hex(), "publicKey": s.public_key.hex()}
            for s in m.signers
        ],
        "prologue": None
        if m.prologue is None
        else {"hash": m.prologue.hash.hex(), "length": m.prologue.length},
        "linked": None if m.linked is None else [k.hex() for k in m.linked],
        "userData": None if m.user_data is None else m.user_data.hex(),
    }


def manifest_from_json(d: dict[str, Any]) -> Manifest:
    return Manifest(
        version=d["version"],
        allow_patch=d["allowPatch"],
        quorum=d["quorum"],
        signers=tuple(Signer(h(s["publicKey"]), h(s["namespace"])) for s in d["signers"]),
        prologue=None
        if d["prologue"] is None
        else Prologue(h(d["prologue"]["hash"]), d["prologue"]["length"]),
        linked=None if d["linked"] is None else tuple(h(k) for k in d["linked"]),
        user_data=None if d["userData"] is None else h(d["userData"]),
    )


@pytest.mark.interop
def test_vectors_match_js() -> None:
    assert json.loads(run_node("vectors/crypto.js", timeout=120)) == V


def test_namespaces() -> None:
    ns = V["namespaces"]
    assert [h(x) for x in ns["hypercore"]] == [
        namespaces.TREE,
        namespaces.REPLICATE_INITIATOR,
        namespaces.REPLICATE_RESPONDER,
        namespaces.MANIFEST,
        namespaces.DEFAULT_NAMESPACE,
        namespaces.DEFAULT_ENCRYPTION,
    ]
    assert [h(x) for x in ns["hyperswarm/secret-stream"]] == [
        namespaces.SECRET_STREAM_INITIATOR,
        namespaces.SECRET_STREAM_RESPONDER,
        namespaces.SECRET_STREAM_SEND,
    ]
    assert h(ns["corestore"][0]) == namespaces.CORESTORE
    assert h(ns["hyperdrive"][0]) == namespaces.HYPERDRIVE_BLOBS
    assert namespaces.MANIFEST.hex() == V["caps_constants"]["MANIFEST"]
    assert namespaces.DEFAULT_NAMESPACE.hex() == V["caps_constants"]["DEFAULT_NAMESPACE"]


@pytest.mark.parametrize("case", V["seeds"], ids=lambda x: x["seed"][:2])
def test_seed_keys(case: dict[str, Any]) -> None:
    kp = keys.key_pair(h(case["seed"]))
    assert kp.public_key.hex() == case["publicKey"]
    assert kp.secret_key is not None and kp.secret_key.hex() == case["secretKey"]
    assert keys.validate_key_pair(kp)
    sig = keys.sign(h(case["message"]), kp.secret_key)
    assert sig.hex() == case["signature"]
    assert keys.verify(h(case["message"]), sig, kp.public_key)
    m = Manifest.default(kp.public_key)
    assert m.encode().hex() == case["defaultManifest"]
    assert manifest_hash(m).hex() == case["key"] == case["coreKey"]
    assert m.key.hex() == case["key"]
    assert core_key(kp.public_key).hex() == case["key"]
    assert discovery_key(m.key).hex() == case["discoveryKey"]
    assert encode_id(m.key) == case["id"]
    assert core_key(kp.public_key, compat=True).hex() == case["compatKey"]
    assert discovery_key(kp.public_key).hex() == case["compatDiscoveryKey"]
    assert is_compat(m, kp.public_key)
    assert not is_compat(m, m.key)


@pytest.mark.parametrize("case", V["manifests"], ids=lambda x: x["name"])
def test_manifest_encodings(case: dict[str, Any]) -> None:
    m = manifest_from_json(case["manifest"])
    assert m.encode().hex() == case["encoded"]
    decoded = Manifest.decode(h(case["encoded"]))
    assert manifest_json(decoded) == case["decoded"]
    assert manifest_hash(m).hex() == case["key"]
    assert discovery_key(manifest_hash(m)).hex() == case["discoveryKey"]


def test_create_manifest_defaults() -> None:
    """create_manifest with the same inputs as the JS script gives the same normalised manifests."""
    a, b, cc, n, p = (bytes([x]) * 32 for x in (0xAA, 0xBB, 0xCC, 0x11, 0x22))
    built = {
        "default_v1": create_manifest([a]),
        "multi_patch": create_manifest([Signer(a, n), Signer(b, n)], quorum=2, allow_patch=True),
        "three_default_quorum": create_manifest([a, b, cc]),
        "four_default_quorum": create_manifest([a, b, cc, n]),
        "static_prologue": create_manifest([], quorum=0, prologue=Prologue(p, 5)),
        "signer_and_prologue": create_manifest([a], prologue=Prologue(p, 300)),
        "v2_linked_userdata": create_manifest([Signer(a, n)], linked=[b], user_data=b"hi"),
        "v2_userdata_only": create_manifest([a], user_data=b"some user data"),
        "v2_linked_two": create_manifest([a], linked=[b, cc]),
        "v3_plain": create_manifest([a], version=3),
        "v2_explicit": create_manifest([a], version=2),
        "v0_single": create_manifest([Signer(a, n)], version=0),
        "v0_multi": create_manifest([a, b], version=0, quorum=2, allow_patch=True),
        "v0_multi_quorum1": create_manifest([a, b], version=0, quorum=1),
        "v0_single_patch": create_manifest([a], version=0, allow_patch=True),
        "v0_prologue": create_manifest([], version=0, quorum=0, prologue=Prologue(p, 0)),
        "no_signers": create_manifest([]),
    }
    for case in V["manifests"]:
        assert manifest_json(built[case["name"]]) == case["manifest"], case["name"]
    assert {e["name"] for e in V["create_manifest_errors"] if e["error"]} == {
        "quorum_too_high",
        "userdata_v1",
        "linked_v1",
        "bad_prologue",
    }
    with pytest.raises(EncodeError):
        create_manifest([a], quorum=3)
    with pytest.raises(EncodeError):
        create_manifest([a], version=1, user_data=b"x")
    with pytest.raises(EncodeError):
        create_manifest([a], version=1, linked=[b])
    with pytest.raises(Exception):  # noqa: B017 - any of our errors: a 31-byte prologue hash
        create_manifest([], prologue=Prologue(bytes(31), 1))


@pytest.mark.parametrize("case", V["manifest_decode"], ids=lambda x: x["hex"][:16] or "empty")
def test_manifest_decode_cases(case: dict[str, Any]) -> None:
    data = h(case["hex"])
    if "ok" in case:
        assert manifest_json(Manifest.decode(data)) == case["ok"]
    else:
        with pytest.raises(DecodeError):
            Manifest.decode(data)


# --- tree heads of real JS cores ----------------------------------------------------------------


@pytest.mark.parametrize("core", V["cores"], ids=lambda x: f"{x['kind']}-{x['seed'][:2]}")
def test_core_signatures(core: dict[str, Any]) -> None:
    kp = keys.key_pair(h(core["seed"]))
    key = h(core["key"])
    # Both kinds keep the default one-signer manifest; a compat core is told apart by its key.
    manifest = Manifest.decode(h(core["manifest"]))
    assert manifest == Manifest.default(kp.public_key)
    verifier = Verifier(manifest, key)
    if core["compat"]:
        assert key == kp.public_key
        assert (
            Verifier(None, key).sign(h(core["steps"][0]["treeHash"]), 1, 0, kp).hex()
            == core["steps"][0]["signature"]
        )
    else:
        assert manifest_hash(manifest) == key
    assert verifier.compat is core["compat"]
    for step in core["steps"]:
        tree_hash, length, fork = h(step["treeHash"]), step["length"], step["fork"]
        assert verifier.signable(tree_hash, length, fork).hex() == step["signable"]
        signature = verifier.sign(tree_hash, length, fork, kp)
        assert signature.hex() == step["signature"], step["op"]
        assert len(signature) == (64 if core["compat"] else 68)
        assert verifier.verify(tree_hash, length, fork, signature)
        assert not verifier.verify(tree_hash, length + 1, fork, signature)
        assert not verifier.verify(tree_hash, length, fork + 1, signature)


def test_signables_by_hand() -> None:
    step = V["cores"][0]["steps"][2]
    th = h(step["treeHash"])
    key = h(V["cores"][0]["key"])
    assert tree_signable(key, th, 3, 0) == namespaces.TREE + key + th + bytes([3]) + bytes(15)
    assert tree_signable_compat(th, 3, 0) == namespaces.TREE + th + bytes([3]) + bytes(15)
    assert tree_signable_compat(th, 3, 0, legacy=True) == th + bytes([3]) + bytes(15)
    assert len(tree_signable(key, th, 2**64 - 1, 2**64 - 1)) == 112
    with pytest.raises(EncodeError):
        tree_signable(key, th, 2**64, 0)


# --- the verifier on JS-made signatures ----------------------------------------------------------


@pytest.mark.parametrize("case", V["verifier"], ids=lambda x: x["name"])
def test_verifier_cases(case: dict[str, Any]) -> None:
    manifest = Manifest.decode(h(case["manifest"]))
    verifier = Verifier(manifest, h(case["key"]), compat=case["compat"] or None, legacy=case["legacy"])
    assert verifier.compat is case["compat"]
    signature = None if case["signature"] is None else h(case["signature"])
    expected = case["valid"] is True  # JS throws on undecodable containers; we say False
    assert verifier.verify(h(case["treeHash"]), case["length"], case["fork"], signature) is expected


def test_verifier_sign_matches_js() -> None:
    """Signatures are deterministic (Ed25519), so re-signing the JS cases gives the same bytes."""
    kps = {kp.public_key: kp for kp in (keys.key_pair(bytes([b]) * 32) for b in (0x00, 0x01, 0x42))}
    names = {"v1 single signer", "v1 single signer, fork 3", "compat", "compat legacy", "v0 single signer"}
    for case in V["verifier"]:
        if case["name"] not in names:
            continue
        manifest = Manifest.decode(h(case["manifest"]))
        verifier = Verifier(manifest, h(case["key"]), compat=case["compat"] or None, legacy=case["legacy"])
        kp = kps[manifest.signers[0].public_key]
        sig = verifier.sign(h(case["treeHash"]), case["length"], case["fork"], kp)
        assert sig.hex() == case["signature"], case["name"]


def test_multisig_containers() -> None:
    v1 = V["multisig"]["v1"]
    s1 = inflate(h(v1["hex"]))
    assert [(p.signer, p.signature.hex(), p.patch) for p in s1.proofs] == [
        (p["signer"], p["signature"], p["patch"]) for p in v1["decoded"]["proofs"]
    ]
    assert [(n.index, n.size, n.hash.hex()) for n in s1.patch] == [
        (n["index"], n["size"], n["hash"]) for n in v1["decoded"]["patch"]
    ]
    v0 = V["multisig"]["v0"]
    s0 = inflate_v0(h(v0["hex"]))
    got = [
        (
            p.signer,
            p.signature.hex(),
            None if p.patch is None else [p.patch.start, p.patch.length, list(p.patch.nodes)],
        )
        for p in s0.proofs
    ]
    want = [
        (
            p["signer"],
            p["signature"],
            None if p["patch"] is None else [p["patch"]["start"], p["patch"]["length"], p["patch"]["nodes"]],
        )
        for p in v0["decoded"]["proofs"]
    ]
    assert got == want
    # Re-assemble the same inputs the JS script assembled.
    from hyperlobby.crypto.signing import PatchNode, SignatureInput, assemble, assemble_v0

    n1 = PatchNode(13, 9, bytes([0x31]) * 32)
    n2 = PatchNode(19, 4, bytes([0x32]) * 32)
    inputs = [
        SignatureInput(0, s1.proofs[0].signature, 2, (n1, n2)),
        SignatureInput(2, s1.proofs[1].signature, 1, (n1,)),
        SignatureInput(1, s1.proofs[2].signature, 0, None),
    ]
    assert assemble(inputs).hex() == v1["hex"]
    assert assemble_v0(inputs).hex() == v0["hex"]


# --- corestore and caps ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["corestore"]["cores"], ids=lambda x: f"{x['namespace']}-{x['name']}")
def test_corestore(case: dict[str, Any]) -> None:
    primary = h(V["corestore"]["primaryKey"])
    ns = (
        namespaces.ROOT_NAMESPACE
        if case["namespace"] is None
        else corestore.namespace_path(case["namespace"])
    )
    assert ns.hex() == case["ns"]
    kp = corestore.derive_key_pair(primary, case["name"], ns)
    assert kp.public_key.hex() == case["publicKey"]
    assert kp.secret_key is not None and kp.secret_key.hex() == case["secretKey"]
    assert corestore.derive_seed(primary, ns, case["name"]).hex() == case["secretKey"][:64]
    assert corestore.default_manifest(primary, case["name"], ns).encode().hex() == case["manifest"]
    key = corestore.derive_core_key(primary, case["name"], ns)
    assert key.hex() == case["key"]
    assert discovery_key(key).hex() == case["discoveryKey"]


def test_child_namespace_chain() -> None:
    x = corestore.child_namespace(namespaces.ROOT_NAMESPACE, "x")
    assert corestore.child_namespace(x, b"y") == corestore.namespace_path(["x", "y"])


@pytest.mark.parametrize("case", V["caps"], ids=lambda x: x["handshakeHash"][:2])
def test_caps(case: dict[str, Any]) -> None:
    key, hh = h(case["key"]), h(case["handshakeHash"])
    assert caps.replication_capability(key, hh, True).hex() == case["initiator"]
    assert caps.replication_capability(key, hh, False).hex() == case["responder"]
    assert caps.check_remote_capability(key, hh, False, h(case["initiator"]))
    assert not caps.check_remote_capability(key, hh, True, h(case["initiator"]))


# --- properties and fuzzing -----------------------------------------------------------------------

_key = st.binary(min_size=32, max_size=32)
_signer = st.builds(Signer, _key, _key)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    version = draw(st.integers(min_value=1, max_value=3))
    signers = tuple(draw(st.lists(_signer, max_size=4)))
    return Manifest(
        version=version,
        allow_patch=draw(st.booleans()),
        quorum=draw(st.integers(min_value=0, max_value=300)),
        signers=signers,
        prologue=draw(st.none() | st.builds(Prologue, _key, st.integers(min_value=0, max_value=2**53 - 1))),
        linked=draw(st.none() | st.lists(_key, max_size=3).map(tuple)),
        user_data=draw(st.none() | st.binary(max_size=40)),
    )


@given(manifests())
def test_manifest_roundtrip(m: Manifest) -> None:
    data = m.encode()
    assert Manifest.decode(data) == m
    assert c.decode(manifest_codec, data, exact=True) == m


@given(st.binary(max_size=200))
def test_manifest_decode_fuzz(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Manifest.decode(data)


@given(st.binary(max_size=200), st.binary(min_size=32, max_size=32))
def test_verify_never_raises(signature: bytes, tree_hash: bytes) -> None:
    kps = [keys.key_pair(bytes([i]) * 32) for i in range(3)]
    for m in (
        Manifest.default(kps[0].public_key),
        create_manifest([k.public_key for k in kps]),
        create_manifest([k.public_key for k in kps], version=0),
    ):
        assert Verifier.from_manifest(m).verify(tree_hash, 3, 0, signature) in (True, False)
    assert Verifier(None, kps[0].public_key).verify(tree_hash, 3, 0, signature) is False


@given(st.binary(max_size=100), st.binary(max_size=80), st.binary(max_size=40))
def test_keys_verify_never_raises(message: bytes, signature: bytes, public_key: bytes) -> None:
    assert keys.verify(message, signature, public_key) is False or len(signature) == 64


def test_random_and_key_pair_checks() -> None:
    assert len(keys.random_bytes(17)) == 17
    assert keys.random_bytes(0) == b""
    kp = keys.key_pair()
    assert keys.validate_key_pair(kp)
    assert kp.secret_key is not None and kp.secret_key.hex() not in repr(kp)
    from hyperlobby.errors import InvalidKeyError

    with pytest.raises(InvalidKeyError):
        keys.key_pair(b"short")
    with pytest.raises(InvalidKeyError):
        keys.KeyPair(kp.public_key, bytes(64))


@st.composite
def v0_manifests(draw: st.DrawFn) -> Manifest:
    """The three shapes a version-0 manifest can express without loss."""
    kind = draw(st.sampled_from(["prologue", "single", "multi"]))
    if kind == "prologue":
        return Manifest(version=0, quorum=0, prologue=Prologue(draw(_key), 0))
    if kind == "single":
        return Manifest(version=0, quorum=1, signers=(draw(_signer),))
    signers = tuple(draw(st.lists(_signer, min_size=2, max_size=4)))
    return Manifest(
        version=0, allow_patch=draw(st.booleans()), quorum=draw(st.integers(0, 4)), signers=signers
    )


@given(v0_manifests())
def test_manifest_v0_roundtrip(m: Manifest) -> None:
    assert Manifest.decode(m.encode()) == m


def test_patched_proof_is_refused_clearly() -> None:
    from hyperlobby.crypto.signing import PatchNode, SignatureInput, assemble
    from hyperlobby.errors import VerificationError

    kps = [keys.key_pair(bytes([i]) * 32) for i in range(2)]
    m = create_manifest([k.public_key for k in kps], quorum=2, allow_patch=True)
    verifier = Verifier.from_manifest(m)
    th = bytes(32)
    sig = assemble(
        [
            SignatureInput(0, verifier.sign(th, 4, 0, kps[0]), 1, (PatchNode(8, 1, bytes(32)),)),
            SignatureInput(1, verifier.sign(th, 5, 0, kps[1])),
        ]
    )
    with pytest.raises(VerificationError):
        verifier.verify(th, 4, 0, sig)
    # Without allow_patch the patch count is ignored, as in JS.
    plain = Verifier.from_manifest(create_manifest([k.public_key for k in kps], quorum=2))
    sig2 = assemble(
        [
            SignatureInput(0, plain.sign(th, 4, 0, kps[0]), 1, (PatchNode(8, 1, bytes(32)),)),
            SignatureInput(1, plain.sign(th, 4, 0, kps[1])),
        ]
    )
    assert plain.verify(th, 4, 0, sig2)


def test_tree_hashes_from_blocks() -> None:
    """The JS tree hashes for lengths 1..3 recomputed from the hash helpers."""
    from hyperlobby.crypto.hashes import leaf_hash, parent_hash, tree_hash

    class Node:
        def __init__(self, index: int, size: int, digest: bytes) -> None:
            self.index, self.size, self.hash = index, size, digest

    a = Node(0, 5, leaf_hash(b"hello"))
    b = Node(2, 5, leaf_hash(b"world"))
    bang = Node(4, 1, leaf_hash(b"!"))
    ab = Node(1, 10, parent_hash(a, b))
    steps = V["cores"][0]["steps"]
    assert tree_hash([a]).hex() == steps[0]["treeHash"]
    assert tree_hash([ab]).hex() == steps[1]["treeHash"]
    assert tree_hash([ab, bang]).hex() == steps[2]["treeHash"]
