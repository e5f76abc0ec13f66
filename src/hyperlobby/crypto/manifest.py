"""Hypercore manifests: who may sign a core, and the core key that commits to it.

Theory of operation
-------------------
A Hypercore 11 core is named by the BLAKE2b hash of its *manifest* (prefixed by the MANIFEST
namespace). The manifest lists the Ed25519 signers, how many of them must sign (``quorum``),
whether signers may sign a shorter tree and patch it (``allow_patch``), an optional
``prologue`` (a tree hash + length the core must start with; a core with quorum 0 and a
prologue is a static, unsigned core), and from version 2 ``linked`` core keys and opaque
``user_data``. Because the key is the hash of these bytes, the encoding must be bit-exact with
JS: :data:`manifest_codec` writes and reads versions 0..3 exactly like hypercore's
``lib/messages.js``, including the compact legacy version-0 forms (type 0: prologue hash
only, type 1: one signer, type 2: flags + quorum + signers). Version 0 drops what it cannot
express (a prologue length, a prologue next to signers), as JS does, so a v0 manifest is
only faithful in those three shapes.

"Compat" cores (hypercore 10 style) have the signer's public key itself as the core key; see
:func:`is_compat`.

:func:`create_manifest` applies the defaults hypercore's ``createManifest`` applies (version
1, or 2 when ``linked``/``user_data`` are given; quorum ``n // 2 + 1``; the default signer
namespace) and the same argument checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.namespaces import DEFAULT_NAMESPACE, MANIFEST
from hyperlobby.encoding import compact as c
from hyperlobby.errors import DecodeError, EncodeError, InvalidKeyError, VerificationError

HASH_BLAKE2B = 0
SIGNATURE_ED25519 = 0
MAX_VERSION = 3

FLAG_PATCH = 1
FLAG_PROLOGUE = 2
FLAG_LINKED = 4
FLAG_USER_DATA = 8


def _check32(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise InvalidKeyError(f"{what} must be 32 bytes")


@dataclass(frozen=True, slots=True)
class Signer:
    """One allowed signer: an Ed25519 public key and the namespace it signs under.

    The namespace only matters for version-0 manifests (it is part of their signable); from
    version 1 the signable carries the manifest hash instead.
    """

    public_key: bytes
    namespace: bytes = DEFAULT_NAMESPACE
    signature: int = SIGNATURE_ED25519

    def __post_init__(self) -> None:
        _check32(self.public_key, "a signer public key")
        _check32(self.namespace, "a signer namespace")
        if self.signature != SIGNATURE_ED25519:
            raise EncodeError("only Ed25519 signers (id 0) are supported", signature=self.signature)


@dataclass(frozen=True, slots=True)
class Prologue:
    """A fixed start of the core: the tree hash it must have at ``length``."""

    hash: bytes
    length: int

    def __post_init__(self) -> None:
        _check32(self.hash, "a prologue hash")
        if not isinstance(self.length, int) or self.length < 0:
            raise EncodeError("a prologue length must be a non-negative integer", length=self.length)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A core's manifest, in the normalised form JS keeps after ``createManifest``."""

    version: int = 1
    hash: int = HASH_BLAKE2B
    allow_patch: bool = False
    quorum: int = 1
    signers: tuple[Signer, ...] = field(default=())
    prologue: Prologue | None = None
    linked: tuple[bytes, ...] | None = None
    user_data: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or not 0 <= self.version <= MAX_VERSION:
            raise EncodeError("manifest version must be 0..3", version=self.version)
        if self.hash != HASH_BLAKE2B:
            raise EncodeError("only BLAKE2b manifests (hash id 0) are supported", hash=self.hash)
        if not isinstance(self.quorum, int) or self.quorum < 0:
            raise EncodeError("quorum must be a non-negative integer", quorum=self.quorum)
        if not isinstance(self.signers, tuple) or not all(isinstance(s, Signer) for s in self.signers):
            raise EncodeError("signers must be a tuple of Signer")
        if self.linked is not None:
            if not isinstance(self.linked, tuple):
                raise EncodeError("linked must be a tuple of 32-byte keys")
            for key in self.linked:
                _check32(key, "a linked core key")
        if self.user_data is not None and not isinstance(self.user_data, bytes):
            raise EncodeError("user_data must be bytes")

    @classmethod
    def default(cls, public_key: bytes, namespace: bytes = DEFAULT_NAMESPACE, version: int = 1) -> Manifest:
        """The one-signer manifest Corestore and ``Hypercore.key(publicKey)`` use."""
        return cls(version=version, quorum=1, signers=(Signer(bytes(public_key), namespace),))

    def encode(self) -> bytes:
        """The manifest bytes (what the core key hashes and what peers send)."""
        return c.encode(manifest_codec, self)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Manifest:
        """Parse manifest bytes (trailing bytes are ignored, as in JS)."""
        return c.decode(manifest_codec, data)

    @property
    def key(self) -> bytes:
        """The core key this manifest defines (its manifest hash)."""
        return manifest_hash(self)


