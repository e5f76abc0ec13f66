"""Live interop with JS hyperdrive 13.3.4 over TCP (secret-stream + corestore replication).

* JS writes files, nested folders, a symlink, an executable with metadata, a 5 MiB file, a
  block-mapped (dedup) file, deletes one; Python opens the drive by key, replicates it and must
  read exactly the same tree (seq, key, entry value) and bytes. A sparse read on a second
  Python peer fetches one small file without pulling the 5 MiB blob. Then JS changes the drive
  while connected and a Python watcher sees the change and reads it.
* Python writes the same kinds of things; a JS peer reads them; Python then updates, adds and
  deletes while connected and JS reads the new version.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import INTEROP, node_binary
from drive_helpers import gen, sha
from hyperlobby.core.store import Store
from hyperlobby.drive import Hyperdrive
from hyperlobby.wire.replication import Replication
from replication_helpers import HOST, WAIT, Child, Processes

pytestmark = pytest.mark.interop

FIVE_MIB = 5 * 1024 * 1024


async def start_js(procs: Processes, config: dict[str, Any]) -> tuple[Child, dict[str, Any]]:
    argv = [node_binary(), "peers/drive_peer.js", json.dumps(config)]
    child = await procs._start("js-drive", argv, INTEROP)
    return child, await child.expect("ready")


async def js_cmd(child: Child, cmd: dict[str, Any]) -> dict[str, Any]:
    await child.send(cmd)
    ev = await child.expect("ok", match=lambda e: e.get("cmd") == cmd["cmd"], timeout=WAIT)
    assert not child.named("error"), child.named("error")
    return ev


async def js_dump(child: Child) -> dict[str, Any]:
    await child.send({"cmd": "dump"})
    return await child.expect("dump", timeout=WAIT)


def py_dump(drive: Hyperdrive) -> list[dict[str, Any]]:
    rows = []
    for e in drive.list("/"):
        data = drive.get(e.key) if e.value.blob is not None else None
        rows.append(
            {
                "seq": e.seq,
                "key": e.key,
                "value": e.value.to_json(),
                "size": None if data is None else len(data),
                "sha256": None if data is None else sha(data),
            }
        )
    return rows


JS_WRITES: list[dict[str, Any]] = [
    {"cmd": "put", "path": "/readme.md", "text": "# hello from JS\n"},
    {"cmd": "put", "path": "/docs/guide/intro.txt", "text": "intro"},
    {"cmd": "put", "path": "/docs/guide/deep/er/file.txt", "text": "deep"},
    {"cmd": "put", "path": "/bin/run.sh", "text": "#!/bin/sh\necho hi\n", "executable": True,
     "metadata": {"mode": 493, "tags": ["x", 1.5]}},
    {"cmd": "symlink", "path": "/docs/latest", "target": "../guide/intro.txt"},
    {"cmd": "put", "path": "/big.bin", "gen": {"size": FIVE_MIB, "seed": 9}},
    {"cmd": "put", "path": "/empty.txt", "text": ""},
    {"cmd": "put", "path": "/gone.txt", "text": "to be deleted"},
    {"cmd": "stream_dedup", "path": "/dedup.bin",
     "chunks": [{"size": 1000, "seed": 1}, {"size": 2000, "seed": 2}, {"size": 1000, "seed": 1}]},
    {"cmd": "del", "path": "/gone.txt"},
]  # fmt: skip


async def test_js_writes_python_reads(tmp_path: Path) -> None:
    async with Processes(tmp_path) as procs:
        js, ready = await start_js(procs, {"storage": str(tmp_path / "js"), "listen": True})
        for cmd in JS_WRITES:
            await js_cmd(js, cmd)
        expected = await js_dump(js)
        port = int(ready["port"])
        key = bytes.fromhex(ready["key"])

        store = Store(":memory:")
        rep = Replication(store)
        sparse_store = Store(":memory:")
        sparse_rep = Replication(sparse_store)
        try:
            drive = Hyperdrive(store, key, replication=rep)
            await rep.connect(HOST, port)
            version = await drive.update(timeout=WAIT)
            assert version == expected["version"]
            assert drive.content_key is not None and drive.content_key.hex() == expected["contentKey"]
            stats = await drive.download("/", timeout=WAIT)
            assert stats.bytes >= FIVE_MIB
            assert py_dump(drive) == expected["entries"]
            assert list(drive.readdir("/")) == expected["readdir"]
            assert drive.get("/big.bin") == gen(FIVE_MIB, 9)
            assert drive.get("/dedup.bin") == gen(1000, 1) + gen(2000, 2) + gen(1000, 1)
            assert drive.get("/docs/latest", follow=True) == b"intro"
            assert drive.entry("/gone.txt") is None
            st = drive.stat("/dedup.bin")
            assert st is not None and st.size == 4000
            run = drive.entry("/bin/run.sh")
            assert run is not None and run.value.executable
            assert run.value.metadata == {"mode": 493, "tags": ["x", 1.5]}

            # Sparse: another peer reads one small file; the 5 MiB blob stays remote.
            sparse = Hyperdrive(sparse_store, key, replication=sparse_rep)
            await sparse_rep.connect(HOST, port)
            await sparse.update(timeout=WAIT)
            assert await sparse.get_async("/docs/guide/intro.txt", timeout=WAIT) == b"intro"
            assert await sparse.get_async("/nothing-here", timeout=WAIT) is None
            blobs = sparse.blobs
            assert blobs is not None
            held = sum(1 for i in range(blobs.core.length) if blobs.core.has(i))
            assert held < 5, f"sparse read pulled {held} blob blocks"
            db_held = sum(1 for i in range(sparse.core.length) if sparse.core.has(i))
            assert db_held < sparse.core.length

            # Live: JS changes the drive while connected; a watcher on the Python side sees it.
            watcher = drive.watch("/docs")
            changes = watcher.__aiter__()
            await js_cmd(js, {"cmd": "put", "path": "/docs/new.txt", "text": "fresh"})
            await js_cmd(js, {"cmd": "del", "path": "/readme.md"})
            current, previous = await asyncio.wait_for(changes.__anext__(), WAIT)
            assert current.version > previous.version
            watcher.close()
            after = await js_dump(js)
            await drive.update(timeout=WAIT)
            await drive.download("/", timeout=WAIT)
            assert drive.version == after["version"]
            assert py_dump(drive) == after["entries"]
            assert drive.get("/docs/new.txt") == b"fresh"
            assert not drive.exists("/readme.md")
        finally:
            await rep.close()
            await sparse_rep.close()
            store.close()
            sparse_store.close()


async def test_python_writes_js_reads(tmp_path: Path) -> None:
    store = Store(tmp_path / "py.db")
    rep = Replication(store)
    try:
        drive = Hyperdrive(store, replication=rep)
        drive.put("/readme.md", b"# hello from Python\n")
        drive.put("/src/pkg/mod.py", b"print('hi')\n", metadata={"lang": "python", "1": 2, "b": [None, 0.5]})
        drive.put("/tools/go.sh", b"#!/bin/sh\n", executable=True)
        drive.symlink("/src/link", "pkg/mod.py")
        drive.put("/big.bin", gen(FIVE_MIB, 4))
        drive.put("/empty", b"")
        drive.put("/temp.txt", b"temporary")
        drive.delete("/temp.txt")
        _, port = await rep.listen(HOST, 0)

        async with Processes(tmp_path) as procs:
            js, ready = await start_js(
                procs, {"storage": str(tmp_path / "js"), "key": drive.key.hex(), "connect": port}
            )
            assert ready["key"] == drive.key.hex()
            got = await js_dump(js)
            assert got["version"] == drive.version
            assert drive.content_key is not None and got["contentKey"] == drive.content_key.hex()
            assert got["entries"] == py_dump(drive)
            assert got["readdir"] == list(drive.readdir("/"))

            # Changes after the first sync, while connected.
            drive.put("/readme.md", b"# updated\n")
            drive.delete("/tools/go.sh")
            drive.put("/added/new.bin", gen(200_000, 5))
            with drive.batch() as b:
                b.put("/batch/a", b"A")
                b.put("/batch/b", b"B")
                b.delete("/empty")
            await js_cmd(js, {"cmd": "wait_version", "version": drive.version})
            got = await js_dump(js)
            assert got["version"] == drive.version
            assert got["entries"] == py_dump(drive)
            keys = [e["key"] for e in got["entries"]]
            assert "/tools/go.sh" not in keys and "/empty" not in keys and "/batch/b" in keys
    finally:
        await rep.close()
        store.close()
