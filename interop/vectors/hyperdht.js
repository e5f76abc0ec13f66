// Golden vectors for hyperlobby.swarm.hyperdht.messages: hyperdht's own lib/messages.js encodes a
// spread of values (optional fields absent and present, empty vs missing arrays, multi-byte
// uints) and decodes the bytes back; a few hand-made byte strings show what the JS decoders
// accept (unknown versions, missing trailing fields) and reject (truncation).
// Output: interop/vectors/hyperdht.json (regenerate: node vectors/hyperdht.js > vectors/hyperdht.json).
'use strict'

const c = require('compact-encoding')
const m = require('hyperdht/lib/messages')
const { COMMANDS, ERROR, FIREWALL, NS, BOOTSTRAP_NODES } = require('hyperdht/lib/constants')
const b4a = require('b4a')
const crypto = require('crypto')

const hex = (b) => b4a.toString(b, 'hex')
// deterministic pseudo-random bytes (sha256 chain) so the vectors are stable
const det = (label, n) => {
  let out = b4a.alloc(0)
  let i = 0
  while (out.length < n) out = b4a.concat([out, crypto.createHash('sha256').update(label + ':' + i++).digest()])
  return out.subarray(0, n)
}

// JSON view of a decoded value: buffers become hex, everything else passes through.
function plain(v) {
  if (v === null || v === undefined) return null
  if (b4a.isBuffer(v)) return hex(v)
  if (Array.isArray(v)) return v.map(plain)
  if (typeof v === 'object') {
    const out = {}
    for (const k of Object.keys(v)) out[k] = plain(v[k])
    return out
  }
  return v
}

const A = (host, port) => ({ host, port })
const a1 = A('127.0.0.1', 49737)
const a2 = A('10.0.0.255', 0)
const a3 = A('255.255.255.255', 65535)
const v6a = A('2001:db8:0:0:0:0:0:1', 443)
const v6b = A('fe80:0:0:0:1234:5678:9abc:def0', 65535)
const v6c = A('0:0:0:0:0:0:0:0', 0)

const out = {}

function cases(name, enc, list) {
  out[name] = list.map(([label, value]) => {
    const buf = c.encode(enc, value)
    return { name: label, hex: hex(buf), value: plain(c.decode(enc, buf)) }
  })
}

cases('handshake', m.handshake, [
  ['bare', { mode: 0, noise: det('noise', 48) }],
  ['peer-address', { mode: 1, noise: det('n2', 96), peerAddress: a1 }],
  ['relay-address', { mode: 2, noise: b4a.alloc(0), relayAddress: a3 }],
  ['both', { mode: 3, noise: det('n3', 300), peerAddress: a2, relayAddress: a1 }],
  ['mode-252', { mode: 252, noise: det('n4', 10), peerAddress: a3 }]
])

cases('holepunch', m.holepunch, [
  ['bare', { mode: 0, id: 0, payload: det('hp', 40) }],
  ['peer-address', { mode: 2, id: 1, payload: det('hp2', 80), peerAddress: a1 }],
  ['big-id', { mode: 1, id: 2 ** 32 + 5, payload: b4a.alloc(0), peerAddress: a2 }],
  ['id-253', { mode: 3, id: 253, payload: det('hp3', 253) }]
])

const hpInfo = { id: 7, relays: [{ relayAddress: a1, peerAddress: a2 }, { relayAddress: a3, peerAddress: a1 }] }

cases('noisePayload', m.noisePayload, [
  ['minimal', { error: 0, firewall: 0 }],
  ['error-firewall', { error: ERROR.TRY_LATER, firewall: FIREWALL.RANDOM }],
  ['holepunch-no-relays', { error: 0, firewall: 1, holepunch: { id: 0, relays: [] } }],
  ['holepunch-relays', { error: 0, firewall: 2, holepunch: hpInfo }],
  ['addresses4', { error: 0, firewall: 1, addresses4: [a1, a2] }],
  ['addresses4-empty', { error: 0, firewall: 1, addresses4: [] }],
  ['addresses6', { error: 0, firewall: 1, addresses6: [v6a, v6b, v6c] }],
  ['udx', { error: 0, firewall: 0, udx: { reusableSocket: false, id: 1, seq: 0 } }],
  ['udx-reusable', { error: 0, firewall: 0, udx: { reusableSocket: true, id: 300000, seq: 65536 } }],
  ['secret-stream', { error: 0, firewall: 0, secretStream: {} }],
  ['relay-through', { error: 0, firewall: 0, relayThrough: { publicKey: det('rtpk', 32), token: det('rttk', 32) } }],
  ['relay-addresses', { error: 0, firewall: 0, relayAddresses: [a3] }],
  ['relay-addresses-empty', { error: 0, firewall: 0, relayAddresses: [] }],
  [
    'everything',
    {
      error: ERROR.ABORTED,
      firewall: FIREWALL.CONSISTENT,
      holepunch: hpInfo,
      addresses4: [a1, a2, a3],
      addresses6: [v6a],
      udx: { reusableSocket: true, id: 42, seq: 9 },
      secretStream: {},
      relayThrough: { publicKey: det('pk', 32), token: det('tk', 32) },
      relayAddresses: [a2, a1]
    }
  ]
])

