"""Corestore 7 key derivation: named cores from one primary key.

A Corestore holds a secret 32-byte primary key. Every named writable core gets its key pair
from it, so the store can reopen ``get({name: 'db'})`` on any machine that has the primary key,
without storing per-core secrets:

* namespaces form a tree: the root is 32 zero bytes and ``store.namespace(name)`` gives the
  child ``H(parent ‖ utf8(name))`` (plain BLAKE2b-256);
* the seed of core ``name`` in namespace ``ns`` is ``H(CORESTORE_NS ‖ ns ‖ utf8(name);
  key = primaryKey)`` (keyed BLAKE2b-256), and its key pair is the Ed25519 pair of that seed;
* Corestore never makes compat cores: the core key is the hash of the default one-signer
  manifest (version 1 unless the store was configured otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import KeyPair, key_pair
from hyperlobby.crypto.manifest import Manifest, manifest_hash
from hyperlobby.crypto.namespaces import CORESTORE, ROOT_NAMESPACE
from hyperlobby.errors import InvalidKeyError

Name = str | bytes


def _name_bytes(name: Name) -> bytes:
    if isinstance(name, str):
        return name.encode("utf-8")
    if isinstance(name, bytes | bytearray | memoryview):
        return bytes(name)
    raise InvalidKeyError("a core or namespace name must be str or bytes", type=type(name).__name__)


def _check_ns(ns: bytes) -> None:
    if len(ns) != 32:
        raise InvalidKeyError("a Corestore namespace is 32 bytes", length=len(ns))


def child_namespace(parent_ns: bytes, name: Name) -> bytes:
    """The namespace of ``store.namespace(name)`` under ``parent_ns``."""
    _check_ns(parent_ns)
    return blake2b256(bytes(parent_ns) + _name_bytes(name))


def namespace_path(names: Iterable[Name], root: bytes = ROOT_NAMESPACE) -> bytes:
    """The namespace reached by ``store.namespace(a).namespace(b)…`` from ``root``."""
    ns = root
    for name in names:
        ns = child_namespace(ns, name)
    return ns


def derive_seed(primary_key: bytes, ns: bytes, name: Name) -> bytes:
    """The 32-byte Ed25519 seed of core ``name`` in namespace ``ns``."""
    if len(primary_key) != 32:
        raise InvalidKeyError("a Corestore primary key is 32 bytes", length=len(primary_key))
    _check_ns(ns)
    return blake2b256(CORESTORE + bytes(ns) + _name_bytes(name), key=bytes(primary_key))


def derive_key_pair(primary_key: bytes, name: Name, ns: bytes = ROOT_NAMESPACE) -> KeyPair:
    """The key pair of core ``name`` (``store.createKeyPair(name)``)."""
    return key_pair(derive_seed(primary_key, ns, name))


def default_manifest(
    primary_key: bytes, name: Name, ns: bytes = ROOT_NAMESPACE, version: int = 1
) -> Manifest:
    """The manifest Corestore gives a named core: one signer, the derived public key."""
    return Manifest.default(derive_key_pair(primary_key, name, ns).public_key, version=version)


def derive_core_key(primary_key: bytes, name: Name, ns: bytes = ROOT_NAMESPACE, version: int = 1) -> bytes:
    """The core key of ``store.get({name})``: the hash of its default manifest."""
    return manifest_hash(default_manifest(primary_key, name, ns, version))
