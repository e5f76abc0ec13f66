"""The two lobbies of the seed, behind one interface (the asyncio layer).

A hypercore has exactly one writer, so a lobby "that several users write" is one writer per
participant, joined into one view, with the host deciding whose writer belongs in it:

* :class:`DriveLobby` (seed option 1): the host's lobby is a Hyperdrive holding
  ``host.offer.bin``, ``<guest>.answer.bin`` and ``admitted/<guest>.bin`` (the guest's writer
  binding); each guest writes ``<guest>.offer.bin`` in a drive of its own. The view takes every
  name from the one writer allowed to write it, so a ``<guest>.answer.bin`` anyone else writes
  is never read. Transient files are deleted once the WebRTC connection is up.
* :class:`LogLobby` (seed option 2): the host's lobby is a hypercore log, each guest appends to
  a log of its own; every entry carries a vector clock and readers merge the logs in causal
  order (:class:`~hyperlobby.lobby.machine.CausalMerge`). Logs are append-only, so the seed's
  "transient" signals stay (sealed) and a ``connected`` entry supersedes them.

Both implement rtc's signaling seam (:class:`~hyperlobby.rtc.HostSignaling` /
:class:`~hyperlobby.rtc.GuestSignaling`); admission runs over
:mod:`~hyperlobby.lobby.admission`. Host lobbies share :class:`HostLobby`, guest lobbies
:class:`GuestLobby`; the subclasses only say where bytes live.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import KeyPair
from hyperlobby.drive import Hyperdrive
from hyperlobby.errors import DecodeError, HyperlobbyError, LobbyError
from hyperlobby.lobby.admission import GuestAdmission, HostAdmission
from hyperlobby.lobby.machine import CausalMerge, HostMachine, OfferAccepted, answer_matches
from hyperlobby.lobby.protocol import Binding, HostRecord, SignalRecord, Verdict, guest_id, password_key
from hyperlobby.social.records import canonical_url
from hyperlobby.wire.replication import Replication

log = logging.getLogger(__name__)

HOST_FILE = "/host.offer.bin"
HOST_NAMESPACE = "hyperlobby/lobby"
MAX_FILE = 96 * 1024
LOG_MAGIC = "hyperlobby-lobby-log/1"


def offer_path(guest: str) -> str:
    return f"/{guest}.offer.bin"


def answer_path(guest: str) -> str:
    return f"/{guest}.answer.bin"


def admitted_path(guest: str) -> str:
    return f"/admitted/{guest}.bin"


def signer_of(core: Hypercore) -> bytes | None:
    """The single Ed25519 key that signs ``core`` (known once its manifest is)."""
    if core.compat:
        return core.key
    m = core.manifest
    if m is None or len(m.signers) != 1:
        return None
    return m.signers[0].public_key


@dataclass(frozen=True, slots=True)
class Member:
    """Who joins: the identity archive's key and its signing key pair."""

    key: bytes
    key_pair: KeyPair

    @property
    def guest_id(self) -> str:
        return guest_id(self.key)


@dataclass(frozen=True, slots=True)
class LobbyEvent:
    """What a host lobby tells its owner: admitted / refused / offer / answered / connected /
    left / expired, with the guest and a detail."""

    kind: str
    guest: str
    detail: str = ""


# --- host ------------------------------------------------------------------------------------------


