"""Three users on loopback, each with a real ``hyperlobby serve`` node process.

A and B befriend C; C hosts; A and B see the session, then C's peer count change; C's node is
killed (SIGKILL) and the session turns stale by its heartbeat; C comes back, hosts again and
stops cleanly, and the session disappears. Heartbeats are 0.4 s here (stale after 2 x 0.4 + 0.4).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

from conftest import ROOT
from hyperlobby.social.control import call
from social_helpers import CLI, WAIT, NodeProcs, friends, make_identity, sessions, until

FAST = ["--interval", "0.4", "--grace", "0.4"]


def _short_home(tmp_path: Path, name: str) -> Path:
    return tmp_path / name


async def test_three_users_on_loopback(tmp_path: Path) -> None:
    ha, hb, hc = (_short_home(tmp_path, n) for n in "abc")
    url_c = make_identity(hc, "Carol")
    make_identity(ha, "Alice", [url_c])
    make_identity(hb, "Bob", [url_c])
    lobby = "dat://" + "ab" * 32

    async with NodeProcs() as nodes:
        a = await nodes.start("a", ha, "--listen", "127.0.0.1:0", *FAST)
        b = await nodes.start("b", hb, "--listen", "127.0.0.1:0", *FAST)
        c_args = ["--peer", a["listen"], "--peer", b["listen"], *FAST]
        await nodes.start("c", hc, *c_args)

        # the control socket is the user's only
        mode = stat.S_IMODE(os.stat(ha / "node.sock").st_mode)
        assert mode == 0o600

        # A and B see C (online, with her profile) before anything is hosted
        for h in (ha, hb):
            await until(lambda h=h: friends(h), lambda fs: fs[0]["status"] == "online", "C online")
            assert (await friends(h))[0]["name"] == "Carol"

        # C starts hosting: both friends see the session
        await call(hc, "host.start", {"name": "Game night", "url": lobby, "max_peers": 4, "protected": True})
        for h in (ha, hb):
            [s] = await until(lambda h=h: sessions(h), lambda ss: len(ss) == 1, "C's session")
            assert s["name"] == "Game night" and s["host_name"] == "Carol" and s["protected"] is True
            assert (s["peers"], s["max_peers"], s["state"], s["online"]) == (0, 4, "live", True)
            assert s["host"] == url_c

        # the CLI prints the same through the node
        proc = await asyncio.create_subprocess_exec(
            *CLI, "sessions", "--home", str(ha), "--json",
            stdout=asyncio.subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
        assert proc.returncode == 0 and json.loads(out)[0]["name"] == "Game night"

        # a peer count change propagates
        await call(hc, "host.update", {"peers": 3})
        for h in (ha, hb):
            await until(lambda h=h: sessions(h), lambda ss: ss and ss[0]["peers"] == 3, "peers=3")

        # heartbeats keep it live across several intervals
        beats = (await call(hc, "status"))["heartbeats"]
        await until(lambda: call(hc, "status"), lambda st: st["heartbeats"] >= beats + 3, "heartbeats")
        assert len(await sessions(ha)) == 1

        # C's host is killed: the session goes stale by its heartbeat (and C is offline)
        await nodes.kill("c")
        for h in (ha, hb):
            await until(lambda h=h: sessions(h), lambda ss: ss == [], "C's session stale (hidden)")
            [stale] = await sessions(h, include_stale=True)
            assert stale["state"] == "stale" and stale["peers"] == 3
            [carol] = await until(
                lambda h=h: friends(h), lambda fs: fs[0]["status"] == "offline", "C offline"
            )
            assert carol["name"] == "Carol"  # last known profile

        # C comes back: a leftover session.json from the crash is removed at start
        await nodes.start("c", hc, *c_args)
        for h in (ha, hb):
            await until(lambda h=h: sessions(h, include_stale=True), lambda ss: ss == [], "leftover removed")
        await call(hc, "host.start", {"name": "Round two", "url": lobby, "max_peers": 2})
        for h in (ha, hb):
            await until(
                lambda h=h: sessions(h), lambda ss: ss and ss[0]["name"] == "Round two", "new session"
            )

        # C stops cleanly: the session disappears
        assert (await call(hc, "host.stop"))["removed"] is True
        for h in (ha, hb):
            await until(lambda h=h: sessions(h, include_stale=True), lambda ss: ss == [], "session gone")

        assert await nodes.stop("c") == 0
        assert not (hc / "node.sock").exists()