# --- codec ------------------------------------------------------------------------------------


class _SignerCodec:
    def preencode(self, state: c.State, value: Signer) -> None:
        state.end += 1 + 32 + 32

    def encode(self, state: c.State, value: Signer) -> None:
        c.uint.encode(state, value.signature)
        c.fixed32.encode(state, value.namespace)
        c.fixed32.encode(state, value.public_key)

    def decode(self, state: c.State) -> Signer:
        alg = c.uint.decode(state)
        if alg != SIGNATURE_ED25519:
            raise DecodeError("unknown signature algorithm id", id=alg)
        namespace = c.fixed32.decode(state)
        public_key = c.fixed32.decode(state)
        return Signer(public_key, namespace, alg)


class _PrologueCodec:
    def preencode(self, state: c.State, value: Prologue) -> None:
        state.end += 32
        c.uint.preencode(state, value.length)

    def encode(self, state: c.State, value: Prologue) -> None:
        c.fixed32.encode(state, value.hash)
        c.uint.encode(state, value.length)

    def decode(self, state: c.State) -> Prologue:
        digest = c.fixed32.decode(state)
        return Prologue(digest, c.uint.decode(state))


signer_codec: c.Codec[Signer] = _SignerCodec()
prologue_codec: c.Codec[Prologue] = _PrologueCodec()
_signer_array: c.Array[Signer] = c.Array(signer_codec)
_fixed32_array: c.Array[bytes] = c.Array(c.fixed32)

_V0_PROLOGUE = 0
_V0_SINGLE = 1
_V0_MULTI = 2


def _v0_type(m: Manifest) -> int:
    if m.prologue is not None and not m.signers:
        return _V0_PROLOGUE
    if m.quorum == 1 and len(m.signers) == 1 and not m.allow_patch:
        return _V0_SINGLE
    return _V0_MULTI


def _decode_hash(state: c.State) -> int:
    hash_id = c.uint.decode(state)
    if hash_id != HASH_BLAKE2B:
        raise DecodeError("unknown manifest hash id", id=hash_id)
    return hash_id


class _ManifestCodec:
    """Manifest versions 0..3, byte-exact with hypercore 11."""

    def preencode(self, state: c.State, m: Manifest) -> None:
        c.uint.preencode(state, m.version)
        c.uint.preencode(state, m.hash)
        if m.version == 0:
            kind = _v0_type(m)
            state.end += 1
            if kind == _V0_PROLOGUE:
                state.end += 32
            elif kind == _V0_SINGLE:
                signer_codec.preencode(state, m.signers[0])
            else:
                state.end += 1
                c.uint.preencode(state, m.quorum)
                _signer_array.preencode(state, m.signers)
            return
        c.uint.preencode(state, _flags(m))
        c.uint.preencode(state, m.quorum)
        _signer_array.preencode(state, m.signers)
        if m.prologue is not None:
            prologue_codec.preencode(state, m.prologue)
        if m.linked is not None:
            _fixed32_array.preencode(state, m.linked)
        if m.user_data is not None:
            c.buffer.preencode(state, m.user_data)

    def encode(self, state: c.State, m: Manifest) -> None:
        c.uint.encode(state, m.version)
        if m.version == 0:
            c.uint.encode(state, m.hash)
            kind = _v0_type(m)
            c.uint.encode(state, kind)
            if kind == _V0_PROLOGUE:
                assert m.prologue is not None
                c.fixed32.encode(state, m.prologue.hash)
            elif kind == _V0_SINGLE:
                signer_codec.encode(state, m.signers[0])
            else:
                c.uint.encode(state, FLAG_PATCH if m.allow_patch else 0)
                c.uint.encode(state, m.quorum)
                _signer_array.encode(state, m.signers)
            return
        c.uint.encode(state, _flags(m))
        c.uint.encode(state, m.hash)
        c.uint.encode(state, m.quorum)
        _signer_array.encode(state, m.signers)
        if m.prologue is not None:
            prologue_codec.encode(state, m.prologue)
        if m.linked is not None:
            _fixed32_array.encode(state, m.linked)
        if m.user_data is not None:
            c.buffer.encode(state, m.user_data)

    def decode(self, state: c.State) -> Manifest:
        version = c.uint.decode(state)
        if version == 0:
            return self._decode_v0(state)
        if version > MAX_VERSION:
            raise DecodeError("unknown manifest version", version=version)
        flags = c.uint.decode(state)
        hash_id = _decode_hash(state)
        quorum = c.uint.decode(state)
        signers = tuple(_signer_array.decode(state))
        prologue = prologue_codec.decode(state) if flags & FLAG_PROLOGUE else None
        linked = tuple(_fixed32_array.decode(state)) if flags & FLAG_LINKED else None
        user_data = c.buffer.decode(state) if flags & FLAG_USER_DATA else None
        return Manifest(
            version=version,
            hash=hash_id,
            allow_patch=bool(flags & FLAG_PATCH),
            quorum=quorum,
            signers=signers,
            prologue=prologue,
            linked=linked,
            user_data=user_data,
        )

    @staticmethod
    def _decode_v0(state: c.State) -> Manifest:
        hash_id = _decode_hash(state)
        kind = c.uint.decode(state)
        if kind == _V0_PROLOGUE:
            return Manifest(version=0, hash=hash_id, quorum=0, prologue=Prologue(c.fixed32.decode(state), 0))
        if kind == _V0_SINGLE:
            return Manifest(version=0, hash=hash_id, quorum=1, signers=(signer_codec.decode(state),))
        if kind == _V0_MULTI:
            flags = c.uint.decode(state)
            quorum = c.uint.decode(state)
            signers = tuple(_signer_array.decode(state))
            return Manifest(
                version=0, hash=hash_id, allow_patch=bool(flags & FLAG_PATCH), quorum=quorum, signers=signers
            )
        raise DecodeError("unknown version-0 manifest type", type=kind)


