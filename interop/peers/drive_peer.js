'use strict'
// A real JS Hyperdrive peer for hyperlobby's drive interop tests, driven by JSON lines.
//
//   node peers/drive_peer.js '<config json>'
//
// config: {storage: dir, key: hex (open that drive read-only; omit to create/open the store's own
//          drive), listen: true (accept peers on 127.0.0.1, any port), connect: port (dial
//          127.0.0.1:port)}. Every connection is a secret-stream carrying store.replicate().
// Prints {"event":"ready","key","contentKey","version","port"} once open (port when listening).
//
// Commands on stdin, one JSON per line; each answers with one event:
//   {"cmd":"put","path","text"|"hex"|"gen":{size,seed},"executable","metadata"}   -> ok {version}
//   {"cmd":"symlink","path","target"} / {"cmd":"del","path"}                    -> ok {version}
//   {"cmd":"stream_dedup","path","chunks":[{size,seed}...]}  (blockMap blob)    -> ok {version}
//   {"cmd":"wait_version","version":N}  (reader: update until version >= N)     -> ok {version}
//   {"cmd":"dump"}  -> dump {version, contentKey, entries:[{seq,key,value,size,sha256}], readdir}
//                      (fetching every blob from peers when reading a remote drive)
//   {"cmd":"exit"}
// Errors answer {"event":"error","message"}. Only 127.0.0.1 is ever used.

const net = require('net')
const crypto = require('crypto')
const { out, serveCommands, runMain } = require('./lines')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const SecretStream = require('@hyperswarm/secret-stream')
const b4a = require('b4a')

const config = JSON.parse(process.argv[2])
const HOST = '127.0.0.1'

const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')
const hex = (b) => (b ? b4a.toString(b, 'hex') : null)

// Same deterministic bytes as tests/drive_helpers.py gen().
function gen(size, seed) {
  const b = b4a.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 255
  return b
}

function dataOf(msg) {
  if (msg.gen) return gen(msg.gen.size, msg.gen.seed)
  if (msg.hex !== undefined) return b4a.from(msg.hex, 'hex')
  return b4a.from(msg.text || '', 'utf-8')
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main() {
  const store = new Corestore(config.storage)
  const drive = config.key ? new Hyperdrive(store, b4a.from(config.key, 'hex')) : new Hyperdrive(store)
  await drive.ready()

  const streams = new Set()
  function replicate(isInitiator, socket) {
    const stream = new SecretStream(isInitiator, socket)
    stream.on('error', () => {})
    socket.on('error', () => {})
    store.replicate(stream)
    streams.add(stream)
    stream.on('close', () => streams.delete(stream))
  }

  let server = null
  let port = null
  if (config.listen) {
    server = net.createServer((socket) => replicate(false, socket))
    await new Promise((resolve) => server.listen(0, HOST, resolve))
    port = server.address().port
  }
  if (config.connect) replicate(true, net.connect(config.connect, HOST))

  out({ event: 'ready', key: hex(drive.key), contentKey: hex(drive.contentKey), version: drive.version, port })

  async function waitVersion(version) {
    const deadline = Date.now() + 20000
    while (drive.version < version) {
      if (Date.now() > deadline) throw new Error('timed out waiting for version ' + version)
      if (drive.core.peers.length > 0) await drive.update({ wait: true })
      if (drive.version < version) await sleep(20)
    }
  }

  async function dump() {
    if (!drive.writable) {
      const deadline = Date.now() + 20000
      while (drive.core.peers.length === 0 && Date.now() < deadline) await sleep(20)
      await drive.update({ wait: true })
    }
    const entries = []
    for await (const e of drive.list('/')) {
      const row = { seq: e.seq, key: e.key, value: e.value, size: null, sha256: null }
      if (e.value.blob) {
        const data = await drive.get(e.key)
        row.size = data.byteLength
        row.sha256 = sha(data)
      }
      entries.push(row)
    }
    const readdir = []
    for await (const name of drive.readdir('/')) readdir.push(name)
    return { version: drive.version, contentKey: hex(drive.contentKey), entries, readdir }
  }

  async function handle(msg) {
    if (msg.cmd === 'put') {
      await drive.put(msg.path, dataOf(msg), {
        executable: !!msg.executable,
        metadata: msg.metadata === undefined ? null : msg.metadata
      })
    } else if (msg.cmd === 'symlink') {
      await drive.symlink(msg.path, msg.target)
    } else if (msg.cmd === 'del') {
      await drive.del(msg.path)
    } else if (msg.cmd === 'stream_dedup') {
      const ws = drive.createWriteStream(msg.path, { dedup: true })
      for (const c of msg.chunks) ws.write(gen(c.size, c.seed))
      ws.end()
      await new Promise((resolve, reject) => {
        ws.on('close', resolve)
        ws.on('error', reject)
      })
    } else if (msg.cmd === 'wait_version') {
      await waitVersion(msg.version)
    } else if (msg.cmd === 'dump') {
      return out({ event: 'dump', ...(await dump()) })
    } else if (msg.cmd === 'exit') {
      for (const s of streams) s.destroy()
      if (server) server.close()
      await drive.close()
      process.exit(0)
    } else {
      throw new Error('unknown command ' + msg.cmd)
    }
    out({ event: 'ok', cmd: msg.cmd, version: drive.version })
  }

  serveCommands(handle)
}

runMain(main)
