"""Store: many cores in one database, named cores derived from one primary key like corestore 7.

Theory of operation
-------------------
A Store owns one storage backend (an SQLite file, or memory for ``":memory:"``) and a 32-byte
**primary key**, generated on first use and kept in that storage, so the same file always
derives the same cores. ``store.get(name="db")`` derives the key pair for ``(namespace, name)``
exactly as corestore 7 does (crypto/corestore.py), builds the default single-signer manifest, and
so opens a core whose key matches what JS corestore gives for the same primary key.
``store.get(key=...)`` opens a core by key: writable if we hold its secret key, read-only otherwise.

``store.namespace(name)`` is a view of the same Store under a child namespace: it shares the
backend, the primary key and the open cores, and only changes how names are turned into keys.
Open cores are shared too: asking twice for the same core returns the same :class:`Hypercore`
object, so two parts of a program never keep diverging copies of one core's head in memory.

Replication needs ``get_by_discovery_key``: a peer names a core only by its discovery key, and
we may answer only for cores whose key we already hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.storage.base import StorageBackend
from hyperlobby.core.storage.memory import MemoryStorage
from hyperlobby.core.storage.sqlite import Durability, SqliteStorage
from hyperlobby.crypto.corestore import child_namespace, derive_key_pair
from hyperlobby.crypto.keys import random_bytes
from hyperlobby.crypto.manifest import Manifest, manifest_hash
from hyperlobby.crypto.namespaces import ROOT_NAMESPACE
from hyperlobby.errors import CoreError, StorageError


@dataclass(frozen=True, slots=True)
class CoreInfo:
    """What ``Store.list`` reports about one stored core without opening it."""

    key: bytes
    discovery_key: bytes
    writable: bool
    has_manifest: bool


class _Shared:
    """State shared by a Store and all its namespace views."""

    __slots__ = ("backend", "closed", "cores", "primary_key")

    def __init__(self, backend: StorageBackend, primary_key: bytes) -> None:
        self.backend = backend
        self.primary_key = primary_key
        self.cores: dict[bytes, Hypercore] = {}
        self.closed = False


class Store:
    """A corestore: named and keyed cores in one storage, one primary key."""

    def __init__(
        self,
        path: str | Path | StorageBackend = ":memory:",
        *,
        primary_key: bytes | None = None,
        durability: Durability = "normal",
        _shared: _Shared | None = None,
        _namespace: bytes = ROOT_NAMESPACE,
    ) -> None:
        """Open (or create) a store.

        ``path`` is an SQLite file, ``":memory:"`` for a throwaway in-memory store, or a backend.
        ``primary_key`` fixes the key in a new store (as corestore's ``unsafe`` option does);
        giving a different one for an existing store is an error, because every named core would
        silently become a different core.
        """
        self._ns = _namespace
        if _shared is not None:
            self._shared = _shared
            return
        backend: StorageBackend
        if isinstance(path, str | Path):
            backend = (
                MemoryStorage() if str(path) == ":memory:" else SqliteStorage(path, durability=durability)
            )
        else:
            backend = path
        if primary_key is not None and len(primary_key) != 32:
            raise StorageError("primary key must be 32 bytes", length=len(primary_key))
        kept = backend.get_primary_key()
        if kept is None:
            kept = backend.set_primary_key(primary_key if primary_key is not None else random_bytes(32))
        if primary_key is not None and kept != primary_key:
            backend.close()
            raise StorageError("this store was created with a different primary key")
        self._shared = _Shared(backend, kept)

    # --- views -----------------------------------------------------------------------------------

    @property
    def primary_key(self) -> bytes:
        return self._shared.primary_key

    @property
    def ns(self) -> bytes:
        """This view's 32-byte namespace (32 zero bytes at the root)."""
        return self._ns

    @property
    def storage(self) -> StorageBackend:
        return self._shared.backend

    def namespace(self, name: str) -> Store:
        """A view whose named cores live under ``H(ns ‖ name)`` (corestore ``namespace``)."""
        self._check_open()
        return Store(_shared=self._shared, _namespace=child_namespace(self._ns, name))

    # --- cores -----------------------------------------------------------------------------------

    def get(self, name: str | None = None, *, key: bytes | None = None) -> Hypercore:
        """A core by ``name`` (derived, writable) or by ``key`` (writable only if we hold its secret)."""
        self._check_open()
        if (name is None) == (key is None):
            raise CoreError("give exactly one of name= or key=")
        shared = self._shared
        if name is not None:
            kp = derive_key_pair(shared.primary_key, name, self._ns)
            manifest = Manifest.default(kp.public_key)
            core_key = manifest_hash(manifest)
            core = self._cached(core_key)
            if core is not None:
                return core
            record = shared.backend.find_core(core_key)
            if record is None:
                core = Hypercore.create(shared.backend, kp, manifest=manifest)
            else:
                if record.secret_key is None or record.manifest is None:
                    shared.backend.update_core_auth(record.id, manifest.encode(), kp.secret_key)
                    record = shared.backend.find_core(core_key)
                    assert record is not None
                core = Hypercore(shared.backend, record)
        else:
            assert key is not None
            if len(key) != 32:
                raise CoreError("a core key is 32 bytes", length=len(key))
            core = self._cached(bytes(key))
            if core is not None:
                return core
            core = Hypercore.open(shared.backend, bytes(key))
        shared.cores[core.key] = core
        return core

    def _cached(self, key: bytes) -> Hypercore | None:
        core = self._shared.cores.get(key)
        if core is not None and core.closed:
            del self._shared.cores[key]
            return None
        return core

    def get_by_discovery_key(self, discovery_key: bytes) -> Hypercore | None:
        """The stored core with this discovery key, or ``None`` (we never answer for unknown keys)."""
        self._check_open()
        for core in self._shared.cores.values():
            if core.discovery_key == discovery_key and not core.closed:
                return core
        record = self._shared.backend.find_core_by_discovery_key(discovery_key)
        if record is None:
            return None
        return self.get(key=record.key)

    def list(self) -> list[CoreInfo]:
        """Every core in the storage (all namespaces: keys do not record which name made them)."""
        self._check_open()
        return [
            CoreInfo(r.key, r.discovery_key, r.secret_key is not None, r.manifest is not None)
            for r in self._shared.backend.list_cores()
        ]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self._shared.backend.find_core(key) is not None

    # --- lifecycle -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._shared.closed:
            raise CoreError("store is closed")

    @property
    def closed(self) -> bool:
        return self._shared.closed

    def close(self) -> None:
        """Close every open core and the storage (for any view: they share one storage)."""
        shared = self._shared
        if shared.closed:
            return
        shared.closed = True
        for core in list(shared.cores.values()):
            core.close()
        shared.cores.clear()
        shared.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
