"""Noise XX handshake as Hyperswarm runs it: ``Noise_XX_Ed25519_ChaChaPoly_BLAKE2b``.

Theory of operation
-------------------
Noise builds a shared secret out of Diffie-Hellman results while hashing every byte that
crosses the wire into a transcript hash ``h``. Two 64-byte values evolve together:

* ``h``, the running BLAKE2b-512 hash of everything sent (public keys and ciphertexts). It
  is the AEAD associated data, so tampering with any earlier byte breaks the next MAC, and
  its final value (the *handshake hash*) names the session for later layers.
* ``ck``, the chaining key. Each DH result goes through HKDF(ck, dh) -> (ck', k), so the
  cipher key ``k`` always depends on every DH done so far.

XX takes three messages (``-> e``, ``<- e, ee, s, es``, ``-> s, se``). The static keys travel
encrypted, so each side learns the other's identity only after forward-secret keys are in
place. Hyperswarm's twist is the curve: static and ephemeral keys are *Ed25519* signing key
pairs and DH is Edwards point multiplication by the clamped SHA-512 scalar of the seed. One
key pair therefore serves both to sign (Hypercore) and to authenticate the transport.

Everything here is sans-IO: :class:`NoiseHandshake` consumes and produces unframed Noise
messages (the uint24 framing belongs to the caller) and never touches a socket, a clock or
randomness beyond drawing an ephemeral key when none was supplied. Passing ephemeral key
pairs makes it fully deterministic, which is how the golden vectors are checked.

Receiving follows the JS reader exactly: bytes after the expected fields are a payload
(cleartext in msg1, AEAD-encrypted in msg2/msg3) that is authenticated and then ignored.
Every failure (short message, bad MAC, small-order point) raises :class:`HandshakeError`
and leaves the object unusable.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Protocol

import nacl.bindings as sodium
import nacl.exceptions

from hyperlobby.errors import HandshakeError

PROTOCOL_NAME = b"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b"
HASHLEN = 64
DHLEN = 32
KEYLEN = 32
MACLEN = 16
# noise-handshake refuses any AEAD ciphertext above the Noise message limit.
MAX_CIPHERTEXT = 65535

_NONCE = struct.Struct("<4xI4x")


class KeyPairLike(Protocol):
    """Any Ed25519 key pair: 32-byte public key, 64-byte libsodium secret key (seed ‖ pk)."""

    @property
    def public_key(self) -> bytes: ...

    @property
    def secret_key(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class NoiseKeyPair:
    """A plain Ed25519 key pair, for callers that have no key pair type of their own."""

    public_key: bytes
    secret_key: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> NoiseKeyPair:
        """Deterministic key pair, as ``NoiseSecretStream.keyPair(seed)`` makes it."""
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        pk, sk = sodium.crypto_sign_seed_keypair(seed)
        return cls(pk, sk)

    @classmethod
    def generate(cls) -> NoiseKeyPair:
        """Fresh random key pair (what JS does for every ephemeral key)."""
        pk, sk = sodium.crypto_sign_keypair()
        return cls(pk, sk)


@dataclass(frozen=True, slots=True)
class NoiseResult:
    """What a finished handshake hands to the transport layer.

    ``tx``/``rx`` are already oriented for this side (the initiator's tx is the responder's rx),
    so the caller never has to think about roles again.
    """

    tx: bytes
    rx: bytes
    handshake_hash: bytes
    public_key: bytes
    remote_public_key: bytes


def _hmac(key: bytes, data: bytes) -> bytes:
    # HMAC-BLAKE2b-512 with the standard 128-byte block; hmac's "blake2b" is exactly that.
    return hmac.digest(key, data, "blake2b")


def hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """RFC 5869 HKDF with empty info, two 64-byte outputs (Noise's HKDF with n=2)."""
    prk = _hmac(chaining_key, ikm)
    t1 = _hmac(prk, b"\x01")
    t2 = _hmac(prk, t1 + b"\x02")
    return t1, t2


def dh(key_pair: KeyPairLike, remote_public_key: bytes) -> bytes:
    """Ed25519 "DH": multiply the peer's Edwards point by our clamped secret scalar.

    libsodium refuses small-order and non-canonical points (and an identity result); that
    is reported as a handshake failure, matching JS which aborts the handshake on it.
    """
    if len(remote_public_key) != DHLEN:
        raise HandshakeError("remote Noise public key has the wrong length", length=len(remote_public_key))
    digest = bytearray(hashlib.sha512(key_pair.secret_key[:32]).digest()[:32])
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    try:
        return bytes(sodium.crypto_scalarmult_ed25519_noclamp(bytes(digest), remote_public_key))
    except nacl.exceptions.CryptoError as exc:
        raise HandshakeError("invalid remote Noise public key", key=remote_public_key) from exc


class _SymmetricState:
    """Noise SymmetricState + CipherState, kept together because they are always used together."""

    __slots__ = ("ck", "h", "k", "n")

    def __init__(self, protocol_name: bytes = PROTOCOL_NAME, prologue: bytes = b"") -> None:
        # Both names we use fit in HASHLEN, so they are zero-padded instead of hashed.
        if len(protocol_name) > HASHLEN:  # pragma: no cover - no such protocol here
            raise ValueError("protocol name longer than the hash")
        self.h = protocol_name.ljust(HASHLEN, b"\x00")
        self.ck = self.h
        self.k: bytes | None = None
        self.n = 0
        self.mix_hash(prologue)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.blake2b(self.h + data, digest_size=HASHLEN).digest()

    def mix_key(self, dh_output: bytes) -> None:
        self.ck, temp = hkdf2(self.ck, dh_output)
        self.k = temp[:KEYLEN]
        self.n = 0

    def _nonce(self) -> bytes:
        if self.n >= 2**32:
            raise HandshakeError("Noise nonce exhausted")
        return _NONCE.pack(self.n)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        if self.k is None:
            ciphertext = plaintext
        else:
            ciphertext = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
                plaintext, self.h, self._nonce(), self.k
            )
            if len(ciphertext) > MAX_CIPHERTEXT:
                raise HandshakeError("Noise payload too large", length=len(ciphertext))
            self.n += 1
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        if self.k is None:
            plaintext = ciphertext
        else:
            if len(ciphertext) > MAX_CIPHERTEXT:
                raise HandshakeError("Noise payload too large", length=len(ciphertext))
            if len(ciphertext) < MACLEN:
                raise HandshakeError("Noise message truncated", length=len(ciphertext))
            try:
                plaintext = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
                    ciphertext, self.h, self._nonce(), self.k
                )
            except nacl.exceptions.CryptoError as exc:
                raise HandshakeError("Noise message failed authentication") from exc
            self.n += 1
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        t1, t2 = hkdf2(self.ck, b"")
        return t1[:KEYLEN], t2[:KEYLEN]


