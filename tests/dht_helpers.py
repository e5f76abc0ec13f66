"""A small Python-only HyperDHT on 127.0.0.1 for tests: one bootstrapper and persistent nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hyperlobby.swarm.hyperdht import HyperDht


@asynccontextmanager
async def python_dht(count: int, **options: Any) -> AsyncIterator[list[HyperDht]]:
    """``[bootstrapper, node1, ... node<count>]``, every node bootstrapped; all closed at the end.

    ``options`` go to every node (e.g. ``k=5`` so a small network still makes queries walk, and
    short request timeouts).
    """
    nodes: list[HyperDht] = []
    try:
        boot = await HyperDht.bootstrapper("127.0.0.1", **options)
        nodes.append(boot)
        for _ in range(count):
            node = HyperDht.create(bootstrap=[str(boot.address)], ephemeral=False, **options)
            nodes.append(await asyncio.wait_for(node, 10))
        await asyncio.wait_for(asyncio.gather(*(n.node.bootstrap() for n in nodes[1:])), 10)
        yield nodes
    finally:
        await asyncio.gather(*(n.close() for n in nodes))
