// JS hyperdht peers on a loopback testnet for hyperlobby's connect interop tests
// (tests/test_hyperdht_connect_interop.py).
//
//   node peers/hyperdht_connect_peer.js <storageDir> [size]
//
// Starts @hyperswarm/testnet's createTestnet(size = 3, {host: '127.0.0.1'}) (persistent, unfirewalled
// hyperdht nodes on 127.0.0.1, bootstrapping only from each other) and prints
// {ready, bootstrap: [{host, port}]}. Every further node is made with testnet.createNode()
// (bound to 127.0.0.1, bootstrap = the testnet), so nothing binds or sends off loopback.
// Then one JSON command per stdin line, one JSON line back:
//
//   {cmd: "listen", mode: "echo"|"core", reject?: bool, firewalled?: bool, blocks?: [hex]}
//       a server on a fresh node. echo: answers each message m with "echo:" + m.
//       core: a writable hypercore with `blocks`, replicated over every connection.
//       reject: its firewall refuses everyone (and records who knocked).
//       -> {id, publicKey, relayAddresses, coreKey?}
//   {cmd: "connect", publicKey, message?: hex, relayAddresses?, firewalled?, lan?, fastOpen?}
//       a client on a fresh node: connect, send `message`, wait for one message back
//       -> {ok: true, reply: hex, ms, remoteAddress, bound, rawBytesRead, rawBytesWritten}
//          | {ok: false, code, message, ms}
//          (rawBytes*: the client's secret-stream counters once the reply arrived)
//   {cmd: "fetch", publicKey, coreKey, length}
//       connect and replicate a reader core until it has `length` blocks -> {blocks: [hex]}
//   {cmd: "knocks", id}  public keys the rejecting server's firewall saw -> {knocks: [hex]}
//   {cmd: "received", id}  messages the echo server got so far -> {messages: [hex]}
//   {cmd: "counters", id}  the secret-stream byte counters of the server's connections
//       -> {conns: [{remotePublicKey, rawBytesRead, rawBytesWritten}]}
//   {cmd: "punches", id}  the server node's holepunch statistics -> {punches: {consistent, random, open}}
//   {cmd: "relay"}  a blind relay (blind-relay's Server, as hyperdht's own tests set it up) on a
//       fresh persistent node -> {id, publicKey}
//   {cmd: "relayStats", id}  that relay's stats -> {pairings: {...}, streams: {...}, sessions: {...}}
//   listen and connect also take {relayThrough: hex, holepunch: false}: route through that relay;
//       holepunch false disables punching (a server never punches; a client aborts its punch), so
//       the relay is the only way.
//   connect answers relayed: whether the connection runs through the relay (its stream's remote
//       is the relay's address).
//   {cmd: "bound"}  the host of every socket any JS node has bound (dht-rpc's client and
//       server sockets, the holepunch socket pool's) -> {hosts: [host]}
//   {cmd: "quit"}
//
// Every wait is bounded; the whole process gives up after 120 s.
'use strict'

const path = require('path')
const createTestnet = require('hyperdht/testnet')
const Hypercore = require('hypercore')
const b4a = require('b4a')
const { Server: RelayServer } = require('blind-relay')
const { out, serveCommands, runMain, withTimeout, loopback, giveUpAfter } = require('./lines')

const hex = (b) => b4a.toString(b, 'hex')
const unhex = (s) => b4a.from(s, 'hex')
giveUpAfter(120000)

