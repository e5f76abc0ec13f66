"""Session lobbies: WebRTC signaling through archives (seed: "Session lobby", both options).

* :class:`DriveHostLobby` / :class:`DriveGuestLobby` — option 1, one drive per writer joined
  into one view (``host.offer.bin``, ``<guest>.offer.bin``, ``<guest>.answer.bin``);
* :class:`LogHostLobby` / :class:`LogGuestLobby` — option 2, one hypercore log per participant,
  merged in causal order.

Both implement rtc's signaling seam; admission (identity-bound writers, capacity, password
proof) runs over a protomux channel of ours (:mod:`.admission`); the records and their
cryptography are :mod:`.protocol`, the decisions :mod:`.machine`. See ``docs/lobby.md``.
"""

from hyperlobby.lobby.lobby import (
    HOST_FILE,
    KINDS,
    DriveGuestLobby,
    DriveHostLobby,
    GuestLobby,
    HostLobby,
    LobbyEvent,
    LogGuestLobby,
    LogHostLobby,
    Member,
    admitted_path,
    answer_path,
    guest_lobby,
    host_lobby,
    offer_path,
)
from hyperlobby.lobby.machine import CausalMerge, HostMachine
from hyperlobby.lobby.session import HostSession, join

__all__ = [
    "HOST_FILE",
    "KINDS",
    "CausalMerge",
    "DriveGuestLobby",
    "DriveHostLobby",
    "GuestLobby",
    "HostLobby",
    "HostMachine",
    "HostSession",
    "LobbyEvent",
    "LogGuestLobby",
    "LogHostLobby",
    "Member",
    "admitted_path",
    "answer_path",
    "guest_lobby",
    "host_lobby",
    "join",
    "offer_path",
]