class HostLobby(ABC):
    """The host's side: implements rtc's ``HostSignaling`` plus admission."""

    kind = ""

    def __init__(
        self,
        store: Store,
        replication: Replication,
        host: Member,
        *,
        max_peers: int,
        password: str | None = None,
        on_event: Callable[[LobbyEvent], None] | None = None,
        connect_timeout: float = 60.0,
    ) -> None:
        self.store = store
        self.replication = replication
        self.host = host
        self.max_peers = max_peers
        self.on_event = on_event
        self.epoch = os.urandom(16)
        self.salt = os.urandom(16)
        key = None if password is None else password_key(password, self.salt)
        self._offers: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._open()
        self.lobby_pair = self._pair()
        self.machine = HostMachine(
            self.key, self.epoch, max_peers, password_key=key, connect_timeout=connect_timeout
        )
        self.admission = HostAdmission(
            self.machine,
            self.lobby_pair,
            salt=self.salt,
            clock=lambda: asyncio.get_running_loop().time(),
            on_admitted=self._admitted,
            on_refused=self._refused,
        )

    # where bytes live (subclasses)

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _pair(self) -> KeyPair: ...

    @property
    @abstractmethod
    def key(self) -> bytes: ...

    @abstractmethod
    def _write_start(self, record: HostRecord) -> None: ...

    @abstractmethod
    def _write_admitted(self, binding: Binding) -> None: ...

    @abstractmethod
    def _write_answer(self, guest: str, sealed: bytes) -> None: ...

    @abstractmethod
    def _write_connected(self, guest: str) -> None: ...

    @abstractmethod
    def _write_left(self, guest: str) -> None: ...

    @abstractmethod
    def _write_end(self) -> None: ...

    @abstractmethod
    async def _watch(self, binding: Binding) -> None:
        """Follow the guest's writer and feed :meth:`_offer_bytes` with each offer seen."""

    # common

    @property
    def url(self) -> str:
        return canonical_url(self.key)

    @property
    def protected(self) -> bool:
        return self.machine.protected

    async def start(self) -> HostLobby:
        self.replication.add_extension(self.admission)
        return self

    def _emit(self, kind: str, guest: str, detail: str = "") -> None:
        if self.on_event is not None:
            try:
                self.on_event(LobbyEvent(kind, guest, detail))
            except Exception:
                log.exception("lobby: on_event failed")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _admitted(self, binding: Binding) -> None:
        guest = binding.guest
        self._write_admitted(binding)
        old = self._watchers.pop(guest, None)
        if old is not None:
            old.cancel()
        self._watchers[guest] = self._spawn(self._watch(binding))
        self._emit("admitted", guest)

    def _refused(self, binding: Binding | None, verdict: Verdict) -> None:
        self._emit("refused", "" if binding is None else binding.guest, verdict.reason)

    def _offer_bytes(self, binding: Binding, data: bytes) -> None:
        """A guest's sealed offer as read from its writer: open, sequence, queue."""
        guest = binding.guest
        try:
            record = SignalRecord.open(data, self.lobby_pair, binding.writer_signer)
        except DecodeError as exc:
            self._emit("ignored", guest, str(exc))
            return
        result = self.machine.offer(guest, record)
        if isinstance(result, OfferAccepted):
            self._emit("offer", guest)
            self._offers.put_nowait((guest, result.signal))
        else:
            self._emit("ignored", guest, result.reason)

    # rtc HostSignaling

    async def publish_host(self, signal: bytes) -> None:
        self._write_start(HostRecord(self.key, self.epoch, self.host.key, self.protected, signal))
        self.replication.flush()

    async def offers(self) -> AsyncIterator[tuple[str, bytes]]:
        while (item := await self._offers.get()) is not None:
            yield item

    async def answer(self, guest_id: str, signal: bytes) -> None:
        binding = self.machine.writer_of(guest_id)
        m = self.machine.members.get(guest_id)
        if binding is None or m is None:
            return
        record = SignalRecord(self.key, self.epoch, guest_id, "answer", m.last_seq, signal)
        self._write_answer(guest_id, record.seal(self.lobby_pair, binding.writer_signer))
        self.replication.flush()
        self._emit("answered", guest_id)

    # what the session runner reports

    def connected(self, guest: str) -> None:
        if self.machine.connected(guest):
            self._write_connected(guest)
            self.replication.flush()
            self._emit("connected", guest)

    def left(self, guest: str) -> None:
        if self.machine.left(guest):
            watcher = self._watchers.pop(guest, None)
            if watcher is not None:
                watcher.cancel()
            self._write_left(guest)
            self.replication.flush()
            self._emit("left", guest)

    def expire(self) -> list[str]:
        gone = self.machine.expire(asyncio.get_running_loop().time())
        for guest in gone:
            watcher = self._watchers.pop(guest, None)
            if watcher is not None:
                watcher.cancel()
            self._write_left(guest)
            self._emit("expired", guest)
        return gone

    async def close(self) -> None:
        """End the session: no more admissions, the lobby says so, offers() ends."""
        if self.machine.closed:
            return
        self.machine.close()
        self._offers.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(HyperlobbyError):
            self._write_end()
        self.replication.flush()


