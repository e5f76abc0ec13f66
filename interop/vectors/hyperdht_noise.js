// Golden vectors for hyperlobby.wire.noise (NoiseIK) and hyperlobby.swarm.hyperdht
// (noise_wrap.py, secure_payload.py), printed by the pinned hyperdht 6.34.0 and its
// noise-handshake / noise-curve-ed / @hyperswarm/secret-stream.
// Run from interop/: `node vectors/hyperdht_noise.js > vectors/hyperdht_noise.json`.
//
// Ephemeral keys are random in JS; for stable bytes the key pair generator of noise-curve-ed is
// swapped for one that hands out key pairs from fixed seeds in call order (the initiator draws
// when writing msg1, the responder when writing msg2). The holepunch payload's nonce and local
// token secret come from sodium.randombytes_buf, which is swapped the same way while a payload
// is encrypted. secret-stream headers are drawn inside libsodium and stay random, so the
// secret-stream part records a JS transcript to be decrypted, not bytes to reproduce.
'use strict'

const curve = require('noise-curve-ed')
const sodium = require('sodium-universal')
const NoiseHandshake = require('noise-handshake')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const NoiseWrap = require('hyperdht/lib/noise-wrap')
const SecurePayload = require('hyperdht/lib/secure-payload')
const { NS } = require('hyperdht/lib/constants')
const m = require('hyperdht/lib/messages')
const c = require('compact-encoding')

const hex = (b) => Buffer.from(b).toString('hex')
const seed = (byte) => Buffer.alloc(32, byte)
const keyPair = (byte) => curve.generateKeyPair(seed(byte))

const realGenerate = curve.generateKeyPair
let queue = []
curve.generateKeyPair = function (priv) {
  if (priv) return realGenerate(priv)
  if (queue.length === 0) throw new Error('no fixed ephemeral seed left')
  return realGenerate(queue.shift())
}

function withRandom(byte, fn) {
  const real = sodium.randombytes_buf
  sodium.randombytes_buf = (buf) => buf.fill(byte)
  try {
    return fn()
  } finally {
    sodium.randombytes_buf = real
  }
}

const CLIENT_PAYLOAD = {
  error: 0,
  firewall: 0,
  holepunch: null,
  addresses4: [{ host: '127.0.0.1', port: 40001 }],
  addresses6: [],
  udx: { reusableSocket: false, id: 0x12345678, seq: 0 },
  secretStream: {},
  relayThrough: null
}

const SERVER_PAYLOAD = {
  error: 0,
  firewall: 0,
  holepunch: {
    id: 3,
    relays: [{ relayAddress: { host: '127.0.0.1', port: 50000 }, peerAddress: { host: '127.0.0.1', port: 50001 } }]
  },
  addresses4: [
    { host: '127.0.0.1', port: 50001 },
    { host: '127.0.0.2', port: 50002 }
  ],
  addresses6: null,
  udx: { reusableSocket: false, id: 77, seq: 0 },
  secretStream: {},
  relayThrough: null,
  relayAddresses: [{ host: '127.0.0.1', port: 50000 }]
}

// One PEER_HANDSHAKE exchange as connect.js and server.js run it.
function wrapSession(name, staticI, staticR, ephemeral, clientPayload, serverPayload) {
  queue = ephemeral.map(seed)
  const kpI = keyPair(staticI)
  const kpR = keyPair(staticR)
  const client = new NoiseWrap(kpI, kpR.publicKey)
  const server = new NoiseWrap(kpR, null)
  const msg1 = client.send(clientPayload)
  const seenByServer = server.recv(Buffer.from(msg1)) // recv zeroes the ephemeral it read, in place
  const msg2 = server.send(serverPayload)
  const seenByClient = client.recv(Buffer.from(msg2))
  const fc = client.final()
  const fs = server.final()
  const finals = (f) => ({
    is_initiator: f.isInitiator,
    public_key: hex(f.publicKey),
    remote_public_key: hex(f.remotePublicKey),
    remote_id: hex(f.remoteId),
    holepunch_secret: hex(f.holepunchSecret),
    hash: hex(f.hash),
    tx: hex(f.tx),
    rx: hex(f.rx)
  })
  return {
    name,
    initiator_seed: hex(seed(staticI)),
    responder_seed: hex(seed(staticR)),
    initiator_ephemeral_seed: hex(seed(ephemeral[0])),
    responder_ephemeral_seed: hex(seed(ephemeral[1])),
    client_payload: hex(c.encode(m.noisePayload, clientPayload)),
    server_payload: hex(c.encode(m.noisePayload, serverPayload)),
    msg1: hex(msg1),
    msg2: hex(msg2),
    payload_seen_by_server: hex(c.encode(m.noisePayload, seenByServer)),
    payload_seen_by_client: hex(c.encode(m.noisePayload, seenByClient)),
    client: finals(fc),
    server: finals(fs),
    fc,
    fs
  }
}

