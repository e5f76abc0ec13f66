"""Ed25519 key pairs and detached signatures, as hypercore-crypto makes them (libsodium).

A key pair is the libsodium one: ``secret_key`` is 64 bytes, the 32-byte seed followed by the
32-byte public key, so the same seed gives the same keys in JS and here. :func:`verify` never
raises on malformed input: a wrong-sized signature or key, or a bad signature, is simply
``False``, which is what a verifier of untrusted peer data wants.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.utils

from hyperlobby.errors import InvalidKeyError

PUBLIC_KEY_SIZE = 32
SECRET_KEY_SIZE = 64
SEED_SIZE = 32
SIGNATURE_SIZE = 64

BytesLike = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An Ed25519 signing key pair; ``secret_key`` = seed ‖ public key (64 bytes)."""

    public_key: bytes
    secret_key: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise InvalidKeyError("an Ed25519 public key is 32 bytes", length=len(self.public_key))
        if self.secret_key is not None:
            if len(self.secret_key) != SECRET_KEY_SIZE:
                raise InvalidKeyError("an Ed25519 secret key is 64 bytes", length=len(self.secret_key))
            if self.secret_key[32:] != self.public_key:
                raise InvalidKeyError("the secret key does not belong to the public key")

    @property
    def seed(self) -> bytes | None:
        """The 32-byte seed the pair was made from (``None`` for a public-only pair)."""
        return None if self.secret_key is None else self.secret_key[:SEED_SIZE]

    @property
    def writable(self) -> bool:
        """True if this pair can sign."""
        return self.secret_key is not None

    def __repr__(self) -> str:  # never print secrets in logs
        secret = "…" if self.secret_key is not None else None
        return f"KeyPair(public_key={self.public_key.hex()!r}, secret_key={secret!r})"


def key_pair(seed: BytesLike | None = None) -> KeyPair:
    """A new key pair: deterministic from a 32-byte ``seed``, else random."""
    if seed is None:
        seed = nacl.utils.random(SEED_SIZE)
    raw = bytes(seed)
    if len(raw) != SEED_SIZE:
        raise InvalidKeyError("a key pair seed is 32 bytes", length=len(raw))
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(raw)
    return KeyPair(bytes(public_key), bytes(secret_key))


def validate_key_pair(pair: KeyPair) -> bool:
    """True if the secret key really derives the public key."""
    if pair.secret_key is None:
        return False
    public_key, _ = nacl.bindings.crypto_sign_seed_keypair(pair.secret_key[:SEED_SIZE])
    return bytes(public_key) == pair.public_key


def sign(message: BytesLike, secret_key: BytesLike) -> bytes:
    """A detached 64-byte Ed25519 signature of ``message``."""
    sk = bytes(secret_key)
    if len(sk) != SECRET_KEY_SIZE:
        raise InvalidKeyError("an Ed25519 secret key is 64 bytes", length=len(sk))
    signed = nacl.bindings.crypto_sign(bytes(message), sk)
    return bytes(signed[:SIGNATURE_SIZE])


def verify(message: BytesLike, signature: BytesLike, public_key: BytesLike) -> bool:
    """Check a detached signature; ``False`` (never an exception) for anything invalid."""
    sig = bytes(signature)
    pk = bytes(public_key)
    if len(sig) != SIGNATURE_SIZE or len(pk) != PUBLIC_KEY_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_open(sig + bytes(message), pk)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


def random_bytes(n: int) -> bytes:
    """``n`` cryptographically random bytes (libsodium ``randombytes_buf``)."""
    if n < 0:
        raise ValueError("cannot make a negative number of random bytes")
    return bytes(nacl.utils.random(n)) if n else b""
