// JS HyperDHT nodes on 127.0.0.1 for hyperlobby's HyperDHT interop tests
// (tests/test_hyperdht_interop.py).
//
//   node peers/hyperdht_peer.js <count> [bootstrap host:port ...]
//
// Without bootstrap addresses it starts @hyperswarm/testnet's createTestnet(count) with host
// 127.0.0.1 (every node binds 127.0.0.1 and bootstraps from the first). With addresses (all
// must be 127.x) it starts <count> persistent, unfirewalled hyperdht nodes bound to 127.0.0.1
// that bootstrap only from them (e.g. a Python bootstrapper). hyperdht would fall back to the
// public bootstrap list when given none; this script always passes an explicit loopback list.
// Prints {ready, bootstrap: [{host, port}], nodes: [{port, id}]}, then serves one JSON command
// per stdin line (lines.js), answering each with one JSON line. Node indexes: `from`.
//
//   {cmd: "node", ephemeral, bootstrap?}           add a node (default: our bootstrap list)
//   {cmd: "announce", from, topic, seed, relays?}  announce keyPair(seed) under topic
//   {cmd: "unannounce", from, topic, seed}
//   {cmd: "lookup", from, topic, retries?}         every reply: {from, peers: [{publicKey, relayAddresses}]}
//                                                  (retries: per-request resends, hyperdht's query option)
//   {cmd: "findPeer", from, publicKey}             every reply: {from, publicKey}
//   {cmd: "mutablePut", from, seed, value, seq}    -> {publicKey, seq, signature}
//   {cmd: "mutableGet", from, publicKey, seq?}     -> {value, seq, signature} | {value: null}
//   {cmd: "immutablePut", from, value}             -> {hash}
//   {cmd: "immutableGet", from, hash}              -> {value} | {value: null}
//   {cmd: "listen", from, seed}                    a hyperdht server that echoes what it reads
//   {cmd: "connect", from, publicKey, message}     connect, write, read the echo (bounded 15 s)
//   {cmd: "rawHandshake", from, target, noise, host, port, relayAddress?}
//                                                  hyperdht's own router client: one PEER_HANDSHAKE
//                                                  -> {noise, relayed, serverAddress, clientAddress}
//   {cmd: "rawHolepunch", from, target, id, payload, host, port}  -> {payload, peerAddress}
//   {cmd: "fakeServer", from, seed}                a router entry for hash(publicKey) whose callbacks
//                                                  answer "js:" + noise / payload (no Noise), kept
//                                                  announced by hyperdht's own Announcer -> {publicKey, relays}
//   {cmd: "bench", from, rounds}                   time rounds of announce, lookup, mutablePut/Get,
//                                                  immutablePut/Get in-process -> {ms: {op: [..]}}
//   {cmd: "destroy", index}                        destroy one node (it goes away)
//   {cmd: "quit"}
// Values, topics and keys are hex. Gives up after 120 s.
'use strict'

const DHT = require('hyperdht')
const createTestnet = require('@hyperswarm/testnet')
const b4a = require('b4a')
const Announcer = require('hyperdht/lib/announcer')
const { out, serveCommands, runMain } = require('./lines')

const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const buf = (h) => b4a.from(h, 'hex')
const addr = (a) => ({ host: a.host, port: a.port })

const deadline = setTimeout(() => {
  out({ event: 'timeout' })
  process.exit(3)
}, 120000)

function loopbackOnly(a) {
  const host = typeof a === 'string' ? a.split(':')[0] : a.host
  if (!host.startsWith('127.')) throw new Error('refusing non-loopback address ' + JSON.stringify(a))
  return a
}

