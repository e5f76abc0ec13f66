// Golden vectors for hyperlobby.wire.messages: every hypercore/alpha replication message, encoded
// and decoded by the pinned hypercore 11.39.5 lib/messages.js codecs.
// Output: interop/vectors/messages.json (regenerate: node vectors/messages.js > vectors/messages.json).
//
// "encode" entries: a value (buffers as hex, JS field names) and the bytes JS writes for it.
// "decode" entries: bytes (some shortened, padded or with unknown flag bits) and what JS reads.
// "reject" entries: bytes that the JS decoder throws on.
'use strict'

const m = require('hypercore/lib/messages.js')
const c = require('compact-encoding')
const b4a = require('b4a')

const TYPES = ['sync', 'request', 'cancel', 'data', 'noData', 'want', 'unwant', 'bitfield', 'range', 'extension']

const fill = (n, byte) => b4a.alloc(n, byte)
const node = (index, size, byte) => ({ index, size, hash: fill(32, byte) })

const NS = fill(32, 0x11)
const A = fill(32, 0xaa)
const B = fill(32, 0xbb)
const P = fill(32, 0x22)
const signerA = { signature: 'ed25519', namespace: NS, publicKey: A }
const signerB = { signature: 'ed25519', namespace: NS, publicKey: B }

const manifests = [
  { version: 1, hash: 'blake2b', allowPatch: false, quorum: 1, signers: [signerA], prologue: null, linked: null, userData: null },
  { version: 1, hash: 'blake2b', allowPatch: true, quorum: 2, signers: [signerA, signerB], prologue: null, linked: null, userData: null },
  { version: 1, hash: 'blake2b', allowPatch: false, quorum: 0, signers: [], prologue: { hash: P, length: 5 }, linked: null, userData: null },
  { version: 2, hash: 'blake2b', allowPatch: false, quorum: 1, signers: [signerA], prologue: null, linked: [B], userData: b4a.from('hi') },
  { version: 0, hash: 'blake2b', allowPatch: false, quorum: 1, signers: [signerA], prologue: null },
  { version: 0, hash: 'blake2b', allowPatch: false, quorum: 0, signers: [], prologue: { hash: P, length: 0 } },
  { version: 0, hash: 'blake2b', allowPatch: true, quorum: 1, signers: [signerA, signerB], prologue: null }
]

const values = {
  sync: [
    { fork: 0, length: 0, remoteLength: 0, canUpgrade: false, uploading: false, downloading: false, hasManifest: false, allowPush: false },
    { fork: 0, length: 0, remoteLength: 0, canUpgrade: true, uploading: true, downloading: true, hasManifest: false, allowPush: false },
    { fork: 0, length: 3, remoteLength: 0, canUpgrade: true, uploading: true, downloading: true, hasManifest: true, allowPush: false },
    { fork: 7, length: 300, remoteLength: 70000, canUpgrade: false, uploading: true, downloading: false, hasManifest: true, allowPush: true },
    { fork: 2 ** 32, length: 2 ** 53 - 1, remoteLength: 65535, canUpgrade: false, uploading: false, downloading: false, hasManifest: false, allowPush: true }
  ],
  request: [
    { id: 1, fork: 0, block: null, hash: null, seek: null, upgrade: { start: 0, length: 3 }, manifest: true, priority: 0 },
    { id: 1, fork: 0, block: { index: 2, nodes: 0 }, hash: null, seek: null, upgrade: null, manifest: false, priority: 1 },
    { id: 2, fork: 0, block: null, hash: { index: 5, nodes: 1 }, seek: { bytes: 100, padding: 0 }, upgrade: null, manifest: false, priority: 0 },
    { id: 0, fork: 3, block: null, hash: null, seek: null, upgrade: { start: 0, length: 10 }, manifest: false, priority: 0 },
    { id: 65536, fork: 1, block: { index: 1000, nodes: 4 }, hash: { index: 2001, nodes: 2 }, seek: { bytes: 123456789, padding: 8 }, upgrade: { start: 5, length: 2 }, manifest: true, priority: 300 },
    { id: 9, fork: 0, block: null, hash: null, seek: null, upgrade: null, manifest: false, priority: 0 }
  ],
  cancel: [{ request: 3 }, { request: 0 }, { request: 100000 }],
  data: [
    { request: 1, fork: 0, block: { index: 2, value: b4a.from('!'), nodes: [] }, hash: null, seek: null, upgrade: null, manifest: null },
    { request: 1, fork: 0, block: { index: 0, value: b4a.from('hello'), nodes: [node(2, 5, 0x99)] }, hash: null, seek: null, upgrade: null, manifest: null },
    { request: 1, fork: 0, block: null, hash: null, seek: null, upgrade: { start: 0, length: 3, nodes: [node(1, 10, 0x56), node(4, 1, 0xb3)], additionalNodes: [], signature: fill(68, 0x72) }, manifest: manifests[0] },
    { request: 4, fork: 2, block: { index: 9, value: b4a.alloc(0), nodes: [node(16, 7, 1)] }, hash: { index: 5, nodes: [node(5, 2, 2), node(1, 3, 3)] }, seek: { bytes: 77, nodes: [node(3, 9, 4)] }, upgrade: { start: 3, length: 8, nodes: [node(6, 1, 5), node(11, 2, 6), node(20, 3, 7)], additionalNodes: [node(22, 1, 8)], signature: fill(64, 0x17) }, manifest: null },
    { request: 5, fork: 0, block: null, hash: null, seek: null, upgrade: { start: 0, length: 1, nodes: [], additionalNodes: [], signature: null }, manifest: null },
    { request: 6, fork: 0, block: { index: 300, value: b4a.alloc(300, 0x42), nodes: [] }, hash: null, seek: null, upgrade: null, manifest: null },
    ...manifests.map((mf, i) => ({ request: 10 + i, fork: 0, block: null, hash: null, seek: null, upgrade: null, manifest: mf }))
  ],
  noData: [{ request: 5, reason: 1 }, { request: 5, reason: 0 }, { request: 70000, reason: 2 }],
  want: [{ start: 0, length: 2 ** 21, any: false }, { start: 0, length: 10, any: true }, { start: 2 ** 21, length: 2 ** 21, any: false }],
  unwant: [{ start: 0, length: 2 ** 21, any: false }, { start: 5, length: 1, any: true }],
  bitfield: [
    { start: 32, bitfield: new Uint32Array([0x80000001]) },
    { start: 0, bitfield: new Uint32Array([]) },
    { start: 2 ** 21, bitfield: new Uint32Array([0xffffffff, 0, 1, 0x12345678]) }
  ],
  range: [
    { drop: false, start: 7, length: 1 },
    { drop: true, start: 7, length: 3 },
    { drop: false, start: 0, length: 3 },
    { drop: true, start: 100000, length: 1 },
    { drop: false, start: 0, length: 0 }
  ],
  extension: [
    { name: 'hyperbee', message: b4a.from('020a00', 'hex') },
    { name: '', message: b4a.from('abc') },
    { name: 'é-ext', message: b4a.alloc(0) }
  ]
}

