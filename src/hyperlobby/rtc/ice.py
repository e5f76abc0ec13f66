"""ICE configuration: which servers to ask, which local addresses to offer, which remote
addresses to try.

Why this module exists
----------------------
aiortc's defaults are made for browsers-on-the-internet: with no ``iceServers`` it asks Google's
public STUN server, and aioice offers every interface address *except* loopback. Neither suits
us. Real users configure their own STUN/TURN servers (:class:`IceConfig` carries them, and an
empty tuple means *none*, never "the default"). Tests and the demo must never leave this machine,
so :attr:`IceConfig.loopback_only` pins everything to 127.0.0.1:

* local candidates: aioice decides what to bind in ``Connection.gather_candidates`` by calling
  the module function ``get_host_addresses``, which skips loopback. Rather than patch that
  function for the whole process, :func:`pin_loopback` replaces the ``get_component_candidates``
  method on the one aioice ``Connection`` behind one peer connection, so it binds 127.0.0.1
  only. Nothing else in the process is affected, and if aiortc's internals move the pin fails
  loudly (:class:`RtcError`) instead of silently gathering real addresses.
* remote candidates: a peer's SDP could name any address (or an mDNS ``.local`` name, which
  aiortc would resolve by multicast). :func:`filter_remote_sdp` strips every candidate that is
  not loopback before the SDP reaches aiortc, so no connectivity check goes anywhere else.
* servers: loopback-only refuses any ICE server, so there is no STUN or TURN traffic at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from ..errors import RtcError

LOOPBACK_ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server, as in the W3C ``RTCIceServer`` dictionary."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class IceConfig:
    """How a peer connection finds its way. The default has no servers (only direct host
    candidates); add STUN/TURN servers for users behind NAT."""

    ice_servers: tuple[IceServer, ...] = ()
    #: Offer and accept 127.0.0.1 only, with no servers: tests, benches and the demo.
    loopback_only: bool = False

    def __post_init__(self) -> None:
        if self.loopback_only and self.ice_servers:
            raise RtcError("a loopback-only ICE configuration cannot use ICE servers")

    @classmethod
    def loopback(cls) -> IceConfig:
        return cls(ice_servers=(), loopback_only=True)

    def rtc_configuration(self) -> RTCConfiguration:
        """The aiortc configuration. The server list is always explicit, so aiortc never falls
        back to its public default."""
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.ice_servers
        ]
        return RTCConfiguration(iceServers=servers)


def _ice_connection(pc: RTCPeerConnection) -> Any:
    """The aioice ``Connection`` behind the data channel transport of ``pc``."""
    sctp = pc.sctp
    try:
        gatherer = sctp.transport.transport.iceGatherer  # type: ignore[union-attr]
        return gatherer._connection
    except AttributeError as exc:
        raise RtcError("cannot reach the ICE connection of this peer connection") from exc


def ice_servers_in_use(pc: RTCPeerConnection) -> tuple[object, object]:
    """(stun_server, turn_server) as aioice will use them; both None when none is configured."""
    conn = _ice_connection(pc)
    return conn.stun_server, conn.turn_server


def pin_loopback(pc: RTCPeerConnection) -> None:
    """Make ``pc`` gather host candidates on loopback only (see the module docstring). Call it
    once the data channel transport exists and before the local description is set."""
    conn = _ice_connection(pc)
    original: Callable[..., Awaitable[Any]] | None = getattr(conn, "get_component_candidates", None)
    if original is None or not hasattr(conn, "stun_server"):
        raise RtcError("aioice has changed: cannot pin candidates to loopback")
    if conn.stun_server is not None or conn.turn_server is not None:
        raise RtcError("loopback-only peer connection has an ICE server configured")

    async def loopback_candidates(component: int, addresses: list[str], timeout: int = 5) -> Any:
        return await original(component=component, addresses=list(LOOPBACK_ADDRESSES), timeout=timeout)

    conn.get_component_candidates = loopback_candidates


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a hostname (mDNS ".local" or worse): never loopback by our rules


def candidate_address(line: str) -> str | None:
    """The connection address of an ``a=candidate:`` SDP line (RFC 8839 section 5.1), or None
    when the line is not a candidate or is malformed."""
    line = line.strip()
    if not line.startswith("a=candidate:"):
        return None
    parts = line[len("a=candidate:") :].split()
    # foundation component transport priority address port "typ" type ...
    if len(parts) < 8:
        return None
    return parts[4]


def sdp_candidates(sdp: str) -> list[str]:
    """Every candidate address an SDP offers (to prove what we put on the wire)."""
    return [a for a in map(candidate_address, sdp.splitlines()) if a is not None]


def filter_remote_sdp(sdp: str, config: IceConfig) -> str:
    """The peer's SDP with candidates we must not contact removed (loopback-only keeps only
    loopback addresses; otherwise the SDP is returned unchanged)."""
    if not config.loopback_only:
        return sdp
    kept = []
    for line in sdp.splitlines():
        if line.strip().startswith("a=candidate:"):
            address = candidate_address(line)
            if address is None or not is_loopback(address):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
