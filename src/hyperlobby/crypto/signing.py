"""What a core's writer signs, the signature containers, and the verifier of tree heads.

Theory of operation
-------------------
A writer signs the *tree head*: the tree hash of the Merkle roots at ``length``, with the
length and the fork id. The bytes that go into Ed25519 (the *signable*) depend on the kind
of core, and each form is domain-separated by the TREE namespace:

=========================  ==================================================================  ====
kind                       signable                                                            size
=========================  ==================================================================  ====
manifest version >= 1      TREE ‖ manifest hash (core key) ‖ treeHash ‖ u64le(len) ‖ u64le(fork)  112
manifest version 0         TREE ‖ signer.namespace ‖ treeHash ‖ u64le(len) ‖ u64le(fork)          112
compat (key = signer pk)   TREE ‖ treeHash ‖ u64le(len) ‖ u64le(fork)                             80
compat, legacy option      treeHash ‖ u64le(len) ‖ u64le(fork)                                    48
=========================  ==================================================================  ====

What travels (``upgrade.signature``) is the raw 64-byte signature for compat and version-0
single-signer cores, and otherwise a *multisig container*: a list of proofs (signer index,
signature, patch) followed by a list of patch nodes. Version >= 1 manifests always use the
container, even with one signer (a bare 64-byte signature fails there: it does not decode).

:class:`Verifier` follows hypercore's ``lib/verifier.js`` rule for rule:

1. version 0 (compat included): one signer and no patching → check the raw signature;
   otherwise the multisig path with the version-0 container;
2. a prologue covers every length up to its own: valid iff the length and tree hash match it,
   with no signature at all;
3. multisig: at least ``quorum`` proofs (and quorum > 0); the first ``quorum`` ones must name
   distinct, in-range signers whose signatures verify.

A proof that uses a *patch* (the signer signed a shorter tree, and the container carries the
Merkle nodes to extend it) is only meaningful when the manifest sets ``allow_patch``. Checking
one needs the roots of the tree, not just its hash, so it is not implemented: :meth:`Verifier.verify`
raises :class:`VerificationError` in that case rather than guess. Without ``allow_patch`` the
patch field is ignored, exactly as in JS.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from hyperlobby.crypto import keys
from hyperlobby.crypto.manifest import Manifest, Signer, is_compat, manifest_hash
from hyperlobby.crypto.namespaces import TREE
from hyperlobby.encoding import compact as c
from hyperlobby.errors import DecodeError, EncodeError, InvalidKeyError, VerificationError

_U64X2 = struct.Struct("<QQ")


def _check_head(tree_hash: bytes, length: int, fork: int) -> None:
    if len(tree_hash) != 32:
        raise EncodeError("a tree hash is 32 bytes", length=len(tree_hash))
    if not 0 <= length < 1 << 64 or not 0 <= fork < 1 << 64:
        raise EncodeError("length and fork must fit in 64 bits", length=length, fork=fork)


def tree_signable(context: bytes, tree_hash: bytes, length: int, fork: int) -> bytes:
    """112-byte signable of a manifest core; ``context`` = manifest hash (v>=1) or signer namespace (v0)."""
    if len(context) != 32:
        raise EncodeError("a signable context is 32 bytes", length=len(context))
    _check_head(tree_hash, length, fork)
    return TREE + context + tree_hash + _U64X2.pack(length, fork)


def tree_signable_compat(tree_hash: bytes, length: int, fork: int, legacy: bool = False) -> bytes:
    """80-byte signable of a compat core (48 bytes, without the TREE prefix, in legacy mode)."""
    _check_head(tree_hash, length, fork)
    body = tree_hash + _U64X2.pack(length, fork)
    return body if legacy else TREE + body


# --- multisig containers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatchNode:
    """A Merkle node shipped with a patched signature (flat-tree ``index``, byte ``size``, ``hash``)."""

    index: int
    size: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class Proof:
    """One signer's part of a v1 container; ``patch`` = blocks its patch adds (0 = none)."""

    signer: int
    signature: bytes
    patch: int = 0


@dataclass(frozen=True, slots=True)
class MultiSignature:
    """The v1 container (manifest version >= 1)."""

    proofs: tuple[Proof, ...]
    patch: tuple[PatchNode, ...] = ()


@dataclass(frozen=True, slots=True)
class PatchV0:
    """A version-0 patch: the range it covers and indexes into the container's node list."""

    start: int
    length: int
    nodes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ProofV0:
    """One signer's part of a v0 container."""

    signer: int
    signature: bytes
    patch: PatchV0 | None = None


