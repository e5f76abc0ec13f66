"""Store: corestore-compatible key derivation, namespaces, keyed opens, persistence, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperlobby.core.storage import MemoryStorage
from hyperlobby.core.store import Store
from hyperlobby.crypto.corestore import derive_core_key
from hyperlobby.errors import CoreError, StorageError

PRIMARY = b"\x07" * 32
DB_KEY = "9d56810a89a0211db2a242b81ce8eac5265ac648769910177524c82908ab866d"  # crypto.md §8 (JS)


def test_named_core_matches_spec_vector() -> None:
    with Store(primary_key=PRIMARY) as store:
        core = store.get(name="db")
        assert core.key.hex() == DB_KEY
        assert core.writable
        assert store.get(name="db") is core


def test_primary_key_generated_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as store:
        pk = store.primary_key
        key = store.get(name="x").key
    with Store(path) as store:
        assert store.primary_key == pk
        assert store.get(name="x").key == key
    with pytest.raises(StorageError, match="different primary key"):
        Store(path, primary_key=b"\x01" * 32)
    with pytest.raises(StorageError):
        Store(":memory:", primary_key=b"short")


def test_namespaces_derive_distinct_keys() -> None:
    with Store(primary_key=PRIMARY) as store:
        a = store.namespace("app")
        assert a.get(name="db").key == derive_core_key(PRIMARY, "db", a.ns)
        assert a.get(name="db").key != store.get(name="db").key
        assert a.namespace("inner").ns != a.ns
        assert store.namespace("app").get(name="db") is a.get(name="db")


def test_get_arguments() -> None:
    with Store() as store:
        with pytest.raises(CoreError):
            store.get()
        with pytest.raises(CoreError):
            store.get(name="a", key=b"\x00" * 32)
        with pytest.raises(CoreError):
            store.get(key=b"\x00" * 3)


def test_keyed_open_is_read_only_unless_secret_known(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path, primary_key=PRIMARY) as store:
        named = store.get(name="db")
        named.append(b"x")
        foreign = store.get(key=b"\x42" * 32)
        assert not foreign.writable and foreign.length == 0
        assert store.get(key=named.key) is named
    with Store(path) as store:
        by_key = store.get(key=bytes.fromhex(DB_KEY))
        assert by_key.writable and by_key.get(0) == b"x"
        assert not store.get(key=b"\x42" * 32).writable


def test_list_and_discovery_key_lookup(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path, primary_key=PRIMARY) as store:
        a = store.get(name="a")
        b = store.namespace("n").get(name="b")
        r = store.get(key=b"\x42" * 32)
        infos = {i.key: i for i in store.list()}
        assert set(infos) == {a.key, b.key, r.key}
        assert infos[a.key].writable and not infos[r.key].writable and not infos[r.key].has_manifest
        assert store.get_by_discovery_key(b.discovery_key) is b
        assert store.get_by_discovery_key(b"\x00" * 32) is None
        assert a.key in store and b"\x00" * 32 not in store
    with Store(path) as store:
        core = store.get_by_discovery_key(b.discovery_key)
        assert core is not None and core.key == b.key


def test_close_closes_cores_and_views() -> None:
    store = Store(storage := MemoryStorage())
    assert store.storage is storage
    core = store.get(name="a")
    view = store.namespace("v")
    view.close()
    assert store.closed and core.closed
    with pytest.raises(CoreError):
        store.get(name="a")
    store.close()


def test_closed_core_is_reopened_by_get() -> None:
    with Store() as store:
        core = store.get(name="a")
        core.append(b"1")
        core.close()
        again = store.get(name="a")
        assert again is not core and again.get(0) == b"1"
