"""Hyperswarm 4: join topics on the HyperDHT and keep one connection per peer (see ``swarm``)."""

from hyperlobby.swarm.hyperswarm.peer_discovery import PeerDiscovery, PeerDiscoverySession
from hyperlobby.swarm.hyperswarm.peer_info import PeerInfo, Priority
from hyperlobby.swarm.hyperswarm.swarm import Swarm, SwarmStats

__all__ = ["PeerDiscovery", "PeerDiscoverySession", "PeerInfo", "Priority", "Swarm", "SwarmStats"]