class _Reader:
    """Takes fields off the front of a message, failing cleanly when it runs short."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, n: int) -> bytes:
        end = self.offset + n
        if end > len(self.data):
            raise HandshakeError("Noise message truncated", expected=end, got=len(self.data))
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.offset :]
        self.offset = len(self.data)
        return chunk


def _known(key: bytes | None) -> bytes:
    """A key the pattern's step order guarantees is known by now (else the peer broke the order)."""
    if key is None:
        raise HandshakeError("Noise key not known yet")
    return key


class _NoisePattern:
    """What both handshake patterns share: turn-taking, failure latching, the final split.

    Subclasses give the number of messages and the token steps (``_write``/``_read``); the
    initiator writes the even-numbered messages. Calling things out of turn raises
    :class:`HandshakeError` instead of silently corrupting the transcript, and any failure
    leaves the object unusable.
    """

    MESSAGES = 0

    def __init__(
        self,
        is_initiator: bool,
        static_key_pair: KeyPairLike,
        state: _SymmetricState,
        *,
        remote_public_key: bytes | None,
        ephemeral_key_pair: KeyPairLike | None,
    ) -> None:
        if len(static_key_pair.public_key) != 32 or len(static_key_pair.secret_key) != 64:
            raise ValueError("static key pair must be an Ed25519 key pair (32-byte pk, 64-byte sk)")
        self.is_initiator = is_initiator
        self._s = static_key_pair
        self._e = ephemeral_key_pair
        self._re: bytes | None = None
        self._rs: bytes | None = remote_public_key
        self._state = state
        self._step = 0
        self._failed = False
        self.result: NoiseResult | None = None

    @property
    def complete(self) -> bool:
        return self.result is not None

    @property
    def my_turn_to_write(self) -> bool:
        """True when the next message is ours to write (the handshake is not waiting on the peer)."""
        return self.result is None and (self._step % 2 == 0) == self.is_initiator

    def _check_turn(self, writing: bool) -> None:
        if self._failed:
            raise HandshakeError("Noise handshake already failed")
        if self.result is not None:
            raise HandshakeError("Noise handshake already complete")
        if writing != self.my_turn_to_write:
            raise HandshakeError("Noise message out of turn", step=self._step, writing=writing)

    def _ephemeral(self) -> KeyPairLike:
        if self._e is None:
            self._e = NoiseKeyPair.generate()
        return self._e

    def write_message(self, payload: bytes = b"") -> bytes:
        """Produce our next handshake message (unframed), carrying ``payload`` encrypted."""
        self._check_turn(writing=True)
        try:
            return self._write(payload)
        except HandshakeError:
            self._failed = True
            raise

    def read_message(self, message: bytes) -> bytes:
        """Consume the peer's next handshake message (unframed); returns its decrypted payload."""
        self._check_turn(writing=False)
        try:
            return self._read(bytes(message))
        except HandshakeError:
            self._failed = True
            raise

    def _write(self, payload: bytes) -> bytes:
        raise NotImplementedError

    def _read(self, message: bytes) -> bytes:
        raise NotImplementedError

    def _advance(self) -> None:
        self._step += 1
        if self._step < self.MESSAGES:
            return
        k1, k2 = self._state.split()
        tx, rx = (k1, k2) if self.is_initiator else (k2, k1)
        self.result = NoiseResult(
            tx=tx,
            rx=rx,
            handshake_hash=self._state.h,
            public_key=self._s.public_key,
            remote_public_key=_known(self._rs),
        )