@dataclass(frozen=True, slots=True)
class MultiSignatureV0:
    """The v0 container (manifest version 0)."""

    proofs: tuple[ProofV0, ...]
    patch: tuple[PatchNode, ...] = ()


@dataclass(frozen=True, slots=True)
class SignatureInput:
    """A signer's contribution before assembly: its signature and, if patched, the nodes."""

    signer: int
    signature: bytes
    patch: int = 0
    nodes: tuple[PatchNode, ...] | None = None


class _PatchNodeCodec:
    def preencode(self, state: c.State, n: PatchNode) -> None:
        c.uint.preencode(state, n.index)
        c.uint.preencode(state, n.size)
        state.end += 32

    def encode(self, state: c.State, n: PatchNode) -> None:
        c.uint.encode(state, n.index)
        c.uint.encode(state, n.size)
        c.fixed32.encode(state, n.hash)

    def decode(self, state: c.State) -> PatchNode:
        index = c.uint.decode(state)
        size = c.uint.decode(state)
        return PatchNode(index, size, c.fixed32.decode(state))


class _ProofCodec:
    def preencode(self, state: c.State, p: Proof) -> None:
        c.uint.preencode(state, p.signer)
        state.end += 64
        c.uint.preencode(state, p.patch)

    def encode(self, state: c.State, p: Proof) -> None:
        c.uint.encode(state, p.signer)
        c.fixed64.encode(state, p.signature)
        c.uint.encode(state, p.patch)

    def decode(self, state: c.State) -> Proof:
        signer = c.uint.decode(state)
        signature = c.fixed64.decode(state)
        return Proof(signer, signature, c.uint.decode(state))


class _PatchV0Codec:
    def preencode(self, state: c.State, p: PatchV0) -> None:
        c.uint.preencode(state, p.start)
        c.uint.preencode(state, p.length)
        _uint_array.preencode(state, p.nodes)

    def encode(self, state: c.State, p: PatchV0) -> None:
        c.uint.encode(state, p.start)
        c.uint.encode(state, p.length)
        _uint_array.encode(state, p.nodes)

    def decode(self, state: c.State) -> PatchV0:
        start = c.uint.decode(state)
        length = c.uint.decode(state)
        return PatchV0(start, length, tuple(_uint_array.decode(state)))


class _ProofV0Codec:
    def preencode(self, state: c.State, p: ProofV0) -> None:
        state.end += 1
        c.uint.preencode(state, p.signer)
        state.end += 64
        if p.patch is not None:
            _patch_v0.preencode(state, p.patch)

    def encode(self, state: c.State, p: ProofV0) -> None:
        c.uint.encode(state, 0 if p.patch is None else 1)
        c.uint.encode(state, p.signer)
        c.fixed64.encode(state, p.signature)
        if p.patch is not None:
            _patch_v0.encode(state, p.patch)

    def decode(self, state: c.State) -> ProofV0:
        flags = c.uint.decode(state)
        signer = c.uint.decode(state)
        signature = c.fixed64.decode(state)
        patch = _patch_v0.decode(state) if flags & 1 else None
        return ProofV0(signer, signature, patch)


_uint_array: c.Array[int] = c.Array(c.uint)
patch_node_codec: c.Codec[PatchNode] = _PatchNodeCodec()
_patch_v0: c.Codec[PatchV0] = _PatchV0Codec()
_nodes: c.Array[PatchNode] = c.Array(patch_node_codec)
_proofs: c.Array[Proof] = c.Array(_ProofCodec())
_proofs_v0: c.Array[ProofV0] = c.Array(_ProofV0Codec())


class _MultiSignatureCodec:
    def preencode(self, state: c.State, s: MultiSignature) -> None:
        _proofs.preencode(state, s.proofs)
        _nodes.preencode(state, s.patch)

    def encode(self, state: c.State, s: MultiSignature) -> None:
        _proofs.encode(state, s.proofs)
        _nodes.encode(state, s.patch)

    def decode(self, state: c.State) -> MultiSignature:
        proofs = tuple(_proofs.decode(state))
        return MultiSignature(proofs, tuple(_nodes.decode(state)))


class _MultiSignatureV0Codec:
    def preencode(self, state: c.State, s: MultiSignatureV0) -> None:
        _proofs_v0.preencode(state, s.proofs)
        _nodes.preencode(state, s.patch)

    def encode(self, state: c.State, s: MultiSignatureV0) -> None:
        _proofs_v0.encode(state, s.proofs)
        _nodes.encode(state, s.patch)

    def decode(self, state: c.State) -> MultiSignatureV0:
        proofs = tuple(_proofs_v0.decode(state))
        return MultiSignatureV0(proofs, tuple(_nodes.decode(state)))


