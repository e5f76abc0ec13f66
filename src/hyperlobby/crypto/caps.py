"""Replication capabilities: proof, bound to one Noise session, that a peer knows a core key.

When a replication channel opens for a core, each side sends
``H(REPL_NS ‖ key; key = handshakeHash)``. The Noise handshake hash is unique to the session,
so the value proves knowledge of the core key without revealing it (only the discovery key is
public) and cannot be replayed on another connection. The namespace is REPLICATE_INITIATOR
when the *sender* is the Noise initiator and REPLICATE_RESPONDER otherwise, so the two sides'
values differ and one cannot just echo the other's.
"""

from __future__ import annotations

import hmac

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.namespaces import REPLICATE_INITIATOR, REPLICATE_RESPONDER
from hyperlobby.errors import InvalidKeyError

HANDSHAKE_HASH_SIZE = 64


def replication_capability(key: bytes, handshake_hash: bytes, is_initiator: bool) -> bytes:
    """The 32-byte capability the side with role ``is_initiator`` sends for core ``key``."""
    if len(key) != 32:
        raise InvalidKeyError("a core key is 32 bytes", length=len(key))
    if not 16 <= len(handshake_hash) <= 64:
        raise InvalidKeyError("a handshake hash must be 16..64 bytes", length=len(handshake_hash))
    namespace = REPLICATE_INITIATOR if is_initiator else REPLICATE_RESPONDER
    return blake2b256(namespace + bytes(key), key=bytes(handshake_hash))


def check_remote_capability(key: bytes, handshake_hash: bytes, local_is_initiator: bool, cap: bytes) -> bool:
    """True if ``cap`` from the remote is right: it was made with the opposite role to ours.

    Compared in constant time, since a mismatch must not leak how close a guess was.
    """
    expected = replication_capability(key, handshake_hash, not local_is_initiator)
    return hmac.compare_digest(expected, bytes(cap))
