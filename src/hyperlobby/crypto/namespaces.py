"""The 32-byte namespace constants of the stack, derived exactly as hypercore-crypto does.

Every signature and keyed hash in Hypercore is domain-separated by one of these, so that a
signature made for one purpose (say a tree head) can never be replayed as another (say a
replication capability). ``namespace(name, n)`` hashes the name, then hashes that with each
index byte; the values below are fixed by the names alone.
"""

from __future__ import annotations

from hyperlobby.crypto.hashes import namespace

(
    TREE,
    REPLICATE_INITIATOR,
    REPLICATE_RESPONDER,
    MANIFEST,
    DEFAULT_NAMESPACE,
    DEFAULT_ENCRYPTION,
) = namespace("hypercore", 6)
"""hypercore 11 (lib/caps.js): tree signables, replication caps, manifest hash, signer ns, encryption."""

SECRET_STREAM_INITIATOR, SECRET_STREAM_RESPONDER, SECRET_STREAM_SEND = namespace(
    "hyperswarm/secret-stream", 3
)
"""@hyperswarm/secret-stream: the stream-id and send namespaces."""

(CORESTORE,) = namespace("corestore", 1)
"""corestore 7: the namespace of named-core seed derivation."""

(HYPERDRIVE_BLOBS,) = namespace("hyperdrive", 1)
"""hyperdrive 13: the namespace of the blobs-core key derivation."""

ROOT_NAMESPACE = bytes(32)
"""Corestore's root namespace (32 zero bytes), the parent of every ``store.namespace(name)``."""

__all__ = [
    "CORESTORE",
    "DEFAULT_ENCRYPTION",
    "DEFAULT_NAMESPACE",
    "HYPERDRIVE_BLOBS",
    "MANIFEST",
    "REPLICATE_INITIATOR",
    "REPLICATE_RESPONDER",
    "ROOT_NAMESPACE",
    "SECRET_STREAM_INITIATOR",
    "SECRET_STREAM_RESPONDER",
    "SECRET_STREAM_SEND",
    "TREE",
]
