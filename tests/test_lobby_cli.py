"""`hyperlobby host --name` and `hyperlobby join URL` as real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from hyperlobby.cli import build_parser
from social_helpers import CLI, WAIT, make_identity


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def event(self, name: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), WAIT)
            if not line:
                err = b"" if self.proc.stderr is None else await self.proc.stderr.read()
                pytest.fail(f"process ended before {name!r}: {err.decode(errors='replace')}")
            obj: dict[str, Any] = json.loads(line)
            if obj.get("event") == name:
                return obj

    async def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), WAIT)


async def start(*args: str) -> Proc:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Proc(proc)


def test_host_group_keeps_manual_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["host", "start", "--name", "x", "--url", "hyper://" + "a" * 52, "--max-peers", "3"]
    )
    assert args.host_command == "start" and args.max_peers == 3
    args = parser.parse_args(["host", "--name", "Room", "--lobby", "log", "--max-peers", "2"])
    assert args.host_command is None and args.lobby == "log" and args.name == "Room"


@pytest.mark.parametrize("kind", ["drive", "log"])
async def test_host_join_chat_full_leave(tmp_path: Path, kind: str) -> None:
    url = make_identity(tmp_path / "host", "Hostess")
    make_identity(tmp_path / "a", "Alice", [url])
    make_identity(tmp_path / "b", "Bob", [url])
    procs: list[Proc] = []
    try:
        host = await start(
            "host", "--home", str(tmp_path / "host"), "--name", "Room", "--max-peers", "1", "--lobby", kind,
            "--listen", "127.0.0.1:0", "--loopback", "--json",
        )  # fmt: skip
        procs.append(host)
        info = await host.event("hosting")
        assert info["kind"] == kind
        common = ["--peer", info["listen"], "--loopback", "--json", "--timeout", "15"]
        alice = await start("join", url, "--home", str(tmp_path / "a"), *common)
        procs.append(alice)
        assert (await alice.event("connected"))["kind"] == kind
        assert (await host.event("joined"))["peers"] == 1
        await alice.say("hello room")
        assert (await host.event("message"))["body"] == "hello room"

        bob = await start("join", url, "--home", str(tmp_path / "b"), *common)
        procs.append(bob)
        code = await asyncio.wait_for(bob.proc.wait(), WAIT)
        assert bob.proc.stderr is not None
        err = (await bob.proc.stderr.read()).decode()
        assert code == 1 and "refused (full)" in err and "Traceback" not in err, (code, err)

        assert alice.proc.stdin is not None
        alice.proc.stdin.close()  # Ctrl-D: leave
        code = await asyncio.wait_for(alice.proc.wait(), WAIT)
        assert alice.proc.stderr is not None
        assert code == 0, (await alice.proc.stderr.read()).decode(errors="replace")
        assert (await host.event("left"))["peers"] == 0
        host.proc.send_signal(signal.SIGTERM)
        await host.event("ended")
        assert await asyncio.wait_for(host.proc.wait(), WAIT) == 0
    finally:
        for p in procs:
            await p.kill()
