// Golden vectors for hyperlobby.wire (noise.py, secret_stream.py), printed by the pinned
// @hyperswarm/secret-stream 6.9.2. Run from interop/: `node vectors/secret_stream.js`.
//
// Ephemeral Noise keys are random in JS; to get stable bytes this script swaps the key pair
// generator of noise-curve-ed for one that hands out key pairs from fixed seeds, in call order
// (the initiator draws first when writing msg1, the responder next when writing msg2).
// The secretstream headers stay random (libsodium draws them internally), so the data part
// of each transcript differs between runs; the handshake part does not.
'use strict'

const curve = require('noise-curve-ed')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const Handshake = require('@hyperswarm/secret-stream/lib/handshake')
const sodium = require('sodium-universal')

const hex = (b) => Buffer.from(b).toString('hex')
const seed = (byte) => Buffer.alloc(32, byte)

const realGenerate = curve.generateKeyPair
let queue = []
curve.generateKeyPair = function (priv) {
  if (priv) return realGenerate(priv)
  if (queue.length === 0) throw new Error('no fixed ephemeral seed left')
  return realGenerate(queue.shift())
}

function splitFrames(buf) {
  const frames = []
  let off = 0
  while (off + 3 <= buf.length) {
    const len = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16)
    frames.push(hex(buf.subarray(off, off + 3 + len)))
    off += 3 + len
  }
  if (off !== buf.length) throw new Error('transcript has a partial frame')
  return frames
}

// Bytes of varied sizes, deterministic so Python can rebuild them from (size, fill).
function payload(size, i) {
  const b = Buffer.alloc(size)
  for (let j = 0; j < size; j++) b[j] = (j * 31 + i * 7) & 255
  return b
}

async function session(name, seeds, sizesI, sizesR, opts = {}) {
  queue = seeds.ephemeral.map((s) => seed(s))
  const kpI = NoiseSecretStream.keyPair(seed(seeds.staticI))
  const kpR = NoiseSecretStream.keyPair(seed(seeds.staticR))
  const a = new NoiseSecretStream(true, null, { keyPair: kpI, ...opts })
  const b = new NoiseSecretStream(false, null, { keyPair: kpR, ...opts })
  const wireI = []
  const wireR = []
  a.rawStream.on('data', (c) => {
    wireI.push(Buffer.from(c))
    b.rawStream.write(c)
  })
  b.rawStream.on('data', (c) => {
    wireR.push(Buffer.from(c))
    a.rawStream.write(c)
  })

  const gotR = []
  const gotI = []
  const doneR = new Promise((resolve) => {
    b.on('data', (m) => {
      gotR.push(m.byteLength)
      if (gotR.length === sizesI.filter((s) => s > 0 || !b._filterZeroByteMessages).length) resolve()
    })
    if (sizesI.length === 0) resolve()
  })
  const doneI = new Promise((resolve) => {
    a.on('data', (m) => {
      gotI.push(m.byteLength)
      if (gotI.length === sizesR.filter((s) => s > 0 || !a._filterZeroByteMessages).length) resolve()
    })
    if (sizesR.length === 0) resolve()
  })

  await a.opened
  await b.opened
  sizesI.forEach((s, i) => a.write(payload(s, i)))
  sizesR.forEach((s, i) => b.write(payload(s, i + 100)))
  await Promise.all([doneI, doneR])
  await new Promise((resolve) => setImmediate(resolve))

  const out = {
    name,
    initiator_seed: hex(seed(seeds.staticI)),
    responder_seed: hex(seed(seeds.staticR)),
    initiator_public_key: hex(kpI.publicKey),
    responder_public_key: hex(kpR.publicKey),
    initiator_ephemeral_seed: hex(seed(seeds.ephemeral[0])),
    responder_ephemeral_seed: hex(seed(seeds.ephemeral[1])),
    handshake_hash: hex(a.handshakeHash),
    initiator_tx: hex(a._encrypt.key),
    initiator_rx: hex(a._decrypt.key),
    responder_tx: hex(b._encrypt.key),
    responder_rx: hex(b._decrypt.key),
    remote_public_key_seen_by_initiator: hex(a.remotePublicKey),
    remote_public_key_seen_by_responder: hex(b.remotePublicKey),
    stream_id_initiator: hex(NoiseSecretStream.id(a.handshakeHash, true)),
    stream_id_responder: hex(NoiseSecretStream.id(a.handshakeHash, false)),
    initiator_sizes: sizesI,
    responder_sizes: sizesR,
    filter_zero_byte_messages: !!a._filterZeroByteMessages,
    initiator_frames: splitFrames(Buffer.concat(wireI)),
    responder_frames: splitFrames(Buffer.concat(wireR)),
    sizes_received_by_responder: gotR,
    sizes_received_by_initiator: gotI
  }
  a.destroy()
  b.destroy()
  return out
}