cases('holepunchPayload', m.holepunchPayload, [
  ['minimal', { error: 0, firewall: 0, round: 0 }],
  ['connected', { connected: true, error: 0, firewall: 1, round: 1 }],
  ['punching', { punching: true, error: 0, firewall: 3, round: 252 }],
  ['addresses', { error: 0, firewall: 2, round: 2, addresses: [a1, a3] }],
  ['addresses-empty', { error: 0, firewall: 2, round: 2, addresses: [] }],
  ['remote-address', { error: 0, firewall: 2, round: 3, remoteAddress: a2 }],
  ['token', { error: 0, firewall: 2, round: 4, token: det('tok', 32) }],
  ['remote-token', { error: 0, firewall: 2, round: 5, remoteToken: det('rtok', 32) }],
  [
    'everything',
    {
      connected: true,
      punching: true,
      error: ERROR.ABORTED,
      firewall: 3,
      round: 9,
      addresses: [a2],
      remoteAddress: a1,
      token: det('t1', 32),
      remoteToken: det('t2', 32)
    }
  ]
])

const peerA = { publicKey: det('peerA', 32), relayAddresses: [] }
const peerB = { publicKey: det('peerB', 32), relayAddresses: [a1, a2, a3] }

cases('peer', m.peer, [
  ['no-relays', peerA],
  ['relays', peerB]
])

cases('peers', m.peers, [
  ['empty', []],
  ['two', [peerA, peerB]]
])

cases('lookupRawReply', m.lookupRawReply, [
  ['empty', { peers: [], bump: 0 }],
  ['peers', { peers: [c.encode(m.peer, peerA), c.encode(m.peer, peerB)], bump: 0 }],
  ['bump', { peers: [c.encode(m.peer, peerB)], bump: 1700000000000 }]
])

cases('announce', m.announce, [
  ['empty', {}],
  ['peer', { peer: peerB }],
  ['refresh', { refresh: det('refresh', 32) }],
  ['signature', { peer: peerA, signature: det('sig', 64) }],
  ['bump', { bump: 12345 }],
  ['everything', { peer: peerB, refresh: det('r2', 32), signature: det('s2', 64), bump: 2 ** 40 }]
])

cases('mutableSignable', m.mutableSignable, [
  ['empty', { seq: 0, value: b4a.alloc(0) }],
  ['value', { seq: 300, value: b4a.from('hello world') }]
])

cases('mutablePutRequest', m.mutablePutRequest, [
  ['small', { publicKey: det('mpk', 32), seq: 0, value: b4a.from('v'), signature: det('msig', 64) }],
  ['big', { publicKey: det('mpk2', 32), seq: 2 ** 33, value: det('mv', 1000), signature: det('msig2', 64) }]
])

cases('mutableGetResponse', m.mutableGetResponse, [
  ['small', { seq: 1, value: b4a.alloc(0), signature: det('gsig', 64) }],
  ['big', { seq: 65536, value: det('gv', 500), signature: det('gsig2', 64) }]
])

cases('pluginRequest', m.pluginRequest, [
  ['no-value', { plugin: 'echo', version: 1, command: 0 }],
  ['value', { plugin: 'my-plugin', version: 2, command: 300, value: b4a.from('payload') }],
  ['empty-value', { plugin: 'ünïcode', version: 0, command: 1, value: b4a.alloc(0) }]
])

// Byte strings made by hand: what JS decodes them to, or that it throws.
const handmade = {
  noisePayload: [
    ['version-2-stops', '0205ffffff'],
    ['version-0', '00'],
    ['trailing-bytes', '01000000aabbcc'],
    ['udx-version-and-features', '01080000' + '07' + 'fb' + '01' + '02'],
    ['relay-through-flags-ignored', '01200000' + '05' + '09' + hex(det('x', 32)) + hex(det('y', 32))],
    ['secret-stream-version', '01100000' + '09']
  ],
  holepunchPayload: [['unknown-flag-bits', 'c0000000']],
  lookupRawReply: [
    ['no-bump', '01' + hex(c.encode(m.peer, peerB))],
    ['no-peers-no-bump', '00']
  ],
  announce: [['unknown-flag-bits', 'f0']],
  handshake: [
    ['unknown-flag-bits', 'fc0000'],
    ['multi-byte-mode', '00fd7011' + '0201ff']
  ],
  holepunch: [['multi-byte-mode-and-id', '00fe01000100' + 'ff0000000001000000' + '00']]
}
handmade.holepunchPayload.push(['multi-byte-round', '00' + 'fd0001' + 'fe00000100' + 'fd2c01'])
handmade.noisePayload.push(['multi-byte-error', '01' + '00' + 'fd0001' + 'fe00000100'])

const errors = []
out.decoding = []
for (const [name, list] of Object.entries(handmade)) {
  for (const [label, h] of list) {
    out.decoding.push({ codec: name, name: label, hex: h, value: plain(c.decode(m[name], b4a.from(h, 'hex'))) })
  }
}

// Every proper prefix of each encoded case that JS rejects must be rejected in Python too.
out.truncated = []
for (const name of Object.keys(m)) {
  if (!out[name]) continue
  for (const v of out[name]) {
    const buf = b4a.from(v.hex, 'hex')
    for (let n = 0; n < buf.length; n++) {
      let threw = false
      try {
        c.decode(m[name], buf.subarray(0, n))
      } catch {
        threw = true
      }
      if (threw) continue
      errors.push({ codec: name, name: v.name, n })
    }
  }
}
out.truncated_accepted = errors

out.constants = {
  COMMANDS,
  ERROR,
  FIREWALL,
  BOOTSTRAP_NODES,
  NS: Object.fromEntries(Object.entries(NS).map(([k, v]) => [k, hex(v)]))
}

process.stdout.write(JSON.stringify(out, null, 1) + '\n')
