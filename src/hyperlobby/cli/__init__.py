"""The ``hyperlobby`` command line: thin, it parses arguments, calls the API and prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hyperlobby import __version__
from hyperlobby.cli import dht, drive, lobby, social


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperlobby",
        description="Peer-to-peer application user networking over Hypercore archives.",
    )
    parser.add_argument("--version", action="version", version=f"hyperlobby {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    drive.register(subparsers)
    social.register(subparsers)
    lobby.register(subparsers)
    dht.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
