"""One joined topic: announce ourselves under it, look up the peers announced there, repeat.

Theory of operation
-------------------
A :class:`PeerDiscovery` exists per topic; each ``swarm.join(topic)`` adds a
:class:`PeerDiscoverySession` to it with its own ``server``/``client`` wish, and the discovery
runs in the union of the live sessions' modes:

* **server**: make sure the swarm's DHT server listens, then announce our key pair under the
  topic (so lookups return us and peers dial us);
* **client**: look the topic up and hand every peer record to the swarm, which queues a dial.

A refresh runs both halves concurrently and is repeated every ~10 minutes (plus up to 2 minutes
of random jitter, so a crowd does not refresh in step); announcements on DHT nodes expire, and
peers come and go. Changing mode (a session switching from client to server, say) abandons the
refresh in flight and starts over in the new mode. When the last server session goes, the
discovery unannounces; when the last session goes, the swarm leaves the topic, which
unannounces (bounded in time) and stops the refresh timer. Numbers follow hyperswarm 4's
``lib/peer-discovery.js``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hyperlobby.errors import SwarmError

if TYPE_CHECKING:
    from hyperlobby.swarm.hyperswarm.swarm import Swarm

_log = logging.getLogger(__name__)

REFRESH_INTERVAL = 600.0  # seconds between refreshes of a topic
RANDOM_JITTER = 120.0  # added to each refresh delay, uniformly at random
DELAY_GRACE_PERIOD = 30.0  # a timer later than this was asleep (laptop lid): refresh soon instead
UNANNOUNCE_TIMEOUT = 10.0  # seconds leave() waits for the DHT to drop our announcement


class PeerDiscovery:
    """The per-topic state shared by every session that joined the topic."""

    def __init__(
        self,
        swarm: Swarm,
        topic: bytes,
        *,
        wait: Awaitable[Any] | None = None,
        on_peer: Callable[[Any], None],
        refresh_interval: float = REFRESH_INTERVAL,
        jitter: float = RANDOM_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        self.swarm = swarm
        self.topic = topic
        self.is_server = False
        self.is_client = False
        self.destroyed = False
        self.refreshes = 0  # completed refreshes (for status and tests)
        self.refresh_interval = refresh_interval
        self.jitter = jitter
        self.sessions: list[PeerDiscoverySession] = []
        self._server_sessions = 0
        self._client_sessions = 0
        self._on_peer = on_peer
        self._wait = wait
        self._rng = rng or random.Random()
        self._clock = 0  # bumped by every refresh start: an older one yields to a newer one
        self._current: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._needs_unannounce = False
        self._destroying: asyncio.Task[None] | None = None

    # --- sessions ------------------------------------------------------------------------------

    def session(self, *, server: bool = True, client: bool = True) -> PeerDiscoverySession:
        if self.destroyed:
            raise SwarmError("this topic's discovery was destroyed", topic=self.topic)
        s = PeerDiscoverySession(self)
        self.sessions.append(s)
        s.set_mode(server=server, client=client)
        self._start_refresh()
        return s

    @property
    def active(self) -> bool:
        return not self.destroyed

    # --- refreshing ----------------------------------------------------------------------------

    def _start_refresh(self) -> asyncio.Task[None]:
        """Run a refresh in the wanted mode, reusing the one in flight if the mode is unchanged."""
        server, client = self._server_sessions > 0, self._client_sessions > 0
        if self._current is not None and not self._current.done():
            if (server, client) == (self.is_server, self.is_client):
                return self._current
            self._current.cancel()  # the mode changed: the old refresh is moot
        self.is_server, self.is_client = server, client
        task = asyncio.get_running_loop().create_task(self._refresh())
        task.add_done_callback(_retrieve)
        self._current = task
        return task

    async def refresh(self) -> bool:
        """Announce and/or look up now; True if it completed without a network error."""
        if self.destroyed:
            raise SwarmError("this topic's discovery was destroyed", topic=self.topic)
        task = self._start_refresh()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # superseded by a newer refresh, not our own cancellation
                return False
            raise
        except Exception:
            return False
        return True

    async def flushed(self) -> bool:
        """Wait for the refresh in flight (our first announce/lookup); True if it succeeded."""
        listening = self.swarm.listening
        if listening is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(listening)
        task = self._current
        if task is None:
            return True
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            return await self.flushed() if self._current is not task and self.active else False
        except Exception:
            return False
        return True

    async def _refresh(self) -> None:
        self._clock += 1
        clock = self._clock
        try:
            if self._wait is not None:
                with contextlib.suppress(Exception):
                    await self._wait  # the previous discovery of this topic finishing its teardown
                self._wait = None
                if clock != self._clock or not self.active:
                    return
            announcing = self.is_server
            if announcing:
                await self.swarm.listen()
                if clock != self._clock or not self.active:
                    return
                self._needs_unannounce = True
            await self._walk(announcing)
            self.refreshes += 1
            if clock == self._clock and not announcing:
                self._needs_unannounce = False
        finally:
            if clock == self._clock and self.active:
                self._refresh_later(eager=False)

    async def _walk(self, announcing: bool) -> None:
        """One refresh's DHT work: announce and/or look up (and unannounce when we stopped serving).

        A DHT with JS's combined queries (``announce_stream``: the lookup replies of the walk,
        then the announce; ``lookup_and_unannounce``) does it in one walk, as hyperswarm does;
        otherwise the lookup and the announce/unannounce run side by side.
        """
        sw = self.swarm
        dht: Any = sw.dht
        announce_stream = getattr(dht, "announce_stream", None)
        lookup_and_unannounce = getattr(dht, "lookup_and_unannounce", None)
        if announcing and announce_stream is not None:
            await self._consume(announce_stream(self.topic, sw.key_pair, sw.relay_addresses))
            return
        if not announcing and self._needs_unannounce and lookup_and_unannounce is not None:
            await self._consume(lookup_and_unannounce(self.topic, sw.key_pair))
            return
        work: list[Awaitable[Any]] = []
        if self.is_client:
            work.append(self._consume(dht.lookup(self.topic)))
        if announcing:
            work.append(dht.announce(self.topic, sw.key_pair, sw.relay_addresses))
        elif self._needs_unannounce:
            work.append(dht.unannounce(self.topic, sw.key_pair))
        await asyncio.gather(*work)

    async def _consume(self, replies: Any) -> None:
        """Hand every peer in a query's replies to the swarm (while we are a client).

        However this ends (the last reply, a cancelled refresh, an error), the query is stopped
        here rather than left to run to its own timeout.
        """
        try:
            async for reply in replies:
                if not self.is_client or not self.active:
                    continue
                for peer in getattr(reply, "peers", ()):
                    self._on_peer(peer)
        finally:
            stop = getattr(replies, "stop", None)
            if stop is not None:  # a QueryStream: cancel its requests without waiting
                stop()

    def _refresh_later(self, *, eager: bool) -> None:
        jitter = self._rng.random() * self.jitter
        delay = jitter if eager else self.refresh_interval + jitter
        if self._timer is not None:
            self._timer.cancel()
        started = time.time()  # wall clock: a monotonic clock stops while the machine sleeps

        def fire() -> None:
            self._timer = None
            if not self.active:
                return
            if time.time() - started > delay + DELAY_GRACE_PERIOD:
                self._refresh_later(eager=True)  # we were asleep: the network has moved on
            else:
                self._start_refresh()

        self._timer = asyncio.get_running_loop().call_later(delay, fire)

    # --- teardown ------------------------------------------------------------------------------

    async def _destroy_maybe(self) -> None:
        """A session left: leave the topic if none is left, or stop announcing if no server is."""
        if self.destroyed:
            return
        try:
            if not self.sessions:
                await self.swarm.leave(self.topic)
            elif self._server_sessions == 0 and self._needs_unannounce:
                await self.refresh()
        except Exception as err:  # tearing down: a network failure is not the caller's problem
            _log.debug("leaving topic %s: %s", self.topic.hex()[:16], err)

    def destroy(self) -> asyncio.Task[None]:
        """Stop refreshing and unannounce (bounded); idempotent, returns the teardown task."""
        if self._destroying is None:
            self.destroyed = True
            self._destroying = asyncio.get_running_loop().create_task(self._abort())
            self._destroying.add_done_callback(_retrieve)
        return self._destroying

    async def _abort(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self._current
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._needs_unannounce:
            self._needs_unannounce = False
            try:
                await asyncio.wait_for(
                    self.swarm.dht.unannounce(self.topic, self.swarm.key_pair), UNANNOUNCE_TIMEOUT
                )
            except Exception as err:
                _log.debug("unannounce of %s failed: %s", self.topic.hex()[:16], err)


class PeerDiscoverySession:
    """What ``swarm.join`` returns: one caller's interest in a topic."""

    def __init__(self, discovery: PeerDiscovery) -> None:
        self.discovery = discovery
        self.is_server = False
        self.is_client = False
        self.destroyed = False

    @property
    def topic(self) -> bytes:
        return self.discovery.topic

    def set_mode(self, *, server: bool, client: bool) -> None:
        if not server and not client:
            raise SwarmError("a join must be a server, a client, or both")
        d = self.discovery
        if client != self.is_client:
            self.is_client = client
            d._client_sessions += 1 if client else -1
        if server != self.is_server:
            self.is_server = server
            d._server_sessions += 1 if server else -1

    async def refresh(self, *, server: bool | None = None, client: bool | None = None) -> bool:
        """Announce/look up again now, optionally switching this session's mode."""
        if self.destroyed:
            raise SwarmError("this join was destroyed", topic=self.topic)
        self.set_mode(
            server=self.is_server if server is None else server,
            client=self.is_client if client is None else client,
        )
        return await self.discovery.refresh()

    async def flushed(self) -> bool:
        """Wait until the topic has been announced/looked up once (True if it succeeded)."""
        return await self.discovery.flushed()

    async def destroy(self) -> None:
        """Drop this interest; the last one leaving the topic unannounces it."""
        if self.destroyed:
            return
        self.destroyed = True
        d = self.discovery
        if self.is_client:
            d._client_sessions -= 1
        if self.is_server:
            d._server_sessions -= 1
        with contextlib.suppress(ValueError):
            d.sessions.remove(self)
        await d._destroy_maybe()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's failure as seen (it is reported through refresh()/flushed())."""
    if not task.cancelled() and (err := task.exception()) is not None:
        _log.debug("discovery refresh failed: %s", err)


__all__ = ["REFRESH_INTERVAL", "PeerDiscovery", "PeerDiscoverySession"]
