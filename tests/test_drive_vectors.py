"""Hyperdrive against JS golden vectors: the same operations give the same bytes.

interop/vectors/drive.js ran a list of operations on JS hyperdrive 13.3.4 (primary key 32 x 07);
here the Python drive replays them and must produce the identical drive key, blobs key, every
db block, every blobs block, both Merkle tree hashes, and the same listings.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import load_vectors, run_node
from drive_helpers import data_of, sha
from hyperlobby.core.store import Store
from hyperlobby.drive import DrivePathError, Hyperdrive, normalize

V = load_vectors("drive")


def replay(vectors: dict[str, Any]) -> tuple[Store, Hyperdrive, int]:
    store = Store(":memory:", primary_key=bytes.fromhex(vectors["primary_key"]))
    drive = Hyperdrive(store)
    mark = 0
    for op in vectors["ops"]:
        kind = op["op"]
        if kind == "put":
            drive.put(
                op["path"], data_of(op), executable=bool(op.get("executable")), metadata=op.get("metadata")
            )
        elif kind == "symlink":
            drive.symlink(op["path"], op["target"], metadata=op.get("metadata"))
        elif kind == "del":
            drive.delete(op["path"])
        elif kind == "mark":
            mark = drive.version
    return store, drive, mark


@pytest.fixture(scope="module")
def replayed() -> tuple[Store, Hyperdrive, int]:
    return replay(V)


def test_keys(replayed: tuple[Store, Hyperdrive, int]) -> None:
    _, drive, _ = replayed
    assert drive.key.hex() == V["drive_key"]
    assert drive.content_key is not None
    assert drive.content_key.hex() == V["content_key"]


def test_db_blocks_byte_identical(replayed: tuple[Store, Hyperdrive, int]) -> None:
    _, drive, mark = replayed
    assert mark == V["mark"]
    assert drive.version == V["version"]
    ours = [drive.core.get(i).hex() for i in range(drive.core.length)]
    assert len(ours) == len(V["db_blocks"])
    for i, (a, b) in enumerate(zip(ours, V["db_blocks"], strict=True)):
        assert a == b, f"db block {i} differs"
    assert drive.core.tree_hash().hex() == V["db_tree_hash"]


def test_blob_layout_identical(replayed: tuple[Store, Hyperdrive, int]) -> None:
    _, drive, _ = replayed
    assert drive.blobs is not None
    core = drive.blobs.core
    assert core.length == V["blobs_length"]
    assert core.byte_length == V["blobs_byte_length"]
    ours = [{"size": len(b), "sha256": sha(b)} for b in (core.get(i) for i in range(core.length))]
    assert ours == V["blobs_blocks"]
    assert core.tree_hash().hex() == V["blobs_tree_hash"]


def test_listings(replayed: tuple[Store, Hyperdrive, int]) -> None:
    _, drive, mark = replayed
    listed = [{"seq": e.seq, "key": e.key, "value": e.value.to_json()} for e in drive.list("/")]
    # JSON round trip: the vector's numbers went through JSON too (1e21 stays a float, etc.)
    assert json.loads(json.dumps(listed)) == V["list"]
    assert [e.key for e in drive.list("/dir", recursive=False)] == V["shallow"]
    for folder, names in V["readdir"].items():
        assert list(drive.readdir(folder)) == names, folder
    for path, target in V["follow"].items():
        e = drive.entry(path, follow=True)
        assert (e.key if e else None) == target, path
    diff = [
        {
            "left": None if d.left is None else {"seq": d.left.seq, "key": d.left.key},
            "right": None if d.right is None else {"seq": d.right.seq, "key": d.right.key},
        }
        for d in drive.diff(mark, "/")
    ]
    assert diff == V["diff"]
    assert [e.key for e in drive.checkout(mark).list("/")] == V["checkout"]
    for key, digest in V["files"].items():
        data = drive.get(key)
        assert data is not None and sha(data) == digest, key


@pytest.mark.parametrize("case", V["normalize"], ids=lambda c: repr(c["input"]))
def test_normalize(case: dict[str, str]) -> None:
    if "output" in case:
        assert normalize(case["input"]) == case["output"]
    else:
        with pytest.raises(DrivePathError):
            normalize(case["input"])


@pytest.mark.interop
def test_vectors_rerun_match_committed() -> None:
    fresh = json.loads(run_node("vectors/drive.js", timeout=60))
    assert fresh == V
