"""Python <-> Python replication over real TCP: full, sparse, live, several cores, reconnects, gets.

Each test runs for manifest (default) cores and compat cores. The writer and reader are separate
Stores with their own Replication; the reconnect test runs the writer in a child process
(``tests/replication_peer.py``) with an SQLite store, kills it with SIGKILL and restarts it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hyperlobby.errors import BlockNotAvailableError
from replication_helpers import (
    WAIT,
    Node,
    Processes,
    hexes,
    make_blocks,
    new_writer,
    requests_counter,
    seed_of,
    stored_indexes,
    wait_stored,
    wait_until,
)

COMPAT = pytest.mark.parametrize("compat", [False, True], ids=["manifest", "compat"])


@COMPAT
@pytest.mark.parametrize("writer_dials", [False, True], ids=["reader-dials", "writer-dials"])
async def test_full_download(compat: bool, writer_dials: bool) -> None:
    blocks = make_blocks(120, "full")
    async with Node() as writer, Node() as reader:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        copy = reader.store.get(key=core.key)
        reader.rep.add(copy)
        if writer_dials:
            await writer.connect(await reader.listen())
        else:
            await reader.connect(await writer.listen())

        assert await reader.fetch_all(copy) == len(blocks)
        assert [copy.get(i) for i in range(len(blocks))] == blocks
        assert copy.contiguous_length == len(blocks)
        assert copy.roots == core.roots and copy.signature == core.signature
        assert writer.errors == [] and reader.errors == []


@COMPAT
async def test_sparse_range(compat: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    requests = requests_counter(monkeypatch)
    blocks = make_blocks(80, "sparse")
    start, end = 23, 51
    async with Node() as writer, Node() as reader:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        copy = reader.store.get(key=core.key)
        await reader.connect(await writer.listen())

        assert await reader.rep.update(copy, timeout=WAIT) == len(blocks)
        reader.rep.download(copy, start, end)
        await wait_stored(copy, range(start, end))

        assert stored_indexes(copy) == list(range(start, end))
        assert not copy.has(start - 1) and not copy.has(end)
        assert [copy.get(i) for i in range(start, end)] == blocks[start:end]
        with pytest.raises(BlockNotAvailableError):
            copy.get(0)
        # The writer was asked for exactly the range, each block once.
        assert sorted(requests[core.discovery_key]) == list(range(start, end))
        assert writer.errors == [] and reader.errors == []


@COMPAT
async def test_live_appends(compat: bool) -> None:
    blocks = make_blocks(30, "live")
    fresh = make_blocks(6, "live-new")
    async with Node() as writer, Node() as reader:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        copy = reader.store.get(key=core.key)
        await reader.connect(await writer.listen())
        await reader.fetch_all(copy)
        reader.rep.download(copy)  # everything, following the writer

        for i, block in enumerate(fresh):
            index = len(blocks) + i
            core.append(block)
            await copy.wait_for_length(index + 1, timeout=WAIT)
            await wait_stored(copy, [index])
            assert copy.get(index) == block
        # An append of several blocks at once arrives too.
        core.append(make_blocks(3, "live-batch"))
        await wait_stored(copy, range(core.length))
        assert copy.length == core.length == len(blocks) + len(fresh) + 3
        assert writer.errors == [] and reader.errors == []


@COMPAT
async def test_three_cores_one_connection(compat: bool) -> None:
    sizes = [1, 57, 9]
    async with Node() as writer, Node() as reader:
        cores = []
        for n, size in enumerate(sizes):
            core = new_writer(writer.store, compat, f"core-{n}")
            core.append(make_blocks(size, f"three-{n}"))
            writer.rep.add(core)
            cores.append(core)
        copies = [reader.store.get(key=core.key) for core in cores]
        for copy in copies:
            reader.rep.add(copy)
        await reader.connect(await writer.listen())

        lengths = await asyncio.gather(*(reader.fetch_all(copy) for copy in copies))
        assert lengths == sizes
        for n, copy in enumerate(copies):
            assert [copy.get(i) for i in range(copy.length)] == make_blocks(sizes[n], f"three-{n}")
        assert reader.rep.connections == 1 and writer.rep.connections == 1


@COMPAT
async def test_reader_opening_cores_later_on_a_live_connection(compat: bool) -> None:
    """A core the reader adds after connecting is opened on the existing connection."""
    async with Node() as writer, Node() as reader:
        first = new_writer(writer.store, compat, "first")
        second = new_writer(writer.store, compat, "second")
        first.append(make_blocks(4, "late-a"))
        second.append(make_blocks(7, "late-b"))
        writer.rep.add(first)
        writer.rep.add(second)
        copy1 = reader.store.get(key=first.key)
        reader.rep.add(copy1)
        await reader.connect(await writer.listen())
        await reader.fetch_all(copy1)

        copy2 = reader.store.get(key=second.key)
        reader.rep.add(copy2)
        assert await reader.fetch_all(copy2) == 7
        assert [copy2.get(i) for i in range(7)] == make_blocks(7, "late-b")
        assert reader.rep.connections == 1


@COMPAT
async def test_reconnect_after_server_killed(compat: bool, tmp_path: Path) -> None:
    """Kill -9 the writer process mid-life, restart it on its SQLite store: the reader resumes
    and asks the new process only for blocks it does not hold yet."""
    blocks = make_blocks(60, "reconnect")
    more = make_blocks(15, "reconnect-more")
    have = 40
    spec = {"seed": seed_of("py-reconnect").hex(), "compat": compat, "blocks": hexes(blocks)}
    db = tmp_path / "writer.sqlite"
    async with Processes(tmp_path) as procs, Node() as reader:
        server, info = await procs.py_serve(db, [spec])
        key = bytes.fromhex(info["cores"][0]["key"])
        copy = reader.store.get(key=key)
        reader.rep.add(copy)
        await reader.connect(info["port"])
        assert await reader.rep.update(copy, timeout=WAIT) == len(blocks)
        reader.rep.download(copy, 0, have)
        await reader.rep.wait_downloaded(copy, have, timeout=WAIT)
        await wait_until(lambda: len(server.named("request")) >= have, "the request log")
        first_requests = [e["index"] for e in server.named("request")]
        assert sorted(first_requests) == list(range(have))

        await server.kill()
        await wait_until(lambda: reader.rep.connections == 0, "the reader to notice the dead server")

        server2, info2 = await procs.py_serve(db, [spec])
        assert info2["cores"][0]["key"] == key.hex()
        assert info2["cores"][0]["length"] == len(blocks)  # nothing lost to the kill
        assert await server2.append(0, more) == len(blocks) + len(more)
        arrived: list[int] = []
        reader.rep.replicator(copy).on_block(arrived.append)
        await reader.connect(info2["port"])
        total = len(blocks) + len(more)
        reader.rep.download(copy)
        await copy.wait_for_length(total, timeout=WAIT)
        await reader.rep.wait_downloaded(copy, total, timeout=WAIT)

        assert [copy.get(i) for i in range(total)] == blocks + more
        assert sorted(arrived) == list(range(have, total))
        await wait_until(lambda: len(server2.named("request")) >= total - have, "the request log")
        again = [e["index"] for e in server2.named("request")]
        assert sorted(again) == list(range(have, total))  # nothing it had was asked for again
        assert server2.named("error") == []


@COMPAT
async def test_get_on_demand_waits_for_the_block(compat: bool) -> None:
    blocks = make_blocks(20, "get")
    async with Node() as writer, Node() as reader:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        copy = reader.store.get(key=core.key)
        await reader.connect(await writer.listen())

        # A block the writer has: fetched and verified on demand, and nothing else is stored.
        assert await reader.rep.get(copy, 13, timeout=WAIT) == blocks[13]
        assert stored_indexes(copy) == [13]
        # A block that does not exist yet: the get waits until the writer appends it.
        pending = asyncio.ensure_future(reader.rep.get(copy, 21, timeout=WAIT))
        await asyncio.sleep(0.05)
        assert not pending.done()
        core.append(make_blocks(2, "get-later"))
        assert await asyncio.wait_for(pending, WAIT) == make_blocks(2, "get-later")[1]
        assert stored_indexes(copy) == [13, 21]


@COMPAT
async def test_get_without_a_peer_times_out(compat: bool) -> None:
    async with Node() as writer, Node() as reader:
        core = new_writer(writer.store, compat)
        core.append(make_blocks(3, "lonely"))
        copy = reader.store.get(key=core.key)
        with pytest.raises(BlockNotAvailableError):
            await reader.rep.get(copy, 0, timeout=0.2)
        assert copy.length == 0 and not copy.has(0)
        # Connected, but asking past the writer's length: still a clean timeout, then it works.
        writer.rep.add(core)
        await reader.connect(await writer.listen())
        with pytest.raises(BlockNotAvailableError):
            await reader.rep.get(copy, 3, timeout=0.3)
        assert await reader.rep.get(copy, 2, timeout=WAIT) == make_blocks(3, "lonely")[2]


async def test_thousands_of_blocks() -> None:
    blocks = make_blocks(3000, "big")
    async with Node() as writer, Node() as reader:
        core = new_writer(writer.store, False)
        core.append(blocks)
        writer.rep.add(core)
        copy = reader.store.get(key=core.key)
        await reader.connect(await writer.listen())
        assert await reader.fetch_all(copy) == len(blocks)
        assert [copy.get(i) for i in range(len(blocks))] == blocks
        assert writer.errors == [] and reader.errors == []
