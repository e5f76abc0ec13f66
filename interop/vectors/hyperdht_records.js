// Golden vectors for hyperlobby.swarm.hyperdht.persistent: what hyperdht 6.34.0 signs for
// ANNOUNCE, UNANNOUNCE and MUTABLE_PUT (lib/persistent.js's own static signers), the encoded
// request values a JS client sends, and what a JS node's store answers to them (fed to a real
// Persistent instance with a stub request object, so accept/refuse decisions come from JS).
// Output: interop/vectors/hyperdht_records.json
// (regenerate: cd interop && node vectors/hyperdht_records.js > vectors/hyperdht_records.json).
'use strict'

const c = require('compact-encoding')
const b4a = require('b4a')
const crypto = require('crypto')
const sodium = require('sodium-universal')
const m = require('hyperdht/lib/messages')
const Persistent = require('hyperdht/lib/persistent')
const { createKeyPair } = require('hyperdht/lib/crypto')

const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const det = (label, n) => {
  let out = b4a.alloc(0)
  let i = 0
  while (out.length < n) out = b4a.concat([out, crypto.createHash('sha256').update(label + ':' + i++).digest()])
  return out.subarray(0, n)
}
const hash = (b) => {
  const out = b4a.alloc(32)
  sodium.crypto_generichash(out, b)
  return out
}

const kp = createKeyPair(det('owner', 32))
const other = createKeyPair(det('other', 32))
const nodeId = det('node id', 32)
const token = det('token', 32)
const topic = det('topic', 32)
const refreshSecret = det('refresh secret', 32)
const refresh = hash(refreshSecret) // an announce carries the hash; a refresh shows the preimage
const relays = [
  { host: '127.0.0.1', port: 4001 },
  { host: '127.0.0.2', port: 4002 },
  { host: '127.0.0.3', port: 4003 },
  { host: '127.0.0.4', port: 4004 }
]

// A minimal stand-in for the DHT a Persistent talks to: a router map and our id.
function fakeDht() {
  const routes = new Map()
  return {
    id: nodeId,
    plugins: new Map(),
    _router: {
      set: (k, v) => routes.set(typeof k === 'string' ? k : hex(k), v),
      get: (k) => routes.get(typeof k === 'string' ? k : hex(k)) || null,
      delete: (k) => routes.delete(typeof k === 'string' ? k : hex(k))
    }
  }
}

// Run one request through a JS store and record how it answered.
function ask(p, method, { target, token: tok, value }) {
  const outcome = { kind: 'silent' }
  const req = {
    target,
    token: tok || null,
    value: value || null,
    from: { host: '127.0.0.9', port: 5000 },
    reply(v, opts = {}) {
      outcome.kind = 'reply'
      outcome.value = hex(v)
      outcome.token = opts.token !== false
      outcome.closerNodes = opts.closerNodes !== false
    },
    error(code) {
      outcome.kind = 'error'
      outcome.error = code
    }
  }
  p[method](req)
  return outcome
}

const opts = (n) => ({ maxSize: n, maxAge: 0 })
const store = () =>
  new Persistent(fakeDht(), {
    records: opts(1000),
    refreshes: opts(1000),
    mutables: opts(1000),
    immutables: opts(1000),
    bumps: opts(1000)
  })