class NoiseHandshake(_NoisePattern):
    """One side of the XX handshake, driven by explicit read/write calls.

    The initiator calls ``write_message`` (msg1), ``read_message`` (msg2), ``write_message``
    (msg3). The responder calls ``read_message``, ``write_message``, ``read_message``.
    ``result`` is set once the last message is written or read.
    """

    MESSAGES = 3

    def __init__(
        self,
        is_initiator: bool,
        static_key_pair: KeyPairLike,
        *,
        ephemeral_key_pair: KeyPairLike | None = None,
    ) -> None:
        super().__init__(
            is_initiator,
            static_key_pair,
            _SymmetricState(),
            remote_public_key=None,
            ephemeral_key_pair=ephemeral_key_pair,
        )

    def _write(self, payload: bytes) -> bytes:
        st = self._state
        out: list[bytes] = []
        if self._step == 0:  # -> e
            e = self._ephemeral()
            st.mix_hash(e.public_key)
            out.append(e.public_key)
        elif self._step == 1:  # <- e, ee, s, es
            e = self._ephemeral()
            st.mix_hash(e.public_key)
            out.append(e.public_key)
            st.mix_key(dh(e, _known(self._re)))
            out.append(st.encrypt_and_hash(self._s.public_key))
            st.mix_key(dh(self._s, _known(self._re)))
        else:  # -> s, se
            out.append(st.encrypt_and_hash(self._s.public_key))
            st.mix_key(dh(self._s, _known(self._re)))
        out.append(st.encrypt_and_hash(payload))
        self._advance()
        return b"".join(out)

    def _read(self, message: bytes) -> bytes:
        st = self._state
        r = _Reader(message)
        if self._step == 0:  # -> e
            self._re = r.take(DHLEN)
            st.mix_hash(self._re)
        elif self._step == 1:  # <- e, ee, s, es
            self._re = r.take(DHLEN)
            st.mix_hash(self._re)
            st.mix_key(dh(self._ephemeral(), self._re))
            self._rs = st.decrypt_and_hash(r.take(DHLEN + MACLEN))
            st.mix_key(dh(self._ephemeral(), self._rs))
        else:  # -> s, se
            self._rs = st.decrypt_and_hash(r.take(DHLEN + MACLEN))
            st.mix_key(dh(self._ephemeral(), self._rs))
        payload = st.decrypt_and_hash(r.rest())
        self._advance()
        return payload


