"""A lobby host in its own process (for the crash test): prints {"key", "port"} and serves."""

from __future__ import annotations

import asyncio
import json
import sys

from lobby_helpers import host, make_user


async def main(kind: str) -> None:
    user = await make_user("host", listen=True)
    hosted = await host(user, kind, max_peers=4, ping_interval=0.5, ping_timeout=2.0)
    print(json.dumps({"key": hosted.lobby.key.hex(), "port": user.port}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
