"""The command line on a private loopback DHT: ``hyperlobby dht bootstrap`` prints an address,
two ``hyperlobby serve --bootstrap ADDR`` nodes find each other by their archives' discovery
keys alone (no --peer, no --listen), and a friend's profile and session arrive, online."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from conftest import ROOT
from hyperlobby.social.control import call
from social_helpers import NodeProcs, friends, make_identity, sessions, until

FAST = ["--interval", "0.4", "--grace", "0.4"]


async def test_serve_finds_a_friend_through_a_loopback_dht(tmp_path: Path) -> None:
    boot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hyperlobby.cli",
        "dht",
        "bootstrap",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )
    try:
        assert boot.stdout is not None
        address = json.loads(await asyncio.wait_for(boot.stdout.readline(), 30))["bootstrap"]
        assert address.startswith("127.0.0.1:")
        ha, hb = tmp_path / "a", tmp_path / "b"
        url_b = make_identity(hb, "Bob")
        make_identity(ha, "Alice", [url_b])
        async with NodeProcs() as nodes:
            info = await nodes.start("b", hb, "--bootstrap", address, *FAST)
            assert info["listen"] is None  # no TCP address: peers come only from the DHT
            await nodes.start("a", ha, "--bootstrap", address, *FAST)
            [bob] = await until(
                lambda: friends(ha), lambda fs: fs[0]["status"] == "online", "Bob online via the DHT"
            )
            assert bob["name"] == "Bob"
            await call(hb, "host.start", {"name": "Quiz", "url": url_b, "max_peers": 3, "protected": False})
            [s] = await until(lambda: sessions(ha), lambda ss: len(ss) == 1, "Bob's session")
            assert s["name"] == "Quiz" and s["host"] == url_b
            assert await nodes.stop("a") == 0 and await nodes.stop("b") == 0
    finally:
        boot.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(boot.wait(), 15) == 0
