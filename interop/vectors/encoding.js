// Golden vectors for hyperlobby.encoding, printed by the pinned JS packages.
// Run: node vectors/encoding.js  (from interop/). Output is deterministic JSON.
'use strict'

const c = require('compact-encoding')
const z32 = require('z32')
const id = require('hypercore-id-encoding')
const varint = require('varint')
const svarint = require('signed-varint')
const pbe = require('protocol-buffers-encodings')
const b4a = require('b4a')

const hex = (b) => b4a.toString(b, 'hex')
const seq = (n, start = 0) => b4a.from(Array.from({ length: n }, (_, i) => (start + i * 37) & 0xff))

function attempt (fn) {
  try {
    return { ok: fn() }
  } catch (err) {
    return { error: String(err.message) }
  }
}

const out = {}

// --- compact-encoding -------------------------------------------------------
const uints = [0, 1, 127, 128, 252, 253, 254, 255, 256, 1000, 65535, 65536, 0xfffffe, 0xffffffff,
  0x100000000, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]
out.uint = uints.map((n) => ({ value: n, hex: hex(c.encode(c.uint, n)) }))
out.uint_decode = ['fd0100', 'fe01000000', 'ff0100000000000000', 'fd', 'fe0100', 'ff01', '', 'fc',
  'ffffffffffffff1f00', 'ff0000000000002000'].map((h) => ({
  hex: h,
  ...attempt(() => c.decode(c.uint, b4a.from(h, 'hex')))
}))
const ints = [0, -1, 1, -2, 2, 126, -127, 1000, -1000, 2 ** 31, -(2 ** 31)]
out.int = ints.map((n) => ({ value: n, hex: hex(c.encode(c.int, n)) }))
const fixed = [['uint8', 0xab], ['uint16', 0x1234], ['uint24', 0x123456], ['uint32', 0xdeadbeef],
  ['uint40', 0x0102030405], ['uint48', 0x010203040506], ['uint56', 0x01020304050607], ['uint64', 2 ** 52 + 3]]
out.fixed_uint = fixed.map(([name, v]) => ({ codec: name, value: v, hex: hex(c.encode(c[name], v)) }))
const strings = ['', 'hi', 'é', 'hello world', '日本語', '🦄 unicorn', 'x'.repeat(300)]
out.string = strings.map((s) => ({ value: s, hex: hex(c.encode(c.string, s)) }))
const buffers = [b4a.alloc(0), b4a.from('aabb', 'hex'), seq(253), seq(1000, 3)]
out.buffer = buffers.map((b) => ({ value: hex(b), hex: hex(c.encode(c.buffer, b)) }))
out.optional_buffer_null = hex(c.encode(c.optionalBuffer, null))
out.optional_buffer_decode_empty = c.decode(c.optionalBuffer, b4a.from("00", "hex"))
out.bool = [true, false].map((v) => ({ value: v, hex: hex(c.encode(c.bool, v)) }))
out.bool_decode = ['00', '01', '02', 'ff'].map((h) => ({ hex: h, value: c.decode(c.bool, b4a.from(h, 'hex')) }))
const arrays = [[], [1, 300], [0, 252, 253, 65536, 2 ** 33]]
out.uint_array = arrays.map((a) => ({ value: a, hex: hex(c.encode(c.array(c.uint), a)) }))
out.string_array = [[], ['a', 'bc', ''], ['hello', 'wörld']].map((a) => ({
  value: a, hex: hex(c.encode(c.array(c.string), a))
}))
out.uint32array = [[], [1, 2], [0xffffffff, 7]].map((a) => ({
  value: a, hex: hex(c.encode(c.uint32array, new Uint32Array(a)))
}))
out.fixed32 = hex(c.encode(c.fixed32, seq(32)))
out.array_too_long = attempt(() => c.decode(c.array(c.uint), b4a.from('fe01001000', 'hex')))

// --- z32 --------------------------------------------------------------------
const z32Inputs = [b4a.alloc(0), b4a.from('hello'), b4a.alloc(32, 0xff), b4a.alloc(32, 0),
  b4a.from(Array.from({ length: 32 }, (_, i) => i))]
for (let n = 1; n <= 12; n++) z32Inputs.push(seq(n, 11 * n))
out.z32_encode = z32Inputs.map((b) => ({ bytes: hex(b), z32: z32.encode(b) }))
// Decoding strings of every remainder length (the JS decoder has length quirks).
const z32Strings = ['', 'y', 'yy', '9', '99', '999', '9999', '99999', '999999', '9999999', '99999999',
  'pb1sa5dx', 'pb1sa5dxo', 'ybndrfg8ejkmcpqxot1uwisza345h769', 'ybndrfg8ejkmcpqxot1uwisza345h769ybn',
  'PB1SA5DX', 'pb1sa5d0', 'pb1sa5d!', 'l', 'v', '2']
out.z32_decode = z32Strings.map((s) => ({ z32: s, ...attempt(() => hex(z32.decode(s))) }))

// --- hypercore-id-encoding --------------------------------------------------
const keys = [b4a.alloc(32, 0), b4a.alloc(32, 0xff), b4a.from('3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29', 'hex'),
  seq(32, 5)]
out.id_encode = keys.map((k) => ({ key: hex(k), id: id.encode(k) }))
const idInputs = []
for (const k of keys) {
  idInputs.push(hex(k), hex(k).toUpperCase(), id.encode(k), 'pear://' + id.encode(k), 'pear://' + id.encode(k) + '/some/path',
    'pear://' + hex(k))
}
const zk = id.encode(keys[2])
idInputs.push('', 'hello', zk.slice(0, 51), zk + 'y', zk.toUpperCase(), zk.slice(0, 51) + 'a', zk.slice(0, 51) + '9',
  hex(keys[2]).slice(0, 63) + 'g', hex(keys[2]).slice(0, 62) + 'zz', hex(keys[2]).slice(0, 63), 'pear://', 'pear:/' + zk,
  'hyper://' + zk, ' ' + hex(keys[2]).slice(1), hex(keys[2]).slice(0, 62) + ' 1', 'pear://' + zk + '?x=1',
  '0x' + hex(keys[2]).slice(2))
out.id_decode = idInputs.map((s) => ({ input: s, ...attempt(() => hex(id.decode(s))) }))
out.id_decode_buffer = [0, 31, 32, 33, 64].map((n) => ({ length: n, ...attempt(() => hex(id.decode(seq(n)))) }))
out.id_normalize = idInputs.slice(0, 6).map((s) => ({ input: s, id: id.normalize(s) }))

// --- protobuf varints (protocol-buffers-encodings, varint, signed-varint) ---
const pv = [0, 1, 127, 128, 255, 300, 16383, 16384, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
  2 ** 35 + 1, 2 ** 49, Number.MAX_SAFE_INTEGER]
out.varint = pv.map((n) => ({ value: n, hex: hex(b4a.from(varint.encode(n))) }))
const sv = [0, -1, 1, -2, 2, 63, -64, 64, -65, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, -(2 ** 40)]
out.signed_varint = sv.map((n) => ({ value: n, hex: hex(b4a.from(svarint.encode(n))) }))
out.pb_bytes = ['', 'hello', 'x'.repeat(200)].map((s) => {
  const buf = b4a.alloc(pbe.string.encodingLength(s))
  pbe.string.encode(s, buf, 0)
  return { value: s, hex: hex(buf) }
})

process.stdout.write(JSON.stringify(out, null, 2) + '\n')
