'use strict'
// A JS social peer for hyperlobby's interop tests: a Hyperdrive holding (or reading) a user's
// profile.json / session.json, replicated over secret-stream on 127.0.0.1. JSON lines.
//
//   node peers/social_peer.js '<config json>'
//
// config: {storage: dir, key: hex (read that user's drive; omit to use the store's own drive),
//          listen: true (accept peers on 127.0.0.1, any port), connect: port (dial 127.0.0.1),
//          files: {"/profile.json": text, ...} (written at start when the drive is writable)}.
// Prints {"event":"ready","key","version","port"}.
//
// Commands on stdin, one JSON per line, each answered by one event:
//   {"cmd":"put","path","text"} / {"cmd":"del","path"}            -> ok {version}
//   {"cmd":"read"}  -> files {version, profile: text|null, session: text|null}
//   {"cmd":"wait","path","field","value"}  poll (update + get) until the JSON file's field equals
//        value; with field null, until the file is absent (value null) or present (value true)
//        -> files {...} (or error after 20 s)
//   {"cmd":"exit"}
// Only 127.0.0.1 is ever used.

const net = require('net')
const { out, serveCommands, runMain } = require('./lines')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const SecretStream = require('@hyperswarm/secret-stream')
const b4a = require('b4a')

const config = JSON.parse(process.argv[2])
const HOST = '127.0.0.1'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  const store = new Corestore(config.storage)
  const drive = config.key ? new Hyperdrive(store, b4a.from(config.key, 'hex')) : new Hyperdrive(store)
  await drive.ready()
  if (drive.writable && config.files) {
    for (const [path, text] of Object.entries(config.files)) await drive.put(path, b4a.from(text))
  }

  const streams = new Set()
  function replicate (isInitiator, socket) {
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
  out({ event: 'ready', key: b4a.toString(drive.key, 'hex'), version: drive.version, port })

  async function text (path) {
    const data = await drive.get(path, { wait: true, timeout: 10000 })
    return data ? b4a.toString(data) : null
  }

  async function read () {
    if (!drive.writable) {
      const deadline = Date.now() + 20000
      while (drive.core.peers.length === 0 && Date.now() < deadline) await sleep(20)
      await drive.update({ wait: true })
    }
    return { version: drive.version, profile: await text('/profile.json'), session: await text('/session.json') }
  }

  function matches (files, msg) {
    const raw = msg.path === '/profile.json' ? files.profile : files.session
    if (msg.field === null || msg.field === undefined) return msg.value === null ? raw === null : raw !== null
    if (raw === null) return false
    return JSON.stringify(JSON.parse(raw)[msg.field]) === JSON.stringify(msg.value)
  }

  async function handle (msg) {
    if (msg.cmd === 'put') {
      await drive.put(msg.path, b4a.from(msg.text))
    } else if (msg.cmd === 'del') {
      await drive.del(msg.path)
    } else if (msg.cmd === 'read') {
      return out({ event: 'files', ...(await read()) })
    } else if (msg.cmd === 'wait') {
      const deadline = Date.now() + 20000
      for (;;) {
        const files = await read()
        if (matches(files, msg)) return out({ event: 'files', ...files })
        if (Date.now() > deadline) throw new Error('timed out waiting for ' + JSON.stringify(msg))
        await sleep(50)
      }
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
