"""A deterministic in-memory network between two sans-IO UDX streams (no sockets, virtual time).

Each datagram sent gets a fate from ``pattern`` (while it lasts; afterwards the network is
perfect, so every run finishes): deliver after a delay, drop, or deliver twice. Delays differ
per packet, so packets overtake each other. With ``coalesce`` the datagrams due at one moment
reach a side as a real socket with UDP GRO sees them: runs of equal size (the last of a run
may be shorter) glued into one buffer, taken by ``receive_run`` and the rest one by one.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from hyperlobby.swarm.udx_protocol import StreamClosed, StreamData, StreamEnd, StreamEvent, UdxStreamState

DROP = -1
DUPLICATE = -2


@dataclass
class Side:
    state: UdxStreamState
    received: bytearray = field(default_factory=bytearray)
    ended: bool = False
    closed: StreamClosed | None = None

    def absorb(self, events: list[StreamEvent]) -> None:
        for event in events:
            if isinstance(event, StreamData):
                assert not self.ended, "data after END"
                self.received += event.data
                self.state.read_done(len(event.data))
            elif isinstance(event, StreamEnd):
                assert not self.ended, "END twice"
                self.ended = True
            elif isinstance(event, StreamClosed):
                assert self.closed is None, "closed twice"
                self.closed = event


class Network:
    def __init__(
        self,
        a: UdxStreamState,
        b: UdxStreamState,
        pattern: list[int],
        base_delay: float = 0.01,
        coalesce: bool = False,
    ):
        self.sides = [Side(a), Side(b)]
        self.coalesce = coalesce
        self.coalesced = 0  # datagrams taken by receive_run
        self.pattern = pattern
        self.base_delay = base_delay
        self.now = 0.0
        self.sent = 0
        self.delivered = 0
        self._queue: list[tuple[float, int, int, bytes]] = []
        self._counter = 0

    def _emit(self, src: int) -> None:
        for datagram in self.sides[src].state.packets_to_send(self.now):
            fate = self.pattern[self.sent] if self.sent < len(self.pattern) else 0
            self.sent += 1
            copies = 0 if fate == DROP else 2 if fate == DUPLICATE else 1
            delay = self.base_delay + (max(fate, 0) % 7) * 0.004
            for i in range(copies):
                self._counter += 1
                heapq.heappush(self._queue, (self.now + delay + i * 0.003, self._counter, 1 - src, datagram))

    def flush(self) -> None:
        self._emit(0)
        self._emit(1)

    def _deliver_coalesced(self, side: Side, datagrams: list[bytes]) -> None:
        i = 0
        while i < len(datagrams):
            segment = len(datagrams[i])
            j = i + 1
            while j < len(datagrams) and len(datagrams[j]) == segment and j - i < 64:
                j += 1
            if j < len(datagrams) and len(datagrams[j]) < segment and j - i < 64:
                j += 1  # GRO ends a run with one shorter datagram
            buffer = b"".join(datagrams[i:j])
            events, used = side.state.receive_run(buffer, segment, self.now)
            side.absorb(events)
            self.coalesced += used // segment + (1 if used % segment else 0)
            for k in range(used, len(buffer), segment):
                side.absorb(side.state.receive(buffer[k : k + segment], self.now))
            i = j

    def run(self, max_steps: int = 200_000, max_time: float = 600.0) -> None:
        """Deliver packets and fire timers until both sides closed (bounded in steps and virtual time)."""
        self.flush()
        for _ in range(max_steps):
            if all(s.closed is not None for s in self.sides) and not self._queue:
                return
            candidates = []
            if self._queue:
                candidates.append(self._queue[0][0])
            for side in self.sides:
                deadline = side.state.next_deadline()
                if deadline is not None:
                    candidates.append(deadline)
            if not candidates:
                return
            self.now = max(self.now, min(candidates))
            if self.now > max_time:
                return
            due: list[list[bytes]] = [[], []]
            while self._queue and self._queue[0][0] <= self.now:
                _, _, dst, datagram = heapq.heappop(self._queue)
                self.delivered += 1
                due[dst].append(datagram)
            for dst, datagrams in enumerate(due):
                if self.coalesce:
                    self._deliver_coalesced(self.sides[dst], datagrams)
                else:
                    for datagram in datagrams:
                        self.sides[dst].absorb(self.sides[dst].state.receive(datagram, self.now))
            for side in self.sides:
                deadline = side.state.next_deadline()
                if deadline is not None and deadline <= self.now:
                    side.absorb(side.state.on_timer(self.now))
            self.flush()
