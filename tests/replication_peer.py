"""A Python hypercore peer in its own process, the twin of ``interop/peers/core_peer.js`` (role "serve").

    python tests/replication_peer.py '<config json>'

config = {"store": sqlite path, "port": 0, "cores": [core, ...]}; core = {"name": str} (a writable
core named in the store) or {"seed": hex32, "compat": bool} (a writable core from that key pair),
plus {"blocks": [hex, ...]} appended when the core is new. The store is persistent: a restarted
peer reopens the same cores with what was stored before it was killed.

Prints one JSON object per line on stdout:
  {"event":"listening","port":P,"cores":[{key, discoveryKey, length}]}
  {"event":"request","core":i,"index":j}   for every block request a remote sends us
  {"event":"appended","core":i,"length":n} after an append command
  {"event":"error","error":"..."}          for every peer fault reported by Replication
Commands on stdin, one JSON per line: {"cmd":"append","core":i,"blocks":[hex...]}, {"cmd":"exit"}.
The process exits when stdin closes. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import key_pair
from hyperlobby.crypto.manifest import Manifest, manifest_hash
from hyperlobby.errors import HyperlobbyError
from hyperlobby.wire import replicator
from hyperlobby.wire.messages import Request
from hyperlobby.wire.replication import Replication


def out(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def open_core(store: Store, spec: dict[str, Any]) -> Hypercore:
    if "name" in spec:
        core = store.get(name=spec["name"])
    else:
        kp = key_pair(bytes.fromhex(spec["seed"]))
        compat = bool(spec.get("compat"))
        key = kp.public_key if compat else manifest_hash(Manifest.default(kp.public_key))
        core = store.get(key=key) if key in store else Hypercore.create(store.storage, kp, compat=compat)
    if core.length == 0 and spec.get("blocks"):
        core.append([bytes.fromhex(b) for b in spec["blocks"]])
    return core


async def main() -> None:
    config = json.loads(sys.argv[1])
    store = Store(config["store"])
    cores = [open_core(store, spec) for spec in config["cores"]]
    index_of = {core.discovery_key: i for i, core in enumerate(cores)}

    # Log every block request before answering it: tests use this to prove what a reader asked for.
    original = replicator.Peer.on_request

    def on_request(self: replicator.Peer, msg: Request) -> None:
        if msg.block is not None:
            which = index_of.get(self.core.discovery_key, -1)
            out({"event": "request", "core": which, "index": msg.block.index})
        original(self, msg)

    replicator.Peer.on_request = on_request  # type: ignore[method-assign]

    def on_error(err: HyperlobbyError) -> None:
        out({"event": "error", "error": str(err)})

    rep = Replication(store, on_error=on_error)
    for core in cores:
        rep.add(core)
    _host, port = await rep.listen("127.0.0.1", int(config.get("port", 0)))
    out(
        {
            "event": "listening",
            "port": port,
            "cores": [
                {"key": c.key.hex(), "discoveryKey": c.discovery_key.hex(), "length": c.length} for c in cores
            ],
        }
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            msg = json.loads(line)
            if msg["cmd"] == "append":
                core = cores[msg["core"]]
                core.append([bytes.fromhex(b) for b in msg["blocks"]])
                out({"event": "appended", "core": msg["core"], "length": core.length})
            elif msg["cmd"] == "exit":
                break
    finally:
        await rep.close()
        store.close()


if __name__ == "__main__":
    asyncio.run(main())
