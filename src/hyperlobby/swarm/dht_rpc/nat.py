"""What address the network sees us at, voted on by the ``to`` fields of the replies we get.

Theory of operation
-------------------
Every dht-rpc response (and request) says which address it was sent to. Behind a NAT that is
our public mapping, and a node needs it before it can tell others where to find it (HyperDHT
puts it in handshakes and holepunch messages). Single answers can lie or be stale, so the
sampler keeps a ring of the last 16 samples, each counted twice: once as ``host:port`` and
once as ``host`` alone. A ``host:port`` that enough recent samples agree on is the answer; if
only the host is consistent the port is 0, meaning our NAT picks a new port per destination
("randomized"), which is what decides holepunching strategy upstream.

"Enough" grows with the sample count (all of the first 3, then one, two and three dissenters
allowed as the ring fills). Matching only looks a few entries back, so a change of network
wins after a handful of new samples. This mirrors npm nat-sampler so a Python and a JS node
reach the same verdict from the same samples (checked against vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

_RING = 32  # two entries per sample


@dataclass(eq=False)
class _Sample:
    host: str
    port: int
    hits: int = 1


class NatSampler:
    """Votes on our public ``host``/``port`` (``port`` 0: consistent host, inconsistent port)."""

    def __init__(self) -> None:
        self.host: str | None = None
        self.port = 0
        self.size = 0
        self._best: _Sample | None = None
        self._best_host: _Sample | None = None
        self._threshold = 0
        self._top = 0
        self._ring: list[_Sample] = []

    def add(self, host: str, port: int) -> int:
        """Record one observation; returns how many recent samples agree on exactly it."""
        full = self._bump(host, port, 2)
        host_only = self._bump(host, 0, 1)
        if len(self._ring) < _RING:
            self.size += 1
            n = self.size
            self._threshold = n - (0 if n < 4 else 1 if n < 8 else 2 if n < 12 else 3)
            self._ring += (full, host_only)
            self._top += 2
        else:
            if self._top == _RING:
                self._top = 0
            for sample in (full, host_only):
                evicted = self._ring[self._top]
                self._ring[self._top] = sample
                self._top += 1
                evicted.hits -= 1
        if self._best is None or self._best.hits < full.hits:
            self._best = full
        if self._best_host is None or self._best_host.hits < host_only.hits:
            self._best_host = host_only
        if self._best.hits >= self._threshold:
            self.host, self.port = self._best.host, self._best.port
        elif self._best_host.hits >= self._threshold:
            self.host, self.port = self._best_host.host, 0
        else:
            self.host, self.port = None, 0
        return full.hits

    def _bump(self, host: str, port: int, offset: int) -> _Sample:
        # look at the last four entries of the same kind (full or host-only)
        for i in range(4):
            j = (self._top - offset - 2 * i) & (_RING - 1)
            if j >= len(self._ring):
                break
            sample = self._ring[j]
            if sample.port == port and sample.host == host:
                sample.hits += 1
                return sample
        return _Sample(host, port)