IK_PROTOCOL_NAME = b"Noise_IK_Ed25519_ChaChaPoly_BLAKE2b"


class NoiseIK(_NoisePattern):
    """One side of ``Noise_IK_Ed25519_ChaChaPoly_BLAKE2b``, the pattern HyperDHT connects with.

    IK fits a DHT because the initiator already knows whom it dials (the server's public key
    is what it looked up), so the handshake is one round trip: ``-> e, es, s, ss`` and
    ``<- e, ee, se``. Both sides hash the responder's static key first (the "pre-message"),
    after the ``prologue``, so a message meant for another key fails its first MAC. The
    initiator's identity travels encrypted in msg1; the responder learns it on reading msg1
    and can refuse (its firewall) before answering.

    Same shape as :class:`NoiseHandshake`: the initiator calls ``write_message`` then
    ``read_message``, the responder the reverse; ``result`` is set after the second message.
    """

    MESSAGES = 2

    def __init__(
        self,
        is_initiator: bool,
        static_key_pair: KeyPairLike,
        *,
        remote_public_key: bytes | None = None,
        prologue: bytes = b"",
        ephemeral_key_pair: KeyPairLike | None = None,
    ) -> None:
        if is_initiator and (remote_public_key is None or len(remote_public_key) != DHLEN):
            raise ValueError("the IK initiator needs the responder's 32-byte public key")
        state = _SymmetricState(IK_PROTOCOL_NAME, prologue)
        super().__init__(
            is_initiator,
            static_key_pair,
            state,
            remote_public_key=remote_public_key if is_initiator else None,
            ephemeral_key_pair=ephemeral_key_pair,
        )
        state.mix_hash(_known(remote_public_key) if is_initiator else static_key_pair.public_key)

    @property
    def remote_public_key(self) -> bytes | None:
        """The peer's static key: known up front to the initiator, after msg1 to the responder."""
        return self._rs

    def _write(self, payload: bytes) -> bytes:
        st = self._state
        e = self._ephemeral()
        st.mix_hash(e.public_key)
        out = [e.public_key]
        if self._step == 0:  # -> e, es, s, ss
            rs = _known(self._rs)
            st.mix_key(dh(e, rs))
            out.append(st.encrypt_and_hash(self._s.public_key))
            st.mix_key(dh(self._s, rs))
        else:  # <- e, ee, se
            st.mix_key(dh(e, _known(self._re)))
            st.mix_key(dh(e, _known(self._rs)))
        out.append(st.encrypt_and_hash(payload))
        self._advance()
        return b"".join(out)

    def _read(self, message: bytes) -> bytes:
        st = self._state
        r = _Reader(message)
        self._re = r.take(DHLEN)
        st.mix_hash(self._re)
        if self._step == 0:  # -> e, es, s, ss
            st.mix_key(dh(self._s, self._re))
            self._rs = st.decrypt_and_hash(r.take(DHLEN + MACLEN))
            st.mix_key(dh(self._s, self._rs))
        else:  # <- e, ee, se
            st.mix_key(dh(self._ephemeral(), self._re))
            st.mix_key(dh(self._s, self._re))
        payload = st.decrypt_and_hash(r.rest())
        self._advance()
        return payload