function toJSON(v) {
  if (b4a.isBuffer(v)) return b4a.toString(v, 'hex')
  if (Array.isArray(v)) return v.map(toJSON)
  if (v instanceof Uint32Array) return Array.from(v)
  if (v && typeof v === 'object') {
    const out = {}
    for (const k of Object.keys(v)) out[k] = toJSON(v[k])
    return out
  }
  return v
}

// The Python record keeps a data message's manifest as its encoded bytes, so vectors carry those.
function plain(name, v) {
  const j = toJSON(v)
  if (name === 'data') j.manifest = v.manifest ? enc(m.manifest, v.manifest) : null
  return j
}

function enc(codec, v) {
  return b4a.toString(c.encode(codec, v), 'hex')
}

function dec(codec, hex) {
  return c.decode(codec, b4a.from(hex, 'hex'))
}

// Bytes whose decoding shows tolerated shapes: trailing fields missing, extra bytes, unknown flags.
const decodeInputs = {
  sync: ['e0000000', '1f01020300ff', '07000300'],
  request: ['c00100', '4001000000', '200100fd0001', '1001000a'],
  cancel: ['03ff'],
  data: ['e00100', '00010000', '0a010000000000000000'],
  noData: ['05', '0500', '050101', '050005', '05030709'],
  want: ['000a', '000a00', '000a01', '000a02', '000a03ff'],
  unwant: ['000a', '000a01'],
  bitfield: ['2000', '2001010000800000'],
  range: ['0207', '0307', '0007fd0001', '06070809', '010703'],
  extension: ['00', '0361626378797a', '02c328']
}

// Bytes the JS decoder throws on (truncations, oversize arrays, bad manifests).
const rejectInputs = {
  sync: ['', '00', '0000', '000000'],
  request: ['01', '010100', '01010001', '080100', '200100', 'ff01000101010101010101'],
  cancel: [''],
  data: ['010100', '01010000', '0101000001', '0201000001', '08010000000001', '100100', '10010001', '1001000100', '10010001000101', '10010004'],
  noData: ['', '0501'],
  want: ['', '00'],
  unwant: ['00'],
  bitfield: ['20', '2001', '20fe00001000', '200201000000'],
  range: ['', '00', '0007'],
  extension: ['', '05616263']
}

const out = { encode: [], decode: [], reject: [], handshake: [] }

for (let type = 0; type < TYPES.length; type++) {
  const name = TYPES[type]
  const codec = m.wire[name]
  for (const v of values[name]) {
    const hex = enc(codec, v)
    out.encode.push({ type, name, value: plain(name, v), hex, decoded: plain(name, dec(codec, hex)) })
  }
  for (const hex of decodeInputs[name]) {
    out.decode.push({ type, name, hex, decoded: plain(name, dec(codec, hex)) })
  }
  for (const hex of rejectInputs[name]) {
    let threw = false
    try {
      dec(codec, hex)
    } catch {
      threw = true
    }
    if (!threw) throw new Error(`expected ${name} ${hex} to throw`)
    out.reject.push({ type, name, hex })
  }
}

for (const v of [{ seeks: true, capability: fill(32, 0x3c) }, { seeks: false, capability: fill(32, 1) }]) {
  const hex = enc(m.wire.handshake, v)
  out.handshake.push({ value: toJSON(v), hex, decoded: toJSON(dec(m.wire.handshake, hex)) })
}
for (const hex of ['03' + '55'.repeat(32), 'fd0300' + '55'.repeat(32) + 'ff']) {
  out.handshake.push({ value: null, hex, decoded: toJSON(dec(m.wire.handshake, hex)) })
}

process.stdout.write(JSON.stringify(out, null, 1) + '\n')
