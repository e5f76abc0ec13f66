"""hyperlobby: peer-to-peer application user networking on a pure-Python Hypercore stack.

Layers, lowest first (a layer never imports one above it): ``encoding``, ``crypto``,
``core``, ``wire``, ``bee``, ``drive``, ``swarm``, ``social``, ``lobby``, ``rtc``, ``cli``.
"""

__version__ = "0.1.0"
