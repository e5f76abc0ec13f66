"""Byte-for-byte agreement with JS hypercore 11 / corestore 7 (vectors from interop/vectors/core.js)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import load_vectors, run_node
from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import key_pair

VECTORS = load_vectors("core")


def replay(core: Hypercore, case: dict[str, Any]) -> None:
    assert core.key.hex() == case["key"]
    assert core.discovery_key.hex() == case["discovery_key"]
    assert core.id == case["id"]
    assert core.manifest is not None and core.manifest.encode().hex() == case["manifest"]
    assert core.key_pair is not None and core.key_pair.public_key.hex() == case["public_key"]
    for state in case["states"]:
        if "append" in state:
            core.append([bytes.fromhex(b) for b in state["append"]])
        else:
            core.truncate(state["truncate"])
        assert (core.length, core.byte_length, core.fork) == (
            state["length"],
            state["byte_length"],
            state["fork"],
        )
        assert core.tree_hash().hex() == state["tree_hash"]
        assert core.signature is not None and core.signature.hex() == state["signature"]
        roots = [{"index": r.index, "size": r.size, "hash": r.hash.hex()} for r in core.roots]
        assert roots == state["roots"]


def _store_core(store: Store, case: dict[str, Any]) -> Hypercore:
    view = store
    for name in case["namespace"]:
        view = view.namespace(name)
    return view.get(name=case["name"])


@pytest.mark.parametrize("case", VECTORS["named"], ids=lambda c: "/".join([*c["namespace"], c["name"]]))
def test_corestore_named_cores_match_js(case: dict[str, Any], tmp_path: Path) -> None:
    with Store(tmp_path / "s.db", primary_key=bytes.fromhex(VECTORS["primary_key"])) as store:
        replay(_store_core(store, case), case)


@pytest.mark.parametrize("case", VECTORS["plain"], ids=lambda c: f"seed{c['seed']}-compat{c['compat']}")
def test_plain_cores_match_js(case: dict[str, Any]) -> None:
    kp = key_pair(bytes([int(case["seed"], 16)]) * 32)
    with Hypercore.create(key_pair=kp, compat=case["compat"]) as core:
        assert core.compat == case["compat"]
        replay(core, case)


def test_reopened_store_keeps_signed_heads(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    primary = bytes.fromhex(VECTORS["primary_key"])
    with Store(path, primary_key=primary) as store:
        for case in VECTORS["named"]:
            replay(_store_core(store, case), case)
    with Store(path) as store:
        assert store.primary_key == primary
        for case in VECTORS["named"]:
            core = _store_core(store, case)
            last = case["states"][-1]
            assert core.tree_hash().hex() == last["tree_hash"]
            assert core.signature is not None and core.signature.hex() == last["signature"]
            assert core.writable


@pytest.mark.interop
def test_vectors_are_current() -> None:
    """The committed vectors are exactly what the pinned JS packages print today."""
    fresh = json.loads(run_node("vectors/core.js"))
    assert fresh == VECTORS