async function main() {
  const storage = process.argv[2]
  const testnet = await createTestnet(Number(process.argv[3] || 3), { host: '127.0.0.1' })
  const bootstrap = testnet.bootstrap.map(loopback)
  for (const node of testnet.nodes) loopback(node.address())
  const servers = []
  const relays = []
  let coreCount = 0

  function boundHosts() {
    const hosts = []
    for (const node of testnet.nodes) {
      hosts.push(node.io.serverSocket.address().host, node.io.clientSocket.address().host)
      for (const socket of node._socketPool._sockets.keys()) hosts.push(socket.address().host)
    }
    return hosts
  }

  // firewalled: false -> a persistent, reachable node; true -> stays firewalled (no quick
  // reachability check while bootstrapping); undefined -> hyperdht's default (ephemeral, checks)
  async function freshNode(firewalled) {
    const opts =
      firewalled === false ? { ephemeral: false, firewalled: false } : firewalled ? { quickFirewall: false } : {}
    const node = testnet.createNode(opts)
    await node.fullyBootstrapped()
    loopback(node.address())
    return node
  }

  async function listen(msg) {
    const node = await freshNode(msg.firewalled)
    const entry = { knocks: [], messages: [], conns: [] }
    let core = null
    if (msg.mode === 'core') {
      core = new Hypercore(path.join(storage, 'core' + coreCount++))
      await core.ready()
      if (msg.blocks && msg.blocks.length) await core.append(msg.blocks.map(unhex))
    }
    const server = node.createServer({
      relayThrough: msg.relayThrough ? unhex(msg.relayThrough) : null,
      holepunch: msg.holepunch === false ? false : undefined,
      firewall(remotePublicKey) {
        if (!msg.reject) return false
        entry.knocks.push(hex(remotePublicKey))
        return true
      }
    })
    server.on('connection', (socket) => {
      entry.conns.push(socket)
      socket.on('error', () => {})
      if (core) {
        core.replicate(socket)
        return
      }
      socket.on('data', (data) => {
        entry.messages.push(hex(data))
        socket.write(b4a.concat([b4a.from('echo:'), data]))
      })
    })
    await withTimeout(server.listen(), 20000, 'listen')
    entry.server = server
    entry.node = node
    entry.core = core
    servers.push(entry)
    return {
      id: servers.length - 1,
      publicKey: hex(server.publicKey),
      relayAddresses: server.relayAddresses.map(loopback),
      coreKey: core ? hex(core.key) : null
    }
  }

  async function connect(msg) {
    const node = await freshNode(msg.firewalled)
    const start = Date.now()
    const opts = {}
    if (msg.relayAddresses) opts.relayAddresses = msg.relayAddresses.map(loopback)
    if (msg.lan === false) opts.localConnection = false // skip the same-host shortcut: holepunch
    if (msg.fastOpen === false) opts.fastOpen = false // no early probe: the punch round connects
    if (msg.relayThrough) opts.relayThrough = unhex(msg.relayThrough)
    if (msg.holepunch === false) opts.holepunch = () => false
    const socket = node.connect(unhex(msg.publicKey), opts)
    try {
      const reply = await withTimeout(
        new Promise((resolve, reject) => {
          socket.once('error', reject)
          socket.once('close', () => reject(new Error('closed before a reply')))
          socket.once('open', () => socket.write(unhex(msg.message || '68656c6c6f')))
          socket.once('data', resolve)
        }),
        20000,
        'connect'
      )
      const raw = socket.rawStream
      const result = {
        ok: true,
        reply: hex(reply),
        ms: Date.now() - start,
        remoteAddress: raw ? { host: raw.remoteHost, port: raw.remotePort } : null,
        relayed: !!(raw && msg.relayAddress && raw.remotePort === msg.relayAddress.port),
        handshakeHash: hex(socket.handshakeHash),
        punches: node.stats.punches,
        rawBytesRead: socket.rawBytesRead,
        rawBytesWritten: socket.rawBytesWritten,
        bound: boundHosts() // while the connection (and any punch socket) is still open
      }
      socket.end()
      return result
    } catch (err) {
      socket.destroy()
      return { ok: false, code: err.code || null, message: String(err.message), ms: Date.now() - start }
    }
  }

  async function fetch(msg) {
    const node = await freshNode(msg.firewalled)
    const core = new Hypercore(path.join(storage, 'core' + coreCount++), unhex(msg.coreKey))
    await core.ready()
    const socket = node.connect(unhex(msg.publicKey))
    socket.on('error', () => {})
    core.replicate(socket)
    const blocks = []
    await withTimeout(
      (async () => {
        for (let i = 0; i < msg.length; i++) blocks.push(hex(await core.get(i)))
      })(),
      20000,
      'fetch'
    )
    socket.end()
    await core.close()
    return { blocks, length: core.length }
  }

  async function relay() {
    const node = await freshNode(false)
    const server = new RelayServer({
      createStream(opts) {
        return node.createRawStream({ ...opts, framed: true })
      }
    })
    const dhtServer = node.createServer((socket) => {
      socket.on('error', () => {})
      const session = server.accept(socket, { id: socket.remotePublicKey })
      session.on('error', () => {})
    })
    await withTimeout(dhtServer.listen(), 20000, 'relay listen')
    relays.push({ server, dhtServer, node })
    return { id: relays.length - 1, publicKey: hex(dhtServer.publicKey), address: loopback(node.address()) }
  }

  function relayStats(id) {
    const { pairings, streams, sessions } = relays[id].server.stats
    return {
      pairings: { ...pairings },
      streams: { opened: streams.opened, closed: streams.closed, active: streams.active },
      sessions: { accepted: sessions.accepted, closed: sessions.closed, active: sessions.active }
    }
  }

  out({ ready: true, bootstrap })

  serveCommands(async (msg) => {
    switch (msg.cmd) {
      case 'listen':
        return out(await listen(msg))
      case 'connect':
        return out(await connect(msg))
      case 'fetch':
        return out(await fetch(msg))
      case 'knocks':
        return out({ knocks: servers[msg.id].knocks })
      case 'received':
        return out({ messages: servers[msg.id].messages })
      case 'punches':
        return out({ punches: servers[msg.id].node.stats.punches })
      case 'bound':
        return out({ hosts: boundHosts() })
      case 'relay':
        return out(await relay())
      case 'relayStats':
        return out(relayStats(msg.id))
      case 'counters':
        return out({
          conns: servers[msg.id].conns.map((c) => ({
            remotePublicKey: hex(c.remotePublicKey),
            rawBytesRead: c.rawBytesRead,
            rawBytesWritten: c.rawBytesWritten
          }))
        })
      case 'quit':
        for (const s of servers) {
          for (const c of s.conns) c.destroy()
          if (s.core) await s.core.close()
        }
        await withTimeout(testnet.destroy(), 10000, 'destroy').catch(() => {})
        out({ bye: true })
        process.exit(0)
    }
    throw new Error('unknown command ' + msg.cmd)
  })
}

runMain(main)