multi_signature_codec: c.Codec[MultiSignature] = _MultiSignatureCodec()
multi_signature_v0_codec: c.Codec[MultiSignatureV0] = _MultiSignatureV0Codec()


def assemble(inputs: Sequence[SignatureInput]) -> bytes:
    """A v1 container from signer inputs; patch nodes are shared, first occurrence of an index wins."""
    proofs: list[Proof] = []
    nodes: list[PatchNode] = []
    seen: set[int] = set()
    for inp in inputs:
        for node in inp.nodes or ():
            if node.index not in seen:
                seen.add(node.index)
                nodes.append(node)
        proofs.append(Proof(inp.signer, inp.signature, inp.patch))
    return c.encode(multi_signature_codec, MultiSignature(tuple(proofs), tuple(nodes)))


def _single_container_parts() -> tuple[bytes, bytes]:
    """The bytes around the signature in a one-signer, unpatched v1 container.

    Derived from :func:`assemble` itself (not hand-written), so the fast signing path in
    :meth:`Verifier.sign` cannot drift from the codec.
    """
    a = assemble([SignatureInput(0, b"\x00" * 64)])
    b = assemble([SignatureInput(0, b"\xff" * 64)])
    start = next(i for i in range(len(a)) if a[i] != b[i])
    head, tail = a[:start], a[start + 64 :]
    if head + b"\xff" * 64 + tail != b:  # pragma: no cover - a codec change would break this
        raise AssertionError("unexpected multisig container layout")
    return head, tail


_SINGLE_HEAD, _SINGLE_TAIL = _single_container_parts()


def _right_span(index: int) -> int:
    """Rightmost leaf index under flat-tree node ``index`` (depth = trailing one bits)."""
    depth = (~index & (index + 1)).bit_length() - 1
    return index + (1 << depth) - 1


def assemble_v0(inputs: Sequence[SignatureInput]) -> bytes:
    """A v0 container: each patch refers to nodes by position in a deduplicated node list."""
    nodes: list[PatchNode] = []
    proofs: list[ProofV0] = []
    for inp in inputs:
        patch: PatchV0 | None = None
        if inp.patch:
            if not inp.nodes:
                raise EncodeError("a patched signature needs its nodes", signer=inp.signer)
            refs: list[int] = []
            for node in inp.nodes:
                try:
                    refs.append(nodes.index(node))
                except ValueError:
                    nodes.append(node)
                    refs.append(len(nodes) - 1)
            start = _right_span(inp.nodes[-1].index) // 2 + 1
            patch = PatchV0(start, inp.patch, tuple(refs))
        proofs.append(ProofV0(inp.signer, inp.signature, patch))
    return c.encode(multi_signature_v0_codec, MultiSignatureV0(tuple(proofs), tuple(nodes)))


def inflate(data: bytes) -> MultiSignature:
    """Decode a v1 container (raises :class:`DecodeError`)."""
    return c.decode(multi_signature_codec, data)


def inflate_v0(data: bytes) -> MultiSignatureV0:
    """Decode a v0 container (raises :class:`DecodeError`)."""
    return c.decode(multi_signature_v0_codec, data)


# --- the verifier --------------------------------------------------------------------------------


