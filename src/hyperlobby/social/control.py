"""The control socket: how CLI commands talk to a running node.

A unix socket ``<home>/node.sock`` created with mode 0600 (the umask is tightened around
``bind`` so there is no moment when others could connect), in a home directory that is itself
0700. One request per connection: a JSON line ``{"cmd": ..., "args": {...}}``, answered by one
JSON line ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ..., "context": {...}}``.
Requests are small; a line longer than 1 MiB is refused.

The JSON shapes of profiles, friends and sessions live here too (:func:`friend_json`,
:func:`session_json`), so ``--json`` prints the same thing whether a node answered or the CLI
read the store itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperlobby.errors import HyperlobbyError, SocialError
from hyperlobby.social.directory import FriendView, SessionView
from hyperlobby.social.identity import SOCKET_FILE
from hyperlobby.social.profile import Profile
from hyperlobby.social.records import canonical_url
from hyperlobby.social.session import Session

if TYPE_CHECKING:
    from hyperlobby.social.node import Node

MAX_LINE = 1 << 20


# --- JSON views -----------------------------------------------------------------------------------


def profile_json(profile: Profile, url: str) -> dict[str, Any]:
    return {"url": url, **profile.to_dict()}


def hosted_json(session: Session | None) -> dict[str, Any] | None:
    return None if session is None else session.to_dict()


def friend_json(view: FriendView) -> dict[str, Any]:
    p = view.profile
    return {
        "url": view.url,
        "name": view.name,
        "status": view.status,
        "depth": view.depth,
        "created": None if p is None else p.created,
        "friends": None if p is None else len(p.friends),
        "hosting": view.session is not None,
        "last_seen": view.last_seen_ms,
        "problems": list(view.problems),
        "via": [canonical_url(k) for k in view.via],
    }


def session_json(view: SessionView) -> dict[str, Any]:
    s = view.session
    return {
        "host": view.host_url,
        "host_name": view.host_name,
        "name": s.name,
        "url": s.url,
        "peers": s.peers,
        "max_peers": s.max_peers,
        "protected": s.protected,
        "last_update": s.last_update,
        "age_ms": view.age_ms,
        "state": view.state,
        "online": view.online,
        "depth": view.depth,
        "via": [canonical_url(k) for k in view.via],
    }


# --- server ---------------------------------------------------------------------------------------


def socket_path(home: str | Path) -> Path:
    return Path(home).expanduser() / SOCKET_FILE


class ControlServer:
    """Answers CLI requests for one :class:`~hyperlobby.social.node.Node`."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.path = socket_path(node.identity.home)
        self._server: asyncio.AbstractServer | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "whoami": self._whoami,
            "status": self._status,
            "profile.set_name": self._set_name,
            "friends.add": self._friends_add,
            "friends.rm": self._friends_rm,
            "friends.ls": self._friends_ls,
            "sessions": self._sessions,
            "host.start": self._host_start,
            "host.update": self._host_update,
            "host.stop": self._host_stop,
        }

    async def start(self) -> None:
        if len(os.fsencode(self.path)) >= 104:
            raise SocialError(
                "the home path is too long for a unix socket; use a shorter --home", path=str(self.path)
            )
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a crashed node's socket (we hold the home lock, so no node is live)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), 10.0)
                request = json.loads(line)
                if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                    raise SocialError("a control request is {cmd, args}")
                args = request.get("args") or {}
                if not isinstance(args, dict):
                    raise SocialError("control request args must be an object")
                handler = self._handlers.get(request["cmd"])
                if handler is None:
                    raise SocialError("unknown control command", cmd=request["cmd"])
                reply: dict[str, Any] = {"ok": True, "result": await handler(args)}
            except HyperlobbyError as err:
                reply = {"ok": False, "error": err.message, "context": _plain(err.context)}
            except (ValueError, TypeError, KeyError, TimeoutError) as err:
                reply = {"ok": False, "error": f"bad control request: {err!r}", "context": {}}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # --- handlers ------------------------------------------------------------------------------

    async def _whoami(self, args: dict[str, Any]) -> Any:
        node = self.node
        return {
            **profile_json(node.profile(), node.identity.url),
            "hosting": hosted_json(node.heartbeat.session),
            "node": True,
        }

    async def _status(self, args: dict[str, Any]) -> Any:
        node = self.node
        return {
            "url": node.identity.url,
            "listen": None if node.listening is None else str(node.listening),
            "connections": node.connections,
            "following": node.following,
            "hosting": hosted_json(node.heartbeat.session),
            "heartbeats": node.heartbeat.beats,
            "archive_bytes": node.identity.archive_bytes,
        }

    async def _set_name(self, args: dict[str, Any]) -> Any:
        return profile_json(self.node.set_name(args["name"]), self.node.identity.url)

    async def _friends_add(self, args: dict[str, Any]) -> Any:
        profile, key = self.node.add_friend(args["url"])
        wait = float(args.get("wait", 0))
        view = await self.node.wait_friend(key, wait) if wait > 0 else None
        return {
            "profile": profile_json(profile, self.node.identity.url),
            "friend": None if view is None else friend_json(view),
            "reached": view is not None,
        }

    async def _friends_rm(self, args: dict[str, Any]) -> Any:
        return profile_json(self.node.remove_friend(args["url"]), self.node.identity.url)

    async def _friends_ls(self, args: dict[str, Any]) -> Any:
        return [friend_json(v) for v in self.node.friends(int(args.get("depth", 1)))]

    async def _sessions(self, args: dict[str, Any]) -> Any:
        views = self.node.sessions(int(args.get("depth", 1)), bool(args.get("include_stale", False)))
        return [session_json(v) for v in views]

    async def _host_start(self, args: dict[str, Any]) -> Any:
        s = self.node.host(
            args["name"], args["url"], int(args["max_peers"]), bool(args.get("protected", False))
        )
        return s.to_dict()

    async def _host_update(self, args: dict[str, Any]) -> Any:
        allowed = {"name", "url", "peers", "max_peers", "protected"}
        changes = {k: v for k, v in args.items() if k in allowed}
        return self.node.heartbeat.update(**changes).to_dict()

    async def _host_stop(self, args: dict[str, Any]) -> Any:
        return {"removed": self.node.heartbeat.stop()}


