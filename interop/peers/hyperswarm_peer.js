// JS hyperswarm 4 peers on a loopback DHT, for hyperlobby's swarm interop tests and bench
// (tests/test_swarm_interop.py, bench/bench_swarm.py).
//
//   node peers/hyperswarm_peer.js <storageDir> [bootstrap HOST:PORT,...]
//
// Without a bootstrap list it starts @hyperswarm/testnet (3 persistent, unfirewalled hyperdht
// nodes on 127.0.0.1 bootstrapping only from each other). Either way it prints
// {ready, bootstrap: ["127.0.0.1:PORT", ...]}. Every swarm gets its own fresh hyperdht node
// bound to 127.0.0.1 with that bootstrap list; any address that is not 127.x is refused.
// Then one JSON command per stdin line, one JSON line back:
//
//   {cmd: "swarm", blocks?: [hex], coreKey?: hex}
//       a Hyperswarm with one hypercore, replicated over every connection it makes or takes:
//       a writable core holding `blocks`, or a reader of `coreKey`  -> {id, publicKey, coreKey}
//   {cmd: "join", id, topic, server?, client?}  join and flush  -> {ok, ms}
//   {cmd: "joinPeer", id, publicKey}  -> {ok}
//   {cmd: "waitConnection", id}  until the swarm has a connection  -> {ms, remotePublicKey, initiator}
//   {cmd: "waitLength", id, length}  until the reader core holds blocks 0..length-1
//       -> {ms, sinceConnection (ms from the first connection to the last block), digests: [sha256 hex]}
//   {cmd: "peers", id}  -> {connections: [{remotePublicKey, initiator, handshakeHash}], stats}
//   {cmd: "leave", id, topic}  -> {ok}
//   {cmd: "destroy", id}  -> {ok}
//   {cmd: "quit"}
//
// Every wait is bounded; the whole process gives up after 300 s.
'use strict'

const path = require('path')
const crypto = require('crypto')
const DHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const Hyperswarm = require('hyperswarm')
const Hypercore = require('hypercore')
const b4a = require('b4a')
const { out, serveCommands, runMain, withTimeout, loopback, giveUpAfter } = require('./lines')

const hex = (b) => b4a.toString(b, 'hex')
const unhex = (s) => b4a.from(s, 'hex')
giveUpAfter(300000)

function parseBootstrap(text) {
  return text
    .split(',')
    .filter(Boolean)
    .map((s) => {
      const i = s.lastIndexOf(':')
      return loopback({ host: s.slice(0, i), port: Number(s.slice(i + 1)) })
    })
}

async function until(check, ms, what) {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timeout: ' + what)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function main() {
  const storage = process.argv[2]
  let testnet = null
  let bootstrap
  if (process.argv[3]) {
    bootstrap = parseBootstrap(process.argv[3])
  } else {
    testnet = await createTestnet(3, { host: '127.0.0.1' })
    bootstrap = testnet.bootstrap.map(loopback)
    for (const node of testnet.nodes) loopback(node.address())
  }
  const swarms = []
  let cores = 0

  async function makeSwarm(msg) {
    const dht = new DHT({ bootstrap, host: '127.0.0.1' })
    await dht.fullyBootstrapped()
    loopback(dht.address())
    const swarm = new Hyperswarm({ dht })
    const core = msg.coreKey
      ? new Hypercore(path.join(storage, 'core' + cores++), unhex(msg.coreKey))
      : new Hypercore(path.join(storage, 'core' + cores++))
    await core.ready()
    if (msg.blocks && msg.blocks.length) await core.append(msg.blocks.map(unhex))
    const entry = { swarm, dht, core, started: Date.now(), firstConnection: null }
    swarm.on('connection', (conn) => {
      conn.on('error', () => {})
      if (entry.firstConnection === null) entry.firstConnection = Date.now()
      core.replicate(conn)
    })
    if (!core.writable) core.download({ start: 0, end: -1 })
    swarms.push(entry)
    return { id: swarms.length - 1, publicKey: hex(swarm.keyPair.publicKey), coreKey: hex(core.key) }
  }

  function connections(entry) {
    return [...entry.swarm.connections].map((c) => ({
      remotePublicKey: hex(c.remotePublicKey),
      initiator: c.isInitiator,
      handshakeHash: c.handshakeHash ? hex(c.handshakeHash) : null
    }))
  }

  out({ ready: true, bootstrap: bootstrap.map((a) => a.host + ':' + a.port) })

  serveCommands(async (msg) => {
    const entry = msg.id === undefined ? null : swarms[msg.id]
    switch (msg.cmd) {
      case 'swarm':
        return out(await makeSwarm(msg))
      case 'join': {
        const start = Date.now()
        entry.started = start
        const discovery = entry.swarm.join(unhex(msg.topic), {
          server: msg.server !== false,
          client: msg.client !== false
        })
        await withTimeout(discovery.flushed(), 30000, 'flushed')
        await withTimeout(entry.swarm.flush(), 30000, 'flush')
        return out({ ok: true, ms: Date.now() - start })
      }
      case 'joinPeer':
        entry.swarm.joinPeer(unhex(msg.publicKey))
        return out({ ok: true })
      case 'waitConnection': {
        await until(() => entry.swarm.connections.size > 0, 30000, 'connection')
        const [c] = connections(entry)
        return out({ ms: entry.firstConnection - entry.started, ...c })
      }
      case 'waitLength': {
        const start = Date.now()
        await withTimeout(
          (async () => {
            await entry.core.update({ wait: true })
            for (let i = 0; i < msg.length; i++) await entry.core.get(i)
          })(),
          60000,
          'waitLength'
        )
        const done = Date.now()
        const digests = []
        for (let i = 0; i < msg.length; i++) {
          digests.push(crypto.createHash('sha256').update(await entry.core.get(i)).digest('hex'))
        }
        return out({ ms: done - start, sinceConnection: done - entry.firstConnection, digests })
      }
      case 'peers':
        return out({ connections: connections(entry), stats: entry.swarm.stats })
      case 'leave':
        await withTimeout(entry.swarm.leave(unhex(msg.topic)), 20000, 'leave')
        return out({ ok: true })
      case 'destroy':
        await withTimeout(entry.swarm.destroy(), 20000, 'destroy')
        await entry.core.close()
        return out({ ok: true })
      case 'quit':
        for (const s of swarms) {
          await withTimeout(s.swarm.destroy(), 10000, 'destroy').catch(() => {})
          await s.core.close().catch(() => {})
        }
        if (testnet) await withTimeout(testnet.destroy(), 10000, 'testnet').catch(() => {})
        out({ bye: true })
        process.exit(0)
    }
    throw new Error('unknown command ' + msg.cmd)
  })
}

runMain(main)
