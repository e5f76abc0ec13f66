"""The encrypted body of PEER_HOLEPUNCH messages (hyperdht's ``SecurePayload``).

Holepunch rounds travel through DHT relays, which must not learn or alter what the two ends
tell each other (their NAT kind, addresses, whether they are punching). Each payload is
sealed with XSalsa20-Poly1305 (libsodium ``secretbox``) under the connection's holepunch
secret, which only the two ends know (it derives from the Noise handshake hash). Wire form:
``nonce(24) ‖ mac(16) ‖ ciphertext``, with a fresh random nonce each time.

Tokens prove an address: each side keeps a random local secret and hands out
``BLAKE2b-256(host, key=local_secret)`` for the host it saw; when the peer echoes it back
(through the server's own relay), the host is verified as really the peer's.

Decryption failures (tampering, a wrong key, truncation, a payload that does not decode)
return ``None``, as in JS: a relay's garbage simply does not count.
"""

from __future__ import annotations

import os

import nacl.bindings as sodium
import nacl.exceptions

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.errors import DecodeError
from hyperlobby.swarm.hyperdht import messages as m

NONCE_BYTES: int = sodium.crypto_secretbox_NONCEBYTES
MAC_BYTES: int = sodium.crypto_secretbox_MACBYTES


class SecurePayload:
    """Seals and opens holepunch payloads for one connection."""

    def __init__(self, holepunch_secret: bytes, *, local_secret: bytes | None = None) -> None:
        if len(holepunch_secret) != 32:
            raise ValueError("the holepunch secret is 32 bytes")
        self._shared = holepunch_secret
        self._local = local_secret if local_secret is not None else os.urandom(32)

    def encrypt(self, payload: m.HolepunchPayload, *, nonce: bytes | None = None) -> bytes:
        """``nonce ‖ secretbox(payload)``; ``nonce`` only for reproducible tests."""
        n = nonce if nonce is not None else os.urandom(NONCE_BYTES)
        if len(n) != NONCE_BYTES:
            raise ValueError("a secretbox nonce is 24 bytes")
        plain = m.encode(m.holepunch_payload, payload)
        return n + sodium.crypto_secretbox(plain, n, self._shared)

    def decrypt(self, data: bytes) -> m.HolepunchPayload | None:
        """The payload, or None for anything that is not a valid sealed payload."""
        if len(data) - MAC_BYTES <= NONCE_BYTES:
            return None
        try:
            plain = sodium.crypto_secretbox_open(
                bytes(data[NONCE_BYTES:]), bytes(data[:NONCE_BYTES]), self._shared
            )
        except nacl.exceptions.CryptoError:
            return None
        try:
            return m.decode(m.holepunch_payload, plain)
        except DecodeError:
            return None

    def token(self, host: str) -> bytes:
        """Our token for ``host``: only we can make it, so an echo proves the path."""
        return blake2b256(host.encode(), key=self._local)


__all__ = ["MAC_BYTES", "NONCE_BYTES", "SecurePayload"]