// What the JS handshake does with odd first messages: null means "Noise handshake failed".
function responderVerdicts() {
  const cases = {
    short_31: Buffer.alloc(31, 9),
    empty: Buffer.alloc(0),
    identity_point: Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]),
    valid_with_payload: Buffer.concat([NoiseSecretStream.keyPair(seed(0x33)).publicKey, Buffer.from('abc')]),
    all_ff: Buffer.alloc(32, 0xff)
  }
  const out = {}
  for (const [name, msg1] of Object.entries(cases)) {
    queue = [seed(0xe1)]
    const r = new Handshake(false, NoiseSecretStream.keyPair(seed(2)), null, 'XX')
    const res = r.recv(msg1)
    out[name] = { msg1: hex(msg1), accepted: res !== null, reply: res && res.data ? hex(res.data) : null }
  }
  return out
}

// A msg2 whose encrypted static key was tampered with must fail on the initiator.
function initiatorVerdicts() {
  queue = [seed(0xe0), seed(0xe1)]
  const i = new Handshake(true, NoiseSecretStream.keyPair(seed(1)), null, 'XX')
  const r = new Handshake(false, NoiseSecretStream.keyPair(seed(2)), null, 'XX')
  const m1 = i.send().data.subarray(3)
  const m2 = Buffer.from(r.recv(m1).data.subarray(3))
  m2[40] ^= 1
  const res = i.recv(m2)
  return { tampered_msg2: { msg2: hex(m2), accepted: res !== null } }
}

async function main() {
  const fixed = { staticI: 1, staticR: 2, ephemeral: [0xe0, 0xe1] }
  const sessions = []
  sessions.push(await session('spec_keys', fixed, [5, 0, 1, 100, 1000, 70000], [3, 0, 65536]))
  sessions.push(
    await session('spec_keys_keepalive', fixed, [0, 7, 0], [0, 9], { keepAlive: 60000 })
  )
  sessions.push(
    await session('other_keys', { staticI: 0x41, staticR: 0x42, ephemeral: [0x51, 0x52] }, [100000], [1])
  )
  const [NS_INITIATOR, NS_RESPONDER, NS_SEND] = require('hypercore-crypto').namespace('hyperswarm/secret-stream', 3)
  const result = {
    source: '@hyperswarm/secret-stream 6.9.2 + noise-handshake 4.2.0 + noise-curve-ed 2.1.0 + sodium-secretstream 1.2.0',
    payload_rule: 'byte j of message i = (j*31 + i*7) & 255; responder messages use i + 100',
    namespaces: { initiator: hex(NS_INITIATOR), responder: hex(NS_RESPONDER), send: hex(NS_SEND) },
    sessions,
    responder_msg1_verdicts: responderVerdicts(),
    initiator_msg2_verdicts: initiatorVerdicts(),
    abytes: sodium.crypto_secretstream_xchacha20poly1305_ABYTES
  }
  process.stdout.write(JSON.stringify(result, null, 1) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
