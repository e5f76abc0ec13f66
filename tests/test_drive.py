"""Hyperdrive API behaviour: paths, entries, blobs, listings, versions, watch, mirror, errors."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from drive_helpers import gen
from hyperlobby.bee import Hyperbee, Metadata
from hyperlobby.core.store import Store
from hyperlobby.drive import (
    BLOCK_SIZE,
    BlobId,
    DrivePathError,
    EntryValue,
    Hyperdrive,
    content_key,
)
from hyperlobby.drive.blobs import Hyperblobs, MapBlock, decode_block_map, encode_block_map
from hyperlobby.drive.entry import js_stringify
from hyperlobby.drive.mirror import FolderCache, mirror_drive_to_folder, mirror_folder_to_drive
from hyperlobby.errors import BlockNotAvailableError, DriveError


@pytest.fixture
def drive() -> Hyperdrive:
    return Hyperdrive(Store(":memory:"))


# --- entries and JSON ----------------------------------------------------------------------------


def test_entry_encoding_matches_js_field_order() -> None:
    v = EntryValue(False, None, BlobId(0, 0, 1, 11), None)
    assert v.encode() == (
        b'{"executable":false,"linkname":null,'
        b'"blob":{"blockOffset":0,"byteOffset":0,"blockLength":1,"byteLength":11},"metadata":null}'
    )
    assert EntryValue.decode(v.encode()) == v


def test_js_stringify_orders_index_keys_and_formats_numbers() -> None:
    assert js_stringify({"b": 1, "10": 2, "2": 3, "01": 4, "a": 1.0}) == '{"2":3,"10":2,"b":1,"01":4,"a":1}'
    assert js_stringify([1e21, 1e-7, 0.1, -0.0, float("nan"), 2**60]) == (
        "[1e+21,1e-7,0.1,0,null,1152921504606847000]"
    )
    assert js_stringify('\u2028é\x01"\\\n') == '"\u2028é\\u0001\\"\\\\\\n"'
    with pytest.raises(DriveError):
        js_stringify({1: "int key"})
    with pytest.raises(DriveError):
        js_stringify(object())


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1,2]", b'{"executable":"yes"}', b'{"linkname":5}', b'{"blob":{"blockOffset":-1}}',
     b'{"blob":"x"}', b'{"blob":{"blockOffset":1.5}}'],
)  # fmt: skip
def test_malformed_entries_raise_drive_error(raw: bytes) -> None:
    with pytest.raises(DriveError):
        EntryValue.decode(raw)


def test_lenient_entry_decode() -> None:
    v = EntryValue.decode(b'{"blob":{"byteLength":3,"blockLength":1,"blockOffset":2,"byteOffset":9},"x":1}')
    assert v == EntryValue(False, None, BlobId(2, 9, 1, 3), None)


def test_malformed_stored_entry_is_a_clear_error(drive: Hyperdrive) -> None:
    drive._files.put("/bad", b"{oops")
    with pytest.raises(DriveError, match="/bad"):
        drive.entry("/bad")
    with pytest.raises(DriveError):
        list(drive.list("/"))


# --- paths ---------------------------------------------------------------------------------------


def test_paths_normalized_on_every_operation(drive: Hyperdrive) -> None:
    drive.put("a//b/./c/../d.txt", b"x")
    assert drive.get("/a/b/d.txt") == b"x"
    assert drive.get("\\a\\b\\d.txt") == b"x"
    assert drive.exists("/a/b/d.txt/")
    with pytest.raises(DrivePathError):
        drive.put("/", b"x")
    with pytest.raises(DrivePathError):
        drive.put("/../x", b"x")
    with pytest.raises(DrivePathError):
        drive.get("..")
    assert isinstance(DrivePathError("x"), DriveError)


# --- blobs ---------------------------------------------------------------------------------------


def test_blob_layout_and_ranges(drive: Hyperdrive) -> None:
    big = gen(3 * BLOCK_SIZE + 5, 1)
    e1 = drive.put("/small", b"hello world")
    e2 = drive.put("/big", big)
    e3 = drive.put("/empty", b"")
    assert e1.value.blob == BlobId(0, 0, 1, 11)
    assert e2.value.blob == BlobId(1, 11, 4, len(big))
    assert e3.value.blob == BlobId(5, 11 + len(big), 0, 0)
    assert drive.get("/big") == big
    assert drive.get("/empty") == b""
    assert drive.get("/big", start=BLOCK_SIZE - 3, length=10) == big[BLOCK_SIZE - 3 : BLOCK_SIZE + 7]
    assert drive.get("/big", start=2 * BLOCK_SIZE) == big[2 * BLOCK_SIZE :]
    assert drive.get("/small", start=6) == b"world"
    st = drive.stat("/big")
    assert st is not None and st.kind == "file" and st.size == len(big)


def test_block_map_read() -> None:
    store = Store(":memory:")
    core = store.get(name="blobs-test")
    blobs = Hyperblobs(core)
    a, b = gen(100, 1), gen(50, 2)
    core.append([a, b])
    maps = encode_block_map([MapBlock(0, 100), MapBlock(1, 50), MapBlock(0, 100)])
    start = core.length
    core.append(maps)
    blob = BlobId(start, 150, len(maps), sum(len(m) for m in maps), block_map=True)
    assert blobs.get(blob) == a + b + a
    assert blobs.byte_length(blob) == 250
    assert blobs.get(blob, 90, 20) == (a + b + a)[90:110]
    assert decode_block_map(maps) == [MapBlock(0, 100), MapBlock(1, 50), MapBlock(0, 100)]
    with pytest.raises(DriveError):
        decode_block_map([b"\x01\x00"])
    with pytest.raises(DriveError):
        decode_block_map([b"\x00\x05\x01"])


def test_missing_blob_blocks_raise_block_not_available() -> None:
    writer = Hyperdrive(Store(":memory:"))
    writer.put("/f", b"data")
    reader_store = Store(":memory:")
    reader = Hyperdrive(reader_store, writer.key)
    with pytest.raises(DriveError, match="blobs core"):
        reader._require_blobs()
    assert reader.entry("/f") is None  # an empty local copy knows no entries


# --- keys ----------------------------------------------------------------------------------------


def test_blobs_key_derivation_vector() -> None:
    store = Store(":memory:", primary_key=bytes([7]) * 32)
    d = Hyperdrive(store)
    assert d.key.hex() == "9d56810a89a0211db2a242b81ce8eac5265ac648769910177524c82908ab866d"
    assert d.content_key is not None
    assert d.content_key.hex() == "afa4ae98a0b1ef96fcf567c133623fc1c938c811b696daa75b749e48968e1178"
    assert d.core.manifest is not None
    assert content_key(d.core.manifest, d.key) == d.content_key
    assert d.blobs is not None and d.blobs.core.writable


def test_blobs_key_from_header_content_feed() -> None:
    """Legacy drives name their blobs core in the header (metadata.contentFeed): it wins."""
    store = Store(":memory:")
    legacy_blobs = store.get(name="legacy-blobs")
    legacy_blobs.append(b"legacy bytes")
    db = store.get(name="db")
    bee = Hyperbee(db, key_encoding="utf-8", value_encoding="binary", metadata=Metadata(legacy_blobs.key))
    value = EntryValue(False, None, BlobId(0, 0, 1, 12), None)
    bee.sub("files").put("/old.txt", value.encode())
    drive = Hyperdrive(store)
    assert drive.content_key == legacy_blobs.key
    assert drive.get("/old.txt") == b"legacy bytes"


def test_header_with_short_content_feed_is_an_error() -> None:
    store = Store(":memory:")
    bee = Hyperbee(store.get(name="db"), metadata=Metadata(b"short"))
    bee.put(b"k", b"v")
    with pytest.raises(DriveError, match="shorter than 32"):
        Hyperdrive(store)


def test_reopen_from_disk_same_drive(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    d = Hyperdrive(store)
    d.put("/x", b"1")
    key, ck = d.key, d.content_key
    store.close()
    store = Store(tmp_path / "s.db")
    d2 = Hyperdrive(store)
    assert (d2.key, d2.content_key) == (key, ck)
    assert d2.get("/x") == b"1"
    d2.put("/y", b"2")
    assert Hyperdrive(store, key).get("/y") == b"2"
    store.close()


def test_namespaces_give_distinct_drives() -> None:
    store = Store(":memory:")
    a = Hyperdrive(store.namespace("a"))
    b = Hyperdrive(store.namespace("b"))
    assert a.key != b.key and a.content_key != b.content_key
    a.put("/f", b"a")
    assert b.get("/f") is None


# --- listings, symlinks, stat --------------------------------------------------------------------


def test_list_readdir_stat_symlinks(drive: Hyperdrive) -> None:
    drive.put("/a/one", b"1")
    drive.put("/a/two", b"2", executable=True, metadata={"k": [1, "v"]})
    drive.put("/a/sub/three", b"3")
    drive.put("/a0", b"sibling with a name that sorts right after /a/")
    drive.put("/b", b"b")
    drive.symlink("/a/sub/link", "../two")
    drive.symlink("/loop1", "/loop2")
    drive.symlink("/loop2", "/loop1")
    assert [e.key for e in drive.list("/a")] == ["/a/one", "/a/sub/link", "/a/sub/three", "/a/two"]
    assert [e.key for e in drive.list("a/")] == [e.key for e in drive.list("/a")]
    # JS readdir skips the subtree of "a" by seeking past "/a0", which also skips a file named
    # "a0" (checked against hyperdrive 13.3.4); we list exactly what JS lists.
    assert list(drive.readdir("/")) == ["a", "b", "loop1", "loop2"]
    assert list(drive.readdir("/a")) == ["one", "sub", "two"]
    assert [e.key for e in drive.list("/a", recursive=False)] == ["/a/one", "/a/sub/link", "/a/two"]
    assert list(drive.readdir("/nothing")) == []
    # '/a/sub/link' + '../two' resolves against the link path as a folder -> /a/sub/two (absent)
    assert drive.entry("/a/sub/link", follow=True) is None
    drive.symlink("/a/sub/link", "../../two")
    assert drive.get("/a/sub/link", follow=True) == b"2"
    assert drive.get("/a/sub/link") is None
    with pytest.raises(DriveError, match="symlinks"):
        drive.entry("/loop1", follow=True)
    two = drive.stat("/a/two")
    assert two is not None and two.executable and two.metadata == {"k": [1, "v"]}
    st = drive.stat("/a/sub")
    assert st is not None and st.kind == "directory"
    link = drive.stat("/loop1")
    assert link is not None and link.kind == "symlink" and link.linkname == "/loop2"
    assert drive.stat("/zzz") is None
    root = drive.stat("/")
    assert root is not None and root.kind == "directory"
    with pytest.raises(DriveError):
        drive.symlink("/x", "")


def test_delete_diff_checkout_versions(drive: Hyperdrive) -> None:
    assert drive.version == 1
    drive.put("/keep", b"k")
    drive.put("/gone", b"g")
    v = drive.version
    assert drive.delete("/gone") is True
    assert drive.delete("/never") is False
    drive.put("/keep", b"k2")
    drive.put("/new", b"n")
    diff = {d.key: (d.left, d.right) for d in drive.diff(v)}
    assert set(diff) == {"/gone", "/keep", "/new"}
    assert diff["/gone"][0] is None and diff["/gone"][1] is not None
    old = drive.checkout(v)
    assert old.get("/gone") == b"g" and old.get("/keep") == b"k"
    assert not old.writable
    with pytest.raises(DriveError, match="not writable"):
        old.put("/x", b"x")
    assert drive.get("/keep") == b"k2"
    assert [d.key for d in drive.diff(v, "/new")] == []  # a file is not a folder prefix


def test_batch_is_atomic(drive: Hyperdrive) -> None:
    drive.put("/x", b"0")
    before = drive.version
    with drive.batch() as b:
        b.put("/a", b"A")
        b.symlink("/l", "/a")
        b.delete("/x")
        assert b.entry("/a") is not None
        assert drive.version == before
    assert drive.version == before + 3
    assert drive.get("/a") == b"A" and not drive.exists("/x")
    with pytest.raises(RuntimeError), drive.batch() as b2:
        b2.put("/dropped", b"d")
        raise RuntimeError("boom")
    assert not drive.exists("/dropped")


def test_truncate(drive: Hyperdrive) -> None:
    drive.put("/a", b"A" * 10)
    v = drive.version
    blobs_len = drive.blobs.core.length if drive.blobs else 0
    drive.put("/b", gen(BLOCK_SIZE * 2, 3))
    drive.truncate(v)
    assert drive.version == v and drive.get("/b") is None and drive.get("/a") == b"A" * 10
    assert drive.blobs is not None and drive.blobs.core.length == blobs_len
    with pytest.raises(DriveError):
        drive.truncate(drive.version + 5)


def test_bad_inputs(drive: Hyperdrive) -> None:
    with pytest.raises(DriveError):
        drive.put("/x", 123)  # type: ignore[arg-type]
    with pytest.raises(DriveError):
        drive.put("/x", b"x", metadata={"bad": object()})
    assert drive.blobs is not None and drive.blobs.core.length == 0  # nothing appended
    with pytest.raises(DriveError):
        Hyperdrive(Store(":memory:"), b"short")
    with pytest.raises(DriveError):
        drive.checkout(-1)
    drive.put("/s", "text is utf-8")
    assert drive.get("/s") == b"text is utf-8"


# --- watch ---------------------------------------------------------------------------------------


async def test_watch_folder(drive: Hyperdrive) -> None:
    watcher = drive.watch("/docs")
    it = watcher.__aiter__()
    drive.put("/other", b"not watched")
    drive.put("/docs/a", b"watched")
    current, previous = await asyncio.wait_for(it.__anext__(), 5)
    assert current.get("/docs/a") == b"watched"
    assert previous.get("/docs/a") is None
    seen: list[int] = []
    done = asyncio.Event()

    def on_change(cur: Hyperdrive, prev: Hyperdrive) -> None:
        seen.append(cur.version)
        done.set()

    watcher2 = drive.watch("/", on_change)
    drive.delete("/other")
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [drive.version]
    watcher.close()
    await watcher2.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(it.__anext__(), 5)


# --- mirror --------------------------------------------------------------------------------------


def test_mirror_folder_roundtrip(tmp_path: Path, drive: Hyperdrive) -> None:
    src = tmp_path / "src"
    (src / "d" / "e").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a")
    (src / "d" / "e" / "deep.bin").write_bytes(gen(BLOCK_SIZE + 7, 4))
    tool = src / "tool.sh"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)
    os.symlink("a.txt", src / "link")
    r = mirror_folder_to_drive(src, drive)
    assert r.count("add") == 4 and not r.errors
    entry = drive.entry("/tool.sh")
    assert entry is not None and entry.value.executable
    link = drive.entry("/link")
    assert link is not None and link.value.linkname == "a.txt"
    version = drive.version
    assert mirror_folder_to_drive(src, drive).changes == []  # unchanged: nothing written
    assert drive.version == version

    (src / "a.txt").write_bytes(b"changed")
    (src / "d" / "e" / "deep.bin").unlink()
    (src / "new").write_bytes(b"n")
    cache = FolderCache()
    r = mirror_folder_to_drive(src, drive, cache=cache)
    assert (r.count("add"), r.count("change"), r.count("remove")) == (1, 1, 1)
    assert drive.get("/a.txt") == b"changed" and not drive.exists("/d/e/deep.bin")
    assert mirror_folder_to_drive(src, drive, cache=cache).changes == []

    out = tmp_path / "out"
    r = mirror_drive_to_folder(drive, out)
    assert not r.errors
    assert (out / "a.txt").read_bytes() == b"changed"
    assert os.readlink(out / "link") == "a.txt"
    assert os.stat(out / "tool.sh").st_mode & 0o100
    assert mirror_drive_to_folder(drive, out).changes == []
    (out / "stray").write_bytes(b"s")
    r = mirror_drive_to_folder(drive, out, prune=True)
    assert r.count("remove") == 1 and not (out / "stray").exists()


def test_mirror_to_folder_never_escapes(tmp_path: Path, drive: Hyperdrive) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    drive.symlink("/evil", str(outside))
    drive.put("/evil/pwned", b"x")
    drive.put("/ok", b"fine")
    dest = tmp_path / "dest"
    # First pass: files first, links last, so nothing goes through the link.
    mirror_drive_to_folder(drive, dest)
    assert not (outside / "pwned").exists()
    # Second pass: the link now exists in dest; writing through it must be refused.
    r = mirror_drive_to_folder(drive, dest)
    assert not (outside / "pwned").exists()
    assert any("outside" in e or "folder" in e for e in r.errors)
    assert (dest / "ok").read_bytes() == b"fine"


def test_entry_json_for_tools(drive: Hyperdrive) -> None:
    e = drive.put("/f", b"1", metadata={"x": 1})
    assert json.loads(json.dumps(e.value.to_json()))["metadata"] == {"x": 1}


def test_reader_without_replication_errors(drive: Hyperdrive) -> None:
    with pytest.raises(DriveError, match="Replication"):
        asyncio.run(Hyperdrive(Store(":memory:"), drive.key).ready())
    assert issubclass(BlockNotAvailableError, Exception)
