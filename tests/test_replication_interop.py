"""Replication against real JS hypercore peers (``interop/peers/core_peer.js``), both directions.

"Python serves" tests run a Python writer in this process and a JS reader (role "fetch") that
reports the sha256 of every block it got and which indexes it stored. "JS serves" tests run a
JS writer (role "serve") and a Python reader in this process. Each runs for manifest (default)
and compat cores. A missing node fails these tests (never skips).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from replication_helpers import (
    WAIT,
    Node,
    Processes,
    hexes,
    js_core_spec,
    make_blocks,
    new_writer,
    requests_counter,
    seed_of,
    sha,
    stored_indexes,
    wait_stored,
    wait_until,
)

pytestmark = pytest.mark.interop

COMPAT = pytest.mark.parametrize("compat", [False, True], ids=["manifest", "compat"])


def js_reader(tmp: Path, name: str, key: bytes, compat: bool, **spec: Any) -> dict[str, Any]:
    return js_core_spec(tmp, name, key=key.hex(), compat=compat, **spec)


def js_writer(tmp: Path, name: str, compat: bool, blocks: list[bytes]) -> dict[str, Any]:
    return js_core_spec(tmp, name, seed=seed_of(f"js-{name}").hex(), compat=compat, blocks=hexes(blocks))


# --- 1. full download ---------------------------------------------------------------------------


@COMPAT
async def test_js_fetches_everything_from_python(compat: bool, tmp_path: Path) -> None:
    blocks = make_blocks(150, "py-full")
    async with Processes(tmp_path) as procs, Node() as writer:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        port = await writer.listen()
        js = await procs.js_fetch(port, [js_reader(tmp_path, "r", core.key, compat)])
        done = (await js.expect("done"))["cores"][0]
        assert done["key"] == core.key.hex()
        assert done["length"] == len(blocks)
        assert done["digests"] == [sha(b) for b in blocks]
        assert done["stored"] == list(range(len(blocks)))
        assert done["contiguousLength"] == len(blocks)
        assert await js.wait_exit() == 0
        assert writer.errors == []


@COMPAT
async def test_python_fetches_everything_from_js(compat: bool, tmp_path: Path) -> None:
    blocks = make_blocks(150, "js-full")
    async with Processes(tmp_path) as procs, Node() as reader:
        _js, info = await procs.js_serve([js_writer(tmp_path, "w", compat, blocks)])
        copy = reader.store.get(key=bytes.fromhex(info["cores"][0]["key"]))
        reader.rep.add(copy)
        await reader.connect(info["port"])
        assert await reader.fetch_all(copy) == len(blocks)
        assert [copy.get(i) for i in range(len(blocks))] == blocks
        assert copy.contiguous_length == len(blocks)
        assert reader.errors == []


async def test_js_fetches_thousands_of_blocks_from_python(tmp_path: Path) -> None:
    blocks = make_blocks(2500, "py-big")
    async with Processes(tmp_path) as procs, Node() as writer:
        core = new_writer(writer.store, False)
        core.append(blocks)
        writer.rep.add(core)
        js = await procs.js_fetch(await writer.listen(), [js_reader(tmp_path, "r", core.key, False)])
        done = (await js.expect("done", timeout=60))["cores"][0]
        assert done["digests"] == [sha(b) for b in blocks]
        assert writer.errors == []


# --- 2. sparse range ----------------------------------------------------------------------------


@COMPAT
async def test_js_fetches_a_sparse_range_from_python(
    compat: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = requests_counter(monkeypatch)
    blocks = make_blocks(90, "py-sparse")
    start, end = 31, 58
    async with Processes(tmp_path) as procs, Node() as writer:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        js = await procs.js_fetch(
            await writer.listen(), [js_reader(tmp_path, "r", core.key, compat, range=[start, end])]
        )
        done = (await js.expect("done"))["cores"][0]
        assert done["length"] == len(blocks)
        assert done["digests"] == [sha(b) for b in blocks[start:end]]
        assert done["stored"] == list(range(start, end))  # the rest is not stored
        assert sorted(set(requests[core.discovery_key])) == list(range(start, end))
        assert writer.errors == []


@COMPAT
async def test_python_fetches_a_sparse_range_from_js(compat: bool, tmp_path: Path) -> None:
    blocks = make_blocks(90, "js-sparse")
    start, end = 12, 47
    async with Processes(tmp_path) as procs, Node() as reader:
        _js, info = await procs.js_serve([js_writer(tmp_path, "w", compat, blocks)])
        copy = reader.store.get(key=bytes.fromhex(info["cores"][0]["key"]))
        await reader.connect(info["port"])
        assert await reader.rep.update(copy, timeout=WAIT) == len(blocks)
        reader.rep.download(copy, start, end)
        await wait_stored(copy, range(start, end))
        assert stored_indexes(copy) == list(range(start, end))
        assert not copy.has(0) and not copy.has(end) and not copy.has(len(blocks) - 1)
        assert [copy.get(i) for i in range(start, end)] == blocks[start:end]
        assert reader.errors == []


# --- 3. live appends ----------------------------------------------------------------------------


@COMPAT
async def test_js_follows_python_appends(compat: bool, tmp_path: Path) -> None:
    blocks = make_blocks(40, "py-live")
    fresh = make_blocks(5, "py-live-new")
    total = len(blocks) + len(fresh)
    async with Processes(tmp_path) as procs, Node() as writer:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        js = await procs.js_fetch(
            await writer.listen(), [js_reader(tmp_path, "r", core.key, compat, follow=total)]
        )
        synced = (await js.expect("synced"))["cores"][0]
        assert synced["length"] == len(blocks)
        for i, block in enumerate(fresh):
            core.append(block)
            index = len(blocks) + i
            ev = await js.expect("block", match=lambda e, index=index: e["index"] == index)
            assert ev["digest"] == sha(block)
        done = (await js.expect("done"))["cores"][0]
        assert done["length"] == total
        assert done["digests"] == [sha(b) for b in blocks + fresh]
        assert writer.errors == []


@COMPAT
async def test_python_follows_js_appends(compat: bool, tmp_path: Path) -> None:
    blocks = make_blocks(40, "js-live")
    fresh = make_blocks(5, "js-live-new")
    async with Processes(tmp_path) as procs, Node() as reader:
        js, info = await procs.js_serve([js_writer(tmp_path, "w", compat, blocks)])
        copy = reader.store.get(key=bytes.fromhex(info["cores"][0]["key"]))
        reader.rep.add(copy)
        await reader.connect(info["port"])
        await reader.fetch_all(copy)
        reader.rep.download(copy)  # all, live
        for i, block in enumerate(fresh):
            index = len(blocks) + i
            assert await js.append(0, [block]) == index + 1
            await copy.wait_for_length(index + 1, timeout=WAIT)
            await wait_stored(copy, [index])
            assert copy.get(index) == block
        assert reader.errors == []


# --- 4. three cores, one connection -------------------------------------------------------------

SIZES = [3, 70, 12]


@COMPAT
async def test_js_fetches_three_cores_from_python(compat: bool, tmp_path: Path) -> None:
    async with Processes(tmp_path) as procs, Node() as writer:
        cores = []
        for n, size in enumerate(SIZES):
            core = new_writer(writer.store, compat, f"py-three-{n}")
            core.append(make_blocks(size, f"py-three-{n}"))
            writer.rep.add(core)
            cores.append(core)
        specs = [js_reader(tmp_path, f"r{n}", core.key, compat) for n, core in enumerate(cores)]
        js = await procs.js_fetch(await writer.listen(), specs)
        done = (await js.expect("done"))["cores"]
        for n, result in enumerate(done):
            assert result["key"] == cores[n].key.hex()
            assert result["digests"] == [sha(b) for b in make_blocks(SIZES[n], f"py-three-{n}")]
        assert writer.errors == []


@COMPAT
async def test_python_fetches_three_cores_from_js(compat: bool, tmp_path: Path) -> None:
    async with Processes(tmp_path) as procs, Node() as reader:
        specs = [
            js_writer(tmp_path, f"w{n}", compat, make_blocks(size, f"js-three-{n}"))
            for n, size in enumerate(SIZES)
        ]
        _js, info = await procs.js_serve(specs)
        copies = [reader.store.get(key=bytes.fromhex(c["key"])) for c in info["cores"]]
        for copy in copies:
            reader.rep.add(copy)
        await reader.connect(info["port"])
        assert await asyncio.gather(*(reader.fetch_all(c) for c in copies)) == SIZES
        for n, copy in enumerate(copies):
            assert [copy.get(i) for i in range(copy.length)] == make_blocks(SIZES[n], f"js-three-{n}")
        assert reader.rep.connections == 1
        assert reader.errors == []


# --- 5. reconnect after the server process is killed --------------------------------------------


@COMPAT
async def test_python_resumes_after_js_server_killed(compat: bool, tmp_path: Path) -> None:
    blocks = make_blocks(60, "js-reconnect")
    more = make_blocks(20, "js-reconnect-more")
    have = 35
    spec = js_writer(tmp_path, "w", compat, blocks)
    async with Processes(tmp_path) as procs, Node() as reader:
        js, info = await procs.js_serve([spec])
        copy = reader.store.get(key=bytes.fromhex(info["cores"][0]["key"]))
        reader.rep.add(copy)
        await reader.connect(info["port"])
        assert await reader.rep.update(copy, timeout=WAIT) == len(blocks)
        reader.rep.download(copy, 0, have)
        await reader.rep.wait_downloaded(copy, have, timeout=WAIT)

        await js.kill()
        await wait_until(lambda: reader.rep.connections == 0, "the reader to notice the dead server")

        js2, info2 = await procs.js_serve([spec])  # same storage, new port
        assert info2["cores"][0]["key"] == info["cores"][0]["key"]
        assert info2["cores"][0]["length"] == len(blocks)
        assert info2["port"] != 0
        assert await js2.append(0, more) == len(blocks) + len(more)
        arrived: list[int] = []
        reader.rep.replicator(copy).on_block(arrived.append)
        await reader.connect(info2["port"])
        total = len(blocks) + len(more)
        reader.rep.download(copy)
        await copy.wait_for_length(total, timeout=WAIT)
        await reader.rep.wait_downloaded(copy, total, timeout=WAIT)
        assert [copy.get(i) for i in range(total)] == blocks + more
        assert sorted(arrived) == list(range(have, total))  # only what it lacked came over again
        assert reader.errors == []


@COMPAT
async def test_js_resumes_after_python_server_killed(compat: bool, tmp_path: Path) -> None:
    blocks = make_blocks(50, "py-reconnect")
    more = make_blocks(10, "py-reconnect-more")
    have = 30
    total = len(blocks) + len(more)
    spec = {"seed": seed_of("py-js-reconnect").hex(), "compat": compat, "blocks": hexes(blocks)}
    db = tmp_path / "writer.sqlite"
    async with Processes(tmp_path) as procs:
        server, info = await procs.py_serve(db, [spec])
        key = bytes.fromhex(info["cores"][0]["key"])
        reader_spec = js_reader(tmp_path, "r", key, compat)
        first = await procs.js_fetch(info["port"], [{**reader_spec, "range": [0, have]}])
        done1 = (await first.expect("done"))["cores"][0]
        assert done1["stored"] == list(range(have))
        assert await first.wait_exit() == 0

        await server.kill()
        server2, info2 = await procs.py_serve(db, [spec])
        assert info2["cores"][0] == info["cores"][0]  # same key, same length: the kill lost nothing
        assert await server2.append(0, more) == total

        second = await procs.js_fetch(info2["port"], [reader_spec])  # same JS storage
        done2 = (await second.expect("done"))["cores"][0]
        assert done2["length"] == total
        assert done2["digests"] == [sha(b) for b in blocks + more]
        assert done2["stored"] == list(range(total))
        await wait_until(lambda: len(server2.named("request")) >= total - have, "the request log")
        asked = sorted(e["index"] for e in server2.named("request"))
        assert asked == list(range(have, total))  # the JS reader asked only for what it lacked
        assert server.named("error") == [] and server2.named("error") == []


# --- on-demand get ------------------------------------------------------------------------------


@COMPAT
async def test_python_gets_single_blocks_from_js_on_demand(compat: bool, tmp_path: Path) -> None:
    blocks = make_blocks(25, "js-get")
    async with Processes(tmp_path) as procs, Node() as reader:
        js, info = await procs.js_serve([js_writer(tmp_path, "w", compat, blocks)])
        copy = reader.store.get(key=bytes.fromhex(info["cores"][0]["key"]))
        await reader.connect(info["port"])
        assert await reader.rep.get(copy, 17, timeout=WAIT) == blocks[17]
        assert await reader.rep.get(copy, 0, timeout=WAIT) == blocks[0]
        assert stored_indexes(copy) == [0, 17]
        pending = asyncio.ensure_future(reader.rep.get(copy, 26, timeout=WAIT))
        await asyncio.sleep(0.05)
        assert not pending.done()
        later = make_blocks(2, "js-get-later")
        await js.append(0, later)
        assert await asyncio.wait_for(pending, WAIT) == later[1]
        assert stored_indexes(copy) == [0, 17, 26]
        assert reader.errors == []