class Verifier:
    """Checks (and makes) tree-head signatures for one core.

    Built from the core's manifest and key. ``compat`` defaults to :func:`is_compat`; with no
    manifest the core is taken as compat with the single signer ``key`` (what a hypercore-10
    style core is). ``legacy`` selects the 48-byte compat signable of very old cores.
    """

    __slots__ = (
        "_plan",
        "allow_patch",
        "compat",
        "key",
        "legacy",
        "manifest",
        "prologue",
        "quorum",
        "signers",
        "version",
    )

    def __init__(
        self, manifest: Manifest | None, key: bytes, compat: bool | None = None, legacy: bool = False
    ) -> None:
        if len(key) != 32:
            raise InvalidKeyError("a core key is 32 bytes", length=len(key))
        if manifest is None:
            manifest = Manifest.default(key)
            compat = True
        self.manifest = manifest
        self.key = bytes(key)
        self.compat: bool = is_compat(manifest, key) if compat is None else compat
        self.legacy = legacy
        self.version = 0 if self.compat else manifest.version
        self.allow_patch = not self.compat and manifest.allow_patch
        self.quorum = 1 if self.compat else manifest.quorum
        self.signers: tuple[Signer, ...] = manifest.signers
        self.prologue = None if self.compat else manifest.prologue
        self._plan: tuple[bytes, bytes, bool] | None = None

    @classmethod
    def from_manifest(cls, manifest: Manifest, legacy: bool = False) -> Verifier:
        """A verifier for the core this manifest defines (key = manifest hash)."""
        return cls(manifest, manifest_hash(manifest), legacy=legacy)

    # signables

    def signable(self, tree_hash: bytes, length: int, fork: int, signer: int = 0) -> bytes:
        """The bytes signer number ``signer`` signs for this tree head."""
        if self.compat:
            return tree_signable_compat(tree_hash, length, fork, self.legacy)
        context = self.signers[signer].namespace if self.version == 0 else self.key
        return tree_signable(context, tree_hash, length, fork)

    def _check_signer(self, index: int, tree_hash: bytes, length: int, fork: int, signature: bytes) -> bool:
        message = self.signable(tree_hash, length, fork, index)
        return keys.verify(message, signature, self.signers[index].public_key)

    # verification

    def verify(self, tree_hash: bytes, length: int, fork: int, signature: bytes | None) -> bool:
        """True if ``signature`` is a valid signature of this tree head for this core.

        Malformed signatures give ``False``. Raises :class:`VerificationError` only for a
        patched multisig proof on an ``allow_patch`` core, which is not supported.
        """
        if self.version == 0:
            return self._verify_v0(tree_hash, length, fork, signature)
        if self.prologue is not None and length <= self.prologue.length:
            return length == self.prologue.length and tree_hash == self.prologue.hash
        return self._verify_multi(tree_hash, length, fork, signature)

    def _verify_v0(self, tree_hash: bytes, length: int, fork: int, signature: bytes | None) -> bool:
        if not signature:
            return False
        if self.compat or (not self.allow_patch and len(self.signers) == 1):
            if not self.signers:
                return False
            return self._check_signer(0, tree_hash, length, fork, signature)
        return self._verify_multi(tree_hash, length, fork, signature)

    def _proofs(self, signature: bytes) -> tuple[Proof, ...] | None:
        try:
            if self.version >= 1:
                return inflate(signature).proofs
            v0 = inflate_v0(signature).proofs
        except DecodeError:
            return None
        return tuple(Proof(p.signer, p.signature, 0 if p.patch is None else p.patch.length) for p in v0)

    def _verify_multi(self, tree_hash: bytes, length: int, fork: int, signature: bytes | None) -> bool:
        if not signature or self.quorum == 0:
            return False
        proofs = self._proofs(signature)
        if proofs is None or len(proofs) < self.quorum:
            return False
        tried: set[int] = set()
        for proof in proofs[: self.quorum]:
            if proof.patch and self.allow_patch:
                raise VerificationError(
                    "patched multisig signatures are not supported", signer=proof.signer, patch=proof.patch
                )
            if proof.signer >= len(self.signers) or proof.signer in tried:
                return False
            tried.add(proof.signer)
            if not self._check_signer(proof.signer, tree_hash, length, fork, proof.signature):
                return False
        return True

    # signing

    def sign(self, tree_hash: bytes, length: int, fork: int, key_pair: keys.KeyPair) -> bytes:
        """Sign a tree head as JS does: raw 64 bytes for compat/v0 and for one signer of many
        (a partial signature to :meth:`assemble`), the 68-byte container for a v1+ single signer.

        A writer signs every append, so the parts that do not change between heads (which signer
        we are, the signable's prefix, whether to wrap) are worked out once per key pair.
        """
        secret_key = key_pair.secret_key
        if secret_key is None:
            raise InvalidKeyError("signing needs a secret key")
        plan = self._plan
        if plan is None or plan[0] != key_pair.public_key:
            plan = self._plan = self._signing_plan(key_pair.public_key)
        _check_head(tree_hash, length, fork)
        raw = keys.sign(plan[1] + tree_hash + _U64X2.pack(length, fork), secret_key)
        return _SINGLE_HEAD + raw + _SINGLE_TAIL if plan[2] else raw

    def _signing_plan(self, public_key: bytes) -> tuple[bytes, bytes, bool]:
        """(public key, signable prefix, wrap in a one-proof container) for this signer.

        The prefix is what :meth:`signable` puts before the tree hash, for every kind of core.
        """
        for index, signer in enumerate(self.signers):
            if signer.public_key == public_key:
                if self.compat:
                    prefix = b"" if self.legacy else TREE
                else:
                    prefix = TREE + (self.signers[index].namespace if self.version == 0 else self.key)
                return public_key, prefix, len(self.signers) == 1 and self.version != 0
        raise InvalidKeyError("the public key is not a declared signer of this core")

    def assemble(self, inputs: Sequence[SignatureInput]) -> bytes:
        """The container for this core's manifest version."""
        return assemble_v0(inputs) if self.version == 0 else assemble(inputs)