# --- guest -----------------------------------------------------------------------------------------


class GuestLobby(ABC):
    """A guest's side: implements rtc's ``GuestSignaling`` plus admission."""

    kind = ""

    def __init__(
        self,
        store: Store,
        replication: Replication,
        lobby_key: bytes,
        member: Member,
        *,
        password: str | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.store = store
        self.replication = replication
        self.lobby_key = lobby_key
        self.member = member
        self.password = password
        self.timeout = timeout
        self.record: HostRecord | None = None
        self.seq = 0
        self.admission: GuestAdmission | None = None
        self._open()
        self.writer_pair = self._writer_pair()

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _writer_pair(self) -> KeyPair: ...

    @property
    @abstractmethod
    def lobby_core(self) -> Hypercore: ...

    @property
    @abstractmethod
    def writer_key(self) -> bytes: ...

    @abstractmethod
    async def _read_host_record(self) -> bytes | None:
        """The current ``host.offer.bin`` bytes (None when there is none yet/anymore)."""

    @abstractmethod
    def _write_offer(self, sealed: bytes) -> int:
        """Publish the sealed offer; returns its sequence number (strictly increasing)."""

    @abstractmethod
    async def _read_answer(self) -> bytes | None: ...

    @abstractmethod
    def _remove_offer(self) -> None: ...

    @property
    def guest_id(self) -> str:
        return self.member.guest_id

    async def _changes(self, read: Callable[[], Any], timeout: float) -> Any:
        """Call ``read`` each time the lobby core grows until it returns something (bounded)."""
        core = self.lobby_core
        wake = asyncio.Event()
        unsubscribe = core.on_append(lambda _e: wake.set())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                wake.clear()
                with contextlib.suppress(HyperlobbyError):
                    value = await read()
                    if value is not None:
                        return value
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(remaining, 0.5))
        finally:
            unsubscribe()

    async def host_record(self) -> HostRecord:
        """``host.offer.bin`` (waiting for it); :class:`LobbyError` if none arrives in time."""

        async def read() -> HostRecord | None:
            data = await self._read_host_record()
            if data is None:
                return None
            record = HostRecord.decode(data)
            if record.lobby != self.lobby_key:
                raise LobbyError("host.offer.bin names another lobby")
            return record

        try:
            record: HostRecord = await self._changes(read, self.timeout)
        except TimeoutError:
            raise LobbyError(
                "no session in this lobby (host.offer.bin did not arrive)", url=self.url
            ) from None
        self.record = record
        return record

    @property
    def url(self) -> str:
        return canonical_url(self.lobby_key)

    async def admit(self) -> None:
        """Ask the host to admit our writer. Raises :class:`AdmissionRefused` with its reason."""
        record = self.record or await self.host_record()
        signer = signer_of(self.lobby_core)
        if signer is None:
            raise LobbyError("the lobby's signer is unknown (not a single-writer core)")
        if self.admission is None:
            self.admission = GuestAdmission(
                self.replication,
                self.lobby_key,
                signer,
                self.member.key,
                self.member.key_pair,
                self.writer_key,
                self.writer_pair.public_key,
                self.password,
            )
            self.replication.add_extension(self.admission)
        del record
        await self.admission.ask(self.timeout)

    # rtc GuestSignaling

    async def read_host(self) -> bytes:
        record = self.record or await self.host_record()
        return record.hello

    async def offer(self, guest_id: str, signal: bytes) -> None:
        record = self.record or await self.host_record()
        signer = signer_of(self.lobby_core)
        assert signer is not None
        # The sequence number must exceed every earlier offer of ours; the writer's length does.
        seq = self._next_seq()
        sealed = SignalRecord(self.lobby_key, record.epoch, self.guest_id, "offer", seq, signal).seal(
            self.writer_pair, signer
        )
        self.seq = self._write_offer(sealed)
        self.replication.flush()

    @abstractmethod
    def _next_seq(self) -> int: ...

    async def read_answer(self, guest_id: str) -> bytes:
        record = self.record
        signer = signer_of(self.lobby_core)
        assert record is not None and signer is not None

        async def read() -> bytes | None:
            data = await self._read_answer()
            if data is None:
                return None
            try:
                opened = SignalRecord.open(data, self.writer_pair, signer)
            except DecodeError as exc:
                log.info("lobby: ignoring an answer: %s", exc)
                return None
            if not answer_matches(opened, self.lobby_key, record.epoch, self.guest_id, self.seq):
                return None
            return opened.signal

        try:
            answer: bytes = await self._changes(read, self.timeout)
        except TimeoutError:
            raise LobbyError("the host did not answer our offer in time") from None
        return answer

    def connected(self) -> None:
        """The WebRTC connection is up: remove our transient offer."""
        with contextlib.suppress(HyperlobbyError):
            self._remove_offer()
        self.replication.flush()


