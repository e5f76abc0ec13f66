"""The JS hyperdht testnet (interop/peers/hyperdht_connect_peer.js) and Python HyperDht nodes
joined to it, shared by the hyperdht interop tests. The fixtures ``js``, ``big_js`` and ``py``
are registered for every test module by ``conftest.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hyperlobby.swarm.hyperdht.dht import HyperDht
from hyperlobby.swarm.hyperdht.server import servers_of
from js_peer import JsLinePeer

WAIT = 20.0


class JsPeer(JsLinePeer):
    """The JS testnet with hyperdht servers and clients (interop/peers/hyperdht_connect_peer.js)."""

    name = "JS hyperdht testnet"

    @classmethod
    async def start(cls, storage: Path, size: int = 3) -> JsPeer:
        return await cls.launch("hyperdht_connect_peer.js", str(storage), str(size), limit=1 << 22)

    async def call(self, timeout: float = 45, **cmd: Any) -> dict[str, Any]:
        return await super().call(timeout, **cmd)

    @property
    def bootstrap(self) -> list[str]:
        return [f"{b['host']}:{b['port']}" for b in self.info["bootstrap"]]

    async def close(self, timeout: float = 15) -> None:
        await super().close(timeout)


class Py:
    """Python HyperDht nodes joined to the JS testnet."""

    def __init__(self, js: JsPeer) -> None:
        self.js = js
        self.nodes: list[HyperDht] = []

    async def node(self, *, persistent: bool = False, **options: Any) -> HyperDht:
        for b in self.js.bootstrap:
            assert b.startswith("127.")
        dht = await HyperDht.create(
            bootstrap=self.js.bootstrap, ephemeral=False if persistent else None, **options
        )
        self.nodes.append(dht)
        return dht

    async def close(self) -> None:
        for dht in self.nodes:
            for server in servers_of(dht):
                await asyncio.wait_for(server.close(), WAIT)
        for dht in reversed(self.nodes):
            await asyncio.wait_for(dht.close(), WAIT)


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JsPeer]:
    peer = await JsPeer.start(tmp_path)
    try:
        yield peer
    finally:
        await peer.close()


@pytest.fixture
async def big_js(tmp_path: Path) -> AsyncIterator[JsPeer]:
    """A 12-node testnet: JS's NAT sampling skips the 5 newest nodes of a table of 8 or more
    and needs 3 more to agree, so on 3 nodes JS's own holepunch cannot settle (JS to JS fails
    there too); real networks are large."""
    peer = await JsPeer.start(tmp_path, 12)
    try:
        yield peer
    finally:
        await peer.close()


@pytest.fixture
async def py(js: JsPeer) -> AsyncIterator[Py]:
    p = Py(js)
    try:
        yield p
    finally:
        await p.close()
