"""One error hierarchy for the whole stack.

Every error the library raises on purpose is a :class:`HyperlobbyError`, so callers (the CLI,
a node serving peers) can catch one type, report it, and carry on. Each subclass names the
layer or the kind of failure; ``context`` carries the facts a person needs to act on it
(which core, which index, which peer) without parsing the message.
"""

from __future__ import annotations

from typing import Any


class HyperlobbyError(Exception):
    """Base of every error raised deliberately by hyperlobby."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{k}={_short(v)}" for k, v in self.context.items())
        return f"{self.message} ({details})"


def _short(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        text = raw.hex()
        return text if len(text) <= 16 else text[:16] + "…"
    return repr(value)


class DecodeError(HyperlobbyError, ValueError):
    """Bytes that do not decode: truncated, oversized, out of range or malformed."""


class EncodeError(HyperlobbyError, ValueError):
    """A value that cannot be encoded (wrong size, out of range, wrong type)."""


class InvalidKeyError(HyperlobbyError, ValueError):
    """A key, id or URL that does not name a 32-byte Hypercore key."""


class VerificationError(HyperlobbyError):
    """A signature, proof or hash that does not check out. Nothing unverified is stored."""


class CoreError(HyperlobbyError):
    """Misuse of a core: writing a read-only core, reading past its length, a closed core."""


class BlockNotAvailableError(CoreError):
    """The block is not stored locally (and could not be fetched in time)."""


class StorageError(HyperlobbyError):
    """The storage backend failed or holds data that does not match what is expected."""


class ProtocolError(HyperlobbyError):
    """A peer broke the wire protocol; the connection to that peer is closed."""


class HandshakeError(ProtocolError):
    """The Noise handshake or the stream id/header exchange failed."""


class ConflictError(ProtocolError):
    """A core's writer signed two different trees on the same fork (it equivocated, or its key
    is used in two places). The core is frozen: it takes no more appends or downloads."""


class DriveError(HyperlobbyError):
    """A Hyperdrive operation that cannot be done: a bad path, a malformed entry, a missing file,
    a blob that is not available, a drive whose blobs core cannot be found."""


class SocialError(HyperlobbyError):
    """A social-layer operation that cannot be done: no identity in this home, an unknown friend,
    a node that cannot be reached, a control request that makes no sense."""


class ProfileError(SocialError, ValueError):
    """A profile.json or session.json that is not what the seed describes: not JSON, wrong
    types, out of range, too large. A friend's malformed file is reported and skipped."""


class RtcError(HyperlobbyError):
    """A WebRTC session failed: an offer or answer that cannot be used, a message too large to
    send, a connection that is not open (or no longer is)."""


class AdmissionRefused(RtcError):
    """The host will not take this guest. ``reason`` is a short machine-readable word ("full",
    "closed", "bad-id", "replaced", ...) that a lobby can write into its refusal."""

    def __init__(self, message: str, *, reason: str, **context: Any) -> None:
        super().__init__(message, reason=reason, **context)
        self.reason = reason


class SessionFullError(AdmissionRefused):
    """The session already has ``max_peers`` guests (connected or still connecting)."""


class LobbyError(HyperlobbyError):
    """A lobby operation that cannot be done: no session at that URL, a lobby that is not one,
    a host that never answered. A refusal by the host is :class:`AdmissionRefused`."""


class SwarmError(HyperlobbyError):
    """A swarm operation that cannot be done: a topic that is not 32 bytes, a closed swarm, a
    bootstrap list that does not parse or that points off loopback while that is forbidden."""