# --- option 1: drives ------------------------------------------------------------------------------


class DriveHostLobby(HostLobby):
    kind = "drive"

    def _open(self) -> None:
        self.drive = Hyperdrive(self.store.namespace(HOST_NAMESPACE), replication=self.replication)
        blobs = self.drive.blobs
        if blobs is not None:
            self.replication.add(blobs.core)
        self._guest_drives: dict[str, Hyperdrive] = {}

    def _pair(self) -> KeyPair:
        pair = self.drive.core.key_pair
        assert pair is not None
        return pair

    @property
    def key(self) -> bytes:
        return self.drive.key

    def _write_start(self, record: HostRecord) -> None:
        with self.drive.batch() as b:
            for entry in list(self.drive.list("/")):
                b.delete(entry.key)  # whatever a previous run left
            b.put(HOST_FILE, record.encode())

    def _write_admitted(self, binding: Binding) -> None:
        self.drive.put(admitted_path(binding.guest), binding.encode())

    def _write_answer(self, guest: str, sealed: bytes) -> None:
        self.drive.put(answer_path(guest), sealed)

    def _write_connected(self, guest: str) -> None:
        self.drive.delete(answer_path(guest))

    def _write_left(self, guest: str) -> None:
        with self.drive.batch() as b:
            b.delete(answer_path(guest))
            b.delete(admitted_path(guest))

    def _write_end(self) -> None:
        with self.drive.batch() as b:
            for entry in list(self.drive.list("/")):
                b.delete(entry.key)

    async def _watch(self, binding: Binding) -> None:
        guest = binding.guest
        drive = Hyperdrive(self.store, binding.writer, replication=self.replication)
        self._guest_drives[guest] = drive
        self.replication.download(drive.core, 0, None)
        wake = asyncio.Event()
        unsubscribe = drive.core.on_append(lambda _e: wake.set())
        seen: bytes | None = None
        try:
            while True:
                wake.clear()
                if drive.core.length > 0:
                    data: bytes | None = None
                    with contextlib.suppress(HyperlobbyError):
                        data = await drive.get_async(offer_path(guest), timeout=5.0)
                    if data is not None and data != seen:
                        seen = data
                        self._offer_bytes(binding, data)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
        finally:
            unsubscribe()

    def files(self) -> dict[str, str]:
        """The joined view: each file name from the one writer allowed to write it."""
        out: dict[str, str] = {}
        for entry in self.drive.list("/"):
            if (
                entry.key == HOST_FILE
                or entry.key.endswith(".answer.bin")
                or entry.key.startswith("/admitted/")
            ):
                out[entry.key] = "host"
        for guest, drive in self._guest_drives.items():
            if guest in self.machine.members and drive.entry(offer_path(guest)) is not None:
                out[offer_path(guest)] = guest
        return out


