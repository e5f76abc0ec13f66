"""The seam between WebRTC and the lobby that carries its signals.

rtc does not know how signals travel; the lobby (archives, logs, sealing, admission) does. This
module names what rtc needs from it, as two small protocols, and gives the two loops that use
them: :func:`serve` for a host and :func:`join` for a guest. :class:`MemorySignaling` implements
both in memory for tests, benches and the demo.

The steps are the seed's:

1. the host publishes its initial signal (``host.offer.bin``: a :class:`HostHello`);
2. a guest reads it, and publishes its offer (``<guest>.offer.bin``);
3. the host reads the offer and publishes the answer, or a refusal (``<guest>.answer.bin``);
4. the guest reads the answer and connects.

Admission (capacity, password proof) is the lobby's job before step 3; :func:`serve` still asks
the host, which enforces ``max_peers`` itself and turns a refusal into a :class:`Refusal` signal
so the guest learns why instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from ..errors import AdmissionRefused, DecodeError, RtcError
from .peer import RtcGuest, RtcHost
from .signal import ROOM_PROTOCOL, HostHello, Refusal, decode_signal, encode_signal

log = logging.getLogger(__name__)


class HostSignaling(Protocol):
    """The host's side of the lobby."""

    async def publish_host(self, signal: bytes) -> None:
        """Write ``host.offer.bin``."""

    def offers(self) -> AsyncIterator[tuple[str, bytes]]:
        """Guest offers as they arrive: (guest id, ``<guest>.offer.bin``). Ends when the lobby
        closes."""
        ...

    async def answer(self, guest_id: str, signal: bytes) -> None:
        """Write ``<guest>.answer.bin``."""


class GuestSignaling(Protocol):
    """A guest's side of the lobby."""

    async def read_host(self) -> bytes:
        """Read ``host.offer.bin`` (waiting until it exists)."""
        ...

    async def offer(self, guest_id: str, signal: bytes) -> None:
        """Write ``<guest>.offer.bin``."""

    async def read_answer(self, guest_id: str) -> bytes:
        """Read ``<guest>.answer.bin`` (waiting until it exists)."""
        ...


async def answer_one(host: RtcHost, guest_id: str, offer: bytes) -> bytes:
    """The answer signal for one offer: the SDP answer, or a :class:`Refusal` saying why."""
    try:
        return await host.accept(guest_id, offer)
    except AdmissionRefused as exc:
        return encode_signal(Refusal(exc.reason, exc.message))
    except RtcError as exc:
        log.info("rtc: refused %s: %s", guest_id[:16], exc)
        return encode_signal(Refusal("bad-offer", exc.message))


async def serve(host: RtcHost, signaling: HostSignaling) -> None:
    """Publish the host's signal and answer every offer until the lobby's offers end or this
    task is cancelled. Offers are answered concurrently; a slow one does not hold up others."""
    await signaling.publish_host(encode_signal(HostHello(ROOM_PROTOCOL, host.max_peers)))
    pending: set[asyncio.Task[None]] = set()

    async def handle(guest_id: str, offer: bytes) -> None:
        try:
            await signaling.answer(guest_id, await answer_one(host, guest_id, offer))
        except Exception:
            log.exception("rtc: answering %s failed", guest_id[:16])

    try:
        async for guest_id, offer in signaling.offers():
            task = asyncio.get_running_loop().create_task(handle(guest_id, offer))
            pending.add(task)
            task.add_done_callback(pending.discard)
    finally:
        for task in pending:
            task.cancel()
        for task in list(pending):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def join(guest: RtcGuest, signaling: GuestSignaling, timeout: float = 30.0) -> None:
    """Run a guest through the four steps and wait until the host has welcomed it. Raises
    :class:`AdmissionRefused` for a refusal, :class:`RtcError` for an incompatible host, and
    :class:`TimeoutError` when any step takes longer than ``timeout``."""
    async with asyncio.timeout(timeout):
        try:
            hello = decode_signal(await signaling.read_host())
        except DecodeError as exc:
            raise RtcError("host signal is unusable") from exc
        if not isinstance(hello, HostHello) or hello.protocol != ROOM_PROTOCOL:
            raise RtcError("host speaks another room protocol", host=getattr(hello, "protocol", None))
        await signaling.offer(guest.guest_id, await guest.offer())
        await guest.complete(await signaling.read_answer(guest.guest_id))
        await guest.opened


class MemorySignaling:
    """Both sides of a lobby in one process: the files are dict entries and futures."""

    def __init__(self) -> None:
        self._host: asyncio.Future[bytes] | None = None
        self._offers: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._answers: dict[str, asyncio.Future[bytes]] = {}

    def _host_future(self) -> asyncio.Future[bytes]:
        if self._host is None:
            self._host = asyncio.get_running_loop().create_future()
        return self._host

    def _answer_future(self, guest_id: str) -> asyncio.Future[bytes]:
        future = self._answers.get(guest_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._answers[guest_id] = future
        return future

    async def publish_host(self, signal: bytes) -> None:
        future = self._host_future()
        if not future.done():
            future.set_result(signal)

    async def offers(self) -> AsyncIterator[tuple[str, bytes]]:
        while (item := await self._offers.get()) is not None:
            yield item

    async def answer(self, guest_id: str, signal: bytes) -> None:
        future = self._answer_future(guest_id)
        if not future.done():
            future.set_result(signal)

    async def read_host(self) -> bytes:
        return await asyncio.shield(self._host_future())

    async def offer(self, guest_id: str, signal: bytes) -> None:
        # A new offer makes the old answer stale (the seed's files are transient).
        self._answers.pop(guest_id, None)
        self._answer_future(guest_id)
        await self._offers.put((guest_id, signal))

    async def read_answer(self, guest_id: str) -> bytes:
        try:
            return await asyncio.shield(self._answer_future(guest_id))
        finally:
            self._answers.pop(guest_id, None)

    def close(self) -> None:
        """End :meth:`offers` (the lobby is gone)."""
        self._offers.put_nowait(None)