// Plain noise-handshake IK with another prologue and raw payloads (not hyperdht's).
function plainIk() {
  queue = [seed(0x61), seed(0x62)]
  const kpI = keyPair(0x21)
  const kpR = keyPair(0x22)
  const prologue = Buffer.from('some prologue')
  const i = new NoiseHandshake('IK', true, kpI, { curve })
  const r = new NoiseHandshake('IK', false, kpR, { curve })
  i.initialise(prologue, kpR.publicKey)
  r.initialise(prologue)
  const p1 = Buffer.from('hello from the initiator')
  const p2 = Buffer.alloc(0)
  const msg1 = i.send(p1)
  const got1 = r.recv(Buffer.from(msg1))
  const msg2 = r.send(p2)
  const got2 = i.recv(Buffer.from(msg2))
  return {
    prologue: hex(prologue),
    initiator_seed: hex(seed(0x21)),
    responder_seed: hex(seed(0x22)),
    initiator_ephemeral_seed: hex(seed(0x61)),
    responder_ephemeral_seed: hex(seed(0x62)),
    payload1: hex(p1),
    payload2: hex(p2),
    msg1: hex(msg1),
    msg2: hex(msg2),
    received1: hex(got1),
    received2: hex(got2),
    hash: hex(i.hash),
    initiator_tx: hex(i.tx),
    initiator_rx: hex(i.rx),
    responder_tx: hex(r.tx),
    responder_rx: hex(r.rx)
  }
}

// How JS NoiseWrap (the server side) reacts to bad msg1s: accepted or thrown.
function serverVerdicts(session) {
  const kpR = keyPair(2)
  const good = Buffer.from(session.msg1, 'hex')
  const flipped = Buffer.from(good)
  flipped[40] ^= 1
  const wrongKey = (() => {
    queue = [seed(0x71)]
    const other = keyPair(9)
    return new NoiseWrap(keyPair(1), other.publicKey).send(CLIENT_PAYLOAD)
  })()
  const garbagePayload = (() => {
    queue = [seed(0x72)]
    const hs = new NoiseHandshake('IK', true, keyPair(1), { curve })
    hs.initialise(NS.PEER_HANDSHAKE, kpR.publicKey)
    return hs.send(Buffer.from([0x01])) // version 1, then nothing: the payload decoder runs dry
  })()
  const cases = {
    good,
    short: good.subarray(0, 40),
    empty: Buffer.alloc(0),
    flipped_static: flipped,
    for_another_key: wrongKey,
    truncated_payload: garbagePayload
  }
  const out = {}
  for (const [name, msg1] of Object.entries(cases)) {
    queue = [seed(0x73)]
    const server = new NoiseWrap(kpR, null)
    let accepted = true
    try {
      server.recv(Buffer.from(msg1))
    } catch {
      accepted = false
    }
    out[name] = { msg1: hex(msg1), accepted }
  }
  return out
}

