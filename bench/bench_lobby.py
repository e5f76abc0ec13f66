"""Join latency through each lobby option on loopback: p50/p95 over sequential joins.

Measured from the guest's first lobby call (read host.offer.bin) to the host's welcome (data
channel open), with the replication connection already up: admission, the sealed offer and
answer through the archives, and WebRTC (ICE/DTLS/SCTP on 127.0.0.1).

    python bench/bench_lobby.py [joins]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hyperlobby.lobby import join
from lobby_helpers import close_user, connect, guest_side, host, leave, make_user, rtc_guest


async def run(kind: str, joins: int) -> list[float]:
    h = await make_user("host", listen=True)
    hosted = await host(h, kind, max_peers=joins + 1)
    times: list[float] = []
    users = []
    guests = []
    try:
        for _ in range(joins):
            u = await make_user("g")
            users.append(u)
            await connect(u, h)
            g = rtc_guest(u)
            guests.append(g)
            lobby = guest_side(u, kind, hosted.lobby.key)
            t0 = time.perf_counter()
            await join(lobby, g)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        for g in guests:
            await leave(g)
        await hosted.session.close()
        for u in [*users, h]:
            await close_user(u)
    return times


def main(quick: bool = False, joins: int | None = None) -> None:
    joins = joins or (3 if quick else 20)
    for kind in ("drive", "log"):
        t = sorted(asyncio.run(run(kind, joins)))
        p95 = t[min(len(t) - 1, round(0.95 * (len(t) - 1)))]
        print(f"{kind:5} lobby: join p50 {statistics.median(t):6.1f} ms  p95 {p95:6.1f} ms  (n={len(t)})")


if __name__ == "__main__":
    main(joins=int(sys.argv[1]) if len(sys.argv) > 1 else None)
