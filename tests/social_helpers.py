"""Helpers for the social tests: node processes, bounded waits, in-process identities.

Every child process is killed when its ``NodeProcs`` block ends; every wait has an upper bound;
only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conftest import ROOT
from hyperlobby.social.control import call
from hyperlobby.social.identity import Identity

T = TypeVar("T")
WAIT = 20.0
CLI = [sys.executable, "-c", "import sys; from hyperlobby.cli import main; sys.exit(main())"]


def make_identity(home: Path, name: str, friends: list[str] = ()) -> str:  # type: ignore[assignment]
    """Create a user in ``home`` (with friends) and return its URL."""
    with Identity.open(home) as ident:
        profile = ident.init(name, 1_700_000_000_000)
        for url in friends:
            profile = profile.with_friend(url)
        ident.save_profile(profile)
        return ident.url


def add_friend(home: Path, url: str) -> None:
    with Identity.open(home) as ident:
        ident.save_profile(ident.profile().with_friend(url))


async def until(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str, timeout: float = WAIT
) -> T:
    """Poll ``probe`` until ``ok`` holds (fails the test after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await probe()
        if ok(last):
            return last
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; last value: {last!r}")


class NodeProcs:
    """``hyperlobby serve`` child processes, killed at the end of the ``async with`` block."""

    def __init__(self) -> None:
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, tag: str, home: Path, *extra: str) -> dict[str, Any]:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "serve",
            "--home",
            str(home),
            "--json",
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        self.procs[tag] = proc
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        except TimeoutError:
            pytest.fail(f"node {tag} did not start in time")
        if not line:
            err = b"" if proc.stderr is None else await proc.stderr.read()
            pytest.fail(f"node {tag} exited: {err.decode(errors='replace')}")
        info: dict[str, Any] = json.loads(line)
        return info

    async def kill(self, tag: str) -> None:
        proc = self.procs.pop(tag)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), WAIT)

    async def stop(self, tag: str) -> int:
        proc = self.procs.pop(tag)
        proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(proc.wait(), WAIT)

    async def __aenter__(self) -> NodeProcs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for tag in list(self.procs):
            with contextlib.suppress(Exception):
                await self.kill(tag)


async def sessions(home: Path, **args: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await call(home, "sessions", args, timeout=WAIT)
    return result


async def friends(home: Path, **args: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await call(home, "friends.ls", args, timeout=WAIT)
    return result