function securePayloads(secret) {
  const payloads = [
    {
      error: 0,
      firewall: 2,
      round: 0,
      connected: false,
      punching: false,
      addresses: [{ host: '127.0.0.1', port: 41000 }],
      remoteAddress: { host: '127.0.0.1', port: 42000 },
      token: null,
      remoteToken: null
    },
    {
      error: 1,
      firewall: 0,
      round: 7,
      connected: true,
      punching: true,
      addresses: null,
      remoteAddress: null,
      token: Buffer.alloc(32, 0xaa),
      remoteToken: Buffer.alloc(32, 0xbb)
    }
  ]
  return payloads.map((p, i) => {
    const box = withRandom(0x30 + i, () => {
      const sp = new SecurePayload(secret)
      return { sp, enc: sp.encrypt(p) }
    })
    const round = box.sp.decrypt(Buffer.from(box.enc)) // decrypt works in place
    return {
      nonce_byte: 0x30 + i,
      plain: hex(c.encode(m.holepunchPayload, p)),
      encrypted: hex(box.enc),
      decrypted_again: hex(c.encode(m.holepunchPayload, round)),
      token_127_0_0_1: hex(box.sp.token({ host: '127.0.0.1', port: 1 })),
      token_10_1_2_3: hex(box.sp.token({ host: '10.1.2.3', port: 1 }))
    }
  })
}

function secureVerdicts(secret, encrypted) {
  const sp = new SecurePayload(secret)
  const enc = Buffer.from(encrypted, 'hex')
  const flipped = Buffer.from(enc)
  flipped[flipped.length - 1] ^= 1
  const otherKey = new SecurePayload(Buffer.alloc(32, 1))
  return {
    good: sp.decrypt(Buffer.from(enc)) !== null,
    flipped: sp.decrypt(flipped) !== null,
    other_key: otherKey.decrypt(Buffer.from(enc)) !== null,
    short: sp.decrypt(Buffer.from(enc.subarray(0, 39))) !== null,
    only_nonce_and_mac: sp.decrypt(Buffer.from(enc.subarray(0, 40))) !== null,
    empty: sp.decrypt(Buffer.alloc(0)) !== null
  }
}

// A NoiseSecretStream started from NoiseWrap's final() (as connect.js does) writes its id/header
// and then messages; Python, holding the other side's final(), must read them.
async function secretStreamFromHandshake(session) {
  const { fc } = session
  const stream = new NoiseSecretStream(true, null, { autoStart: false })
  const wire = []
  stream.start(null, { handshake: fc })
  stream.rawStream.on('data', (d) => wire.push(Buffer.from(d)))
  const messages = [Buffer.from('hello over hyperdht'), Buffer.alloc(0), Buffer.alloc(3000, 5)]
  await stream.opened
  for (const msg of messages) stream.write(msg)
  await new Promise((resolve) => setTimeout(resolve, 20))
  stream.destroy()
  return {
    wire: hex(Buffer.concat(wire)),
    messages: messages.map(hex),
    initiator_stream_id: hex(NoiseSecretStream.id(fc.hash, true))
  }
}

async function main() {
  const s1 = wrapSession('hyperdht_like', 1, 2, [0xe0, 0xe1], CLIENT_PAYLOAD, SERVER_PAYLOAD)
  const s2 = wrapSession('minimal', 0x41, 0x42, [0x51, 0x52], { ...CLIENT_PAYLOAD, addresses4: [] }, {
    ...SERVER_PAYLOAD,
    holepunch: null,
    relayAddresses: null,
    error: 2
  })
  const secret = Buffer.from(s1.client.holepunch_secret, 'hex')
  const boxes = securePayloads(secret)
  const result = {
    source: 'hyperdht 6.34.0 (noise-wrap, secure-payload) + noise-handshake + noise-curve-ed + @hyperswarm/secret-stream 6.9.2',
    prologue: hex(NS.PEER_HANDSHAKE),
    ns_peer_holepunch: hex(NS.PEER_HOLEPUNCH),
    plain_ik: plainIk(),
    sessions: [s1, s2].map(({ fc, fs, ...rest }) => rest),
    server_msg1_verdicts: serverVerdicts(s1),
    secure_payload: { secret: hex(secret), boxes, verdicts: secureVerdicts(secret, boxes[0].encrypted) },
    secret_stream: await secretStreamFromHandshake(s1)
  }
  process.stdout.write(JSON.stringify(result, null, 1) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
