"""The iterative Kademlia lookup, without sockets or clocks.

Theory of operation
-------------------
A query walks towards ``target``: it asks the nodes it knows (closest first) and every reply
may name *closer nodes*, which become candidates. It keeps the ``k`` closest nodes that
actually answered (``closest_replies``, sorted by XOR distance to the target) and only visits
a candidate while it could still enter that set, so the walk stops by itself once nobody
closer is left. At most ``concurrency`` requests are in flight.

The engine is sans-IO: the driver asks :meth:`Query.next_visits` which addresses to send to,
and reports back with :meth:`on_reply` or :meth:`on_failure`. Failures that were timeouts
return *down hints*: (node to tell, node that is down) pairs, so the nodes that pointed us at
a dead node can check it and drop it from their tables, as dht-rpc's DOWN_HINT does.

Bounds: ``max_visits`` caps the requests one query may send, and ``deadline`` (on whatever
clock the driver uses: time is passed in, never read) ends it: :meth:`next_visits` and
:meth:`expired` take ``now``. The driver also stops *waiting* at the deadline, so a query ends
in bounded count and time whatever the network tells it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hyperlobby.swarm.dht_rpc.messages import Address, Response, peer_id
from hyperlobby.swarm.dht_rpc.routing import K, xor_distance


@dataclass(frozen=True, slots=True)
class QueryReply:
    """A successful answer during a query: who answered (with the id they proved) and what."""

    address: Address
    id: bytes | None
    response: Response


@dataclass(frozen=True, slots=True)
class DownHint:
    """Tell ``tell`` that ``down`` did not answer us."""

    tell: Address
    down: Address


class Query:
    """State of one lookup toward ``target``."""

    def __init__(
        self,
        target: bytes,
        *,
        own_id: bytes | None = None,
        k: int = K,
        concurrency: int = 10,
        max_visits: int = 256,
        deadline: float | None = None,
        command: int = 2,
        value: bytes | None = None,
        internal: bool = True,
        accept: Callable[[Address], bool] | None = None,
    ) -> None:
        self.target = target
        # what is being asked of every node (kept so a commit can repeat it with tokens)
        self.command = command
        self.value = value
        self.internal = internal
        self.accept = accept  # a filter for addresses learnt from replies (JS's filterNode)
        self.own_id = own_id
        self.k = k
        self.concurrency = concurrency
        self.max_visits = max_visits
        self.deadline = deadline
        self.closest_replies: list[QueryReply] = []
        self.replies: list[QueryReply] = []
        self.successes = 0
        self.errors = 0
        self.visits = 0
        self.inflight = 0
        self._pending: list[tuple[int, Address]] = []
        self._seen: dict[Address, list[Address]] = {}
        self._done: set[Address] = set()
        self._down: set[Address] = set()
        self._finished = False

    # --- candidates ---------------------------------------------------------------------------

    def _distance(self, id: bytes) -> int:
        return xor_distance(self.target, id)

    def _could_enter(self, id: bytes) -> bool:
        if len(self.closest_replies) < self.k:
            return True
        worst = self.closest_replies[-1].id
        assert worst is not None
        return self._distance(id) < self._distance(worst)

    def add_candidate(
        self, address: Address, *, id: bytes | None = None, referrer: Address | None = None
    ) -> bool:
        """Offer a node to visit (from the table, the bootstrap list, or a reply); True if closer.

        Bootstrap addresses are offered without an id and always visited: whether they have one
        is only learnt from their reply.
        """
        node_id = id if id is not None else peer_id(address.host, address.port)
        if self.own_id is not None and node_id == self.own_id:
            return False
        closer = self._could_enter(node_id)
        refs = self._seen.get(address)
        if refs is not None:
            if referrer is not None and address not in self._done:
                refs.append(referrer)
            return closer
        if not closer:
            return False
        self._seen[address] = [] if referrer is None else [referrer]
        self._pending.append((self._distance(node_id), address))
        self._pending.sort(key=lambda item: item[0], reverse=True)  # pop() takes the closest
        return True

    # --- driving ------------------------------------------------------------------------------

    def expired(self, now: float) -> bool:
        """True (and the query finished) once ``now`` has reached the deadline."""
        if self.deadline is not None and now >= self.deadline:
            self._finished = True
        return self._finished

    def next_visits(self, now: float | None = None) -> list[Address]:
        """Addresses to send the query to now (respecting concurrency, budget and deadline)."""
        out: list[Address] = []
        if now is not None and self.expired(now):
            return out
        while (
            not self._finished
            and self._pending
            and self.inflight < self.concurrency
            and self.visits < self.max_visits
        ):
            distance, address = self._pending.pop()
            if len(self.closest_replies) >= self.k:
                worst = self.closest_replies[-1].id
                assert worst is not None
                if distance >= self._distance(worst):
                    continue
            self.inflight += 1
            self.visits += 1
            out.append(address)
        return out

    def on_reply(self, address: Address, from_id: bytes | None, response: Response) -> None:
        """Record an answer from ``address`` (``from_id`` already checked against the address)."""
        self.inflight -= 1
        self._done.add(address)
        self._seen[address] = []
        if response.error == 0:
            self.successes += 1
        else:
            self.errors += 1
        reply = QueryReply(address, from_id, response)
        if response.error == 0:
            self.replies.append(reply)
            if from_id is not None and self._could_enter(from_id):
                self._push_closest(reply)
        # A table's closest() is picked row by row, not sorted by distance to the target, so a
        # farther entry can precede a closer one: look at all of them (a well-behaved node
        # sends at most k; more than a few k is noise we do not need to read).
        for node in response.closer_nodes[: 4 * self.k]:
            if self.own_id is not None and peer_id(node.host, node.port) == self.own_id:
                continue  # responders list us too once we are in their table
            if self.accept is not None and not self.accept(node):
                continue
            self.add_candidate(node, referrer=address)

    def on_failure(self, address: Address, *, timed_out: bool) -> list[DownHint]:
        """Record that ``address`` did not answer; returns the down hints to send, if any."""
        self.inflight -= 1
        self.errors += 1
        refs = self._seen.get(address, [])
        self._seen[address] = []
        self._done.add(address)
        if not timed_out:
            return []
        self._down.add(address)
        return [DownHint(tell=ref, down=address) for ref in refs]

    def _push_closest(self, reply: QueryReply) -> None:
        assert reply.id is not None
        if any(r.id == reply.id for r in self.closest_replies):
            return
        self.closest_replies.append(reply)
        self.closest_replies.sort(key=lambda r: self._distance(r.id or b""))
        del self.closest_replies[self.k :]

    @property
    def done(self) -> bool:
        """Nothing in flight and nothing (or no budget) left to ask."""
        if self._finished:
            return True
        if self.inflight > 0:
            return False
        return not self._pending or self.visits >= self.max_visits or not self._has_useful_pending()

    def _has_useful_pending(self) -> bool:
        if len(self.closest_replies) < self.k:
            return bool(self._pending)
        worst = self.closest_replies[-1].id
        assert worst is not None
        limit = self._distance(worst)
        return any(d < limit for d, _ in self._pending)

    def finish(self) -> None:
        """Stop the query (deadline reached or caller gave up); later replies are ignored."""
        self._finished = True

    @property
    def closest_nodes(self) -> list[Address]:
        return [r.address for r in self.closest_replies]
