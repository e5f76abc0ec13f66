"""DHT options shared by ``serve``/``host``/``join``, and ``hyperlobby dht bootstrap``.

Which discovery a node uses (first match wins):

* ``--no-dht``: only ``--peer`` addresses;
* ``--bootstrap HOST:PORT`` or ``HYPERLOBBY_BOOTSTRAP``: the DHT through those nodes (plus any
  ``--peer`` addresses);
* ``--dht``: the DHT through the public bootstrap nodes (plus any ``--peer``);
* otherwise: with ``--peer`` or ``--listen`` given, addresses only (a LAN or a one-machine try);
  with neither, the DHT through the public bootstrap nodes, so ``hyperlobby serve`` finds
  friends by their archive's key with nothing else configured.

``--relay-through KEY`` (repeatable, or ``HYPERLOBBY_RELAY_THROUGH``, comma-separated) names
blind relays: a friend whose NAT and ours cannot be holepunched (both pick a new port per
destination) is reached through one of them, end-to-end encrypted; the relay only forwards.
``hyperlobby dht relay`` runs such a relay.

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
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hyperlobby.encoding.ids import decode_key, encode_id
from hyperlobby.errors import HyperlobbyError, InvalidKeyError, SwarmError
from hyperlobby.swarm.bootstrap import ENV_BOOTSTRAP, check_loopback, explicit_bootstrap, resolve_bootstrap

ENV_RELAY_THROUGH = "HYPERLOBBY_RELAY_THROUGH"


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
    p.add_argument(
        "--relay-through",
        action="append",
        default=[],
        metavar="KEY",
        help="a blind relay's public key (z32 or hex; repeatable) for peers that cannot be "
        f"holepunched (default: ${ENV_RELAY_THROUGH})",
    )


def relay_option(args: argparse.Namespace) -> tuple[bytes, ...]:
    """The blind relays a command's swarm may use (``--relay-through``, else the environment)."""
    given: list[str] = list(getattr(args, "relay_through", []) or [])
    if not given:
        given = [os.environ.get(ENV_RELAY_THROUGH, "")]
    keys: list[bytes] = []
    for item in given:
        for text in item.split(","):
            if text.strip():
                try:
                    keys.append(decode_key(text.strip()))
                except InvalidKeyError:
                    raise SwarmError(
                        "--relay-through takes a relay's public key (z32 or hex)", value=text
                    ) from None
    return tuple(keys)


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
    r = sub.add_parser("relay", help="relay for peers that cannot holepunch (prints the relay's key)")
    r.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help=f"DHT bootstrap node(s) (default: ${ENV_BOOTSTRAP}, else the public HyperDHT nodes)",
    )
    r.add_argument(
        "--host", default=None, help="address to bind (default: loopback for a loopback DHT, else all)"
    )
    r.add_argument("--port", type=int, default=0, help="UDP port (default: any free one)")
    r.add_argument(
        "--key-file",
        default=None,
        metavar="PATH",
        help="keep the relay's key pair here (made if missing), so its key stays the same across runs",
    )
    r.add_argument("--json", action="store_true", help="print machine-readable JSON")
    r.set_defaults(handler=_relay)


def _bootstrap(args: argparse.Namespace) -> int:
    return _run(_bootstrap_async(args))


def _run(main: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(main)
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
        stop = _stop_on_signals()
        _announce(
            args,
            {"event": "listening", "bootstrap": addr},
            addr,
            f"bootstrap node running; use --bootstrap {addr} (or {ENV_BOOTSTRAP}={addr})",
        )
        await stop.wait()
    finally:
        await asyncio.wait_for(dht.close(), 10)
    return 0


def _relay(args: argparse.Namespace) -> int:
    return _run(_relay_async(args))


def _announce(args: argparse.Namespace, event: dict[str, Any], value: str, hint: str) -> None:
    """What a long-running command prints once it is up: JSON, or the value plus a hint."""
    if args.json:
        print(json.dumps({**event, "pid": os.getpid()}), flush=True)
    else:
        print(value, flush=True)
        print(f"{hint}; Ctrl-C stops it", file=sys.stderr, flush=True)


def _stop_on_signals() -> asyncio.Event:
    """An event SIGINT/SIGTERM set; installed before the command says it is up, so a signal
    sent as soon as the caller reads that line still ends the command cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _relay_key_pair(path: str | None) -> Any:
    from hyperlobby.crypto.keys import KeyPair, key_pair

    if path is None:
        return key_pair()
    file = Path(path)
    if file.exists():
        seed = file.read_bytes()
        if len(seed) != 32:
            raise SwarmError("the relay key file holds a 32-byte seed", path=path, length=len(seed))
        return key_pair(seed)
    seed = os.urandom(32)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(seed)
    kp: KeyPair = key_pair(seed)
    return kp


async def _relay_async(args: argparse.Namespace) -> int:
    from hyperlobby.swarm.hyperdht.blind_relay import serve_relay
    from hyperlobby.swarm.hyperdht.dht import HyperDht

    if not 0 <= args.port < 65536:
        raise SwarmError("--port must be 0-65535", port=args.port)
    chosen = resolve_bootstrap(list(args.bootstrap))
    check_loopback(chosen.nodes)
    host = args.host or ("127.0.0.1" if all(n.loopback for n in chosen.nodes) else "0.0.0.0")
    kp = _relay_key_pair(args.key_file)
    dht = await HyperDht.create(bootstrap=list(chosen.addresses), host=host, port=args.port, ephemeral=False)
    try:
        relay = await serve_relay(dht, kp)
        key = encode_id(relay.public_key)
        stop = _stop_on_signals()
        _announce(
            args,
            {"event": "relaying", "key": key},
            key,
            f"relay running; peers use --relay-through {key} (or {ENV_RELAY_THROUGH}={key})",
        )
        await stop.wait()
        await asyncio.wait_for(relay.close(), 10)
    finally:
        await asyncio.wait_for(dht.close(), 10)
    return 0


__all__ = ["ENV_RELAY_THROUGH", "add_dht_options", "bootstrap_option", "register", "relay_option"]
