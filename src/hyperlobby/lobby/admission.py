"""The admission channel: a protomux protocol of ours next to replication.

The guest opens ``hyperlobby/lobby`` with the lobby's discovery key as channel id on its
connections; only the lobby's host accepts it (every other peer declines). The host sends a
:class:`~hyperlobby.lobby.protocol.Challenge` signed by the lobby key, the guest answers with a
:class:`~hyperlobby.lobby.protocol.Request`, the host answers with a
:class:`~hyperlobby.lobby.protocol.Verdict` and closes the channel. The decisions are the
:class:`~hyperlobby.lobby.machine.HostMachine`'s; this module only moves messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from hyperlobby.crypto.hashes import discovery_key
from hyperlobby.crypto.keys import KeyPair, sign
from hyperlobby.errors import AdmissionRefused, DecodeError, LobbyError
from hyperlobby.lobby.machine import HostMachine
from hyperlobby.lobby.protocol import (
    MSG_CHALLENGE,
    MSG_REQUEST,
    MSG_VERDICT,
    PROTOCOL,
    Binding,
    Challenge,
    Request,
    Verdict,
    password_key,
    password_proof,
)
from hyperlobby.wire.protomux import (
    Channel,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelRejected,
    MuxEvent,
    RemoteOpenRequest,
)
from hyperlobby.wire.replication import Replication
from hyperlobby.wire.session import ReplicationSession

log = logging.getLogger(__name__)


def _send(session: ReplicationSession, channel: Channel, type_: int, body: bytes) -> None:
    session.queue(session.mux.send(channel, type_, body))


def _close(session: ReplicationSession, channel: Channel) -> None:
    session.queue(session.mux.close(channel))


@dataclass(slots=True)
class _HostChannel:
    nonce: bytes
    done: bool = False


class HostAdmission:
    """The host's end: challenge, decide (through the machine), answer."""

    protocol = PROTOCOL

    def __init__(
        self,
        machine: HostMachine,
        lobby_pair: KeyPair,
        *,
        salt: bytes,
        clock: Callable[[], float],
        on_admitted: Callable[[Binding], None],
        on_refused: Callable[[Binding | None, Verdict], None] | None = None,
    ) -> None:
        self.machine = machine
        self.lobby_pair = lobby_pair
        self.salt = salt
        self.clock = clock
        self.on_admitted = on_admitted
        self.on_refused = on_refused
        self.id = discovery_key(machine.lobby)

    def attached(self, session: ReplicationSession) -> None:
        pass

    def detached(self, session: ReplicationSession) -> None:
        pass

    def event(self, session: ReplicationSession, event: MuxEvent) -> None:
        if isinstance(event, RemoteOpenRequest):
            if event.id == self.id and not self.machine.closed:
                session.mux.open_channel(
                    PROTOCOL, event.id, message_types=3, user_data=_HostChannel(os.urandom(32))
                )
            else:
                session.mux.decline(event)
            return
        channel = event.channel
        state = channel.user_data
        if not isinstance(state, _HostChannel):
            return
        if isinstance(event, ChannelOpened):
            challenge = Challenge.make(
                session.handshake_hash,
                self.machine.lobby,
                self.lobby_pair,
                self.machine.epoch,
                state.nonce,
                self.machine.protected,
                self.salt if self.machine.protected else b"",
            )
            _send(session, channel, MSG_CHALLENGE, challenge.encode())
        elif isinstance(event, ChannelMessage) and event.type == MSG_REQUEST and not state.done:
            state.done = True
            binding: Binding | None = None
            try:
                request = Request.decode(event.body)
                binding = request.binding
                verdict = self.machine.admit(request, session.handshake_hash, state.nonce, self.clock())
            except DecodeError as exc:
                verdict = Verdict(False, "bad-request", str(exc)[:200])
            if verdict.ok and binding is not None:
                self.on_admitted(binding)
            elif self.on_refused is not None:
                self.on_refused(binding, verdict)
            _send(session, channel, MSG_VERDICT, verdict.encode())
            _close(session, channel)