def _plain(context: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.hex() if isinstance(v, bytes) else v if isinstance(v, str | int | float | bool) else repr(v))
        for k, v in context.items()
    }


# --- client ---------------------------------------------------------------------------------------


class NodeNotRunning(SocialError):
    """No node answers on this home's control socket."""


async def call(
    home: str | Path, cmd: str, args: dict[str, Any] | None = None, *, timeout: float = 30.0
) -> Any:
    """Send one request to the node of ``home``; raises :class:`NodeNotRunning` if none answers."""
    path = socket_path(home)
    if not path.exists():
        raise NodeNotRunning("no node is running for this home", home=str(home))
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=MAX_LINE), 5.0)
    except (OSError, TimeoutError):
        raise NodeNotRunning("no node is running for this home", home=str(home)) from None
    try:
        writer.write(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        raise SocialError("the node did not answer in time", cmd=cmd) from None
    except OSError as err:
        raise SocialError("lost the connection to the node", cmd=cmd, cause=str(err)) from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    try:
        reply = json.loads(line)
    except ValueError:
        raise SocialError("the node sent an unreadable reply", cmd=cmd) from None
    if not isinstance(reply, dict):
        raise SocialError("the node sent an unreadable reply", cmd=cmd)
    if not reply.get("ok"):
        raise SocialError(
            str(reply.get("error", "the node refused the request")), **(reply.get("context") or {})
        )
    return reply.get("result")


__all__ = [
    "ControlServer",
    "NodeNotRunning",
    "call",
    "friend_json",
    "hosted_json",
    "profile_json",
    "session_json",
    "socket_path",
]
