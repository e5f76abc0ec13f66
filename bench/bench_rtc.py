"""WebRTC session benchmarks on loopback (aiortc, no ICE servers, 127.0.0.1 only).

Run: ``.venv/bin/python -m bench bench_rtc`` (``--quick`` for a smoke run). Two numbers:

* join latency, one guest at a time: from the guest starting its offer until the host has
  welcomed it (SDP offer + answer through an in-memory lobby, ICE, DTLS, SCTP, channel open, the
  host's welcome frame); p50 and p95;
* fan-in: N guests offering at once to one host, until every one is welcomed.

There is no JavaScript reference for this one; the anchors are bare aiortc measured on this
machine (issue 6): offer-to-open ~61 ms, 64 guests all open in ~0.47 s, 128 in ~1.2 s. Goals:
join p50 under 250 ms, 64 guests under 2 s.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from aiortc import RTCConfiguration, RTCPeerConnection

from hyperlobby.rtc import IceConfig, MemorySignaling, RtcGuest, RtcHost, join, serve
from hyperlobby.rtc.ice import pin_loopback

ICE = IceConfig.loopback()
ANCHOR_JOIN_MS = 61.0
ANCHOR_FANIN_S = {64: 0.47, 128: 1.2}
GOAL_JOIN_MS = 250.0
GOAL_64_S = 2.0


async def _join_latencies(rounds: int) -> list[float]:
    lobby = MemorySignaling()
    host = RtcHost(rounds + 1, ice=ICE)
    server = asyncio.create_task(serve(host, lobby))
    guests: list[RtcGuest] = []
    samples = []
    try:
        for i in range(rounds):
            guest = RtcGuest(f"guest-{i:03d}", ice=ICE)
            t0 = time.perf_counter()
            await join(guest, lobby, timeout=30.0)
            samples.append((time.perf_counter() - t0) * 1000)
            guests.append(guest)
    finally:
        await asyncio.gather(*(g.leave() for g in guests))
        await host.close()
        lobby.close()
        await server
    return samples


async def _fan_in(n: int) -> float:
    lobby = MemorySignaling()
    host = RtcHost(n, ice=ICE)
    server = asyncio.create_task(serve(host, lobby))
    guests = [RtcGuest(f"guest-{i:03d}", ice=ICE) for i in range(n)]
    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(join(g, lobby, timeout=60.0) for g in guests))
        elapsed = time.perf_counter() - t0
        assert host.peers == n, (host.peers, n)
    finally:
        await asyncio.gather(*(g.leave() for g in guests))
        await host.close()
        lobby.close()
        await server
    return elapsed


async def _bare_fan_in(n: int) -> float:
    """The same fan-in with bare aiortc (no room, no lobby), to read our overhead on this machine
    rather than against anchors measured elsewhere."""
    pcs: list[RTCPeerConnection] = []

    async def pair() -> None:
        guest, host = (RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2))
        pcs.extend((guest, host))
        opened = asyncio.get_running_loop().create_future()
        channel = guest.createDataChannel("bench", negotiated=True, id=0)
        channel.on("open", lambda: opened.done() or opened.set_result(None))
        pin_loopback(guest)
        await guest.setLocalDescription(await guest.createOffer())
        await host.setRemoteDescription(guest.localDescription)
        host.createDataChannel("bench", negotiated=True, id=0)
        pin_loopback(host)
        await host.setLocalDescription(await host.createAnswer())
        await guest.setRemoteDescription(host.localDescription)
        await asyncio.wait_for(opened, 60.0)

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(pair() for _ in range(n)))
        return time.perf_counter() - t0
    finally:
        await asyncio.gather(*(pc.close() for pc in pcs))


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(quick: bool = False) -> None:
    rounds = 5 if quick else 30
    samples = asyncio.run(_join_latencies(rounds))
    p50, p95 = statistics.median(samples), _pct(samples, 0.95)
    print(
        f"join latency ({rounds} sequential joins, offer → welcomed): p50 {p50:.1f} ms, p95 {p95:.1f} ms"
        f"  [bare aiortc offer→open {ANCHOR_JOIN_MS:.0f} ms; goal p50 < {GOAL_JOIN_MS:.0f} ms"
        f" {'met' if p50 < GOAL_JOIN_MS else 'MISSED'}]",
        flush=True,
    )
    for n in (2, 4) if quick else (8, 32, 64):
        elapsed = asyncio.run(_fan_in(n))
        note = ""
        if n in ANCHOR_FANIN_S:
            note = f"  [bare aiortc {ANCHOR_FANIN_S[n]:.2f} s"
            if n == 64:
                note += f"; goal < {GOAL_64_S:.0f} s {'met' if elapsed < GOAL_64_S else 'MISSED'}"
            note += "]"
        print(f"fan-in: {n:3d} guests all welcomed in {elapsed:.3f} s{note}", flush=True)
    n = 4 if quick else 64
    bare = asyncio.run(_bare_fan_in(n))
    print(f"baseline: bare aiortc, {n} pairs open in {bare:.3f} s on this machine now", flush=True)


if __name__ == "__main__":
    main()