function withTimeout(p, ms, what) {
  let timer
  return Promise.race([
    p,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(what + ' timed out')), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

async function main() {
  const count = Number(process.argv[2] || 5)
  const extra = process.argv.slice(3).map(loopbackOnly)
  let nodes
  let bootstrap
  if (extra.length === 0) {
    const testnet = await createTestnet(count, { host: '127.0.0.1' })
    nodes = testnet.nodes
    bootstrap = testnet.bootstrap.map(addr)
  } else {
    bootstrap = extra.map((s) => ({ host: s.split(':')[0], port: Number(s.split(':')[1]) }))
    nodes = []
    for (let i = 0; i < count; i++) {
      const node = new DHT({ bootstrap, host: '127.0.0.1', ephemeral: false, firewalled: false })
      await node.fullyBootstrapped()
      nodes.push(node)
    }
  }
  out({ ready: true, bootstrap, nodes: nodes.map((n) => ({ port: n.address().port, id: hex(n.id) })) })

  const servers = []
  serveCommands(async (msg) => {
    const node = msg.from !== undefined ? nodes[msg.from] : null
    switch (msg.cmd) {
      case 'node': {
        const list = (msg.bootstrap || bootstrap).map(loopbackOnly)
        const n = new DHT(
          msg.ephemeral
            ? { bootstrap: list, host: '127.0.0.1', ephemeral: true }
            : { bootstrap: list, host: '127.0.0.1', ephemeral: false, firewalled: false }
        )
        await n.fullyBootstrapped()
        nodes.push(n)
        out({ index: nodes.length - 1, port: n.address().port, id: hex(n.id) })
        return
      }
      case 'announce': {
        const kp = DHT.keyPair(buf(msg.seed))
        const relays = (msg.relays || []).map(loopbackOnly)
        const q = node.announce(buf(msg.topic), kp, relays)
        await q.finished()
        out({ publicKey: hex(kp.publicKey), closest: q.closestNodes.map(addr) })
        return
      }
      case 'unannounce': {
        const kp = DHT.keyPair(buf(msg.seed))
        await node.unannounce(buf(msg.topic), kp)
        out({ ok: true })
        return
      }
      case 'lookup': {
        const replies = []
        const opts = msg.retries !== undefined ? { retries: msg.retries } : {}
        for await (const r of node.lookup(buf(msg.topic), opts)) {
          replies.push({
            from: addr(r.from),
            peers: r.peers.map((p) => ({ publicKey: hex(p.publicKey), relayAddresses: p.relayAddresses.map(addr) }))
          })
        }
        out({ replies })
        return
      }
      case 'findPeer': {
        const replies = []
        for await (const r of node.findPeer(buf(msg.publicKey))) {
          replies.push({ from: addr(r.from), publicKey: hex(r.peer.publicKey) })
        }
        out({ replies })
        return
      }
      case 'mutablePut': {
        const kp = DHT.keyPair(buf(msg.seed))
        const res = await node.mutablePut(kp, buf(msg.value), { seq: msg.seq || 0 })
        out({ publicKey: hex(res.publicKey), seq: res.seq, signature: hex(res.signature) })
        return
      }
      case 'mutableGet': {
        const res = await node.mutableGet(buf(msg.publicKey), { seq: msg.seq || 0 })
        out(res ? { value: hex(res.value), seq: res.seq, signature: hex(res.signature) } : { value: null })
        return
      }
      case 'immutablePut': {
        const res = await node.immutablePut(buf(msg.value))
        out({ hash: hex(res.hash) })
        return
      }
      case 'immutableGet': {
        const res = await node.immutableGet(buf(msg.hash))
        out({ value: res ? hex(res.value) : null })
        return
      }
      case 'listen': {
        const kp = DHT.keyPair(buf(msg.seed))
        const server = node.createServer((socket) => {
          socket.on('data', (d) => socket.write(d))
          socket.on('error', () => {})
        })
        await server.listen(kp)
        servers.push(server)
        out({ publicKey: hex(kp.publicKey) })
        return
      }
      case 'connect': {
        const socket = node.connect(buf(msg.publicKey))
        socket.on('error', () => {})
        const echoed = await withTimeout(
          new Promise((resolve, reject) => {
            socket.once('open', () => socket.write(buf(msg.message)))
            socket.once('data', resolve)
            socket.once('error', reject)
            socket.once('close', () => reject(new Error('closed before echo')))
          }),
          15000,
          'connect'
        )
        socket.destroy()
        out({ echoed: hex(echoed) })
        return
      }
      case 'rawHandshake': {
        const to = loopbackOnly({ host: msg.host, port: msg.port })
        const res = await node._router.peerHandshake(
          buf(msg.target),
          { noise: buf(msg.noise), peerAddress: null, relayAddress: msg.relayAddress ? loopbackOnly(msg.relayAddress) : null },
          to
        )
        out({ noise: hex(res.noise), relayed: res.relayed, serverAddress: addr(res.serverAddress), clientAddress: addr(res.clientAddress) })
        return
      }
      case 'rawHolepunch': {
        const to = loopbackOnly({ host: msg.host, port: msg.port })
        const res = await node._router.peerHolepunch(buf(msg.target), { id: msg.id, payload: buf(msg.payload), peerAddress: null }, to)
        out({ payload: hex(res.payload), peerAddress: addr(res.peerAddress) })
        return
      }
      case 'fakeServer': {
        const kp = DHT.keyPair(buf(msg.seed))
        const target = DHT.hash(kp.publicKey)
        const ann = new Announcer(node, kp, target)
        node._router.set(target, {
          relay: null,
          record: ann.record,
          onpeerhandshake: async ({ noise }) => ({ socket: null, noise: b4a.concat([b4a.from('js:'), noise]) }),
          onpeerholepunch: async ({ payload }) => ({ socket: null, payload: b4a.concat([b4a.from('js:'), payload]) })
        })
        await ann.start()
        servers.push({ close: () => ann.stop() })
        out({ publicKey: hex(kp.publicKey), relays: ann.relays.map((r) => addr(r.relayAddress)) })
        return
      }
      case 'bench': {
        const ms = { announce: [], lookup: [], mutablePut: [], mutableGet: [], immutablePut: [], immutableGet: [] }
        const time = async (op, fn) => {
          const t0 = process.hrtime.bigint()
          const r = await fn()
          ms[op].push(Number(process.hrtime.bigint() - t0) / 1e6)
          return r
        }
        for (let i = 0; i < msg.rounds; i++) {
          const kp = DHT.keyPair()
          const topic = DHT.hash(b4a.from('bench topic ' + i + ' ' + Math.random()))
          await time('announce', () => node.announce(topic, kp, []).finished())
          const seen = await time('lookup', async () => {
            let n = 0
            for await (const r of node.lookup(topic)) n += r.peers.length
            return n
          })
          if (seen === 0) throw new Error('bench lookup found nothing')
          const value = b4a.from('bench value ' + i + ' ' + Math.random())
          await time('mutablePut', () => node.mutablePut(kp, value, { seq: 1 }))
          const got = await time('mutableGet', () => node.mutableGet(kp.publicKey))
          if (!got || !b4a.equals(got.value, value)) throw new Error('bench mutableGet mismatch')
          const { hash } = await time('immutablePut', () => node.immutablePut(value))
          const imm = await time('immutableGet', () => node.immutableGet(hash))
          if (!imm) throw new Error('bench immutableGet found nothing')
        }
        out({ ms })
        return
      }
      case 'destroy': {
        await nodes[msg.index].destroy({ force: true })
        out({ ok: true })
        return
      }
      case 'quit': {
        for (const s of servers) await s.close().catch(() => {})
        for (const n of nodes) await n.destroy({ force: true }).catch(() => {})
        clearTimeout(deadline)
        out({ ok: true })
        process.exit(0)
      }
    }
    out({ error: 'unknown cmd ' + msg.cmd })
  })
}

runMain(main)
