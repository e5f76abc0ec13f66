"""The command line on a private loopback DHT: ``hyperlobby dht bootstrap`` prints an address,
two ``hyperlobby serve --bootstrap ADDR`` nodes find each other by their archives' discovery
keys alone (no --peer, no --listen), and a friend's profile and session arrive, online; a
stranger runs ``hyperlobby join URL`` against ``hyperlobby host`` with only the DHT between
them, for both lobby kinds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

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
            assert info["listen"] is None and info["dht"] == [address]  # peers come only from the DHT
            await nodes.start("a", ha, "--bootstrap", address, *FAST)
            [bob] = await until(
                lambda: friends(ha), lambda fs: fs[0]["status"] == "online", "Bob online via the DHT"
            )
            assert bob["name"] == "Bob"
            await call(hb, "host.start", {"name": "Quiz", "url": url_b, "max_peers": 3, "protected": False})
            [s] = await until(lambda: sessions(ha), lambda ss: len(ss) == 1, "Bob's session")
            assert s["name"] == "Quiz" and s["host"] == url_b
            # Bob's node dies without a word and comes straight back. Alice still holds the
            # dead connection (a silent UDX peer takes ~20 s to time out); Bob's new node finds
            # Alice by its own key and dials her, and she takes the new connection in place of
            # the old (hyperswarm's rule for a duplicate of an established connection): Bob's
            # new session reaches her at once.
            await nodes.kill("b")
            await nodes.start("b", hb, "--bootstrap", address, *FAST)
            await call(hb, "host.start", {"name": "Quiz 2", "url": url_b, "max_peers": 3, "protected": False})
            await until(
                lambda: sessions(ha),
                lambda ss: [x["name"] for x in ss] == ["Quiz 2"],
                "Bob's new session",
                10,
            )
            assert await nodes.stop("a") == 0 and await nodes.stop("b") == 0
    finally:
        boot.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(boot.wait(), 15) == 0


@pytest.mark.parametrize("kind", ["drive", "log"])
async def test_host_and_join_through_a_loopback_dht(tmp_path: Path, kind: str) -> None:
    """A guest who is not the host's friend joins by the host's archive URL, found on the DHT."""
    from hyperlobby.swarm.hyperdht.dht import HyperDht
    from test_lobby_cli import start

    boot = await HyperDht.bootstrapper("127.0.0.1", 0)
    dht = ["--bootstrap", f"127.0.0.1:{boot.address.port}"]
    url = make_identity(tmp_path / "host", "Hostess")
    make_identity(tmp_path / "guest", "Guest")
    procs = []
    try:
        host = await start(
            "host", "--home", str(tmp_path / "host"), "--name", "Room", "--max-peers", "2",
            "--lobby", kind, "--loopback", "--json", *dht,
        )  # fmt: skip
        procs.append(host)
        assert (await host.event("hosting"))["listen"] is None
        guest = await start(
            "join", url, "--home", str(tmp_path / "guest"), "--loopback", "--json", "--timeout", "20", *dht
        )
        procs.append(guest)
        await guest.event("connected")
        assert (await host.event("joined"))["peers"] == 1
        await guest.say("over the DHT")
        assert (await host.event("message"))["body"] == "over the DHT"
        assert guest.proc.stdin is not None
        guest.proc.stdin.close()
        assert await asyncio.wait_for(guest.proc.wait(), 20) == 0
        host.proc.send_signal(signal.SIGTERM)
        await host.event("ended")
        assert await asyncio.wait_for(host.proc.wait(), 20) == 0
    finally:
        for p in procs:
            await p.kill()
        await boot.close()