def _flags(m: Manifest) -> int:
    flags = 0
    if m.allow_patch:
        flags |= FLAG_PATCH
    if m.prologue is not None:
        flags |= FLAG_PROLOGUE
    if m.linked is not None:
        flags |= FLAG_LINKED
    if m.user_data is not None:
        flags |= FLAG_USER_DATA
    return flags


manifest_codec: c.Codec[Manifest] = _ManifestCodec()


# --- keys and construction ----------------------------------------------------------------------


def manifest_hash(m: Manifest) -> bytes:
    """The core key of a (non-compat) core: ``H(MANIFEST_NS ‖ encode(manifest))``."""
    return blake2b256(MANIFEST + m.encode())


def is_compat(manifest: Manifest | None, key: bytes) -> bool:
    """True for a hypercore-10 style core: one signer whose public key *is* the core key."""
    return manifest is not None and len(manifest.signers) == 1 and manifest.signers[0].public_key == key


def is_valid_manifest(key: bytes, manifest: Manifest) -> bool:
    """True if ``manifest`` hashes to ``key``."""
    return manifest_hash(manifest) == key


def default_quorum(signer_count: int) -> int:
    """A simple majority: ``n // 2 + 1`` (0 with no signers)."""
    return signer_count // 2 + 1 if signer_count else 0


def create_manifest(
    signers: Sequence[Signer | bytes] = (),
    *,
    quorum: int | None = None,
    allow_patch: bool = False,
    prologue: Prologue | None = None,
    linked: Sequence[bytes] | None = None,
    user_data: bytes | None = None,
    version: int | None = None,
) -> Manifest:
    """Build a manifest with hypercore's defaults and checks.

    ``signers`` may be :class:`Signer` records or bare public keys (default namespace).
    Version defaults to 1, or 2 when ``linked`` (non-empty) or ``user_data`` is given; quorum
    defaults to a majority. Raises :class:`EncodeError` on what JS rejects (quorum above the
    signer count, ``linked``/``user_data`` below version 2, a bad prologue).
    """
    parsed = tuple(s if isinstance(s, Signer) else Signer(bytes(s)) for s in signers)
    if quorum is not None and quorum < 0:
        raise EncodeError("quorum cannot be negative", quorum=quorum)
    if quorum and quorum > len(parsed):
        raise EncodeError("quorum should not be higher than the number of signers", quorum=quorum)
    links = tuple(bytes(k) for k in linked) if linked else None
    if version is None:
        version = 2 if links or user_data is not None else 1
    if user_data is not None and version < 2:
        raise EncodeError("user_data needs manifest version 2 or later", version=version)
    if links is not None and version < 2:
        raise EncodeError("linked needs manifest version 2 or later", version=version)
    if prologue is not None and not isinstance(prologue, Prologue):
        raise EncodeError("invalid prologue")
    return Manifest(
        version=version,
        hash=HASH_BLAKE2B,
        allow_patch=allow_patch,
        quorum=default_quorum(len(parsed)) if quorum is None else quorum,
        signers=parsed,
        prologue=prologue,
        linked=links,
        user_data=None if user_data is None else bytes(user_data),
    )


def core_key(
    public_key: bytes, *, compat: bool = False, version: int = 1, namespace: bytes = DEFAULT_NAMESPACE
) -> bytes:
    """The key of a one-signer core, as ``Hypercore.key(publicKey, {compat, version, namespace})``."""
    _check32(public_key, "a public key")
    if compat:
        return public_key
    return manifest_hash(Manifest.default(public_key, namespace, version))


def parse_manifest(data: bytes | bytearray | memoryview, key: bytes | None = None) -> Manifest:
    """Decode received manifest bytes and, if ``key`` is given, check they hash to it.

    Rejects a quorum above the signer count, as ``Hypercore.parseManifest`` does.
    """
    m = Manifest.decode(data)
    if m.quorum > len(m.signers):
        raise VerificationError("manifest quorum is higher than the number of signers", quorum=m.quorum)
    if key is not None and not is_valid_manifest(key, m):
        raise VerificationError("manifest does not hash to the core key", key=key)
    return m
