"""DHT options shared by ``serve``/``host``/``join``, and ``hyperlobby dht bootstrap``.

Which discovery a node uses (first match wins):

* ``--no-dht``: only ``--peer`` addresses;
* ``--bootstrap HOST:PORT`` or ``HYPERLOBBY_BOOTSTRAP``: the DHT through those nodes (plus any
  ``--peer`` addresses);
* ``--dht``: the DHT through the public bootstrap nodes (plus any ``--peer``);
* otherwise: with ``--peer`` or ``--listen`` given, addresses only (a LAN or a one-machine try);
  with neither, the DHT through the public bootstrap nodes, so ``hyperlobby serve`` finds
  friends by their archive's key with nothing else configured.

``hyperlobby dht bootstrap`` runs the first node of a private DHT (on loopback by default), so
``--bootstrap`` has something to point at without the public network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from hyperlobby.errors import HyperlobbyError, SwarmError
from hyperlobby.swarm.bootstrap import ENV_BOOTSTRAP, check_loopback, explicit_bootstrap, resolve_bootstrap


def add_dht_options(p: argparse.ArgumentParser) -> None:
    """``--bootstrap`` (repeatable, comma lists) and ``--dht``/``--no-dht``."""
    p.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help=f"DHT bootstrap node(s), repeatable or comma-separated (default: ${ENV_BOOTSTRAP}, "
        "else the public HyperDHT nodes)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--dht",
        dest="dht",
        action="store_const",
        const=True,
        default=None,
        help="find peers on the DHT even with --peer/--listen (the default without them)",
    )
    mode.add_argument(
        "--no-dht", dest="dht", action="store_const", const=False, help="no DHT: only the --peer addresses"
    )


def bootstrap_option(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The DHT bootstrap list a command's node should use, or None for no DHT (see module doc)."""
    wanted: bool | None = getattr(args, "dht", None)
    if wanted is False:
        return None
    cli: list[str] = list(getattr(args, "bootstrap", []) or [])
    addresses_given = bool(getattr(args, "peer", None)) or getattr(args, "listen", None) is not None
    if wanted is None and not explicit_bootstrap(cli) and addresses_given:
        return None
    chosen = resolve_bootstrap(cli)
    check_loopback(chosen.nodes)
    return tuple(chosen.addresses)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dht", help="DHT tools: run a bootstrap node")
    sub = p.add_subparsers(dest="dht_command", metavar="ACTION", required=True)
    b = sub.add_parser("bootstrap", help="run the first node of a private DHT (prints HOST:PORT)")
    b.add_argument("--host", default="127.0.0.1", help="IPv4 address to bind (default 127.0.0.1)")
    b.add_argument("--port", type=int, default=0, help="UDP port (default: any free one)")
    b.add_argument("--json", action="store_true", help="print machine-readable JSON")
    b.set_defaults(handler=_bootstrap)


def _bootstrap(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_bootstrap_async(args))
    except HyperlobbyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _bootstrap_async(args: argparse.Namespace) -> int:
    from hyperlobby.swarm.hyperdht.dht import HyperDht

    if not 0 <= args.port < 65536:
        raise SwarmError("--port must be 0-65535", port=args.port)
    try:
        dht = await HyperDht.bootstrapper(args.host, args.port)
    except OSError as exc:
        raise SwarmError(
            "cannot bind the bootstrap node", host=args.host, port=args.port, error=str(exc)
        ) from None
    try:
        addr = f"{dht.address.host}:{dht.address.port}"
        if args.json:
            print(json.dumps({"event": "listening", "bootstrap": addr, "pid": os.getpid()}), flush=True)
        else:
            print(addr, flush=True)
            print(
                f"bootstrap node running; use --bootstrap {addr} (or {ENV_BOOTSTRAP}={addr}); "
                "Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await asyncio.wait_for(dht.close(), 10)
    return 0


__all__ = ["add_dht_options", "bootstrap_option", "register"]
