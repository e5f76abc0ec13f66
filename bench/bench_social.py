"""The social layer at scale: the session directory over 1,000 friends, heartbeat latency, growth.

* **list sessions, cold**: one SQLite Store holding 1,000 friends' archives (each with
  profile.json and session.json, some of them stale); open the store, read every friend's two
  files from local blocks, validate them into a directory, and list the live sessions. This is
  what ``hyperlobby sessions`` costs without a node.
* **list sessions, warm**: the same list from a node's directory already fed (parsing happens
  when a file changes, not when listing).
* **heartbeat -> directory**: two nodes on loopback; the host rewrites session.json and we time
  until the follower's directory holds the new ``last_update`` (replication, a sparse read of the
  db and blob blocks, validation).
* **growth**: what one day of 5-minute heartbeats (288 writes) adds to an archive: payload bytes
  of the db and blobs cores, and the SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from hyperlobby.drive import Hyperdrive
from hyperlobby.social import Profile, Session
from hyperlobby.social.discovery import Address
from hyperlobby.social.identity import Heartbeat, Identity
from hyperlobby.social.node import Node, NodeOptions, local_directory
from hyperlobby.social.records import canonical_url

FULL = {"friends": 1000, "latency_rounds": 30, "beats": 288}
QUICK = {"friends": 30, "latency_rounds": 3, "beats": 20}
MIN = 60_000


def build_store(home: Path, friends: int, now: int) -> None:
    with Identity.open(home) as me:
        me.init("Bench", now)
        urls: list[str] = []
        for i in range(friends):
            drive = Hyperdrive(me.store.namespace(f"friend/{i}"))
            drive.put("/profile.json", Profile(f"Friend {i}", now - i).to_json())
            # every tenth session is stale (its host stopped beating half an hour ago)
            age = 30 * MIN if i % 10 == 0 else (i % 4) * MIN
            lobby = canonical_url(drive.key)
            drive.put("/session.json", Session(f"Room {i}", lobby, now - age, i % 8, 8).to_json())
            urls.append(canonical_url(drive.key))
        profile = me.profile()
        for u in urls:
            profile = profile.with_friend(u)
        me.save_profile(profile)


def list_numbers(friends: int) -> None:
    now = int(time.time() * 1000)
    with tempfile.TemporaryDirectory(prefix="hl-bench-social-") as tmp:
        home = Path(tmp) / "home"
        t0 = time.perf_counter()
        build_store(home, friends, now)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        with Identity.open(home) as me:
            d = local_directory(me, now)
            live = d.sessions(now)
        cold = time.perf_counter() - t0
        expected = friends - (friends + 9) // 10
        assert len(live) == expected, (len(live), expected)
        rounds = 50
        t0 = time.perf_counter()
        for _ in range(rounds):
            d.sessions(now)
        warm = (time.perf_counter() - t0) / rounds
        size = os.path.getsize(home / "store.db")
    print(f"friends                       {friends}")
    print(f"build store                   {build:8.2f} s   ({size / 1e6:.1f} MB SQLite)")
    print(
        f"list sessions, cold           {cold * 1000:8.1f} ms  "
        f"(open store, read 2 files x {friends}, validate)"
    )
    print(f"list sessions, warm           {warm * 1000:8.2f} ms  ({len(live)} live of {friends})")


async def latency_numbers(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hl-bench-social-") as tmp:
        homes = [Path(tmp) / n for n in ("host", "follower")]
        with Identity.open(homes[0]) as host:
            host.init("Host", 1)
            host_url = host.url
        with Identity.open(homes[1]) as fol:
            fol.init("Follower", 1)
            fol.save_profile(fol.profile().with_friend(host_url))
        opts = {"control_socket": False, "poll_s": 30.0, "interval_ms": 3_600_000}
        h_ident, f_ident = Identity.open(homes[0]), Identity.open(homes[1])
        h = Node(h_ident, NodeOptions(listen=Address("127.0.0.1", 0), **opts))  # type: ignore[arg-type]
        await h.start()
        assert h.listening is not None
        f = Node(f_ident, NodeOptions(peers=(h.listening,), **opts))  # type: ignore[arg-type]
        await f.start()
        key = h_ident.key
        samples: list[float] = []
        try:
            h.host("Bench room", canonical_url(b"\x01" * 32), 8)
            await _wait(f, key, lambda s: s is not None, 20.0)
            for i in range(rounds):
                t0 = time.perf_counter()
                s = h.heartbeat.set_peers(i % 8)
                await _wait(f, key, lambda got, s=s: got is not None and got.last_update == s.last_update
                            and got.peers == s.peers, 20.0)  # fmt: skip
                samples.append(time.perf_counter() - t0)
                await asyncio.sleep(0.002)  # distinct millisecond timestamps
        finally:
            await f.close()
            await h.close()
            f_ident.close()
            h_ident.close()
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
    print(
        f"heartbeat -> directory        {statistics.median(samples) * 1000:8.2f} ms median, "
        f"{p90 * 1000:.2f} ms p90 ({rounds} writes over loopback)"
    )


async def _wait(node: Node, key: bytes, ok: object, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        view = node.directory.friend(key)
        if ok(view.session if view is not None else None):  # type: ignore[operator]
            return
        if loop.time() > deadline:
            raise TimeoutError("the follower did not see the heartbeat")
        async with node.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(node.changed.wait(), 0.05)


def growth_numbers(beats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hl-bench-social-") as tmp:
        home = Path(tmp) / "home"
        clock = [1_800_000_000_000]
        with Identity.open(home) as me:
            me.init("Host", 1)
            Heartbeat(me, lambda: clock[0], interval_ms=5 * MIN).start("Room", canonical_url(b"\x02" * 32), 8)
        file0 = _disk(home)  # measured closed: the WAL is checkpointed into the database file
        with Identity.open(home) as me:
            hb = Heartbeat(me, lambda: clock[0], interval_ms=5 * MIN)
            hb.session = me.session()
            payload0 = me.archive_bytes
            blocks0 = me.drive.core.length + _blobs_length(me)
            for _ in range(beats):
                clock[0] += 5 * MIN
                hb.beat()
            payload = me.archive_bytes - payload0
            blocks = me.drive.core.length + _blobs_length(me) - blocks0
        disk = _disk(home) - file0
    per_day = 288 / beats
    print(
        f"growth per heartbeat          {payload / beats:8.0f} B payload ({blocks / beats:.0f} blocks), "
        f"{disk / beats:.0f} B on disk"
    )
    print(
        f"growth per day (288 beats)    {payload * per_day / 1024:8.1f} KiB payload, "
        f"{disk * per_day / 1024:.1f} KiB on disk"
    )


def _blobs_length(me: Identity) -> int:
    blobs = me.drive.blobs
    return 0 if blobs is None else blobs.core.length


def _disk(home: Path) -> int:
    return sum(p.stat().st_size for p in home.iterdir() if p.name.startswith("store.db"))


def main(quick: bool = False) -> None:
    cfg = QUICK if quick else FULL
    list_numbers(cfg["friends"])
    asyncio.run(latency_numbers(cfg["latency_rounds"]))
    growth_numbers(cfg["beats"])


if __name__ == "__main__":
    main()