class DriveGuestLobby(GuestLobby):
    kind = "drive"

    def _open(self) -> None:
        self.lobby = Hyperdrive(self.store, self.lobby_key, replication=self.replication)
        self.replication.download(self.lobby.core, 0, None)
        ns = self.store.namespace(f"{HOST_NAMESPACE}/{self.lobby_key.hex()}")
        self.writer = Hyperdrive(ns, replication=self.replication)
        blobs = self.writer.blobs
        if blobs is not None:
            self.replication.add(blobs.core)

    def _writer_pair(self) -> KeyPair:
        pair = self.writer.core.key_pair
        assert pair is not None
        return pair

    @property
    def lobby_core(self) -> Hypercore:
        return self.lobby.core

    @property
    def writer_key(self) -> bytes:
        return self.writer.key

    async def _read_host_record(self) -> bytes | None:
        if self.lobby.core.length == 0:
            return None
        return await self.lobby.get_async(HOST_FILE, timeout=5.0)

    def _next_seq(self) -> int:
        return self.writer.core.length + 1

    def _write_offer(self, sealed: bytes) -> int:
        seq = self._next_seq()
        self.writer.put(offer_path(self.guest_id), sealed)
        return seq

    async def _read_answer(self) -> bytes | None:
        if self.lobby.core.length == 0:
            return None
        return await self.lobby.get_async(answer_path(self.guest_id), timeout=5.0)

    def _remove_offer(self) -> None:
        self.writer.delete(offer_path(self.guest_id))


# --- option 2: logs --------------------------------------------------------------------------------


