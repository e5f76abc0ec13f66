"""HyperDHT's numbers: RPC command ids, error codes, firewall kinds, relay modes, namespaces.

These ride on the wire (commands in dht-rpc requests, error codes in replies and noise
payloads, modes in handshake/holepunch messages), so they must equal npm hyperdht's values
exactly; the golden vectors check every one.
"""

from __future__ import annotations

from typing import Final

from hyperlobby.crypto.hashes import blake2b256

# dht-rpc user commands HyperDHT registers (requests without the "internal" flag).
PEER_HANDSHAKE: Final = 0
PEER_HOLEPUNCH: Final = 1
FIND_PEER: Final = 2
LOOKUP: Final = 3
ANNOUNCE: Final = 4
UNANNOUNCE: Final = 5
MUTABLE_PUT: Final = 6
MUTABLE_GET: Final = 7
IMMUTABLE_PUT: Final = 8
IMMUTABLE_GET: Final = 9
PLUGIN: Final = 10

COMMANDS: Final[dict[str, int]] = {
    "PEER_HANDSHAKE": PEER_HANDSHAKE,
    "PEER_HOLEPUNCH": PEER_HOLEPUNCH,
    "FIND_PEER": FIND_PEER,
    "LOOKUP": LOOKUP,
    "ANNOUNCE": ANNOUNCE,
    "UNANNOUNCE": UNANNOUNCE,
    "MUTABLE_PUT": MUTABLE_PUT,
    "MUTABLE_GET": MUTABLE_GET,
    "IMMUTABLE_PUT": IMMUTABLE_PUT,
    "IMMUTABLE_GET": IMMUTABLE_GET,
    "PLUGIN": PLUGIN,
}

# Error codes: 0-15 concern the noise handshake / connection, 16+ the DHT storage commands.
ERROR_NONE: Final = 0
ERROR_ABORTED: Final = 1
ERROR_VERSION_MISMATCH: Final = 2
ERROR_TRY_LATER: Final = 3
ERROR_SEQ_REUSED: Final = 16
ERROR_SEQ_TOO_LOW: Final = 17

ERRORS: Final[dict[str, int]] = {
    "NONE": ERROR_NONE,
    "ABORTED": ERROR_ABORTED,
    "VERSION_MISMATCH": ERROR_VERSION_MISMATCH,
    "TRY_LATER": ERROR_TRY_LATER,
    "SEQ_REUSED": ERROR_SEQ_REUSED,
    "SEQ_TOO_LOW": ERROR_SEQ_TOO_LOW,
}

# How a peer's NAT maps ports, as it reports it in noise/holepunch payloads.
FIREWALL_UNKNOWN: Final = 0
FIREWALL_OPEN: Final = 1
FIREWALL_CONSISTENT: Final = 2
FIREWALL_RANDOM: Final = 3

FIREWALL: Final[dict[str, int]] = {
    "UNKNOWN": FIREWALL_UNKNOWN,
    "OPEN": FIREWALL_OPEN,
    "CONSISTENT": FIREWALL_CONSISTENT,
    "RANDOM": FIREWALL_RANDOM,
}

# The ``mode`` of a handshake/holepunch message says which hop of the relay path it is on
# (client -> relaying DHT node -> server and back), so one command can serve every hop.
# These live in hyperdht's lib/router.js rather than constants.js.
FROM_CLIENT: Final = 0
FROM_SERVER: Final = 1
FROM_RELAY: Final = 2
FROM_SECOND_RELAY: Final = 3
REPLY: Final = 4

BOOTSTRAP_NODES: Final[tuple[str, ...]] = (
    "88.99.3.86@node1.hyperdht.org:49737",
    "142.93.90.113@node2.hyperdht.org:49737",
    "138.68.147.8@node3.hyperdht.org:49737",
)


def _namespace(name: str, command: int) -> bytes:
    # hypercore-crypto's namespace(): hash the name, append the id byte, hash again. HyperDHT
    # keys each namespace by its command id, so signatures for one command never verify as
    # signatures for another.
    return blake2b256(blake2b256(name.encode()) + bytes((command,)))


NS_ANNOUNCE: Final = _namespace("hyperswarm/dht", ANNOUNCE)
NS_UNANNOUNCE: Final = _namespace("hyperswarm/dht", UNANNOUNCE)
NS_MUTABLE_PUT: Final = _namespace("hyperswarm/dht", MUTABLE_PUT)
NS_PEER_HANDSHAKE: Final = _namespace("hyperswarm/dht", PEER_HANDSHAKE)
NS_PEER_HOLEPUNCH: Final = _namespace("hyperswarm/dht", PEER_HOLEPUNCH)
NS_PLUGIN: Final = _namespace("hyperswarm/dht", PLUGIN)

NS: Final[dict[str, bytes]] = {
    "ANNOUNCE": NS_ANNOUNCE,
    "UNANNOUNCE": NS_UNANNOUNCE,
    "MUTABLE_PUT": NS_MUTABLE_PUT,
    "PEER_HANDSHAKE": NS_PEER_HANDSHAKE,
    "PEER_HOLEPUNCH": NS_PEER_HOLEPUNCH,
    "PLUGIN": NS_PLUGIN,
}