async function main() {
  const announces = []
  for (const [label, peer, withRefresh, bump, target] of [
    ['plain', { publicKey: kp.publicKey, relayAddresses: [] }, false, 0, topic],
    ['relays', { publicKey: kp.publicKey, relayAddresses: relays.slice(0, 2) }, false, 0, topic],
    ['four relays', { publicKey: kp.publicKey, relayAddresses: relays }, false, 0, topic],
    ['refresh and bump', { publicKey: kp.publicKey, relayAddresses: [] }, true, 1700000000000, topic],
    ['self', { publicKey: kp.publicKey, relayAddresses: relays.slice(0, 1) }, false, 0, hash(kp.publicKey)]
  ]) {
    const ann = { peer, refresh: withRefresh ? refresh : null, signature: null, bump }
    ann.signature = await Persistent.signAnnounce(target, token, nodeId, ann, kp)
    const value = c.encode(m.announce, ann)
    const unann = { peer: { publicKey: kp.publicKey, relayAddresses: [] }, refresh: null, signature: null }
    unann.signature = await Persistent.signUnannounce(target, token, nodeId, unann, kp)
    const unannValue = c.encode(m.announce, unann)

    const p = store()
    const stored = ask(p, 'onannounce', { target, token, value })
    const lookup = ask(p, 'onlookup', { target })
    const findPeer = ask(p, 'onfindpeer', { target })
    // the same announce signed for another node id / token, or by another key: refused
    const wrongId = { ...ann, signature: await Persistent.signAnnounce(target, token, det('x', 32), ann, kp) }
    const wrongToken = { ...ann, signature: await Persistent.signAnnounce(target, det('y', 32), nodeId, ann, kp) }
    const wrongKey = { ...ann, signature: await Persistent.signAnnounce(target, token, nodeId, ann, other) }
    const p2 = store()
    const refused = [wrongId, wrongToken, wrongKey].map((a) =>
      ask(p2, 'onannounce', { target, token, value: c.encode(m.announce, a) })
    )
    const afterRefused = ask(p2, 'onlookup', { target })
    const removed = ask(p, 'onunannounce', { target, token, value: unannValue })
    const afterUnannounce = ask(p, 'onlookup', { target })
    // a refresh-only announce (no peer, no signature) with the preimage brings the record back
    const refreshValue = c.encode(m.announce, { peer: null, refresh: refreshSecret, signature: null, bump: 0 })
    const refreshed = ask(p, 'onannounce', { target, token, value: refreshValue })
    const afterRefresh = ask(p, 'onlookup', { target })

    announces.push({
      label,
      target: hex(target),
      token: hex(token),
      nodeId: hex(nodeId),
      publicKey: hex(kp.publicKey),
      secretKey: hex(kp.secretKey),
      refresh: withRefresh ? hex(refresh) : null,
      bump,
      relayAddresses: peer.relayAddresses,
      signature: hex(ann.signature),
      value: hex(value),
      unannounceSignature: hex(unann.signature),
      unannounceValue: hex(unannValue),
      stored,
      lookup,
      findPeer,
      refused,
      afterRefused,
      removed,
      afterUnannounce,
      refreshValue: hex(refreshValue),
      refreshed,
      afterRefresh
    })
  }

  const mutables = []
  const p = store()
  const target = hash(kp.publicKey)
  for (const [seq, text] of [
    [0, 'first'],
    [0, 'first'],
    [0, 'reused'],
    [5, 'fifth'],
    [3, 'too low'],
    [300, 'x'.repeat(300)]
  ]) {
    const value = b4a.from(text)
    const signature = await Persistent.signMutable(seq, value, kp)
    const put = c.encode(m.mutablePutRequest, { publicKey: kp.publicKey, seq, value, signature })
    const res = ask(p, 'onmutableput', { target, token, value: put })
    const get0 = ask(p, 'onmutableget', { target, value: c.encode(c.uint, 0) })
    const getHigh = ask(p, 'onmutableget', { target, value: c.encode(c.uint, 1000) })
    mutables.push({
      seq,
      value: hex(value),
      signature: hex(signature),
      signable: hex(b4a.concat([require('hyperdht/lib/constants').NS.MUTABLE_PUT, hash(c.encode(m.mutableSignable, { seq, value }))])),
      put: hex(put),
      res,
      get0,
      getHigh
    })
  }
  // forged: a valid signature over another value, and a record under the wrong target
  const sig = await Persistent.signMutable(9, b4a.from('real'), kp)
  const forged = c.encode(m.mutablePutRequest, { publicKey: kp.publicKey, seq: 9, value: b4a.from('fake'), signature: sig })
  const wrongTarget = c.encode(m.mutablePutRequest, { publicKey: kp.publicKey, seq: 9, value: b4a.from('real'), signature: sig })
  const mutableRefused = [
    ask(p, 'onmutableput', { target, token, value: forged }),
    ask(p, 'onmutableput', { target: det('elsewhere', 32), token, value: wrongTarget }),
    ask(p, 'onmutableput', { target, token: null, value: wrongTarget })
  ]

  const imm = store()
  const iv = b4a.from('an immutable value')
  const immutable = {
    value: hex(iv),
    target: hex(hash(iv)),
    put: ask(imm, 'onimmutableput', { target: hash(iv), token, value: iv }),
    wrongHash: ask(imm, 'onimmutableput', { target: det('nope', 32), token, value: iv }),
    get: ask(imm, 'onimmutableget', { target: hash(iv) }),
    missing: ask(imm, 'onimmutableget', { target: det('nope', 32) })
  }

  process.stdout.write(JSON.stringify({ announces, mutables, mutableRefused, immutable }, null, 1) + '\n')
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