def _entry(kind: str, clock: dict[bytes, int], **fields: Any) -> bytes:
    obj = {"v": LOG_MAGIC, "type": kind, "clock": {k.hex(): n for k, n in clock.items()}, **fields}
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def parse_entry(data: bytes) -> tuple[str, dict[bytes, int], dict[str, Any]]:
    """(type, clock, fields) of one log entry; :class:`DecodeError` for anything else."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError("log entry is not JSON") from exc
    if not isinstance(obj, dict) or obj.get("v") != LOG_MAGIC or not isinstance(obj.get("type"), str):
        raise DecodeError("not a lobby log entry")
    raw = obj.get("clock")
    if not isinstance(raw, dict):
        raise DecodeError("log entry has no clock")
    clock: dict[bytes, int] = {}
    for k, n in raw.items():
        try:
            key = bytes.fromhex(k)
        except ValueError as exc:
            raise DecodeError("bad clock key") from exc
        if len(key) != 32 or not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise DecodeError("bad clock entry")
        clock[key] = n
    return obj["type"], clock, obj


def _b64(obj: dict[str, Any], key: str) -> bytes:
    value = obj.get(key)
    if not isinstance(value, str):
        raise DecodeError(f"log entry field {key!r} missing")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise DecodeError(f"log entry field {key!r} is not base64") from exc


class LogHostLobby(HostLobby):
    kind = "log"

    def _open(self) -> None:
        self.core = self.store.namespace(HOST_NAMESPACE).get(name="log")
        self.replication.add(self.core)
        self._guest_logs: dict[bytes, Hypercore] = {}
        self.merge = CausalMerge()
        self.order: list[tuple[bytes, int]] = []

    def _pair(self) -> KeyPair:
        pair = self.core.key_pair
        assert pair is not None
        return pair

    @property
    def key(self) -> bytes:
        return self.core.key

    def _clock(self) -> dict[bytes, int]:
        return {k: c.length for k, c in self._guest_logs.items() if c.length}

    def _append(self, kind: str, **fields: Any) -> None:
        clock = self._clock()
        self.core.append(_entry(kind, clock, **fields))
        self.merge.add(self.core.key, clock)
        self.order.extend(self.merge.ready())

    def _write_start(self, record: HostRecord) -> None:
        self._append("hello", record=base64.b64encode(record.encode()).decode())

    def _write_admitted(self, binding: Binding) -> None:
        self._append("admit", binding=binding.to_obj())

    def _write_answer(self, guest: str, sealed: bytes) -> None:
        self._append("answer", guest=guest, sealed=base64.b64encode(sealed).decode())

    def _write_connected(self, guest: str) -> None:
        self._append("connected", guest=guest)

    def _write_left(self, guest: str) -> None:
        self._append("left", guest=guest)

    def _write_end(self) -> None:
        self._append("end")

    async def _watch(self, binding: Binding) -> None:
        core = self.store.get(key=binding.writer)
        self._guest_logs[binding.writer] = core
        self.replication.download(core, 0, None)
        wake = asyncio.Event()
        unsubscribe = core.on_append(lambda _e: wake.set())
        read = 0
        try:
            while True:
                wake.clear()
                while read < core.length and core.has(read):
                    try:
                        kind, clock, fields = parse_entry(core.get(read))
                    except DecodeError:
                        kind, clock, fields = "invalid", {}, {}
                    read += 1
                    self.merge.add(binding.writer, clock)
                    if kind == "offer":
                        with contextlib.suppress(DecodeError):
                            self._offer_bytes(binding, _b64(fields, "sealed"))
                self.order.extend(self.merge.ready())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
        finally:
            unsubscribe()


class LogGuestLobby(GuestLobby):
    kind = "log"

    def _open(self) -> None:
        self.lobby = self.store.get(key=self.lobby_key)
        self.replication.add(self.lobby)
        self.replication.download(self.lobby, 0, None)
        self.writer = self.store.namespace(f"{HOST_NAMESPACE}/{self.lobby_key.hex()}").get(name="log")
        self.replication.add(self.writer)
        self._read = 0
        self._hello: bytes | None = None
        self._answers: dict[str, bytes] = {}

    def _writer_pair(self) -> KeyPair:
        pair = self.writer.key_pair
        assert pair is not None
        return pair

    @property
    def lobby_core(self) -> Hypercore:
        return self.lobby

    @property
    def writer_key(self) -> bytes:
        return self.writer.key

    async def _scan(self) -> None:
        core = self.lobby
        if core.length > self._read:
            await self.replication.update(core, timeout=5.0)
        while self._read < core.length:
            data = await self.replication.get(core, self._read, timeout=5.0)
            self._read += 1
            try:
                kind, _clock, fields = parse_entry(data)
                if kind == "hello":
                    self._hello = _b64(fields, "record")
                    self._answers.clear()
                elif kind == "end":
                    self._hello = None
                elif kind == "answer" and isinstance(fields.get("guest"), str):
                    self._answers[fields["guest"]] = _b64(fields, "sealed")
            except DecodeError:
                continue

    async def _read_host_record(self) -> bytes | None:
        await self._scan()
        return self._hello

    def _next_seq(self) -> int:
        return self.writer.length + 1

    def _write_offer(self, sealed: bytes) -> int:
        seq = self._next_seq()
        clock = {self.lobby_key: self.lobby.length}
        self.writer.append(
            _entry("offer", clock, guest=self.guest_id, sealed=base64.b64encode(sealed).decode())
        )
        return seq

    async def _read_answer(self) -> bytes | None:
        await self._scan()
        return self._answers.get(self.guest_id)

    def _remove_offer(self) -> None:
        self.writer.append(_entry("connected", {self.lobby_key: self.lobby.length}, guest=self.guest_id))


# --- which lobby ------------------------------------------------------------------------------------

KINDS = ("drive", "log")


def host_lobby(kind: str, *args: Any, **kwargs: Any) -> HostLobby:
    if kind == "drive":
        return DriveHostLobby(*args, **kwargs)
    if kind == "log":
        return LogHostLobby(*args, **kwargs)
    raise LobbyError("a lobby is 'drive' or 'log'", kind=kind)


async def detect_kind(store: Store, replication: Replication, key: bytes, *, timeout: float = 10.0) -> str:
    """Which option a lobby is, from its first block: a log lobby's entries are our JSON, a
    drive lobby's first block is a Hyperbee header."""
    core = store.get(key=key)
    try:
        first = await replication.get(core, 0, timeout=timeout)
    except HyperlobbyError as err:
        raise LobbyError("could not read the lobby (is its host online?)", url=canonical_url(key)) from err
    try:
        parse_entry(first)
    except DecodeError:
        return "drive"
    return "log"


def guest_lobby(kind: str, *args: Any, **kwargs: Any) -> GuestLobby:
    if kind == "drive":
        return DriveGuestLobby(*args, **kwargs)
    if kind == "log":
        return LogGuestLobby(*args, **kwargs)
    raise LobbyError("a lobby is 'drive' or 'log'", kind=kind)


__all__ = [
    "HOST_FILE",
    "KINDS",
    "DriveGuestLobby",
    "DriveHostLobby",
    "GuestLobby",
    "HostLobby",
    "LobbyEvent",
    "LogGuestLobby",
    "LogHostLobby",
    "Member",
    "admitted_path",
    "answer_path",
    "detect_kind",
    "guest_lobby",
    "host_lobby",
    "offer_path",
    "parse_entry",
    "signer_of",
]
