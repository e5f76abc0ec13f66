// Golden vectors for hyperlobby.swarm.hyperdht.blind_relay: the pair/unpair messages of
// blind-relay (the version pinned in package-lock.json), encoded by its own codecs.
// Output: interop/vectors/blind_relay.json
// (regenerate: cd interop && node vectors/blind_relay.js > vectors/blind_relay.json).
'use strict'

const c = require('compact-encoding')
const b4a = require('b4a')
const { messages } = require('blind-relay')

const hex = (b) => b4a.toString(b, 'hex')
const token = (seed) => b4a.from(Array.from({ length: 32 }, (_, i) => (seed * 31 + i * 7) & 0xff))

const pairs = [
  { isInitiator: true, token: token(1), id: 0, seq: 0 },
  { isInitiator: false, token: token(2), id: 1, seq: 0 },
  { isInitiator: true, token: token(3), id: 0xfc, seq: 0 },
  { isInitiator: false, token: token(4), id: 0xfd, seq: 7 },
  { isInitiator: true, token: token(5), id: 0xffff, seq: 0x10000 },
  { isInitiator: false, token: token(6), id: 0xffffffff, seq: 0 }
].map((m) => ({
  isInitiator: m.isInitiator,
  token: hex(m.token),
  id: m.id,
  seq: m.seq,
  encoded: hex(c.encode(messages.pair, m))
}))

const unpairs = [token(7), token(8)].map((t) => ({
  token: hex(t),
  encoded: hex(c.encode(messages.unpair, { token: t }))
}))

// What JS decodes from flag fields written wider than one byte (a future sender may).
const wide = [
  b4a.concat([b4a.from([0xfd, 0x01, 0x00]), token(9), b4a.from([0x05, 0x00])]),
  b4a.concat([b4a.from([0xfe, 0x00, 0x00, 0x00, 0x00]), token(10), b4a.from([0x06, 0x01])])
].map((buf) => {
  const m = c.decode(messages.pair, buf)
  return { encoded: hex(buf), isInitiator: m.isInitiator, token: hex(m.token), id: m.id, seq: m.seq }
})

process.stdout.write(JSON.stringify({ pairs, unpairs, wide }, null, 2) + '\n')
