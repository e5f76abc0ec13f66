"""A coarse send budget so a node never floods the network with requests.

Theory of operation
-------------------
Time is cut into slots (the driver calls :meth:`CongestionWindow.drain` every 750 ms, as
dht-rpc does). A slot may start at most ``max_window`` requests and the last four slots
together at most ``2 * max_window``; a response or a failure gives one unit back to the
current slot. Requests that find the window full wait in the node's queue until a drain frees
room. The effect is roughly "at most 80 requests in flight per 750 ms", which bounds what a
burst of queries (each with its own concurrency) can put on the wire.
"""

from __future__ import annotations

from typing import Final

DEFAULT_MAX_WINDOW: Final = 80
DRAIN_INTERVAL: Final = 0.75
_SLOTS: Final = 4


class CongestionWindow:
    """Counts sends per slot over the last four slots."""

    def __init__(self, max_window: int = DEFAULT_MAX_WINDOW) -> None:
        self.max_window = max_window
        self._i = 0
        self._total = 0
        self._slots = [0] * _SLOTS

    def full(self) -> bool:
        return self._total >= 2 * self.max_window or self._slots[self._i] >= self.max_window

    def send(self) -> None:
        self._total += 1
        self._slots[self._i] += 1

    def recv(self) -> None:
        """A request finished (answered or given up): free its unit in the current slot."""
        if self._slots[self._i] > 0:
            self._slots[self._i] -= 1
            self._total -= 1

    def drain(self) -> None:
        """Move to the next slot, forgetting the oldest one."""
        self._i = (self._i + 1) % _SLOTS
        self._total -= self._slots[self._i]
        self._slots[self._i] = 0

    def clear(self) -> None:
        self._i = 0
        self._total = 0
        self._slots = [0] * _SLOTS
