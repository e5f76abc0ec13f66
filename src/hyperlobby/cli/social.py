"""Social commands: ``init``, ``whoami``, ``profile``, ``friends``, ``sessions``, ``serve``, ``host``.

Each command asks the home's running node over its control socket when there is one, and
otherwise works on the store in-process (holding the home lock for the duration). ``serve`` is
the node. ``host`` drives session.json by hand (the WebRTC host will do it later) and needs a
node, because a heartbeat needs a process that lives. Every error a person can act on is printed
as one line on stderr with exit status 1; ``--json`` prints machine-readable results on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperlobby.cli.dht import add_dht_options, bootstrap_option, relay_option
from hyperlobby.errors import HyperlobbyError, SocialError
from hyperlobby.social.control import (
    NodeNotRunning,
    call,
    friend_json,
    hosted_json,
    profile_json,
    session_json,
)
from hyperlobby.social.directory import parse_friend
from hyperlobby.social.discovery import parse_address
from hyperlobby.social.identity import Identity, default_home, system_clock
from hyperlobby.social.node import Node, NodeOptions, local_directory
from hyperlobby.social.session import DEFAULT_GRACE_MS, DEFAULT_INTERVAL_MS

Handler = Callable[[argparse.Namespace], int]


def register(subparsers: Any) -> None:
    """Add the social commands to the top-level ``hyperlobby`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", help="the user's data directory (default: $HYPERLOBBY_HOME or a per-user dir)"
    )
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")

    p = subparsers.add_parser("init", parents=[common], help="create your identity archive")
    p.add_argument("--name", required=True)
    p.set_defaults(handler=_run(_init))

    p = subparsers.add_parser("whoami", parents=[common], help="your archive URL and profile")
    p.set_defaults(handler=_run(_whoami))

    p = subparsers.add_parser("profile", help="edit your profile")
    psub = p.add_subparsers(dest="profile_command", metavar="ACTION", required=True)
    ps = psub.add_parser("set", parents=[common], help="set a profile field")
    ps.add_argument("field", choices=["name"])
    ps.add_argument("value")
    ps.set_defaults(handler=_run(_profile_set))

    p = subparsers.add_parser("friends", help="add, remove and list friends")
    fsub = p.add_subparsers(dest="friends_command", metavar="ACTION", required=True)
    fa = fsub.add_parser("add", parents=[common], help="follow a friend's archive (hyper:// or dat://)")
    fa.add_argument("url")
    fa.add_argument("--wait", type=float, default=3.0, help="seconds to wait for their profile (node only)")
    fa.set_defaults(handler=_run(_friends_add))
    fr = fsub.add_parser("rm", parents=[common], help="stop following a friend")
    fr.add_argument("url")
    fr.set_defaults(handler=_run(_friends_rm))
    fl = fsub.add_parser("ls", parents=[common], help="friends and their status")
    fl.add_argument("--depth", type=int, choices=[1, 2], default=1, help="2: friends of friends too")
    fl.set_defaults(handler=_run(_friends_ls))

    p = subparsers.add_parser("sessions", parents=[common], help="friends' live sessions")
    p.add_argument("--depth", type=int, choices=[1, 2], default=1, help="2: friends of friends too")
    p.add_argument("--all", action="store_true", help="include stale sessions (marked)")
    p.add_argument("--interval", type=float, default=None, help="heartbeat interval in seconds (in-process)")
    p.set_defaults(handler=_run(_sessions))

    p = subparsers.add_parser("serve", parents=[common], help="run the node for this home")
    p.add_argument("--listen", help="HOST:PORT to accept peers on (e.g. 127.0.0.1:0)")
    p.add_argument("--peer", action="append", default=[], help="HOST:PORT of a peer to keep connected")
    add_dht_options(p)
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_MS / 1000, help="heartbeat seconds")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_MS / 1000, help="staleness grace seconds")
    p.add_argument("--depth", type=int, choices=[1, 2], default=1, help="2: follow friends of friends")
    p.set_defaults(handler=_run(_serve))

    p = subparsers.add_parser(
        "host", help="host a session (--name NAME), or publish session.json by hand (start|peers|stop)"
    )
    from hyperlobby.cli import lobby as lobby_cli  # the real host: `hyperlobby host --name NAME`

    lobby_cli.extend_host(p)
    hsub = p.add_subparsers(dest="host_command", metavar="ACTION", required=False)
    hs = hsub.add_parser("start", parents=[common], help="start hosting: write session.json")
    hs.add_argument("--name", required=True)
    hs.add_argument("--url", required=True, help="the lobby archive URL")
    hs.add_argument("--max-peers", type=int, required=True)
    hs.add_argument("--protected", action="store_true")
    hs.set_defaults(handler=_run(_host_start))
    hp = hsub.add_parser("peers", parents=[common], help="set the connected peer count")
    hp.add_argument("peers", type=int)
    hp.set_defaults(handler=_run(_host_peers))
    hx = hsub.add_parser("stop", parents=[common], help="end the session: remove session.json")
    hx.set_defaults(handler=_run(_host_stop))


# --- plumbing -------------------------------------------------------------------------------------


def _run(fn: Callable[[argparse.Namespace, Path], int]) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        home = Path(args.home).expanduser() if args.home else default_home()
        try:
            return fn(args, home)
        except HyperlobbyError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    return handler


def _emit(args: argparse.Namespace, data: Any, text: str, *, indent: int | None = 2) -> None:
    print(json.dumps(data, indent=indent) if args.json else text, flush=True)


def _node(home: Path, cmd: str, payload: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """Ask the running node; raises :class:`NodeNotRunning` when there is none."""
    return asyncio.run(call(home, cmd, payload, timeout=timeout))


def _in_process(home: Path, *, create: bool = False) -> Identity:
    if not create and not (home / "store.db").exists():
        raise SocialError("no identity in this home yet: run `hyperlobby init --name NAME`", home=str(home))
    return Identity.open(home)


def _age(ms: int) -> str:
    s = ms // 1000
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


# --- commands -------------------------------------------------------------------------------------


def _init(args: argparse.Namespace, home: Path) -> int:
    with _in_process(home, create=True) as ident:
        profile = ident.init(args.name, system_clock())
        data = profile_json(profile, ident.url)
    _emit(args, data, f"created {data['url']} ({profile.name}) in {home}")
    return 0


def _profile_text(data: dict[str, Any]) -> str:
    lines = [f"{data['name']}  {data['url']}", f"friends: {len(data['friends'])}"]
    hosting = data.get("hosting")
    if hosting:
        lines.append(f"hosting: {hosting['name']} ({hosting['peers']}/{hosting['max_peers']})")
    return "\n".join(lines)


def _whoami(args: argparse.Namespace, home: Path) -> int:
    try:
        data = _node(home, "whoami")
    except NodeNotRunning:
        with _in_process(home) as ident:
            data = {**profile_json(ident.profile(), ident.url), "hosting": None, "node": False}
    _emit(args, data, _profile_text(data))
    return 0


def _profile_set(args: argparse.Namespace, home: Path) -> int:
    try:
        data = _node(home, "profile.set_name", {"name": args.value})
    except NodeNotRunning:
        with _in_process(home) as ident:
            profile = ident.profile().with_name(args.value)
            ident.save_profile(profile)
            data = profile_json(profile, ident.url)
    _emit(args, data, f"name set to {data['name']}")
    return 0


def _friends_add(args: argparse.Namespace, home: Path) -> int:
    try:
        data = _node(home, "friends.add", {"url": args.url, "wait": args.wait}, timeout=args.wait + 30)
    except NodeNotRunning:
        with _in_process(home) as ident:
            if parse_friend(args.url) == ident.key:
                raise SocialError("that URL is your own archive") from None
            profile = ident.profile().with_friend(args.url)
            ident.save_profile(profile)
            data = {"profile": profile_json(profile, ident.url), "friend": None, "reached": None}
    friend = data.get("friend")
    if data.get("reached") is False:
        print(
            "warning: friend added, but their archive could not be reached yet; "
            "the node keeps trying (check --peer addresses or --bootstrap nodes)",
            file=sys.stderr,
        )
    elif data.get("reached") is None:
        print("note: no node is running; start `hyperlobby serve` to follow this friend", file=sys.stderr)
    elif friend and friend["status"] == "malformed":
        print(
            f"warning: this friend's profile is malformed: {'; '.join(friend['problems'])}", file=sys.stderr
        )
    name = f" ({friend['name']})" if friend and friend.get("name") else ""
    _emit(args, data, f"friend added{name}")
    return 0


def _friends_rm(args: argparse.Namespace, home: Path) -> int:
    try:
        data = _node(home, "friends.rm", {"url": args.url})
    except NodeNotRunning:
        with _in_process(home) as ident:
            old = ident.profile()
            new = old.without_friend(args.url)
            if new.friends == old.friends:
                raise SocialError("not a friend", url=args.url) from None
            ident.save_profile(new)
            data = profile_json(new, ident.url)
    _emit(args, data, "friend removed")
    return 0


def _friends_ls(args: argparse.Namespace, home: Path) -> int:
    try:
        data = _node(home, "friends.ls", {"depth": args.depth})
    except NodeNotRunning:
        with _in_process(home) as ident:
            d = local_directory(ident, system_clock(), depth=args.depth)
            data = [friend_json(v) for v in d.friends(depth=args.depth)]
    lines = []
    for f in data:
        mark = "" if f["depth"] == 1 else "  (friend of a friend)"
        status = f["status"] + (" - last known profile" if f["status"] == "offline" else "")
        lines.append(f"{f['name'] or '?':20} {status:32} {f['url']}{mark}")
        lines.extend(f"    problem: {p}" for p in f["problems"])
    _emit(args, data, "\n".join(lines) if lines else "no friends yet: hyperlobby friends add URL")
    return 0


def _sessions(args: argparse.Namespace, home: Path) -> int:
    try:
        data = _node(home, "sessions", {"depth": args.depth, "include_stale": args.all})
    except NodeNotRunning:
        with _in_process(home) as ident:
            interval = DEFAULT_INTERVAL_MS if args.interval is None else int(args.interval * 1000)
            d = local_directory(ident, system_clock(), depth=args.depth, interval_ms=interval)
            views = d.sessions(system_clock(), depth=args.depth, include_stale=args.all)
            data = [session_json(v) for v in views]
    lines = []
    for s in data:
        lock = " [password]" if s["protected"] else ""
        stale = " [stale]" if s["state"] == "stale" else ""
        lines.append(
            f"{s['name']:24} host {s['host_name'] or s['host']:16} {s['peers']}/{s['max_peers']}"
            f"{lock}{stale}  {_age(s['age_ms'])} ago  {s['url']}"
        )
    _emit(args, data, "\n".join(lines) if lines else "no live sessions")
    return 0


def _host_start(args: argparse.Namespace, home: Path) -> int:
    payload = {"name": args.name, "url": args.url, "max_peers": args.max_peers, "protected": args.protected}
    data = _need_node(home, "host.start", payload)
    _emit(args, data, f"hosting {data['name']} ({data['peers']}/{data['max_peers']})")
    return 0


def _host_peers(args: argparse.Namespace, home: Path) -> int:
    data = _need_node(home, "host.update", {"peers": args.peers})
    _emit(args, data, f"peers {data['peers']}/{data['max_peers']}")
    return 0


def _host_stop(args: argparse.Namespace, home: Path) -> int:
    data = _need_node(home, "host.stop")
    _emit(args, data, "session ended" if data["removed"] else "was not hosting")
    return 0


def _need_node(home: Path, cmd: str, payload: dict[str, Any] | None = None) -> Any:
    try:
        return _node(home, cmd, payload)
    except NodeNotRunning:
        raise SocialError(
            "hosting needs a running node: start `hyperlobby serve` first", home=str(home)
        ) from None


def _serve(args: argparse.Namespace, home: Path) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    options = NodeOptions(
        interval_ms=max(1, int(args.interval * 1000)),
        grace_ms=max(0, int(args.grace * 1000)),
        depth=args.depth,
        listen=None if args.listen is None else parse_address(args.listen),
        peers=tuple(parse_address(p) for p in args.peer),
        bootstrap=bootstrap_option(args),
        relay_through=relay_option(args),
        poll_s=max(0.2, min(5.0, args.interval)),
    )
    return asyncio.run(_serve_async(args, home, options))


async def _serve_async(args: argparse.Namespace, home: Path, options: NodeOptions) -> int:
    if not (home / "store.db").exists():
        raise SocialError("no identity in this home yet: run `hyperlobby init --name NAME`", home=str(home))
    ident = Identity.open(home)
    try:
        node = Node(ident, options)
        await node.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        info = {
            "event": "listening",
            "url": ident.url,
            "listen": None if node.listening is None else str(node.listening),
            "dht": None if options.bootstrap is None else list(options.bootstrap),
            "pid": os.getpid(),
        }
        where = f" on {info['listen']}" if info["listen"] else ""
        if options.bootstrap is not None:
            where += f" on the DHT (bootstrap {', '.join(options.bootstrap)})"
        _emit(args, info, f"node for {ident.url} running{where}", indent=None)
        try:
            await stop.wait()
        finally:
            await node.close()
    finally:
        with contextlib.suppress(HyperlobbyError):
            ident.close()
    return 0


__all__ = ["hosted_json", "register"]