class GuestAdmission:
    """The guest's end: ask every connection; the lobby's host is the one that answers."""

    protocol = PROTOCOL

    def __init__(
        self,
        replication: Replication,
        lobby: bytes,
        lobby_signer: bytes,
        identity: bytes,
        identity_pair: KeyPair,
        writer: bytes,
        writer_signer: bytes,
        password: str | None = None,
    ) -> None:
        self.replication = replication
        self.lobby = lobby
        self.lobby_signer = lobby_signer
        self.identity = identity
        self.identity_pair = identity_pair
        self.binding = Binding.make(lobby, identity, identity_pair, writer, writer_signer)
        self.password = password
        self.id = discovery_key(lobby)
        self._sessions: set[ReplicationSession] = set()
        self._asking = False
        self._verdict: asyncio.Future[Verdict] | None = None
        self._keys: dict[bytes, bytes] = {}

    def attached(self, session: ReplicationSession) -> None:
        self._sessions.add(session)
        if self._asking:
            self._open(session)

    def detached(self, session: ReplicationSession) -> None:
        self._sessions.discard(session)

    def _open(self, session: ReplicationSession) -> None:
        if session.closed or session.mux.opened(PROTOCOL, self.id):
            return
        session.mux.open_channel(PROTOCOL, self.id, message_types=3, user_data=self)

    async def ask(self, timeout: float) -> None:
        """Ask to be admitted; returns when admitted, raises :class:`AdmissionRefused` (with the
        host's reason) or :class:`LobbyError` when no host answered in time."""
        loop = asyncio.get_running_loop()
        self._verdict = loop.create_future()
        self._asking = True
        for session in list(self._sessions):
            self._open(session)
        self.replication.flush()
        try:
            verdict = await asyncio.wait_for(asyncio.shield(self._verdict), timeout)
        except TimeoutError:
            raise LobbyError(
                "the host did not answer the admission request in time", timeout=timeout
            ) from None
        finally:
            self._asking = False
        if not verdict.ok:
            raise AdmissionRefused(verdict.message or "the host refused us", reason=verdict.reason)

    def event(self, session: ReplicationSession, event: MuxEvent) -> None:
        if isinstance(event, RemoteOpenRequest):
            session.mux.decline(event)
            return
        channel = event.channel
        if channel.user_data is not self:
            return
        if isinstance(event, ChannelMessage):
            if event.type == MSG_CHALLENGE:
                self._on_challenge(session, channel, event.body)
            elif event.type == MSG_VERDICT:
                try:
                    verdict = Verdict.decode(event.body)
                except DecodeError:
                    verdict = Verdict(False, "bad-verdict", "the host's answer was unreadable")
                if self._verdict is not None and not self._verdict.done():
                    self._verdict.set_result(verdict)
        elif isinstance(event, ChannelRejected | ChannelClosed):
            pass  # not the host, or done

    def _on_challenge(self, session: ReplicationSession, channel: Channel, body: bytes) -> None:
        try:
            challenge = Challenge.decode(body)
        except DecodeError as exc:
            log.info("lobby: unreadable challenge: %s", exc)
            _close(session, channel)
            return
        hh = session.handshake_hash
        if challenge.lobby != self.lobby or not challenge.valid(hh, self.lobby_signer):
            # Not the lobby's owner (or not this connection's): never send it anything.
            log.info("lobby: challenge not signed by the lobby owner; ignoring that peer")
            _close(session, channel)
            return
        proof = b""
        if challenge.protected:
            if self.password is None:
                if self._verdict is not None and not self._verdict.done():
                    self._verdict.set_result(Verdict(False, "password", "this session needs a password"))
                _close(session, channel)
                return
            key = self._keys.get(challenge.salt)
            if key is None:
                key = self._keys[challenge.salt] = password_key(self.password, challenge.salt)
            proof = password_proof(key, hh, challenge.nonce, self.identity, self.lobby)
        assert self.identity_pair.secret_key is not None
        auth = sign(
            Request.auth_message(hh, challenge.nonce, self.binding.writer), self.identity_pair.secret_key
        )
        _send(session, channel, MSG_REQUEST, Request(self.binding, auth, proof).encode())


__all__ = ["GuestAdmission", "HostAdmission"]
